//! The edge→router direction. In one process this is a direct call into the router; the
//! cluster implements the same trait over gRPC.

use async_trait::async_trait;
use switchyard_core::sasl::StoredCredentials;
use switchyard_core::{Jid, Stanza, StanzaCondition};
use switchyard_storage::{SessionRecord, StorageError};

#[async_trait]
pub trait RouterLink: Send + Sync + std::fmt::Debug {
    /// Stored SCRAM credentials for SASL (`None`: no such account).
    async fn credentials(&self, account: &Jid) -> Result<Option<StoredCredentials>, StorageError>;
    async fn bind(&self, record: SessionRecord) -> Result<(), StanzaCondition>;
    async fn unbind(&self, jid: &Jid, conn: u64);
    async fn submit(&self, stanza: Stanza);
}
