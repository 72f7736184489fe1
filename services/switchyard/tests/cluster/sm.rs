//! XEP-0198 across edges: a session resumed on the edge its client came back to (the
//! load balancer's choice), whether the old connection broke or still looks alive.
//! Every message arrives once, in order, and contacts see no presence change.

use super::harness::Cluster;
use super::support::sm::{Counted, SM};
use super::{body, online};
use std::time::Duration;
use switchyard_core::xml::Element;

pub(super) fn chat(e: &Element) -> bool {
    e.name() == "message" && e.attr("type") == Some("chat")
}

/// Bob on edge 0 with resumable stream management, subscribed to by Alice (on edge 0);
/// his SM-ID.
pub(super) async fn bob_on_edge_0(
    cluster: &Cluster,
    alice: &mut support::Client,
) -> (Counted, String) {
    let bob = support::Client::login_at(
        cluster.edges[0].addr,
        cluster.cert_der.clone(),
        "bob",
        "SCRAM-SHA-256",
        "phone",
    )
    .await;
    let (mut bob, id) = Counted::enable(bob, true).await;
    bob.client
        .send("<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq><presence/>")
        .await;
    bob.until(|e| e.name() == "presence" && e.attr("type").is_none())
        .await;
    alice
        .send("<presence type='subscribe' to='bob@localhost'/>")
        .await;
    bob.until(|e| e.attr("type") == Some("subscribe")).await;
    bob.client
        .send("<presence type='subscribed' to='alice@localhost'/>")
        .await;
    alice
        .until(|e| e.name() == "presence" && e.attr("from") == Some("bob@localhost/phone"))
        .await;
    (bob, id.expect("resumable"))
}

use super::support;

pub(super) async fn send(alice: &mut support::Client, n: usize) {
    alice
        .send(&format!(
            "<message to='bob@localhost/phone' type='chat' id='m{n}'><body>m{n}</body></message>"
        ))
        .await;
}

#[tokio::test]
async fn xep0198_a_session_resumes_on_the_other_edge_and_loses_nothing() {
    let Some(cluster) = Cluster::start(&["alice", "bob"]).await else {
        return;
    };
    let mut alice = online(&cluster, 0, "alice", "desk").await;
    let (mut bob, id) = bob_on_edge_0(&cluster, &mut alice).await;
    for n in 1..=3 {
        send(&mut alice, n).await;
    }
    for n in 1..=3 {
        let (m, _) = bob.until(chat).await;
        assert_eq!(body(&m), Some(format!("m{n}")));
    }
    let h = bob.h;
    drop(bob);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for n in 4..=6 {
        send(&mut alice, n).await;
    }

    // The balancer sends Bob's phone to the other edge.
    let at = (cluster.edges[1].addr, cluster.cert_der.clone());
    let (mut bob, _) = Counted::resumed_within(at, "bob", &id, h, support::TIMEOUT).await;
    for n in 4..=6 {
        let (m, skipped) = bob.until(chat).await;
        assert_eq!(
            body(&m),
            Some(format!("m{n}")),
            "once, in order: {skipped:?}"
        );
    }
    // Deliveries now go to edge 1, and Bob's stanzas are his there.
    send(&mut alice, 7).await;
    let (m, _) = bob.until(chat).await;
    assert_eq!(body(&m).as_deref(), Some("m7"));
    bob.client
        .send("<message to='alice@localhost/desk' type='chat'><body>back</body></message>")
        .await;
    let (back, before) = alice.until(|e| body(e).as_deref() == Some("back")).await;
    assert_eq!(back.attr("from"), Some("bob@localhost/phone"));
    assert!(
        !before.iter().any(|e| e.attr("type") == Some("unavailable")),
        "a presence flap: {before:?}"
    );
    cluster.clean_up().await;
}

#[tokio::test]
async fn xep0198_resuming_on_the_other_edge_ends_a_connection_that_still_looks_alive() {
    let Some(cluster) = Cluster::start(&["alice", "bob"]).await else {
        return;
    };
    let mut alice = online(&cluster, 0, "alice", "desk").await;
    let (mut old, id) = bob_on_edge_0(&cluster, &mut alice).await;
    send(&mut alice, 1).await;
    old.until(chat).await;
    // Bob neither acks nor reads m2: it was written to the old connection.
    send(&mut alice, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acked = old.h;

    let at = (cluster.edges[1].addr, cluster.cert_der.clone());
    let (mut new, _) = Counted::resumed_within(at, "bob", &id, acked, support::TIMEOUT).await;
    let (m, _) = new.until(chat).await;
    assert_eq!(body(&m).as_deref(), Some("m2"), "resent on the new stream");
    // The old stream is over (XEP-0198 §5), whatever it still had buffered.
    while old.client.frame().await.is_some() {}
    // A wrong SM-ID or another account's resumes nothing anywhere.
    let mut stranger = Counted::resume(
        cluster.edges[0].addr,
        cluster.cert_der.clone(),
        "alice",
        &id,
        0,
    )
    .await;
    let failed = stranger.element().await;
    assert!(failed.is("failed", SM), "{failed:?}");
    cluster.clean_up().await;
}

/// tokio-xmpp (a client we did not write, with its own stream management) on edge 0
/// loses its connection, and the load balancer sends it to edge 1, where it resumes:
/// what Bob (on edge 1) sent meanwhile arrives once, in order, and what it sent while
/// cut off reaches Bob once (see `support::tokio_xmpp::resumes_after_a_cut`).
#[tokio::test]
async fn xep0198_tokio_xmpp_resumes_on_the_other_edge() {
    let Some(cluster) = Cluster::start(&["alice", "bob"]).await else {
        return;
    };
    let relay = support::relay::Relay::start(cluster.edges[0].addr).await;
    let mut bob = online(&cluster, 1, "bob", "tx-sm").await;
    let tls = support::tls_config(cluster.cert_der.clone());
    let next = cluster.edges[1].addr;
    support::tokio_xmpp::resumes_after_a_cut(&relay, tls, &mut bob, "bob@localhost/tx-sm", next)
        .await;
    cluster.clean_up().await;
}
