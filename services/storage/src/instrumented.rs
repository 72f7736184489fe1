//! Storage calls timed and counted per backend and operation
//! (`switchyard_storage_call_duration_seconds`, `switchyard_storage_errors_total`): a
//! wrapper that implements every trait by delegating to the backend it wraps.
//!
//! Each thread resolves an operation's duration series once and keeps it, found again
//! by where the backend's and the operation's names (string constants) are: a call then
//! hashes two addresses, where a label lookup would hash both names, take the vector's
//! lock and clone the series each time.

use crate::traits::{
    AccountStore, BlockStore, DocumentQuota, DocumentStore, Lookup, OfflineQuota, OfflineStore,
    OnlinePage, RosterStore, SessionEdit, SessionRecord, SessionRegistry, Sessions,
};
use crate::{Change, Roster, RosterEdit, RosterItem, RosterUpdate, StorageError};
use async_trait::async_trait;
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};
use switchyard_core::sasl::StoredCredentials;
use switchyard_core::Jid;
use switchyard_telemetry as metrics;
use tokio::sync::mpsc;

thread_local! {
    /// This thread's duration series, by the addresses of (backend, operation).
    static DURATIONS: RefCell<HashMap<(Address, Address), metrics::Histogram>> =
        RefCell::default();
}

/// Where a name constant is, and its length (a constant that begins another may share
/// its start).
type Address = (usize, usize);

fn address(name: &'static str) -> Address {
    (name.as_ptr() as usize, name.len())
}

/// Records a call's duration when dropped: when the call returned, and also when it was
/// cancelled (a timeout around a hung backend), so slow calls are never left out.
struct Timed {
    backend: &'static str,
    op: &'static str,
    started: Instant,
}

impl Drop for Timed {
    fn drop(&mut self) {
        let seconds = self.started.elapsed().as_secs_f64();
        // Not during the thread's own teardown, when its series are gone.
        let _ = DURATIONS.try_with(|series| {
            series
                .borrow_mut()
                .entry((address(self.backend), address(self.op)))
                .or_insert_with(|| {
                    metrics::STORAGE_DURATION.with_label_values(&[self.backend, self.op])
                })
                .observe(seconds)
        });
    }
}

#[derive(Debug)]
pub struct Instrumented<B> {
    inner: B,
    backend: &'static str,
}

impl<B> Instrumented<B> {
    /// `backend` names it in the metrics: `postgres`, `redis`, `sqlite` or `memory`.
    pub fn new(inner: B, backend: &'static str) -> Self {
        Self { inner, backend }
    }

    async fn timed<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        let timed = Timed {
            backend: self.backend,
            op,
            started: Instant::now(),
        };
        let result = call.await;
        drop(timed);
        if let Err(StorageError::Unavailable(_)) = &result {
            metrics::STORAGE_ERRORS
                .with_label_values(&[self.backend, op])
                .inc();
        }
        result
    }
}

#[async_trait]
impl<B: AccountStore> AccountStore for Instrumented<B> {
    async fn create(&self, account: &Jid, creds: &StoredCredentials) -> Result<(), StorageError> {
        self.timed("account_create", self.inner.create(account, creds))
            .await
    }
    async fn set_credentials(
        &self,
        account: &Jid,
        creds: &StoredCredentials,
    ) -> Result<(), StorageError> {
        self.timed(
            "account_set_credentials",
            self.inner.set_credentials(account, creds),
        )
        .await
    }
    async fn credentials(&self, account: &Jid) -> Result<Option<StoredCredentials>, StorageError> {
        self.timed("account_credentials", self.inner.credentials(account))
            .await
    }
    async fn remove(&self, account: &Jid) -> Result<bool, StorageError> {
        self.timed("account_remove", self.inner.remove(account))
            .await
    }
    async fn list(&self) -> Result<Vec<Jid>, StorageError> {
        self.timed("account_list", self.inner.list()).await
    }
}

#[async_trait]
impl<B: RosterStore> RosterStore for Instrumented<B> {
    async fn roster(&self, account: &Jid) -> Result<Roster, StorageError> {
        self.timed("roster_get", self.inner.roster(account)).await
    }
    async fn item(&self, account: &Jid, contact: &Jid) -> Result<Option<RosterItem>, StorageError> {
        self.timed("roster_item", self.inner.item(account, contact))
            .await
    }
    async fn update(
        &self,
        account: &Jid,
        contact: &Jid,
        edit: RosterEdit,
    ) -> Result<RosterUpdate, StorageError> {
        self.timed("roster_update", self.inner.update(account, contact, edit))
            .await
    }
}

#[async_trait]
impl<B: OfflineStore> OfflineStore for Instrumented<B> {
    async fn push_within(
        &self,
        account: &Jid,
        stanza: &str,
        quota: OfflineQuota,
    ) -> Result<(), StorageError> {
        self.timed(
            "offline_push",
            self.inner.push_within(account, stanza, quota),
        )
        .await
    }
    async fn take(&self, account: &Jid) -> Result<Vec<String>, StorageError> {
        self.timed("offline_take", self.inner.take(account)).await
    }
    async fn held(&self, account: &Jid) -> Result<Vec<String>, StorageError> {
        self.timed("offline_held", self.inner.held(account)).await
    }
}

#[async_trait]
impl<B: BlockStore> BlockStore for Instrumented<B> {
    async fn blocked(&self, account: &Jid) -> Result<Vec<Jid>, StorageError> {
        self.timed("blocks_get", self.inner.blocked(account)).await
    }
    async fn block(&self, account: &Jid, jids: &[Jid]) -> Result<(), StorageError> {
        self.timed("blocks_add", self.inner.block(account, jids))
            .await
    }
    async fn unblock(&self, account: &Jid, jids: &[Jid]) -> Result<(), StorageError> {
        self.timed("blocks_remove", self.inner.unblock(account, jids))
            .await
    }
}

#[async_trait]
impl<B: DocumentStore> DocumentStore for Instrumented<B> {
    async fn get(&self, account: &Jid, key: &str) -> Result<Option<String>, StorageError> {
        self.timed("document_get", self.inner.get(account, key))
            .await
    }
    async fn family(
        &self,
        account: &Jid,
        family: &str,
    ) -> Result<Vec<(String, String)>, StorageError> {
        self.timed("document_family", self.inner.family(account, family))
            .await
    }
    async fn put(&self, account: &Jid, key: &str, value: Option<&str>) -> Result<(), StorageError> {
        self.timed("document_put", self.inner.put(account, key, value))
            .await
    }
    async fn put_within(
        &self,
        account: &Jid,
        family: &str,
        key: &str,
        value: &str,
        quota: DocumentQuota,
    ) -> Result<(), StorageError> {
        let put = self.inner.put_within(account, family, key, value, quota);
        self.timed("document_put", put).await
    }
}

#[async_trait]
impl<B: SessionRegistry> SessionRegistry for Instrumented<B> {
    async fn bind(&self, record: SessionRecord) -> Result<Option<SessionRecord>, StorageError> {
        self.timed("session_bind", self.inner.bind(record)).await
    }
    async fn unbind(&self, jid: &Jid, conn: u64) -> Result<Option<SessionRecord>, StorageError> {
        self.timed("session_unbind", self.inner.unbind(jid, conn))
            .await
    }
    async fn update(
        &self,
        jid: &Jid,
        conn: u64,
        edit: SessionEdit,
    ) -> Result<Option<SessionRecord>, StorageError> {
        self.timed("session_update", self.inner.update(jid, conn, edit))
            .await
    }
    async fn relocate(
        &self,
        jid: &Jid,
        from: (&str, u64),
        to: (&str, u64),
    ) -> Result<Option<SessionRecord>, StorageError> {
        self.timed("session_relocate", self.inner.relocate(jid, from, to))
            .await
    }
    async fn sessions(&self, bare: &Jid) -> Result<Sessions, StorageError> {
        self.timed("session_lookup", self.inner.sessions(bare))
            .await
    }
    async fn heartbeat(&self, edge: &str, ttl: Duration) -> Result<(), StorageError> {
        self.timed("edge_heartbeat", self.inner.heartbeat(edge, ttl))
            .await
    }
    async fn dead_edges(&self) -> Result<Vec<String>, StorageError> {
        self.timed("edge_scan", self.inner.dead_edges()).await
    }
    async fn reap(&self, edge: &str) -> Result<Vec<SessionRecord>, StorageError> {
        self.timed("edge_reap", self.inner.reap(edge)).await
    }
    async fn online(
        &self,
        domain: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<OnlinePage, StorageError> {
        self.timed("online_page", self.inner.online(domain, cursor, limit))
            .await
    }
    async fn online_count(&self) -> Result<u64, StorageError> {
        self.timed("online_count", self.inner.online_count()).await
    }
    async fn reconcile(
        &self,
        edge: &str,
        held: &[(Jid, u64)],
    ) -> Result<Vec<SessionRecord>, StorageError> {
        self.timed("edge_reconcile", self.inner.reconcile(edge, held))
            .await
    }
    async fn lookup(&self, bare: &Jid) -> Result<Lookup, StorageError> {
        self.timed("session_lookup", self.inner.lookup(bare)).await
    }
    async fn pending(&self, bare: &Jid) -> Result<u64, StorageError> {
        self.timed("offline_pending", self.inner.pending(bare))
            .await
    }
    async fn add_pending(&self, bare: &Jid) -> Result<u64, StorageError> {
        self.timed("offline_pending_add", self.inner.add_pending(bare))
            .await
    }
    async fn clear_pending(&self, bare: &Jid, seen: u64) -> Result<bool, StorageError> {
        let clear = self.inner.clear_pending(bare, seen);
        self.timed("offline_pending_clear", clear).await
    }
    async fn lock_flush(
        &self,
        bare: &Jid,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StorageError> {
        let lock = self.inner.lock_flush(bare, holder, ttl);
        self.timed("offline_flush_lock", lock).await
    }
    async fn unlock_flush(&self, bare: &Jid, holder: &str) -> Result<(), StorageError> {
        let unlock = self.inner.unlock_flush(bare, holder);
        self.timed("offline_flush_unlock", unlock).await
    }
    async fn epoch(&self) -> Result<String, StorageError> {
        self.timed("epoch", self.inner.epoch()).await
    }
    fn forget(&self, bare: &Jid) {
        self.inner.forget(bare);
    }
    fn changes(&self) -> Option<mpsc::Receiver<Change>> {
        self.inner.changes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(op: &str) -> metrics::Histogram {
        metrics::STORAGE_DURATION.with_label_values(&["instrumented-test", op])
    }

    /// A call that returns and one cancelled midway (a timeout around a hung backend) are
    /// both timed, the cancelled one with the time it was waited for.
    #[tokio::test]
    async fn returned_and_cancelled_calls_are_timed() {
        let storage = Instrumented::new((), "instrumented-test");
        let returned = storage.timed("returns", async { Ok::<_, StorageError>(()) });
        assert!(returned.await.is_ok());
        let hung = storage.timed("hangs", std::future::pending::<Result<(), StorageError>>());
        let waited = Duration::from_millis(20);
        assert!(tokio::time::timeout(waited, hung).await.is_err());
        assert_eq!(series("returns").get_sample_count(), 1);
        assert_eq!(series("hangs").get_sample_count(), 1);
        assert!(series("hangs").get_sample_sum() >= waited.as_secs_f64());
    }
}
