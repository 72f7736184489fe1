//! XEP-0227 export and import through the CLI, beside a running server: data a client
//! stored comes out, goes into an empty store and comes out the same; imported into a
//! running server it is what the users' clients see; Prosody's own export imports and
//! its users log in with their passwords; hostile or broken files are refused clearly.

mod support;

use std::path::Path;
use support::{Client, Server};

/// `switchyard ARGS` on `data_dir` (the embedded SQLite store), with `domains`.
async fn cli(data_dir: &Path, domains: &str, args: &[&str]) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"));
    cmd.args(args)
        .env("SWITCHYARD_DATA_DIR", data_dir)
        .env("SWITCHYARD_DOMAINS", domains);
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
        .await
        .expect("the CLI finished in time")
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

async fn iq(c: &mut Client, id: &str, xml: &str) -> switchyard_core::Element {
    c.send(xml).await;
    let (answer, _) = c.until(|e| e.attr("id") == Some(id)).await;
    assert_eq!(answer.attr("type"), Some("result"), "{answer:?}");
    answer
}

/// A directory for a test's files, with an empty `data` directory in it.
fn scratch() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    (dir, data)
}

/// Writes `text` to `name` in `dir`; the path.
fn write_in(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// One field of the account's vCard, as its own client reads it.
async fn vcard_field(c: &mut Client, field: &str) -> Option<String> {
    let answer = iq(
        c,
        "vc",
        "<iq type='get' id='vc'><vCard xmlns='vcard-temp'/></iq>",
    )
    .await;
    answer
        .child("vCard", "vcard-temp")
        .and_then(|v| v.child(field, "vcard-temp"))
        .map(|n| n.text())
}

fn roster_items(answer: &switchyard_core::Element) -> Vec<(String, String, Option<String>)> {
    let query = answer.child("query", "jabber:iq:roster").expect("roster");
    query
        .children()
        .map(|i| {
            let attr = |n: &str| i.attr(n).map(str::to_owned);
            (
                attr("jid").unwrap(),
                attr("subscription").unwrap(),
                attr("ask"),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_export_round_trips_and_imports_into_a_running_server() {
    let server = Server::start().await;
    let mut alice = Client::login(&server, "alice", "SCRAM-SHA-256", "phone").await;
    iq(&mut alice, "r", "<iq type='set' id='r'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'><group>Friends</group></item></query></iq>").await;
    iq(&mut alice, "v", "<iq type='set' id='v'><vCard xmlns='vcard-temp'><FN>Alice</FN><NICKNAME>a &amp; b</NICKNAME></vCard></iq>").await;
    iq(&mut alice, "p", "<iq type='set' id='p'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'><conference jid='room@muc.localhost' name='Room'/></storage></query></iq>").await;
    alice.send("<presence/>").await;
    let mut carol = Client::login(&server, "carol", "SCRAM-SHA-256", "desk").await;
    carol
        .send("<presence type='subscribe' to='alice@localhost'/>")
        .await;
    alice.until(|e| e.attr("type") == Some("subscribe")).await;
    for body in ["Grüße ✓", "a &lt; b &amp; c"] {
        alice
            .send(&format!(
                "<message to='bob@localhost' type='chat'><body>{body}</body></message>"
            ))
            .await;
    }
    let mut stored = String::new();
    for _ in 0..50 {
        stored = support::user_view(&server, "bob@localhost", "offline").await;
        if stored.contains("\"messages\":2") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(stored.contains("\"messages\":2"), "{stored}");

    let work = tempfile::tempdir().unwrap();
    let a = work.path().join("a.xml");
    let (ok, _, err) = cli(
        server.dir.path(),
        "[localhost]",
        &["export", a.to_str().unwrap()],
    )
    .await;
    assert!(ok, "{err}");
    assert!(err.contains("exported 3 account(s)"), "{err}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&a).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let exported = std::fs::read_to_string(&a).unwrap();
    for expected in [
        "<server-data xmlns='urn:xmpp:pie:0'>",
        "<host jid='localhost'>",
        "mechanism='SCRAM-SHA-1'",
        "mechanism='SCRAM-SHA-256'",
        "<item jid='bob@localhost' subscription='none' name='Bob'><group>Friends</group></item>",
        "<presence xmlns='jabber:client'",
        "<NICKNAME>a &amp; b</NICKNAME>",
        "<storage xmlns='storage:bookmarks'>",
        "<offline-messages>",
        "Grüße ✓",
        "a &lt; b &amp; c",
        "urn:xmpp:delay",
    ] {
        assert!(
            exported.contains(expected),
            "{expected} missing from {exported}"
        );
    }
    assert!(!exported.contains("secret"), "no password in an export");

    // Into an empty store, and out again: the same document.
    let empty = tempfile::tempdir().unwrap();
    let (ok, out, err) = cli(
        empty.path(),
        "[localhost]",
        &["import", a.to_str().unwrap()],
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("imported 3 account(s)"), "{out}");
    let c = work.path().join("c.xml");
    let (ok, _, err) = cli(
        empty.path(),
        "[localhost]",
        &["export", c.to_str().unwrap()],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(std::fs::read_to_string(&c).unwrap(), exported);
    // A second import leaves existing accounts alone and says so.
    let (ok, out, _) = cli(
        empty.path(),
        "[localhost]",
        &["import", a.to_str().unwrap()],
    )
    .await;
    assert!(ok);
    assert!(
        out.contains("imported 0 account(s)") && out.contains("the account exists"),
        "{out}"
    );

    // Into a running server whose accounts exist: merged, and the clients see it.
    let other = Server::start().await;
    let (ok, out, err) = cli(
        other.dir.path(),
        "[localhost]",
        &["import", "--merge", a.to_str().unwrap()],
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("merged into 3 existing"), "{out}");
    let mut alice = Client::login(&other, "alice", "SCRAM-SHA-256", "laptop").await;
    let roster = iq(
        &mut alice,
        "g",
        "<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>",
    )
    .await;
    assert_eq!(
        roster_items(&roster),
        vec![("bob@localhost".to_owned(), "none".to_owned(), None)]
    );
    let nick = vcard_field(&mut alice, "NICKNAME").await;
    assert_eq!(nick.as_deref(), Some("a & b"));
    let mut bob = Client::login(&other, "bob", "SCRAM-SHA-256", "phone").await;
    bob.send("<presence/>").await;
    let mut bodies = Vec::new();
    while bodies.len() < 2 {
        let (m, _) = bob.until(|e| e.name() == "message").await;
        bodies.push(
            m.child("body", "jabber:client")
                .map(|b| b.text())
                .unwrap_or_default(),
        );
    }
    assert_eq!(bodies, ["Grüße ✓", "a < b & c"]);
}

/// Prosody 0.12's own export (`tests/fixtures/prosody-xep0227`, see its README).
#[tokio::test]
async fn prosodys_export_imports_and_its_users_log_in_with_their_passwords() {
    // The SCRAM-SHA-256 pair is not offered while imported SHA-1 keys are in use.
    let server = Server::start_with(|c| {
        c.domains.push("pie.example".into());
        c.auth.mechanisms = vec![
            "SCRAM-SHA-1-PLUS".into(),
            "SCRAM-SHA-1".into(),
            "PLAIN".into(),
        ];
    })
    .await;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/prosody-xep0227");
    for user in ["juliet", "romeo", "nurse"] {
        let file = fixtures.join(format!("{user}@pie.example.xml"));
        let (ok, out, err) = cli(
            server.dir.path(),
            "[localhost, pie.example]",
            &["import", file.to_str().unwrap()],
        )
        .await;
        assert!(ok, "{err}");
        assert!(out.contains("imported 1 account(s)"), "{out}");
        if user != "juliet" {
            assert!(
                out.contains("{urn:xmpp:pie:0#mam}archive"),
                "the archive is reported skipped: {out}"
            );
        }
    }
    let login = |mechanism: &'static str, password: &'static str| {
        let server = &server;
        async move {
            let mut c = Client::connect(server.c2s()).await;
            c.domain = "pie.example".into();
            c.open().await;
            c.starttls(server.cert_der()).await;
            let features = c.open().await;
            let offered: Vec<String> = features
                .child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")
                .expect("mechanisms")
                .children()
                .map(|m| m.text())
                .collect();
            assert_eq!(offered, ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "PLAIN"]);
            let outcome = c.auth(mechanism, "juliet", password).await;
            (c, outcome.name().to_owned())
        }
    };
    // Prosody kept SHA-1 keys only: SCRAM-SHA-1 and PLAIN work; SCRAM-SHA-256 is not
    // offered (a client asking anyway fails, as it would with the keys absent).
    assert_eq!(login("SCRAM-SHA-256", "balcony-pass").await.1, "failure");
    assert_eq!(login("SCRAM-SHA-1", "wrong-pass").await.1, "failure");
    assert_eq!(login("PLAIN", "balcony-pass").await.1, "success");
    let (mut juliet, outcome) = login("SCRAM-SHA-1", "balcony-pass").await;
    assert_eq!(outcome, "success");
    juliet.bind("balcony").await;
    let roster = iq(
        &mut juliet,
        "g",
        "<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>",
    )
    .await;
    let mut items = roster_items(&roster);
    items.sort();
    assert_eq!(
        items,
        vec![
            (
                "nurse@pie.example".to_owned(),
                "from".to_owned(),
                Some("subscribe".to_owned())
            ),
            ("romeo@pie.example".to_owned(), "both".to_owned(), None),
        ]
    );
    let name = vcard_field(&mut juliet, "FN").await;
    assert_eq!(name.as_deref(), Some("Juliet Capulet"));
    let private = iq(&mut juliet, "p", "<iq type='get' id='p'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>").await;
    let conference = private
        .child("query", "jabber:iq:private")
        .and_then(|q| q.child("storage", "storage:bookmarks"))
        .and_then(|s| s.child("conference", "storage:bookmarks"))
        .and_then(|c| c.attr("jid").map(str::to_owned));
    assert_eq!(
        conference.as_deref(),
        Some("balcony@conference.pie.example")
    );
}

#[tokio::test]
async fn broken_and_hostile_files_are_refused_clearly() {
    let (dir, data) = scratch();
    let write = |name: &str, text: &str| write_in(&dir, name, text);
    let keys = "<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'><iter-count>4096</iter-count><salt>c2FsdA==</salt><server-key>AAAAAAAAAAAAAAAAAAAAAAAAAAA=</server-key><stored-key>AAAAAAAAAAAAAAAAAAAAAAAAAAA=</stored-key></scram-credentials>";
    let cases = [
        ("dtd.xml", "<!DOCTYPE x [<!ENTITY a 'b'>]><server-data xmlns='urn:xmpp:pie:0'/>", "DTD"),
        ("cut.xml", "<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='u'>", "not well-formed"),
        ("loop.xml", "<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'><xi:include href='loop.xml'/></server-data>", "nested deeper"),
        ("nohost.xml", &format!("<server-data xmlns='urn:xmpp:pie:0'><user name='u'>{keys}</user></server-data>"), "outside any <host>"),
        ("truncated.xml", &format!("<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='u'>{keys}</user>"), "ends before its root element"),
        ("after.xml", &format!("<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='u'>{keys}</user></host></server-data><junk/>"), "after the root element"),
        ("text-after.xml", "<server-data xmlns='urn:xmpp:pie:0'/>junk", "text after the root element"),
        ("empty.xml", "", "no <server-data>, <host> or <user>"),
        ("wrong-root.xml", "<server-data xmlns='urn:wrong'/>", "its root is {urn:wrong}server-data"),
        ("fifo-like.xml", "/dev/null", "is not a regular file"),
    ];
    for (name, text, expected) in cases {
        let file = match text {
            "/dev/null" => text.to_owned(),
            _ => write(name, text),
        };
        let (ok, out, err) = cli(&data, "[localhost]", &["import", &file]).await;
        assert!(!ok, "{name}: {out}");
        assert!(err.contains(expected), "{name}: {err}");
    }
    // Users that cannot be imported are named, the rest goes in.
    // A salt over 128 bytes: every login attempt for the account would be sent it.
    let big_salt = "QUFB".repeat(44); // 132 bytes
    let mixed = format!(
        "<server-data xmlns='urn:xmpp:pie:0'><host jid='evil.example'><user name='x'>{keys}</user></host>\
         <host jid='localhost'><user name='nokeys'/><user name='bad'><scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'><iter-count>4096</iter-count><salt>c2FsdA==</salt><server-key>AAAA</server-key><stored-key>AAAA</stored-key></scram-credentials></user>\
         <user name='plain' password='a-password'/><user name='salty'><scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'><iter-count>4096</iter-count><salt>{big_salt}</salt><server-key>AAAAAAAAAAAAAAAAAAAAAAAAAAA=</server-key><stored-key>AAAAAAAAAAAAAAAAAAAAAAAAAAA=</stored-key></scram-credentials></user><user name='ok'>{keys}</user></host></server-data>"
    );
    let (ok, out, err) = cli(
        &data,
        "[localhost]",
        &["import", &write("mixed.xml", &mixed)],
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("imported 2 account(s)"), "{out}");
    assert!(
        out.contains("x@evil.example: evil.example is not a served domain"),
        "{out}"
    );
    assert!(out.contains("nokeys@localhost: no credentials"), "{out}");
    assert!(
        out.contains("bad@localhost: scram-credentials with"),
        "{out}"
    );
    // Split files (XInclude, relative to the including file), the older namespace too.
    std::fs::create_dir(dir.path().join("localhost")).unwrap();
    write("localhost/split.xml", &format!("<user xmlns='http://www.xmpp.org/extensions/xep-0227.html#ns' name='split'>{keys}</user>"));
    let host = write("host.xml", "<host xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude' jid='localhost'><xi:include href='localhost/split.xml'/></host>");
    let main = write("main.xml", &format!("<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'><xi:include href='{host}'/></server-data>"));
    let (ok, out, err) = cli(&data, "[localhost]", &["import", &main]).await;
    assert!(ok, "{err}");
    assert!(out.contains("imported 1 account(s)"), "{out}");
    let (_, listed, _) = cli(&data, "[localhost]", &["user", "list"]).await;
    let mut listed: Vec<&str> = listed.lines().collect();
    listed.sort();
    assert_eq!(
        listed,
        ["ok@localhost", "plain@localhost", "split@localhost"]
    );
}

/// What the first black-box review found: a file broken late changes nothing; a bad
/// item leaves out that item, not the user; iteration counts, per-account limits and
/// offline messages are held to what a login and a client may cost; bans travel; the
/// export is never readable by others, whatever is at its path.
#[tokio::test]
async fn imports_are_all_or_nothing_per_file_and_hold_items_to_the_limits() {
    let (dir, data) = scratch();
    let write = |name: &str, text: &str| write_in(&dir, name, text);
    let keys = |iterations: u32| {
        format!("<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'><iter-count>{iterations}</iter-count><salt>c2FsdA==</salt><server-key>AAAAAAAAAAAAAAAAAAAAAAAAAAA=</server-key><stored-key>AAAAAAAAAAAAAAAAAAAAAAAAAAA=</stored-key></scram-credentials>")
    };
    let k = keys(4096);
    let env = |cmd: &mut tokio::process::Command| {
        cmd.env("SWITCHYARD_IM__MAX_ROSTER_ITEMS", "2");
    };
    let run = |args: Vec<String>| {
        let data = data.clone();
        async move {
            let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"));
            cmd.args(&args)
                .env("SWITCHYARD_DATA_DIR", &data)
                .env("SWITCHYARD_DOMAINS", "[localhost]");
            env(&mut cmd);
            support::run_cli(cmd, std::time::Duration::from_secs(60)).await
        }
    };
    let import = |file: String| run(vec!["import".into(), file]);

    // Good users, then a broken one: nothing is written.
    let partial = write("partial.xml", &format!("<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='first'>{k}</user><user name='second'>{k}<broken></user></host></server-data>"));
    let (ok, out) = import(partial).await;
    assert!(!ok && out.contains("nothing was imported"), "{out}");
    // Text between users past the per-event bound: refused, memory bounded.
    let padded = write("padded.xml", &format!("<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='first'>{k}</user>{}</host></server-data>", " ".repeat(2 * 1024 * 1024)));
    let (ok, out) = import(padded).await;
    assert!(!ok && out.contains("more than 1048576 bytes"), "{out}");
    let (_, listed) = run(vec!["user".into(), "list".into()]).await;
    assert!(listed.trim().is_empty(), "nothing written: {listed}");

    let user = format!(
        "<user name='rt'>{k}<query xmlns='jabber:iq:roster'><item jid='keep@localhost'/><item jid='rt@localhost'/><item jid='x@localhost/phone'/><item jid='two@localhost' subscription='remove'/><item jid='second@localhost' subscription='both'/><item jid='third@localhost'/></query>\
         <query xmlns='jabber:iq:private'><a xmlns='urn:example:a'/><r xmlns='jabber:iq:roster'/></query>\
         <offline-messages><message xmlns='jabber:client' from='a@localhost' type='chat'><body>kept</body></message><message xmlns='jabber:client' from='a@localhost' type='headline'><body>h</body></message><message xmlns='jabber:client' type='chat'><body>no from</body></message><message xmlns='jabber:client' from='a@localhost' to='other@localhost'><body>x</body></message><message from='a@localhost'><body>ns</body></message></offline-messages>\
         <ban xmlns='urn:x-switchyard:ban:0' reason='moved while banned' since='1700000000'/><ban xmlns='urn:x-switchyard:ban:0' since='18446744073709551615'/></user>         <user name='banned2'>{k}<ban xmlns='urn:x-switchyard:ban:0' reason='r' since='18446744073709551615'/></user>\
         <user name='slow'>{}</user><user name='weak'>{}</user>",
        keys(4_294_967_295),
        keys(1)
    );
    let file = write(
        "items.xml",
        &format!(
            "<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'>{user}</host></server-data>"
        ),
    );
    let (ok, out) = import(file.clone()).await;
    assert!(ok, "{out}");
    for expected in [
        "imported 3 account(s)",
        "2 roster item(s)",
        "left out: rt@localhost: a second ban",
        "left out: banned2@localhost: the ban (since \"18446744073709551615\" is not seconds since 1970 up to year 9999)",
        "1 private XML document(s), 1 offline message(s), 1 ban(s)",
        "not imported: slow@localhost: scram-credentials iter-count 4294967295 is not 1 to 100000",
        "note: weak@localhost: its SCRAM-SHA-1 keys have 1 iterations, below 4096: imported",
        "left out: rt@localhost: roster item \"rt@localhost\" (not another account's bare JID)",
        "left out: rt@localhost: roster item \"x@localhost/phone\"",
        "left out: rt@localhost: roster item \"two@localhost\" (its subscription",
        "left out: rt@localhost: roster item third@localhost (at most 2 items)",
        "left out: rt@localhost: private XML in jabber:iq:roster",
        "left out: rt@localhost: an offline message (id \"\"): only normal and chat messages are stored",
        "left out: rt@localhost: an offline message (id \"\"): no valid from",
        "left out: rt@localhost: an offline message (id \"\"): it is to another address",
        "left out: rt@localhost: an offline message (id \"\"): it is a {urn:xmpp:pie:0}message, not a jabber:client message",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from {out}");
    }
    // Merged again: nothing doubles.
    let (ok, out) = run(vec!["import".into(), "--merge".into(), file]).await;
    assert!(ok && out.contains("0 offline message(s)"), "{out}");

    // The ban went in, and comes out again; the export is 0600 whatever was there.
    let old = dir.path().join("old.xml");
    std::fs::write(&old, "public").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
    let target = dir.path().join("elsewhere.xml");
    std::fs::write(&target, "not to be written through").unwrap();
    let link = dir.path().join("link.xml");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    for path in [&old, &link] {
        let (ok, out) = run(vec!["export".into(), path.to_str().unwrap().into()]).await;
        assert!(ok, "{out}");
        let meta = std::fs::symlink_metadata(path).unwrap();
        assert!(meta.is_file(), "a file, not the link");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains("<ban xmlns='urn:x-switchyard:ban:0' reason='moved while banned' since='1700000000'/>"), "{text}");
    }
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "not to be written through"
    );
}
