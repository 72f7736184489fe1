//! The hot path over a real Redis registry: a steady conversation costs no Redis round
//! trip per message once the cache is warm, and the cache is corrected when a session
//! goes (issue: the cluster).

mod support;
use std::sync::Arc;
use std::time::Duration;
use support::*;
use switchyard_storage::{CachedRegistry, OfflineStore, RedisRegistry};

async fn redis() -> Option<Arc<RedisRegistry>> {
    let url =
        std::env::var("SWITCHYARD_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!(
        "sytest:{}:{}:",
        std::process::id(),
        switchyard_core::token::token(8)
    );
    match RedisRegistry::connect(
        &switchyard_storage::RedisServers::at(std::slice::from_ref(&url), false),
        &prefix,
    )
    .await
    {
        Ok(r) => Some(Arc::new(r)),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("Redis at {url} is required in CI: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: no Redis at {url}: {e}");
            None
        }
    }
}

#[tokio::test]
async fn steady_conversation_costs_no_redis_round_trip_per_message() {
    let Some(redis) = redis().await else { return };
    let cached = Arc::new(CachedRegistry::new(
        redis.clone(),
        1000,
        Duration::from_secs(60),
    ));
    let w = World::with_registry(cached.clone(), |_| {}).await;
    w.accounts(&["romeo", "juliet"]).await;
    let j = w.login("juliet@localhost/balcony").await;
    let r = w.login("romeo@localhost/orchard").await;
    let chat =
        |to: &str, i: usize| format!("<message to='{to}' type='chat'><body>{i}</body></message>");
    // Warm up until a pair of messages costs no Redis command: the change notifications
    // of the logins arrive a little later, whenever a loaded machine gets to them, and
    // each drops a cached entry (bounded: 5 s).
    for _ in 0..50 {
        let before = redis.commands_sent();
        w.send(&r, &chat("juliet@localhost", 0)).await;
        w.send(&j, &chat("romeo@localhost/orchard", 0)).await;
        if redis.commands_sent() == before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.take(&j);
    w.take(&r);

    let before = redis.commands_sent();
    for i in 1..=50 {
        w.send(&r, &chat("juliet@localhost", i)).await;
        w.send(&j, &chat("romeo@localhost/orchard", i)).await;
    }
    assert_eq!(
        redis.commands_sent() - before,
        0,
        "100 messages, no Redis command"
    );
    assert_eq!(of(&w.take(&j), "message", Some("chat")).len(), 50);
    assert_eq!(of(&w.take(&r), "message", Some("chat")).len(), 50);

    // Juliet's connection dies without the registry knowing (an edge crash): the first
    // failed delivery corrects the cache, and the next message goes to offline storage.
    w.edge_forgets(&j);
    w.send(&r, &chat("juliet@localhost", 99)).await;
    let held = w.store.take(&jid("juliet@localhost")).await.unwrap();
    assert_eq!(held.len(), 1, "held offline, not lost");
    // The cache's own counters are the exported metrics (one test in this binary).
    let hits = switchyard_telemetry::ROUTER_CACHE_HITS.get();
    assert!(hits >= 100, "hits {hits}");
    redis.delete_all_keys().await.unwrap();
}
