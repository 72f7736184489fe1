//! Admission control for reconnect storms: connections past
//! `limits.max_concurrent_handshakes` are refused at once with `resource-constraint` and
//! a retry hint, established sessions are untouched, and a place freed is taken again.

mod support;
use std::time::{Duration, Instant};
use support::*;

/// `n` connections that sit in their handshake (no header sent).
async fn stall(server: &Server, n: usize) -> Vec<Client> {
    let mut stalled = Vec::new();
    for _ in 0..n {
        stalled.push(Client::connect(server.c2s()).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stalled
}

/// A new connection, refused with our header and `resource-constraint`; the client and
/// the error element.
async fn refused(server: &Server) -> (Client, switchyard_core::xml::Element) {
    let mut refused = Client::connect(server.c2s()).await;
    refused.send(OPEN).await;
    assert!(matches!(
        refused.frame().await,
        Some(switchyard_core::Frame::Open(_))
    ));
    let error = refused.element().await;
    assert!(
        error
            .child("resource-constraint", "urn:ietf:params:xml:ns:xmpp-streams")
            .is_some(),
        "{error:?}"
    );
    (refused, error)
}

#[tokio::test]
async fn handshakes_past_the_bound_are_refused_at_once_and_sessions_go_on() {
    let server = Server::start_with(|c| c.limits.max_concurrent_handshakes = 2).await;
    let mut alice = Client::login(&server, "alice", "SCRAM-SHA-256", "desk").await;

    // Two connections sit in their handshake (no header yet): every place is taken.
    let mut stalled = stall(&server, 2).await;
    let started = Instant::now();
    let (mut refused, error) = refused(&server).await;
    let text = error
        .child("text", "urn:ietf:params:xml:ns:xmpp-streams")
        .map(|t| t.text())
        .unwrap_or_default();
    assert!(text.contains("retry in"), "{text}");
    assert!(refused.frame().await.is_none() || refused.frame().await.is_none());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once"
    );

    // The established session is served meanwhile.
    alice
        .send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(alice.element().await.attr("id"), Some("p"));

    // A bound session gives its place back, and the next client gets in.
    drop(stalled.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let bob = Client::login(&server, "bob", "SCRAM-SHA-256", "phone").await;
    assert_eq!(bob.jid.as_deref(), Some("bob@localhost/phone"));
    // Bob is bound: his place is free again for the next one.
    let carol = Client::login(&server, "carol", "SCRAM-SHA-256", "pad").await;
    assert_eq!(carol.jid.as_deref(), Some("carol@localhost/pad"));
}

/// One address cannot take every place: past `limits.max_concurrent_handshakes_per_ip`
/// its connections are refused while the edge still has room for others.
#[tokio::test]
async fn one_address_gets_only_its_share_of_the_handshakes() {
    let server = Server::start_with(|c| {
        c.limits.max_concurrent_handshakes = 100;
        c.limits.max_concurrent_handshakes_per_ip = 2;
    })
    .await;
    let stalled = stall(&server, 2).await;
    refused(&server).await;
    // Its share back, the address gets in again.
    drop(stalled);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let alice = Client::login(&server, "alice", "SCRAM-SHA-256", "desk").await;
    assert_eq!(alice.jid.as_deref(), Some("alice@localhost/desk"));
}
