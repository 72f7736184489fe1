//! RFC 6120 §6 SASL: the exchange (`sasl/exchange.rs`) driven by the session, with
//! `<auth/>` here and XEP-0388's `<authenticate/>` in `sasl2.rs` starting it alike, the
//! credential lookup and proof check the driver answers, and failures counted toward
//! the per-connection limit (§6.4.5).

use super::{Lookup, Output, Phase, Session, Verification};
use crate::error::StreamCondition;
use crate::jid::{normalize_local, Jid};
use crate::ns;
use crate::sasl::fast::TokenCheck;
use crate::sasl::{Exchange, Failure, Mechanism, Step};
use crate::xml::Element;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

impl Session {
    pub(super) fn on_auth(&mut self, el: &Element) {
        let Some(mechanism) = el
            .attr("mechanism")
            .and_then(Mechanism::from_name)
            .filter(|m| self.mechanisms().contains(m))
        else {
            return self.sasl_reply_failure(if self.tls.is_none() && self.config.tls_required {
                Failure::EncryptionRequired
            } else {
                Failure::InvalidMechanism
            });
        };
        match decode(el) {
            Ok(initial) => self.start_exchange(mechanism, initial.as_deref()),
            Err(f) => self.sasl_failed(mechanism, f),
        }
    }

    /// Starts `mechanism`'s exchange with the client's initial response (RFC 6120
    /// `<auth/>` or SASL2 `<authenticate/>`), over this connection's channel bindings.
    pub(super) fn start_exchange(&mut self, mechanism: Mechanism, initial: Option<&[u8]>) {
        let cb = self.tls.clone().unwrap_or_default();
        let decoy = self.config.decoy.in_domain(&self.domain);
        let (exchange, step) = Exchange::start(mechanism, initial, cb, decoy);
        self.on_step(Box::new(exchange), step);
    }

    pub(super) fn on_step(&mut self, mut exchange: Box<Exchange>, step: Step) {
        match step {
            Step::NeedCredentials { username } => match Jid::bare_from(&username, &self.domain) {
                Ok(account) => {
                    self.phase = Phase::AwaitCredentials(exchange);
                    self.out.push(Output::FetchCredentials { account });
                }
                // No account has this name, and the client can tell that as well as
                // we can: PLAIN is refused without the decoy hash, which would let
                // anyone spend a hash per attempt on a name the login throttle never
                // sees. SCRAM goes on with the decoy salt (no hash here).
                Err(_) if exchange.mechanism() == Mechanism::Plain => {
                    self.on_step(exchange, Step::Failure(Failure::NotAuthorized));
                }
                Err(_) => {
                    let step = exchange.credentials(None);
                    self.on_step(exchange, step);
                }
            },
            Step::Verify { username, proof } => match Jid::bare_from(&username, &self.domain) {
                Ok(account) => {
                    self.phase = Phase::AwaitVerify(exchange);
                    self.out.push(Output::VerifyProof { account, proof });
                }
                // No account can have this name: nothing to ask.
                Err(_) => {
                    let step = exchange.verified(None);
                    self.on_step(exchange, step);
                }
            },
            Step::VerifyToken {
                username,
                hashed,
                cb_data,
            } => {
                let mechanism = exchange.mechanism();
                let client = self.token_client(mechanism);
                match (Jid::bare_from(&username, &self.domain), client) {
                    (Ok(account), Some((user_agent, invalidate))) => {
                        self.phase = Phase::AwaitVerify(exchange);
                        self.out.push(Output::VerifyToken(TokenCheck {
                            account,
                            user_agent,
                            mechanism,
                            hashed,
                            cb_data,
                            invalidate,
                        }));
                    }
                    // No account, or no client a token could have been issued to.
                    _ => {
                        let step = exchange.verified(None);
                        self.on_step(exchange, step);
                    }
                }
            }
            Step::Challenge(data) => {
                let namespace = if self.in_sasl2() { ns::SASL2 } else { ns::SASL };
                let challenge = Element::new("challenge", namespace).with_text(B64.encode(data));
                self.send_el(&challenge);
                self.phase = Phase::Authenticating(exchange);
            }
            Step::Success {
                username,
                authzid,
                additional,
            } => {
                let Ok(username) = normalize_local(&username) else {
                    return self.sasl_failed(exchange.mechanism(), Failure::NotAuthorized);
                };
                let own = format!("{username}@{}", self.domain);
                if authzid.is_some_and(|a| a != own && a != username) {
                    return self.sasl_failed(exchange.mechanism(), Failure::InvalidAuthzid);
                }
                // The binding data served this exchange only; the stream stays encrypted.
                super::sasl2::spent(&mut self.tls);
                if !self.in_sasl2() {
                    let mut success = Element::new("success", ns::SASL);
                    if let Some(data) = &additional {
                        success = success.with_text(B64.encode(data));
                    }
                    self.send_el(&success);
                }
                self.out.push(Output::Authenticated {
                    username: username.clone(),
                    mechanism: exchange.mechanism(),
                });
                if self.in_sasl2() {
                    return self.sasl2_authenticated(username, additional);
                }
                self.user = Some(username);
                // RFC 6120 §6.4.6: stream restart; the client's next header may be buffered.
                // Stanzas may now be as large as authenticated ones (RFC 6120 §13.12).
                self.framer.set_authenticated();
                self.framer.reset_stream();
                self.header_sent = false;
                self.phase = Phase::AwaitHeader;
            }
            Step::Failure(f) => self.sasl_failed(exchange.mechanism(), f),
        }
    }

    pub(super) fn on_credentials(&mut self, lookup: Lookup) {
        let Phase::AwaitCredentials(mut exchange) =
            std::mem::replace(&mut self.phase, Phase::Negotiating)
        else {
            return;
        };
        let step = match lookup {
            Lookup::Found(salts) => exchange.credentials(Some(&salts)),
            Lookup::NotFound => exchange.credentials(None),
            Lookup::Throttled | Lookup::Unavailable => Step::Failure(Failure::TemporaryAuthFailure),
        };
        self.on_step(exchange, step);
    }

    pub(super) fn on_verified(&mut self, verification: Verification) {
        let Phase::AwaitVerify(mut exchange) =
            std::mem::replace(&mut self.phase, Phase::Negotiating)
        else {
            return;
        };
        let step = match verification {
            Verification::Accepted(signature) => exchange.verified(Some(&signature)),
            Verification::Rejected => exchange.verified(None),
            Verification::Unavailable => Step::Failure(Failure::TemporaryAuthFailure),
        };
        self.on_step(exchange, step);
    }

    pub(super) fn sasl_failed(&mut self, mechanism: Mechanism, failure: Failure) {
        self.out.push(Output::AuthFailed { mechanism, failure });
        self.sasl_reply_failure(failure);
    }

    /// Every failed attempt counts toward the per-connection limit (RFC 6120 §6.4.5).
    pub(super) fn sasl_reply_failure(&mut self, failure: Failure) {
        let reply = if self.in_sasl2() {
            self.sasl2_failure(failure)
        } else {
            Element::new("failure", ns::SASL).with_child(Element::new(failure.as_str(), ns::SASL))
        };
        self.send_el(&reply);
        self.phase = Phase::Negotiating;
        self.auth_failures += 1;
        if self.auth_failures >= self.config.max_auth_attempts {
            self.stream_error(
                StreamCondition::PolicyViolation,
                Some("too many authentication attempts"),
            );
        }
    }
}

/// Decodes SASL element content (RFC 6120 §6.4.2: empty is "no data", `=` is empty data).
pub(super) fn decode(el: &Element) -> Result<Option<Vec<u8>>, Failure> {
    match el.text().trim() {
        "" => Ok(None),
        "=" => Ok(Some(Vec::new())),
        text => B64
            .decode(text)
            .map(Some)
            .map_err(|_| Failure::IncorrectEncoding),
    }
}
