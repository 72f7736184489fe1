//! The storage traits. Accounts are keyed by bare JID (`user@domain`).

use crate::StorageError;
use async_trait::async_trait;
use switchyard_core::sasl::StoredCredentials;
use switchyard_core::Jid;

/// Accounts and their salted SCRAM credentials (never passwords).
#[async_trait]
pub trait AccountStore: Send + Sync + std::fmt::Debug {
    /// Creates an account; [`StorageError::AlreadyExists`] if it exists.
    async fn create(&self, account: &Jid, creds: &StoredCredentials) -> Result<(), StorageError>;
    /// Replaces the credentials; [`StorageError::NotFound`] if there is no such account.
    async fn set_credentials(
        &self,
        account: &Jid,
        creds: &StoredCredentials,
    ) -> Result<(), StorageError>;
    async fn credentials(&self, account: &Jid) -> Result<Option<StoredCredentials>, StorageError>;
    /// Removes an account; `false` if there was none.
    async fn remove(&self, account: &Jid) -> Result<bool, StorageError>;
    /// All accounts, sorted.
    async fn list(&self) -> Result<Vec<Jid>, StorageError>;
}

/// One bound resource: where its connection lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Full JID.
    pub jid: Jid,
    /// The edge node holding the connection.
    pub edge: String,
    /// The connection's id on that edge.
    pub conn: u64,
}

/// Who is online where (RFC 6120 §7: one session per full JID).
#[async_trait]
pub trait SessionRegistry: Send + Sync + std::fmt::Debug {
    /// Registers a session; returns the record it replaced for the same full JID, whose
    /// connection the caller must close with a `conflict` stream error (RFC 6120 §7.7.2.2).
    async fn bind(&self, record: SessionRecord) -> Result<Option<SessionRecord>, StorageError>;
    /// Removes the session if it still belongs to `conn` (a newer session is kept).
    async fn unbind(&self, jid: &Jid, conn: u64) -> Result<bool, StorageError>;
    /// All sessions of a bare JID.
    async fn sessions(&self, bare: &Jid) -> Result<Vec<SessionRecord>, StorageError>;
}
