//! A read-through cache of block lists, because XEP-0191 checks both parties' lists on
//! every routed stanza and almost every list is empty.
//!
//! Writes through this cache invalidate the account's entry, so one router never reads
//! its own stale data. The cache is bounded: past `capacity` accounts one is evicted
//! ([`TtlCache`]). Several routers sharing one database each see their own writes at
//! once and another router's writes after `ttl` at the latest.

use crate::traits::BlockStore;
use crate::ttl_cache::TtlCache;
use crate::StorageError;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::Jid;

pub struct CachedBlocks {
    inner: Arc<dyn BlockStore>,
    /// Per account, its list (shared, so a hit copies no list).
    entries: TtlCache<Jid, Arc<[Jid]>>,
}

impl std::fmt::Debug for CachedBlocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedBlocks")
            .field("inner", &self.inner)
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl CachedBlocks {
    pub fn new(inner: Arc<dyn BlockStore>, capacity: usize, ttl: Duration) -> Self {
        Self {
            inner,
            entries: TtlCache::new(capacity, ttl),
        }
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
        assert!(cache.entries.len() <= cache.entries.capacity(), "bounded");
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
}
