//! A read-through cache of block lists, because XEP-0191 checks both parties' lists on
//! every routed stanza and almost every list is empty.
//!
//! Writes through this cache invalidate the account's entry, so one router never reads
//! its own stale data. The cache is bounded: when it holds `capacity` accounts it starts
//! over. Several routers sharing one database each see their own writes at once and
//! another router's writes after `ttl` at the latest.

use crate::traits::BlockStore;
use crate::StorageError;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchyard_core::Jid;

/// Per account: when the list was read, and the list.
type Entries = HashMap<Jid, (Instant, Arc<[Jid]>)>;

#[derive(Debug)]
pub struct CachedBlocks {
    inner: Arc<dyn BlockStore>,
    capacity: usize,
    ttl: Duration,
    entries: Mutex<Entries>,
}

impl CachedBlocks {
    pub fn new(inner: Arc<dyn BlockStore>, capacity: usize, ttl: Duration) -> Self {
        Self {
            inner,
            capacity,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl BlockStore for CachedBlocks {
    async fn blocked(&self, account: &Jid) -> Result<Vec<Jid>, StorageError> {
        if let Some((at, list)) = self.entries().get(account) {
            if at.elapsed() < self.ttl {
                return Ok(list.to_vec());
            }
        }
        let list = self.inner.blocked(account).await?;
        let mut entries = self.entries();
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(account.clone(), (Instant::now(), list.clone().into()));
        Ok(list)
    }

    async fn block(&self, account: &Jid, jids: &[Jid]) -> Result<(), StorageError> {
        let result = self.inner.block(account, jids).await;
        self.entries().remove(account);
        result
    }

    async fn unblock(&self, account: &Jid, jids: &[Jid]) -> Result<(), StorageError> {
        let result = self.inner.unblock(account, jids).await;
        self.entries().remove(account);
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
        assert!(cache.entries().len() <= 2, "bounded");
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
