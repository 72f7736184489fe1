//! Interop with slixmpp, a client we did not write: two slixmpp clients log in (STARTTLS,
//! then direct TLS) and chat through the server; then they run a subscription
//! handshake with slixmpp's own roster logic, exchange presence, and one receives a
//! message from offline storage after reconnecting; and slixmpp's stream management
//! (XEP-0198) resumes after its connection breaks. The Python interpreter comes from
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
const SM_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/slixmpp_sm.py");

/// Runs the chat script's `scenario` against the server and returns its output.
async fn run(python: &str, server: &Server, scenario: &str, port: u16, direct: bool) -> String {
    let mut args = vec!["--scenario".to_owned(), scenario.to_owned()];
    if direct {
        args.push("--direct-tls".into());
    }
    run_script(python, server, SCRIPT, port, args).await
}

/// Runs `script` against the server's `port` as alice (1) and bob (2), trusting its
/// development certificate, with `args` added; returns its output (asserting success).
async fn run_script(
    python: &str,
    server: &Server,
    script: &str,
    port: u16,
    args: Vec<String>,
) -> String {
    let ca = server.dir.path().join("dev-cert.pem");
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(script)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()]);
    cmd.arg("--ca").arg(&ca);
    cmd.args(["--jid1", "alice@localhost", "--pw1", "secret"]);
    cmd.args(["--jid2", "bob@localhost", "--pw2", "secret"]);
    cmd.args(&args);
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
        .await
        .expect("slixmpp finished in time")
        .expect("slixmpp started");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} {args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
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

/// XEP-0198 with slixmpp's own stream management: its connection is reset (and, in a
/// second run, closed without `</stream:stream>`), it reconnects and resumes, and gets
/// what was sent meanwhile once each, in order, with its JID and presence kept.
#[tokio::test]
async fn slixmpp_resumes_its_stream_after_the_connection_breaks() {
    let Some(python) = python() else { return };
    let server = Server::start().await;
    for mode in ["reset", "eof"] {
        let args = vec!["--break".to_owned(), mode.to_owned()];
        let stdout = run_script(&python, &server, SM_SCRIPT, server.c2s().port(), args).await;
        assert!(
            stdout.contains("PASS: stream resumption scenario"),
            "{stdout}"
        );
        assert!(
            stdout.contains("received m4 m5 m6 once, in order"),
            "{stdout}"
        );
    }
}

const COMPONENT_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/slixmpp_component.py"
);

#[tokio::test]
async fn a_slixmpp_component_answers_users_through_the_server() {
    let Some(python) = python() else { return };
    let secret = "a-component-secret";
    let server = Server::start_with(|c| {
        c.listen.component = "127.0.0.1:0".into();
        c.components = vec![switchyard::config::ComponentEntry {
            domain: "echo.localhost".into(),
            secret: secret.into(),
        }];
    })
    .await;
    let port = server.running.component.expect("component listener").port();
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(COMPONENT_SCRIPT)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--domain",
            "echo.localhost",
            "--secret",
            secret,
            "--count",
            "2",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("python started");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    use tokio::io::AsyncBufReadExt;
    let ready = tokio::time::timeout(support::TIMEOUT, lines.read_line(&mut line)).await;
    assert!(
        matches!(ready, Ok(Ok(_))) && line.trim() == "READY",
        "the component connected: {line:?}"
    );
    let mut alice = support::Client::login(&server, "alice", "PLAIN", "desk").await;
    for n in 1..=2 {
        alice
            .send(&format!("<message to='bot{n}@echo.localhost' type='chat' id='e{n}'><body>hello {n}</body></message>"))
            .await;
        let (echo, _) = alice.until(|e| e.name() == "message").await;
        let text = echo.child("body", "jabber:client").map(|b| b.text());
        assert_eq!(text, Some(format!("echo: hello {n}")));
        assert_eq!(
            echo.attr("from"),
            Some(format!("bot{n}@echo.localhost").as_str())
        );
    }
    alice
        .send("<iq to='echo.localhost' type='get' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await;
    let (info, _) = alice.until(|e| e.attr("id") == Some("d1")).await;
    assert_eq!(info.attr("type"), Some("result"), "{info:?}");
    let status = tokio::time::timeout(support::TIMEOUT * 3, child.wait()).await;
    assert!(
        matches!(status, Ok(Ok(s)) if s.success()),
        "the component finished: {status:?}"
    );
}
