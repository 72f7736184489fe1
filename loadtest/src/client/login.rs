//! The client's login as a sans-IO state machine: frames in, actions out.
//!
//! Phases follow RFC 6120: stream header → features → (STARTTLS → header → features) →
//! SASL (PLAIN, or SCRAM with the server's signature checked) → restart → bind → roster
//! get and initial presence (RFC 6121 §2.2, §4.2) → ready once the roster result is in.
//! With stream management (XEP-0198) `<enable resume='true'/>` goes out with the roster
//! get and presence, and ready also waits for `<enabled/>`; every stanza read after it is
//! counted and the server's `<r/>` answered (see [`super::sm`]). A login that resumes a
//! broken stream sends `<resume/>` instead of binding and is ready at `<resumed/>`
//! (`<failed/>` is the error `resume-failed:CONDITION`).
//! The driver in `conn.rs` does the I/O; every failure maps to one error kind string.

use super::sm::{self, Inbound, SmClient};
use crate::cli::Mechanism;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use switchyard_core::ns;
use switchyard_core::sasl::{HashAlg, SaltedPassword, ScramClient};
use switchyard_core::{Element, Frame};

/// What the driver must do next, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send(String),
    /// Upgrade the socket to TLS, start a fresh framer, then call [`Login::tls_up`].
    StartTls,
    /// SASL succeeded: keep buffered bytes but restart stream parsing.
    RestartStream,
    /// Logged in, roster fetched, presence sent.
    Ready,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Header,
    Features,
    Proceed,
    Sasl,
    Bind,
    Roster,
    /// `<resume/>` sent, waiting for `<resumed/>` or `<failed/>`.
    Resume,
    Ready,
}

/// Credentials and choices for one login.
#[derive(Debug, Clone)]
pub struct Params {
    pub domain: String,
    pub username: String,
    pub password: String,
    pub resource: String,
    pub mechanism: Mechanism,
    /// Negotiate STARTTLS when the stream is not yet encrypted.
    pub starttls: bool,
    /// A SCRAM salted password kept from an earlier login of this account.
    pub salted: Option<SaltedPassword>,
    /// Enable stream management with resumption after binding.
    pub sm: bool,
    /// Resume this stream (its SM-ID and `h`) instead of binding.
    pub resume: Option<SmClient>,
}

#[derive(Debug)]
pub struct Login {
    params: Params,
    phase: Phase,
    encrypted: bool,
    authenticated: bool,
    scram: Option<ScramClient>,
    /// Stream management, once `<enabled/>` (or the resumed stream's) is in.
    sm: Option<SmClient>,
    /// The roster result is in (ready then, unless `<enabled/>` is still awaited).
    roster_done: bool,
}

/// The stream header a client sends (RFC 6120 §4.7).
pub fn stream_header(domain: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream to='{domain}' version='1.0' xmlns='jabber:client' xmlns:stream='{}'>",
        ns::STREAMS
    )
}

impl Login {
    /// `encrypted` is true for direct TLS. Returns the machine and its first action.
    pub fn start(params: Params, encrypted: bool) -> (Self, Action) {
        let header = Action::Send(stream_header(&params.domain));
        let login = Self {
            params,
            phase: Phase::Header,
            encrypted,
            authenticated: false,
            scram: None,
            sm: None,
            roster_done: false,
        };
        (login, header)
    }

    /// TLS is up after `<proceed/>`: open a new stream.
    pub fn tls_up(&mut self) -> Action {
        self.encrypted = true;
        self.phase = Phase::Header;
        Action::Send(stream_header(&self.params.domain))
    }

    /// Handles one frame; `Err` names the failure kind.
    pub fn handle(&mut self, frame: Frame) -> Result<Vec<Action>, String> {
        let el = match (frame, self.phase) {
            (Frame::Open(_), Phase::Header) => {
                self.phase = Phase::Features;
                return Ok(Vec::new());
            }
            (Frame::Whitespace, _) => return Ok(Vec::new()),
            (Frame::Close, _) => return Err("closed-during-login".into()),
            (Frame::Open(_), _) => return Err("unexpected-stream-header".into()),
            (Frame::Stanza(el, _), _) => el,
        };
        if el.is("error", ns::STREAMS) {
            let condition = el.children().next().map_or("undefined", |c| c.name());
            return Err(format!("stream-error:{condition}"));
        }
        // After `<enabled/>` every element counts (or asks for an ack), whatever the phase.
        let mut reply = Vec::new();
        if let Some(sm) = self.sm.as_mut() {
            if let Inbound::Request(ack) = sm.on_element(&el) {
                reply.push(Action::Send(ack));
            }
        }
        let mut actions = match self.phase {
            Phase::Header => Err("stanza-before-header".into()),
            Phase::Features => self.on_features(&el),
            Phase::Proceed if el.is("proceed", ns::TLS) => Ok(vec![Action::StartTls]),
            Phase::Proceed => Err("starttls-refused".into()),
            Phase::Sasl => self.on_sasl(&el),
            Phase::Bind => self.on_bind(&el),
            Phase::Roster => self.on_roster(&el),
            Phase::Resume => self.on_resume(&el),
            Phase::Ready => Ok(Vec::new()),
        }?;
        reply.append(&mut actions);
        Ok(reply)
    }

    /// The stream management state (after `<enabled/>` or `<resumed/>`), for the session
    /// to go on counting.
    pub fn take_sm(&mut self) -> Option<SmClient> {
        self.sm.take()
    }

    fn on_features(&mut self, el: &Element) -> Result<Vec<Action>, String> {
        if !el.is("features", ns::STREAMS) {
            return Err("expected-features".into());
        }
        if self.authenticated {
            if self.params.sm && el.child("sm", ns::SM).is_none() {
                return Err("sm-not-offered".into());
            }
            if let Some(previous) = self.params.resume.take() {
                let resume = previous.resume_xml().ok_or("resume-without-sm-id")?;
                self.sm = Some(previous);
                self.phase = Phase::Resume;
                return Ok(vec![Action::Send(resume)]);
            }
            self.phase = Phase::Bind;
            let bind = Element::new("iq", ns::CLIENT)
                .with_attr("type", "set")
                .with_attr("id", "bind")
                .with_child(Element::new("bind", ns::BIND).with_child(
                    Element::new("resource", ns::BIND).with_text(self.params.resource.clone()),
                ));
            return Ok(vec![Action::Send(bind.to_xml(ns::CLIENT))]);
        }
        if !self.encrypted && self.params.starttls {
            if el.child("starttls", ns::TLS).is_none() {
                return Err("starttls-not-offered".into());
            }
            self.phase = Phase::Proceed;
            let starttls = Element::new("starttls", ns::TLS).to_xml(ns::CLIENT);
            return Ok(vec![Action::Send(starttls)]);
        }
        let name = self.params.mechanism.name();
        let offered = el
            .child("mechanisms", ns::SASL)
            .is_some_and(|m| m.children().any(|c| c.text() == name));
        if !offered {
            return Err(format!("mechanism-not-offered:{name}"));
        }
        self.phase = Phase::Sasl;
        let initial = self.initial_response();
        let auth = Element::new("auth", ns::SASL)
            .with_attr("mechanism", name)
            .with_text(B64.encode(initial));
        Ok(vec![Action::Send(auth.to_xml(ns::CLIENT))])
    }

    /// The SCRAM salted password of a successful login, for the caller to keep.
    pub fn salted_password(&self) -> Option<&SaltedPassword> {
        self.scram
            .as_ref()
            .filter(|_| self.authenticated)?
            .salted_password()
    }

    fn initial_response(&mut self) -> String {
        let p = &self.params;
        let alg = match p.mechanism {
            Mechanism::Plain => return format!("\0{}\0{}", p.username, p.password),
            Mechanism::ScramSha1 => HashAlg::Sha1,
            Mechanism::ScramSha256 => HashAlg::Sha256,
        };
        let mut scram = ScramClient::new(alg, &p.username, &p.password, None);
        if let Some(cached) = p.salted.clone() {
            scram = scram.with_salted_password(cached);
        }
        let first = scram.client_first();
        self.scram = Some(scram);
        first
    }

    fn on_sasl(&mut self, el: &Element) -> Result<Vec<Action>, String> {
        let decoded = || {
            B64.decode(el.text().trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| "sasl-bad-base64".to_owned())
        };
        match (el.ns(), el.name(), self.scram.as_mut()) {
            (ns::SASL, "challenge", Some(scram)) => {
                let fin = scram
                    .client_final(&decoded()?)
                    .ok_or("sasl-bad-server-first")?;
                let response = Element::new("response", ns::SASL).with_text(B64.encode(fin));
                Ok(vec![Action::Send(response.to_xml(ns::CLIENT))])
            }
            (ns::SASL, "success", scram) => {
                if let Some(scram) = scram {
                    if !scram.verify_server_final(&decoded()?) {
                        return Err("sasl-bad-server-signature".into());
                    }
                }
                self.authenticated = true;
                self.phase = Phase::Header;
                Ok(vec![
                    Action::RestartStream,
                    Action::Send(stream_header(&self.params.domain)),
                ])
            }
            (ns::SASL, "failure", _) => {
                let condition = el.children().next().map_or("undefined", |c| c.name());
                Err(format!("sasl-failure:{condition}"))
            }
            _ => Err(format!("unexpected-during-sasl:{}", el.name())),
        }
    }

    fn on_bind(&mut self, el: &Element) -> Result<Vec<Action>, String> {
        if !el.is("iq", ns::CLIENT) || el.attr("id") != Some("bind") {
            return Ok(Vec::new());
        }
        if el.attr("type") != Some("result") {
            return Err("bind-failed".into());
        }
        self.phase = Phase::Roster;
        let roster = Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", "roster")
            .with_child(Element::new("query", ns::ROSTER));
        let presence = Element::new("presence", ns::CLIENT);
        // `<enable/>` first: the server counts the two stanzas after it.
        let enable = if self.params.sm {
            sm::enable_xml()
        } else {
            String::new()
        };
        Ok(vec![Action::Send(
            enable + &roster.to_xml(ns::CLIENT) + &presence.to_xml(ns::CLIENT),
        )])
    }

    fn on_roster(&mut self, el: &Element) -> Result<Vec<Action>, String> {
        if self.params.sm && self.sm.is_none() {
            if el.is("failed", ns::SM) {
                return Err(format!("sm-enable-failed:{}", sm::failure_condition(el)));
            }
            if el.is("enabled", ns::SM) {
                let mut enabled = SmClient::enabled(el)?;
                // The roster get and the initial presence followed `<enable/>`.
                enabled.count_sent(2);
                self.sm = Some(enabled);
            }
        }
        // Presence echoes and pushes may arrive first; only the roster result matters.
        if el.is("iq", ns::CLIENT) && el.attr("id") == Some("roster") {
            self.roster_done = true;
        }
        if self.roster_done && (!self.params.sm || self.sm.is_some()) {
            self.phase = Phase::Ready;
            return Ok(vec![Action::Ready]);
        }
        Ok(Vec::new())
    }

    fn on_resume(&mut self, el: &Element) -> Result<Vec<Action>, String> {
        if el.is("failed", ns::SM) {
            return Err(format!("resume-failed:{}", sm::failure_condition(el)));
        }
        if !el.is("resumed", ns::SM) {
            return Err(format!("unexpected-during-resume:{}", el.name()));
        }
        let sm = self.sm.as_mut().ok_or("resume-without-sm-id")?;
        sm.resumed(el)?;
        self.phase = Phase::Ready;
        Ok(vec![Action::Ready])
    }
}

#[cfg(test)]
mod tests;
