//! XEP-0114 external components, the server's side: a sans-IO state machine per
//! component connection, driven like [`crate::session::Session`].
//!
//! - §3.1: the component opens `<stream:stream xmlns='jabber:component:accept'
//!   to='push.example.org'>`; a `to` that is not a configured component domain is
//!   `host-unknown`, another namespace `invalid-namespace`. The server answers with its
//!   header, `from` the component's domain and a stream id (no features: these streams
//!   have no version).
//! - §3.2: the component proves the shared secret with `<handshake>` holding the
//!   lower-case hex SHA-1 of the stream id and the secret; the server compares it in
//!   constant time and answers `<handshake/>` once the domain is bound, or closes the
//!   stream with `not-authorized`. Nothing else is accepted before that.
//! - §3.3: afterwards the component sends stanzas in `jabber:component:accept`. Each must
//!   name a `from` in its domain (any local part or resource) and a `to`: otherwise the
//!   stream ends with `invalid-from` or `improper-addressing` (RFC 6120 §4.9.3). Inside the
//!   server they are `jabber:client` stanzas like any other; stanzas for the component are
//!   written back in its namespace.

use crate::error::StreamCondition;
use crate::jid::Jid;
use crate::routed::Routed;
use crate::stanza::Stanza;
use crate::xml::{escape_attr, Element, Frame, Framer, Limits, StreamHeader};
use crate::{ns, StanzaKind};
use sha1::{Digest, Sha1};
use std::sync::Arc;

/// The namespace of component streams (XEP-0114 §3).
pub const ACCEPT: &str = "jabber:component:accept";

/// The components a listener accepts.
#[derive(Debug, Clone, Default)]
pub struct ComponentConfig {
    /// Each component's domain and shared secret.
    pub secrets: Vec<(String, String)>,
    pub limits: Limits,
}

#[derive(Debug)]
pub enum Input<'a> {
    Bytes(&'a [u8]),
    /// Outcome of [`Output::Bind`].
    Bound(bool),
    /// A stanza routed to the component.
    Deliver(Routed),
    Terminate(StreamCondition),
    PeerClosed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Send(String),
    /// The component proved its secret: register `domain` as bound to this connection.
    Bind {
        domain: Jid,
    },
    Route(Stanza),
    /// The stream is being ended with this error (for metrics).
    StreamError(StreamCondition),
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitHeader,
    AwaitHandshake,
    AwaitBind,
    Established,
    Closed,
}

#[derive(Debug)]
pub struct Component {
    config: Arc<ComponentConfig>,
    framer: Framer,
    phase: Phase,
    /// The domain the header named, once accepted.
    domain: Option<Jid>,
    stream_id: String,
    header_sent: bool,
    out: Vec<Output>,
}

impl Component {
    pub fn new(config: Arc<ComponentConfig>) -> Self {
        Self {
            framer: Framer::unauthenticated(config.limits),
            config,
            phase: Phase::AwaitHeader,
            domain: None,
            stream_id: crate::token::token(16),
            header_sent: false,
            out: Vec::new(),
        }
    }

    /// The component's domain, once it is bound.
    pub fn domain(&self) -> Option<&Jid> {
        self.domain
            .as_ref()
            .filter(|_| self.phase == Phase::Established)
    }

    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    pub fn is_established(&self) -> bool {
        self.phase == Phase::Established
    }

    /// Whether the driver should read now (not while the bind is under way).
    pub fn wants_bytes(&self) -> bool {
        matches!(
            self.phase,
            Phase::AwaitHeader | Phase::AwaitHandshake | Phase::Established
        )
    }

    pub fn handle(&mut self, input: Input<'_>) -> Vec<Output> {
        match input {
            Input::Bytes(bytes) => {
                if self.wants_bytes() {
                    self.framer.push(bytes);
                }
            }
            Input::Bound(true) if self.phase == Phase::AwaitBind => {
                self.phase = Phase::Established;
                self.framer.set_authenticated();
                self.send(format!("<handshake xmlns='{ACCEPT}'/>"));
            }
            Input::Bound(_) => self.error(StreamCondition::InternalServerError, None),
            Input::Deliver(stanza) => {
                if self.phase == Phase::Established {
                    let el = stanza.to_element().ok();
                    if let Some(el) = el.map(|e| e.moved_namespace(ns::CLIENT, ACCEPT)) {
                        self.send(el.to_xml(ACCEPT));
                    }
                }
            }
            Input::Terminate(condition) => self.error(condition, None),
            Input::PeerClosed => {
                if self.phase != Phase::Closed {
                    self.phase = Phase::Closed;
                    self.out.push(Output::Close);
                }
            }
        }
        self.pump();
        std::mem::take(&mut self.out)
    }

    fn pump(&mut self) {
        while self.wants_bytes() {
            match self.framer.next_frame() {
                Ok(Some(Frame::Open(header))) if self.phase == Phase::AwaitHeader => {
                    self.on_header(header)
                }
                Ok(Some(Frame::Open(_))) => self.error(
                    StreamCondition::UnsupportedStanzaType,
                    Some("unexpected stream header"),
                ),
                Ok(Some(Frame::Close)) => self.close(None),
                Ok(Some(Frame::Whitespace)) => {}
                Ok(Some(Frame::Stanza(el, _))) => self.on_element(el),
                Ok(None) => break,
                Err(e) => {
                    let text = e.to_string();
                    self.error(e.condition(), Some(&text));
                }
            }
        }
    }

    fn send(&mut self, xml: String) {
        self.out.push(Output::Send(xml));
    }

    fn send_header(&mut self, from: Option<&str>) {
        let from = from
            .map(|f| format!(" from='{}'", escape_attr(f)))
            .unwrap_or_default();
        let header = format!(
            "<?xml version='1.0'?><stream:stream xmlns='{ACCEPT}' xmlns:stream='{}' id='{}'{from}>",
            ns::STREAMS,
            self.stream_id
        );
        self.send(header);
        self.header_sent = true;
    }

    fn on_header(&mut self, header: StreamHeader) {
        let el = &header.element;
        if !el.is("stream", ns::STREAMS) || header.content_ns.as_deref() != Some(ACCEPT) {
            return self.error(StreamCondition::InvalidNamespace, None);
        }
        let to = el.attr("to").and_then(|to| Jid::parse(to).ok());
        let known = to.filter(|to| {
            to.local().is_none()
                && to.is_bare()
                && self.config.secrets.iter().any(|(d, _)| d == to.domain())
        });
        let Some(domain) = known else {
            return self.error(StreamCondition::HostUnknown, None);
        };
        self.send_header(Some(domain.domain()));
        self.domain = Some(domain);
        self.phase = Phase::AwaitHandshake;
    }

    fn on_element(&mut self, el: Element) {
        match self.phase {
            Phase::AwaitHandshake if el.is("handshake", ACCEPT) => self.on_handshake(&el),
            Phase::Established => self.on_stanza(el),
            _ => self.error(StreamCondition::NotAuthorized, None),
        }
    }

    /// §3.2: hex(SHA-1(stream id + secret)), compared in constant time.
    fn on_handshake(&mut self, el: &Element) {
        let Some(domain) = self.domain.clone() else {
            return self.error(StreamCondition::NotAuthorized, None);
        };
        let secret = self
            .config
            .secrets
            .iter()
            .find(|(d, _)| d == domain.domain())
            .map(|(_, s)| s.as_str())
            .unwrap_or_default();
        let expected = hex(&Sha1::digest(format!("{}{secret}", self.stream_id)));
        let given = el.text().trim().to_ascii_lowercase();
        if !crate::sasl::ct_eq(given.as_bytes(), expected.as_bytes()) {
            return self.error(StreamCondition::NotAuthorized, Some("handshake mismatch"));
        }
        self.phase = Phase::AwaitBind;
        self.out.push(Output::Bind { domain });
    }

    /// §3.3: the component's stanza, checked and made a `jabber:client` stanza.
    fn on_stanza(&mut self, el: Element) {
        let el = el.moved_namespace(ACCEPT, ns::CLIENT);
        if StanzaKind::of(&el).is_none() {
            return self.error(StreamCondition::UnsupportedStanzaType, None);
        }
        let ours = self.domain.as_ref().map(Jid::domain);
        let from = el.attr("from").and_then(|f| Jid::parse(f).ok());
        if from.is_none_or(|f| Some(f.domain()) != ours) {
            return self.error(StreamCondition::InvalidFrom, None);
        }
        if el.attr("to").and_then(|t| Jid::parse(t).ok()).is_none() {
            return self.error(StreamCondition::ImproperAddressing, None);
        }
        match Stanza::from_element(el) {
            Some(stanza) => self.out.push(Output::Route(stanza)),
            None => self.error(StreamCondition::InvalidFrom, None),
        }
    }

    /// Ends the stream with an error, opening it first if the header was not sent.
    fn error(&mut self, condition: StreamCondition, text: Option<&str>) {
        if self.phase == Phase::Closed {
            return;
        }
        if !self.header_sent {
            self.send_header(None);
        }
        self.out.push(Output::StreamError(condition));
        self.close(Some(condition.to_xml(text)));
    }

    fn close(&mut self, error: Option<String>) {
        if self.phase == Phase::Closed {
            return;
        }
        if let Some(error) = error {
            self.send(error);
        }
        self.send("</stream:stream>".into());
        self.out.push(Output::Close);
        self.phase = Phase::Closed;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
