//! Stream negotiation: headers and features (RFC 6120 §4.3, §4.7), STARTTLS (§5),
//! SASL (§6, with XEP-0440 channel-binding advertisement) and resource binding (§7).

use super::{Lookup, Output, Phase, Session, Verification};
use crate::error::{StanzaCondition, StreamCondition};
use crate::jid::{normalize_local, Jid};
use crate::ns;
use crate::sasl::fast::TokenCheck;
use crate::sasl::{ChannelBindings, Exchange, Failure, Mechanism, Step};
use crate::stanza::Stanza;
use crate::xml::{Element, StreamHeader};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

impl Session {
    pub(super) fn on_header(&mut self, header: StreamHeader) {
        let el = &header.element;
        if !el.is("stream", ns::STREAMS) || header.content_ns.as_deref() != Some(ns::CLIENT) {
            return self.stream_error(StreamCondition::InvalidNamespace, None);
        }
        if let Some(to) = el.attr("to") {
            let to = Jid::parse(to)
                .ok()
                .filter(|j| j.local().is_none() && j.is_bare());
            match to.filter(|j| self.config.domains.iter().any(|d| d == j.domain())) {
                Some(jid) => self.domain = jid.domain().to_owned(),
                None => return self.stream_error(StreamCondition::HostUnknown, None),
            }
        }
        // RFC 6120 §4.7.5: a missing version means 0.9, which has no stream features.
        let major = el
            .attr("version")
            .and_then(|v| v.split('.').next()?.parse::<u32>().ok());
        if major.is_none_or(|m| m < 1) {
            return self.stream_error(StreamCondition::UnsupportedVersion, None);
        }
        self.send_header(el.attr("from"));
        self.send_features();
        self.phase = Phase::Negotiating;
    }

    /// The stream features for where negotiation stands (RFC 6120 §4.3.2).
    pub(super) fn send_features(&mut self) {
        let features = self.features();
        let features = features
            .to_xml(ns::STREAMS)
            .replacen("<features", "<stream:features", 1)
            .replacen("</features>", "</stream:features>", 1)
            .replacen(
                "<features xmlns='http://etherx.jabber.org/streams'/>",
                "<stream:features/>",
                1,
            );
        self.send(self.config.framing.stream_element(features));
    }

    /// Mechanisms usable on this connection right now, in preference order.
    pub(super) fn mechanisms(&self) -> Vec<Mechanism> {
        let cb = self.tls.as_ref().is_some_and(ChannelBindings::any);
        let allowed = self.tls.is_some() || !self.config.tls_required;
        self.config
            .mechanisms
            .iter()
            .copied()
            .filter(|m| allowed && (!m.is_plus() || cb))
            .collect()
    }

    fn features(&self) -> Element {
        let mut features = Element::new("features", ns::STREAMS);
        if self.user.is_some() {
            // Bound already (XEP-0386, or resumed inline): nothing left to negotiate, and
            // offering bind or SM again would have clients do it twice.
            let unbound = self.jid.is_none();
            if unbound {
                features.push_child(Element::new("bind", ns::BIND));
                features.push_child(
                    Element::new("session", ns::SESSION)
                        .with_child(Element::new("optional", ns::SESSION)),
                );
            }
            // Informational features of what the server does for bound sessions.
            features.push_child(Element::new("ver", ns::ROSTER_VER));
            features.push_child(Element::new("sub", ns::PRE_APPROVAL));
            features.push_child(Element::new("csi", ns::CSI));
            if unbound {
                features.push_child(Element::new("sm", ns::SM));
            }
            return features;
        }
        if self.tls.is_none() && self.config.starttls {
            let mut starttls = Element::new("starttls", ns::TLS);
            if self.config.tls_required {
                starttls.push_child(Element::new("required", ns::TLS));
            }
            features.push_child(starttls);
        }
        let mechanisms = self.mechanisms();
        if let Some(sasl2) = self.sasl2_feature(&mechanisms) {
            features.push_child(sasl2);
        }
        if !mechanisms.is_empty() {
            let mut list = Element::new("mechanisms", ns::SASL);
            for m in mechanisms {
                list.push_child(Element::new("mechanism", ns::SASL).with_text(m.name()));
            }
            features.push_child(list);
        }
        if let Some(cb) = self.tls.as_ref().filter(|cb| cb.any()) {
            let mut types = Element::new("sasl-channel-binding", ns::SASL_CB);
            for name in cb.names() {
                types.push_child(
                    Element::new("channel-binding", ns::SASL_CB).with_attr("type", name),
                );
            }
            features.push_child(types);
        }
        features
    }

    pub(super) fn on_negotiation_element(&mut self, el: Element) {
        let phase = std::mem::replace(&mut self.phase, Phase::Negotiating);
        match (phase, el.ns(), el.name()) {
            (Phase::Negotiating, ns::TLS, "starttls") => self.on_starttls(),
            (Phase::Negotiating, ns::SASL, "auth") if self.user.is_none() => self.on_auth(&el),
            (Phase::Authenticating(mut exchange), ns::SASL, "response") => match decode(&el) {
                Ok(data) => {
                    let step = exchange.response(&data.unwrap_or_default());
                    self.on_step(exchange, step);
                }
                Err(f) => self.sasl_failed(exchange.mechanism(), f),
            },
            (Phase::Authenticating(exchange), ns::SASL, "abort") => {
                self.sasl_failed(exchange.mechanism(), Failure::Aborted)
            }
            (Phase::Negotiating, ns::SASL2, "authenticate") => self.on_authenticate(&el),
            (Phase::Authenticating(mut exchange), ns::SASL2, "response") if self.in_sasl2() => {
                let data = el.text().split_ascii_whitespace().collect::<String>();
                match B64.decode(data) {
                    Ok(data) => {
                        let step = exchange.response(&data);
                        self.on_step(exchange, step);
                    }
                    Err(_) => self.sasl_failed(exchange.mechanism(), Failure::IncorrectEncoding),
                }
            }
            (Phase::Authenticating(exchange), ns::SASL2, "abort") if self.in_sasl2() => {
                self.sasl_failed(exchange.mechanism(), Failure::Aborted)
            }
            (Phase::Negotiating, ns::CLIENT, "iq") if self.user.is_some() => self.on_bind_iq(el),
            (Phase::Negotiating, ns::SM, _) => self.on_sm_unbound(&el),
            (_, ns::CLIENT, "message" | "presence" | "iq") => {
                self.stream_error(StreamCondition::NotAuthorized, None)
            }
            _ => self.stream_error(StreamCondition::UnsupportedStanzaType, None),
        }
    }

    fn on_starttls(&mut self) {
        if self.tls.is_some() || !self.config.starttls {
            self.send_el(&Element::new("failure", ns::TLS));
            return self.close(None);
        }
        self.send_el(&Element::new("proceed", ns::TLS));
        // Anything buffered after <starttls/> is plaintext injected ahead of TLS.
        self.framer.restart();
        self.header_sent = false;
        self.phase = Phase::AwaitTls;
        self.out.push(Output::StartTls);
    }

    fn on_auth(&mut self, el: &Element) {
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
            Ok(initial) => {
                let cb = self.tls.clone().unwrap_or_default();
                let (exchange, step) = Exchange::start(
                    mechanism,
                    initial.as_deref(),
                    cb,
                    self.config.decoy.in_domain(&self.domain),
                );
                self.on_step(Box::new(exchange), step);
            }
            Err(f) => self.sasl_failed(mechanism, f),
        }
    }

    pub(super) fn on_step(&mut self, mut exchange: Box<Exchange>, step: Step) {
        match step {
            Step::NeedCredentials { username } => match Jid::bare_from(&username, &self.domain) {
                Ok(account) => {
                    self.phase = Phase::AwaitCredentials(exchange);
                    self.out.push(Output::FetchCredentials { account });
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

    /// Resource binding (RFC 6120 §7) and the optional legacy session (RFC 6121 App. E).
    fn on_bind_iq(&mut self, mut el: Element) {
        let (Some(user), Some(id)) = (self.user.clone(), el.attr("id").map(str::to_owned)) else {
            return self.stream_error(StreamCondition::NotAuthorized, None);
        };
        let Ok(account) = Jid::bare_from(&user, &self.domain) else {
            return self.stream_error(StreamCondition::InternalServerError, None);
        };
        el.set_attr("from", account.to_string());
        let Some(stanza) = Stanza::from_element(el) else {
            return self.stream_error(StreamCondition::NotAuthorized, None);
        };
        let payload = stanza
            .payload()
            .filter(|_| stanza.type_attr() == Some("set"));
        let resource = match payload {
            Some(p) if p.is("session", ns::SESSION) && self.jid.is_some() => {
                return self.send_el(&stanza.result(None));
            }
            Some(p) if p.is("bind", ns::BIND) && self.jid.is_none() => {
                p.child("resource", ns::BIND).map(|r| r.text())
            }
            _ => return self.stream_error(StreamCondition::NotAuthorized, None),
        };
        let resource = resource
            .filter(|r| !r.is_empty())
            .unwrap_or_else(generated_resource);
        match account.with_resource(&resource) {
            Ok(jid) => {
                self.out.push(Output::Bind {
                    jid: jid.clone(),
                    carbons: false,
                });
                self.phase = Phase::AwaitBind {
                    iq_id: Some(id),
                    jid,
                };
            }
            Err(_) => self.stanza_error(&stanza, StanzaCondition::BadRequest),
        }
    }

    pub(super) fn on_bound(&mut self, result: Result<(), StanzaCondition>) {
        let Phase::AwaitBind { iq_id, jid } =
            std::mem::replace(&mut self.phase, Phase::Negotiating)
        else {
            return;
        };
        let Some(iq_id) = iq_id else {
            return self.on_bind2(jid, result);
        };
        let mut reply = Element::new("iq", ns::CLIENT).with_attr("id", iq_id);
        match result {
            Ok(()) => {
                reply.set_attr("type", "result");
                reply.push_child(
                    Element::new("bind", ns::BIND)
                        .with_child(Element::new("jid", ns::BIND).with_text(jid.to_string())),
                );
                self.jid = Some(jid);
                self.phase = Phase::Established;
            }
            Err(condition) => {
                reply.set_attr("type", "error");
                reply.push_child(crate::error::StanzaError::new(condition).to_element(None));
            }
        }
        self.send_el(&reply);
    }
}

/// A server-generated resource (RFC 6120 §7.6.2.1): random, so it cannot collide in practice.
fn generated_resource() -> String {
    format!("sy-{}", crate::token::token(12))
}

/// Decodes SASL element content (RFC 6120 §6.4.2: empty is "no data", `=` is empty data).
fn decode(el: &Element) -> Result<Option<Vec<u8>>, Failure> {
    match el.text().trim() {
        "" => Ok(None),
        "=" => Ok(Some(Vec::new())),
        text => B64
            .decode(text)
            .map(Some)
            .map_err(|_| Failure::IncorrectEncoding),
    }
}
