//! A cache of the session registry in front of a shared one (Redis), so that a steady
//! conversation costs no registry round trip per message (DESIGN: the hot path).
//!
//! - An entry holds the account's sessions and its offline-pending count
//!   ([`SessionRegistry::lookup`]), so the check that keeps a sender's live messages
//!   behind its stored ones costs nothing in a steady conversation.
//! - Only non-empty answers are cached: "no session" is always asked again, so a user
//!   who just logged in through another router is never sent to offline storage by a
//!   stale entry.
//! - Writes through this cache (sessions and the pending count) drop the account's entry
//!   before and again after the write, and a lookup that overlapped a drop does not
//!   cache what it read: so after a router's own write, its next lookup reads afresh
//!   (what keeps one sender's messages in order, its stanzas being routed by one router
//!   one at a time). Writes by other routers arrive as change notifications (Redis
//!   pub/sub) and drop it there, a little later. Should the notifications break,
//!   everything is dropped, and entries also expire after `ttl`.
//! - A delivery that finds a session gone calls [`SessionRegistry::forget`].
//! - Bounded: at `capacity` accounts the cache starts over.

use crate::traits::{Change, Lookup, SessionEdit, SessionRecord, SessionRegistry};
use crate::StorageError;
use async_trait::async_trait;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchyard_core::Jid;

/// When an entry was read, the sessions and the offline-pending count.
type Entry = (Instant, Arc<[SessionRecord]>, u64);

/// Generation stripes: a lookup whose account was invalidated while it read the inner
/// registry does not cache what it read (it may predate the change). Striped so that
/// churn on other accounts rarely stops an entry from being cached.
const STRIPES: usize = 32; // arrays up to 32 are `Default`

#[derive(Debug, Default)]
struct Shared {
    entries: Mutex<HashMap<Jid, Entry>>,
    generations: [AtomicU64; STRIPES],
}

impl Shared {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<Jid, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn generation(&self, bare: &Jid) -> &AtomicU64 {
        let mut h = DefaultHasher::new();
        bare.hash(&mut h);
        &self.generations[(h.finish() % STRIPES as u64) as usize]
    }

    /// Drops the account's entry and stops lookups in flight from caching theirs.
    fn invalidate(&self, bare: &Jid) {
        let mut entries = self.entries();
        self.generation(bare).fetch_add(1, Ordering::Relaxed);
        entries.remove(bare);
    }

    fn invalidate_all(&self) {
        let mut entries = self.entries();
        for g in &self.generations {
            g.fetch_add(1, Ordering::Relaxed);
        }
        entries.clear();
    }
}

#[derive(Debug)]
pub struct CachedRegistry {
    inner: Arc<dyn SessionRegistry>,
    capacity: usize,
    ttl: Duration,
    shared: Arc<Shared>,
}

impl CachedRegistry {
    /// Wraps `inner`, following its change notifications if it has any.
    pub fn new(inner: Arc<dyn SessionRegistry>, capacity: usize, ttl: Duration) -> Self {
        let shared: Arc<Shared> = Arc::default();
        if let Some(mut changes) = inner.changes() {
            let weak = Arc::downgrade(&shared);
            tokio::spawn(async move {
                while let Some(change) = changes.recv().await {
                    let Some(shared) = weak.upgrade() else {
                        return;
                    };
                    match change {
                        Change::Account(bare) => shared.invalidate(&bare),
                        Change::Unknown => shared.invalidate_all(),
                    }
                }
            });
        }
        Self {
            inner,
            capacity,
            ttl,
            shared,
        }
    }
}

#[async_trait]
impl SessionRegistry for CachedRegistry {
    async fn bind(&self, record: SessionRecord) -> Result<Option<SessionRecord>, StorageError> {
        let bare = record.jid.bare();
        self.shared.invalidate(&bare);
        let replaced = self.inner.bind(record).await;
        self.shared.invalidate(&bare);
        replaced
    }

    async fn unbind(&self, jid: &Jid, conn: u64) -> Result<Option<SessionRecord>, StorageError> {
        self.shared.invalidate(&jid.bare());
        let removed = self.inner.unbind(jid, conn).await;
        self.shared.invalidate(&jid.bare());
        removed
    }

    async fn update(
        &self,
        jid: &Jid,
        conn: u64,
        edit: SessionEdit,
    ) -> Result<Option<SessionRecord>, StorageError> {
        self.shared.invalidate(&jid.bare());
        let updated = self.inner.update(jid, conn, edit).await;
        self.shared.invalidate(&jid.bare());
        updated
    }

    async fn sessions(&self, bare: &Jid) -> Result<Vec<SessionRecord>, StorageError> {
        Ok(self.lookup(bare).await?.sessions)
    }

    async fn lookup(&self, bare: &Jid) -> Result<Lookup, StorageError> {
        if let Some((at, sessions, pending)) = self.shared.entries().get(bare) {
            if at.elapsed() < self.ttl {
                switchyard_telemetry::ROUTER_CACHE_HITS.inc();
                let sessions = sessions.to_vec();
                return Ok(Lookup {
                    sessions,
                    pending: *pending,
                });
            }
        }
        switchyard_telemetry::ROUTER_CACHE_MISSES.inc();
        let generation = self.shared.generation(bare).load(Ordering::Relaxed);
        let found = self.inner.lookup(bare).await?;
        if !found.sessions.is_empty() {
            let mut entries = self.shared.entries();
            if self.shared.generation(bare).load(Ordering::Relaxed) == generation {
                if entries.len() >= self.capacity {
                    entries.clear();
                }
                let entry = (Instant::now(), found.sessions.clone().into(), found.pending);
                entries.insert(bare.clone(), entry);
            }
        }
        Ok(found)
    }

    async fn pending(&self, bare: &Jid) -> Result<u64, StorageError> {
        self.inner.pending(bare).await
    }

    async fn add_pending(&self, bare: &Jid) -> Result<u64, StorageError> {
        self.shared.invalidate(bare);
        let count = self.inner.add_pending(bare).await;
        self.shared.invalidate(bare);
        count
    }

    async fn clear_pending(&self, bare: &Jid, seen: u64) -> Result<bool, StorageError> {
        self.shared.invalidate(bare);
        let cleared = self.inner.clear_pending(bare, seen).await;
        self.shared.invalidate(bare);
        cleared
    }

    async fn lock_flush(
        &self,
        bare: &Jid,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StorageError> {
        self.inner.lock_flush(bare, holder, ttl).await
    }

    async fn unlock_flush(&self, bare: &Jid, holder: &str) -> Result<(), StorageError> {
        self.inner.unlock_flush(bare, holder).await
    }

    async fn heartbeat(&self, edge: &str, ttl: Duration) -> Result<(), StorageError> {
        self.inner.heartbeat(edge, ttl).await
    }

    async fn dead_edges(&self) -> Result<Vec<String>, StorageError> {
        self.inner.dead_edges().await
    }

    async fn reap(&self, edge: &str) -> Result<Vec<SessionRecord>, StorageError> {
        let reaped = self.inner.reap(edge).await?;
        for r in &reaped {
            self.shared.invalidate(&r.jid.bare());
        }
        Ok(reaped)
    }

    async fn reconcile(
        &self,
        edge: &str,
        held: &[(Jid, u64)],
    ) -> Result<Vec<SessionRecord>, StorageError> {
        let removed = self.inner.reconcile(edge, held).await?;
        for r in &removed {
            self.shared.invalidate(&r.jid.bare());
        }
        Ok(removed)
    }

    async fn epoch(&self) -> Result<String, StorageError> {
        self.inner.epoch().await
    }

    fn forget(&self, bare: &Jid) {
        self.shared.invalidate(bare);
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
