//! RFC 7395 in the cluster: a WebSocket client on one edge chats with a TCP client on the
//! other, loses its connection, and resumes (XEP-0198) over WebSocket on the other edge
//! with exactly what it had not acknowledged.

use super::harness::Cluster;
use super::support::ws::{connect_with, WsClient};
use super::{body, online};

const SM: &str = "urn:xmpp:sm:3";

async fn ws_at(cluster: &Cluster, edge: usize) -> WsClient {
    let addr = cluster.edges[edge]
        .websocket
        .expect("an edge's WebSocket listener");
    let xmpp = [("sec-websocket-protocol", "xmpp")];
    connect_with(addr, Some(cluster.cert_der.clone()), &xmpp)
        .await
        .expect("upgraded")
}

#[tokio::test]
async fn a_websocket_session_chats_across_edges_and_resumes_on_the_other_edge() {
    let Some(cluster) = Cluster::start(&["alice", "bob"]).await else {
        return;
    };
    let mut bob = online(&cluster, 1, "bob", "phone").await;
    let mut alice = ws_at(&cluster, 0).await;
    alice.open().await;
    assert_eq!(alice.auth("alice").await.name(), "success");
    alice.bind("web").await;
    alice
        .send(&format!("<enable xmlns='{SM}' resume='true'/>"))
        .await;
    let enabled = alice.element().await;
    let previd = enabled.attr("id").expect("resumable").to_owned();

    alice
        .send("<message xmlns='jabber:client' to='bob@localhost/phone' type='chat'><body>from the browser</body></message>")
        .await;
    let (got, _) = bob.until(|e| e.name() == "message").await;
    assert_eq!(body(&got).as_deref(), Some("from the browser"));
    assert_eq!(got.attr("from"), Some("alice@localhost/web"));

    let send = |n: usize| {
        format!(
            "<message to='alice@localhost/web' type='chat' id='m{n}'><body>m{n}</body></message>"
        )
    };
    bob.send(&send(1)).await;
    let got = alice.until(|e| e.name() == "message").await;
    assert_eq!(body(&got).as_deref(), Some("m1"));
    alice.send(&format!("<a xmlns='{SM}' h='1'/>")).await;
    bob.send(&send(2)).await;
    let got = alice.until(|e| e.name() == "message").await;
    assert_eq!(body(&got).as_deref(), Some("m2"));
    // The connection drops with m2 unacknowledged; m3 arrives while it is detached.
    drop(alice);
    bob.send(&send(3)).await;

    let mut back = ws_at(&cluster, 1).await;
    back.open().await;
    assert_eq!(back.auth("alice").await.name(), "success");
    back.open().await;
    back.send(&format!("<resume xmlns='{SM}' previd='{previd}' h='1'/>"))
        .await;
    let resumed = back.element().await;
    assert!(resumed.is("resumed", SM), "{resumed:?}");
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let got = back.until(|e| e.name() == "message").await;
        bodies.push(body(&got).unwrap_or_default());
    }
    assert_eq!(bodies, ["m2", "m3"]);
    back.send("<message xmlns='jabber:client' to='bob@localhost/phone' type='chat'><body>back</body></message>")
        .await;
    let (got, _) = bob.until(|e| e.name() == "message").await;
    assert_eq!(body(&got).as_deref(), Some("back"));
    cluster.clean_up().await;
}
