//! End-to-end tests over real sockets on 127.0.0.1: login paths, chat, server IQs,
//! RFC 6120 error cases (each followed by proof that others still log in and chat).

mod support;

use support::{assert_still_chatting, Client, Server, OPEN};

#[tokio::test]
async fn starttls_scram_plus_chat_and_server_iqs() {
    let server = Server::start().await;
    let mut alice = Client::login(&server, "alice", "SCRAM-SHA-256-PLUS", "desk").await;
    let mut bob = Client::login(&server, "bob", "SCRAM-SHA-1-PLUS", "phone").await;
    assert_eq!(alice.jid.as_deref(), Some("alice@localhost/desk"));

    // RFC 6120 §8.1.2.1: a forged-looking but own bare `from` is replaced by the full JID.
    alice.send("<message to='bob@localhost/phone' type='chat' from='alice@localhost'><body>hi &amp; bye</body></message>").await;
    let got = bob.element().await;
    assert_eq!(got.attr("from"), Some("alice@localhost/desk"));
    assert_eq!(
        got.child("body", "jabber:client").unwrap().text(),
        "hi & bye"
    );

    bob.send("<message to='alice@localhost/desk' type='chat'><body>back</body></message>")
        .await;
    assert_eq!(
        alice
            .element()
            .await
            .child("body", "jabber:client")
            .unwrap()
            .text(),
        "back"
    );

    alice
        .send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let pong = alice.element().await;
    assert_eq!(
        (pong.attr("type"), pong.attr("id")),
        (Some("result"), Some("p1"))
    );

    alice.send("<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>").await;
    let info = alice.element().await;
    let features: Vec<_> = info
        .children()
        .next()
        .unwrap()
        .children()
        .filter_map(|f| f.attr("var").map(str::to_owned))
        .collect();
    assert!(
        features.contains(&"urn:xmpp:ping".to_owned()),
        "{features:?}"
    );

    alice
        .send("<iq type='get' id='v1' to='localhost'><query xmlns='jabber:iq:version'/></iq>")
        .await;
    let version = alice.element().await;
    assert_eq!(
        version
            .children()
            .next()
            .unwrap()
            .child("name", "jabber:iq:version")
            .unwrap()
            .text(),
        "Switchyard"
    );

    alice
        .send("<iq type='get' id='u1' to='localhost'><query xmlns='urn:example:unknown'/></iq>")
        .await;
    let err = alice.element().await;
    assert_eq!(err.attr("type"), Some("error"));
    assert!(err
        .child("error", "jabber:client")
        .unwrap()
        .child("service-unavailable", "urn:ietf:params:xml:ns:xmpp-stanzas")
        .is_some());

    // A message to an account that does not exist is ignored (RFC 6121 §8.5.1 allows
    // it; an error would tell a prober which accounts exist): the next thing alice gets
    // is the answer to her next request.
    alice
        .send("<message to='nobody@localhost/x' type='chat' id='m9'><body>?</body></message>")
        .await;
    alice
        .send("<iq type='get' id='p9' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let next = alice.element().await;
    assert_eq!(
        (next.attr("type"), next.attr("id")),
        (Some("result"), Some("p9"))
    );

    // Clean close in both directions (RFC 6120 §4.4).
    alice.send("</stream:stream>").await;
    assert_eq!(alice.stream_error().await, None);
}

#[tokio::test]
async fn direct_tls_with_sha1_and_plain() {
    let server = Server::start().await;
    let mut a = Client::login_direct(&server, "alice", "SCRAM-SHA-1", "t1").await;
    let mut b = Client::login_direct(&server, "bob", "PLAIN", "t2").await;
    a.send("<message to='bob@localhost/t2'><body>direct</body></message>")
        .await;
    assert_eq!(b.element().await.attr("from"), Some("alice@localhost/t1"));
}

#[tokio::test]
async fn rfc6120_6_wrong_password_is_not_authorized() {
    let server = Server::start().await;
    let mut c = Client::connect(server.c2s()).await;
    c.open().await;
    c.starttls(server.cert_der()).await;
    c.open().await;
    for mechanism in ["SCRAM-SHA-256", "PLAIN"] {
        let failure = c.auth(mechanism, "alice", "wrong").await;
        assert_eq!(failure.name(), "failure");
        assert_eq!(failure.children().next().unwrap().name(), "not-authorized");
    }
    let failure = c.auth("SCRAM-SHA-256", "nobody", "secret").await;
    assert_eq!(failure.children().next().unwrap().name(), "not-authorized");
    assert_eq!(
        c.stream_error().await.as_deref(),
        Some("policy-violation"),
        "third failure ends the stream"
    );
}

/// Every mechanism logs in with the right password only: the edge gets the salts, the
/// proof is checked where the keys are, for an unknown account too.
#[tokio::test]
async fn rfc6120_6_every_mechanism_needs_the_right_password() {
    let server = Server::start_with(|c| c.auth.failure_delay_initial_ms = 0).await;
    let mechanisms = [
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-256",
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-1",
        "PLAIN",
    ];
    for mechanism in mechanisms {
        let mut c = Client::connect(server.c2s()).await;
        c.open().await;
        c.starttls(server.cert_der()).await;
        c.open().await;
        for (user, password) in [("alice", "wrong"), ("nobody", "secret")] {
            let failure = c.auth(mechanism, user, password).await;
            assert_eq!(failure.name(), "failure", "{mechanism} {user}");
            let condition = failure.children().next().unwrap().name().to_owned();
            assert_eq!(condition, "not-authorized", "{mechanism} {user}");
        }
        let success = c.auth(mechanism, "alice", "secret").await;
        assert_eq!(success.name(), "success", "{mechanism}");
        c.bind(&format!("r-{mechanism}")).await;
    }
}

#[tokio::test]
async fn rfc6120_5_3_1_no_auth_before_tls() {
    let server = Server::start().await;
    let mut c = Client::connect(server.c2s()).await;
    let features = c.open().await;
    assert!(features
        .child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")
        .is_none());
    let failure = c.auth("PLAIN", "alice", "secret").await;
    assert_eq!(
        failure.children().next().unwrap().name(),
        "encryption-required"
    );
}

#[tokio::test]
async fn rfc6120_7_7_2_2_new_session_wins_the_resource() {
    let server = Server::start().await;
    let mut old = Client::login(&server, "alice", "SCRAM-SHA-256", "same").await;
    let mut new = Client::login(&server, "alice", "SCRAM-SHA-256", "same").await;
    assert_eq!(old.stream_error().await.as_deref(), Some("conflict"));
    let mut bob = Client::login(&server, "bob", "SCRAM-SHA-256", "b").await;
    bob.send("<message to='alice@localhost/same'><body>to the new one</body></message>")
        .await;
    assert_eq!(
        new.element()
            .await
            .child("body", "jabber:client")
            .unwrap()
            .text(),
        "to the new one"
    );
}

/// Each bad input, sent after login, ends that stream with its RFC 6120 condition.
#[tokio::test]
async fn rfc6120_bad_input_gets_the_specified_stream_error() {
    let server = Server::start().await;
    let big = format!(
        "<message to='bob@localhost'><body>{}</body></message>",
        "x".repeat(300 * 1024)
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("restricted-xml", b"<!DOCTYPE x [<!ENTITY a 'b'>]>".to_vec()),
        ("restricted-xml", b"<!-- comment -->".to_vec()),
        ("restricted-xml", b"<?php echo 1; ?>".to_vec()),
        (
            "restricted-xml",
            b"<message><body>&xxe;</body></message>".to_vec(),
        ),
        ("policy-violation", big.into_bytes()),
        (
            "not-well-formed",
            b"<message><body></message></body>".to_vec(),
        ),
        (
            "unsupported-encoding",
            b"<message><body>\xc3\x28</body></message>".to_vec(),
        ),
        (
            "unsupported-stanza-type",
            b"<message xmlns='urn:wrong'/>".to_vec(),
        ),
        ("unsupported-stanza-type", b"<foo/>".to_vec()),
        (
            "unsupported-stanza-type",
            OPEN.split_once("?>").unwrap().1.as_bytes().to_vec(),
        ),
        (
            "invalid-from",
            b"<message from='bob@localhost/x' to='bob@localhost'/>".to_vec(),
        ),
        ("bad-format", b"stray text".to_vec()),
    ];
    for (condition, input) in cases {
        let mut c = Client::login(&server, "alice", "SCRAM-SHA-256", "victim").await;
        c.send_bytes(&input).await;
        assert_eq!(
            c.stream_error().await.as_deref(),
            Some(condition),
            "input {:?}",
            String::from_utf8_lossy(&input[..input.len().min(60)])
        );
    }
    // Header-level errors, before any login.
    for (condition, header) in [
        ("invalid-namespace", "<stream:stream to='localhost' version='1.0' xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>"),
        ("host-unknown", "<stream:stream to='example.net' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"),
        ("unsupported-version", "<stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"),
    ] {
        let mut c = Client::connect(server.c2s()).await;
        c.send(header).await;
        assert_eq!(c.stream_error().await.as_deref(), Some(condition));
    }
    assert_still_chatting(&server).await;
}

#[tokio::test]
async fn rfc6120_4_6_whitespace_keepalive_is_accepted() {
    let server = Server::start().await;
    let mut a = Client::login(&server, "alice", "SCRAM-SHA-256", "ws").await;
    a.send(" \n ").await;
    a.send("<iq type='get' id='k' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(a.element().await.attr("id"), Some("k"));
}

#[tokio::test]
async fn shutdown_closes_sessions_with_system_shutdown() {
    let server = Server::start().await;
    let mut a = Client::login(&server, "alice", "SCRAM-SHA-256", "s").await;
    server.running.shutdown.cancel();
    assert_eq!(a.stream_error().await.as_deref(), Some("system-shutdown"));
}

#[tokio::test]
async fn rfc7590_certificate_reloads_without_restart() {
    let server = Server::start().await;
    let before = server.cert_der();
    let new = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(server.dir.path().join("dev-cert.pem"), new.cert.pem()).unwrap();
    std::fs::write(
        server.dir.path().join("dev-key.pem"),
        new.key_pair.serialize_pem(),
    )
    .unwrap();
    assert!(
        server.running.tls.as_ref().unwrap().reload(true),
        "reload picks up the new pair"
    );
    let after = server.cert_der();
    assert_ne!(before, after);
    // A new connection is served the new certificate (the client pins exactly it).
    let mut c = Client::login(&server, "alice", "SCRAM-SHA-256-PLUS", "fresh").await;
    c.send("<iq type='get' id='r' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(c.element().await.attr("id"), Some("r"));
    // A broken file keeps the running certificate.
    std::fs::write(server.dir.path().join("dev-cert.pem"), "not a certificate").unwrap();
    assert!(!server.running.tls.as_ref().unwrap().reload(true));
    std::fs::write(server.dir.path().join("dev-cert.pem"), new.cert.pem()).unwrap();
    assert_still_chatting(&server).await;
}

#[tokio::test]
async fn handshake_and_idle_timeouts_end_the_stream() {
    let server = Server::start_with(|c| {
        // Long enough for the idle client's whole login (TLS, SCRAM, bind) on a loaded
        // machine: the handshake deadline covers it too.
        c.timeouts.handshake_secs = 3;
        c.timeouts.idle_secs = 2;
    })
    .await;
    // Connected but never authenticated: the handshake timer fires.
    let mut lurker = Client::connect(server.c2s()).await;
    lurker.open().await;
    assert_eq!(
        lurker.stream_error().await.as_deref(),
        Some("connection-timeout")
    );
    // Bound but silent: the idle timer fires.
    let mut idle = Client::login(&server, "alice", "SCRAM-SHA-256", "idle").await;
    assert_eq!(
        idle.stream_error().await.as_deref(),
        Some("connection-timeout")
    );
}

#[tokio::test]
async fn connections_per_ip_are_capped() {
    let server = Server::start_with(|c| c.limits.max_connections_per_ip = 2).await;
    let mut first = Client::connect(server.c2s()).await;
    let _second = Client::connect(server.c2s()).await;
    first.open().await;
    let mut third = Client::connect(server.c2s()).await;
    third.send(OPEN).await;
    assert!(
        third.frame().await.is_none(),
        "the third connection is closed at once"
    );
    drop(first);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut again = Client::connect(server.c2s()).await;
    again.open().await;
}

/// A client that trickles its stream header a byte a second (slowloris) is closed ten
/// seconds after the header began (`timeouts.handshake_frame_secs`), not after the whole
/// 30 s handshake timeout.
#[tokio::test]
async fn a_handshake_frame_trickled_in_is_dropped_within_ten_seconds() {
    use std::time::{Duration, Instant};
    let server = Server::start().await;
    let (mut reader, mut writer) = Client::connect(server.c2s()).await.split();
    let started = Instant::now();
    let trickle = async {
        for byte in OPEN.bytes() {
            writer.send_bytes(&[byte]).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    let mut seen = Vec::new();
    let closed = tokio::io::AsyncReadExt::read_to_end(&mut reader.io, &mut seen);
    tokio::select! {
        _ = closed => {}
        () = trickle => panic!("the whole header went through at a byte a second"),
        () = tokio::time::sleep(Duration::from_secs(25)) => panic!("never closed"),
    }
    let after = started.elapsed();
    assert!(
        (Duration::from_secs(9)..Duration::from_secs(16)).contains(&after),
        "closed after {after:?}"
    );
}

/// Listeners take IPv6: a client logs in and chats over `::1`, beside one on IPv4.
#[tokio::test]
async fn clients_log_in_over_ipv6() {
    let server = Server::start_with(|c| {
        c.listen.c2s = "[::1]:0".into();
        c.listen.c2s_direct_tls = "[::1]:0".into();
        c.listen.websocket = "[::1]:0".into();
    })
    .await;
    assert!(server.c2s().is_ipv6(), "{}", server.c2s());
    let mut alice = Client::login(&server, "alice", "SCRAM-SHA-256-PLUS", "v6").await;
    let mut bob = Client::login_direct(&server, "bob", "SCRAM-SHA-256", "v6").await;
    alice
        .send("<message to='bob@localhost/v6' type='chat'><body>over v6</body></message>")
        .await;
    let got = bob.element().await;
    assert_eq!(got.attr("from"), Some("alice@localhost/v6"));
}

/// A PLAIN password is hashed (PBKDF2) off the async worker: with one worker thread and a
/// hash that takes a second or more, another client's ping is answered while
/// the hash runs, not after it. Without that, one login at a time can stall every
/// connection of a worker for as long as its hash takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_plain_password_is_hashed_without_stalling_other_connections() {
    use std::time::{Duration, Instant};
    let server = Server::start().await;
    // Many iterations: a hash long enough to tell "during" from "after" with a wide margin.
    let jid = switchyard_core::Jid::parse("slow@localhost").unwrap();
    let creds = tokio::task::spawn_blocking(|| {
        switchyard_core::sasl::StoredCredentials::from_password("secret", 600_000).unwrap()
    })
    .await
    .unwrap();
    let accounts = server.running.accounts.as_ref().unwrap();
    accounts.create(&jid, &creds).await.unwrap();
    let mut other = Client::login(&server, "bob", "SCRAM-SHA-256", "desk").await;

    let mut slow = Client::connect(server.c2s()).await;
    slow.open().await;
    slow.starttls(server.cert_der()).await;
    slow.open().await;
    let finished = tokio::spawn(async move {
        let login = Instant::now();
        let reply = slow.auth("PLAIN", "slow", "secret").await;
        (reply.name().to_owned(), login.elapsed())
    });
    // Pings one after another while the login lasts: the slowest answer is the longest
    // the other connection's worker was held.
    let mut slowest = Duration::ZERO;
    for n in 0..200 {
        if finished.is_finished() {
            break;
        }
        let asked = Instant::now();
        let id = format!("p{n}");
        other
            .send(&format!(
                "<iq type='get' id='{id}'><ping xmlns='urn:xmpp:ping'/></iq>"
            ))
            .await;
        other.until(|e| e.attr("id") == Some(id.as_str())).await;
        slowest = slowest.max(asked.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (outcome, hashed) = finished.await.unwrap();
    assert_eq!(outcome, "success");
    assert!(
        slowest * 2 < hashed,
        "a ping took {slowest:?}, the PLAIN login {hashed:?}: answered only after the hash"
    );
}
