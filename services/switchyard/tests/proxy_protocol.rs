//! The PROXY protocol on the client listeners (`listen.proxy_protocol`): the address a
//! load balancer names is the one per-IP limits count, for v1 and v2 headers, and a
//! connection without a valid header is closed.

mod support;
use support::*;

/// A STARTTLS login behind `prelude` (the balancer's header); the client, bound.
async fn login_behind(server: &Server, prelude: &[u8], user: &str, resource: &str) -> Client {
    let mut c = Client::connect(server.c2s()).await;
    c.send_bytes(prelude).await;
    c.open().await;
    c.starttls(server.cert_der()).await;
    c.open().await;
    assert_eq!(
        c.auth("SCRAM-SHA-256", user, "secret").await.name(),
        "success"
    );
    c.bind(resource).await;
    c
}

/// Whether the server closes a connection that sent `prelude` and a stream header.
async fn closed_after(server: &Server, prelude: &[u8]) -> bool {
    let mut c = Client::connect(server.c2s()).await;
    c.send_bytes(prelude).await;
    c.send_bytes(OPEN.as_bytes()).await;
    c.frame().await.is_none()
}

fn v2(ip: [u8; 4]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&ip);
    h.extend_from_slice(&[127, 0, 0, 1, 0xc8, 0x22, 0x14, 0x66]);
    h
}

#[tokio::test]
async fn per_ip_limits_count_the_address_the_balancer_names() {
    let server = Server::start_with(|c| {
        c.listen.proxy_protocol = true;
        c.limits.max_connections_per_ip = 1;
    })
    .await;
    let seven = b"PROXY TCP4 203.0.113.7 127.0.0.1 51234 5222\r\n";
    let alice = login_behind(&server, seven, "alice", "a").await;
    assert_eq!(alice.jid.as_deref(), Some("alice@localhost/a"));
    // The same client address again: past its cap of one, closed.
    assert!(
        closed_after(&server, seven).await,
        "a second connection from .7"
    );
    // Other addresses, all from 127.0.0.1 in fact, each get their own cap.
    let bob = login_behind(&server, &v2([203, 0, 113, 8]), "bob", "b").await;
    assert_eq!(bob.jid.as_deref(), Some("bob@localhost/b"));
    let six = b"PROXY TCP6 2001:db8::9 ::1 51234 5222\r\n";
    let carol = login_behind(&server, six, "carol", "c").await;
    assert_eq!(carol.jid.as_deref(), Some("carol@localhost/c"));
    // No header, or a broken one: closed before anything else.
    assert!(closed_after(&server, b"").await, "no header");
    assert!(closed_after(&server, b"PROXY TCP4 203.0.113.10 127.0.0.1 1\r\n").await);
    assert!(closed_after(&server, b"GET / HTTP/1.1\r\n\r\n").await);
}
