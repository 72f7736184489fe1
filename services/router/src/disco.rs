//! XEP-0030 Service Discovery for the server JID: identity `server/im` (§3.1) and the
//! features of every handler in the dispatch table; no items yet (§4).

use crate::dispatch::{ServerInfo, TABLE};
use switchyard_core::{ns, Element, Stanza, StanzaCondition, StanzaError};

pub(crate) fn info(stanza: &Stanza, info: &ServerInfo) -> Result<Option<Element>, StanzaError> {
    if stanza.payload().and_then(|p| p.attr("node")).is_some() {
        return Err(StanzaError::new(StanzaCondition::ItemNotFound));
    }
    let mut query = Element::new("query", ns::DISCO_INFO).with_child(
        Element::new("identity", ns::DISCO_INFO)
            .with_attr("category", "server")
            .with_attr("type", "im")
            .with_attr("name", info.name),
    );
    let mut features: Vec<&str> = TABLE.iter().map(|(_, ns, _)| *ns).collect();
    features.retain(|f| *f != ns::VERSION || info.expose_version);
    for feature in features {
        query.push_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", feature));
    }
    Ok(Some(query))
}

pub(crate) fn items(stanza: &Stanza, _: &ServerInfo) -> Result<Option<Element>, StanzaError> {
    if stanza.payload().and_then(|p| p.attr("node")).is_some() {
        return Err(StanzaError::new(StanzaCondition::ItemNotFound));
    }
    Ok(Some(Element::new("query", ns::DISCO_ITEMS)))
}
