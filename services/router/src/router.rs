//! Where each stanza goes (RFC 6120 §10.3–§10.5 for one node).
//!
//! - No `to`, or the server's domain: IQ requests go to the dispatch table; anything else
//!   addressed to the server is dropped (RFC 6120 §10.3.3 lets the server handle it).
//! - A full JID with a session: delivered to that connection.
//! - A bare JID, or a full JID without a session: messages go to every session of the
//!   account (the full RFC 6121 §8.5 priority rules come with presence); presence to every
//!   session; IQs get `service-unavailable` (RFC 6121 §8.5.3.2.3).
//! - No session at all: `service-unavailable` back to the sender for messages and IQ
//!   requests (offline storage arrives with XEP-0160). Errors are never answered with
//!   errors.

use crate::delivery::EdgeDelivery;
use crate::dispatch::{self, ServerInfo};
use std::sync::Arc;
use switchyard_core::{
    Element, Jid, Stanza, StanzaCondition, StanzaError, StanzaKind, StreamCondition,
};
use switchyard_storage::{SessionRecord, SessionRegistry};

#[derive(Debug)]
pub struct Router {
    domains: Vec<String>,
    info: ServerInfo,
    registry: Arc<dyn SessionRegistry>,
    edges: Arc<dyn EdgeDelivery>,
}

impl Router {
    pub fn new(
        domains: Vec<String>,
        info: ServerInfo,
        registry: Arc<dyn SessionRegistry>,
        edges: Arc<dyn EdgeDelivery>,
    ) -> Self {
        Self {
            domains,
            info,
            registry,
            edges,
        }
    }

    /// Registers a bound resource; a previous session with the same full JID is closed
    /// with `conflict` (RFC 6120 §7.7.2.2: the new session wins).
    pub async fn bind(&self, record: SessionRecord) -> Result<(), StanzaCondition> {
        match self.registry.bind(record).await {
            Ok(Some(old)) => {
                tracing::info!(jid = %old.jid, conn = old.conn, "session replaced by a new bind");
                self.edges
                    .terminate(&old.edge, old.conn, StreamCondition::Conflict)
                    .await;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "session registry bind failed");
                Err(StanzaCondition::InternalServerError)
            }
        }
    }

    pub async fn unbind(&self, jid: &Jid, conn: u64) {
        if let Err(e) = self.registry.unbind(jid, conn).await {
            tracing::warn!(error = %e, %jid, "session registry unbind failed");
        }
    }

    fn is_server(&self, jid: &Jid) -> bool {
        jid.local().is_none() && jid.is_bare() && self.domains.iter().any(|d| d == jid.domain())
    }

    /// Routes one stanza from a session.
    pub async fn route(&self, stanza: Stanza) {
        let to = stanza.effective_to();
        if self.is_server(&to) || (stanza.to.is_none() && stanza.kind == StanzaKind::Iq) {
            if stanza.is_iq_request() {
                if let Some(reply) = dispatch::answer(&stanza, &self.info) {
                    self.deliver_to(&stanza.from, reply).await;
                }
            }
            return;
        }
        let sessions = match self.registry.sessions(&to.bare()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "session registry lookup failed");
                return self
                    .bounce(&stanza, StanzaCondition::InternalServerError)
                    .await;
            }
        };
        let exact: Vec<&SessionRecord> = sessions.iter().filter(|s| s.jid == to).collect();
        let targets: Vec<&SessionRecord> = match (stanza.kind, exact.is_empty()) {
            (_, false) => exact,
            (StanzaKind::Iq, true) => Vec::new(),
            (StanzaKind::Message | StanzaKind::Presence, true) => sessions.iter().collect(),
        };
        let mut delivered = false;
        for target in targets {
            let sent = self
                .edges
                .deliver(&target.edge, target.conn, stanza.element.clone())
                .await;
            delivered |= sent.is_ok();
        }
        if !delivered && stanza.kind != StanzaKind::Presence {
            self.bounce(&stanza, StanzaCondition::ServiceUnavailable)
                .await;
        }
    }

    async fn bounce(&self, stanza: &Stanza, condition: StanzaCondition) {
        if stanza.kind == StanzaKind::Iq && !stanza.is_iq_request() {
            return;
        }
        if let Some(reply) = stanza.error_reply(&StanzaError::new(condition)) {
            self.deliver_to(&stanza.from, reply).await;
        }
    }

    /// Delivers a server-generated stanza to one full JID, if it is still online.
    async fn deliver_to(&self, jid: &Jid, element: Element) {
        let Ok(sessions) = self.registry.sessions(&jid.bare()).await else {
            return;
        };
        if let Some(s) = sessions.iter().find(|s| s.jid == *jid) {
            let _ = self.edges.deliver(&s.edge, s.conn, element).await;
        }
    }
}

#[cfg(test)]
mod tests;
