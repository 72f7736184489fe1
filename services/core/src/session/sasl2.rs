//! XEP-0388 SASL2 with what it carries inline: XEP-0386 Bind 2, XEP-0198 enabling and
//! resumption, XEP-0484 FAST tokens.
//!
//! - XEP-0388 §2.1: `<authentication/>` is offered only on an encrypted stream (§5), with
//!   the same mechanisms as RFC 6120 SASL and an `<inline/>` naming Bind 2 (with carbons,
//!   CSI and SM as its inline features), `<sm/>` (resumption) and FAST.
//! - §2.3: a mechanism not offered fails the attempt (`invalid-mechanism`); a user-agent
//!   `id` must be a UUID (`malformed-request` otherwise). §2.4–2.5: `<challenge/>` and
//!   `<response/>` carry base64; anything else during the exchange ends the stream. §6.5:
//!   `<abort/>` fails it with `aborted`.
//! - §2.6.1: on success no stream restart: the inline requests run in order (token,
//!   resumption, bind), then `<success/>` carries the additional data, the authorization
//!   identifier (the full JID once bound), the inline results, and is followed by stream
//!   features. §2.6.2: `<failure/>` has the RFC 6120 §6.5 condition first, processes no
//!   inline request, and leaves the stream as it was (another `<authenticate/>` may
//!   follow). §6.8: `<authenticate/>` after success ends the stream. No task needs
//!   `<continue/>`: the server asks for none.
//! - XEP-0386 §3.2: the bind runs after authentication and before `<success/>`. The
//!   resource is `tag.id` where `id` is derived from the account and the user-agent id
//!   (stable per client, never showing the id; random without one), so a reconnecting
//!   client replaces its own older session (RFC 6120 §7.7.2.2 conflict) as §3.2 asks.
//!   Carbons enabled and CSI state set inline need no answer; SM's `<enabled/>` goes in
//!   `<bound/>`.
//! - XEP-0198 with SASL2: `<resume/>` in `<authenticate/>` is tried first; resumed, the
//!   bind is ignored and `<resumed/>` goes in `<success/>`; failed, `<failed/>` goes in
//!   `<success/>` and the bind goes ahead.
//! - XEP-0484: tokens are asked for with `<request-token/>` (a mechanism offered in
//!   `<fast/>`, a client with a user-agent id), issued only after a full authentication
//!   (§3.3), presented with an HT mechanism (`fast.rs`; bound to the mechanism and the
//!   client), rotated when the holder says so (§3.5), invalidated on request (§3.6, with
//!   no new token unless one is asked for). There is no TLS 0-RTT: `count` is not needed.

use super::{Output, Phase, Session};
use crate::error::{StanzaCondition, StreamCondition};
use crate::jid::Jid;
use crate::ns;
use crate::sasl::fast::{client_label, user_agent_id, IssuedToken, TokenRequest};
use crate::sasl::{ChannelBindings, Failure, Mechanism};
use crate::xml::Element;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};

/// Longest Bind 2 `<tag/>` used in a resource (longer ones are left out).
const MAX_TAG_CHARS: usize = 64;

/// One `<authenticate/>` request's inline parts, then its results as they come.
#[derive(Debug, Default)]
pub(super) struct Sasl2 {
    /// The client's user-agent id (a UUID, lower case).
    user_agent: Option<String>,
    /// What it calls itself (`client_label`).
    label: String,
    bind: Option<Bind2>,
    resume: Option<(String, Option<u32>)>,
    /// XEP-0484 §3.2: a token asked for, for this mechanism.
    request_token: Option<Mechanism>,
    /// XEP-0484 §3.6: the token used is to be invalidated.
    invalidate: bool,
    /// The token mechanism authenticated with (for rotation).
    token_used: Option<Mechanism>,
    /// §3.5: the holder says the token used is due for rotation.
    rotate: bool,
    token_asked: bool,
    /// The mechanism's final data for `<success/>`.
    additional: Option<Vec<u8>>,
    /// Inline results for `<success/>`, in order (a `<failed/>` resumption, `<token/>`).
    pub(super) results: Vec<Element>,
}

/// A Bind 2 request (XEP-0386 §3.2).
#[derive(Debug, Default)]
struct Bind2 {
    tag: Option<String>,
    carbons: bool,
    inactive: bool,
    enable_sm: Option<Element>,
}

impl Session {
    /// Whether SASL2 is offered: on an encrypted stream (§5), with a mechanism to offer.
    fn sasl2_offered(&self, mechanisms: &[Mechanism]) -> bool {
        self.tls.is_some() && !mechanisms.is_empty()
    }

    /// The SASL2 stream feature (XEP-0388 §2.1), when it can be offered.
    pub(super) fn sasl2_feature(&self, mechanisms: &[Mechanism]) -> Option<Element> {
        if !self.sasl2_offered(mechanisms) {
            return None;
        }
        let mut auth = Element::new("authentication", ns::SASL2);
        for m in mechanisms {
            auth.push_child(Element::new("mechanism", ns::SASL2).with_text(m.name()));
        }
        let mut bind_inline = Element::new("inline", ns::BIND2);
        for var in [ns::CARBONS, ns::CSI, ns::SM] {
            bind_inline.push_child(Element::new("feature", ns::BIND2).with_attr("var", var));
        }
        let mut inline = Element::new("inline", ns::SASL2)
            .with_child(Element::new("bind", ns::BIND2).with_child(bind_inline))
            .with_child(Element::new("sm", ns::SM));
        let fast = self.fast_mechanisms();
        if !fast.is_empty() {
            let mut el = Element::new("fast", ns::FAST);
            for m in fast {
                el.push_child(Element::new("mechanism", ns::FAST).with_text(m.name()));
            }
            inline.push_child(el);
        }
        Some(auth.with_child(inline))
    }

    /// FAST mechanisms usable on this connection (XEP-0484 §6: encrypted streams only).
    fn fast_mechanisms(&self) -> Vec<Mechanism> {
        let Some(cb) = self.tls.as_ref().filter(|_| self.config.fast) else {
            return Vec::new();
        };
        Mechanism::FAST
            .into_iter()
            .filter(|m| crate::sasl::fast::cb_data(*m, cb).is_some())
            .collect()
    }

    pub(super) fn on_authenticate(&mut self, el: &Element) {
        if self.user.is_some() {
            // XEP-0388 §6.8.
            return self.stream_error(
                StreamCondition::PolicyViolation,
                Some("already authenticated"),
            );
        }
        let name = el.attr("mechanism").unwrap_or_default();
        let mechanisms = self.mechanisms();
        let offered = self.sasl2_offered(&mechanisms);
        let Some(mechanism) = Mechanism::from_name(name)
            .filter(|m| offered && (mechanisms.contains(m) || self.fast_mechanisms().contains(m)))
        else {
            self.sasl2 = Some(Box::default());
            return self.sasl_reply_failure(Failure::InvalidMechanism);
        };
        let request = match self.parse_authenticate(el) {
            Ok(request) => request,
            Err(failure) => {
                self.sasl2 = Some(Box::default());
                return self.sasl_failed(mechanism, failure);
            }
        };
        let initial = match el.child("initial-response", ns::SASL2).map(decode) {
            None => None,
            Some(Ok(data)) => Some(data),
            Some(Err(f)) => {
                self.sasl2 = Some(Box::default());
                return self.sasl_failed(mechanism, f);
            }
        };
        self.sasl2 = Some(Box::new(request));
        self.start_exchange(mechanism, initial.as_deref());
    }

    fn parse_authenticate(&self, el: &Element) -> Result<Sasl2, Failure> {
        let mut request = Sasl2::default();
        if let Some(ua) = el.child("user-agent", ns::SASL2) {
            if let Some(id) = ua.attr("id") {
                request.user_agent = Some(user_agent_id(id).ok_or(Failure::MalformedRequest)?);
            }
            let text = |name| ua.child(name, ns::SASL2).map(|e| e.text());
            request.label = client_label(text("software").as_deref(), text("device").as_deref());
        }
        if let Some(bind) = el.child("bind", ns::BIND2) {
            request.bind = Some(Bind2 {
                tag: bind.child("tag", ns::BIND2).map(|t| t.text()),
                carbons: bind.child("enable", ns::CARBONS).is_some(),
                inactive: bind.child("inactive", ns::CSI).is_some(),
                enable_sm: bind.child("enable", ns::SM).cloned(),
            });
        }
        if let Some(resume) = el.child("resume", ns::SM) {
            let previd = resume.attr("previd").filter(|p| !p.is_empty());
            let h = resume.attr("h").map(str::parse::<u32>).transpose();
            match (previd, h) {
                (Some(previd), Ok(h)) => request.resume = Some((previd.to_owned(), h)),
                // XEP-0198 §5 as for a `<resume/>` on its own: `<failed/>`, and the
                // login (and a Bind 2) goes on.
                _ => request
                    .results
                    .push(super::sm::failed_element(StanzaCondition::BadRequest, None)),
            }
        }
        if let Some(ask) = el.child("request-token", ns::FAST) {
            let mechanism = ask
                .attr("mechanism")
                .and_then(Mechanism::from_name)
                .filter(|m| self.fast_mechanisms().contains(m));
            request.request_token = Some(mechanism.ok_or(Failure::InvalidMechanism)?);
        }
        if let Some(fast) = el.child("fast", ns::FAST) {
            request.invalidate = matches!(fast.attr("invalidate"), Some("true" | "1"));
        }
        Ok(request)
    }

    /// What the session needs of a token presented: the client it was issued to.
    pub(super) fn token_client(&mut self, mechanism: Mechanism) -> Option<(String, bool)> {
        let sasl2 = self.sasl2.as_mut()?;
        sasl2.token_used = Some(mechanism);
        Some((sasl2.user_agent.clone()?, sasl2.invalidate))
    }

    /// The holder's answer about the token presented: due for rotation or not.
    pub(super) fn token_rotation(&mut self, rotate: bool) {
        if let Some(sasl2) = self.sasl2.as_mut() {
            sasl2.rotate = rotate;
        }
    }

    /// Authenticated over SASL2: the inline requests run (`sasl2_continue`), with no
    /// stream restart.
    pub(super) fn sasl2_authenticated(&mut self, username: String, additional: Option<Vec<u8>>) {
        if let Some(sasl2) = self.sasl2.as_mut() {
            sasl2.additional = additional;
        }
        self.user = Some(username);
        self.phase = Phase::Negotiating;
        self.sasl2_continue();
    }

    /// Runs the next inline request that is due, or answers `<success/>` when none is.
    pub(super) fn sasl2_continue(&mut self) {
        let Some(account) = self.account() else {
            return self.stream_error(StreamCondition::InternalServerError, None);
        };
        let Some(sasl2) = self.sasl2.as_mut() else {
            return;
        };
        let rotation = sasl2
            .token_used
            .filter(|_| sasl2.rotate && !sasl2.invalidate);
        if let (false, Some(user_agent), Some(mechanism)) = (
            sasl2.token_asked,
            sasl2.user_agent.clone(),
            sasl2.request_token.or(rotation),
        ) {
            sasl2.token_asked = true;
            self.phase = Phase::AwaitToken;
            let label = sasl2.label.clone();
            return self.out.push(Output::IssueToken(TokenRequest {
                account,
                user_agent,
                label,
                mechanism,
            }));
        }
        if let Some((previd, h)) = sasl2.resume.take() {
            return self.ask_resume(previd, h);
        }
        if let Some(bind) = &sasl2.bind {
            let ua = sasl2.user_agent.as_deref();
            // A tag that makes no valid resource (RFC 7622 §3.4) is left out.
            let jid = account
                .with_resource(&bind2_resource(bind.tag.as_deref(), &account, ua))
                .or_else(|_| account.with_resource(&bind2_resource(None, &account, ua)));
            let carbons = bind.carbons;
            return match jid {
                Ok(jid) => {
                    self.out.push(Output::Bind {
                        jid: jid.clone(),
                        carbons,
                    });
                    self.phase = Phase::AwaitBind { iq_id: None, jid };
                }
                Err(_) => self.stream_error(StreamCondition::InternalServerError, None),
            };
        }
        let success = self.sasl2_success(&account.to_string(), None);
        self.send_el(&success);
        self.send_features();
    }

    /// The token asked for by `sasl2_continue` (`None`: none could be issued).
    pub(super) fn on_token_issued(&mut self, token: Option<IssuedToken>) {
        if !matches!(self.phase, Phase::AwaitToken) {
            return;
        }
        self.phase = Phase::Negotiating;
        if let (Some(sasl2), Some(token)) = (self.sasl2.as_mut(), token) {
            let expiry = crate::time::datetime(token.expiry);
            sasl2.results.push(
                Element::new("token", ns::FAST)
                    .with_attr("expiry", expiry)
                    .with_attr("token", token.token),
            );
        }
        self.sasl2_continue();
    }

    /// The Bind 2 outcome: `<success/>` with `<bound/>`, or a failure the client may
    /// retry (the session is then unauthenticated again).
    pub(super) fn on_bind2(&mut self, jid: Jid, result: Result<(), StanzaCondition>) {
        let Some(bind) = self.sasl2.as_mut().and_then(|s| s.bind.take()) else {
            return;
        };
        if let Err(condition) = result {
            self.user = None;
            self.sasl2 = None;
            // A bind refused as not allowed is a disabled (banned) account (RFC 6120
            // §6.5.1): retrying cannot help, unlike a server that could not bind.
            let reason = match condition {
                StanzaCondition::NotAllowed => Failure::AccountDisabled,
                _ => Failure::TemporaryAuthFailure,
            };
            let failure = Element::new("failure", ns::SASL2)
                .with_child(Element::new(reason.as_str(), ns::SASL))
                .with_child(
                    Element::new("text", ns::SASL2)
                        .with_text(format!("resource binding failed: {}", condition.as_str())),
                );
            return self.send_el(&failure);
        }
        self.jid = Some(jid.clone());
        self.phase = Phase::Established;
        let mut bound = Element::new("bound", ns::BIND2);
        if let Some(enable) = &bind.enable_sm {
            bound.push_child(self.enabled(enable));
        }
        if bind.inactive {
            self.inactive = Some(super::csi::Held::default());
        }
        let success = self.sasl2_success(&jid.to_string(), Some(bound));
        self.send_el(&success);
        self.send_features();
    }

    /// `<success/>` for `authorized` (XEP-0388 §2.6.1) with the results gathered, and
    /// `extra` (`<bound/>` or `<resumed/>`) last. Ends the SASL2 request.
    pub(super) fn sasl2_success(&mut self, authorized: &str, extra: Option<Element>) -> Element {
        // Stanzas may now be as large as authenticated ones (RFC 6120 §13.12); not before
        // `<success/>`, since a failed Bind 2 leaves the stream unauthenticated.
        self.framer.set_authenticated();
        let sasl2 = self.sasl2.take().unwrap_or_default();
        let mut success = Element::new("success", ns::SASL2);
        if let Some(data) = sasl2.additional {
            success
                .push_child(Element::new("additional-data", ns::SASL2).with_text(B64.encode(data)));
        }
        success
            .push_child(Element::new("authorization-identifier", ns::SASL2).with_text(authorized));
        for result in sasl2.results {
            success.push_child(result);
        }
        if let Some(extra) = extra {
            success.push_child(extra);
        }
        success
    }

    /// A SASL2 `<failure/>` (§2.6.2): the condition first, the stream left as it was.
    pub(super) fn sasl2_failure(&mut self, failure: Failure) -> Element {
        self.sasl2 = None;
        Element::new("failure", ns::SASL2).with_child(Element::new(failure.as_str(), ns::SASL))
    }

    /// Whether a SASL2 request is running (its elements are in the SASL2 namespace).
    pub(super) fn in_sasl2(&self) -> bool {
        self.sasl2.is_some()
    }
}

/// XEP-0386 §3.2.1: `tag.id`, `id` stable for one client of one account (a hash the
/// user-agent id cannot be read from), random when the client sent no id.
fn bind2_resource(tag: Option<&str>, account: &Jid, user_agent: Option<&str>) -> String {
    let id = match user_agent {
        Some(ua) => {
            let digest = Sha256::new()
                .chain_update(b"switchyard bind2 resource\0")
                .chain_update(account.to_string().as_bytes())
                .chain_update(b"\0")
                .chain_update(ua.as_bytes())
                .finalize();
            digest[..6].iter().map(|b| format!("{b:02x}")).collect()
        }
        None => crate::token::token(12),
    };
    match tag
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.chars().count() <= MAX_TAG_CHARS)
    {
        Some(tag) => format!("{tag}.{id}"),
        None => id,
    }
}

/// SASL2 data (XEP-0388 §2.2): an element present with no text is empty data.
fn decode(el: &Element) -> Result<Vec<u8>, Failure> {
    let text: String = el.text().split_ascii_whitespace().collect();
    B64.decode(text).map_err(|_| Failure::IncorrectEncoding)
}

/// Channel bindings are used once, by the exchange that authenticated.
pub(super) fn spent(cb: &mut Option<ChannelBindings>) {
    if let Some(cb) = cb {
        *cb = ChannelBindings::default();
    }
}
