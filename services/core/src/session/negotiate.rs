//! Stream negotiation: headers and features (RFC 6120 §4.3, §4.7, with XEP-0440
//! channel-binding advertisement), STARTTLS (§5), what is negotiated element by element
//! (SASL itself in `sasl.rs`) and resource binding (§7).

use super::sasl::decode;
use super::{Output, Phase, Session};
use crate::error::{StanzaCondition, StreamCondition};
use crate::jid::Jid;
use crate::ns;
use crate::sasl::{ChannelBindings, Failure, Mechanism};
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
