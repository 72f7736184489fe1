//! Every gauge returns to its resting value once clients are gone (all-in-one here; the
//! cluster test `cluster::admin` checks an edge process the same way), and open
//! connections count sockets: not a stream-managed session waiting, detached, to be
//! resumed. Alone in its test
//! binary: the metrics are the process's, and another test's clients would move them.

mod support;

use support::sm::{Counted, SM};
use support::{Client, Server};

const GAUGES: [&str; 5] = [
    "switchyard_edge_sessions",
    "switchyard_edge_connections{listener=\"starttls\"}",
    "switchyard_edge_mailbox_queued_bytes",
    "switchyard_edge_sm_detached_sessions",
    "switchyard_cluster_sessions_online",
];

fn value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

async fn metrics(server: &Server) -> String {
    let base = format!("http://{}", server.running.admin.expect("admin listener"));
    let (status, text) = switchyard::admin_client::request(&base, "GET", "/metrics", "", None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    text
}

/// Polls the metrics until `gauge` reads `wanted` (bounded: 5 s).
async fn settles(server: &Server, gauge: &str, wanted: f64) {
    let mut text = String::new();
    for _ in 0..50 {
        text = metrics(server).await;
        if value(&text, gauge) == wanted {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{gauge} is {} not {wanted}:\n{text}", value(&text, gauge));
}

#[tokio::test]
async fn gauges_return_to_rest_after_clients_log_in_and_out() {
    // Three connections at most: the limit counts sockets, as the gauge does.
    let server = Server::start_with(|c| c.limits.max_connections = 3).await;
    let starttls = "switchyard_edge_connections{listener=\"starttls\"}";
    let detached = "switchyard_edge_sm_detached_sessions";

    // XEP-0198: a session whose connection broke waits with no socket: it is neither an
    // open connection nor one of the three places, until a new connection resumes it.
    let carol = Client::login(&server, "carol", "SCRAM-SHA-256", "sm").await;
    let (carol, id) = Counted::enable(carol, true).await;
    settles(&server, starttls, 1.0).await;
    drop(carol);
    settles(&server, detached, 1.0).await;
    settles(&server, starttls, 0.0).await;
    let mut others = Vec::new();
    for (user, resource) in [("alice", "one"), ("bob", "one"), ("alice", "two")] {
        others.push(Client::login(&server, user, "SCRAM-SHA-256", resource).await);
    }
    settles(&server, starttls, 3.0).await;
    let mut last = others.pop().expect("three");
    last.send("</stream:stream>").await;
    while last.frame().await.is_some() {}
    settles(&server, starttls, 2.0).await;
    let id = id.expect("resumable");
    let mut carol = Counted::resume(server.c2s(), server.cert_der(), "carol", &id, 0).await;
    let resumed = carol.element().await;
    assert!(resumed.is("resumed", SM), "{resumed:?}");
    settles(&server, detached, 0.0).await;
    settles(&server, starttls, 3.0).await;
    for mut c in others.into_iter().chain([carol]) {
        c.send("</stream:stream>").await;
        while c.frame().await.is_some() {}
    }
    settles(&server, starttls, 0.0).await;

    let mut clients = Vec::new();
    for (user, resource) in [("alice", "a"), ("bob", "b"), ("carol", "c")] {
        let mut c = Client::login(&server, user, "SCRAM-SHA-256", resource).await;
        c.send("<presence/>").await;
        clients.push(c);
    }
    let busy = metrics(&server).await;
    assert_eq!(value(&busy, "switchyard_edge_sessions"), 3.0, "{busy}");
    assert_eq!(
        value(&busy, "switchyard_edge_connections{listener=\"starttls\"}"),
        3.0
    );
    for mut c in clients {
        c.send("</stream:stream>").await;
        while c.frame().await.is_some() {}
    }
    // Unbinds and the registry count settle within a few seconds (the count is read
    // every 15 s).
    let mut rest = String::new();
    for _ in 0..40 {
        rest = metrics(&server).await;
        if GAUGES.iter().all(|g| value(&rest, g) == 0.0) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let left: Vec<String> = GAUGES
        .iter()
        .map(|g| format!("{g} = {}", value(&rest, g)))
        .collect();
    panic!("gauges not at rest after 20 s: {left:?}");
}
