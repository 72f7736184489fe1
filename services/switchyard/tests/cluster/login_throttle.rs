//! The login throttle and the SASL decoy across edges: failures made through one edge
//! count at the other (the routers keep the counts in Redis), an unknown account shows
//! the same salt through both, and every mechanism logs in through an edge that never
//! holds the account's keys (the routers check the proofs).

use crate::harness::Cluster;
use crate::support::Client;
use base64::Engine;
use std::net::{IpAddr, SocketAddr};
use switchyard_core::xml::{Element, Framer, Limits};
use tokio::net::TcpSocket;

/// A client of edge `edge` whose connection comes from `source` (loopback).
async fn connect_from(cluster: &Cluster, edge: usize, source: &str) -> Client {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(source.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    let tcp = socket.connect(cluster.edges[edge].addr).await.unwrap();
    let mut c = Client {
        io: Box::new(tcp),
        framer: Framer::new(Limits::default()),
        exporter: None,
        jid: None,
        domain: "localhost".into(),
    };
    c.open().await;
    c.starttls(cluster.cert_der.clone()).await;
    c.open().await;
    c
}

fn outcome(reply: &Element) -> String {
    match reply.name() {
        "failure" => reply.children().next().unwrap().name().to_owned(),
        other => other.to_owned(),
    }
}

async fn decoy_salt(cluster: &Cluster, edge: usize, user: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut c = connect_from(cluster, edge, "127.0.0.1").await;
    let first = b64.encode(format!("n,,n={user},r=probe"));
    c.send(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>{first}</auth>"
    ))
    .await;
    let challenge = c.element().await;
    let server_first = String::from_utf8(b64.decode(challenge.text()).unwrap()).unwrap();
    server_first.split_once(",s=").unwrap().1.to_owned()
}

#[tokio::test]
async fn failures_through_one_edge_count_at_the_other() {
    let extra =
        "[auth]\nmax_failures = 3\nfailure_delay_initial_ms = 0\nfailure_delay_max_ms = 0\n";
    let Some(cluster) = Cluster::start_with(&["alice"], "redis://127.0.0.1:6379", extra).await
    else {
        return;
    };
    let mut guesser = connect_from(&cluster, 0, "127.0.0.1").await;
    for _ in 0..3 {
        assert_eq!(
            outcome(&guesser.auth("PLAIN", "alice", "wrong").await),
            "not-authorized"
        );
    }
    // The other edge knows: the same account from the same address is refused there.
    let mut elsewhere = connect_from(&cluster, 1, "127.0.0.1").await;
    let reply = elsewhere.auth("PLAIN", "alice", "secret").await;
    assert_eq!(outcome(&reply), "temporary-auth-failure");
    // The owner from another address logs in through either edge.
    for edge in [0, 1] {
        let mut owner = connect_from(&cluster, edge, "127.0.0.2").await;
        assert_eq!(
            outcome(&owner.auth("SCRAM-SHA-256", "alice", "secret").await),
            "success"
        );
    }
    // Both edges present one salt for an account that does not exist.
    assert_eq!(
        decoy_salt(&cluster, 0, "ghost").await,
        decoy_salt(&cluster, 1, "ghost").await
    );
    cluster.clean_up().await;
}

/// Every mechanism through either edge: the edge gets only the salts, the router checks
/// each proof, and only the right password logs in (a wrong one, or an unknown account,
/// is `not-authorized`).
#[tokio::test]
async fn every_mechanism_logs_in_through_a_cluster_edge_with_the_right_password_only() {
    let extra = "[auth]\nfailure_delay_initial_ms = 0\nfailure_delay_max_ms = 0\n";
    let Some(cluster) = Cluster::start_with(&["alice"], "redis://127.0.0.1:6379", extra).await
    else {
        return;
    };
    let mechanisms = [
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-256",
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-1",
        "PLAIN",
    ];
    for (i, mechanism) in mechanisms.into_iter().enumerate() {
        let mut c = connect_from(&cluster, i % 2, "127.0.0.3").await;
        for (user, password) in [("alice", "wrong"), ("ghost", "secret")] {
            let reply = c.auth(mechanism, user, password).await;
            assert_eq!(outcome(&reply), "not-authorized", "{mechanism} {user}");
        }
        let reply = c.auth(mechanism, "alice", "secret").await;
        assert_eq!(outcome(&reply), "success", "{mechanism}");
    }
    cluster.clean_up().await;
}
