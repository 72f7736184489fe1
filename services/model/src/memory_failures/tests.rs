use super::*;

fn jid(s: &str) -> Jid {
    Jid::parse(s).unwrap()
}

async fn account_failures(store: &MemoryLoginFailures, user: &str, network: &str) -> u32 {
    let account = jid(&format!("{user}@localhost"));
    store
        .failures(&account, network)
        .await
        .unwrap()
        .account
        .failures
}

async fn fail(store: &MemoryLoginFailures, user: &str, network: &str) {
    let account = jid(&format!("{user}@localhost"));
    store
        .record(&account, network, Duration::from_secs(60))
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_full_table_evicts_the_oldest_failures_first() {
    // Room for two attempts' counts (account and network each).
    let store = MemoryLoginFailures::new(4);
    fail(&store, "a1", "192.0.2.1").await;
    tokio::time::advance(Duration::from_secs(1)).await;
    fail(&store, "a2", "192.0.2.2").await;
    tokio::time::advance(Duration::from_secs(1)).await;
    fail(&store, "a3", "192.0.2.3").await;
    assert_eq!(store.len(), 4);
    assert_eq!(
        account_failures(&store, "a1", "192.0.2.1").await,
        0,
        "oldest went"
    );
    assert_eq!(account_failures(&store, "a2", "192.0.2.2").await, 1);
    assert_eq!(
        account_failures(&store, "a3", "192.0.2.3").await,
        1,
        "newest counted"
    );
    // A new failure makes a count the newest again: a3's go before a2's now.
    fail(&store, "a2", "192.0.2.2").await;
    fail(&store, "a4", "192.0.2.4").await;
    assert_eq!(account_failures(&store, "a3", "192.0.2.3").await, 0);
    assert_eq!(account_failures(&store, "a2", "192.0.2.2").await, 2);
    assert_eq!(account_failures(&store, "a4", "192.0.2.4").await, 1);
    assert_eq!(store.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn counts_expire_a_window_after_the_last_failure() {
    let store = MemoryLoginFailures::default();
    fail(&store, "a", "192.0.2.1").await;
    tokio::time::advance(Duration::from_secs(50)).await;
    fail(&store, "a", "192.0.2.1").await;
    tokio::time::advance(Duration::from_secs(50)).await;
    assert_eq!(account_failures(&store, "a", "192.0.2.1").await, 2);
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(account_failures(&store, "a", "192.0.2.1").await, 0);
    assert!(
        store.is_empty(),
        "an expired count is dropped when looked at"
    );
}
