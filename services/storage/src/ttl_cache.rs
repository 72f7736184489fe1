//! A bounded map whose entries expire, shared by the block-list and registry caches.
//!
//! Built on quick_cache: bounded by entry count, evicting by CLOCK-Pro (an entry read
//! again since it was cached is kept over one that was not), with no background work on
//! reads, so a hit costs one shard lock and a clone of the value. Each entry carries the
//! moment it was cached and is not served once `ttl` has passed; an expired entry is
//! replaced by the next insert or evicted like any other.

use quick_cache::sync::Cache;
use std::hash::Hash;
use std::time::{Duration, Instant};

pub(crate) struct TtlCache<K, V> {
    entries: Cache<K, (Instant, V)>,
    ttl: Duration,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    /// Holds up to `capacity` entries (at least one), each served for `ttl`.
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            entries: Cache::new(capacity.max(1)),
            ttl,
        }
    }

    /// The entry for `key`, if one is cached and younger than the TTL.
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let (cached, value) = self.entries.get(key)?;
        (cached.elapsed() < self.ttl).then_some(value)
    }

    pub(crate) fn insert(&self, key: K, value: V) {
        self.entries.insert(key, (Instant::now(), value));
    }

    pub(crate) fn invalidate(&self, key: &K) {
        self.entries.remove(key);
    }

    pub(crate) fn clear(&self) {
        self.entries.clear();
    }

    /// Entries held, expired ones included until they are replaced or evicted.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// How many entries it holds at most.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.entries.capacity() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_expires_and_a_write_replaces_it() {
        // A TTL no pause between two statements outlasts on a loaded machine.
        let cache = TtlCache::new(4, Duration::from_millis(500));
        cache.insert("a", 1);
        assert_eq!(cache.get(&"a"), Some(1));
        std::thread::sleep(Duration::from_millis(550));
        assert_eq!(cache.get(&"a"), None, "expired");
        cache.insert("a", 2);
        assert_eq!(cache.get(&"a"), Some(2), "a new insert is served again");
        cache.invalidate(&"a");
        assert_eq!(cache.get(&"a"), None);
        let never = TtlCache::new(4, Duration::ZERO);
        never.insert("a", 1);
        assert_eq!(never.get(&"a"), None, "a zero TTL serves nothing");
    }

    /// Filled to the bound, then ten times past it: the count never exceeds the bound,
    /// and the entry read on every round survives what was inserted once.
    #[test]
    fn the_bound_holds_and_a_hot_entry_survives_a_scan() {
        const N: usize = 64;
        let cache = TtlCache::new(N, Duration::from_secs(60));
        assert!(cache.capacity() >= N);
        cache.insert(0usize, 0usize);
        for i in 1..=10 * N {
            assert_eq!(cache.get(&0), Some(0), "the hot entry, round {i}");
            cache.insert(i, i);
            assert!(cache.len() <= cache.capacity(), "bounded at {i}");
        }
        assert!(cache.len() >= N / 2, "evicts a few at a time, never all");
        cache.clear();
        assert_eq!(cache.len(), 0);
    }
}
