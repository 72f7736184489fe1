//! A read-through cache of block lists, because XEP-0191 checks both parties' lists on
//! every routed stanza and almost every list is empty.
//!
//! Writes through this cache invalidate the account's entry, so one router never reads
//! its own stale data. The cache is bounded: past `capacity` accounts the least recently
//! used one is evicted (moka, LRU). Several routers sharing one database each see their
//! own writes at once and another router's writes after `ttl` at the latest.

use crate::traits::BlockStore;
use crate::StorageError;
use async_trait::async_trait;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::Jid;

/// The longest TTL moka accepts is 1000 years; anything near it means "never expires".
const TTL_MAX: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

pub struct CachedBlocks {
    inner: Arc<dyn BlockStore>,
    /// Per account, its list (shared, so a hit copies no list).
    entries: Cache<Jid, Arc<[Jid]>>,
}

impl std::fmt::Debug for CachedBlocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedBlocks")
            .field("inner", &self.inner)
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

impl CachedBlocks {
    pub fn new(inner: Arc<dyn BlockStore>, capacity: usize, ttl: Duration) -> Self {
        let entries = Cache::builder()
            .max_capacity(capacity as u64)
            .time_to_live(ttl.min(TTL_MAX))
            .eviction_policy(EvictionPolicy::lru())
            .build();
        Self { inner, entries }
    }
}

#[async_trait]
impl BlockStore for CachedBlocks {
    async fn blocked(&self, account: &Jid) -> Result<Vec<Jid>, StorageError> {
        if let Some(list) = self.entries.get(account) {
            return Ok(list.to_vec());
        }
        let list = self.inner.blocked(account).await?;
        self.entries.insert(account.clone(), list.clone().into());
        Ok(list)
    }

    async fn block(&self, account: &Jid, jids: &[Jid]) -> Result<(), StorageError> {
        let result = self.inner.block(account, jids).await;
        self.entries.invalidate(account);
        result
    }

    async fn unblock(&self, account: &Jid, jids: &[Jid]) -> Result<(), StorageError> {
        let result = self.inner.unblock(account, jids).await;
        self.entries.invalidate(account);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccountStore, MemoryStore};
    use switchyard_core::sasl::StoredCredentials;

    #[tokio::test]
    async fn reads_follow_writes_and_the_bound_holds() {
        let store = Arc::new(MemoryStore::default());
        let cache = CachedBlocks::new(store.clone(), 2, Duration::from_secs(60));
        let jid = |s| Jid::parse(s).unwrap();
        let creds = StoredCredentials::from_password("x", 4096).unwrap();
        for a in ["a@l", "b@l", "c@l"] {
            store.create(&jid(a), &creds).await.unwrap();
            assert!(cache.blocked(&jid(a)).await.unwrap().is_empty());
        }
        cache.entries.run_pending_tasks();
        assert!(cache.entries.entry_count() <= 2, "bounded");
        cache.block(&jid("a@l"), &[jid("x@y")]).await.unwrap();
        assert_eq!(cache.blocked(&jid("a@l")).await.unwrap(), vec![jid("x@y")]);
        cache.unblock(&jid("a@l"), &[]).await.unwrap();
        assert!(cache.blocked(&jid("a@l")).await.unwrap().is_empty());
        // A write that bypasses this cache shows after the TTL.
        let short = CachedBlocks::new(store.clone(), 10, Duration::ZERO);
        short.blocked(&jid("b@l")).await.unwrap();
        store.block(&jid("b@l"), &[jid("z@y")]).await.unwrap();
        assert_eq!(short.blocked(&jid("b@l")).await.unwrap(), vec![jid("z@y")]);
    }

    #[tokio::test]
    async fn one_past_the_bound_evicts_the_least_recently_used_only() {
        const N: usize = 8;
        let store = Arc::new(MemoryStore::default());
        let cache = CachedBlocks::new(store.clone(), N, Duration::from_secs(60));
        let jid = |i: usize| Jid::parse(&format!("u{i}@l")).unwrap();
        let creds = StoredCredentials::from_password("x", 4096).unwrap();
        for i in 0..=N {
            store.create(&jid(i), &creds).await.unwrap();
        }
        for i in 0..N {
            cache.blocked(&jid(i)).await.unwrap();
            cache.entries.run_pending_tasks(); // settle the order moka evicts in
        }
        cache.blocked(&jid(0)).await.unwrap(); // u0 is now the most recently used
        cache.entries.run_pending_tasks();
        assert_eq!(
            cache.entries.entry_count(),
            N as u64,
            "full, nothing evicted"
        );

        cache.blocked(&jid(N)).await.unwrap();
        cache.entries.run_pending_tasks();
        assert_eq!(
            cache.entries.entry_count(),
            N as u64,
            "one evicted, not all"
        );
        assert!(
            !cache.entries.contains_key(&jid(1)),
            "the least recently used"
        );
        for i in (0..=N).filter(|&i| i != 1) {
            assert!(cache.entries.contains_key(&jid(i)), "u{i} kept");
        }
    }
}
