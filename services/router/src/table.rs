//! The one dispatch table: which feature handles a stanza, keyed by what routing depends
//! on (kind, type, payload namespace for IQs, and [`Target`]). The first matching row
//! wins; a stanza no row matches has no effect. The feature lists of disco#info are
//! derived from the IQ rows.
//!
//! Adding a feature is adding rows and a module: the handler types live in
//! [`crate::handler`], so handler modules never import this table.

use crate::effects::Effects;
use crate::handler::{
    Handler, Outcome, Target, ACCOUNTS, ACCOUNT_JIDS, ANY, ANY_LOCAL, BARE, COMPONENT, OWN, REMOTE,
    SERVER, SERVER_OR_OWN,
};
use crate::router::Router;
use switchyard_core::{ns, Stanza, StanzaCondition, StanzaKind};

/// Which values of the `type` attribute a row takes (`None`: no attribute).
#[derive(Debug)]
pub(crate) enum Types {
    Any,
    Of(&'static [Option<&'static str>]),
}

pub(crate) struct Row {
    pub kind: StanzaKind,
    pub types: Types,
    /// The IQ payload's namespace; `None` takes any.
    pub ns: Option<&'static str>,
    pub targets: &'static [Target],
    pub handler: Handler,
}

impl Row {
    fn takes(&self, stanza: &Stanza, target: Target) -> bool {
        let typed = match self.types {
            Types::Any => true,
            Types::Of(types) => types.contains(&stanza.type_attr()),
        };
        let payload_ns = stanza.payload().map(|p| p.ns());
        self.kind == stanza.kind
            && typed
            && self.targets.contains(&target)
            && self.ns.is_none_or(|ns| payload_ns == Some(ns))
    }
}

/// A row whose handler returns effects.
macro_rules! row {
    ($kind:ident, $types:expr, $targets:expr, $handler:path) => {
        Row {
            kind: StanzaKind::$kind,
            types: $types,
            ns: None,
            targets: $targets,
            handler: |r, s| Box::pin($handler(r, s)),
        }
    };
}

/// An IQ request the server answers (RFC 6120 §8.2.3) with a handler's [`Outcome`].
macro_rules! iq {
    ($type:literal, $ns:expr, $targets:expr, $handler:path) => {
        Row {
            kind: StanzaKind::Iq,
            types: Types::Of(&[Some($type)]),
            ns: Some($ns),
            targets: $targets,
            handler: |r, s| Box::pin(crate::iq::answer(r, s, $handler(r, s))),
        }
    };
}

const AVAILABILITY: Types = Types::Of(&[None, Some("unavailable")]);
const SUBSCRIPTIONS: Types = Types::Of(&[
    Some("subscribe"),
    Some("subscribed"),
    Some("unsubscribe"),
    Some("unsubscribed"),
]);
const REQUESTS: Types = Types::Of(&[Some("get"), Some("set")]);
const RESPONSES: Types = Types::Of(&[Some("result"), Some("error")]);

pub(crate) const TABLE: &[Row] = &[
    // XEP-0114: whatever is addressed to a component's domain is the component's.
    row!(Message, Types::Any, COMPONENT, crate::component::deliver),
    row!(Presence, Types::Any, COMPONENT, crate::component::deliver),
    row!(Iq, Types::Any, COMPONENT, crate::component::deliver),
    // RFC 6121 §8.5 messages; RFC 6120 §10.3.1 the server may ignore them.
    row!(Message, Types::Any, ACCOUNT_JIDS, crate::message::route),
    row!(Message, Types::Any, SERVER, nothing),
    row!(Message, Types::Any, REMOTE, remote),
    // RFC 6121 §4 presence, §3 subscriptions.
    row!(
        Presence,
        AVAILABILITY,
        ANY_LOCAL,
        crate::presence::availability
    ),
    row!(Presence, AVAILABILITY, REMOTE, remote),
    row!(
        Presence,
        Types::Of(&[Some("probe")]),
        ANY_LOCAL,
        crate::presence::probe
    ),
    row!(
        Presence,
        Types::Of(&[Some("error")]),
        ANY_LOCAL,
        crate::presence::error
    ),
    row!(
        Presence,
        Types::Of(&[Some("probe"), Some("error")]),
        REMOTE,
        nothing
    ),
    row!(
        Presence,
        SUBSCRIPTIONS,
        ANY_LOCAL,
        crate::subscription::route
    ),
    row!(Presence, SUBSCRIPTIONS, REMOTE, remote),
    row!(Presence, Types::Any, ANY, bad_request), // §4.7.1: an unknown type
    // IQs the server answers (RFC 6121 §8.5.2.1.3), one row per feature.
    iq!("get", ns::PING, BARE, crate::ping::handle),
    iq!("get", ns::DISCO_INFO, SERVER, server_info),
    iq!("get", ns::DISCO_INFO, ACCOUNTS, account_info),
    iq!("get", ns::DISCO_ITEMS, BARE, crate::disco::items),
    iq!("get", ns::VERSION, SERVER, crate::version::handle),
    iq!("get", ns::ROSTER, ACCOUNTS, crate::roster::get),
    iq!("set", ns::ROSTER, ACCOUNTS, crate::roster::set),
    iq!("get", ns::BLOCKING, OWN, crate::blocking::list),
    iq!("set", ns::BLOCKING, OWN, crate::blocking::change),
    iq!("set", ns::CARBONS, SERVER_OR_OWN, crate::carbons::toggle),
    iq!("get", ns::VCARD, ACCOUNTS, crate::vcard::get),
    iq!("set", ns::VCARD, OWN, crate::vcard::set),
    iq!("get", ns::PRIVATE, OWN, crate::private::get),
    iq!("set", ns::PRIVATE, OWN, crate::private::set),
    iq!("get", ns::LAST, BARE, crate::last::get),
    iq!("set", ns::PUSH, OWN, crate::push::change),
    // XEP-0357 §7: an app server's error to a notification disables its registration.
    row!(
        Iq,
        Types::Of(&[Some("error")]),
        ACCOUNTS,
        crate::push::answered
    ),
    // Other IQs: RFC 6120 §8.4 and RFC 6121 §8.5.
    row!(Iq, REQUESTS, BARE, unhandled),
    row!(Iq, RESPONSES, BARE, nothing),
    row!(Iq, Types::Any, &[Target::Resource], crate::iq::to_resource),
    row!(Iq, Types::Any, REMOTE, remote),
];

/// What handling `stanza` does: the first matching row's effects.
pub(crate) async fn decide(router: &Router, stanza: &Stanza, target: Target) -> Effects {
    match TABLE.iter().find(|row| row.takes(stanza, target)) {
        Some(row) => (row.handler)(router, stanza).await,
        None => Effects::none(),
    }
}

/// Features served at a target, for disco#info; XEP-0092 only when the version is exposed.
pub(crate) fn features(target: Target, expose_version: bool) -> Vec<&'static str> {
    let mut features: Vec<&str> = TABLE
        .iter()
        .filter(|row| row.kind == StanzaKind::Iq && row.targets.contains(&target))
        .filter_map(|row| row.ns)
        .filter(|f| *f != ns::VERSION || expose_version)
        .collect();
    features.sort_unstable();
    features.dedup();
    features
}

async fn nothing(_: &Router, _: &Stanza) -> Effects {
    Effects::none()
}

/// RFC 6120 §10.4: no server-to-server link, so another domain is unreachable.
async fn remote(_: &Router, stanza: &Stanza) -> Effects {
    Effects::bounced(stanza, StanzaCondition::RemoteServerNotFound)
}

async fn bad_request(_: &Router, stanza: &Stanza) -> Effects {
    Effects::bounced(stanza, StanzaCondition::BadRequest)
}

/// RFC 6120 §8.4: a request nothing here handles.
async fn unhandled(router: &Router, stanza: &Stanza) -> Effects {
    let refused = async {
        Err(switchyard_core::StanzaError::new(
            StanzaCondition::ServiceUnavailable,
        ))
    };
    crate::iq::answer(router, stanza, refused).await
}

async fn server_info(router: &Router, stanza: &Stanza) -> Outcome {
    let features = features(Target::Server, router.config.info.expose_version);
    crate::disco::server_info(router, stanza, features).await
}

async fn account_info(router: &Router, stanza: &Stanza) -> Outcome {
    // The account itself also sees what only its owner may use (XEP-0357 §5).
    let own = stanza.effective_to() == stanza.from.bare();
    let target = if own { Target::Own } else { Target::Other };
    crate::disco::account_info(router, stanza, features(target, false)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_iq_request_to_a_bare_jid_has_a_row() {
        for row in TABLE
            .iter()
            .filter(|r| r.kind == StanzaKind::Iq && r.ns.is_some())
        {
            assert!(
                row.targets.iter().all(|t| BARE.contains(t)),
                "IQ feature rows serve bare JIDs only (RFC 6121 §8.5.2.1.3)"
            );
        }
    }

    #[test]
    fn features_come_from_the_rows_serving_the_target() {
        let server = features(Target::Server, true);
        assert!(server.contains(&ns::VERSION) && server.contains(&ns::PING));
        assert!(!features(Target::Server, false).contains(&ns::VERSION));
        let account = features(Target::Other, false);
        assert!(account.contains(&ns::VCARD) && !account.contains(&ns::BLOCKING));
    }
}
