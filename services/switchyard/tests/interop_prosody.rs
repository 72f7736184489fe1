//! XEP-0227 back the other way: an export of Switchyard is imported by Prosody (Debian's
//! package, `prosody-migrator` with its `xep0227` driver) and the user logs in there with
//! the password they had here, finding roster, vCard, bookmarks and a pending
//! subscription request (`tests/interop/prosody_import.sh` does the Prosody side).
//! Without Prosody the test fails in CI (`CI` set; `.ci/run` installs it) and skips with
//! a visible message on a laptop.

mod support;

use serde_json::{json, Value};
use support::{Client, Server};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/prosody_import.sh"
);

#[tokio::test]
async fn prosody_imports_an_export_and_the_user_logs_in_there() {
    let server = Server::start_with(|c| c.auth.min_password_chars = 6).await;
    let base = format!("http://{}", server.running.admin.expect("admin listener"));
    let roster = json!({"name": "Bob", "groups": ["Friends"], "subscription": "both"});
    let path = "/api/v1/users/alice@localhost/roster/bob@localhost";
    let (status, text) =
        switchyard::admin_client::request(&base, "PUT", path, "test-admin-token", Some(&roster))
            .await
            .unwrap();
    assert_eq!(status, 204, "{text}");
    let mut alice = Client::login(&server, "alice", "SCRAM-SHA-256", "desk").await;
    alice
        .send("<iq type='set' id='v'><vCard xmlns='vcard-temp'><FN>Alice Liddell</FN></vCard></iq>")
        .await;
    alice.until(|e| e.attr("id") == Some("v")).await;
    alice.send("<iq type='set' id='p'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'><conference jid='tea@conference.localhost' name='Tea'/></storage></query></iq>").await;
    alice.until(|e| e.attr("id") == Some("p")).await;
    drop(alice);
    let mut carol = Client::login(&server, "carol", "SCRAM-SHA-256", "desk").await;
    carol
        .send("<presence type='subscribe' to='alice@localhost'/>")
        .await;
    carol
        .send("<iq type='get' id='ping'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    carol.until(|e| e.attr("id") == Some("ping")).await;

    let work = tempfile::tempdir().unwrap();
    let export = work.path().join("export.xml");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["export", export.to_str().unwrap()])
        .env("SWITCHYARD_DATA_DIR", server.dir.path())
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), out)
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let prosody = tokio::process::Command::new("bash")
        .args([
            SCRIPT,
            export.to_str().unwrap(),
            "localhost",
            "alice",
            "secret",
            "25232",
        ])
        .output();
    let prosody = tokio::time::timeout(std::time::Duration::from_secs(180), prosody)
        .await
        .expect("the Prosody side finished in time")
        .unwrap();
    let stderr = String::from_utf8_lossy(&prosody.stderr);
    if prosody.status.code() == Some(3) {
        assert!(
            std::env::var_os("CI").is_none(),
            "Prosody is missing (.ci/run installs it): {stderr}"
        );
        eprintln!("SKIPPED: Prosody or its tools are missing: {stderr}");
        return;
    }
    assert!(prosody.status.success(), "{stderr}");
    let seen: Value = serde_json::from_slice(&prosody.stdout).expect("the script prints JSON");
    assert_eq!(seen["logged_in"], true, "{seen}");
    assert_eq!(seen["wrong_password_refused"], true, "{seen}");
    assert_eq!(seen["roster"][0]["jid"], "bob@localhost", "{seen}");
    assert_eq!(seen["roster"][0]["subscription"], "both", "{seen}");
    assert_eq!(seen["roster"][0]["groups"], json!(["Friends"]), "{seen}");
    assert_eq!(seen["vcard_fn"], "Alice Liddell", "{seen}");
    assert_eq!(
        seen["bookmarks"],
        json!(["tea@conference.localhost"]),
        "{seen}"
    );
    assert_eq!(
        seen["pending_subscriptions"],
        json!(["carol@localhost"]),
        "{seen}"
    );
}
