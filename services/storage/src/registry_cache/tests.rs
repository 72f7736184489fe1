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
        "gone after invalidate_all, even if an insert raced the clear"
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

/// Past the bound a few entries are evicted, never all, and an account read on every
/// round stays cached through a scan of four times the bound.
#[tokio::test]
async fn past_the_bound_a_few_are_evicted_and_the_hot_entry_stays() {
    const N: usize = 16;
    let accounts: Vec<Jid> = (0..=4 * N).map(|i| jid(&format!("u{i}@l"))).collect();
    let (_, cache) = with_sessions(N, &accounts).await;
    let entries = &cache.shared.entries;
    for bare in &accounts[1..] {
        cache.lookup(&accounts[0]).await.unwrap();
        cache.lookup(bare).await.unwrap();
        assert!(entries.len() <= entries.capacity(), "bounded at {bare}");
    }
    assert!(cached(&cache, &accounts[0]), "read on every round, kept");
    assert!(cached(&cache, &accounts[4 * N]), "just cached, kept");
    assert!(entries.len() >= N / 2, "a few evicted, never all");
}
