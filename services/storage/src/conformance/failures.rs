//! [`LoginFailures`] behaviour: counts per account and network and per network, renewed
//! by each failure, forgotten a window after the last one, cleared per account. Runs on
//! the real clock (short windows), as Redis keeps its own.

use crate::{FailureCount, LoginFailures};
use std::time::Duration;
use switchyard_core::Jid;
use tokio::time::sleep;

fn jid(s: &str) -> Jid {
    Jid::parse(s).expect("test JID")
}

/// [`LoginFailures`] behaviour.
pub async fn login_failures(store: &dyn LoginFailures) {
    let alice = jid("conformance-alice@localhost");
    let bob = jid("conformance-bob@localhost");
    let (home, away) = ("192.0.2.1", "2001:db8:1:2::/64");
    let window = Duration::from_secs(60);

    let none = store.failures(&alice, home).await.expect("failures");
    assert_eq!(none.account, FailureCount::default());
    assert_eq!(none.network, FailureCount::default());

    for n in 1..=3 {
        let counts = store.record(&alice, home, window).await.expect("record");
        assert_eq!((counts.account.failures, counts.network.failures), (n, n));
        assert_eq!(counts.account.expires_in, window);
    }
    let counts = store.failures(&alice, home).await.expect("failures");
    assert_eq!((counts.account.failures, counts.network.failures), (3, 3));
    for count in [counts.account, counts.network] {
        assert!(count.expires_in > window - Duration::from_secs(5) && count.expires_in <= window);
    }

    // Another account from the same network: its own count, the network's shared.
    let counts = store.record(&bob, home, window).await.expect("record");
    assert_eq!((counts.account.failures, counts.network.failures), (1, 4));
    // The same account from another network: nothing carried over.
    let counts = store.failures(&alice, away).await.expect("failures");
    assert_eq!((counts.account.failures, counts.network.failures), (0, 0));

    store.clear(&alice, home).await.expect("clear");
    let counts = store.failures(&alice, home).await.expect("failures");
    assert_eq!((counts.account.failures, counts.network.failures), (0, 4));
    let counts = store.failures(&bob, home).await.expect("failures");
    assert_eq!(
        counts.account.failures, 1,
        "clearing one account leaves the others"
    );
    store
        .clear(&alice, away)
        .await
        .expect("clearing nothing is fine");

    // Each failure renews the window; a window after the last one, both counts are gone.
    // Seconds apart, so that a loaded machine's pauses cannot expire a window early;
    // a late check can only see it gone later, which the last wait allows for.
    let short = Duration::from_millis(2000);
    store.record(&bob, away, short).await.expect("record");
    sleep(Duration::from_millis(1000)).await;
    store.record(&bob, away, short).await.expect("record");
    sleep(Duration::from_millis(1000)).await;
    let counts = store.failures(&bob, away).await.expect("failures");
    assert_eq!((counts.account.failures, counts.network.failures), (2, 2));
    sleep(Duration::from_millis(1500)).await;
    let counts = store.failures(&bob, away).await.expect("failures");
    assert_eq!(counts.account, FailureCount::default());
    assert_eq!(counts.network, FailureCount::default());

    store.clear(&bob, home).await.expect("clean up");
}
