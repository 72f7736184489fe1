//! XEP-0198 stream management and XEP-0199 keepalives over real sockets, all-in-one:
//! resumption after a dropped connection (nothing lost, nothing twice, no presence flap),
//! unacknowledged stanzas going to offline storage when resumption times out, a resumed
//! session taking over a connection that still looks alive, SM-IDs that only their
//! account can use, and quiet connections pinged, then closed.

mod support;
use std::time::Duration;
use support::sm::{Counted, SM};
use support::*;
use switchyard_core::xml::Element;

fn is<'a>(name: &'a str, kind: Option<&'a str>) -> impl Fn(&Element) -> bool + 'a {
    move |e| e.name() == name && e.attr("type") == kind
}

fn body(e: &Element) -> String {
    e.child("body", "jabber:client")
        .map(|b| b.text())
        .unwrap_or_default()
}

/// Alice and Bob subscribed to each other, both available; Bob with resumable stream
/// management enabled before any of it, so his count covers every stanza.
async fn friends(server: &Server) -> (Client, Counted, String) {
    let mut alice = Client::login(server, "alice", "SCRAM-SHA-256", "desk").await;
    let bob = Client::login(server, "bob", "SCRAM-SHA-256", "phone").await;
    let (mut bob, id) = Counted::enable(bob, true).await;
    let id = id.expect("resumable");
    for (c, other) in [(&mut alice, "bob")] {
        c.send("<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>")
            .await;
        c.until(is("iq", Some("result"))).await;
        c.send("<presence/>").await;
        c.until(is("presence", None)).await;
        c.send(&format!(
            "<presence type='subscribe' to='{other}@localhost'/>"
        ))
        .await;
    }
    bob.client
        .send("<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    bob.until(is("iq", Some("result"))).await;
    bob.client.send("<presence/>").await;
    bob.until(is("presence", Some("subscribe"))).await;
    bob.client
        .send("<presence type='subscribed' to='alice@localhost'/>")
        .await;
    let from_bob = |e: &Element| {
        e.name() == "presence"
            && e.attr("type").is_none()
            && e.attr("from") == Some("bob@localhost/phone")
    };
    alice.until(from_bob).await;
    (alice, bob, id)
}

async fn chat(from: &mut Client, to: &str, id: &str) {
    from.send(&format!(
        "<message to='{to}' type='chat' id='{id}'><body>{id}</body></message>"
    ))
    .await;
}

#[tokio::test]
async fn xep0198_resumption_after_a_dropped_connection_loses_and_repeats_nothing() {
    let server = Server::start().await;
    let (mut alice, mut bob, id) = friends(&server).await;
    for n in 1..=3 {
        chat(&mut alice, "bob@localhost/phone", &format!("m{n}")).await;
    }
    for n in 1..=3 {
        let (m, _) = bob.until(is("message", Some("chat"))).await;
        assert_eq!(body(&m), format!("m{n}"));
    }
    // Bob's phone loses the network: no </stream:stream>, no ack for the last ones.
    let h = bob.h;
    drop(bob);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for n in 4..=6 {
        chat(&mut alice, "bob@localhost/phone", &format!("m{n}")).await;
    }

    let mut bob = Counted::resume(server.c2s(), server.cert_der(), "bob", &id, h).await;
    let resumed = bob.element().await;
    assert!(resumed.is("resumed", SM), "{resumed:?}");
    assert_eq!(resumed.attr("previd"), Some(id.as_str()));
    // Bob sent his presence and a subscription answer (the roster get too): 3 handled.
    assert_eq!(resumed.attr("h"), Some("3"));
    let mut bob = Counted {
        client: bob,
        h,
        answer_requests: true,
    };
    for n in 4..=6 {
        let (m, skipped) = bob.until(is("message", Some("chat"))).await;
        assert_eq!(
            body(&m),
            format!("m{n}"),
            "in order, each once: {skipped:?}"
        );
    }

    // Alice never saw Bob go: the next thing from him is his message, not unavailable.
    bob.client
        .send("<message to='alice@localhost/desk' type='chat'><body>back</body></message>")
        .await;
    let (back, before) = alice.until(is("message", Some("chat"))).await;
    assert_eq!(body(&back), "back");
    assert!(
        !before.iter().any(|e| e.attr("type") == Some("unavailable")),
        "a presence flap: {before:?}"
    );
    // Nothing more arrives twice: an ack for everything is accepted.
    let h = bob.h;
    bob.client
        .send(&format!("<a xmlns='{SM}' h='{h}'/><r xmlns='{SM}'/>"))
        .await;
    let a = bob.client.until(|e| e.is("a", SM)).await.0;
    assert_eq!(a.attr("h"), Some("4"));
}

#[tokio::test]
async fn xep0198_unacknowledged_messages_go_offline_when_resumption_times_out() {
    let server = Server::start_with(|c| c.stream_management.resume_max_secs = 1).await;
    let (mut alice, mut bob, _) = friends(&server).await;
    bob.answer_requests = false;
    chat(&mut alice, "bob@localhost/phone", "seen-not-acked").await;
    bob.until(is("message", Some("chat"))).await;
    drop(bob);
    tokio::time::sleep(Duration::from_millis(200)).await;
    chat(&mut alice, "bob@localhost/phone", "while-detached").await;

    // The session expires: Alice now sees Bob go, and his messages wait offline.
    let (gone, _) = alice.until(is("presence", Some("unavailable"))).await;
    assert_eq!(gone.attr("from"), Some("bob@localhost/phone"));
    let mut bob = Client::login(&server, "bob", "SCRAM-SHA-256", "phone").await;
    bob.send("<presence/>").await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let (m, _) = bob.until(is("message", Some("chat"))).await;
        assert!(m.child("delay", "urn:xmpp:delay").is_some(), "{m:?}");
        got.push(body(&m));
    }
    assert_eq!(got, ["seen-not-acked", "while-detached"]);
}

#[tokio::test]
async fn xep0198_resuming_takes_over_a_connection_that_still_looks_alive() {
    let server = Server::start().await;
    let (mut alice, mut old, id) = friends(&server).await;
    chat(&mut alice, "bob@localhost/phone", "m1").await;
    old.until(is("message", Some("chat"))).await;

    let mut new = Counted::resume(server.c2s(), server.cert_der(), "bob", &id, old.h).await;
    assert!(new.element().await.is("resumed", SM));
    // XEP-0198 §5: the old stream is ended.
    while old.client.frame().await.is_some() {}
    chat(&mut alice, "bob@localhost/phone", "m2").await;
    let mut new = Counted {
        client: new,
        h: old.h,
        answer_requests: true,
    };
    let (m, _) = new.until(is("message", Some("chat"))).await;
    assert_eq!(body(&m), "m2");
}

#[tokio::test]
async fn xep0198_an_sm_id_resumes_nothing_for_another_account_or_after_a_clean_close() {
    let server = Server::start().await;
    let bob = Client::login(&server, "bob", "SCRAM-SHA-256", "phone").await;
    let (mut bob, id) = Counted::enable(bob, true).await;
    let id = id.expect("resumable");

    let mut carol =
        Client::authenticated_at(server.c2s(), server.cert_der(), "carol", "SCRAM-SHA-256").await;
    carol.open().await;
    carol
        .send(&format!("<resume xmlns='{SM}' previd='{id}' h='0'/>"))
        .await;
    let failed = carol.element().await;
    assert!(failed.is("failed", SM), "{failed:?}");
    assert!(failed
        .child("item-not-found", "urn:ietf:params:xml:ns:xmpp-stanzas")
        .is_some());
    // XEP-0198 §5: the client may bind after a failed resumption.
    carol
        .send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        .await;
    assert_eq!(carol.element().await.attr("type"), Some("result"));

    // A clean close ends the session for good.
    bob.client.send("</stream:stream>").await;
    while bob.client.frame().await.is_some() {}
    let mut again = Counted::resume(server.c2s(), server.cert_der(), "bob", &id, 0).await;
    let failed = again.element().await;
    assert!(failed.is("failed", SM), "{failed:?}");
}

#[tokio::test]
async fn xep0199_a_quiet_client_is_pinged_and_a_silent_one_closed() {
    let server = Server::start_with(|c| {
        c.stream_management.keepalive_secs = 1;
        c.timeouts.idle_secs = 3;
    })
    .await;
    let mut lively = Client::login(&server, "alice", "SCRAM-SHA-256", "a").await;
    let mut silent = Client::login(&server, "bob", "SCRAM-SHA-256", "b").await;

    for _ in 0..3 {
        let ping = lively.element().await;
        assert!(ping.child("ping", "urn:xmpp:ping").is_some(), "{ping:?}");
        assert_eq!(ping.attr("type"), Some("get"));
        let id = ping.attr("id").expect("id");
        lively
            .send(&format!("<iq type='result' id='{id}' to='localhost'/>"))
            .await;
    }
    // Three pings answered over more than the idle timeout: still served.
    lively
        .send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(lively.element().await.attr("id"), Some("p"));

    assert!(silent
        .element()
        .await
        .child("ping", "urn:xmpp:ping")
        .is_some());
    assert_eq!(
        silent.stream_error().await.as_deref(),
        Some("connection-timeout")
    );
}

/// A client that never acknowledges goes past `max_unacked` while messages keep coming:
/// its stream ends with `policy-violation`, and every message reaches it once it logs in
/// again (what it was sent and what was still queued for it, stored offline, then the
/// rest live), in the order they were sent.
#[tokio::test]
async fn xep0198_past_the_bound_nothing_is_lost_and_offline_keeps_the_order() {
    let server = Server::start_with(|c| c.stream_management.max_unacked = 16).await;
    let mut bob = Client::login(&server, "bob", "SCRAM-SHA-256", "desk").await;
    for round in 0..3 {
        let carol = Client::login(&server, "carol", "SCRAM-SHA-256", "phone").await;
        let (mut carol, _) = Counted::enable(carol, true).await;
        carol.answer_requests = false;
        const TOTAL: usize = 60;
        for n in 0..TOTAL {
            bob.send(&format!(
                "<message to='carol@localhost/phone' type='chat'><body>{round}:{n}</body></message>"
            ))
            .await;
        }
        // What reached the old stream before it ended.
        let mut seen = std::collections::BTreeSet::new();
        while let Some(frame) = carol.client.frame().await {
            if let switchyard_core::Frame::Stanza(e, _) = frame {
                if e.name() == "message" {
                    seen.insert(body(&e));
                }
            }
        }
        let mut again = Client::login(&server, "carol", "SCRAM-SHA-256", "phone").await;
        again.send("<presence/>").await;
        let mut stored = Vec::new();
        while stored.len() < TOTAL {
            // Bounded by the count; the wait only ends a run that lost something.
            let e = match tokio::time::timeout(Duration::from_secs(10), again.frame()).await {
                Ok(Some(switchyard_core::Frame::Stanza(e, _))) => e,
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => break,
            };
            // Stored offline (with a delay stamp), or live once this session is up.
            if e.name() == "message" {
                stored.push(body(&e));
                let everything = (0..TOTAL).all(|n| {
                    let b = format!("{round}:{n}");
                    seen.contains(&b) || stored.contains(&b)
                });
                if everything {
                    break;
                }
            }
        }
        let number = |b: &String| b.split(':').nth(1).and_then(|n| n.parse::<usize>().ok());
        let order: Vec<usize> = stored.iter().filter_map(number).collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "round {round}: offline out of order: {order:?}"
        );
        let missing: Vec<usize> = (0..TOTAL)
            .filter(|n| {
                let b = format!("{round}:{n}");
                !seen.contains(&b) && !stored.contains(&b)
            })
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: lost {missing:?}; seen {} on the old stream, {} stored: {order:?}",
            seen.len(),
            stored.len()
        );
        again.send("</stream:stream>").await;
        while again.frame().await.is_some() {}
    }
}

#[tokio::test]
async fn a_session_that_says_unavailable_and_closes_ends_at_once() {
    // Its unavailable presence is echoed back to it (RFC 6121 §4.5.2) while it is
    // closing: that delivery must not hold up its unbind.
    let server = Server::start().await;
    let mut alice = Client::login(&server, "alice", "PLAIN", "desk").await;
    alice
        .send("<enable xmlns='urn:xmpp:sm:3' resume='true'/><presence/>")
        .await;
    alice.until(|e| e.name() == "enabled").await;
    assert!(support::sessions_of(&server, "alice@localhost")
        .await
        .contains("desk"));
    alice
        .send("<presence type='unavailable'/></stream:stream>")
        .await;
    // Under the 5 s a delivery's patience would take, with the rest as the load's margin.
    let within = Duration::from_secs(4);
    let gone = support::session_gone_within(&server, "alice@localhost", "desk", within).await;
    assert!(
        gone,
        "the session ended with its stream, not at a delivery's patience"
    );
}
