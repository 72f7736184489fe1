//! The edge→router direction. In one process this is a direct call into the router; the
//! cluster implements the same trait over gRPC.
//!
//! The link also serves the login-failure counts ([`LoginFailures`]) the throttle keeps
//! for every edge alike: in memory in one process, in the routers' Redis in a cluster.

use async_trait::async_trait;
use switchyard_core::sasl::StoredCredentials;
use switchyard_core::{Jid, Stanza, StanzaCondition};
use switchyard_storage::{LoginFailures, SessionRecord, StorageError};

#[async_trait]
pub trait RouterLink: LoginFailures + Send + Sync + std::fmt::Debug {
    /// Stored SCRAM credentials for SASL (`None`: no such account).
    async fn credentials(&self, account: &Jid) -> Result<Option<StoredCredentials>, StorageError>;
    async fn bind(&self, record: SessionRecord) -> Result<(), StanzaCondition>;
    async fn unbind(&self, jid: &Jid, conn: u64);
    async fn submit(&self, stanza: Stanza);
}
