//! A Redis outage under a steady flow (DESIGN, failure semantics: "Redis restarts: edges
//! re-register their live sessions; nothing meant for a live session is parked offline
//! meanwhile").

use super::harness::{Cluster, PrivateRedis};
use super::{numbered, online, receive_numbered_then, subscribe};
use std::time::Duration;

const MESSAGES: usize = 400;
const GAP: Duration = Duration::from_millis(20);

/// Two pairs chat across the edges, each way, at 50 messages a second per sender while
/// Redis is restarted empty at once, and then killed, left down for 2 s and started
/// empty again. Every message arrives once, in order, and none of them went through
/// offline storage (which stamps `<delay/>`). The quick restart is the sharper case: the
/// routers' caches are dropped as soon as their change notifications reconnect, well
/// before the next liveness beat would have noticed the loss.
#[tokio::test]
async fn a_redis_outage_under_flow_parks_nothing_offline_and_loses_nothing() {
    let mut redis = PrivateRedis::start(None).await;
    let names = ["alice", "bob", "carol", "dave"];
    // Routers beat every 10 s here, so only the check made before storing a message can
    // notice the loss in time (with the default beat a lucky test would pass without it).
    let Some(cluster) = Cluster::start_with_ttl(&names, &redis.url(), 30).await else {
        return;
    };
    let mut alice = online(&cluster, 0, "alice", "desk").await;
    let mut bob = online(&cluster, 1, "bob", "phone").await;
    let mut carol = online(&cluster, 1, "carol", "desk").await;
    let mut dave = online(&cluster, 0, "dave", "phone").await;
    subscribe(&mut alice, "alice", &mut bob, "bob").await;
    subscribe(&mut carol, "carol", &mut dave, "dave").await;

    let flow = |mut sender: super::support::Client, to: &'static str, tag: &'static str| {
        tokio::spawn(async move {
            for i in 0..MESSAGES {
                sender.send(&numbered(to, tag, i..i + 1)).await;
                tokio::time::sleep(GAP).await;
            }
            sender
        })
    };
    let (_, alice_out) = alice.split();
    let (_, carol_out) = carol.split();
    let a = flow(alice_out, "bob@localhost", "a");
    let c = flow(carol_out, "dave@localhost", "c");
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.restart_empty().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    redis.outage(Duration::from_secs(2)).await;

    let mut parked = 0;
    let mut count = |m: &switchyard_core::xml::Element| {
        parked += usize::from(m.child("delay", "urn:xmpp:delay").is_some());
    };
    let got_b = receive_numbered_then(&mut bob, MESSAGES, &mut count).await;
    let got_d = receive_numbered_then(&mut dave, MESSAGES, &mut count).await;
    assert_eq!((got_b["a"], got_d["c"]), (MESSAGES, MESSAGES));
    assert_eq!(
        parked, 0,
        "messages for online users went through offline storage"
    );
    a.await.unwrap();
    c.await.unwrap();
    cluster.clean_up().await;
}
