//! Operating a server: metrics, health and readiness, the drain, the admin API (directly
//! and through the CLI), and dashboards/alerts that only query exported metrics.

mod support;

use support::{Client, Server};
use switchyard::admin_client::request;

const TOKEN: &str = "test-admin-token";

fn admin(server: &Server) -> String {
    format!("http://{}", server.running.admin.expect("admin listener"))
}

async fn get(server: &Server, path: &str) -> (u16, String) {
    request(&admin(server), "GET", path, TOKEN, None)
        .await
        .unwrap()
}

/// `switchyard health ARGS` against the server's admin listener: whether it exited 0.
async fn health(server: &Server, args: &[&str]) -> bool {
    let admin = server.running.admin.expect("admin listener").to_string();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("health")
        .args(args)
        .env("SWITCHYARD_ADMIN__LISTEN", admin)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(10), out)
        .await
        .expect("health answers in time")
        .unwrap();
    out.status.success()
}

#[tokio::test]
async fn metrics_health_and_readiness() {
    let server = Server::start().await;
    let mut alice = Client::login(&server, "alice", "SCRAM-SHA-256", "desk").await;
    let mut bob = Client::login(&server, "bob", "SCRAM-SHA-256", "phone").await;
    alice
        .send("<message to='bob@localhost/phone' type='chat'><body>hi</body></message>")
        .await;
    bob.until(|e| e.name() == "message").await;
    // A message to a domain nobody serves is bounced: counted by its condition.
    alice
        .send("<message to='romeo@elsewhere.example' type='chat' id='far'><body>x</body></message>")
        .await;
    alice.until(|e| e.attr("id") == Some("far")).await;
    let (status, text) = get(&server, "/metrics").await;
    assert_eq!(status, 200);
    for needle in [
        "switchyard_edge_logins_total{",
        "result=\"success\"",
        "switchyard_router_stanzas_routed_total{kind=\"message\"}",
        "switchyard_edge_routing_latency_seconds_count",
        "switchyard_edge_sessions",
        "switchyard_storage_call_duration_seconds_bucket{",
        "process_resident_memory_bytes",
        "switchyard_router_stanza_errors_total{condition=\"remote-server-not-found\"}",
    ] {
        assert!(text.contains(needle), "{needle} missing from /metrics");
    }
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics"))
    };
    // Both logins took their time from accept to bind.
    assert!(value("switchyard_edge_login_duration_seconds_count") >= 2.0);
    let limit = switchyard::config::Config::default().limits.max_connections;
    assert_eq!(value("switchyard_edge_connection_limit") as usize, limit);
    // The development certificate is valid for years from now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let expiry = value("switchyard_tls_certificate_expiry_timestamp_seconds{purpose=\"client\"}");
    assert!(expiry > now + 86_400.0, "{expiry} vs {now}");
    assert!(!text.contains("alice@"), "no JID in metric labels");
    assert_eq!(get(&server, "/healthz").await.0, 200);
    assert_eq!(get(&server, "/readyz").await.0, 200);
    assert!(health(&server, &[]).await, "switchyard health");
    assert!(
        health(&server, &["--ready"]).await,
        "switchyard health --ready"
    );

    // Drain, step one: unready and not accepting; established sessions keep working.
    server.running.draining.cancel();
    assert_eq!(get(&server, "/readyz").await.0, 503);
    assert!(
        !health(&server, &["--ready"]).await,
        "unready while draining"
    );
    assert!(health(&server, &[]).await, "still live while draining");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        tokio::net::TcpStream::connect(server.c2s()).await.is_err(),
        "listener closed"
    );
    alice
        .send("<message to='bob@localhost/phone' type='chat'><body>still</body></message>")
        .await;
    bob.until(|e| e.name() == "message").await;
    // Step two: sessions end with system-shutdown.
    server.running.shutdown.cancel();
    assert_eq!(
        alice.stream_error().await.as_deref(),
        Some("system-shutdown")
    );
}

#[tokio::test]
async fn admin_api_and_cli_manage_users_and_sessions() {
    // The tests' accounts all have the password "secret" (6 characters).
    let server = Server::start_with(|c| c.auth.min_password_chars = 6).await;
    let base = admin(&server);
    let (status, _) = request(&base, "GET", "/api/v1/users", "wrong", None)
        .await
        .unwrap();
    assert_eq!(status, 401);

    // Async: the CLI talks to the server that runs on this test's runtime.
    let cli = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"));
        cmd.args(["user", "--admin-url", &base, "--admin-token", TOKEN])
            .args(args);
        cmd.env("SWITCHYARD_DATA_DIR", server.dir.path());
        cmd.env("SWITCHYARD_AUTH__MIN_PASSWORD_CHARS", "6");
        async move {
            tokio::time::timeout(std::time::Duration::from_secs(30), cmd.output())
                .await
                .expect("the CLI finished in time")
                .unwrap()
        }
    };
    let added = cli(&["add", "dave", "--password", "secret"]).await;
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let listed = String::from_utf8(cli(&["list"]).await.stdout).unwrap();
    assert!(listed.lines().any(|l| l == "dave@localhost"), "{listed}");
    let dup = cli(&["add", "dave", "--password", "another"]).await;
    assert!(!dup.status.success() && String::from_utf8_lossy(&dup.stderr).contains("409"));

    let mut dave = Client::login(&server, "dave", "SCRAM-SHA-256", "laptop").await;
    let sessions = String::from_utf8(cli(&["sessions", "dave"]).await.stdout).unwrap();
    assert!(sessions.contains("dave@localhost/laptop"), "{sessions}");
    let kicked = cli(&["kick", "dave@localhost/laptop"]).await;
    assert!(
        kicked.status.success(),
        "{}",
        String::from_utf8_lossy(&kicked.stderr)
    );
    assert_eq!(
        dave.stream_error().await.as_deref(),
        Some("policy-violation")
    );

    // The daily tasks through the CLI: the cluster-wide listing, a roster edit, a ban.
    let mut dave = Client::login(&server, "dave", "SCRAM-SHA-256", "phone").await;
    let online = String::from_utf8(cli(&["online", "--domain", "localhost"]).await.stdout).unwrap();
    assert!(
        online
            .lines()
            .any(|l| l.starts_with("dave@localhost/phone ")),
        "{online}"
    );
    let added = cli(&[
        "roster-add",
        "dave",
        "alice@localhost",
        "--name",
        "Alice",
        "--group",
        "Team",
        "--subscription",
        "both",
    ])
    .await;
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let roster = String::from_utf8(cli(&["roster", "dave"]).await.stdout).unwrap();
    assert!(
        roster.contains("\"alice@localhost\"") && roster.contains("\"Team\""),
        "{roster}"
    );
    let offline = String::from_utf8(cli(&["offline", "dave"]).await.stdout).unwrap();
    assert!(offline.contains("\"messages\": 0"), "{offline}");
    let banned = cli(&["ban", "dave", "--reason", "testing"]).await;
    assert!(
        banned.status.success(),
        "{}",
        String::from_utf8_lossy(&banned.stderr)
    );
    assert_eq!(
        dave.stream_error().await.as_deref(),
        Some("policy-violation")
    );
    let shown = String::from_utf8(cli(&["show", "dave"]).await.stdout).unwrap();
    assert!(shown.contains("\"testing\""), "{shown}");
    assert!(cli(&["unban", "dave"]).await.status.success());
    let mut dave = Client::login(&server, "dave", "SCRAM-SHA-256", "phone").await;
    let changed = cli(&["passwd", "dave", "--password", "new-pw"]).await;
    assert!(changed.status.success());
    // The admin API holds passwords to auth.min_password_chars too.
    let short = serde_json::json!({"password": "12345"});
    let (status, text) = request(
        &base,
        "PUT",
        "/api/v1/users/dave@localhost/password",
        TOKEN,
        Some(&short),
    )
    .await
    .unwrap();
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("at least 6"), "{text}");
    // Deleting an account ends its sessions.
    let removed = cli(&["remove", "dave"]).await;
    assert!(removed.status.success());
    assert_eq!(
        dave.stream_error().await.as_deref(),
        Some("policy-violation")
    );
    // Only accounts of a served domain.
    let body = serde_json::json!({"jid": "mallory@evil.example", "password": "secret-pw"});
    let (status, text) = request(&base, "POST", "/api/v1/users", TOKEN, Some(&body))
        .await
        .unwrap();
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("not a domain this server serves"), "{text}");
    let (status, stats) = get(&server, "/api/v1/stats").await;
    assert_eq!(status, 200);
    assert!(stats.contains("\"version\""), "{stats}");
}

/// Every `switchyard_*` name a dashboard or alert rule uses must be exported.
#[tokio::test]
async fn dashboards_and_alerts_query_only_exported_metrics() {
    let exported = switchyard_telemetry::names();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy");
    let mut files = Vec::new();
    for dir in ["grafana", "prometheus"] {
        collect(&std::path::Path::new(root).join(dir), &mut files);
    }
    assert!(
        !files.is_empty(),
        "no dashboards or alert rules under deploy/"
    );
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for name in metric_names(&text) {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .fold(name.as_str(), |n, s| n.strip_suffix(s).unwrap_or(n));
            let known = exported.iter().any(|n| n == base);
            assert!(
                known,
                "{} queries {name}, which no binary exports",
                file.display()
            );
        }
    }
}

fn collect(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path
            .extension()
            .is_some_and(|e| e == "json" || e == "yml" || e == "yaml")
        {
            out.push(path);
        }
    }
}

fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("switchyard_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}
