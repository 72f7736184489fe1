//! XEP-0114 external components over real sockets: the handshake (and its refusals), a
//! component's stanzas to users and users' stanzas to any JID at its domain, the checks
//! on what it sends, `service-unavailable` while it is away, and a second connection for
//! its domain taking over.

mod support;

use support::component::{component, ACCEPT};
use support::{Client, Server};
use switchyard::config::ComponentEntry;

const SECRET: &str = "a-component-secret";

async fn server() -> Server {
    Server::start_with(|c| {
        c.listen.component = "127.0.0.1:0".into();
        c.components = vec![ComponentEntry {
            domain: "push.localhost".into(),
            secret: SECRET.into(),
        }];
    })
    .await
}

fn body(e: &switchyard_core::Element, ns: &str) -> Option<String> {
    e.child("body", ns).map(|b| b.text())
}

#[tokio::test]
async fn xep0114_a_component_and_users_exchange_stanzas_through_the_server() {
    let server = server().await;
    let (mut push, proved) =
        component(server.running.component.unwrap(), "push.localhost", SECRET).await;
    assert_eq!(proved, Ok(()));
    let mut alice = Client::login(&server, "alice", "PLAIN", "desk").await;
    alice
        .send("<message to='bot@push.localhost' id='m1' type='chat'><body>ping</body></message>")
        .await;
    let (got, _) = push.until(|e| e.name() == "message").await;
    // In the component's namespace, from the user's full JID.
    assert!(got.is("message", ACCEPT), "{got:?}");
    assert_eq!(body(&got, ACCEPT).as_deref(), Some("ping"));
    assert_eq!(got.attr("from"), Some("alice@localhost/desk"));
    push.send("<message from='bot@push.localhost/r' to='alice@localhost/desk' type='chat'><body>pong</body></message>").await;
    let (got, _) = alice.until(|e| e.name() == "message").await;
    assert_eq!(body(&got, "jabber:client").as_deref(), Some("pong"));
    assert_eq!(got.attr("from"), Some("bot@push.localhost/r"));

    // An IQ to the component's domain is the component's to answer.
    alice
        .send("<iq to='push.localhost' type='get' id='i1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await;
    let (iq, _) = push.until(|e| e.name() == "iq").await;
    assert_eq!(iq.attr("id"), Some("i1"));
    push.send("<iq from='push.localhost' to='alice@localhost/desk' type='result' id='i1'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='component' type='generic'/></query></iq>").await;
    let (result, _) = alice.until(|e| e.attr("id") == Some("i1")).await;
    assert_eq!(result.attr("type"), Some("result"));
    assert_eq!(result.attr("from"), Some("push.localhost"));
}

#[tokio::test]
async fn xep0114_refusals_a_wrong_secret_an_unknown_domain_and_a_forged_from() {
    let server = server().await;
    let (_, proved) = component(
        server.running.component.unwrap(),
        "push.localhost",
        "not-the-secret",
    )
    .await;
    assert_eq!(proved, Err("not-authorized".into()));
    let mut unknown = Client::connect(server.running.component.unwrap()).await;
    unknown
        .send(&format!("<stream:stream xmlns='{ACCEPT}' xmlns:stream='http://etherx.jabber.org/streams' to='other.localhost'>"))
        .await;
    assert_eq!(
        unknown.stream_error().await.as_deref(),
        Some("host-unknown")
    );
    let (mut push, _) =
        component(server.running.component.unwrap(), "push.localhost", SECRET).await;
    push.send("<message from='alice@localhost' to='bob@localhost'><body>forged</body></message>")
        .await;
    assert_eq!(push.stream_error().await.as_deref(), Some("invalid-from"));
}

#[tokio::test]
async fn xep0114_stanzas_for_a_component_that_is_away_get_service_unavailable() {
    let server = server().await;
    let mut alice = Client::login(&server, "alice", "PLAIN", "desk").await;
    for (stanza, id) in [
        (
            "<message to='bot@push.localhost' id='away1' type='chat'><body>x</body></message>",
            "away1",
        ),
        (
            "<iq to='push.localhost' type='get' id='away2'><ping xmlns='urn:xmpp:ping'/></iq>",
            "away2",
        ),
    ] {
        alice.send(stanza).await;
        let (error, _) = alice.until(|e| e.attr("id") == Some(id)).await;
        assert_eq!(error.attr("type"), Some("error"), "{error:?}");
        let condition = error
            .child("error", "jabber:client")
            .and_then(|e| e.children().next());
        assert_eq!(condition.map(|c| c.name()), Some("service-unavailable"));
    }
    // Once it connects, it gets what comes next; when it leaves, errors again.
    let (push, _) = component(server.running.component.unwrap(), "push.localhost", SECRET).await;
    drop(push);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    alice
        .send("<message to='bot@push.localhost' id='away3' type='chat'><body>x</body></message>")
        .await;
    let (error, _) = alice.until(|e| e.attr("id") == Some("away3")).await;
    assert_eq!(error.attr("type"), Some("error"), "{error:?}");
}

#[tokio::test]
async fn xep0114_a_second_connection_for_the_domain_takes_over() {
    let server = server().await;
    let (mut first, _) =
        component(server.running.component.unwrap(), "push.localhost", SECRET).await;
    let (mut second, proved) =
        component(server.running.component.unwrap(), "push.localhost", SECRET).await;
    assert_eq!(proved, Ok(()));
    assert_eq!(first.stream_error().await.as_deref(), Some("conflict"));
    let mut alice = Client::login(&server, "alice", "PLAIN", "desk").await;
    alice
        .send("<message to='bot@push.localhost' id='m2' type='chat'><body>to the new one</body></message>")
        .await;
    let (got, _) = second.until(|e| e.name() == "message").await;
    assert_eq!(body(&got, ACCEPT).as_deref(), Some("to the new one"));
}
