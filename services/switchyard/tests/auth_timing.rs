//! A measurement, not a check (ignored by default): how long a wrong PLAIN password, and
//! a SCRAM-SHA-256 client-first message, take to be answered over a real socket for an
//! existing and for an unknown account: medians of many interleaved runs on one
//! connection, with the login throttle out of the way.
//!
//! `cargo test -p switchyard --release --test auth_timing -- --ignored --nocapture`

mod support;

use base64::Engine;
use std::time::{Duration, Instant};
use support::{Client, Server};

const RUNS: usize = 401;

#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn plain_failure_latency_known_vs_unknown() {
    let server = Server::start_with(|c| {
        c.auth.max_attempts_per_connection = 100_000;
        c.auth.max_failures = 1_000_000;
        c.auth.max_failures_per_network = 1_000_000;
        c.auth.failure_delay_initial_ms = 0;
        c.auth.failure_delay_max_ms = 0;
    })
    .await;
    let mut c = Client::connect(server.c2s()).await;
    c.open().await;
    c.starttls(server.cert_der()).await;
    c.open().await;
    let median = |runs: &mut Vec<Duration>| {
        runs.sort();
        runs[runs.len() / 2]
    };
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..RUNS * 2 {
        let (user, into): (&str, &mut Vec<Duration>) = match i % 2 {
            0 => ("alice", &mut known),
            _ => ("nobody", &mut unknown),
        };
        let started = Instant::now();
        let reply = c.auth("PLAIN", user, "wrong").await;
        into.push(started.elapsed());
        assert_eq!(reply.name(), "failure");
    }
    eprintln!(
        "PLAIN wrong password over TLS, median of {RUNS}: existing account {:?}, unknown account {:?}",
        median(&mut known),
        median(&mut unknown)
    );

    // SCRAM: the client-first message until the challenge (salt and count), then abort.
    let b64 = base64::engine::general_purpose::STANDARD;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..RUNS * 2 {
        let (user, into): (&str, &mut Vec<Duration>) = match i % 2 {
            0 => ("alice", &mut known),
            _ => ("nobody", &mut unknown),
        };
        let first = b64.encode(format!("n,,n={user},r=timing{i}"));
        let started = Instant::now();
        c.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>{first}</auth>"
        ))
        .await;
        let challenge = c.element().await;
        into.push(started.elapsed());
        assert_eq!(challenge.name(), "challenge");
        c.send("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
            .await;
        assert_eq!(c.element().await.name(), "failure");
    }
    eprintln!(
        "SCRAM-SHA-256 client-first to challenge, median of {RUNS}: existing account {:?}, unknown account {:?}",
        median(&mut known),
        median(&mut unknown)
    );
}
