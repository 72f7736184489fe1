//! Dispatch of IQs addressed to the server, keyed by IQ type and payload namespace.
//! Handlers are plain functions; they never call each other.

use switchyard_core::{Element, Stanza, StanzaCondition, StanzaError};

/// What handlers may know about the server.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub name: &'static str,
    pub version: &'static str,
    /// XEP-0092 §4: an administrator may hide the version.
    pub expose_version: bool,
}

/// A handler answers a request with a result payload (or none) or a stanza error.
pub(crate) type Handler = fn(&Stanza, &ServerInfo) -> Result<Option<Element>, StanzaError>;

/// `(type, namespace, handler)`; the feature list of disco#info is derived from it.
pub(crate) const TABLE: &[(&str, &str, Handler)] = &[
    ("get", switchyard_core::ns::PING, crate::ping::handle),
    ("get", switchyard_core::ns::DISCO_INFO, crate::disco::info),
    ("get", switchyard_core::ns::DISCO_ITEMS, crate::disco::items),
    ("get", switchyard_core::ns::VERSION, crate::version::handle),
];

/// Answers an IQ request to the server: the handler's reply, or `service-unavailable`
/// for anything unhandled (RFC 6120 §8.4).
pub(crate) fn answer(stanza: &Stanza, info: &ServerInfo) -> Option<Element> {
    let payload = stanza.payload()?;
    let handler = TABLE
        .iter()
        .find(|(kind, ns, _)| stanza.type_attr() == Some(kind) && payload.ns() == *ns)
        .map(|(_, _, h)| h);
    let outcome = match handler {
        Some(h) => h(stanza, info),
        None => Err(StanzaError::new(StanzaCondition::ServiceUnavailable)),
    };
    match outcome {
        Ok(payload) => Some(stanza.result(payload)),
        Err(e) => stanza.error_reply(&e),
    }
}
