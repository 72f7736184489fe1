//! The registry's record of one bound resource (RFC 6120 §7): what the edge registers at
//! bind and the router reads to route. Kept here, beside [`Presence`], so the edge can
//! build one without a storage backend.

use crate::Presence;
use switchyard_core::Jid;

/// One bound resource: where its connection lives and what the router must know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Full JID.
    pub jid: Jid,
    /// The edge node holding the connection.
    pub edge: String,
    /// The connection's id on that edge.
    pub conn: u64,
    /// The last available presence; `None` before initial presence and after
    /// unavailable (RFC 6121 §4.2, §4.5): the resource is connected but not available.
    pub presence: Option<Presence>,
    /// XEP-0280 carbons enabled.
    pub carbons: bool,
    /// Requested the roster, so it receives roster pushes (RFC 6121 §2.2).
    pub interested: bool,
    /// Entities that received directed available presence (RFC 6121 §4.6), owed an
    /// unavailable when the resource goes away.
    pub directed: Vec<Jid>,
}

impl SessionRecord {
    /// Whether both records describe the same connection.
    pub fn same_connection(&self, other: &SessionRecord) -> bool {
        self.edge == other.edge && self.conn == other.conn
    }

    /// A freshly bound session: connected, not yet available.
    pub fn bound(jid: Jid, edge: impl Into<String>, conn: u64) -> Self {
        Self {
            jid,
            edge: edge.into(),
            conn,
            presence: None,
            carbons: false,
            interested: false,
            directed: Vec::new(),
        }
    }

    /// The priority of an available resource; `None` when it is not available.
    pub fn priority(&self) -> Option<i8> {
        self.presence.as_ref().map(|p| p.priority)
    }
}
