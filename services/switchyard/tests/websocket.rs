//! RFC 7395 XMPP over WebSocket and XEP-0156 discovery, over real sockets: a client that
//! insists every message is one whole element with its namespaces declared (§3.3.3).

mod support;

use support::ws::{connect_with, WsClient, CLOSE, FRAMING};
use support::{Client, Server};
use switchyard_core::xml::Element;

const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const SM: &str = "urn:xmpp:sm:3";

fn body(el: &Element) -> Option<String> {
    el.child("body", "jabber:client").map(Element::text)
}

#[tokio::test]
async fn a_websocket_client_logs_in_and_chats_with_a_tcp_client() {
    let server = Server::start().await;
    let mut ws = WsClient::connect(&server).await;
    let (open, features) = ws.open().await;
    // §3.3.2: the server's <open/> names itself and the stream's id and version.
    assert_eq!(open.attr("from"), Some("localhost"));
    assert_eq!(open.attr("version"), Some("1.0"));
    assert!(open.attr("id").is_some());
    // §3.7: no STARTTLS; TLS is the connection's, with its channel bindings.
    assert!(features
        .child("starttls", "urn:ietf:params:xml:ns:xmpp-tls")
        .is_none());
    let mechanisms: Vec<String> = features
        .child("mechanisms", SASL)
        .expect("mechanisms")
        .children()
        .map(Element::text)
        .collect();
    assert!(
        mechanisms.iter().any(|m| m == "SCRAM-SHA-256-PLUS"),
        "{mechanisms:?}"
    );
    assert_eq!(ws.auth("alice").await.name(), "success");
    let alice = ws.bind("web").await;
    ws.send("<presence xmlns='jabber:client'/>").await;

    let mut bob = Client::login(&server, "bob", "PLAIN", "phone").await;
    bob.send("<presence/>").await;
    bob.send(&format!(
        "<message to='{alice}' type='chat' id='b1'><body>hello browser</body></message>"
    ))
    .await;
    let got = ws.until(|e| e.is("message", "jabber:client")).await;
    assert_eq!(body(&got).as_deref(), Some("hello browser"));
    assert_eq!(got.attr("from"), bob.jid.as_deref());

    ws.send("<message xmlns='jabber:client' to='bob@localhost' type='chat' id='a1'><body>hello tcp</body></message>").await;
    let (got, _) = bob.until(|e| e.name() == "message").await;
    assert_eq!(body(&got).as_deref(), Some("hello tcp"));
    assert_eq!(got.attr("from"), Some(alice.as_str()));

    ws.send("<iq xmlns='jabber:client' type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    let result = ws.until(|e| e.attr("id") == Some("r1")).await;
    assert!(result.is("iq", "jabber:client"));
    assert_eq!(result.attr("type"), Some("result"));

    // §3.6: <close/> is answered with <close/>, then the connection ends.
    ws.send(CLOSE).await;
    let close = ws.until(|e| e.is("close", FRAMING)).await;
    assert_eq!(close.attrs().count(), 0, "{close:?}");
    assert_eq!(ws.message().await, None);
}

#[tokio::test]
async fn rfc6120_framing_and_binary_messages_are_not_xmpp_over_websocket() {
    let server = Server::start().await;
    let mut ws = WsClient::connect(&server).await;
    ws.send("<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>").await;
    let open = ws.element().await;
    assert!(open.is("open", FRAMING));
    let error = ws.element().await;
    assert!(
        error.is("error", "http://etherx.jabber.org/streams"),
        "{error:?}"
    );
    assert!(error
        .child("bad-format", "urn:ietf:params:xml:ns:xmpp-streams")
        .is_some());
    assert!(ws.element().await.is("close", FRAMING));
    assert_eq!(ws.message().await, None);

    let mut ws = WsClient::connect(&server).await;
    ws.open().await;
    use futures_util::SinkExt;
    ws.ws
        .send(tokio_tungstenite::tungstenite::Message::binary(
            b"<presence/>".to_vec(),
        ))
        .await
        .unwrap();
    assert_eq!(ws.message().await, None, "closed on a binary message");
}

#[tokio::test]
async fn the_upgrade_needs_the_xmpp_subprotocol_and_a_listed_origin() {
    let server = Server::start_with(|c| {
        c.listen.websocket_origins = vec!["https://chat.example.org".into()];
    })
    .await;
    let addr = server.websocket();
    let cert = || Some(server.cert_der());
    let xmpp = ("sec-websocket-protocol", "xmpp");
    assert_eq!(connect_with(addr, cert(), &[]).await.err(), Some(400));
    let foreign = [xmpp, ("origin", "https://evil.example")];
    assert_eq!(connect_with(addr, cert(), &foreign).await.err(), Some(403));
    let listed = [xmpp, ("origin", "https://chat.example.org")];
    let mut ws = connect_with(addr, cert(), &listed)
        .await
        .expect("listed origin");
    ws.open().await;
    // A native client sends no Origin.
    assert!(connect_with(addr, cert(), &[xmpp]).await.is_ok());
}

/// A plain HTTP/1.1 request over TLS; the status line and body.
async fn https_get(server: &Server, host: &str, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(server.websocket())
        .await
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(support::tls_config(server.cert_der()));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    let read = tls.read_to_string(&mut response);
    tokio::time::timeout(support::TIMEOUT, read)
        .await
        .unwrap()
        .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a response");
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

#[tokio::test]
async fn host_meta_names_the_websocket_endpoint() {
    let server = Server::start().await;
    let host = "localhost:5443";
    let (status, body) = https_get(&server, host, "/.well-known/host-meta.json").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let href = "wss://localhost:5443/xmpp-websocket";
    assert!(body.contains(&format!("\"href\":\"{href}\"")), "{body}");
    assert!(
        body.contains("urn:xmpp:alt-connections:websocket"),
        "{body}"
    );
    let (status, body) = https_get(&server, host, "/.well-known/host-meta").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.contains(&format!("href='{href}'")), "{body}");
    // A Host that is not a served domain is not echoed.
    let (status, _) = https_get(&server, "evil.example", "/.well-known/host-meta").await;
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    let (status, _) = https_get(&server, host, "/nothing").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, _) = https_get(&server, host, "/xmpp-websocket").await;
    assert_eq!(status, "HTTP/1.1 426 Upgrade Required");
}

#[tokio::test]
async fn a_plain_listener_behind_a_tls_terminating_balancer_allows_login() {
    let server = Server::start_with(|c| c.listen.websocket_tls = false).await;
    let xmpp = [("sec-websocket-protocol", "xmpp")];
    let mut ws = connect_with(server.websocket(), None, &xmpp)
        .await
        .expect("upgraded");
    let (_, features) = ws.open().await;
    let mechanisms = features.child("mechanisms", SASL).expect("login offered");
    assert!(mechanisms.children().all(|m| !m.text().ends_with("-PLUS")));
    assert_eq!(ws.auth("alice").await.name(), "success");
    ws.bind("web").await;
}

#[tokio::test]
async fn a_stanza_at_the_limit_passes_and_one_byte_more_is_a_policy_violation() {
    let server = Server::start_with(|c| c.limits.max_stanza_bytes = 8192).await;
    let head = "<message xmlns='jabber:client' to='bob@localhost/phone' id='big'><body>";
    let tail = "</body></message>";
    let stanza =
        |size: usize| format!("{head}{}{tail}", "x".repeat(size - head.len() - tail.len()));
    let mut bob = Client::login(&server, "bob", "PLAIN", "phone").await;
    let mut ws = WsClient::login(&server, "alice", "web").await;
    ws.send(&stanza(8192)).await;
    let (got, _) = bob.until(|e| e.name() == "message").await;
    let expected = 8192 - head.len() - tail.len();
    assert_eq!(body(&got).map(|b| b.len()), Some(expected));
    ws.send(&stanza(8193)).await;
    let error = ws
        .until(|e| e.is("error", "http://etherx.jabber.org/streams"))
        .await;
    assert!(error
        .child("policy-violation", "urn:ietf:params:xml:ns:xmpp-streams")
        .is_some());
    assert!(ws.element().await.is("close", FRAMING));
    // Far past it, the WebSocket layer refuses the message unread.
    let mut ws = WsClient::login(&server, "alice", "web2").await;
    ws.send(&stanza(64 * 1024)).await;
    assert_eq!(ws.message().await, None);
}

#[tokio::test]
async fn a_websocket_session_resumes_over_tcp_with_what_it_had_not_acknowledged() {
    let server = Server::start().await;
    let mut ws = WsClient::login(&server, "alice", "web").await;
    ws.send(&format!("<enable xmlns='{SM}' resume='true'/>"))
        .await;
    let enabled = ws.element().await;
    assert!(enabled.is("enabled", SM), "{enabled:?}");
    let previd = enabled.attr("id").expect("an SM-ID").to_owned();
    let mut bob = Client::login(&server, "bob", "PLAIN", "phone").await;
    for n in 1..=3 {
        bob.send(&format!(
            "<message to='alice@localhost/web' id='m{n}'><body>{n}</body></message>"
        ))
        .await;
    }
    for n in 1..=3 {
        let got = ws.until(|e| e.name() == "message").await;
        assert_eq!(body(&got), Some(n.to_string()));
    }
    // The browser's connection drops without a close; it acknowledged only the first.
    ws.send(&format!("<a xmlns='{SM}' h='1'/>")).await;
    drop(ws);
    let mut tcp = Client::authenticated_at(server.c2s(), server.cert_der(), "alice", "PLAIN").await;
    tcp.open().await;
    tcp.send(&format!("<resume xmlns='{SM}' previd='{previd}' h='1'/>"))
        .await;
    let resumed = tcp.element().await;
    assert!(resumed.is("resumed", SM), "{resumed:?}");
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let (got, _) = tcp.until(|e| e.name() == "message").await;
        bodies.push(body(&got).unwrap_or_default());
    }
    assert_eq!(bodies, ["2", "3"]);
}

#[tokio::test]
async fn rfc6455_a_close_frame_is_answered_with_one() {
    let server = Server::start().await;
    let mut ws = WsClient::login(&server, "alice", "web").await;
    use futures_util::StreamExt;
    ws.ws.close(None).await.expect("close sent");
    let mut answered = false;
    for _ in 0..10 {
        let next = tokio::time::timeout(support::TIMEOUT, ws.ws.next()).await;
        match next.expect("the server answers") {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) => answered = true,
            Some(Ok(_)) => {}
            None | Some(Err(_)) => break,
        }
    }
    assert!(
        answered,
        "§5.5.1: the server answers a close frame with its own"
    );
}

/// This process's resident memory in bytes (the server runs in it).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split(' ')
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[tokio::test]
async fn a_client_that_pings_and_never_reads_costs_bounded_memory() {
    let server = Server::start().await;
    let mut ws = WsClient::login(&server, "alice", "web").await;
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let ping = Message::Ping(vec![7u8; 125].into());
    let before = rss();
    // Each ping asks for a pong this side never reads. Unbounded, the server kept every
    // one (over 200 MiB in this test). Bounded: the socket buffers fill, then the
    // server's write bound, and it stops reading (or closes). At most 2,000,000 pings or
    // 10 s.
    let flood = async {
        for _ in 0..2_000_000 {
            if ws.ws.send(ping.clone()).await.is_err() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), flood).await;
    let grown = rss().saturating_sub(before);
    assert!(grown < 64 << 20, "the server grew by {} MiB", grown >> 20);
}
