//! The edge→router direction. In one process this is a direct call into the router; the
//! cluster implements the same trait over gRPC.
//!
//! The link also serves the login-failure counts ([`LoginFailures`]) the throttle keeps
//! for every edge alike: in memory in one process, in the routers' Redis in a cluster.

use async_trait::async_trait;
use switchyard_core::sasl::fast::{IssuedToken, TokenCheck, TokenRequest, TokenVerdict};
use switchyard_core::sasl::{AccountSalts, ScramProof};
use switchyard_core::session::SmState;
use switchyard_core::{Jid, Routed, Stanza, StanzaCondition};
use switchyard_model::{LoginFailures, SessionRecord, StorageError};

#[async_trait]
pub trait RouterLink: LoginFailures + Send + Sync + std::fmt::Debug {
    /// What SASL's server-first message needs of an account: its salts and iteration
    /// counts (`None`: no such account). Never its keys: those stay behind the router.
    async fn credentials(&self, account: &Jid) -> Result<Option<AccountSalts>, StorageError>;
    /// Checks a SCRAM proof against the account's stored keys (RFC 5802 §3): the
    /// ServerSignature if it is right, `None` if it is wrong or there is no such account.
    async fn verify(
        &self,
        account: &Jid,
        proof: &ScramProof,
    ) -> Result<Option<Vec<u8>>, StorageError>;
    /// XEP-0484: checks a FAST token where the account's tokens are.
    async fn verify_token(&self, check: &TokenCheck) -> Result<TokenVerdict, StorageError>;
    /// XEP-0484 §3.3: issues a token where the account's tokens are.
    async fn issue_token(&self, request: &TokenRequest) -> Result<IssuedToken, StorageError>;
    async fn bind(&self, record: SessionRecord) -> Result<(), StanzaCondition>;
    /// The session ended; `unacked` is what it sent or queued that its client never
    /// acknowledged (XEP-0198), for the router to store or answer.
    async fn unbind(&self, jid: &Jid, conn: u64, unacked: Vec<Routed>);
    /// Routes a stanza from a session. With `sm` (a resumable session, XEP-0198) it
    /// returns only once a router holds it, so the `h` the client is told never counts a
    /// stanza that would die with this edge.
    async fn submit(&self, stanza: Stanza, sm: Option<SmCount>);
    /// XEP-0357: a message reached session `jid` while it is detached (XEP-0198): its
    /// account's devices are notified, as for a message stored offline.
    async fn notify_detached(&self, jid: &Jid, message: Routed);
    /// XEP-0198: moves resumable session `previd` of `account`, held by another edge
    /// (alive, or dead and its session kept by the routers), to this edge's connection
    /// `conn` and returns its state, against which the client's `h` is checked; `None`
    /// when no other edge holds it. One process is one edge: by default there is no other.
    async fn take_session(
        &self,
        previd: &str,
        account: &Jid,
        conn: u64,
        h: Option<u32>,
    ) -> Option<SmState> {
        let _ = (previd, account, conn, h);
        None
    }
}

/// A stanza from a resumable session (XEP-0198): its connection, and the number of its
/// client's stanzas handled with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmCount {
    pub conn: u64,
    pub handled: u32,
}
