use super::*;
use crate::MemoryRegistry;

fn jid(s: &str) -> Jid {
    Jid::parse(s).unwrap()
}

/// A cache over a memory registry in which each of `accounts` has one session.
async fn with_sessions(capacity: usize, accounts: &[Jid]) -> (Arc<MemoryRegistry>, CachedRegistry) {
    let inner = Arc::new(MemoryRegistry::default());
    for (conn, bare) in (1..).zip(accounts) {
        let full = jid(&format!("{bare}/r"));
        inner
            .bind(SessionRecord::bound(full, "edge-1", conn))
            .await
            .unwrap();
    }
    let cache = CachedRegistry::new(inner.clone(), capacity, Duration::from_secs(60));
    (inner, cache)
}

fn cached(cache: &CachedRegistry, bare: &Jid) -> bool {
    cache.shared.get(bare).is_some()
}

#[tokio::test]
async fn conforms_over_memory() {
    let inner = Arc::new(MemoryRegistry::default());
    let cache = CachedRegistry::new(inner, 100, Duration::from_secs(60));
    crate::conformance::registry(&cache).await;
}

/// The steps of a lookup that misses, with a drop between its read and its insert.
#[tokio::test]
async fn a_lookup_that_overlapped_a_drop_does_not_cache_what_it_read() {
    let bare = jid("a@l");
    let (inner, cache) = with_sessions(10, std::slice::from_ref(&bare)).await;
    let drops: [&dyn Fn(); 2] = [&|| cache.forget(&bare), &|| cache.shared.invalidate_all()];
    for drop in drops {
        let read_at = cache.shared.read_at(&bare);
        let found = inner.lookup(&bare).await.unwrap();
        drop();
        cache.shared.cache(&bare, read_at, &found);
        assert!(!cached(&cache, &bare), "read before the drop, not cached");
    }
    // Without an overlap it is cached, and a drop after the insert removes it.
    cache.lookup(&bare).await.unwrap();
    assert!(cached(&cache, &bare));
    cache.forget(&bare);
    assert!(!cached(&cache, &bare));
    cache.lookup(&bare).await.unwrap();
    cache.shared.invalidate_all();
    assert!(
        !cached(&cache, &bare),
        "gone after invalidate_all, whatever moka's clock"
    );
    cache.lookup(&bare).await.unwrap();
    assert!(cached(&cache, &bare), "cached again in the new epoch");
}

#[tokio::test]
async fn writes_through_the_cache_drop_the_entry() {
    let bare = jid("a@l");
    let (_, cache) = with_sessions(10, std::slice::from_ref(&bare)).await;
    cache.lookup(&bare).await.unwrap();
    assert!(cached(&cache, &bare));
    assert_eq!(cache.add_pending(&bare).await.unwrap(), 1);
    assert!(!cached(&cache, &bare));
    assert_eq!(cache.lookup(&bare).await.unwrap().pending, 1, "read afresh");
    assert!(cached(&cache, &bare));
}

#[tokio::test]
async fn one_past_the_bound_evicts_the_least_recently_used_only() {
    const N: usize = 8;
    let accounts: Vec<Jid> = (0..=N).map(|i| jid(&format!("u{i}@l"))).collect();
    let (_, cache) = with_sessions(N, &accounts).await;
    let settle = || cache.shared.entries.run_pending_tasks(); // fixes moka's LRU order
    for bare in &accounts[..N] {
        cache.lookup(bare).await.unwrap();
        settle();
    }
    cache.lookup(&accounts[0]).await.unwrap(); // u0 is now the most recently used
    settle();
    assert_eq!(cache.shared.entries.entry_count(), N as u64, "full");

    cache.lookup(&accounts[N]).await.unwrap();
    settle();
    assert_eq!(
        cache.shared.entries.entry_count(),
        N as u64,
        "one evicted, not all"
    );
    assert!(!cached(&cache, &accounts[1]), "the least recently used");
    for bare in accounts.iter().filter(|&b| *b != accounts[1]) {
        assert!(cached(&cache, bare), "{bare} kept");
    }
}
