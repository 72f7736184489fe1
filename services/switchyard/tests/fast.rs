//! XEP-0388 SASL2, XEP-0386 Bind 2 and XEP-0484 FAST over real sockets, all-in-one: a
//! password login that binds inline and leaves a token, token logins bound to their
//! mechanism and channel binding, and an operator listing and revoking tokens (one
//! client, all of them, or by changing the password).

mod support;

use support::sasl2::{
    authorized, end_point, password_login, secured, token_login, token_of, FAST, UA,
};
use support::{Client, Server};
use switchyard_core::xml::Element;

const OTHER_UA: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

async fn admin(server: &Server, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let url = format!("http://{}", server.running.admin.expect("admin listener"));
    let body: Option<serde_json::Value> = body.map(|b| serde_json::from_str(b).unwrap());
    switchyard::admin_client::request(&url, method, path, "test-admin-token", body.as_ref())
        .await
        .unwrap()
}

/// A password login for alice asking for a token for `mechanism`; the token.
async fn token_for(server: &Server, ua: &str, mechanism: &str) -> String {
    let (mut c, _) = secured(server.c2s(), server.cert_der()).await;
    let ask = format!("<request-token xmlns='{FAST}' mechanism='{mechanism}'/>");
    let success = password_login(&mut c, "alice", ua, &ask).await;
    assert_eq!(success.name(), "success", "{}", success.to_xml(""));
    token_of(&success).expect("a token in <success/>")
}

/// A token login on a new connection: its answer's name (`success` or `failure`).
async fn try_token(server: &Server, ua: &str, login: (&str, &str, &[u8])) -> Element {
    let (mut c, _) = secured(server.c2s(), server.cert_der()).await;
    token_login(&mut c, "alice", ua, login, "").await
}

#[tokio::test]
async fn xep0386_a_password_login_binds_inline_and_xep0484_leaves_a_token() {
    let server = Server::start().await;
    let (mut c, features) = secured(server.c2s(), server.cert_der()).await;
    let sasl2 = features
        .child("authentication", support::sasl2::SASL2)
        .expect("SASL2 offered after STARTTLS");
    assert!(sasl2.children().any(|m| m.text() == "SCRAM-SHA-256-PLUS"));
    let inline = format!("<bind xmlns='urn:xmpp:bind:0'><tag>Test</tag><enable xmlns='urn:xmpp:sm:3' resume='true'/></bind><request-token xmlns='{FAST}' mechanism='HT-SHA-256-ENDP'/>");
    let success = password_login(&mut c, "alice", UA, &inline).await;
    assert_eq!(success.name(), "success", "{}", success.to_xml(""));
    let jid = authorized(&success);
    assert!(jid.starts_with("alice@localhost/Test."), "{jid}");
    let bound = success.child("bound", "urn:xmpp:bind:0").expect("bound");
    assert!(
        bound.child("enabled", "urn:xmpp:sm:3").is_some(),
        "SM enabled inline"
    );
    let token = token_of(&success).expect("token");
    assert!(success
        .child("token", FAST)
        .and_then(|t| t.attr("expiry"))
        .is_some());
    let features = c.element().await;
    assert_eq!(
        features.name(),
        "features",
        "then stream features, no restart"
    );
    // The session is up: it is listed and it answers a ping.
    assert!(support::sessions_of(&server, "alice@localhost")
        .await
        .contains(&jid));
    c.send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let (pong, _) = c.until(|e| e.attr("id") == Some("p1")).await;
    assert_eq!(pong.attr("type"), Some("result"));

    // The token logs in on a new connection, bound to this TLS certificate.
    let cb = end_point(&server.cert_der());
    let ok = try_token(&server, UA, ("HT-SHA-256-ENDP", &token, &cb)).await;
    assert_eq!(ok.name(), "success", "{}", ok.to_xml(""));
    // §3.4: only for the mechanism it was issued for, only to its client, only with
    // this connection's binding.
    for (ua, login) in [
        (UA, ("HT-SHA-256-NONE", token.as_str(), &b""[..])),
        (OTHER_UA, ("HT-SHA-256-ENDP", token.as_str(), &cb[..])),
        (
            UA,
            (
                "HT-SHA-256-ENDP",
                token.as_str(),
                &b"another certificate"[..],
            ),
        ),
    ] {
        let refused = try_token(&server, ua, login).await;
        assert_eq!(refused.name(), "failure", "{login:?}");
        let condition = refused.children().next().map(|c| c.name().to_owned());
        assert_eq!(condition.as_deref(), Some("not-authorized"));
    }
    assert_eq!(
        try_token(&server, UA, ("HT-SHA-256-ENDP", &token, &cb))
            .await
            .name(),
        "success",
        "failures revoke nothing"
    );
}

#[tokio::test]
async fn operators_list_and_revoke_tokens_per_client_and_a_new_password_revokes_all() {
    let server = Server::start().await;
    let first = token_for(&server, UA, "HT-SHA-256-NONE").await;
    let second = token_for(&server, OTHER_UA, "HT-SHA-256-NONE").await;
    let path = "/api/v1/users/alice@localhost/fast-tokens";
    let (status, listed) = admin(&server, "GET", path, None).await;
    assert_eq!(status, 200, "{listed}");
    assert!(listed.contains(UA) && listed.contains(OTHER_UA), "{listed}");
    assert!(
        listed.contains(r#""label":"Switchyard tests on loopback""#),
        "{listed}"
    );
    assert!(
        !listed.contains(&first) && !listed.contains(&second),
        "no secret shown"
    );

    let (status, _) = admin(&server, "DELETE", &format!("{path}/{UA}"), None).await;
    assert_eq!(status, 204);
    let (status, _) = admin(&server, "DELETE", &format!("{path}/{UA}"), None).await;
    assert_eq!(status, 404, "nothing left for that client");
    let none = ("HT-SHA-256-NONE", first.as_str(), &b""[..]);
    assert_eq!(try_token(&server, UA, none).await.name(), "failure");
    let other = ("HT-SHA-256-NONE", second.as_str(), &b""[..]);
    assert_eq!(
        try_token(&server, OTHER_UA, other).await.name(),
        "success",
        "the other client keeps its token"
    );

    let new_password = Some(r#"{"password":"another secret"}"#);
    let (status, body) = admin(
        &server,
        "PUT",
        "/api/v1/users/alice@localhost/password",
        new_password,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        try_token(&server, OTHER_UA, other).await.name(),
        "failure",
        "a new password revokes every token"
    );
    let (_, listed) = admin(&server, "GET", path, None).await;
    assert_eq!(listed, "[]");
}

#[tokio::test]
async fn xep0386_carbons_enabled_inline_copy_what_another_resource_receives() {
    let server = Server::start().await;
    let (mut alice, _) = secured(server.c2s(), server.cert_der()).await;
    let inline =
        "<bind xmlns='urn:xmpp:bind:0'><tag>Phone</tag><enable xmlns='urn:xmpp:carbons:2'/></bind>";
    let success = password_login(&mut alice, "alice", UA, inline).await;
    assert_eq!(success.name(), "success");
    alice.element().await; // stream features
    alice.send("<presence/>").await;
    // Available before Bob writes: received carbons go to available resources only.
    alice.until(|e| e.name() == "presence").await;
    let mut desk = Client::login(&server, "alice", "SCRAM-SHA-256", "desk").await;
    desk.send("<presence/>").await;
    let mut bob = Client::login(&server, "bob", "SCRAM-SHA-256", "b").await;
    bob.send("<message to='alice@localhost/desk' type='chat'><body>to the desk</body></message>")
        .await;
    let (carbon, _) = alice
        .until(|e| e.name() == "message" && e.child("received", "urn:xmpp:carbons:2").is_some())
        .await;
    assert_eq!(carbon.attr("from"), Some("alice@localhost"), "XEP-0280 §6");
}

/// Wrong tokens are wrong passwords to the login throttle: past `auth.max_failures`
/// from one network even the right token is refused for a while.
#[tokio::test]
async fn wrong_tokens_count_toward_the_login_throttle() {
    let server = Server::start_with(|c| {
        c.auth.max_failures = 3;
        c.auth.failure_delay_initial_ms = 0;
    })
    .await;
    let token = token_for(&server, UA, "HT-SHA-256-NONE").await;
    for _ in 0..3 {
        let wrong = ("HT-SHA-256-NONE", "a guess", &b""[..]);
        let failure = try_token(&server, UA, wrong).await;
        let condition = failure.children().next().map(|c| c.name().to_owned());
        assert_eq!(condition.as_deref(), Some("not-authorized"));
    }
    let right = ("HT-SHA-256-NONE", token.as_str(), &b""[..]);
    let refused = try_token(&server, UA, right).await;
    let condition = refused.children().next().map(|c| c.name().to_owned());
    assert_eq!(
        condition.as_deref(),
        Some("temporary-auth-failure"),
        "throttled"
    );
}

/// Stream management enabled inside Bind 2 is resumable at once: a client that loses
/// its connection right after `<success/>`, having sent nothing since, resumes inline.
#[tokio::test]
async fn xep0386_sm_enabled_inline_is_resumable_before_the_client_says_anything() {
    let server = Server::start().await;
    let (mut first, _) = secured(server.c2s(), server.cert_der()).await;
    let inline =
        "<bind xmlns='urn:xmpp:bind:0'><enable xmlns='urn:xmpp:sm:3' resume='true'/></bind>";
    let success = password_login(&mut first, "alice", UA, inline).await;
    let enabled = success
        .child("bound", "urn:xmpp:bind:0")
        .and_then(|b| b.child("enabled", "urn:xmpp:sm:3"))
        .expect("enabled inline");
    let previd = enabled.attr("id").expect("resumable").to_owned();
    first.element().await; // stream features
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    drop(first);
    let mut bob = Client::login(&server, "bob", "SCRAM-SHA-256", "b").await;
    let to = authorized(&success);
    bob.send(&format!(
        "<message to='{to}' type='chat'><body>while away</body></message>"
    ))
    .await;

    let (mut back, _) = secured(server.c2s(), server.cert_der()).await;
    let resume = format!("<resume xmlns='urn:xmpp:sm:3' previd='{previd}' h='0'/>");
    let success = password_login(&mut back, "alice", UA, &resume).await;
    assert!(
        success.child("resumed", "urn:xmpp:sm:3").is_some(),
        "{}",
        success.to_xml("")
    );
    let (got, _) = back.until(|e| e.name() == "message").await;
    let body = got.child("body", "jabber:client").map(|b| b.text());
    assert_eq!(body.as_deref(), Some("while away"));
}
