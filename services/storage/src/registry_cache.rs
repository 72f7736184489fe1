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
//! - Bounded: past `capacity` accounts one is evicted, and entries expire after `ttl`
//!   ([`TtlCache`]).

use crate::traits::{
    Change, Lookup, OnlinePage, SessionEdit, SessionRecord, SessionRegistry, Sessions,
};
use crate::ttl_cache::TtlCache;
use crate::StorageError;
use async_trait::async_trait;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_core::Jid;

/// What one lookup read: the sessions (shared: a hit hands out the same list), the
/// offline-pending count, and the [`Shared::epoch`] it was cached in.
#[derive(Debug, Clone)]
struct Entry {
    sessions: Sessions,
    pending: u64,
    epoch: u64,
}

/// Generation stripes: a lookup whose account was invalidated while it read the inner
/// registry does not cache what it read (it may predate the change). Striped so that
/// churn on other accounts rarely stops an entry from being cached.
const STRIPES: usize = 32; // arrays up to 32 are `Default`

/// Where a lookup stood before it read the inner registry (see [`Shared::cache`]).
#[derive(Debug, Clone, Copy)]
struct ReadAt {
    generation: u64,
}

struct Shared {
    entries: TtlCache<Jid, Entry>,
    /// Held while a drop bumps its generation and removes the entry, and while a lookup
    /// compares its generation and inserts: so a lookup either inserts before a drop
    /// (which then removes the entry) or sees the drop's generation and inserts nothing.
    /// The map alone cannot say this: its insert and remove do not exclude each other.
    /// Cache hits do not take it.
    drops: Mutex<()>,
    generations: [AtomicU64; STRIPES],
    /// Bumped by [`Shared::invalidate_all`]: an entry cached in an older epoch is not
    /// served; clearing the map only frees memory (an insert racing the clear could
    /// survive it).
    epoch: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("entries", &self.entries.len())
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            entries: TtlCache::new(capacity, ttl),
            drops: Mutex::default(),
            generations: Default::default(),
            epoch: AtomicU64::new(0),
        }
    }

    fn drops(&self) -> std::sync::MutexGuard<'_, ()> {
        self.drops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn generation(&self, bare: &Jid) -> &AtomicU64 {
        let mut h = DefaultHasher::new();
        bare.hash(&mut h);
        &self.generations[(h.finish() % STRIPES as u64) as usize]
    }

    /// A live entry for `bare`, if one is cached.
    fn get(&self, bare: &Jid) -> Option<Entry> {
        let entry = self.entries.get(bare)?;
        (entry.epoch == self.epoch.load(Ordering::Acquire)).then_some(entry)
    }

    /// To be taken before reading the inner registry, for [`Shared::cache`].
    fn read_at(&self, bare: &Jid) -> ReadAt {
        ReadAt {
            generation: self.generation(bare).load(Ordering::Relaxed),
        }
    }

    /// Caches what a lookup read, unless `bare` was dropped since `read_at`.
    fn cache(&self, bare: &Jid, read_at: ReadAt, found: &Lookup) {
        let _drops = self.drops();
        if self.generation(bare).load(Ordering::Relaxed) != read_at.generation {
            return;
        }
        let entry = Entry {
            sessions: found.sessions.clone(),
            pending: found.pending,
            epoch: self.epoch.load(Ordering::Relaxed),
        };
        self.entries.insert(bare.clone(), entry);
    }

    /// Drops the account's entry and stops lookups in flight from caching theirs.
    fn invalidate(&self, bare: &Jid) {
        let _drops = self.drops();
        self.generation(bare).fetch_add(1, Ordering::Relaxed);
        self.entries.invalidate(bare);
    }

    fn invalidate_all(&self) {
        let _drops = self.drops();
        for g in &self.generations {
            g.fetch_add(1, Ordering::Relaxed);
        }
        self.epoch.fetch_add(1, Ordering::Release);
        self.entries.clear();
    }
}

#[derive(Debug)]
pub struct CachedRegistry {
    inner: Arc<dyn SessionRegistry>,
    shared: Arc<Shared>,
}

impl CachedRegistry {
    /// Wraps `inner`, following its change notifications if it has any.
    pub fn new(inner: Arc<dyn SessionRegistry>, capacity: usize, ttl: Duration) -> Self {
        let shared = Arc::new(Shared::new(capacity, ttl));
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
        Self { inner, shared }
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

    async fn relocate(
        &self,
        jid: &Jid,
        from: (&str, u64),
        to: (&str, u64),
    ) -> Result<Option<SessionRecord>, StorageError> {
        self.shared.invalidate(&jid.bare());
        let moved = self.inner.relocate(jid, from, to).await;
        self.shared.invalidate(&jid.bare());
        moved
    }

    async fn sessions(&self, bare: &Jid) -> Result<Sessions, StorageError> {
        Ok(self.lookup(bare).await?.sessions)
    }

    async fn lookup(&self, bare: &Jid) -> Result<Lookup, StorageError> {
        if let Some(hit) = self.shared.get(bare) {
            switchyard_telemetry::ROUTER_CACHE_HITS.inc();
            return Ok(Lookup {
                sessions: hit.sessions.clone(),
                pending: hit.pending,
            });
        }
        switchyard_telemetry::ROUTER_CACHE_MISSES.inc();
        let read_at = self.shared.read_at(bare);
        let found = self.inner.lookup(bare).await?;
        if !found.sessions.is_empty() {
            self.shared.cache(bare, read_at, &found);
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

    async fn online(
        &self,
        domain: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<OnlinePage, StorageError> {
        self.inner.online(domain, cursor, limit).await
    }

    async fn online_count(&self) -> Result<u64, StorageError> {
        self.inner.online_count().await
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
mod tests;
