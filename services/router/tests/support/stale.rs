//! A registry that answers the first lookup of one account with nothing: the view of a
//! router whose lookup ran just before that account's login (or while the registry was
//! empty after losing its data).

use async_trait::async_trait;
use std::time::Duration;
use switchyard_core::Jid;
use switchyard_storage::{
    Lookup, MemoryRegistry, OnlinePage, SessionEdit, SessionRecord, SessionRegistry, Sessions,
    StorageError,
};

#[derive(Debug, Default)]
pub struct StaleOnce {
    inner: MemoryRegistry,
    /// The account whose next lookup finds nothing.
    pub stale: std::sync::Mutex<Option<Jid>>,
    /// The registry's epoch when set (a new one: it lost its data).
    pub epoch: std::sync::Mutex<Option<String>>,
    /// Epoch reads that fail before one succeeds (the registry cannot be reached).
    pub unreadable: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl SessionRegistry for StaleOnce {
    async fn bind(&self, r: SessionRecord) -> Result<Option<SessionRecord>, StorageError> {
        self.inner.bind(r).await
    }
    async fn unbind(&self, j: &Jid, c: u64) -> Result<Option<SessionRecord>, StorageError> {
        self.inner.unbind(j, c).await
    }
    async fn update(
        &self,
        j: &Jid,
        c: u64,
        e: SessionEdit,
    ) -> Result<Option<SessionRecord>, StorageError> {
        self.inner.update(j, c, e).await
    }
    async fn relocate(
        &self,
        j: &Jid,
        from: (&str, u64),
        to: (&str, u64),
    ) -> Result<Option<SessionRecord>, StorageError> {
        self.inner.relocate(j, from, to).await
    }
    async fn sessions(&self, bare: &Jid) -> Result<Sessions, StorageError> {
        Ok(self.lookup(bare).await?.sessions)
    }
    async fn lookup(&self, bare: &Jid) -> Result<Lookup, StorageError> {
        let stale = {
            let mut stale = self.stale.lock().unwrap();
            stale.take_if(|s| s == bare).is_some()
        };
        if stale {
            return Ok(Lookup::default());
        }
        self.inner.lookup(bare).await
    }
    async fn pending(&self, b: &Jid) -> Result<u64, StorageError> {
        self.inner.pending(b).await
    }
    async fn add_pending(&self, b: &Jid) -> Result<u64, StorageError> {
        self.inner.add_pending(b).await
    }
    async fn clear_pending(&self, b: &Jid, seen: u64) -> Result<bool, StorageError> {
        self.inner.clear_pending(b, seen).await
    }
    async fn lock_flush(&self, b: &Jid, holder: &str, t: Duration) -> Result<bool, StorageError> {
        self.inner.lock_flush(b, holder, t).await
    }
    async fn unlock_flush(&self, b: &Jid, holder: &str) -> Result<(), StorageError> {
        self.inner.unlock_flush(b, holder).await
    }
    async fn heartbeat(&self, e: &str, t: Duration) -> Result<(), StorageError> {
        self.inner.heartbeat(e, t).await
    }
    async fn dead_edges(&self) -> Result<Vec<String>, StorageError> {
        self.inner.dead_edges().await
    }
    async fn reap(&self, e: &str) -> Result<Vec<SessionRecord>, StorageError> {
        self.inner.reap(e).await
    }
    async fn online(
        &self,
        d: Option<&str>,
        c: Option<&str>,
        n: usize,
    ) -> Result<OnlinePage, StorageError> {
        self.inner.online(d, c, n).await
    }
    async fn online_count(&self) -> Result<u64, StorageError> {
        self.inner.online_count().await
    }
    async fn reconcile(
        &self,
        e: &str,
        held: &[(Jid, u64)],
    ) -> Result<Vec<SessionRecord>, StorageError> {
        self.inner.reconcile(e, held).await
    }
    async fn epoch(&self) -> Result<String, StorageError> {
        use std::sync::atomic::Ordering;
        let down = self.unreadable.load(Ordering::SeqCst);
        if down > 0 {
            self.unreadable.store(down - 1, Ordering::SeqCst);
            return Err(StorageError::Unavailable("test: unreachable".into()));
        }
        let set = self.epoch.lock().unwrap().clone();
        match set {
            Some(epoch) => Ok(epoch),
            None => self.inner.epoch().await,
        }
    }
}
