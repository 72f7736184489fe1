//! The offline-pending count and the flush lock of [`SessionRegistry`], at their edges:
//! an account never counted, a clear with a stale count, a lock held, renewed, expired
//! and released by someone who no longer holds it.

use super::jid;
use crate::{Lookup, SessionRecord, SessionRegistry};
use std::time::Duration;

pub(super) async fn pending_and_flush_lock(reg: &dyn SessionRegistry) {
    counting(reg).await;
    flush_lock(reg).await;
}

async fn counting(reg: &dyn SessionRegistry) {
    let nobody = jid("conformance-nobody@localhost");
    assert_eq!(reg.pending(&nobody).await.expect("pending"), 0);
    assert_eq!(
        reg.lookup(&nobody).await.expect("lookup"),
        Lookup::default()
    );
    assert!(
        reg.clear_pending(&nobody, 0).await.expect("clear"),
        "zero is clear"
    );
    assert!(
        !reg.clear_pending(&nobody, 3).await.expect("clear"),
        "stale"
    );
    assert_eq!(reg.pending(&nobody).await.expect("pending"), 0);

    let kim = jid("conformance-kim@localhost");
    let phone = SessionRecord::bound(jid("conformance-kim@localhost/phone"), "edge-p", 1);
    assert_eq!(reg.add_pending(&kim).await.expect("add"), 1);
    assert_eq!(reg.add_pending(&kim).await.expect("add"), 2);
    reg.bind(phone.clone()).await.expect("bind");
    let both = Lookup {
        sessions: vec![phone.clone()].into(),
        pending: 2,
    };
    assert_eq!(reg.lookup(&kim).await.expect("lookup"), both);
    assert_eq!(
        *reg.sessions(&kim).await.expect("sessions"),
        vec![phone.clone()]
    );

    // A flusher that read 1 is behind: a message was counted since, the count stays.
    assert!(!reg.clear_pending(&kim, 1).await.expect("stale clear"));
    assert_eq!(reg.pending(&kim).await.expect("pending"), 2);
    assert!(!reg.clear_pending(&kim, 3).await.expect("ahead"));
    assert!(reg.clear_pending(&kim, 2).await.expect("clear"));
    assert_eq!(reg.pending(&kim).await.expect("pending"), 0);
    assert_eq!(reg.lookup(&kim).await.expect("lookup").pending, 0);
    assert!(reg.clear_pending(&kim, 0).await.expect("clear again"));
    assert_eq!(reg.add_pending(&kim).await.expect("add"), 1, "starts over");
    assert!(reg.clear_pending(&kim, 1).await.expect("clear"));

    // Counts are per account, and other accounts' sessions do not carry them.
    assert_eq!(reg.add_pending(&nobody).await.expect("add"), 1);
    assert_eq!(reg.lookup(&kim).await.expect("lookup").pending, 0);
    assert!(reg.clear_pending(&nobody, 1).await.expect("clear"));
    reg.unbind(&phone.jid, phone.conn).await.expect("cleanup");
}

async fn flush_lock(reg: &dyn SessionRegistry) {
    let kim = jid("conformance-kim@localhost");
    let other = jid("conformance-lee@localhost");
    let long = Duration::from_secs(60);
    let short = Duration::from_millis(50);
    assert!(reg.lock_flush(&kim, "a", long).await.expect("lock"));
    assert!(
        !reg.lock_flush(&kim, "b", long).await.expect("held"),
        "held by a"
    );
    assert!(
        reg.lock_flush(&other, "b", long).await.expect("lock"),
        "per account"
    );
    // The holder renews (here: shortens) its lock; then it expires, as after a crash.
    assert!(reg.lock_flush(&kim, "a", short).await.expect("renew"));
    assert!(!reg.lock_flush(&kim, "b", long).await.expect("still held"));
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(reg.lock_flush(&kim, "b", long).await.expect("expired"));
    // The old holder's late release leaves the new holder's lock alone.
    reg.unlock_flush(&kim, "a").await.expect("unlock");
    assert!(!reg.lock_flush(&kim, "a", long).await.expect("held by b"));
    reg.unlock_flush(&kim, "b").await.expect("unlock");
    assert!(reg.lock_flush(&kim, "a", long).await.expect("free again"));
    reg.unlock_flush(&kim, "a").await.expect("unlock");
    reg.unlock_flush(&other, "b").await.expect("unlock");
    reg.unlock_flush(&other, "b")
        .await
        .expect("unlocking twice is harmless");

    // However many try at once, one holds it.
    let take = |holder: &'static str| reg.lock_flush(&kim, holder, long);
    let (a, b, c, d) = tokio::join!(take("h0"), take("h1"), take("h2"), take("h3"));
    let won = [a, b, c, d].map(|w| w.expect("lock"));
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    for holder in ["h0", "h1", "h2", "h3"] {
        reg.unlock_flush(&kim, holder).await.expect("unlock");
    }
}
