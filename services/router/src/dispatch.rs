//! IQs the server answers itself (RFC 6120 §10.3.3, RFC 6121 §8.5.2.1.3 for a bare JID),
//! keyed by IQ type, payload namespace and who the IQ is addressed to. Handlers are small
//! async functions in one module per specification; they never call each other.

use crate::router::Router;
use std::future::Future;
use std::pin::Pin;
use switchyard_core::{ns, Element, Stanza, StanzaCondition, StanzaError};

/// Who an IQ handled by the server is addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The server's domain.
    Server,
    /// The sender's own bare JID, or no `to` at all (RFC 6120 §10.3.3).
    Own,
    /// Another local account's bare JID.
    Other,
}

/// A handler's successful answer: the result's payload, and stanzas that must follow the
/// result to the requester (RFC 6121 §2.6.3 interim roster pushes).
#[derive(Debug, Default)]
pub(crate) struct Answer {
    pub payload: Option<Element>,
    pub then: Vec<Element>,
}

impl Answer {
    pub(crate) fn empty() -> Self {
        Self::default()
    }

    pub(crate) fn with(payload: Element) -> Self {
        Self {
            payload: Some(payload),
            then: Vec::new(),
        }
    }
}

pub(crate) type Outcome = Result<Answer, StanzaError>;

/// For `map_err`: logs a storage failure of `what` and answers `internal-server-error`.
pub(crate) fn storage_failed(
    what: &'static str,
) -> impl Fn(switchyard_storage::StorageError) -> StanzaError {
    move |e| {
        tracing::warn!(error = %e, "{what} storage failed");
        StanzaError::new(StanzaCondition::InternalServerError)
    }
}
pub(crate) type Reply<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;
pub(crate) type Handler = for<'a> fn(&'a Router, &'a Stanza) -> Reply<'a>;

pub(crate) struct Entry {
    pub kind: &'static str,
    pub ns: &'static str,
    pub targets: &'static [Target],
    pub handler: Handler,
}

const ANY: &[Target] = &[Target::Server, Target::Own, Target::Other];
const SERVER: &[Target] = &[Target::Server];
const OWN: &[Target] = &[Target::Own];
const SERVER_OR_OWN: &[Target] = &[Target::Server, Target::Own];
const ACCOUNTS: &[Target] = &[Target::Own, Target::Other];

macro_rules! entry {
    ($kind:literal, $ns:expr, $targets:expr, $handler:path) => {
        Entry {
            kind: $kind,
            ns: $ns,
            targets: $targets,
            handler: |r, s| Box::pin($handler(r, s)),
        }
    };
}

/// The feature lists of disco#info are derived from this table.
pub(crate) const TABLE: &[Entry] = &[
    entry!("get", ns::PING, ANY, crate::ping::handle),
    entry!("get", ns::DISCO_INFO, SERVER, crate::disco::server_info),
    entry!("get", ns::DISCO_INFO, ACCOUNTS, crate::disco::account_info),
    entry!("get", ns::DISCO_ITEMS, ANY, crate::disco::items),
    entry!("get", ns::VERSION, SERVER, crate::version::handle),
    entry!("get", ns::ROSTER, ACCOUNTS, crate::roster::get),
    entry!("set", ns::ROSTER, ACCOUNTS, crate::roster::set),
    entry!("get", ns::BLOCKING, OWN, crate::blocking::list),
    entry!("set", ns::BLOCKING, OWN, crate::blocking::change),
    entry!("set", ns::CARBONS, SERVER_OR_OWN, crate::carbons::toggle),
    entry!("get", ns::VCARD, ACCOUNTS, crate::vcard::get),
    entry!("set", ns::VCARD, OWN, crate::vcard::set),
    entry!("get", ns::PRIVATE, OWN, crate::private::get),
    entry!("set", ns::PRIVATE, OWN, crate::private::set),
    entry!("get", ns::LAST, ANY, crate::last::get),
];

/// Features served at a target, for disco#info; XEP-0092 only when the version is exposed.
pub(crate) fn features(target: Target, expose_version: bool) -> Vec<&'static str> {
    let mut features: Vec<&str> = TABLE
        .iter()
        .filter(|e| e.targets.contains(&target))
        .map(|e| e.ns)
        .filter(|f| *f != ns::VERSION || expose_version)
        .collect();
    features.sort_unstable();
    features.dedup();
    features
}

/// Answers an IQ request the server handles: the handler's reply (and what follows it),
/// or `service-unavailable` when nothing handles it (RFC 6120 §8.4, RFC 6121 §8.5.2.1.3).
pub(crate) async fn answer(router: &Router, stanza: &Stanza, target: Target) -> Vec<Element> {
    let Some(payload) = stanza.payload() else {
        return Vec::new();
    };
    let entry = TABLE.iter().find(|e| {
        stanza.type_attr() == Some(e.kind) && payload.ns() == e.ns && e.targets.contains(&target)
    });
    let outcome = match entry {
        Some(e) => (e.handler)(router, stanza).await,
        None => Err(StanzaError::new(StanzaCondition::ServiceUnavailable)),
    };
    match outcome {
        Ok(answer) => {
            let mut out = vec![stanza.result(answer.payload)];
            out.extend(answer.then);
            out
        }
        Err(e) => stanza.error_reply(&e).into_iter().collect(),
    }
}
