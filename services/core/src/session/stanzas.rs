//! Stanzas from an established session (RFC 6120 §8): validated, stamped with the
//! session's full JID (§8.1.2.1) and handed to the router.

use super::{Output, Session};
use crate::error::{StanzaCondition, StreamCondition};
use crate::jid::Jid;
use crate::ns;
use crate::stanza::{Stanza, StanzaKind};
use crate::xml::Element;

impl Session {
    pub(super) fn on_stanza(&mut self, mut el: Element) {
        if StanzaKind::of(&el).is_none() {
            if el.is("error", ns::STREAMS) {
                return self.close(None);
            }
            if el.ns() == ns::CSI {
                return self.on_csi(&el);
            }
            if el.ns() == ns::SM {
                return self.on_sm(&el);
            }
            return self.stream_error(StreamCondition::UnsupportedStanzaType, None);
        }
        // XEP-0198 §4: every stanza counts as handled once this returns: it was routed
        // (acknowledged by the router before the driver writes what follows it), answered
        // with an error, or taken as the answer to our own ping.
        self.handled_one();
        if self.is_ping_answer(&el) {
            return;
        }
        let Some(jid) = self.jid.clone() else {
            return self.stream_error(StreamCondition::NotAuthorized, None);
        };
        // §8.1.2.1: a `from` naming anyone but this session (or its account) is forged.
        if let Some(from) = el.attr("from") {
            let claimed = Jid::parse(from).ok();
            if claimed
                .as_ref()
                .is_none_or(|c| *c != jid && *c != jid.bare())
            {
                return self.stream_error(StreamCondition::InvalidFrom, None);
            }
        }
        el.set_attr("from", jid.to_string());
        let bad_to = el.attr("to").is_some_and(|to| Jid::parse(to).is_err());
        if bad_to {
            // Answer from our own domain since the address cannot be echoed as a JID.
            el.remove_attr("to");
            if let Some(stanza) = Stanza::from_element(el) {
                self.stanza_error(&stanza, StanzaCondition::JidMalformed);
            }
            return;
        }
        let Some(stanza) = Stanza::from_element(el) else {
            return self.stream_error(StreamCondition::InternalServerError, None);
        };
        if stanza.kind == StanzaKind::Iq && !valid_iq(&stanza) {
            return self.stanza_error(&stanza, StanzaCondition::BadRequest);
        }
        if self.is_session_request(&stanza) {
            // RFC 6121 Appendix E (RFC 3921 §3): the legacy session request, offered as
            // optional, still gets its empty result; clients such as strophe.js send it.
            let result = stanza.result(None);
            return self.send_stanza(crate::routed::Routed::Tree(std::sync::Arc::new(result)));
        }
        let count = self.resumable_sm().map(|sm| sm.handled);
        self.out.push(Output::Route(stanza, count));
    }

    /// An IQ set of `urn:ietf:params:xml:ns:xmpp-session` to the server (or to no one).
    fn is_session_request(&self, stanza: &Stanza) -> bool {
        let to_server = stanza
            .to
            .as_ref()
            .is_none_or(|to| to.local().is_none() && to.is_bare() && to.domain() == self.domain);
        stanza.kind == StanzaKind::Iq
            && stanza.type_attr() == Some("set")
            && stanza
                .payload()
                .is_some_and(|p| p.is("session", ns::SESSION))
            && to_server
    }
}

/// RFC 6120 §8.2.3: an IQ has an id and a known type; get/set carry exactly one payload,
/// result at most one, error its `<error/>`.
fn valid_iq(stanza: &Stanza) -> bool {
    let payloads = stanza.element().children().count();
    stanza.id().is_some_and(|id| !id.is_empty())
        && match stanza.type_attr() {
            Some("get" | "set") => payloads == 1,
            Some("result") => payloads <= 1,
            Some("error") => true,
            _ => false,
        }
}
