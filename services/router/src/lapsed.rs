//! XEP-0198: what a session ended with that its client never acknowledged.
//!
//! A session with stream management hands back, when it ends (closed, timed out while
//! detached, or over its bound), every stanza it sent or queued that the client did not
//! acknowledge. Nothing it held is dropped silently (XEP-0198 §5 leaves the handling to
//! the server; the rule is "never dropped"):
//!
//! - a message the recipient would have kept goes to offline storage (XEP-0160, with its
//!   `<delay/>`, under the offline rules: no-store hints and bare chat states excepted),
//!   and reaches the account's next available resource;
//! - an IQ request from someone else is answered `service-unavailable` so its sender
//!   does not wait for an answer that cannot come (RFC 6120 §8.2.3);
//! - the rest is transient and has no one to tell: presence (the contact's state is
//!   probed again at the next login), carbon copies (the original reached another
//!   resource), groupchat, headline and error messages, IQ results, and the server's own
//!   requests.
//!
//! The edge is trusted with this as it is with binding its sessions: the stanzas must be
//! addressed to the session's own account, so an edge can only hand back mail for the
//! users it serves.

use crate::effects::{Effect, Effects};
use crate::router::Router;
use switchyard_core::{ns, Jid, Stanza, StanzaCondition, StanzaKind};

impl Router {
    /// A session ended: unbound (with its unavailable presence), then what its client
    /// never acknowledged stored or answered as above.
    pub async fn session_lapsed(&self, jid: &Jid, conn: u64, unacked: Vec<Stanza>) {
        self.unbind(jid, conn).await;
        self.take_unacked(jid, unacked).await;
    }

    /// What session `jid` ended with unacknowledged, stored or answered as above.
    pub async fn take_unacked(&self, jid: &Jid, unacked: Vec<Stanza>) {
        if unacked.is_empty() {
            return;
        }
        let account = jid.bare();
        let mut fx = Effects::none();
        let mut stored = 0u64;
        for stanza in unacked {
            if stanza.to.as_ref().map(Jid::bare) != Some(account.clone()) {
                tracing::warn!(%jid, "an unacknowledged stanza not addressed to its session, ignored");
                continue;
            }
            match disposal(&stanza, &account) {
                Disposal::Store => {
                    stored += 1;
                    fx.push(Effect::StoreOffline {
                        account: account.clone(),
                        stanza,
                    });
                }
                Disposal::Refuse => fx.bounce(
                    &stanza,
                    switchyard_core::StanzaError::new(StanzaCondition::ServiceUnavailable),
                ),
                Disposal::Drop => {}
            }
        }
        switchyard_telemetry::ROUTER_UNACKED_STORED.inc_by(stored);
        self.apply(fx).await;
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Disposal {
    Store,
    Refuse,
    Drop,
}

fn disposal(stanza: &Stanza, account: &Jid) -> Disposal {
    let el = stanza.element();
    match stanza.kind {
        StanzaKind::Message => {
            let transient = matches!(stanza.type_attr(), Some("groupchat" | "headline" | "error"));
            let carbon = el.children().any(|c| c.ns() == ns::CARBONS);
            if transient || carbon {
                Disposal::Drop
            } else {
                Disposal::Store
            }
        }
        StanzaKind::Iq => {
            let request = matches!(stanza.type_attr(), Some("get" | "set"));
            let from_server = stanza.from.local().is_none() || stanza.from == *account;
            if request && !from_server {
                Disposal::Refuse
            } else {
                Disposal::Drop
            }
        }
        StanzaKind::Presence => Disposal::Drop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stanza(xml: &str) -> Stanza {
        Stanza::from_element(switchyard_core::Element::parse(xml).expect("xml")).expect("stanza")
    }

    #[test]
    fn messages_are_kept_and_requests_answered_the_rest_dropped() {
        let me: Jid = "juliet@localhost".parse().expect("jid");
        let cases = [
            ("<message xmlns='jabber:client' from='romeo@localhost/a' to='juliet@localhost/b' type='chat'><body>x</body></message>", Disposal::Store),
            ("<message xmlns='jabber:client' from='romeo@localhost/a' to='juliet@localhost'><body>x</body></message>", Disposal::Store),
            ("<message xmlns='jabber:client' from='room@muc.localhost/n' to='juliet@localhost/b' type='groupchat'><body>x</body></message>", Disposal::Drop),
            ("<message xmlns='jabber:client' from='romeo@localhost/a' to='juliet@localhost/b' type='headline'><body>x</body></message>", Disposal::Drop),
            ("<message xmlns='jabber:client' from='romeo@localhost/a' to='juliet@localhost/b' type='error'><body>x</body></message>", Disposal::Drop),
            ("<message xmlns='jabber:client' from='juliet@localhost' to='juliet@localhost/b'><received xmlns='urn:xmpp:carbons:2'/></message>", Disposal::Drop),
            ("<iq xmlns='jabber:client' from='romeo@localhost/a' to='juliet@localhost/b' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>", Disposal::Refuse),
            ("<iq xmlns='jabber:client' from='juliet@localhost' to='juliet@localhost/b' type='set' id='2'><query xmlns='jabber:iq:roster'/></iq>", Disposal::Drop),
            ("<iq xmlns='jabber:client' from='localhost' to='juliet@localhost/b' type='get' id='3'><ping xmlns='urn:xmpp:ping'/></iq>", Disposal::Drop),
            ("<iq xmlns='jabber:client' from='romeo@localhost/a' to='juliet@localhost/b' type='result' id='4'/>", Disposal::Drop),
            ("<presence xmlns='jabber:client' from='romeo@localhost/a' to='juliet@localhost/b'/>", Disposal::Drop),
        ];
        for (xml, expected) in cases {
            assert_eq!(disposal(&stanza(xml), &me), expected, "{xml}");
        }
    }
}
