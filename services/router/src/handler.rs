//! The types every feature handler shares: who a stanza is addressed to, what a handler
//! returns, and the shape of a handler. The table that says which handler serves what
//! is [`crate::table`]; handler modules import this module, never the table.

use crate::effects::Effects;
use crate::router::Router;
use std::future::Future;
use std::pin::Pin;
use switchyard_core::{Element, Stanza, StanzaCondition, StanzaError};

/// Who a stanza is addressed to, as routing sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The server's domain.
    Server,
    /// The sender's own bare JID, or no `to` at all (RFC 6120 §10.3.3).
    Own,
    /// Another local account's bare JID.
    Other,
    /// A full JID in a served domain (the sender's own resources included).
    Resource,
    /// A domain this server does not serve.
    Remote,
    /// A JID at a connected-or-not XEP-0114 component's domain.
    Component,
}

/// Every target of an account's JID, bare or full.
pub(crate) const ANY_LOCAL: &[Target] =
    &[Target::Server, Target::Own, Target::Other, Target::Resource];
pub(crate) const ANY: &[Target] = &[
    Target::Server,
    Target::Own,
    Target::Other,
    Target::Resource,
    Target::Remote,
];
pub(crate) const REMOTE: &[Target] = &[Target::Remote];
pub(crate) const COMPONENT: &[Target] = &[Target::Component];
/// What the server answers itself (IQs to a bare JID, RFC 6121 §8.5.2.1.3).
pub(crate) const BARE: &[Target] = &[Target::Server, Target::Own, Target::Other];
pub(crate) const SERVER: &[Target] = &[Target::Server];
pub(crate) const OWN: &[Target] = &[Target::Own];
pub(crate) const SERVER_OR_OWN: &[Target] = &[Target::Server, Target::Own];
pub(crate) const ACCOUNTS: &[Target] = &[Target::Own, Target::Other];
pub(crate) const ACCOUNT_JIDS: &[Target] = &[Target::Own, Target::Other, Target::Resource];

/// An IQ handler's successful answer: what must happen before the result (a session
/// edit, roster pushes to every interested resource), the result's payload, and stanzas
/// that must follow the result to the requester (RFC 6121 §2.6.3 interim roster pushes).
#[derive(Debug, Default)]
pub(crate) struct Answer {
    pub before: Effects,
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
            ..Self::default()
        }
    }

    /// An empty result after `effects`.
    pub(crate) fn after(before: Effects) -> Self {
        Self {
            before,
            ..Self::default()
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

pub(crate) type Decided<'a> = Pin<Box<dyn Future<Output = Effects> + Send + 'a>>;
/// A table row's handler: reads what it needs and returns what must happen.
pub(crate) type Handler = for<'a> fn(&'a Router, &'a Stanza) -> Decided<'a>;
