//! PostgreSQL becomes unreachable under a running all-in-one server (DESIGN: failure
//! semantics): logins fail with `temporary-auth-failure`, established sessions keep
//! chatting, and a message that cannot be stored offline bounces an error to its sender.
//! The database is reached through a relay in this test, which the test cuts.

mod support;

use std::sync::Arc;
use support::relay::Relay;
use support::{Client, Server};

const PG: &str = "127.0.0.1:5432";

#[tokio::test]
async fn logins_fail_temporarily_chat_continues_offline_bounces() {
    let url = format!("postgres://postgres@{PG}/test");
    let (admin, connection) = match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        Ok(c) => c,
        Err(e) if std::env::var_os("CI").is_some() => panic!("PostgreSQL is required in CI: {e}"),
        Err(e) => return eprintln!("SKIPPED: no PostgreSQL at {PG}: {e}"),
    };
    tokio::spawn(connection);
    let schema = format!(
        "sy_pgdown_{}_{}",
        std::process::id(),
        switchyard_core::token::token(6).to_lowercase()
    );
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let relay = Relay::start(PG.parse().unwrap()).await;
    let via = relay.addr;
    let schema_name = schema.clone();
    let server = Server::start_with(move |c| {
        c.postgres.url = format!("postgres://postgres@{via}/test");
        c.postgres.schema = schema_name;
        c.postgres.migrate_on_start = true;
    })
    .await;
    let server = Arc::new(server);
    let mut alice = Client::login(&server, "alice", "SCRAM-SHA-256", "desk").await;
    let mut bob = Client::login(&server, "bob", "SCRAM-SHA-256", "phone").await;

    // PostgreSQL becomes unreachable: every connection to it drops, new ones close at once.
    relay.cut(None);
    // Established sessions keep chatting.
    alice
        .send("<message to='bob@localhost/phone' type='chat'><body>still here</body></message>")
        .await;
    let (m, _) = bob.until(|e| e.name() == "message").await;
    assert_eq!(m.attr("from"), Some("alice@localhost/desk"));
    // A message for an offline account cannot be stored: the sender hears about it.
    alice
        .send("<message to='carol@localhost' type='chat' id='o1'><body>later</body></message>")
        .await;
    let (bounce, _) = alice.until(|e| e.attr("id") == Some("o1")).await;
    assert_eq!(bounce.attr("type"), Some("error"), "{bounce:?}");
    // New logins fail with temporary-auth-failure (RFC 6120 §6.5.12).
    let mut carol = Client::connect(server.c2s()).await;
    carol.open().await;
    carol.starttls(server.cert_der()).await;
    carol.open().await;
    let failure = carol.auth("SCRAM-SHA-256", "carol", "secret").await;
    assert_eq!(failure.name(), "failure");
    assert!(
        failure
            .child("temporary-auth-failure", "urn:ietf:params:xml:ns:xmpp-sasl")
            .is_some(),
        "{failure:?}"
    );
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}
