//! Interop with tokio-xmpp, a client we did not write: it logs in over STARTTLS and over
//! direct TLS (XEP-0368) with SCRAM-SHA-256-PLUS (tls-exporter channel binding) and two
//! clients exchange chat messages. A tap on the client's writes proves the mechanism and
//! the GS2 channel-binding header it really used. Its XEP-0198 stream management resumes
//! after a broken connection (across edges: `tests/cluster/sm.rs`).

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::relay::Relay;
use support::tokio_xmpp::{resumes_after_a_cut, wait_chat, wait_online, TestConnector};
use tokio_xmpp::parsers::jid::Jid;
use tokio_xmpp::parsers::message::{Lang, Message};
use tokio_xmpp::xmlstream::Timeouts;
use tokio_xmpp::Client;

/// The client's <auth/> must name SCRAM-SHA-256-PLUS and its client-first-message
/// must start with the GS2 header "p=tls-exporter,,".
fn assert_scram_plus(sent: &Mutex<Vec<u8>>) {
    let xml = String::from_utf8_lossy(&sent.lock().unwrap()).into_owned();
    assert!(
        xml.contains("SCRAM-SHA-256-PLUS"),
        "client did not use SCRAM-SHA-256-PLUS:\n{xml}"
    );
    // base64("p=tls-exporter,,n=") — 18 bytes, so a stable 24-char prefix
    assert!(
        xml.contains("cD10bHMtZXhwb3J0ZXIsLG49"),
        "GS2 header not tls-exporter:\n{xml}"
    );
}

async fn chat_roundtrip(addr: SocketAddr, direct_tls: bool, cert: Vec<u8>) {
    let tls = support::tls_config(cert);
    let (sent_a, sent_b) = (
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(Mutex::new(Vec::new())),
    );
    let connector = |sent: &Arc<Mutex<Vec<u8>>>| TestConnector {
        addr,
        direct_tls,
        tls: tls.clone(),
        sent: sent.clone(),
    };
    // Tests run in parallel with the same accounts: keep resources and bodies distinct.
    let mode = if direct_tls { "direct" } else { "starttls" };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let token = format!("{mode}-{nanos}");
    let mut a = Client::new_with_connector(
        Jid::new(&format!("alice@localhost/tx-{mode}")).unwrap(),
        "secret",
        connector(&sent_a),
        Timeouts::tight(),
    );
    let mut b = Client::new_with_connector(
        Jid::new(&format!("bob@localhost/tx-{mode}")).unwrap(),
        "secret",
        connector(&sent_b),
        Timeouts::tight(),
    );

    // tokio-xmpp retries failed connects/auth forever (1 s, 2 s, … 30 s) and emits no
    // event for them, so a deadline is the only way a failure surfaces.
    tokio::time::timeout(Duration::from_secs(20), async {
        let a_jid = wait_online(&mut a).await;
        let b_jid = wait_online(&mut b).await;

        let ping = format!("ping {token}");
        let msg =
            Message::chat(Some(Jid::from(b_jid.clone()))).with_body(Lang::default(), ping.clone());
        a.send_stanza(msg.into()).await.unwrap();
        let got = wait_chat(&mut b, &ping).await;
        assert_eq!(got.from, Some(Jid::from(a_jid.clone())));

        let pong = format!("pong {token}");
        let reply = Message::chat(got.from.clone()).with_body(Lang::default(), pong.clone());
        b.send_stanza(reply.into()).await.unwrap();
        let got = wait_chat(&mut a, &pong).await;
        assert_eq!(got.from, Some(Jid::from(b_jid)));
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "timed out; client a sent:\n{}",
            String::from_utf8_lossy(&sent_a.lock().unwrap())
        )
    });

    assert_scram_plus(&sent_a);
    assert_scram_plus(&sent_b);
    a.send_end().await.unwrap();
    b.send_end().await.unwrap();
}

#[tokio::test]
async fn tokio_xmpp_chat_starttls() {
    let server = support::Server::start().await;
    chat_roundtrip(server.c2s(), false, server.cert_der()).await;
}

#[tokio::test]
async fn tokio_xmpp_chat_direct_tls() {
    let server = support::Server::start().await;
    chat_roundtrip(server.direct(), true, server.cert_der()).await;
}

/// XEP-0198 with tokio-xmpp's own stream management: its connection is cut and it
/// resumes on the same server (see [`resumes_after_a_cut`]); the server counted it.
#[tokio::test]
async fn tokio_xmpp_resumes_its_session_after_the_connection_breaks() {
    let server = support::Server::start().await;
    let relay = Relay::start(server.c2s()).await;
    let mut bob = support::Client::login(&server, "bob", "PLAIN", "tx-sm").await;
    let resumed = || {
        switchyard_telemetry::EDGE_SM_RESUMPTIONS
            .with_label_values(&["resumed"])
            .get()
    };
    let before = resumed();
    let tls = support::tls_config(server.cert_der());
    resumes_after_a_cut(&relay, tls, &mut bob, "bob@localhost/tx-sm", server.c2s()).await;
    assert!(resumed() > before, "the server counted a resumption");
}
