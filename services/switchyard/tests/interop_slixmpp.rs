//! Interop with slixmpp, a client we did not write: two slixmpp clients log in (STARTTLS,
//! then direct TLS) and chat through the server; then they run a subscription
//! handshake with slixmpp's own roster logic, exchange presence, and one receives a
//! message from offline storage after reconnecting. The Python interpreter comes from
//! `INTEROP_SLIXMPP_PYTHON` (a venv `.ci/run` creates); without it the test fails in CI
//! (`CI` set) and skips with a visible message on a laptop.

mod support;

use support::Server;

fn python() -> Option<String> {
    match std::env::var("INTEROP_SLIXMPP_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var_os("CI").is_some() => {
            panic!("INTEROP_SLIXMPP_PYTHON is not set; .ci/run creates the slixmpp venv")
        }
        _ => {
            eprintln!("SKIPPED: set INTEROP_SLIXMPP_PYTHON to a python with slixmpp (see .ci/run)");
            None
        }
    }
}

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/slixmpp_chat.py");

/// Runs the script against the server and returns its output (asserting success).
async fn run(python: &str, server: &Server, scenario: &str, port: u16, direct: bool) -> String {
    let ca = server.dir.path().join("dev-cert.pem");
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(SCRIPT).args(["--scenario", scenario]).args([
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
    ]);
    cmd.arg("--ca").arg(&ca);
    cmd.args(["--jid1", "alice@localhost", "--pw1", "secret"]);
    cmd.args(["--jid2", "bob@localhost", "--pw2", "secret"]);
    if direct {
        cmd.arg("--direct-tls");
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
        .await
        .expect("slixmpp finished in time")
        .expect("slixmpp started");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{scenario} direct={direct}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    println!("{stdout}");
    stdout
}

#[tokio::test]
async fn slixmpp_clients_chat_over_starttls_and_direct_tls() {
    let Some(python) = python() else { return };
    let server = Server::start().await;
    for (port, direct) in [(server.c2s().port(), false), (server.direct().port(), true)] {
        let stdout = run(&python, &server, "chat", port, direct).await;
        assert!(
            stdout.contains("SCRAM-SHA-256"),
            "slixmpp should pick SCRAM-SHA-256: {stdout}"
        );
    }
}

#[tokio::test]
async fn slixmpp_subscription_presence_and_offline_messages() {
    let Some(python) = python() else { return };
    let server = Server::start().await;
    let stdout = run(&python, &server, "im", server.c2s().port(), false).await;
    assert!(stdout.contains("subscribed to bob@localhost"), "{stdout}");
    assert!(stdout.contains("from offline storage"), "{stdout}");
}
