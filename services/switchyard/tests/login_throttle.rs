//! The login throttle and the SASL decoy over real sockets: wrong passwords slow their
//! sender down without locking the account's owner out, refusals hit only the key that
//! failed, and an account that does not exist shows the same salt from every server that
//! shares the decoy secret, restarts included.

mod support;

use base64::Engine;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use support::{Client, Server};
use switchyard_core::xml::{Framer, Limits};
use tokio::net::TcpSocket;

/// A client whose connection comes from `source` (any 127.0.0.0/8 address is loopback on
/// Linux), so one test can play several client networks.
async fn connect_from(server: &Server, source: &str) -> Client {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(source.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    let tcp = socket.connect(server.c2s()).await.expect("connect");
    let mut c = Client {
        io: Box::new(tcp),
        framer: Framer::new(Limits::default()),
        exporter: None,
        jid: None,
        domain: "localhost".into(),
    };
    c.open().await;
    c.starttls(server.cert_der()).await;
    c.open().await;
    c
}

/// The condition of a SASL `<failure/>`, or `success`.
fn outcome(reply: &switchyard_core::xml::Element) -> String {
    match reply.name() {
        "failure" => reply.children().next().unwrap().name().to_owned(),
        other => other.to_owned(),
    }
}

/// Ten wrong passwords for alice from one address (over several connections, three
/// attempts each): before, the tenth locked alice out everywhere; now her right password
/// from another address logs her in at once, and the guesser's next attempt is answered
/// only after the delay its failures earned, with `not-authorized`, not refused.
#[tokio::test]
async fn wrong_passwords_slow_the_guesser_and_never_lock_the_owner_out() {
    let server = Server::start_with(|c| {
        c.auth.failure_delay_initial_ms = 20;
        // Far above a SCRAM login on a loaded machine, so "not slowed" is not a race.
        c.auth.failure_delay_max_ms = 1000;
    })
    .await;
    let mut guesser = connect_from(&server, "127.0.0.1").await;
    let mut last_failure = Instant::now();
    for n in 0..10 {
        if n > 0 && n % 3 == 0 {
            guesser = connect_from(&server, "127.0.0.1").await;
        }
        let reply = guesser.auth("PLAIN", "alice", "wrong").await;
        last_failure = Instant::now();
        assert_eq!(outcome(&reply), "not-authorized", "failure {n}");
    }

    let mut owner = connect_from(&server, "127.0.0.2").await;
    let started = Instant::now();
    let reply = owner.auth("SCRAM-SHA-256", "alice", "secret").await;
    assert_eq!(outcome(&reply), "success");
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "the owner elsewhere is not slowed: {:?}",
        started.elapsed()
    );

    // After ten failures the guesser owes 1 s (20 ms doubled, capped), counted from
    // the last failure.
    let mut guesser = connect_from(&server, "127.0.0.1").await;
    let reply = guesser.auth("PLAIN", "alice", "wrong").await;
    assert_eq!(outcome(&reply), "not-authorized", "slowed, not refused");
    // (Less a little: the server counted the failure just before the client saw it.)
    assert!(
        last_failure.elapsed() >= Duration::from_millis(990),
        "answered {:?} after the tenth failure",
        last_failure.elapsed()
    );
}

/// Past `max_failures` the (account, address) key is refused, even with the right
/// password, and nothing else is: not the account from another address, not another
/// account from that address.
#[tokio::test]
async fn refusal_is_only_for_the_account_from_that_address() {
    let server = Server::start_with(|c| {
        c.auth.max_failures = 3;
        c.auth.failure_delay_initial_ms = 0;
        c.auth.failure_delay_max_ms = 0;
    })
    .await;
    let mut guesser = connect_from(&server, "127.0.0.1").await;
    for _ in 0..3 {
        let reply = guesser.auth("PLAIN", "alice", "wrong").await;
        assert_eq!(outcome(&reply), "not-authorized");
    }
    let mut again = connect_from(&server, "127.0.0.1").await;
    let reply = again.auth("PLAIN", "alice", "secret").await;
    assert_eq!(outcome(&reply), "temporary-auth-failure");
    // Refused attempts are not counted: these do not extend anything.
    for _ in 0..2 {
        let reply = again.auth("PLAIN", "alice", "wrong").await;
        assert_eq!(outcome(&reply), "temporary-auth-failure");
    }

    let mut owner = connect_from(&server, "127.0.0.2").await;
    assert_eq!(
        outcome(&owner.auth("PLAIN", "alice", "secret").await),
        "success"
    );
    let mut neighbour = connect_from(&server, "127.0.0.1").await;
    assert_eq!(
        outcome(&neighbour.auth("PLAIN", "bob", "secret").await),
        "success"
    );
}

/// The salt and iteration count a server presents for `user` in SCRAM-SHA-256.
async fn salt_of(server: &Server, user: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut c = connect_from(server, "127.0.0.1").await;
    let first = b64.encode(format!("n,,n={user},r=probe"));
    c.send(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>{first}</auth>"
    ))
    .await;
    let challenge = c.element().await;
    assert_eq!(challenge.name(), "challenge");
    let server_first = String::from_utf8(b64.decode(challenge.text()).unwrap()).unwrap();
    server_first.split_once(",s=").unwrap().1.to_owned()
}

/// An unknown account's salt is the same through every server sharing the decoy secret
/// and across a restart (the generated secret is kept in the data directory, owner-only);
/// before, it was random per process, so asking twice told unknown accounts apart.
#[tokio::test]
async fn an_unknown_accounts_salt_is_the_same_everywhere_and_after_a_restart() {
    use std::os::unix::fs::PermissionsExt;
    let shared = "a decoy secret shared by every edge of this test";
    let edge_a = Server::start_with(|c| c.auth.decoy_secret = shared.into()).await;
    let edge_b = Server::start_with(|c| c.auth.decoy_secret = shared.into()).await;
    let ghost = salt_of(&edge_a, "ghost").await;
    assert_eq!(ghost, salt_of(&edge_b, "ghost").await);
    assert_ne!(ghost, salt_of(&edge_a, "phantom").await);
    assert!(ghost.ends_with(",i=4096"), "{ghost}");
    // A real account's salt is its own, not the decoy's.
    assert_ne!(
        salt_of(&edge_a, "alice").await,
        salt_of(&edge_b, "alice").await
    );

    // No secret configured: one is made and kept in data_dir, owner-only, and a process
    // started later on that data_dir (a restart) presents the same salts.
    let first = Server::start().await;
    let generated = salt_of(&first, "ghost").await;
    assert_ne!(generated, ghost, "another secret, other salts");
    let kept = first.dir.path().join("decoy-secret");
    let mode = std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let secret = std::fs::read(&kept).unwrap();
    let restarted = Server::start_with(|c| {
        std::fs::create_dir_all(&c.data_dir).unwrap();
        std::fs::copy(&kept, c.data_dir.join("decoy-secret")).unwrap();
    })
    .await;
    assert_eq!(salt_of(&restarted, "ghost").await, generated);
    assert_eq!(
        std::fs::read(&kept).unwrap(),
        secret,
        "made once, never rewritten"
    );
}
