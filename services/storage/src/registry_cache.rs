//! A cache of the session registry in front of a shared one (Redis), so that a steady
//! conversation costs no registry round trip per message (DESIGN: the hot path).
//!
//! - Only non-empty answers are cached: "no session" is always asked again, so a user
//!   who just logged in through another router is never sent to offline storage by a
//!   stale entry.
//! - Writes through this cache drop the account's entry at once; writes by other routers
//!   arrive as change notifications (Redis pub/sub) and drop it there. Should the
//!   notifications break, everything is dropped, and entries also expire after `ttl`.
//! - A delivery that finds a session gone calls [`SessionRegistry::forget`].
//! - Bounded: at `capacity` accounts the cache starts over.

use crate::traits::{Change, SessionEdit, SessionRecord, SessionRegistry};
use crate::StorageError;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchyard_core::Jid;

type Entries = HashMap<Jid, (Instant, Arc<[SessionRecord]>)>;

#[derive(Debug)]
pub struct CachedRegistry {
    inner: Arc<dyn SessionRegistry>,
    capacity: usize,
    ttl: Duration,
    entries: Arc<Mutex<Entries>>,
}

fn lock(m: &Mutex<Entries>) -> std::sync::MutexGuard<'_, Entries> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl CachedRegistry {
    /// Wraps `inner`, following its change notifications if it has any.
    pub fn new(inner: Arc<dyn SessionRegistry>, capacity: usize, ttl: Duration) -> Self {
        let entries: Arc<Mutex<Entries>> = Arc::default();
        if let Some(mut changes) = inner.changes() {
            let weak = Arc::downgrade(&entries);
            tokio::spawn(async move {
                while let Some(change) = changes.recv().await {
                    let Some(entries) = weak.upgrade() else {
                        return;
                    };
                    match change {
                        Change::Account(bare) => {
                            lock(&entries).remove(&bare);
                        }
                        Change::Unknown => lock(&entries).clear(),
                    }
                }
            });
        }
        Self {
            inner,
            capacity,
            ttl,
            entries,
        }
    }
}

#[async_trait]
impl SessionRegistry for CachedRegistry {
    async fn bind(&self, record: SessionRecord) -> Result<Option<SessionRecord>, StorageError> {
        lock(&self.entries).remove(&record.jid.bare());
        self.inner.bind(record).await
    }

    async fn unbind(&self, jid: &Jid, conn: u64) -> Result<Option<SessionRecord>, StorageError> {
        lock(&self.entries).remove(&jid.bare());
        self.inner.unbind(jid, conn).await
    }

    async fn update(
        &self,
        jid: &Jid,
        conn: u64,
        edit: SessionEdit,
    ) -> Result<Option<SessionRecord>, StorageError> {
        lock(&self.entries).remove(&jid.bare());
        self.inner.update(jid, conn, edit).await
    }

    async fn sessions(&self, bare: &Jid) -> Result<Vec<SessionRecord>, StorageError> {
        if let Some((at, sessions)) = lock(&self.entries).get(bare) {
            if at.elapsed() < self.ttl {
                switchyard_telemetry::ROUTER_CACHE_HITS.inc();
                return Ok(sessions.to_vec());
            }
        }
        switchyard_telemetry::ROUTER_CACHE_MISSES.inc();
        let sessions = self.inner.sessions(bare).await?;
        if !sessions.is_empty() {
            let mut entries = lock(&self.entries);
            if entries.len() >= self.capacity {
                entries.clear();
            }
            entries.insert(bare.clone(), (Instant::now(), sessions.clone().into()));
        }
        Ok(sessions)
    }

    async fn heartbeat(&self, edge: &str, ttl: Duration) -> Result<(), StorageError> {
        self.inner.heartbeat(edge, ttl).await
    }

    async fn dead_edges(&self) -> Result<Vec<String>, StorageError> {
        self.inner.dead_edges().await
    }

    async fn reap(&self, edge: &str) -> Result<Vec<SessionRecord>, StorageError> {
        let reaped = self.inner.reap(edge).await?;
        let mut entries = lock(&self.entries);
        for r in &reaped {
            entries.remove(&r.jid.bare());
        }
        Ok(reaped)
    }

    async fn reconcile(
        &self,
        edge: &str,
        held: &[(Jid, u64)],
    ) -> Result<Vec<SessionRecord>, StorageError> {
        let removed = self.inner.reconcile(edge, held).await?;
        let mut entries = lock(&self.entries);
        for r in &removed {
            entries.remove(&r.jid.bare());
        }
        Ok(removed)
    }

    async fn epoch(&self) -> Result<String, StorageError> {
        self.inner.epoch().await
    }

    fn forget(&self, bare: &Jid) {
        lock(&self.entries).remove(bare);
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn conforms_over_memory() {
        let inner = std::sync::Arc::new(crate::MemoryRegistry::default());
        let cache = super::CachedRegistry::new(inner, 100, std::time::Duration::from_secs(60));
        crate::conformance::registry(&cache).await;
    }
}
