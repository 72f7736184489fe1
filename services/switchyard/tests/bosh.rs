//! XEP-0124 BOSH carrying XMPP (XEP-0206), over real sockets: session creation and its
//! attributes, login with restart, chat with a TCP client, holding and releasing
//! requests, `rid` order, a lost response asked for again, and the errors of §17.

mod support;

use support::bosh::{http, BoshClient, NS};
use support::{Client, Server};
use switchyard_core::xml::Element;

fn body_text(el: &Element) -> Option<String> {
    el.child("body", "jabber:client").map(Element::text)
}

#[tokio::test]
async fn xep0206_a_session_is_created_logs_in_chats_and_terminates() {
    let server = Server::start().await;
    let c = BoshClient::create(&server, 2).await;
    let created = &c.created;
    // §7.1 and XEP-0206 §4: the session's parameters.
    assert!(created.is("body", NS));
    for (attr, value) in [
        ("hold", "1"),
        ("requests", "2"),
        ("wait", "2"),
        ("from", "localhost"),
    ] {
        assert_eq!(created.attr(attr), Some(value), "{attr}: {created:?}");
    }
    assert_eq!(created.attr("xmpp:version"), Some("1.0"));
    assert!(created.attr("authid").is_some_and(|id| !id.is_empty()));
    assert!(c.sid.len() >= 20, "a SID hard to guess");
    let features = created
        .child("features", "http://etherx.jabber.org/streams")
        .expect("features in the creation response");
    assert!(features
        .child("starttls", "urn:ietf:params:xml:ns:xmpp-tls")
        .is_none());
    assert!(features
        .child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")
        .is_some());

    let mut alice = BoshClient::login(&server, "alice", "web").await;
    let mut bob = Client::login(&server, "bob", "PLAIN", "phone").await;
    alice
        .send("<message xmlns='jabber:client' to='bob@localhost/phone' type='chat'><body>over bosh</body></message>")
        .await;
    let (got, _) = bob.until(|e| e.name() == "message").await;
    assert_eq!(body_text(&got).as_deref(), Some("over bosh"));
    assert_eq!(got.attr("from"), Some("alice@localhost/web"));
    bob.send("<message to='alice@localhost/web' type='chat'><body>to bosh</body></message>")
        .await;
    let got = alice.until(|e| e.name() == "message").await;
    assert!(got.is("message", "jabber:client"));
    assert_eq!(body_text(&got).as_deref(), Some("to bosh"));

    // XEP-0206 §6: terminate with a last payload; the session is over.
    let last = alice.terminate().await;
    assert_eq!(last.attr("type"), Some("terminate"), "{last:?}");
    let after = alice.send("").await;
    assert_eq!(after.attr("condition"), Some("item-not-found"));
}

#[tokio::test]
async fn xep0124_12_a_held_request_is_answered_as_soon_as_a_newer_one_arrives() {
    let server = Server::start().await;
    let mut alice = BoshClient::login_waiting(&server, "alice", "web", 10).await;
    let poll = alice.handle();
    let rid = alice.rid + 1;
    alice.rid = rid;
    let started = std::time::Instant::now();
    let held = tokio::spawn(async move { poll.send_rid(rid, "", "").await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "an empty poll is held");
    let newer = alice.handle();
    let next = tokio::spawn(async move { newer.send_rid(rid + 1, "", "").await });
    held.await.unwrap();
    // With hold 1 the older request is answered at once, long before `wait` (10 s).
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    next.abort();
}

#[tokio::test]
async fn xep0124_9_requests_are_taken_in_rid_order_whatever_order_they_arrive_in() {
    let server = Server::start().await;
    let alice = BoshClient::login(&server, "alice", "web").await;
    let mut bob = Client::login(&server, "bob", "PLAIN", "phone").await;
    let message = |text: &str| {
        format!(
            "<message xmlns='jabber:client' to='bob@localhost/phone'><body>{text}</body></message>"
        )
    };
    let (first, second) = (alice.rid + 1, alice.rid + 2);
    let ahead = alice.handle();
    let second_body = message("second");
    let late = tokio::spawn(async move { ahead.send_rid(second, "", &second_body).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    alice.send_rid(first, "", &message("first")).await;
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let (got, _) = bob.until(|e| e.name() == "message").await;
        bodies.push(body_text(&got).unwrap_or_default());
    }
    assert_eq!(bodies, ["first", "second"]);
    late.await.unwrap();
}

#[tokio::test]
async fn xep0124_14_a_repeated_rid_gets_the_same_response_and_one_outside_the_window_ends_it() {
    let server = Server::start().await;
    let mut c = BoshClient::login(&server, "alice", "web").await;
    let original = c
        .send("<iq xmlns='jabber:client' type='get' id='ping1'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let rid = c.rid;
    // The response was "lost": the client asks again with the same rid.
    let again = c.send_rid(rid, "", "").await;
    assert_eq!(again, original, "the response sent before");
    let far = c.send_rid(rid + 10, "", "").await;
    assert_eq!(far.attr("type"), Some("terminate"));
    assert_eq!(far.attr("condition"), Some("item-not-found"));
}

#[tokio::test]
async fn xep0124_17_errors_and_cross_origin_requests() {
    let server = Server::start_with(|c| {
        c.listen.websocket_origins = vec!["https://chat.example.org".into()];
    })
    .await;
    let (addr, cert) = (server.websocket(), server.cert_der());
    for (body, condition) in [
        ("<body xmlns='http://jabber.org/protocol/httpbind' sid='nope' rid='5'/>", "item-not-found"),
        ("<body xmlns='http://jabber.org/protocol/httpbind' rid='5'", "bad-request"),
        ("<body xmlns='http://jabber.org/protocol/httpbind' to='localhost'/>", "bad-request"),
        ("<body xmlns='http://jabber.org/protocol/httpbind' rid='5' to='example.org' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh'/>", "host-unknown"),
    ] {
        let answer = http(addr, cert.clone(), "POST", &[], body).await;
        let wanted = format!("condition='{condition}'");
        assert!(answer.body.contains(&wanted), "{body}: {}", answer.body);
    }

    let origin = [("Origin", "https://chat.example.org")];
    let preflight = http(addr, cert.clone(), "OPTIONS", &origin, "").await;
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("https://chat.example.org")
    );
    assert!(preflight
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("POST")));
    let foreign = [("Origin", "https://evil.example")];
    let refused = http(addr, cert.clone(), "POST", &foreign, "<body/>").await;
    assert_eq!(refused.status, 403);
}

#[tokio::test]
async fn xep0206_6_terminate_ends_a_session_with_stream_management_at_once() {
    let server = Server::start().await;
    let mut alice = BoshClient::login(&server, "alice", "web").await;
    let enabled = alice
        .expect("", "<enable xmlns='urn:xmpp:sm:3' resume='true'/>", |e| {
            e.name() == "enabled"
        })
        .await;
    assert!(enabled.attr("id").is_some());
    assert!(support::sessions_of(&server, "alice@localhost")
        .await
        .contains("web"));
    let last = alice.terminate().await;
    assert_eq!(last.attr("type"), Some("terminate"), "{last:?}");
    // Far under the resumption time (300 s) a lingering session would wait.
    let within = std::time::Duration::from_secs(10);
    let gone = support::session_gone_within(&server, "alice@localhost", "web", within).await;
    assert!(gone, "the session ended with the stream, not at a timeout");
}

#[tokio::test]
async fn xep0124_7_1_a_polling_client_gets_no_more_hold_than_it_asked_for() {
    let server = Server::start().await;
    let create = "<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' rid='7' to='localhost' wait='30' hold='0' ver='1.6' xmpp:version='1.0'/>";
    let response = http(server.websocket(), server.cert_der(), "POST", &[], create).await;
    let created = Element::parse(&response.body).expect("a body");
    assert_eq!(created.attr("hold"), Some("0"), "{}", response.body);
    let sid = created.attr("sid").unwrap().to_owned();
    // An empty poll is answered at once, not held for `wait`.
    let started = std::time::Instant::now();
    let poll = format!("<body xmlns='http://jabber.org/protocol/httpbind' sid='{sid}' rid='8'/>");
    let answer = http(server.websocket(), server.cert_der(), "POST", &[], &poll).await;
    assert_eq!(answer.status, 200);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn what_a_client_that_stopped_polling_never_got_is_stored_offline_not_lost() {
    // Without stream management: a write is done only once a response carries it, so a
    // client that stops polling leaves its messages unanswered, and they go offline.
    let server = Server::start_with(|c| c.timeouts.write_secs = 2).await;
    let mut alice = BoshClient::login(&server, "alice", "web").await;
    alice
        .expect("", "<presence xmlns='jabber:client'/>", |e| {
            e.name() == "presence"
        })
        .await;
    let mut bob = Client::login(&server, "bob", "PLAIN", "desk").await;
    for n in 0..5 {
        bob.send(&format!(
            "<message to='alice@localhost/web' type='chat'><body>held {n}</body></message>"
        ))
        .await;
    }
    // Alice's browser is gone; her session ends at the write timeout.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let mut again = Client::login(&server, "alice", "PLAIN", "phone").await;
    again.send("<presence/>").await;
    let mut bodies = Vec::new();
    while bodies.len() < 5 {
        let (m, _) = again.until(|e| e.name() == "message").await;
        bodies.push(body_text(&m).unwrap_or_default());
    }
    let expected: Vec<String> = (0..5).map(|n| format!("held {n}")).collect();
    assert_eq!(bodies, expected);
}

#[tokio::test]
async fn xep0124_14_a_request_whose_connection_dropped_may_be_sent_again() {
    let server = Server::start().await;
    let mut c = BoshClient::login_waiting(&server, "alice", "web", 10).await;
    let rid = c.rid + 1;
    c.rid = rid + 1;
    // The held request's connection goes away before its answer.
    let poll = c.handle();
    let dropped = tokio::spawn(async move { poll.send_rid(rid, "", "").await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    dropped.abort();
    let _ = dropped.await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let next = c.handle();
    let newer = tokio::spawn(async move { next.send_rid(rid + 1, "", "").await });
    // The retry of the dropped rid is answered, not the end of the session.
    let retried = c.send_rid(rid, "", "").await;
    assert_ne!(retried.attr("type"), Some("terminate"), "{retried:?}");
    newer.abort();
}

#[tokio::test]
async fn xep0206_stanzas_without_a_namespace_and_an_xml_declaration_are_read() {
    let server = Server::start().await;
    let mut alice = BoshClient::login(&server, "alice", "web").await;
    let mut bob = Client::login(&server, "bob", "PLAIN", "desk").await;
    alice.rid += 1;
    let body = format!(
        "<?xml version='1.0'?><body xmlns='{NS}' sid='{}' rid='{}'><message to='bob@localhost/desk' type='chat'><body>plain</body></message></body>",
        alice.sid, alice.rid
    );
    let response = http(alice.addr, alice.cert.clone(), "POST", &[], &body).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let (got, _) = bob.until(|e| e.name() == "message").await;
    assert_eq!(body_text(&got).as_deref(), Some("plain"));
}

#[tokio::test]
async fn xep0124_14_the_last_rid_inside_the_window_waits_and_the_first_outside_ends_it() {
    let server = Server::start().await;
    let c = BoshClient::login(&server, "alice", "web").await;
    // Window of `requests` (2): rid + 2 is taken (held until rid + 1 comes) ...
    let inside = c.handle();
    let edge = c.rid + 2;
    let held = tokio::spawn(async move { inside.send_rid(edge, "", "").await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "rid + 2 is inside the window");
    // ... rid + 3 is not.
    let outside = c.send_rid(c.rid + 3, "", "").await;
    assert_eq!(outside.attr("condition"), Some("item-not-found"));
    held.abort();
}
