//! TLS to PostgreSQL by `sslmode`, against a private server (initdb in a temporary
//! directory, run as the `postgres` user when the tests run as root, since PostgreSQL
//! refuses root) with a certificate for 127.0.0.1 from a CA of the test's own.

use super::{PgStore, PgTarget};
use crate::test_tls::{free_port, listening, write_certificates, Killed};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The PostgreSQL server binaries (Debian's layout); CI installs them.
fn server_bin() -> Option<PathBuf> {
    let found = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|v| v.path().join("bin"))
        .find(|bin| bin.join("initdb").exists());
    if found.is_none() && std::env::var_os("CI").is_some() {
        panic!("the PostgreSQL server binaries (/usr/lib/postgresql/*/bin) are required in CI");
    }
    found
}

/// `program` with `args`, as the postgres user when this process is root.
fn as_postgres(program: &Path, args: &[&str]) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program).args(args);
        c
    } else {
        let mut c = Command::new(program);
        c.args(args);
        c
    }
}

/// Whether a connection of `store` is encrypted (the server's own view).
async fn encrypted(store: &PgStore) -> Result<bool, String> {
    let client = store.client().await.map_err(|e| e.to_string())?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

#[tokio::test]
async fn sslmode_decides_encryption_and_how_much_of_the_certificate_is_checked() {
    let Some(bin) = server_bin() else {
        eprintln!("SKIPPED: no PostgreSQL server binaries");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_certificates(dir.path());
    let path = |f: &str| dir.path().join(f).display().to_string();
    let root = dir.path().display().to_string();
    for (f, mode) in [(root.as_str(), "0755"), (&path("server-key.pem"), "0600")] {
        assert!(Command::new("chmod")
            .args([mode, f])
            .status()
            .unwrap()
            .success());
    }
    let owned = Command::new("chown")
        .args(["-R", "postgres", &root])
        .status()
        .is_ok_and(|s| s.success());
    let _ = owned; // not root: the files are already this user's
    let data = path("data");
    let init = as_postgres(
        &bin.join("initdb"),
        &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
    )
    .output()
    .unwrap();
    assert!(
        init.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let port = free_port();
    let settings = [
        "listen_addresses=127.0.0.1".to_owned(),
        format!("unix_socket_directories={root}"),
        "ssl=on".to_owned(),
        format!("ssl_cert_file={}", path("server.pem")),
        format!("ssl_key_file={}", path("server-key.pem")),
        "fsync=off".to_owned(),
    ];
    let mut args = vec![
        "-D".to_owned(),
        data.clone(),
        "-p".to_owned(),
        port.to_string(),
    ];
    for s in &settings {
        args.extend(["-c".to_owned(), s.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let _server = Killed(
        as_postgres(&bin.join("postgres"), &args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    listening(port).await;

    let ca = std::fs::read(path("ca.pem")).unwrap();
    let other = std::fs::read(path("other-ca.pem")).unwrap();
    let url = |host: &str, mode: &str| {
        format!("postgres://postgres@{host}:{port}/postgres?sslmode={mode}")
    };
    // (URL, CA file, encrypted or the error's gist)
    type Case<'a> = (String, Option<&'a [u8]>, Result<bool, &'a str>);
    let cases: [Case; 8] = [
        (url("127.0.0.1", "disable"), None, Ok(false)),
        // Encrypted, the certificate unchecked (libpq's require).
        (url("127.0.0.1", "require"), None, Ok(true)),
        (url("127.0.0.1", "prefer"), None, Ok(true)),
        // A CA file makes require check the chain.
        (
            url("127.0.0.1", "require"),
            Some(&other),
            Err("certificate"),
        ),
        (url("127.0.0.1", "verify-full"), Some(&ca), Ok(true)),
        (
            url("127.0.0.1", "verify-full"),
            Some(&other),
            Err("certificate"),
        ),
        // verify-ca checks the chain, not the name; verify-full both.
        (url("localhost", "verify-ca"), Some(&ca), Ok(true)),
        (
            url("localhost", "verify-full"),
            Some(&ca),
            Err("certificate"),
        ),
    ];
    for (url, ca, want) in cases {
        let target = PgTarget {
            ca_pem: ca.map(<[u8]>::to_vec),
            ..PgTarget::url(&url)
        };
        let store = PgStore::connect(&target, None, 1).expect("a pool");
        let got = tokio::time::timeout(std::time::Duration::from_secs(15), encrypted(&store))
            .await
            .expect("in time");
        match (&got, want) {
            (Ok(e), Ok(w)) => assert_eq!(*e, w, "{url}"),
            (Err(e), Err(w)) => assert!(e.to_lowercase().contains(w), "{url}: {e}"),
            _ => panic!("{url}: {got:?}, wanted {want:?}"),
        }
    }
}
