//! XEP-0049 Private XML Storage.
//!
//! - §2: one child element in its own namespace is stored, keyed by that namespace; a
//!   get returns what is stored, or echoes the empty child when nothing is.
//! - §2.3: no child, or several on a get, is `not-acceptable`; namespaces reserved by
//!   the protocol (`jabber:*`, `http://jabber.org/*`, `vcard-temp`) are refused the same
//!   way. Only the owner reaches this handler (others get `service-unavailable`, which
//!   §3 allows alongside `forbidden`).

use crate::dispatch::{storage_failed, Answer, Outcome};
use crate::router::Router;
use switchyard_core::{ns, Element, Stanza, StanzaCondition, StanzaError};

fn child(stanza: &Stanza) -> Result<&Element, StanzaError> {
    let query = stanza.payload().expect("dispatched with a payload");
    let mut children = query.children();
    let (Some(child), None) = (children.next(), children.next()) else {
        return Err(StanzaError::new(StanzaCondition::NotAcceptable));
    };
    let reserved = child.ns().starts_with("jabber:")
        || child.ns().starts_with("http://jabber.org/")
        || child.ns() == ns::VCARD;
    if reserved || query.name() != "query" {
        return Err(StanzaError::new(StanzaCondition::NotAcceptable));
    }
    Ok(child)
}

fn key(child: &Element) -> String {
    format!("private:{}", child.ns())
}

pub(crate) async fn get(router: &Router, stanza: &Stanza) -> Outcome {
    let child = child(stanza)?;
    let stored = router
        .stores
        .documents
        .get(&stanza.from.bare(), &key(child))
        .await
        .map_err(storage_failed("private XML"))?;
    let data = stored
        .and_then(|s| Element::parse(&s).ok())
        .unwrap_or_else(|| child.clone());
    Ok(Answer::with(
        Element::new("query", ns::PRIVATE).with_child(data),
    ))
}

pub(crate) async fn set(router: &Router, stanza: &Stanza) -> Outcome {
    let child = child(stanza)?;
    let xml = child.to_xml("");
    router
        .stores
        .documents
        .put(&stanza.from.bare(), &key(child), Some(&xml))
        .await
        .map_err(storage_failed("private XML"))?;
    Ok(Answer::empty())
}
