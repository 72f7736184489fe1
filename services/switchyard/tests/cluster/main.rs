//! The cluster over real processes: 2 routers and 2 edges on loopback, PostgreSQL and
//! Redis from this machine (issue: the cluster). Each test has its own schema and key
//! prefix.

#[path = "../support/mod.rs"]
mod support;

#[path = "../../../storage/src/redis/test_cluster.rs"]
mod redis_cluster;

mod admin;
mod component;
mod fast;
mod harness;
mod lifecycle;
mod login_throttle;
mod outage;
mod races;
mod rogue_edge;
mod sm;
mod sm_dead_edge;
mod sm_order;
mod traces;
mod websocket;

use harness::{Cluster, PrivateRedis};
use std::collections::BTreeSet;
use std::time::Duration;
use support::Client;
use switchyard_core::xml::Element;

async fn online(cluster: &Cluster, edge: usize, user: &str, resource: &str) -> Client {
    let addr = cluster.edges[edge].addr;
    let mut c = Client::login_at(
        addr,
        cluster.cert_der.clone(),
        user,
        "SCRAM-SHA-256",
        resource,
    )
    .await;
    c.send("<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq><presence/>")
        .await;
    c.until(|e| e.name() == "presence" && e.attr("type").is_none())
        .await;
    c
}

/// `x` subscribes to `y`, who approves; `x` then receives `y`'s presence.
async fn subscribe(x: &mut Client, x_name: &str, y: &mut Client, y_name: &str) {
    x.send(&format!(
        "<presence type='subscribe' to='{y_name}@localhost'/>"
    ))
    .await;
    y.until(|e| e.attr("type") == Some("subscribe")).await;
    y.send(&format!(
        "<presence type='subscribed' to='{x_name}@localhost'/>"
    ))
    .await;
    x.until(|e| e.name() == "presence" && e.attr("type").is_none())
        .await;
}

fn body(e: &Element) -> Option<String> {
    e.child("body", "jabber:client").map(|b| b.text())
}

#[tokio::test]
async fn users_on_different_edges_chat_see_presence_and_get_roster_pushes() {
    let Some(cluster) = Cluster::start(&["alice", "bob"]).await else {
        return;
    };
    let mut alice = online(&cluster, 0, "alice", "desk").await;
    let mut bob = online(&cluster, 1, "bob", "phone").await;

    alice
        .send("<presence type='subscribe' to='bob@localhost'/>")
        .await;
    let (push, _) = alice
        .until(|e| e.name() == "iq" && e.attr("type") == Some("set"))
        .await;
    assert!(
        push.child("query", "jabber:iq:roster").is_some(),
        "roster push on edge 0"
    );
    bob.until(|e| e.attr("type") == Some("subscribe")).await;
    bob.send("<presence type='subscribed' to='alice@localhost'/>")
        .await;
    let (presence, _) = alice
        .until(|e| e.name() == "presence" && e.attr("type").is_none())
        .await;
    assert_eq!(presence.attr("from"), Some("bob@localhost/phone"));

    alice
        .send("<message to='bob@localhost' type='chat' id='c1'><body>across edges</body></message>")
        .await;
    let (m, _) = bob.until(|e| e.name() == "message").await;
    assert_eq!(body(&m).as_deref(), Some("across edges"));
    assert_eq!(m.attr("from"), Some("alice@localhost/desk"));
    bob.send("<message to='alice@localhost/desk' type='chat'><body>back</body></message>")
        .await;
    let (m, _) = alice.until(|e| e.name() == "message").await;
    assert_eq!(body(&m).as_deref(), Some("back"));
    cluster.clean_up().await;
}

/// Login, presence and chat across edges with the registry on a Redis Cluster of three
/// masters (started here): a bind writes the edge's index and the account's sessions,
/// which live in different slots.
#[tokio::test]
async fn users_chat_with_the_registry_on_a_redis_cluster() {
    let redis = redis_cluster::RedisCluster::start();
    let Some(cluster) = Cluster::start_on_redis_cluster(&["alice", "bob"], redis.urls()).await
    else {
        return;
    };
    let mut alice = online(&cluster, 0, "alice", "desk").await;
    let mut bob = online(&cluster, 1, "bob", "phone").await;
    subscribe(&mut alice, "alice", &mut bob, "bob").await;
    alice
        .send("<message to='bob@localhost' type='chat'><body>over the cluster</body></message>")
        .await;
    let (m, _) = bob
        .until(|e| body(e).as_deref() == Some("over the cluster"))
        .await;
    assert_eq!(m.attr("from"), Some("alice@localhost/desk"));
    bob.send("<message to='alice@localhost/desk' type='chat'><body>back</body></message>")
        .await;
    let (m, _) = alice.until(|e| body(e).as_deref() == Some("back")).await;
    assert_eq!(m.attr("from"), Some("bob@localhost/phone"));
    cluster.clean_up().await;
}

#[tokio::test]
async fn router_kill_9_mid_flow_loses_no_message() {
    let Some(mut cluster) = Cluster::start(&["sender", "sink"]).await else {
        return;
    };
    let mut sink = online(&cluster, 1, "sink", "r").await;
    let mut sender = online(&cluster, 0, "sender", "r").await;
    // Kill the router the sender's stanzas go to, in the middle of a burst.
    let addrs: Vec<String> = cluster.routers.iter().map(|r| r.addr.to_string()).collect();
    let key = switchyard_core::Jid::parse("sender@localhost").unwrap();
    let victim = addrs
        .iter()
        .position(|a| Some(a) == switchyard_cluster::preferred_router(&key, &addrs))
        .unwrap();
    const TOTAL: usize = 600;
    let burst = |range: std::ops::Range<usize>| {
        range
            .map(|i| format!("<message to='sink@localhost/r' type='chat' id='m{i}'><body>{i}</body></message>"))
            .collect::<String>()
    };
    sender.send(&burst(0..TOTAL / 2)).await;
    cluster.routers[victim].kill_9().await;
    sender.send(&burst(TOTAL / 2..TOTAL)).await;
    let expected: BTreeSet<String> = (0..TOTAL).map(|i| i.to_string()).collect();
    let mut got = BTreeSet::new();
    let mut duplicates = Vec::new();
    while got.len() < expected.len() {
        let (m, _) = sink.until(|e| e.name() == "message").await;
        if let Some(b) = body(&m) {
            if !got.insert(b.clone()) {
                duplicates.push(b);
            }
        }
    }
    assert_eq!(got, expected, "every message delivered");
    let log = std::fs::read_to_string(cluster.dir.path().join("edge0.log")).unwrap_or_default();
    let resends: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("resending unacknowledged"))
        .collect();
    println!("edge 0 after the router died: {resends:?}");
    // Sessions stayed connected on both edges.
    sender
        .send("<message to='sink@localhost/r' type='chat'><body>after</body></message>")
        .await;
    let (m, late) = sink.until(|e| body(e).as_deref() == Some("after")).await;
    assert_eq!(m.attr("from"), Some("sender@localhost/r"));
    duplicates.extend(late.iter().filter_map(body));
    assert!(duplicates.is_empty(), "delivered twice: {duplicates:?}");
    cluster.clean_up().await;
}

#[tokio::test]
async fn edge_kill_9_sessions_reaped_contacts_told_messages_held() {
    let Some(mut cluster) = Cluster::start(&["alice", "bob"]).await else {
        return;
    };
    let mut alice = online(&cluster, 0, "alice", "desk").await;
    let mut bob = online(&cluster, 1, "bob", "phone").await;
    subscribe(&mut alice, "alice", &mut bob, "bob").await;
    subscribe(&mut bob, "bob", &mut alice, "alice").await;
    // Past a heartbeat, so the edge's liveness must expire on its own.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Bob's connection stays open: it dies with the edge, which says nothing to anyone.
    cluster.edges[1].kill_9().await;
    // Within the liveness bound (TTL 3 s plus a beat), Alice sees Bob go, once.
    let started = std::time::Instant::now();
    let (gone, _) = alice
        .until(|e| e.name() == "presence" && e.attr("type") == Some("unavailable"))
        .await;
    assert_eq!(gone.attr("from"), Some("bob@localhost/phone"));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let logs: String = ["router0.log", "router1.log"]
        .iter()
        .map(|f| std::fs::read_to_string(cluster.dir.path().join(f)).unwrap_or_default())
        .collect();
    let reaps: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("reaped a dead edge"))
        .collect();
    println!("unavailable after {:?}; {reaps:?}", started.elapsed());
    assert_eq!(reaps.len(), 1, "one router reaped the edge: {reaps:?}");
    // A message to Bob now goes to offline storage (no error) …
    alice
        .send("<message to='bob@localhost' type='chat' id='o1'><body>held</body></message>")
        .await;
    alice
        .send("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let (pong, before) = alice.until(|e| e.attr("id") == Some("sync")).await;
    assert_eq!(pong.attr("type"), Some("result"));
    let unavailable = before
        .iter()
        .filter(|e| e.attr("type") == Some("unavailable"))
        .count();
    assert_eq!(unavailable, 0, "unavailable presence arrives exactly once");
    assert!(
        before.iter().all(|e| e.attr("type") != Some("error")),
        "{before:?}"
    );
    // … and arrives at Bob's next login, on the surviving edge.
    drop(bob);
    let mut bob = Client::login_at(
        cluster.edges[0].addr,
        cluster.cert_der.clone(),
        "bob",
        "SCRAM-SHA-256",
        "phone",
    )
    .await;
    bob.send("<presence/>").await;
    let (m, _) = bob.until(|e| e.name() == "message").await;
    assert_eq!(body(&m).as_deref(), Some("held"));
    assert!(m.child("delay", "urn:xmpp:delay").is_some());
    cluster.clean_up().await;
}

#[tokio::test]
async fn redis_restart_edges_reregister_and_routing_resumes() {
    let mut redis = PrivateRedis::start(None).await;
    let Some(cluster) = Cluster::start_with_redis(&["alice", "bob"], &redis.url()).await else {
        return;
    };
    let mut alice = online(&cluster, 0, "alice", "desk").await;
    let mut bob = online(&cluster, 1, "bob", "phone").await;
    subscribe(&mut alice, "alice", &mut bob, "bob").await;
    subscribe(&mut bob, "bob", &mut alice, "alice").await;

    redis.restart_empty().await;
    // Within a few heartbeats the routers see the new epoch and the edges register the
    // live sessions again.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{}{{bob@localhost}}:s", cluster.prefix);
    let started = std::time::Instant::now();
    loop {
        let n: i64 = redis::cmd("HLEN")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        if n == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "Bob never came back to the registry"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("re-registered {:?} after the restart", started.elapsed());
    // Bare-JID chat works again (Bob's presence was restored, so he is available).
    alice
        .send("<message to='bob@localhost' type='chat'><body>after the restart</body></message>")
        .await;
    let (m, _) = bob
        .until(|e| body(e).as_deref() == Some("after the restart"))
        .await;
    assert_eq!(m.attr("from"), Some("alice@localhost/desk"));
    cluster.clean_up().await;
}

#[tokio::test]
async fn one_message_is_one_trace_across_edge_router_edge() {
    let (receiver, endpoint) = traces::start().await;
    let extra = format!("[telemetry]\notlp_endpoint = \"{endpoint}\"\nsample_ratio = 1.0\n");
    let Some(cluster) =
        Cluster::start_with(&["alice", "bob"], "redis://127.0.0.1:6379", &extra).await
    else {
        return;
    };
    let mut alice = online(&cluster, 0, "alice", "desk").await;
    let mut bob = online(&cluster, 1, "bob", "phone").await;
    alice
        .send("<message to='bob@localhost/phone' type='chat'><body>traced</body></message>")
        .await;
    bob.until(|e| body(e).as_deref() == Some("traced")).await;
    let started = std::time::Instant::now();
    let chain = loop {
        if let Some(chain) = receiver.chain() {
            break chain;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no edge→router→edge trace exported"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let services: Vec<&str> = chain.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(
        services,
        ["switchyard-edge", "switchyard-router", "switchyard-edge"]
    );
    cluster.clean_up().await;
}

/// A burst between two users of one edge: the router's workers wait for that edge's
/// delivery answers, which arrive on the same link that carries the burst. The link must
/// keep reading (a reader blocked behind a full worker queue deadlocked it once).
#[tokio::test]
async fn a_burst_within_one_edge_does_not_stall_the_link() {
    let Some(cluster) = Cluster::start(&["sender", "sink"]).await else {
        return;
    };
    let mut sink = online(&cluster, 0, "sink", "r").await;
    let mut sender = online(&cluster, 0, "sender", "r").await;
    const TOTAL: usize = 2000;
    let burst: String = (0..TOTAL)
        .map(|i| format!("<message to='sink@localhost/r' type='chat'><body>{i}</body></message>"))
        .collect();
    let started = std::time::Instant::now();
    sender.send(&burst).await;
    let mut got = BTreeSet::new();
    while got.len() < TOTAL {
        let (m, _) = sink.until(|e| e.name() == "message").await;
        got.extend(body(&m));
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "stalled at {}",
            got.len()
        );
    }
    println!(
        "{TOTAL} messages through one edge's link in {:?}",
        started.elapsed()
    );
    cluster.clean_up().await;
}

/// Many sessions on one edge end at once (clients close their streams together): every
/// one leaves the registry. Unbinds that fail under the load are retried, and a record
/// left behind would be removed by the first delivery to it anyway; this checks the
/// first mechanism alone, with nobody sending.
#[tokio::test]
async fn a_mass_logout_leaves_no_session_in_the_registry() {
    // One address logs in 100 at a time: its handshake share too must be above that.
    let extra =
        "[limits]\nmax_connections_per_ip = 10000\nmax_concurrent_handshakes_per_ip = 1000\n";
    let Some(cluster) = Cluster::start_with(&["mass"], "redis://127.0.0.1:6379", extra).await
    else {
        return;
    };
    const SESSIONS: usize = 1_000;
    let addr = cluster.edges[0].addr;
    let mut clients = Vec::with_capacity(SESSIONS);
    const AT_ONCE: usize = 100;
    for chunk in 0..SESSIONS / AT_ONCE {
        let logins = (0..AT_ONCE).map(|i| {
            let resource = format!("r{}", chunk * AT_ONCE + i);
            let cert = cluster.cert_der.clone();
            tokio::spawn(
                async move { Client::login_at(addr, cert, "mass", "PLAIN", &resource).await },
            )
        });
        for login in futures::future::join_all(logins).await {
            clients.push(login.expect("logged in"));
        }
    }
    let key = format!("{}{{mass@localhost}}:s", cluster.prefix);
    let mut redis = redis::Client::open(cluster.redis[0].as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let held: usize = redis::cmd("HLEN")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(held, SESSIONS, "every session registered");
    drop(clients); // every stream closes at once
    let mut left = held;
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        left = redis::cmd("HLEN")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
    }
    assert_eq!(left, 0, "sessions left in the registry after a mass logout");
    cluster.clean_up().await;
}

/// Reads `count` chat messages whose bodies are `tag n` and checks each sender's numbers
/// arrive once, in order; returns how many arrived per tag.
async fn receive_numbered(
    c: &mut Client,
    count: usize,
) -> std::collections::HashMap<String, usize> {
    receive_numbered_then(c, count, |_| {}).await
}

/// [`receive_numbered`], showing each message to `seen` as well.
async fn receive_numbered_then(
    c: &mut Client,
    count: usize,
    mut seen: impl FnMut(&Element),
) -> std::collections::HashMap<String, usize> {
    let mut next = std::collections::HashMap::new();
    let mut got = 0;
    while got < count {
        let (m, _) = c.until(|e| e.name() == "message").await;
        seen(&m);
        let text = body(&m).expect("a body");
        let (tag, n) = text.split_once(' ').expect("'tag n'");
        let expected: &mut usize = next.entry(tag.to_owned()).or_default();
        assert_eq!(
            n.parse::<usize>().unwrap(),
            *expected,
            "{tag}: once and in order"
        );
        *expected += 1;
        got += 1;
    }
    next
}

fn numbered(to: &str, tag: &str, range: std::ops::Range<usize>) -> String {
    range
        .map(|i| format!("<message to='{to}' type='chat'><body>{tag} {i}</body></message>"))
        .collect()
}

/// The burst matrix across edges (DESIGN: exactly once or an error, in per-sender order,
/// whatever the burst size, in both modes): bursts at and past the write batch (64) and
/// far past it from one sender, then 100 senders (resources on the other edge) at once.
#[tokio::test]
async fn bursts_across_edges_arrive_exactly_once_in_order() {
    let Some(cluster) = Cluster::start(&["sender", "sink"]).await else {
        return;
    };
    let mut sink = online(&cluster, 1, "sink", "r").await;
    let sender = online(&cluster, 0, "sender", "r").await;
    let (_, mut writer) = sender.split();
    for count in [1, 64, 65, 1_000, 10_000] {
        let tag = format!("b{count}");
        let burst = numbered("sink@localhost/r", &tag, 0..count);
        let (_, got) = tokio::join!(writer.send(&burst), receive_numbered(&mut sink, count));
        assert_eq!(got[&tag], count);
    }
    let mut senders = Vec::new();
    for i in 0..100 {
        let addr = cluster.edges[0].addr;
        let cert = cluster.cert_der.clone();
        senders.push(tokio::spawn(async move {
            let mut c = Client::login_at(addr, cert, "sender", "PLAIN", &format!("s{i}")).await;
            c.send(&numbered("sink@localhost/r", &format!("s{i}"), 0..20))
                .await;
            c
        }));
    }
    let got = receive_numbered(&mut sink, 100 * 20).await;
    assert_eq!(got.len(), 100);
    assert!(got.values().all(|n| *n == 20), "{got:?}");
    for s in senders {
        drop(s.await.unwrap());
    }
    cluster.clean_up().await;
}
