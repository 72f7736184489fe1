//! The admin API's daily tasks against a running server, seen from both sides: what the
//! API answers and what the users' clients see (a ban's stream error and refused bind,
//! roster pushes, the server's message, the announcement), and the OpenAPI document
//! naming exactly the routes that exist.

mod support;

use serde_json::{json, Value};
use support::{Client, Server};
use switchyard::admin_client::request;

const TOKEN: &str = "test-admin-token";

async fn call(server: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
    let base = format!("http://{}", server.running.admin.expect("admin listener"));
    request(&base, method, path, TOKEN, body.as_ref())
        .await
        .unwrap()
}

async fn json_of(server: &Server, method: &str, path: &str, body: Option<Value>) -> Value {
    let (status, text) = call(server, method, path, body).await;
    assert_eq!(status, 200, "{method} {path}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Authenticates and asks to bind; the bind answer.
async fn try_bind(server: &Server, user: &str) -> switchyard_core::Element {
    let mut c =
        Client::authenticated_at(server.c2s(), server.cert_der(), user, "SCRAM-SHA-256").await;
    c.open().await;
    c.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>").await;
    c.element().await
}

#[tokio::test]
async fn ban_ends_sessions_and_refuses_binds_until_unbanned() {
    let server = Server::start().await;
    let mut alice = Client::login(&server, "alice", "SCRAM-SHA-256", "phone").await;
    let (status, text) = call(
        &server,
        "PUT",
        "/api/v1/users/alice@localhost/ban",
        Some(json!({"reason": "spam"})),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["sessions_ended"],
        1
    );
    assert_eq!(
        alice.stream_error().await.as_deref(),
        Some("policy-violation")
    );
    // RFC 6120 §7.6.2.2: the bind of a banned account is not allowed.
    let refused = try_bind(&server, "alice").await;
    assert_eq!(refused.attr("type"), Some("error"), "{refused:?}");
    let error = refused.child("error", "jabber:client").expect("error");
    assert!(
        error
            .child("not-allowed", "urn:ietf:params:xml:ns:xmpp-stanzas")
            .is_some(),
        "{refused:?}"
    );
    let shown = json_of(&server, "GET", "/api/v1/users/alice@localhost", None).await;
    assert_eq!(shown["banned"]["reason"], "spam");
    assert_eq!(shown["sessions"], 0);
    // A ban for an account that does not exist, and a reason over the bound.
    let (status, _) = call(
        &server,
        "PUT",
        "/api/v1/users/nobody@localhost/ban",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 404);
    let long = "x".repeat(1025);
    let (status, _) = call(
        &server,
        "PUT",
        "/api/v1/users/bob@localhost/ban",
        Some(json!({"reason": long})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = call(
        &server,
        "PUT",
        "/api/v1/users/bob@localhost/ban",
        Some(json!({"reason": "x".repeat(1024)})),
    )
    .await;
    assert_eq!(status, 200);

    let (status, _) = call(&server, "DELETE", "/api/v1/users/alice@localhost/ban", None).await;
    assert_eq!(status, 204);
    let (status, _) = call(&server, "DELETE", "/api/v1/users/alice@localhost/ban", None).await;
    assert_eq!(status, 404, "not banned any more");
    let _alice = Client::login(&server, "alice", "SCRAM-SHA-256", "phone").await;
    let shown = json_of(&server, "GET", "/api/v1/users/alice@localhost", None).await;
    assert_eq!(shown["banned"], Value::Null);
    assert_eq!(shown["sessions"], 1);
    let (status, _) = call(&server, "GET", "/api/v1/users/nobody@localhost", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn kicks_by_account_and_by_full_jid_with_a_slash_in_the_resource() {
    let server = Server::start().await;
    let mut one = Client::login(&server, "bob", "SCRAM-SHA-256", "one").await;
    let mut two = Client::login(&server, "bob", "SCRAM-SHA-256", "two").await;
    let mut slash = Client::login(&server, "carol", "SCRAM-SHA-256", "lap/top").await;
    // The resource's `/` as it is, unescaped.
    let (status, text) = call(
        &server,
        "DELETE",
        "/api/v1/sessions/carol@localhost/lap/top",
        None,
    )
    .await;
    assert_eq!(status, 204, "{text}");
    assert_eq!(
        slash.stream_error().await.as_deref(),
        Some("policy-violation")
    );
    let (status, _) = call(
        &server,
        "DELETE",
        "/api/v1/sessions/carol@localhost/lap/top",
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(&server, "DELETE", "/api/v1/sessions/carol@localhost", None).await;
    assert_eq!(status, 400, "a bare JID is not a session");

    let ended = json_of(
        &server,
        "DELETE",
        "/api/v1/users/bob@localhost/sessions",
        None,
    )
    .await;
    assert_eq!(ended["sessions_ended"], 2);
    assert_eq!(
        one.stream_error().await.as_deref(),
        Some("policy-violation")
    );
    assert_eq!(
        two.stream_error().await.as_deref(),
        Some("policy-violation")
    );
    // Sessions that outlived their account (removed without the API) can still be ended.
    let mut ghost = Client::login(&server, "alice", "SCRAM-SHA-256", "ghost").await;
    let alice = switchyard_core::Jid::parse("alice@localhost").unwrap();
    let accounts = server.running.accounts.as_ref().unwrap();
    assert!(accounts.remove(&alice).await.unwrap());
    let ended = json_of(
        &server,
        "DELETE",
        "/api/v1/users/alice@localhost/sessions",
        None,
    )
    .await;
    assert_eq!(ended["sessions_ended"], 1);
    assert_eq!(
        ghost.stream_error().await.as_deref(),
        Some("policy-violation")
    );
}

#[tokio::test]
async fn the_cluster_wide_listing_pages_through_every_session_once() {
    let server = Server::start_with(|c| c.domains.push("other.example".into())).await;
    let mut clients = Vec::new();
    for (user, res) in [
        ("alice", "a"),
        ("alice", "b"),
        ("bob", "a"),
        ("carol", "a"),
        ("carol", "b"),
    ] {
        clients.push(Client::login(&server, user, "SCRAM-SHA-256", res).await);
    }
    for limit in [1, 2, 5, 6] {
        let mut seen = Vec::new();
        let mut path = format!("/api/v1/sessions?limit={limit}&domain=localhost");
        for _ in 0..10 {
            let page = json_of(&server, "GET", &path, None).await;
            for s in page["sessions"].as_array().unwrap() {
                seen.push(s["jid"].as_str().unwrap().to_owned());
            }
            match page["next"].as_str() {
                Some(next) => {
                    path = format!(
                        "/api/v1/sessions?limit={limit}&domain=localhost&cursor={}",
                        switchyard::admin_client::segment(next)
                    );
                }
                None => break,
            }
        }
        seen.sort();
        let expected = [
            "alice@localhost/a",
            "alice@localhost/b",
            "bob@localhost/a",
            "carol@localhost/a",
            "carol@localhost/b",
        ];
        assert_eq!(seen, expected, "limit {limit}");
    }
    let other = json_of(
        &server,
        "GET",
        "/api/v1/sessions?domain=other.example",
        None,
    )
    .await;
    assert_eq!(other["sessions"].as_array().unwrap().len(), 0);
    for bad in [
        "limit=0",
        "limit=1001",
        "domain=evil.example",
        "domain=x@localhost",
    ] {
        let (status, text) = call(&server, "GET", &format!("/api/v1/sessions?{bad}"), None).await;
        assert_eq!(status, 400, "{bad}: {text}");
    }
    let stats = json_of(&server, "GET", "/api/v1/stats", None).await;
    assert_eq!(stats["sessions_online"], 5);
    drop(clients);
}

#[tokio::test]
async fn roster_edits_are_pushed_and_bounded_like_a_clients() {
    let server = Server::start().await;
    let mut alice = Client::login(&server, "alice", "SCRAM-SHA-256", "phone").await;
    alice
        .send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    alice.until(|e| e.attr("id") == Some("r1")).await;

    let body = json!({"name": "Bob", "groups": ["Friends", "Work"], "subscription": "both"});
    let (status, text) = call(
        &server,
        "PUT",
        "/api/v1/users/alice@localhost/roster/bob@localhost",
        Some(body),
    )
    .await;
    assert_eq!(status, 204, "{text}");
    // RFC 6121 §2.1.6: the interested resource gets the push.
    let (push, _) = alice.until(|e| e.attr("type") == Some("set")).await;
    let item = push
        .child("query", "jabber:iq:roster")
        .and_then(|q| q.child("item", "jabber:iq:roster"))
        .expect("item");
    assert_eq!(item.attr("jid"), Some("bob@localhost"));
    assert_eq!(item.attr("subscription"), Some("both"));
    assert_eq!(item.attr("name"), Some("Bob"));
    let roster = json_of(&server, "GET", "/api/v1/users/alice@localhost/roster", None).await;
    assert_eq!(roster[0]["jid"], "bob@localhost");
    assert_eq!(roster[0]["groups"], json!(["Friends", "Work"]));
    assert_eq!(roster[0]["subscription"], "both");

    // The limits a client's roster set has (RFC 6121 §2.3.3), and what no row can be.
    let bad = [
        ("bob@localhost", json!({"groups": ["a", "a"]})),
        ("bob@localhost", json!({"groups": [""]})),
        ("bob@localhost", json!({"name": "n".repeat(10_000)})),
        ("bob@localhost", json!({"subscription": "sometimes"})),
        ("bob@localhost%2Fres", json!({})),
        ("alice@localhost", json!({})),
    ];
    for (contact, body) in bad {
        let path = format!("/api/v1/users/alice@localhost/roster/{contact}");
        let (status, text) = call(&server, "PUT", &path, Some(body.clone())).await;
        assert_eq!(status, 400, "{contact} {body}: {text}");
    }
    let (status, _) = call(
        &server,
        "PUT",
        "/api/v1/users/nobody@localhost/roster/bob@localhost",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 404);

    let (status, _) = call(
        &server,
        "DELETE",
        "/api/v1/users/alice@localhost/roster/bob@localhost",
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (push, _) = alice.until(|e| e.attr("type") == Some("set")).await;
    let item = push
        .child("query", "jabber:iq:roster")
        .and_then(|q| q.child("item", "jabber:iq:roster"))
        .expect("item");
    assert_eq!(item.attr("subscription"), Some("remove"));
    let (status, _) = call(
        &server,
        "DELETE",
        "/api/v1/users/alice@localhost/roster/bob@localhost",
        None,
    )
    .await;
    assert_eq!(status, 404, "§2.5.3: not there any more");
    assert_eq!(
        json_of(&server, "GET", "/api/v1/users/alice@localhost/roster", None).await,
        json!([])
    );
}

#[tokio::test]
async fn messages_offline_purge_and_announcements() {
    let server = Server::start().await;
    let mut alice = Client::login(&server, "alice", "SCRAM-SHA-256", "phone").await;
    alice.send("<presence/>").await;
    // To an available user: delivered, from the domain.
    let (status, text) = call(
        &server,
        "POST",
        "/api/v1/messages",
        Some(json!({"to": "alice@localhost", "body": "hello & <welcome>", "subject": "hi"})),
    )
    .await;
    assert_eq!(status, 202, "{text}");
    let (got, _) = alice.until(|e| e.name() == "message").await;
    assert_eq!(got.attr("from"), Some("localhost"));
    assert_eq!(
        got.child("body", "jabber:client")
            .map(|b| b.text())
            .as_deref(),
        Some("hello & <welcome>")
    );
    // To an offline user: stored; counted; purged.
    for i in 0..3 {
        let (status, _) = call(
            &server,
            "POST",
            "/api/v1/messages",
            Some(json!({"to": "bob@localhost", "body": format!("m{i}")})),
        )
        .await;
        assert_eq!(status, 202);
    }
    let held = json_of(&server, "GET", "/api/v1/users/bob@localhost/offline", None).await;
    assert_eq!(held["messages"], 3);
    assert!(held["bytes"].as_u64().unwrap() > 0);
    let purged = json_of(
        &server,
        "DELETE",
        "/api/v1/users/bob@localhost/offline",
        None,
    )
    .await;
    assert_eq!(purged["purged"], 3);
    assert_eq!(
        json_of(&server, "GET", "/api/v1/users/bob@localhost/offline", None).await["messages"],
        0
    );
    for bad in [
        json!({"to": "nobody@localhost", "body": "x"}),
        json!({"to": "x@evil.example", "body": "x"}),
        json!({"to": "bob@localhost", "body": "nul \u{0} here"}),
        json!({"to": "bob@localhost", "body": "x".repeat(64 * 1024 + 1)}),
        json!({"to": "bob@localhost", "body": "x", "type": "groupchat"}),
    ] {
        let (status, text) = call(&server, "POST", "/api/v1/messages", Some(bad.clone())).await;
        assert!(status == 400 || status == 404, "{bad}: {status} {text}");
    }

    // Announcements reach every online session and are never stored (RFC 6121 §5.2.2).
    let mut carol = Client::login(&server, "carol", "SCRAM-SHA-256", "desk").await;
    let sent = json_of(
        &server,
        "POST",
        "/api/v1/announcements",
        Some(json!({"body": "maintenance at 3", "domain": "localhost"})),
    )
    .await;
    assert_eq!(sent["sent"], 2);
    for c in [&mut alice, &mut carol] {
        let (headline, _) = c.until(|e| e.attr("type") == Some("headline")).await;
        assert_eq!(headline.attr("from"), Some("localhost"));
        assert_eq!(
            headline
                .child("body", "jabber:client")
                .map(|b| b.text())
                .as_deref(),
            Some("maintenance at 3")
        );
    }
    let mut bob = Client::login(&server, "bob", "SCRAM-SHA-256", "late").await;
    bob.send("<presence/>").await;
    bob.send("<iq type='get' id='ping'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let (_, before) = bob.until(|e| e.attr("id") == Some("ping")).await;
    assert!(before.iter().all(|e| e.name() != "message"), "{before:?}");
    assert_eq!(
        json_of(&server, "GET", "/api/v1/users/bob@localhost/offline", None).await["messages"],
        0
    );
}

/// The OpenAPI document lists exactly the routes the listener serves.
#[tokio::test]
async fn openapi_document_matches_the_routes() {
    let server = Server::start().await;
    let base = format!("http://{}", server.running.admin.expect("admin listener"));
    let (status, text) = request(&base, "GET", "/api/v1/openapi.json", "", None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut documented = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops
            .as_object()
            .unwrap()
            .keys()
            .filter(|m| *m != "parameters")
        {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    documented.sort();
    // The routes as `serve()` declares them.
    let source = include_str!("../src/admin/mod.rs");
    let mut routed = Vec::new();
    for call in source.split(".route(").skip(1) {
        let path = call.split('"').nth(1).unwrap().replace("{*jid}", "{jid}");
        if !path.starts_with("/api/v1") {
            continue;
        }
        let handlers = &call[..call.find(")\n").unwrap_or(call.len())];
        for method in ["get", "post", "put", "delete"] {
            if handlers.contains(&format!("{method}(")) {
                routed.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    routed.sort();
    assert_eq!(documented, routed);
    // And each documented operation exists: without the token it is refused, not missing.
    for (method, path) in documented
        .iter()
        .filter(|(_, p)| !p.ends_with("openapi.json"))
    {
        let concrete = path
            .replace("{jid}", "alice@localhost")
            .replace("{contact}", "bob@localhost")
            .replace("{client}", "x");
        let (status, text) = request(&base, method, &concrete, "wrong", Some(&json!({})))
            .await
            .unwrap();
        assert_eq!(status, 401, "{method} {concrete}: {text}");
    }
}

/// A banned account gets no FAST token from a SASL2 login without Bind 2, and a SASL2
/// login with Bind 2 fails with `account-disabled` (RFC 6120 §6.5.1), not a retryable
/// condition.
#[tokio::test]
async fn a_banned_account_gets_no_token_and_sasl2_says_account_disabled() {
    use support::sasl2::{password_login, secured, token_of, FAST, UA};
    let server = Server::start().await;
    let (status, _) = call(
        &server,
        "PUT",
        "/api/v1/users/carol@localhost/ban",
        Some(json!({"reason": "x"})),
    )
    .await;
    assert_eq!(status, 200);
    let (mut c, _) = secured(server.c2s(), server.cert_der()).await;
    let request = format!("<request-token xmlns='{FAST}' mechanism='HT-SHA-256-NONE'/>");
    let success = password_login(&mut c, "carol", UA, &request).await;
    assert_eq!(success.name(), "success", "{success:?}");
    assert_eq!(token_of(&success), None, "no token for a banned account");
    let tokens = json_of(
        &server,
        "GET",
        "/api/v1/users/carol@localhost/fast-tokens",
        None,
    )
    .await;
    assert_eq!(tokens, json!([]));

    let (mut c, _) = secured(server.c2s(), server.cert_der()).await;
    let bind = "<bind xmlns='urn:xmpp:bind:0'><tag>t</tag></bind>";
    let failure = password_login(&mut c, "carol", UA, bind).await;
    assert_eq!(failure.name(), "failure", "{failure:?}");
    let condition = failure.children().next().map(|c| c.name().to_owned());
    assert_eq!(
        condition.as_deref(),
        Some("account-disabled"),
        "{failure:?}"
    );
}

#[tokio::test]
async fn unknown_cursors_paths_methods_and_unwritable_text_are_refused_with_a_reason() {
    let server = Server::start().await;
    for cursor in ["garbage", "0", "-1", "%00"] {
        let (status, text) = call(
            &server,
            "GET",
            &format!("/api/v1/sessions?cursor={cursor}"),
            None,
        )
        .await;
        assert_eq!(status, 400, "{cursor}: {text}");
        assert!(text.contains("cursor"), "{text}");
    }
    let (status, text) = call(&server, "GET", "/api/v1/nowhere", None).await;
    assert_eq!(status, 404);
    assert!(text.contains("no such endpoint"), "{text}");
    let (status, text) = call(&server, "PATCH", "/api/v1/users", None).await;
    assert_eq!(status, 405);
    assert!(!text.is_empty());
    for body in [
        json!({"name": "ctl\u{1}"}),
        json!({"groups": ["nul\u{0}"]}),
        json!({"groups": ["\u{FFFE}"]}),
    ] {
        let path = "/api/v1/users/alice@localhost/roster/bob@localhost";
        let (status, text) = call(&server, "PUT", path, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {text}");
    }
}
