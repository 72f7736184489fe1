//! Every storage and registry call the router makes, counted: the round trips an answer
//! costs, which is what its timing is made of with a real database. Tests compare the
//! counts of two probes to show that their answers take the same work.

use async_trait::async_trait;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::sasl::StoredCredentials;
use switchyard_core::Jid;
use switchyard_storage::{
    AccountStore, BlockStore, Change, DocumentQuota, DocumentStore, Lookup, MemoryStore,
    OfflineQuota, OfflineStore, OnlinePage, Roster, RosterEdit, RosterItem, RosterStore,
    RosterUpdate, SessionEdit, SessionRecord, SessionRegistry, Sessions, StorageError,
};

/// Wraps a store or registry, adding one to `calls` per call.
#[derive(Debug)]
pub struct Counted<T: ?Sized> {
    pub inner: Arc<T>,
    pub calls: Arc<AtomicUsize>,
}

impl<T: ?Sized> Counted<T> {
    fn tick(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl AccountStore for Counted<MemoryStore> {
    async fn create(&self, a: &Jid, c: &StoredCredentials) -> Result<(), StorageError> {
        self.tick();
        self.inner.create(a, c).await
    }
    async fn set_credentials(&self, a: &Jid, c: &StoredCredentials) -> Result<(), StorageError> {
        self.tick();
        self.inner.set_credentials(a, c).await
    }
    async fn credentials(&self, a: &Jid) -> Result<Option<StoredCredentials>, StorageError> {
        self.tick();
        self.inner.credentials(a).await
    }
    async fn remove(&self, a: &Jid) -> Result<bool, StorageError> {
        self.tick();
        self.inner.remove(a).await
    }
    async fn list(&self) -> Result<Vec<Jid>, StorageError> {
        self.tick();
        self.inner.list().await
    }
}

#[async_trait]
impl RosterStore for Counted<MemoryStore> {
    async fn roster(&self, a: &Jid) -> Result<Roster, StorageError> {
        self.tick();
        self.inner.roster(a).await
    }
    async fn item(&self, a: &Jid, c: &Jid) -> Result<Option<RosterItem>, StorageError> {
        self.tick();
        self.inner.item(a, c).await
    }
    async fn update(
        &self,
        a: &Jid,
        c: &Jid,
        edit: RosterEdit,
    ) -> Result<RosterUpdate, StorageError> {
        self.tick();
        self.inner.update(a, c, edit).await
    }
}

#[async_trait]
impl OfflineStore for Counted<MemoryStore> {
    async fn push_within(&self, a: &Jid, s: &str, q: OfflineQuota) -> Result<(), StorageError> {
        self.tick();
        self.inner.push_within(a, s, q).await
    }
    async fn take(&self, a: &Jid) -> Result<Vec<String>, StorageError> {
        self.tick();
        self.inner.take(a).await
    }
    async fn held(&self, a: &Jid) -> Result<Vec<String>, StorageError> {
        self.tick();
        self.inner.held(a).await
    }
}

#[async_trait]
impl BlockStore for Counted<MemoryStore> {
    async fn blocked(&self, a: &Jid) -> Result<Vec<Jid>, StorageError> {
        self.tick();
        self.inner.blocked(a).await
    }
    async fn block(&self, a: &Jid, j: &[Jid]) -> Result<(), StorageError> {
        self.tick();
        self.inner.block(a, j).await
    }
    async fn unblock(&self, a: &Jid, j: &[Jid]) -> Result<(), StorageError> {
        self.tick();
        self.inner.unblock(a, j).await
    }
}

#[async_trait]
impl DocumentStore for Counted<MemoryStore> {
    async fn get(&self, a: &Jid, k: &str) -> Result<Option<String>, StorageError> {
        self.tick();
        DocumentStore::get(&*self.inner, a, k).await
    }
    async fn family(&self, a: &Jid, f: &str) -> Result<Vec<(String, String)>, StorageError> {
        self.tick();
        self.inner.family(a, f).await
    }
    async fn put(&self, a: &Jid, k: &str, v: Option<&str>) -> Result<(), StorageError> {
        self.tick();
        self.inner.put(a, k, v).await
    }
    async fn put_within(
        &self,
        a: &Jid,
        family: &str,
        k: &str,
        v: &str,
        q: DocumentQuota,
    ) -> Result<(), StorageError> {
        self.tick();
        self.inner.put_within(a, family, k, v, q).await
    }
}

#[async_trait]
impl SessionRegistry for Counted<dyn SessionRegistry> {
    async fn bind(&self, r: SessionRecord) -> Result<Option<SessionRecord>, StorageError> {
        self.tick();
        self.inner.bind(r).await
    }
    async fn unbind(&self, j: &Jid, c: u64) -> Result<Option<SessionRecord>, StorageError> {
        self.tick();
        self.inner.unbind(j, c).await
    }
    async fn update(
        &self,
        j: &Jid,
        c: u64,
        e: SessionEdit,
    ) -> Result<Option<SessionRecord>, StorageError> {
        self.tick();
        self.inner.update(j, c, e).await
    }
    async fn relocate(
        &self,
        j: &Jid,
        from: (&str, u64),
        to: (&str, u64),
    ) -> Result<Option<SessionRecord>, StorageError> {
        self.tick();
        self.inner.relocate(j, from, to).await
    }
    async fn sessions(&self, b: &Jid) -> Result<Sessions, StorageError> {
        self.tick();
        self.inner.sessions(b).await
    }
    async fn heartbeat(&self, e: &str, t: Duration) -> Result<(), StorageError> {
        self.tick();
        self.inner.heartbeat(e, t).await
    }
    async fn dead_edges(&self) -> Result<Vec<String>, StorageError> {
        self.tick();
        self.inner.dead_edges().await
    }
    async fn reap(&self, e: &str) -> Result<Vec<SessionRecord>, StorageError> {
        self.tick();
        self.inner.reap(e).await
    }
    async fn online(
        &self,
        d: Option<&str>,
        c: Option<&str>,
        n: usize,
    ) -> Result<OnlinePage, StorageError> {
        self.tick();
        self.inner.online(d, c, n).await
    }
    async fn online_count(&self) -> Result<u64, StorageError> {
        self.tick();
        self.inner.online_count().await
    }
    async fn reconcile(
        &self,
        e: &str,
        held: &[(Jid, u64)],
    ) -> Result<Vec<SessionRecord>, StorageError> {
        self.tick();
        self.inner.reconcile(e, held).await
    }
    async fn lookup(&self, b: &Jid) -> Result<Lookup, StorageError> {
        self.tick();
        self.inner.lookup(b).await
    }
    async fn pending(&self, b: &Jid) -> Result<u64, StorageError> {
        self.tick();
        self.inner.pending(b).await
    }
    async fn add_pending(&self, b: &Jid) -> Result<u64, StorageError> {
        self.tick();
        self.inner.add_pending(b).await
    }
    async fn clear_pending(&self, b: &Jid, seen: u64) -> Result<bool, StorageError> {
        self.tick();
        self.inner.clear_pending(b, seen).await
    }
    async fn lock_flush(&self, b: &Jid, holder: &str, t: Duration) -> Result<bool, StorageError> {
        self.tick();
        self.inner.lock_flush(b, holder, t).await
    }
    async fn unlock_flush(&self, b: &Jid, holder: &str) -> Result<(), StorageError> {
        self.tick();
        self.inner.unlock_flush(b, holder).await
    }
    async fn epoch(&self) -> Result<String, StorageError> {
        self.tick();
        self.inner.epoch().await
    }
    fn forget(&self, bare: &Jid) {
        self.inner.forget(bare);
    }
    fn changes(&self) -> Option<tokio::sync::mpsc::Receiver<Change>> {
        self.inner.changes()
    }
}
