//! The storage traits. Accounts and their data are keyed by bare JID (`user@domain`).

use crate::{Roster, RosterEdit, RosterItem, RosterUpdate, StorageError};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::sasl::StoredCredentials;
use switchyard_core::Jid;
// Moved to `switchyard-model` (the edge uses them without a backend); named here too, so
// `crate::traits::…` paths keep working.
pub use switchyard_model::{FailureCount, LoginFailureCounts, LoginFailures, SessionRecord};

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
    /// Removes an account and everything stored for it; `false` if there was none.
    async fn remove(&self, account: &Jid) -> Result<bool, StorageError>;
    /// All accounts, sorted.
    async fn list(&self) -> Result<Vec<Jid>, StorageError>;
}

/// Rosters and subscription state (RFC 6121 §2, §3).
#[async_trait]
pub trait RosterStore: Send + Sync + std::fmt::Debug {
    /// Every row of the account's roster (listed or not) and the current version.
    async fn roster(&self, account: &Jid) -> Result<Roster, StorageError>;
    async fn item(&self, account: &Jid, contact: &Jid) -> Result<Option<RosterItem>, StorageError>;
    /// Applies `edit` to the contact's row atomically. When it returns a row, the roster
    /// version is incremented and stamped on the row, which is stored and returned.
    async fn update(
        &self,
        account: &Jid,
        contact: &Jid,
        edit: RosterEdit,
    ) -> Result<RosterUpdate, StorageError>;
}

/// How much offline storage (XEP-0160) one account may hold: a count of messages and a
/// total of their bytes (the UTF-8 length of the stored stanzas). Both bound what a sender
/// can make the server keep for someone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfflineQuota {
    pub messages: usize,
    pub bytes: usize,
}

impl OfflineQuota {
    /// No bound: for putting back what was already accepted within a quota.
    pub const UNLIMITED: Self = Self {
        messages: usize::MAX,
        bytes: usize::MAX,
    };
}

/// Messages held for accounts with no available resource (XEP-0160).
#[async_trait]
pub trait OfflineStore: Send + Sync + std::fmt::Debug {
    /// Appends a serialized stanza unless the account would then hold more than
    /// `quota.messages` stanzas or more than `quota.bytes` bytes of them:
    /// [`StorageError::QuotaExceeded`]. The check and the append are one atomic step with
    /// respect to every other push for the account, in every process, so concurrent pushes
    /// never overshoot the quota.
    async fn push_within(
        &self,
        account: &Jid,
        stanza: &str,
        quota: OfflineQuota,
    ) -> Result<(), StorageError>;
    /// [`push_within`](Self::push_within) bounded by a message count only, with no byte
    /// bound: for putting back a message already accepted within a full quota.
    async fn push(&self, account: &Jid, stanza: &str, quota: usize) -> Result<(), StorageError> {
        let quota = OfflineQuota {
            messages: quota,
            bytes: usize::MAX,
        };
        self.push_within(account, stanza, quota).await
    }
    /// Removes and returns every held stanza, oldest first.
    async fn take(&self, account: &Jid) -> Result<Vec<String>, StorageError>;
    /// Every held stanza, oldest first, left in place (an administrator's count, an
    /// export). Bounded by the quota the pushes kept.
    async fn held(&self, account: &Jid) -> Result<Vec<String>, StorageError>;
}

/// Block lists (XEP-0191). Entries are JIDs of any form (domain, bare or full).
#[async_trait]
pub trait BlockStore: Send + Sync + std::fmt::Debug {
    /// The block list, sorted.
    async fn blocked(&self, account: &Jid) -> Result<Vec<Jid>, StorageError>;
    async fn block(&self, account: &Jid, jids: &[Jid]) -> Result<(), StorageError>;
    /// Unblocks the given JIDs; an empty slice unblocks everyone.
    async fn unblock(&self, account: &Jid, jids: &[Jid]) -> Result<(), StorageError>;
}

/// How much one family of an account's documents (the keys starting with one prefix,
/// e.g. private XML) may hold: a number of keys and a total of bytes, counting each
/// document's key and value (UTF-8 lengths).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentQuota {
    pub keys: usize,
    pub bytes: usize,
}

/// Small per-account XML documents keyed by name: the vCard (XEP-0054), private XML
/// (XEP-0049, one key per namespace) and last activity (XEP-0012).
#[async_trait]
pub trait DocumentStore: Send + Sync + std::fmt::Debug {
    async fn get(&self, account: &Jid, key: &str) -> Result<Option<String>, StorageError>;
    /// The account's documents whose keys start with `family`, in key order.
    async fn family(
        &self,
        account: &Jid,
        family: &str,
    ) -> Result<Vec<(String, String)>, StorageError>;
    /// Stores `value` under `key`, or removes the key when `value` is `None`.
    async fn put(&self, account: &Jid, key: &str, value: Option<&str>) -> Result<(), StorageError>;
    /// Stores `value` under `key` (which starts with `family`) unless the account's keys
    /// starting with `family` would then exceed `quota`: [`StorageError::QuotaExceeded`].
    /// Replacing a key counts its new value instead of its old one. The check and the
    /// write are one atomic step with respect to every other bounded put for the account.
    async fn put_within(
        &self,
        account: &Jid,
        family: &str,
        key: &str,
        value: &str,
        quota: DocumentQuota,
    ) -> Result<(), StorageError>;
}

/// Whether `held` plus one more entry of `bytes` stays within `quota`, saturating (shared
/// by the backends so they agree on the edge).
pub(crate) fn fits(held: (usize, usize), bytes: usize, quota: (usize, usize)) -> bool {
    held.0.saturating_add(1) <= quota.0 && held.1.saturating_add(bytes) <= quota.1
}

/// An in-place change to a session record; a store may apply it more than once (to a
/// fresh copy) when it retries an optimistic update.
pub type SessionEdit = Box<dyn Fn(&mut SessionRecord) + Send + Sync>;

/// An account's sessions as read: shared, never copied per reader (a cache hands out the
/// list it holds; an edit makes a new list).
pub type Sessions = Arc<Vec<SessionRecord>>;

/// An account's sessions and its offline-pending count, read together for routing a
/// message (one round trip, one cache entry).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookup {
    pub sessions: Sessions,
    /// Messages stored offline and not yet cleared by a flush (see
    /// [`SessionRegistry::add_pending`]). While it is not zero, a message to the bare JID
    /// is stored behind the held ones instead of overtaking them live.
    pub pending: u64,
}

/// Who is online where (RFC 6120 §7: one session per full JID), and the per-account
/// state that orders offline storage against live delivery: the offline-pending count
/// and the flush lock (the router's `offline` module says how they are used).
#[async_trait]
pub trait SessionRegistry: Send + Sync + std::fmt::Debug {
    /// Registers a session; returns the record it replaced for the same full JID on
    /// another connection, which the caller must close with a `conflict` stream error
    /// (RFC 6120 §7.7.2.2). The same connection binding again (a resync after the
    /// registry lost its data) replaces nothing.
    async fn bind(&self, record: SessionRecord) -> Result<Option<SessionRecord>, StorageError>;
    /// Removes the session if it still belongs to `conn` (a newer session is kept) and
    /// returns what was removed.
    async fn unbind(&self, jid: &Jid, conn: u64) -> Result<Option<SessionRecord>, StorageError>;
    /// Applies `edit` to the session if it still belongs to `conn`; returns the new record.
    async fn update(
        &self,
        jid: &Jid,
        conn: u64,
        edit: SessionEdit,
    ) -> Result<Option<SessionRecord>, StorageError>;
    /// XEP-0198: moves the session of `jid` from connection `from.1` of edge `from.0` to
    /// connection `to.1` of edge `to.0`, everything else kept, if it is still where
    /// `from` says, as one compare-and-swap: of two resumptions racing for a session,
    /// one moves it and the other finds it gone. Returns the moved record.
    async fn relocate(
        &self,
        jid: &Jid,
        from: (&str, u64),
        to: (&str, u64),
    ) -> Result<Option<SessionRecord>, StorageError>;
    /// All sessions of a bare JID.
    async fn sessions(&self, bare: &Jid) -> Result<Sessions, StorageError>;
    /// Marks an edge alive for `ttl`. Routers call it while the edge's link to them is up,
    /// so an edge is alive as long as any router hears from it.
    async fn heartbeat(&self, edge: &str, ttl: Duration) -> Result<(), StorageError>;
    /// Edges that hold sessions but whose liveness has expired.
    async fn dead_edges(&self) -> Result<Vec<String>, StorageError>;
    /// Removes every session of `edge`. Each removed record is returned to exactly one
    /// caller, however many call at once, so its unavailable presence goes out once.
    async fn reap(&self, edge: &str) -> Result<Vec<SessionRecord>, StorageError>;
    /// Brings the registry in line with what a live `edge` really holds, for when its
    /// unbinds were lost (a mass logout under load, no router link up): removes every
    /// session of `edge` whose `(full JID, connection id)` is not in `held`, with its
    /// index entry, and returns the removed records, so the caller sends their
    /// unavailable presence. As with [`reap`](Self::reap), each removed record is
    /// returned to exactly one caller, whatever unbinds or reconciles run at once.
    ///
    /// - `held` must name every connection whose bind the edge has sent (answered or
    ///   not) and whose unbind it has not sent: a session whose bind was in flight when
    ///   the edge took its snapshot, and missing from it, would be removed.
    /// - Sessions of other edges are never touched, even with the same JID and connection
    ///   id; sessions in `held` that the registry lacks are not added (that is `bind`).
    /// - What could not be removed (the backend failed part-way) stays for the next call.
    async fn reconcile(
        &self,
        edge: &str,
        held: &[(Jid, u64)],
    ) -> Result<Vec<SessionRecord>, StorageError>;
    /// [`sessions`](Self::sessions) and the offline-pending count, in one round trip.
    async fn lookup(&self, bare: &Jid) -> Result<Lookup, StorageError>;
    /// The offline-pending count, read afresh (never from a cache); 0 when never counted.
    async fn pending(&self, bare: &Jid) -> Result<u64, StorageError>;
    /// Counts one message stored offline for `bare` (after it was stored); returns the
    /// new count. Any bare JID may be counted: the registry does not know accounts.
    async fn add_pending(&self, bare: &Jid) -> Result<u64, StorageError>;
    /// Clears the count if it still equals `seen`, atomically: `false` (and the count
    /// kept) when a message was counted since `seen` was read. A zero count with
    /// `seen == 0` is already clear: `true`.
    async fn clear_pending(&self, bare: &Jid, seen: u64) -> Result<bool, StorageError>;
    /// Takes the account's flush lock for `holder` until `ttl` passes, or renews it for
    /// `ttl` when `holder` already holds it; `false` while someone else holds it. A
    /// holder that crashes holds it until the TTL expires.
    async fn lock_flush(
        &self,
        bare: &Jid,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StorageError>;
    /// Releases the flush lock if `holder` still holds it (one that expired and was
    /// taken by another is left to that one).
    async fn unlock_flush(&self, bare: &Jid, holder: &str) -> Result<(), StorageError>;
    /// Identifies the registry's current contents: it changes when the registry lost its
    /// data (a Redis restarted empty), so live sessions must be registered again.
    async fn epoch(&self) -> Result<String, StorageError>;
    /// One page of the sessions bound anywhere, in a stable order: about `limit` (a
    /// backend that scans may give a few more) sessions of `domain` (every domain when `None`) from where `cursor` (the previous
    /// page's [`OnlinePage::next`], `None` for the first page) left off. A page may hold
    /// fewer than `limit` even when more follow; only `next == None` means the end. A
    /// session bound or ended while pages are read may be missed or listed twice.
    async fn online(
        &self,
        domain: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<OnlinePage, StorageError>;
    /// How many sessions are bound anywhere (those of edges found dead and not yet reaped
    /// included).
    async fn online_count(&self) -> Result<u64, StorageError>;
    /// Drops anything cached about `bare` (a delivery found a session gone).
    fn forget(&self, _bare: &Jid) {}
    /// Accounts whose sessions other processes changed, for caches to drop; `None` when
    /// every change goes through this handle anyway.
    fn changes(&self) -> Option<tokio::sync::mpsc::Receiver<Change>> {
        None
    }
}

/// A bound session as the cluster-wide listing names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Online {
    pub jid: Jid,
    pub edge: String,
    pub conn: u64,
}

/// One page of [`SessionRegistry::online`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OnlinePage {
    pub sessions: Vec<Online>,
    /// Where the next page starts (opaque); `None` after the last page.
    pub next: Option<String>,
}

/// A change another process made to the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The sessions of one account changed.
    Account(Jid),
    /// Changes may have been missed (the notification link broke): forget everything.
    Unknown,
}
