//! Interop with browser-side clients we did not write: xmpp.js (`@xmpp/client`) over
//! RFC 7395 WebSocket, and strophe.js over XEP-0206 BOSH. Two clients log in, chat, read
//! their roster, ask the server's disco#info and close the stream: xmpp.js once over TLS
//! (`wss://`, the server's generated certificate trusted through `NODE_EXTRA_CA_CERTS`)
//! and once on a plain listener as behind a TLS-terminating load balancer; strophe.js
//! over `https://`. The packages live in `INTEROP_XMPPJS_DIR` (`.ci/run` runs `npm ci`
//! there); without it the test fails in CI (`CI` set) and skips with a visible message on
//! a laptop.

mod support;

use support::Server;

fn xmppjs_dir() -> Option<String> {
    match std::env::var("INTEROP_XMPPJS_DIR") {
        Ok(dir) if !dir.is_empty() => Some(dir),
        _ if std::env::var_os("CI").is_some() => {
            panic!("INTEROP_XMPPJS_DIR is not set; .ci/run installs xmpp.js there")
        }
        _ => {
            eprintln!("SKIPPED: set INTEROP_XMPPJS_DIR to the xmpp.js folder (see .ci/run)");
            None
        }
    }
}

/// Runs a chat script against `url`; returns its output, asserting it passed.
async fn chat(dir: &str, server: &Server, script: &str, url: &str) -> String {
    let mut cmd = tokio::process::Command::new("node");
    cmd.current_dir(dir)
        .arg(script)
        .args(["--url", url, "--domain", "localhost"])
        .args(["--jid1", "alice@localhost", "--pw1", "secret"])
        .args(["--jid2", "bob@localhost", "--pw2", "secret"])
        .env(
            "NODE_EXTRA_CA_CERTS",
            server.dir.path().join("dev-cert.pem"),
        );
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
        .await
        .expect("xmpp.js finished in time")
        .expect("node started");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("ALL OK"),
        "xmpp.js against {url} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

#[tokio::test]
async fn xmppjs_chats_over_wss_and_over_a_plain_listener_behind_a_balancer() {
    let Some(dir) = xmppjs_dir() else { return };
    let server = Server::start().await;
    let url = format!(
        "wss://localhost:{}/xmpp-websocket",
        server.websocket().port()
    );
    let out = chat(&dir, &server, "ws_chat.mjs", &url).await;
    assert!(out.contains("OK message alice->bob"), "{out}");
    // SASL2 with Bind 2 is offered and xmpp.js takes it, enabling stream management
    // inline.
    assert!(out.contains("INFO alice auth SASL2"), "{out}");
    assert!(out.contains("resource by bind2 (XEP-0386)"), "{out}");
    assert!(out.contains("INFO alice sm enabled"), "{out}");

    let plain = Server::start_with(|c| c.listen.websocket_tls = false).await;
    let url = format!("ws://127.0.0.1:{}/xmpp-websocket", plain.websocket().port());
    chat(&dir, &plain, "ws_chat.mjs", &url).await;
}

/// XEP-0388/0386/0484 as xmpp.js does them: a password login over SASL2 with Bind 2 that
/// leaves a FAST token, token logins (rotated at once here), and a replaced token refused
/// with the password taking over (the script's header has the steps).
#[tokio::test]
async fn xmppjs_logs_in_with_sasl2_bind2_and_fast_tokens() {
    let Some(dir) = xmppjs_dir() else { return };
    let server = Server::start_with(|c| c.auth.fast_rotate_secs = 0).await;
    let url = format!(
        "wss://localhost:{}/xmpp-websocket",
        server.websocket().port()
    );
    let out = chat(&dir, &server, "fast_login.mjs", &url).await;
    for step in [
        "OK password login with SASL2 SCRAM-SHA-1 and Bind 2",
        "OK token login with HT-SHA-256-NONE and a wrong password",
        "OK the rotated token logs in",
        "OK the replaced token is refused (not-authorized)",
    ] {
        assert!(out.contains(step), "{step}:\n{out}");
    }
}

#[tokio::test]
async fn strophejs_chats_over_bosh() {
    let Some(dir) = xmppjs_dir() else { return };
    let server = Server::start().await;
    let url = format!("https://localhost:{}/http-bind", server.websocket().port());
    let out = chat(&dir, &server, "bosh_chat.mjs", &url).await;
    assert!(out.contains("OK message alice->bob"), "{out}");
    assert!(out.contains("OK alice stopped"), "{out}");
}
