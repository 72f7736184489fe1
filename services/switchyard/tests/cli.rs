//! The `switchyard` binary's account and configuration commands, run as a user would.

use std::process::{Command, Output, Stdio};

fn switchyard(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .env("SWITCHYARD_DATA_DIR", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn user_add_list_passwd_remove() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(
        switchyard(d, &["user", "add", "alice"], Some("from stdin\n"))
            .status
            .success()
    );
    assert!(switchyard(
        d,
        &["user", "add", "bob@localhost", "--password", "pw"],
        None
    )
    .status
    .success());
    let dup = switchyard(d, &["user", "add", "alice", "--password", "x"], None);
    assert!(
        !dup.status.success() && text(&dup).contains("already exists"),
        "{}",
        text(&dup)
    );
    let list = switchyard(d, &["user", "list"], None);
    assert_eq!(
        String::from_utf8_lossy(&list.stdout),
        "alice@localhost\nbob@localhost\n"
    );
    assert!(
        switchyard(d, &["user", "passwd", "alice", "--password", "new"], None)
            .status
            .success()
    );
    assert!(switchyard(d, &["user", "remove", "alice"], None)
        .status
        .success());
    let again = switchyard(d, &["user", "remove", "alice"], None);
    assert!(!again.status.success() && text(&again).contains("no such account"));
    let bad = switchyard(
        d,
        &["user", "add", "eve@other.example", "--password", "x"],
        None,
    );
    assert!(
        !bad.status.success() && text(&bad).contains("not a served domain"),
        "{}",
        text(&bad)
    );
    let empty = switchyard(d, &["user", "add", "carol", "--password", ""], None);
    assert!(!empty.status.success(), "empty passwords are refused");
    // The database never holds the password.
    let db = std::fs::read(d.join("switchyard.db")).unwrap();
    assert!(!db.windows(b"from stdin".len()).any(|w| w == b"from stdin"));
}

#[test]
fn check_config_reports_bad_values_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let ok = switchyard(dir.path(), &["check-config"], None);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("max_stanza_bytes = 262144"));
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[limits]\nmax_stanza_bytes = 'big'\n").unwrap();
    let bad = switchyard(
        dir.path(),
        &["--config", file.to_str().unwrap(), "check-config"],
        None,
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("max_stanza_bytes"), "{}", text(&bad));
    let roles = switchyard(dir.path(), &["serve", "--roles", "gateway"], None);
    assert!(
        !roles.status.success() && text(&roles).contains("unknown role"),
        "{}",
        text(&roles)
    );
}

/// Runs the binary with `envs` set, under umask 022 (the usual default), so that files
/// are only private if the binary makes them so.
fn switchyard_env(dir: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg("umask 022 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .env("SWITCHYARD_DATA_DIR", dir)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("binary runs")
}

#[test]
fn check_config_hides_every_secret() {
    let dir = tempfile::tempdir().unwrap();
    let urls = [
        (
            "SWITCHYARD_POSTGRES__URL",
            "postgres://sy:pg-secret@db:5432/sy?sslmode=require&password=query-secret",
        ),
        (
            "SWITCHYARD_REDIS__URLS",
            r#"["redis://:redis-secret@r1:6379", "rediss://default:tls-secret@r2:6380"]"#,
        ),
        (
            "SWITCHYARD_TELEMETRY__OTLP_ENDPOINT",
            "http://otel:otlp-secret@collector:4317",
        ),
        ("SWITCHYARD_ADMIN__TOKEN", "admin-secret"),
    ];
    let out = switchyard_env(dir.path(), &["check-config"], &urls);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    for secret in [
        "pg-secret",
        "query-secret",
        "redis-secret",
        "tls-secret",
        "otlp-secret",
        "admin-secret",
    ] {
        assert!(!shown.contains(secret), "{secret} printed:\n{shown}");
    }
    for kept in [
        "postgres://sy:***@db:5432/sy?sslmode=require&password=***",
        "redis://:***@r1:6379",
        "rediss://default:***@r2:6380",
        "http://otel:***@collector:4317",
        "token = \"***\"",
    ] {
        assert!(shown.contains(kept), "{kept} missing:\n{shown}");
    }

    let libpq = [(
        "SWITCHYARD_POSTGRES__URL",
        "host=db user=sy password='libpq secret' dbname=sy",
    )];
    let out = switchyard_env(dir.path(), &["check-config"], &libpq);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("host=db user=sy password=*** dbname=sy"),
        "{}",
        text(&out)
    );

    // An invalid value is quoted in the error: redacted there too.
    let misplaced = [(
        "SWITCHYARD_POSTGRES__POOL_SIZE",
        "postgres://sy:error-secret@db/sy",
    )];
    let out = switchyard_env(dir.path(), &["check-config"], &misplaced);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !text(&out).contains("error-secret") && text(&out).contains("sy:***@db"),
        "{}",
        text(&out)
    );
}

#[test]
fn check_config_names_keys_as_the_user_writes_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[limits]\nmax_stanza_bytes = 'big'\n").unwrap();
    let out = switchyard_env(
        dir.path(),
        &["--config", file.to_str().unwrap(), "check-config"],
        &[],
    );
    let err = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("limits.max_stanza_bytes:"), "{err}");
    assert!(!err.contains("default."), "figment's profile leaked: {err}");
    let out = switchyard_env(
        dir.path(),
        &["check-config"],
        &[("SWITCHYARD_LIMITS__MAX_DEPTH", "deep")],
    );
    assert!(
        text(&out).contains("SWITCHYARD_LIMITS__MAX_DEPTH:"),
        "{}",
        text(&out)
    );
}

#[test]
fn stanza_limit_before_auth_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let out = switchyard_env(dir.path(), &["check-config"], &[]);
    assert!(
        text(&out).contains("max_stanza_bytes_before_auth = 16384"),
        "{}",
        text(&out)
    );
    let var = "SWITCHYARD_LIMITS__MAX_STANZA_BYTES_BEFORE_AUTH";
    let out = switchyard_env(dir.path(), &["check-config"], &[(var, "4096")]);
    assert!(
        text(&out).contains("max_stanza_bytes_before_auth = 4096"),
        "{}",
        text(&out)
    );
    for bad in ["1000", "300000"] {
        let out = switchyard_env(dir.path(), &["check-config"], &[(var, bad)]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out));
        assert!(
            text(&out).contains("limits.max_stanza_bytes_before_auth"),
            "{}",
            text(&out)
        );
    }
}
