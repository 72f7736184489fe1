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
        &["user", "add", "bob@localhost", "--password", "bob-password"],
        None
    )
    .status
    .success());
    let dup = switchyard(
        d,
        &["user", "add", "alice", "--password", "another-pw"],
        None,
    );
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
    assert!(switchyard(
        d,
        &["user", "passwd", "alice", "--password", "new-password"],
        None
    )
    .status
    .success());
    assert!(switchyard(d, &["user", "remove", "alice"], None)
        .status
        .success());
    let again = switchyard(d, &["user", "remove", "alice"], None);
    assert!(!again.status.success() && text(&again).contains("no such account"));
    let bad = switchyard(
        d,
        &[
            "user",
            "add",
            "eve@other.example",
            "--password",
            "eve-password",
        ],
        None,
    );
    assert!(
        !bad.status.success() && text(&bad).contains("not a served domain"),
        "{}",
        text(&bad)
    );
    let empty = switchyard(d, &["user", "add", "carol", "--password", ""], None);
    assert!(!empty.status.success(), "empty passwords are refused");
    // auth.min_password_chars (8 by default), from an option or from stdin, in characters.
    for short in [
        &["user", "add", "carol", "--password", "12345"][..],
        &["user", "passwd", "bob", "--password", "1234567"],
    ] {
        let out = switchyard(d, short, None);
        assert!(
            !out.status.success() && text(&out).contains("at least 8"),
            "{}",
            text(&out)
        );
    }
    let piped = switchyard(d, &["user", "add", "carol"], Some("short\n"));
    assert!(!piped.status.success(), "{}", text(&piped));
    let eight = switchyard(d, &["user", "add", "carol", "--password", "ééééééé1"], None);
    assert!(
        eight.status.success(),
        "8 characters, 15 bytes: {}",
        text(&eight)
    );
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
    // Values in range, URLs that parse, a certificate that exists, names the domains and
    // is valid now: each wrong one named.
    let cert = rcgen::generate_simple_self_signed(vec!["other.example".into()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let tls = |cert: &std::path::Path| {
        format!(
            "[tls]\ncert_path = '{}'\nkey_path = '{}'\n",
            cert.display(),
            key_path.display()
        )
    };
    for (body, needle) in [
        (
            "[telemetry]\nsample_ratio = 5.0\n".to_owned(),
            "telemetry.sample_ratio",
        ),
        ("[postgres]\nurl = 'not a url'\n".to_owned(), "postgres.url"),
        ("[redis]\nurls = ['http://x']\n".to_owned(), "redis.urls"),
        (
            "[auth]\nmechanisms = ['SCRAM-SHA-512']\n".to_owned(),
            "auth.mechanisms: \"SCRAM-SHA-512\" is not one of",
        ),
        (
            "[auth]\nmechanisms = []\n".to_owned(),
            "auth.mechanisms must",
        ),
        (
            "[postgres]\nschema = 'x -c log_statement=all'\n".to_owned(),
            "postgres.schema \"x -c log_statement=all\" must be a plain identifier",
        ),
        (
            "[auth]\nmechanisms = ['PLAIN', 'PLAIN']\n".to_owned(),
            "each once",
        ),
        (tls(&dir.path().join("missing.pem")), "cannot read"),
        (tls(&cert_path), "does not name served domain(s) localhost"),
    ] {
        std::fs::write(&file, &body).unwrap();
        let out = switchyard(
            dir.path(),
            &["--config", file.to_str().unwrap(), "check-config"],
            None,
        );
        assert!(!out.status.success(), "{body}: {}", text(&out));
        assert!(text(&out).contains(needle), "{body}: {}", text(&out));
        assert!(
            !text(&out).contains("configuration is valid"),
            "{}",
            text(&out)
        );
    }
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
fn admin_listener_defaults_to_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let out = switchyard_env(dir.path(), &["check-config"], &[]);
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    let admin = shown.split("[admin]").nth(1).expect("an [admin] section");
    assert!(admin.contains("listen = \"127.0.0.1:9400\""), "{shown}");
    let set = [("SWITCHYARD_ADMIN__LISTEN", "0.0.0.0:9400")];
    let out = switchyard_env(dir.path(), &["check-config"], &set);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("listen = \"0.0.0.0:9400\""),
        "the key still configures it"
    );
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The SQLite database, its side files and the data directory are private to the service
/// user when created, and tightened when found open.
#[test]
fn data_dir_and_database_are_private() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("var").join("data");
    let add = |user: &str| {
        let out = switchyard_env(&data, &["user", "add", user, "--password", "password"], &[]);
        assert!(out.status.success(), "{}", text(&out));
    };
    add("alice");
    assert_eq!(mode(&data), 0o700, "data_dir");
    let db = data.join("switchyard.db");
    let files = |db: &std::path::Path| {
        ["", "-wal", "-shm"]
            .iter()
            .map(|side| std::path::PathBuf::from(format!("{}{side}", db.display())))
            .filter(|p| p.exists())
            .collect::<Vec<_>>()
    };
    for file in files(&db) {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }

    // Left open by an older version or by hand: made private on the next start.
    set_mode(&data, 0o755);
    for file in files(&db) {
        set_mode(&file, 0o644);
    }
    add("bob");
    assert_eq!(mode(&data), 0o700, "data_dir tightened");
    for file in files(&db) {
        assert_eq!(mode(&file), 0o600, "{} tightened", file.display());
    }
}

/// A `serve` process, killed when dropped.
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `serve` and returns once it has bound every listener (the development
/// certificate and the database are created before that).
fn serve(data: &std::path::Path) -> Serving {
    use std::io::BufRead;
    let child = Command::new("sh")
        .arg("-c")
        .arg("umask 022 && exec \"$0\" serve")
        .arg(env!("CARGO_BIN_EXE_switchyard"))
        .env("SWITCHYARD_DATA_DIR", data)
        .env("SWITCHYARD_LISTEN__C2S", "127.0.0.1:0")
        .env("SWITCHYARD_LISTEN__C2S_DIRECT_TLS", "127.0.0.1:0")
        .env("SWITCHYARD_LISTEN__WEBSOCKET", "127.0.0.1:0")
        .env("SWITCHYARD_ADMIN__LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary runs");
    let mut serving = Serving(child);
    let stdout = std::io::BufReader::new(serving.0.stdout.take().unwrap());
    let mut seen = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        let done = line.contains("listening admin");
        seen.push(line);
        if done {
            return serving;
        }
    }
    panic!("serve did not start: {seen:?}");
}

#[test]
fn generated_key_and_live_database_are_private() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let key = data.join("dev-key.pem");
    let db = data.join("switchyard.db");
    let side = |suffix: &str| std::path::PathBuf::from(format!("{}{suffix}", db.display()));
    {
        let _running = serve(&data);
        assert_eq!(mode(&data), 0o700, "data_dir");
        assert_eq!(mode(&key), 0o600, "generated key");
        // While the server runs, SQLite keeps its WAL side files next to the database.
        for file in [db.clone(), side("-wal"), side("-shm")] {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
    }
    set_mode(&key, 0o644);
    set_mode(&data, 0o755);
    let _running = serve(&data);
    assert_eq!(mode(&key), 0o600, "existing key tightened");
    assert_eq!(mode(&data), 0o700, "existing data_dir tightened");
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

/// At a terminal, `user add` without `--password` prompts twice without echo, and two
/// different answers change nothing.
#[test]
fn user_add_at_a_terminal_prompts_twice_without_echo() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let run = |first: &str, second: &str| {
        let pty = nix::pty::openpty(None, None).expect("a pseudo-terminal");
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["user", "add", "zed"])
            .env("SWITCHYARD_DATA_DIR", dir.path())
            .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
            .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
            .stderr(Stdio::from(pty.slave))
            .spawn()
            .expect("binary runs");
        let mut master = std::fs::File::from(pty.master);
        let mut shown = String::new();
        // Everything the terminal shows, until `token` (each answer is typed only once
        // its prompt is there, as a person would: echo is off by then).
        let until = |master: &mut std::fs::File, shown: &mut String, token: &str| {
            let mut buf = [0u8; 1024];
            for _ in 0..100 {
                if shown.contains(token) {
                    return;
                }
                match master.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => shown.push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
        };
        until(&mut master, &mut shown, "Password for zed@localhost: ");
        master.write_all(format!("{first}\n").as_bytes()).unwrap();
        until(&mut master, &mut shown, "Again: ");
        master.write_all(format!("{second}\n").as_bytes()).unwrap();
        let status = child.wait().unwrap();
        until(&mut master, &mut shown, "\u{0}");
        (status, shown)
    };
    let (status, shown) = run("one-password", "other-password");
    assert!(!status.success(), "{shown}");
    assert!(shown.contains("differ"), "{shown}");
    let (status, shown) = run("hunter2-long", "hunter2-long");
    assert!(status.success(), "{shown}");
    assert!(
        !shown.contains("hunter2"),
        "the password was echoed: {shown}"
    );
    assert!(shown.contains("added zed@localhost"), "{shown}");
}
