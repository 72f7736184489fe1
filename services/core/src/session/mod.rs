//! The client-to-server session state machine (RFC 6120 §4–§8).
//!
//! One [`Session`] per connection. The driver feeds [`Input`]s to [`Session::handle`] and
//! carries out the returned [`Output`]s; nothing here touches a socket, a clock or storage.
//! Lifecycle: `AwaitHeader` → (STARTTLS → `AwaitTls` → `AwaitHeader`) → SASL (`Authenticating`,
//! possibly `AwaitCredentials` and `AwaitVerify`) → `AwaitHeader` → `Negotiating` (bind, `AwaitBind`) →
//! `Established` → `Closed`. Every invalid input ends in exactly one RFC 6120 error.
//!
//! While the session waits for the driver (salts, proof check, bind result, TLS handshake) it
//! stops consuming frames, so a pipelining client's next stanza is processed only once the
//! session is ready for it; [`Session::wants_bytes`] tells the driver to stop reading
//! meanwhile, which keeps buffering bounded.

mod csi;
mod framing;
mod io;
mod negotiate;
mod resume;
mod sasl;
mod sasl2;
mod sm;
mod stanzas;

pub use framing::{Framing, Refused};
pub use io::{Input, Lookup, Output, Verification};
pub use resume::SmState;
pub use sm::{is_ack, Resumable, ResumeRefused, SmPolicy};

use crate::error::{StanzaCondition, StreamCondition};
use crate::jid::Jid;
use crate::ns;
use crate::routed::Routed;
use crate::sasl::{ChannelBindings, Decoy, Exchange, Mechanism};
use crate::stanza::Stanza;
use crate::xml::{escape_attr, Frame, Framer, Limits};

/// Policy for one listener's sessions.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Domains served; the first is used when a client names none.
    pub domains: Vec<String>,
    /// STARTTLS can be offered (a certificate is configured).
    pub starttls: bool,
    /// Authentication requires TLS (RFC 6120 §5.3.1 "mandatory-to-negotiate").
    pub tls_required: bool,
    /// Mechanisms enabled, in preference order.
    pub mechanisms: Vec<Mechanism>,
    /// What unknown accounts look like (salt, iterations, PLAIN's hashing cost), so they
    /// cannot be told from real ones. Its secret must be the same on every edge.
    pub decoy: Decoy,
    /// SASL attempts allowed per connection before the stream is closed (RFC 6120 §6.4.5).
    pub max_auth_attempts: u32,
    pub limits: Limits,
    /// XEP-0198 stream management.
    pub sm: SmPolicy,
    /// An XML stream over TCP, or RFC 7395 over WebSocket (one message per element).
    pub framing: Framing,
    /// XEP-0484 FAST tokens offered (inside SASL2).
    pub fast: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            domains: vec!["localhost".into()],
            starttls: true,
            tls_required: true,
            mechanisms: Mechanism::ALL.to_vec(),
            decoy: Decoy::random(4096),
            max_auth_attempts: 3,
            limits: Limits::default(),
            sm: SmPolicy::default(),
            framing: Framing::Stream,
            fast: true,
        }
    }
}

#[derive(Debug)]
enum Phase {
    AwaitHeader,
    Negotiating,
    AwaitTls,
    /// Boxed, like every state only a login passes through, so an established session
    /// does not carry its size.
    Authenticating(Box<Exchange>),
    AwaitCredentials(Box<Exchange>),
    AwaitVerify(Box<Exchange>),
    /// The bind asked for by the IQ with this id, or by XEP-0386 Bind 2 (`None`).
    AwaitBind {
        iq_id: Option<String>,
        jid: Jid,
    },
    /// XEP-0484: waiting for the token asked for.
    AwaitToken,
    Established,
    /// XEP-0198: waiting for the driver to find the session named by `<resume/>`.
    AwaitResume,
    /// XEP-0198: the connection is gone; stanzas are queued until the session is
    /// resumed or ends.
    Detached,
    Closed,
}

/// One client connection's protocol state.
#[derive(Debug)]
pub struct Session {
    config: std::sync::Arc<SessionConfig>,
    phase: Phase,
    framer: Framer,
    /// Channel bindings once TLS is up (direct TLS or after STARTTLS).
    tls: Option<ChannelBindings>,
    /// The stream's domain, chosen by the client's header.
    domain: String,
    /// The authenticated account's localpart.
    user: Option<String>,
    jid: Option<Jid>,
    header_sent: bool,
    auth_failures: u32,
    /// XEP-0352: presence held while the client says it is inactive (`None`: active).
    inactive: Option<csi::Held>,
    /// XEP-0198 state, once enabled (boxed: most of a session's life it is absent).
    sm: Option<Box<sm::Sm>>,
    /// XEP-0388: the `<authenticate/>` request being served (boxed: login only).
    sasl2: Option<Box<sasl2::Sasl2>>,
    out: Vec<Output>,
}

impl Session {
    /// A new session; `tls` is set for direct-TLS connections (XEP-0368).
    pub fn new(config: std::sync::Arc<SessionConfig>, tls: Option<ChannelBindings>) -> Self {
        let domain = config.domains.first().cloned().unwrap_or_default();
        Self {
            framer: Framer::unauthenticated(config.limits),
            config,
            phase: Phase::AwaitHeader,
            tls,
            domain,
            user: None,
            jid: None,
            header_sent: false,
            auth_failures: 0,
            inactive: None,
            sm: None,
            sasl2: None,
            out: Vec::new(),
        }
    }

    /// The bound full JID, once bound.
    pub fn jid(&self) -> Option<&Jid> {
        self.jid.as_ref()
    }

    pub fn is_established(&self) -> bool {
        matches!(self.phase, Phase::Established)
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// Whether the session is authenticated and bound, or still negotiating (for the
    /// driver's handshake timeout).
    pub fn in_handshake(&self) -> bool {
        !matches!(
            self.phase,
            Phase::Established | Phase::Detached | Phase::Closed
        )
    }

    /// Whether the credentials this session waits for will be hashed when they arrive: a
    /// PLAIN password is derived with PBKDF2 (milliseconds of CPU at the usual iteration
    /// counts), which a caller on an async runtime runs where it holds up no other
    /// connection.
    pub fn hashes_credentials(&self) -> bool {
        matches!(&self.phase, Phase::AwaitCredentials(e) if e.mechanism() == Mechanism::Plain)
    }

    /// Bytes received and not yet a complete frame (a stream header or stanza begun).
    pub fn buffered_input(&self) -> usize {
        self.framer.buffered()
    }

    /// Whether the driver should read more bytes now.
    pub fn wants_bytes(&self) -> bool {
        matches!(
            self.phase,
            Phase::AwaitHeader | Phase::Negotiating | Phase::Authenticating(_) | Phase::Established
        )
    }

    /// Handles one input and returns what the driver must do, in order.
    pub fn handle(&mut self, input: Input<'_>) -> Vec<Output> {
        match input {
            Input::Bytes(bytes) => {
                if self.wants_bytes() {
                    self.push_bytes(bytes);
                }
            }
            Input::TlsEstablished(cb) => {
                if matches!(self.phase, Phase::AwaitTls) {
                    self.tls = Some(cb);
                    self.phase = Phase::AwaitHeader;
                }
            }
            Input::Credentials(lookup) => self.on_credentials(lookup),
            Input::Verified(verification) => self.on_verified(verification),
            Input::TokenVerified {
                verification,
                rotate,
            } => {
                self.token_rotation(rotate);
                self.on_verified(verification);
            }
            Input::TokenIssued(token) => self.on_token_issued(token),
            Input::Bound(result) => self.on_bound(result),
            Input::Deliver(stanza) => {
                if matches!(self.phase, Phase::Established | Phase::Detached) {
                    self.deliver(stanza);
                }
            }
            Input::ResumeFailed(why) => self.on_resume_failed(why),
            Input::Terminate(condition) => {
                if self.is_detached() {
                    self.phase = Phase::Closed;
                } else {
                    self.stream_error(condition, None);
                }
            }
            Input::PeerClosed => {
                if self.is_established() && self.resumable().is_some() {
                    // XEP-0198 §5: an unfinished stream keeps its session for resumption.
                    self.phase = Phase::Detached;
                    self.out.push(Output::Close);
                } else if !self.is_closed() {
                    self.phase = Phase::Closed;
                    self.out.push(Output::Close);
                }
            }
        }
        self.pump();
        std::mem::take(&mut self.out)
    }

    /// Processes buffered frames while the session is ready for them.
    fn pump(&mut self) {
        while self.wants_bytes() {
            match self.framer.next_frame() {
                Ok(Some(frame)) => self.on_frame(frame),
                Ok(None) => break,
                Err(e) => {
                    let text = format!("{e}");
                    self.stream_error(e.condition(), Some(&text));
                }
            }
        }
    }

    fn on_frame(&mut self, frame: Frame) {
        match (frame, &self.phase) {
            (Frame::Open(header), Phase::AwaitHeader) => self.on_header(header),
            (Frame::Open(_), _) => self.stream_error(
                StreamCondition::UnsupportedStanzaType,
                Some("unexpected stream header"),
            ),
            (Frame::Close, _) => self.close(None),
            (Frame::Whitespace, _) => {}
            (Frame::Stanza(element, _), Phase::Established) => self.on_stanza(element),
            (Frame::Stanza(element, _), _) => self.on_negotiation_element(element),
        }
    }

    /// Over TCP bytes are a stretch of the stream; over WebSocket one whole message.
    fn push_bytes(&mut self, bytes: &[u8]) {
        match self.config.framing {
            Framing::Stream => self.framer.push(bytes),
            Framing::WebSocket => match Framing::inbound(bytes) {
                Ok(stream) => self.framer.push(&stream),
                Err(refused) => self.stream_error(refused.condition, Some(refused.text)),
            },
        }
    }

    fn send(&mut self, xml: String) {
        self.out.push(Output::Send(xml));
    }

    /// A top-level element as written on this stream.
    fn send_el(&mut self, el: &crate::xml::Element) {
        let xml = el.to_xml(self.config.framing.content_ns());
        self.send(xml);
    }

    /// The server's stream header for the current stream.
    fn send_header(&mut self, to: Option<&str>) {
        let id = crate::token::token(16);
        let to = to
            .map(|t| format!(" to='{}'", escape_attr(t)))
            .unwrap_or_default();
        let attrs = format!(
            " id='{id}' from='{}'{to} version='1.0' xml:lang='en'",
            escape_attr(&self.domain)
        );
        self.send(self.config.framing.header(&attrs));
        self.header_sent = true;
    }

    /// Ends the stream with an error (RFC 6120 §4.9.1.1); opens it first when the error
    /// precedes our header (§4.9.1.2).
    fn stream_error(&mut self, condition: StreamCondition, text: Option<&str>) {
        if self.is_closed() {
            return;
        }
        if !self.header_sent {
            self.send_header(None);
        }
        self.out.push(Output::StreamError(condition));
        let error = self.config.framing.stream_element(condition.to_xml(text));
        self.close(Some(error));
    }

    /// A stream error with an application-specific condition element (§4.9.4).
    fn stream_error_with(&mut self, condition: StreamCondition, detail: crate::xml::Element) {
        if self.is_closed() {
            return;
        }
        let xml = condition.to_xml(None);
        let at = xml.rfind("</stream:error>").unwrap_or(xml.len());
        let xml = format!("{}{}{}", &xml[..at], detail.to_xml(ns::STREAMS), &xml[at..]);
        self.out.push(Output::StreamError(condition));
        let error = self.config.framing.stream_element(xml);
        self.close(Some(error));
    }

    /// The authenticated account's bare JID.
    fn account(&self) -> Option<Jid> {
        Jid::bare_from(self.user.as_deref()?, &self.domain).ok()
    }

    fn close(&mut self, error: Option<String>) {
        if self.is_closed() {
            return;
        }
        if let Some(error) = error {
            self.send(error);
        }
        self.send(self.config.framing.close());
        self.out.push(Output::Close);
        self.phase = Phase::Closed;
    }

    /// Answers a stanza with an error (never an error with an error).
    fn stanza_error(&mut self, stanza: &Stanza, condition: StanzaCondition) {
        let error = crate::error::StanzaError::new(condition);
        if let Some(reply) = stanza.error_reply(&error) {
            self.send_stanza(Routed::Tree(std::sync::Arc::new(reply)));
        }
    }
}

#[cfg(test)]
mod framing_tests;
#[cfg(test)]
mod sasl2_tests;
#[cfg(test)]
mod sm_tests;
#[cfg(test)]
mod tests;
