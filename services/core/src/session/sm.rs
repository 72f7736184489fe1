//! XEP-0198 Stream Management (namespace `urn:xmpp:sm:3`), the session's half: counters,
//! the queue of stanzas the client has not acknowledged, and the nonzas. Holding a
//! detached session and handing it to a resuming connection is the driver's half.
//!
//! - §3 enabling: only on a bound stream (before: `<failed/>` with `unexpected-request`,
//!   as for a second `<enable/>`). `resume='true'|'1'` makes the stream resumable when the
//!   policy allows it: `<enabled/>` carries a fresh SM-ID (`id`, random, never reused) and
//!   the `max` resumption time, the client's preference if it asked for less.
//! - §4 acks: `h` counts stanzas (message, presence, IQ; never nonzas) from the moment SM
//!   is enabled, modulo 2^32 (§4 "wrapping"). An `<r/>` is answered at once with the
//!   number of the client's stanzas handled. An `<a/>` removes what it acknowledges from
//!   the queue; one acknowledging more than was sent ends the stream with
//!   `undefined-condition` and `<handled-count-too-high/>` (§4). `<r/>` or `<a/>` before
//!   SM is enabled is `unsupported-stanza-type`.
//! - The server asks for acks (`<r/>`) after every [`SmPolicy::request_every`] stanzas
//!   and, through [`super::Session::keepalive`], when the connection has been quiet.
//! - §5 resumption: `<resume/>` after authentication and before binding asks the driver
//!   for the detached session ([`super::Output::Resume`]); the old session takes over the
//!   new transport ([`super::Session::resume`]), answers `<resumed/>` with its own `h`
//!   and resends what the client has not acknowledged, in order. An unknown or expired
//!   SM-ID is `<failed/>` with `item-not-found`, after which the client may still bind.
//! - §6 and the bound: a session may hold [`SmPolicy::max_unacked`] stanzas (and bytes)
//!   unacknowledged. Past it an attached stream ends with `policy-violation` and a
//!   detached one ends; either way what it held goes back to the router (offline
//!   storage), never dropped.

use super::{Output, Phase, Session};
use crate::error::{StanzaCondition, StreamCondition};
use crate::ns;
use crate::routed::Routed;
use crate::xml::Element;
use std::collections::VecDeque;

/// Stream management policy for a listener's sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmPolicy {
    /// Longest a detached session waits to be resumed, in seconds (offered as `max`);
    /// 0 turns resumption off (acks still work).
    pub resume_max_secs: u32,
    /// The server asks for an ack after this many unacknowledged stanzas.
    pub request_every: u32,
    /// Stanzas one session may hold unacknowledged.
    pub max_unacked: usize,
    /// Bytes (serialized, estimated) one session may hold unacknowledged.
    pub max_unacked_bytes: usize,
}

impl Default for SmPolicy {
    fn default() -> Self {
        Self {
            resume_max_secs: 300,
            request_every: 5,
            max_unacked: 4096,
            max_unacked_bytes: 2 * 1024 * 1024,
        }
    }
}

/// One stream's stream-management state, from `<enable/>` on.
#[derive(Debug)]
pub(super) struct Sm {
    /// The SM-ID, when the stream is resumable.
    pub(super) id: Option<String>,
    /// Seconds a detached session waits for resumption.
    pub(super) max: u32,
    /// The client's stanzas handled (our `h`).
    pub(super) handled: u32,
    /// Stanzas sent to the client (counted; the queue holds those not acknowledged).
    pub(super) sent: u32,
    /// The client's last `h`.
    pub(super) acked: u32,
    pub(super) unacked: VecDeque<Routed>,
    pub(super) unacked_bytes: usize,
    /// Stanzas sent since the server last asked for an ack.
    pub(super) since_request: u32,
}

impl Sm {
    pub(super) fn sm_element(name: &str) -> Element {
        Element::new(name, ns::SM)
    }
}

/// Whether `xml`, written by a session, is its XEP-0198 `<a h/>`, the one element it
/// writes named `a`. It counts the client's stanzas handled, so a driver must not write
/// it before those stanzas are routed (a client drops from its queue what it counts).
pub fn is_ack(xml: &str) -> bool {
    xml.starts_with("<a ")
}

/// A resumable stream's identity, for the driver's table of resumable sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumable {
    pub id: String,
    pub max_secs: u32,
}

/// Why a resumption cannot go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeRefused {
    /// No such session for this account (unknown, expired, ending, or another's).
    NotFound,
    /// The client's `h` acknowledges more than the old stream sent.
    HandledTooHigh { h: u32, sent: u32 },
}

/// A `<failed/>` with a stanza error condition and, when known, the server's `h`.
pub(super) fn failed_element(condition: StanzaCondition, h: Option<u32>) -> Element {
    let mut failed =
        Sm::sm_element("failed").with_child(Element::new(condition.as_str(), ns::STANZA_ERRORS));
    if let Some(h) = h {
        failed.set_attr("h", h.to_string());
    }
    failed
}

fn parse_h(el: &Element) -> Option<u32> {
    el.attr("h")?.parse().ok()
}

impl Session {
    /// Stream-management nonzas on a bound stream.
    pub(super) fn on_sm(&mut self, el: &Element) {
        match (el.name(), self.sm.is_some()) {
            ("enable", false) => self.enable(el),
            ("enable" | "resume", _) => self.sm_failed(StanzaCondition::UnexpectedRequest, None),
            ("r", true) => self.send_ack(),
            ("a", true) => match parse_h(el) {
                Some(h) => self.on_ack(h),
                None => self.stream_error(StreamCondition::InvalidXml, Some("<a/> needs an h")),
            },
            _ => self.stream_error(StreamCondition::UnsupportedStanzaType, None),
        }
    }

    /// Stream-management nonzas before binding: only `<resume/>`, once authenticated.
    pub(super) fn on_sm_unbound(&mut self, el: &Element) {
        match (el.name(), self.user.as_ref()) {
            ("resume", Some(_)) => match el.attr("previd") {
                Some(previd) if !previd.is_empty() => {
                    let h = el.attr("h").map(str::parse::<u32>);
                    match h {
                        Some(Err(_)) => self.sm_failed(StanzaCondition::BadRequest, None),
                        Some(Ok(h)) => self.ask_resume(previd.to_owned(), Some(h)),
                        None => self.ask_resume(previd.to_owned(), None),
                    }
                }
                _ => self.sm_failed(StanzaCondition::BadRequest, None),
            },
            ("resume" | "enable", _) => self.sm_failed(StanzaCondition::UnexpectedRequest, None),
            _ => self.stream_error(StreamCondition::UnsupportedStanzaType, None),
        }
    }

    pub(super) fn ask_resume(&mut self, previd: String, h: Option<u32>) {
        let Some(account) = self.account() else {
            return self.stream_error(StreamCondition::InternalServerError, None);
        };
        self.out.push(Output::Resume { previd, h, account });
        self.phase = Phase::AwaitResume;
    }

    /// The session named by `<resume/>` cannot be resumed: `<failed/>`, after which
    /// the client may bind (XEP-0198 §5). An impossible `h` is told as such, with the
    /// count the server did send, as an `<a/>` would be (§4). Inside SASL2 the answer
    /// goes into `<success/>` and a requested Bind2 goes ahead (XEP-0386 §3.2).
    pub(super) fn on_resume_failed(&mut self, why: ResumeRefused) {
        if !matches!(self.phase, Phase::AwaitResume) {
            return;
        }
        self.phase = Phase::Negotiating;
        let failed = match why {
            ResumeRefused::NotFound => failed_element(StanzaCondition::ItemNotFound, None),
            ResumeRefused::HandledTooHigh { h, sent } => {
                failed_element(StanzaCondition::UndefinedCondition, None)
                    .with_child(handled_count_too_high(h, sent))
            }
        };
        match self.sasl2.as_mut() {
            Some(sasl2) => {
                sasl2.results.push(failed);
                self.sasl2_continue();
            }
            None => self.send_el(&failed),
        }
    }

    fn enable(&mut self, el: &Element) {
        let enabled = self.enabled(el);
        self.send_el(&enabled);
    }

    /// Enables stream management as `<enable/>` asks and returns the `<enabled/>` answer
    /// (sent on its own, or inside a Bind2 `<bound/>`).
    pub(super) fn enabled(&mut self, el: &Element) -> Element {
        let policy = self.config.sm;
        let wants_resume = matches!(el.attr("resume"), Some("true" | "1"));
        let mut enabled = Sm::sm_element("enabled");
        let mut id = None;
        let mut max = policy.resume_max_secs;
        if wants_resume && policy.resume_max_secs > 0 {
            let asked = el.attr("max").and_then(|m| m.parse::<u32>().ok());
            max = asked.filter(|m| *m > 0).map_or(max, |m| m.min(max));
            let sm_id = crate::token::token(24);
            enabled.set_attr("id", sm_id.clone());
            enabled.set_attr("resume", "true");
            enabled.set_attr("max", max.to_string());
            id = Some(sm_id);
        }
        self.sm = Some(Box::new(Sm {
            id,
            max,
            handled: 0,
            sent: 0,
            acked: 0,
            unacked: VecDeque::new(),
            unacked_bytes: 0,
            since_request: 0,
        }));
        enabled
    }

    fn sm_failed(&mut self, condition: StanzaCondition, h: Option<u32>) {
        self.send_el(&failed_element(condition, h));
    }

    /// XEP-0198 `<a/>`, which counts the client's stanzas handled: see [`is_ack`].
    fn send_ack(&mut self) {
        let h = self.sm.as_ref().map_or(0, |sm| sm.handled);
        self.send_el(&Sm::sm_element("a").with_attr("h", h.to_string()));
    }

    pub(super) fn request_ack(&mut self) {
        if let Some(sm) = &mut self.sm {
            sm.since_request = 0;
            self.send_el(&Sm::sm_element("r"));
        }
    }

    /// Applies the client's `h`; `false` if it acknowledges more than was sent.
    pub(super) fn acknowledge(&mut self, h: u32) -> bool {
        let Some(sm) = &mut self.sm else {
            return true;
        };
        let newly = h.wrapping_sub(sm.acked) as usize;
        if newly > sm.unacked.len() {
            return false;
        }
        for stanza in sm.unacked.drain(..newly) {
            sm.unacked_bytes -= stanza.estimated_bytes();
        }
        sm.acked = h;
        true
    }

    fn on_ack(&mut self, h: u32) {
        if !self.acknowledge(h) {
            let sent = self.sm.as_ref().map_or(0, |sm| sm.sent);
            self.stream_error_with(
                StreamCondition::UndefinedCondition,
                handled_count_too_high(h, sent),
            );
        }
    }

    /// Counts a stanza from the client as handled (it was routed or answered).
    pub(super) fn handled_one(&mut self) {
        if let Some(sm) = &mut self.sm {
            sm.handled = sm.handled.wrapping_add(1);
        }
    }

    /// Sends a stanza to the client (or, detached, only queues it), counting it and
    /// keeping it until acknowledged when stream management is on.
    pub(super) fn send_stanza(&mut self, stanza: Routed) {
        let attached = !matches!(self.phase, Phase::Detached);
        if attached {
            self.send(self.config.framing.stanza(&stanza));
        }
        let policy = self.config.sm;
        let Some(sm) = &mut self.sm else {
            return;
        };
        sm.sent = sm.sent.wrapping_add(1);
        sm.unacked_bytes += stanza.estimated_bytes();
        sm.unacked.push_back(stanza);
        let over = sm.unacked.len() > policy.max_unacked
            || (sm.unacked.len() > 1 && sm.unacked_bytes > policy.max_unacked_bytes);
        sm.since_request += 1;
        let ask = sm.since_request >= policy.request_every.max(1);
        if over {
            if attached {
                return self.stream_error(
                    StreamCondition::PolicyViolation,
                    Some("too many unacknowledged stanzas"),
                );
            }
            self.phase = Phase::Closed;
        } else if ask && attached {
            self.request_ack();
        }
    }

    /// What the server sends when the connection has been quiet: an ack request with
    /// stream management on, else an XEP-0199 ping. Either needs an answer, so a dead
    /// connection shows as silence.
    pub fn keepalive(&mut self) -> Vec<Output> {
        if self.is_established() {
            if self.sm.is_some() {
                self.request_ack();
            } else if let Some(jid) = &self.jid {
                let ping = Element::new("iq", ns::CLIENT)
                    .with_attr("type", "get")
                    .with_attr("id", PING_ID)
                    .with_attr("from", self.domain.clone())
                    .with_attr("to", jid.to_string())
                    .with_child(Element::new("ping", ns::PING));
                // Only without stream management: nothing to count.
                self.send_el(&ping);
            }
        }
        std::mem::take(&mut self.out)
    }

    /// Whether `el` answers the server's own ping (it goes no further).
    pub(super) fn is_ping_answer(&self, el: &Element) -> bool {
        el.name() == "iq"
            && el.attr("id") == Some(PING_ID)
            && matches!(el.attr("type"), Some("result" | "error"))
            && el.attr("to").is_none_or(|to| to == self.domain)
    }

    /// The stream's SM-ID and resumption time, once it is resumable.
    pub fn resumable(&self) -> Option<Resumable> {
        let sm = self.sm.as_ref()?;
        Some(Resumable {
            id: sm.id.clone()?,
            max_secs: sm.max,
        })
    }

    /// Whether stanzas were sent since the last ack request and are not acknowledged:
    /// the driver asks for an ack once the stream goes quiet ([`Session::ask_for_ack`]),
    /// so a client that closes or loses its connection after a few stanzas has them
    /// acknowledged (none resent, none stored offline twice) and they are not held.
    pub fn owes_ack(&self) -> bool {
        self.is_established()
            && self
                .sm
                .as_ref()
                .is_some_and(|sm| sm.since_request > 0 && !sm.unacked.is_empty())
    }

    /// `<r/>`, when [`Session::owes_ack`].
    pub fn ask_for_ack(&mut self) -> Vec<Output> {
        if self.owes_ack() {
            self.request_ack();
        }
        std::mem::take(&mut self.out)
    }

    /// Delivers `stanza` (as [`Input::Deliver`](super::Input::Deliver)) and, for a
    /// resumable session that sent or queued it now, the number it gave it (its `h` once
    /// the client has it): a copy kept elsewhere under that number can stand in for the
    /// session's own (see the README's cross-edge resumption). `None` for a stanza held
    /// back (XEP-0352) or a session that is not resumable.
    pub fn deliver_numbered(&mut self, stanza: Routed) -> (Vec<Output>, Option<u32>) {
        let presence = stanza.name() == "presence";
        let before = self.resumable_sm().map(|sm| sm.sent);
        let outputs = self.handle(super::Input::Deliver(stanza));
        let after = self.sm.as_ref().map(|sm| sm.sent);
        // Sent with others only when it flushed held presence first, and then it went
        // last; a presence among a flush of many may not be last.
        let seq = match (before, after) {
            (Some(b), Some(a)) if a.wrapping_sub(b) == 1 => Some(a),
            (Some(b), Some(a)) if a != b && !presence => Some(a),
            _ => None,
        };
        (outputs, seq)
    }

    /// For a resumable session, the client's last `h` and the number of its stanzas
    /// handled.
    pub fn sm_counts(&self) -> Option<(u32, u32)> {
        self.resumable_sm().map(|sm| (sm.acked, sm.handled))
    }

    /// The stream-management state, when the stream is resumable.
    pub(super) fn resumable_sm(&self) -> Option<&Sm> {
        self.sm.as_deref().filter(|sm| sm.id.is_some())
    }

    /// Whether stream management is on: delivered stanzas stay in the session until the
    /// client acknowledges them.
    pub fn keeps_unacked(&self) -> bool {
        self.sm.is_some()
    }

    /// Whether the connection is gone and the session waits to be resumed.
    pub fn is_detached(&self) -> bool {
        matches!(self.phase, Phase::Detached)
    }

    /// Everything sent or queued that the client has not acknowledged, in order, taken
    /// when the session ends (the router stores or bounces it).
    pub fn take_unacked(&mut self) -> Vec<Routed> {
        self.sm.as_mut().map_or_else(Vec::new, |sm| {
            sm.unacked_bytes = 0;
            sm.unacked.drain(..).collect()
        })
    }
}

/// XEP-0198 §4: the client acknowledged `h` stanzas where `sent` were sent.
fn handled_count_too_high(h: u32, sent: u32) -> Element {
    Element::new("handled-count-too-high", ns::SM)
        .with_attr("h", h.to_string())
        .with_attr("send-count", sent.to_string())
}

/// The id of the server's own keepalive pings.
const PING_ID: &str = "sy-keepalive";
