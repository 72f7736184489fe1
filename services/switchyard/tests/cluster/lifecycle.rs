//! A router's SIGTERM while edges are linked to it: it ends their links and exits within
//! its drain delay and grace, whatever the edges do; the edges go on through the other
//! router, and a session that ends afterwards leaves nothing in the registry.

use super::harness::Cluster;
use super::{body, online};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_router_drains_within_its_grace_while_edges_are_linked() {
    let extra = "[timeouts]\ndrain_delay_secs = 1\nshutdown_grace_secs = 3\n";
    let Some(mut cluster) =
        Cluster::start_with(&["alice", "bob"], "redis://127.0.0.1:6379", extra).await
    else {
        return;
    };
    let mut alice = online(&cluster, 0, "alice", "desk").await;
    let mut bob = online(&cluster, 1, "bob", "phone").await;

    let started = Instant::now();
    let pid = cluster.routers[0].child.id().expect("running");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let exited = tokio::time::timeout(Duration::from_secs(15), cluster.routers[0].child.wait())
        .await
        .expect("the router exits within its drain delay and grace")
        .expect("wait");
    let took = started.elapsed();
    assert!(exited.success(), "a clean exit: {exited:?}");
    assert!(
        took < Duration::from_secs(1 + 3 + 2),
        "drain delay 1 s + grace 3 s, took {took:?}"
    );

    // Chat goes on through the other router.
    alice
        .send("<message to='bob@localhost/phone' type='chat'><body>after</body></message>")
        .await;
    let (m, _) = bob.until(|e| body(e).as_deref() == Some("after")).await;
    assert_eq!(m.attr("from"), Some("alice@localhost/desk"));

    // A session that ends now leaves the registry (its unbind reaches the other router).
    alice.send("</stream:stream>").await;
    while alice.frame().await.is_some() {}
    let key = format!("{}{{alice@localhost}}:s", cluster.prefix);
    let mut redis = redis::Client::open(cluster.redis[0].as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut left = 1;
    for _ in 0..40 {
        left = redis::cmd("HLEN")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(left, 0, "alice's session left in the registry");
    cluster.clean_up().await;
}
