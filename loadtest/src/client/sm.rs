//! The client's half of XEP-0198 stream management (`urn:xmpp:sm:3`), sans-IO: the
//! counters a resumable stream needs and the nonzas that carry them.
//!
//! - `h` (here `received`) counts the stanzas (message, presence, IQ in `jabber:client`;
//!   never nonzas) read since `<enabled/>`, modulo 2^32 (§4 "wrapping"); a `<r/>` from the
//!   server is answered with `<a h='received'/>`.
//! - `sent` counts the stanzas the client wrote since enabling, so the `h` the server
//!   reports (in `<a/>` or `<resumed/>`) can be checked against it.
//! - `<enabled/>` carries the SM-ID and `max` when the stream is resumable; resumption
//!   sends `<resume previd='SM-ID' h='received'/>` on a new authenticated stream.

use switchyard_core::{ns, Element};

/// Stream management state of one client stream (and of the streams resuming it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmClient {
    /// The SM-ID, when the server made the stream resumable.
    pub id: Option<String>,
    /// The server's `max` (seconds a broken stream waits to be resumed), if it gave one.
    pub max_secs: Option<u32>,
    /// Our `h`: stanzas received since enabling, modulo 2^32.
    pub received: u32,
    /// Stanzas we sent since enabling, modulo 2^32.
    pub sent: u32,
    /// The server's last `h` (`<a/>` or `<resumed/>`): our stanzas it handled.
    pub server_handled: u32,
}

/// What one element from the server means to stream management.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A stanza: counted in `h`.
    Stanza,
    /// `<r/>`: send this `<a/>`.
    Request(String),
    /// `<a h='...'/>` from the server (already recorded).
    Ack(u32),
    /// Anything else (not counted).
    Other,
}

/// `<enable xmlns='urn:xmpp:sm:3' resume='true'/>`.
pub fn enable_xml() -> String {
    Element::new("enable", ns::SM)
        .with_attr("resume", "true")
        .to_xml(ns::CLIENT)
}

/// The first child's name of a `<failed/>` (the stanza error condition), or `undefined`.
pub fn failure_condition(el: &Element) -> &str {
    el.children().next().map_or("undefined", |c| c.name())
}

fn is_stanza(el: &Element) -> bool {
    el.ns() == ns::CLIENT && matches!(el.name(), "message" | "presence" | "iq")
}

impl SmClient {
    /// The state `<enabled/>` starts (counters at zero); `Err` names what is wrong with it.
    pub fn enabled(el: &Element) -> Result<Self, String> {
        if !el.is("enabled", ns::SM) {
            return Err(format!("expected-enabled:{}", el.name()));
        }
        let resumable = matches!(el.attr("resume"), Some("true" | "1"));
        let id = el
            .attr("id")
            .filter(|id| resumable && !id.is_empty())
            .map(str::to_owned);
        Ok(Self {
            id,
            max_secs: el.attr("max").and_then(|m| m.parse().ok()),
            ..Self::default()
        })
    }

    /// Counts and classifies one element read after `<enabled/>` (or `<resumed/>`).
    pub fn on_element(&mut self, el: &Element) -> Inbound {
        if is_stanza(el) {
            self.received = self.received.wrapping_add(1);
            return Inbound::Stanza;
        }
        if el.ns() != ns::SM {
            return Inbound::Other;
        }
        match el.name() {
            "r" => Inbound::Request(self.ack_xml()),
            "a" => match el.attr("h").and_then(|h| h.parse::<u32>().ok()) {
                Some(h) => {
                    self.server_handled = h;
                    Inbound::Ack(h)
                }
                None => Inbound::Other,
            },
            _ => Inbound::Other,
        }
    }

    /// Counts `n` stanzas written by the client.
    pub fn count_sent(&mut self, n: u32) {
        self.sent = self.sent.wrapping_add(n);
    }

    /// `<a xmlns='urn:xmpp:sm:3' h='received'/>`.
    pub fn ack_xml(&self) -> String {
        Element::new("a", ns::SM)
            .with_attr("h", self.received.to_string())
            .to_xml(ns::CLIENT)
    }

    /// `<resume xmlns='urn:xmpp:sm:3' previd='SM-ID' h='received'/>`; `None` when the
    /// stream was not resumable.
    pub fn resume_xml(&self) -> Option<String> {
        let id = self.id.as_ref()?;
        Some(
            Element::new("resume", ns::SM)
                .with_attr("previd", id.clone())
                .with_attr("h", self.received.to_string())
                .to_xml(ns::CLIENT),
        )
    }

    /// Applies `<resumed h='...' previd='...'/>`: `Err` when it names another stream or
    /// lacks `h`. The server's `h` is kept in `server_handled` (compare with `sent`).
    pub fn resumed(&mut self, el: &Element) -> Result<(), String> {
        if el.attr("previd") != self.id.as_deref() {
            return Err("resumed-wrong-previd".into());
        }
        let h = el
            .attr("h")
            .and_then(|h| h.parse::<u32>().ok())
            .ok_or("resumed-without-h")?;
        self.server_handled = h;
        Ok(())
    }

    /// Whether the server's `h` covers every stanza we sent (nothing to resend).
    pub fn server_has_all(&self) -> bool {
        self.server_handled == self.sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(xml: &str) -> Element {
        Element::parse(xml).expect("test XML parses")
    }

    #[test]
    fn enabled_gives_the_sm_id_and_max_only_when_resumable() {
        let sm = SmClient::enabled(&el(
            "<enabled xmlns='urn:xmpp:sm:3' id='abc' resume='true' max='300'/>",
        ))
        .unwrap();
        assert_eq!(sm.id.as_deref(), Some("abc"));
        assert_eq!(sm.max_secs, Some(300));
        assert_eq!((sm.received, sm.sent), (0, 0));
        let plain = SmClient::enabled(&el("<enabled xmlns='urn:xmpp:sm:3' id='abc'/>")).unwrap();
        assert_eq!(plain.id, None, "no resume='true': not resumable");
        assert_eq!(plain.resume_xml(), None);
        let wrong = el("<failed xmlns='urn:xmpp:sm:3'/>");
        assert_eq!(
            SmClient::enabled(&wrong).unwrap_err(),
            "expected-enabled:failed"
        );
    }

    #[test]
    fn counts_stanzas_only_and_answers_requests() {
        let mut sm = SmClient::default();
        for xml in [
            "<message xmlns='jabber:client'/>",
            "<presence xmlns='jabber:client'/>",
            "<iq xmlns='jabber:client' type='result' id='x'/>",
        ] {
            assert_eq!(sm.on_element(&el(xml)), Inbound::Stanza);
        }
        assert_eq!(
            sm.on_element(&el("<r xmlns='urn:xmpp:sm:3'/>")),
            Inbound::Request("<a xmlns='urn:xmpp:sm:3' h='3'/>".into())
        );
        assert_eq!(
            sm.on_element(&el("<a xmlns='urn:xmpp:sm:3' h='2'/>")),
            Inbound::Ack(2)
        );
        assert_eq!(sm.server_handled, 2);
        let other = el("<message xmlns='urn:example'/>");
        assert_eq!(sm.on_element(&other), Inbound::Other);
        assert_eq!(
            sm.received, 3,
            "nonzas and foreign elements are not counted"
        );
    }

    #[test]
    fn h_wraps_at_two_to_the_32() {
        let mut sm = SmClient {
            id: Some("s1".into()),
            received: u32::MAX,
            sent: u32::MAX,
            ..SmClient::default()
        };
        sm.on_element(&el("<message xmlns='jabber:client'/>"));
        assert_eq!(sm.received, 0);
        assert_eq!(sm.ack_xml(), "<a xmlns='urn:xmpp:sm:3' h='0'/>");
        sm.on_element(&el("<presence xmlns='jabber:client'/>"));
        assert_eq!(
            sm.resume_xml().unwrap(),
            "<resume xmlns='urn:xmpp:sm:3' previd='s1' h='1'/>"
        );
        sm.count_sent(2);
        assert_eq!(sm.sent, 1);
    }

    #[test]
    fn resumed_is_checked_against_the_stream() {
        let mut sm = SmClient {
            id: Some("s1".into()),
            sent: 2,
            ..SmClient::default()
        };
        let other = el("<resumed xmlns='urn:xmpp:sm:3' previd='s2' h='2'/>");
        assert_eq!(sm.resumed(&other).unwrap_err(), "resumed-wrong-previd");
        let no_h = el("<resumed xmlns='urn:xmpp:sm:3' previd='s1'/>");
        assert_eq!(sm.resumed(&no_h).unwrap_err(), "resumed-without-h");
        sm.resumed(&el("<resumed xmlns='urn:xmpp:sm:3' previd='s1' h='1'/>"))
            .unwrap();
        assert!(!sm.server_has_all(), "one stanza the server never handled");
        sm.resumed(&el("<resumed xmlns='urn:xmpp:sm:3' previd='s1' h='2'/>"))
            .unwrap();
        assert!(sm.server_has_all());
    }
}
