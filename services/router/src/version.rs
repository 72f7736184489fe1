//! XEP-0092 Software Version: name and version, or `service-unavailable` when hidden
//! (§4 lets an administrator withhold it).

use crate::dispatch::ServerInfo;
use switchyard_core::{ns, Element, Stanza, StanzaCondition, StanzaError};

pub(crate) fn handle(_: &Stanza, info: &ServerInfo) -> Result<Option<Element>, StanzaError> {
    if !info.expose_version {
        return Err(StanzaError::new(StanzaCondition::ServiceUnavailable));
    }
    Ok(Some(
        Element::new("query", ns::VERSION)
            .with_child(Element::new("name", ns::VERSION).with_text(info.name))
            .with_child(Element::new("version", ns::VERSION).with_text(info.version)),
    ))
}
