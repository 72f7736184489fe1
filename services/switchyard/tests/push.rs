//! XEP-0357 push notifications over real sockets, with an app server that is an XEP-0114
//! component of our own test code: enable and disable (§5), a notification when a message
//! is stored for an account with no session (§6: summary without the body unless
//! configured, publish options forwarded, one per interval), and a registration disabled
//! when the app server answers with an error (§7).

mod support;

use support::component::{component, ACCEPT};
use support::{Client, Server};
use switchyard::config::ComponentEntry;
use switchyard_core::Element;

const SECRET: &str = "a-component-secret";
const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const DATA: &str = "jabber:x:data";

async fn server(adjust: impl FnOnce(&mut switchyard::config::Config)) -> Server {
    Server::start_with(|c| {
        c.listen.component = "127.0.0.1:0".into();
        c.components = vec![ComponentEntry {
            domain: "push.localhost".into(),
            secret: SECRET.into(),
        }];
        adjust(c);
    })
    .await
}

/// Alice enables push to `node` on push.localhost with a publish option, then logs out.
async fn enable_and_leave(server: &Server, node: &str) {
    let mut alice = Client::login(server, "alice", "PLAIN", "phone").await;
    alice.send(&format!("<iq type='set' id='en'><enable xmlns='urn:xmpp:push:0' jid='push.localhost' node='{node}'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>device-secret</value></field></x></enable></iq>")).await;
    let (result, _) = alice.until(|e| e.attr("id") == Some("en")).await;
    assert_eq!(result.attr("type"), Some("result"), "{result:?}");
    alice.send("</stream:stream>").await;
    assert_eq!(alice.stream_error().await, None);
}

/// The field values of a data form.
fn field(form: &Element, var: &str) -> Option<String> {
    form.children()
        .find(|f| f.attr("var") == Some(var))
        .and_then(|f| f.child("value", DATA))
        .map(Element::text)
}

/// The next notification the app server gets: its publish node and summary form.
async fn notification(app: &mut Client) -> (Element, String, Element) {
    let (iq, _) = app.until(|e| e.name() == "iq").await;
    assert!(iq.is("iq", ACCEPT));
    assert_eq!(iq.attr("type"), Some("set"));
    assert_eq!(iq.attr("from"), Some("alice@localhost"));
    let pubsub = iq.child("pubsub", PUBSUB).expect("pubsub");
    let publish = pubsub.child("publish", PUBSUB).expect("publish");
    let node = publish.attr("node").unwrap_or_default().to_owned();
    let form = publish
        .child("item", PUBSUB)
        .and_then(|i| i.child("notification", "urn:xmpp:push:0"))
        .and_then(|n| n.child("x", DATA))
        .expect("a summary form")
        .clone();
    (iq.clone(), node, form)
}

/// Bob sends a message straight to the app server: the next thing it gets, if no
/// notification came first (Bob's stanzas are routed in order).
async fn barrier(bob: &mut Client, app: &mut Client) {
    bob.send("<message to='bot@push.localhost' id='barrier'><body>b</body></message>")
        .await;
    let next = app.element().await;
    assert!(
        next.is("message", ACCEPT) && next.attr("id") == Some("barrier"),
        "no notification expected, got {next:?}"
    );
}

#[tokio::test]
async fn xep0357_a_message_for_an_account_with_no_session_notifies_its_device_once() {
    // An interval no slow run outlasts: the second message must fall inside it.
    let server = server(|c| c.push.min_interval_secs = 3600).await;
    let addr = server.running.component.unwrap();
    let (mut app, _) = component(addr, "push.localhost", SECRET).await;
    enable_and_leave(&server, "dev1").await;
    let mut bob = Client::login(&server, "bob", "PLAIN", "desk").await;
    bob.send("<message to='alice@localhost' type='chat'><body>secret body</body></message>")
        .await;
    let (iq, node, form) = notification(&mut app).await;
    assert_eq!(node, "dev1");
    assert_eq!(
        field(&form, "FORM_TYPE").as_deref(),
        Some("urn:xmpp:push:summary")
    );
    assert_eq!(field(&form, "message-count").as_deref(), Some("1"));
    assert_eq!(
        field(&form, "last-message-sender").as_deref(),
        Some("bob@localhost")
    );
    assert_eq!(
        field(&form, "last-message-body"),
        None,
        "no body unless configured"
    );
    let options = iq
        .child("pubsub", PUBSUB)
        .and_then(|p| p.child("publish-options", PUBSUB))
        .and_then(|o| o.child("x", DATA))
        .expect("publish options forwarded");
    assert_eq!(field(options, "secret").as_deref(), Some("device-secret"));
    let id = iq.attr("id").unwrap();
    app.send(&format!(
        "<iq from='push.localhost' to='alice@localhost' type='result' id='{id}'/>"
    ))
    .await;
    // A second message within the interval does not wake the device again.
    bob.send("<message to='alice@localhost' type='chat'><body>more</body></message>")
        .await;
    barrier(&mut bob, &mut app).await;
}

#[tokio::test]
async fn xep0357_the_body_is_sent_only_when_configured() {
    let server = server(|c| c.push.include_body = true).await;
    let (mut app, _) = component(server.running.component.unwrap(), "push.localhost", SECRET).await;
    enable_and_leave(&server, "dev1").await;
    let mut bob = Client::login(&server, "bob", "PLAIN", "desk").await;
    bob.send("<message to='alice@localhost' type='chat'><body>hello phone</body></message>")
        .await;
    let (_, _, form) = notification(&mut app).await;
    assert_eq!(
        field(&form, "last-message-body").as_deref(),
        Some("hello phone")
    );
}

#[tokio::test]
async fn xep0357_7_an_app_server_error_disables_the_registration_and_disable_does_too() {
    let server = server(|c| c.push.min_interval_secs = 0).await;
    let (mut app, _) = component(server.running.component.unwrap(), "push.localhost", SECRET).await;
    enable_and_leave(&server, "gone").await;
    let mut bob = Client::login(&server, "bob", "PLAIN", "desk").await;
    bob.send("<message to='alice@localhost' type='chat'><body>1</body></message>")
        .await;
    let (iq, _, _) = notification(&mut app).await;
    let id = iq.attr("id").unwrap();
    app.send(&format!("<iq from='push.localhost' to='alice@localhost' type='error' id='{id}'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")).await;
    // The error is routed on the component's own lane: once its ping (same `from`) is
    // answered, the registration is gone before Bob's next message is routed.
    app.send("<iq from='push.localhost' to='localhost' type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    app.until(|e| e.attr("id") == Some("sync")).await;
    bob.send("<message to='alice@localhost' type='chat'><body>2</body></message>")
        .await;
    barrier(&mut bob, &mut app).await;

    // §5: disable removes it as well.
    enable_and_leave(&server, "dev2").await;
    let mut alice = Client::login(&server, "alice", "PLAIN", "phone").await;
    alice
        .send("<iq type='set' id='dis'><disable xmlns='urn:xmpp:push:0' jid='push.localhost' node='dev2'/></iq>")
        .await;
    let (result, _) = alice.until(|e| e.attr("id") == Some("dis")).await;
    assert_eq!(result.attr("type"), Some("result"));
    alice.send("</stream:stream>").await;
    let _ = alice.stream_error().await;
    bob.send("<message to='alice@localhost' type='chat'><body>3</body></message>")
        .await;
    barrier(&mut bob, &mut app).await;
}

#[tokio::test]
async fn xep0357_5_push_is_advertised_for_the_account_and_only_its_owner_enables_it() {
    let server = server(|_| {}).await;
    let mut alice = Client::login(&server, "alice", "PLAIN", "phone").await;
    alice
        .send("<iq type='get' id='di' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await;
    let (info, _) = alice.until(|e| e.attr("id") == Some("di")).await;
    let query = info
        .child("query", "http://jabber.org/protocol/disco#info")
        .unwrap();
    assert!(
        query
            .children()
            .any(|f| f.attr("var") == Some("urn:xmpp:push:0")),
        "{info:?}"
    );
    alice
        .send("<iq type='set' id='other' to='bob@localhost'><enable xmlns='urn:xmpp:push:0' jid='push.localhost' node='n'/></iq>")
        .await;
    let (refused, _) = alice.until(|e| e.attr("id") == Some("other")).await;
    assert_eq!(refused.attr("type"), Some("error"));
    alice
        .send("<iq type='set' id='nonode'><enable xmlns='urn:xmpp:push:0' jid='push.localhost'/></iq>")
        .await;
    let (bad, _) = alice.until(|e| e.attr("id") == Some("nonode")).await;
    let condition = bad
        .child("error", "jabber:client")
        .and_then(|e| e.children().next());
    assert_eq!(condition.map(|c| c.name()), Some("bad-request"));
}

#[tokio::test]
async fn xep0357_a_message_for_a_detached_session_wakes_the_device() {
    let server = server(|_| {}).await;
    let (mut app, _) = component(server.running.component.unwrap(), "push.localhost", SECRET).await;
    let mut alice = Client::login(&server, "alice", "PLAIN", "phone").await;
    alice.send("<iq type='set' id='en'><enable xmlns='urn:xmpp:push:0' jid='push.localhost' node='ios'/></iq><enable xmlns='urn:xmpp:sm:3' resume='true'/><presence/>").await;
    // The edge answers <enable/> itself; the push IQ is routed: either may come first.
    alice
        .until_each(&[&|e| e.name() == "enabled", &|e| e.attr("id") == Some("en")])
        .await;
    // The phone goes to sleep: its connection is gone, its session waits to be resumed.
    drop(alice);
    // Detached once the edge has read the end of the stream (bounded: 5 s).
    for _ in 0..50 {
        if switchyard_telemetry::EDGE_SM_DETACHED.get() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        switchyard_telemetry::EDGE_SM_DETACHED.get() > 0,
        "the session detached"
    );
    let mut bob = Client::login(&server, "bob", "PLAIN", "desk").await;
    bob.send("<message to='alice@localhost/phone' type='chat'><body>wake up</body></message>")
        .await;
    let (_, node, form) = notification(&mut app).await;
    assert_eq!(node, "ios");
    assert_eq!(
        field(&form, "last-message-sender").as_deref(),
        Some("bob@localhost")
    );
}

#[tokio::test]
async fn xep0357_a_chat_state_does_not_wake_the_device() {
    let server = server(|c| c.push.min_interval_secs = 0).await;
    let (mut app, _) = component(server.running.component.unwrap(), "push.localhost", SECRET).await;
    enable_and_leave(&server, "dev1").await;
    let mut bob = Client::login(&server, "bob", "PLAIN", "desk").await;
    bob.send("<message to='alice@localhost' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
        .await;
    barrier(&mut bob, &mut app).await;
}

#[tokio::test]
async fn xep0357_an_account_keeps_sixteen_registrations_and_the_seventeenth_is_refused() {
    let server = server(|_| {}).await;
    let mut alice = Client::login(&server, "alice", "PLAIN", "phone").await;
    let enable = |n: usize| {
        format!("<iq type='set' id='e{n}'><enable xmlns='urn:xmpp:push:0' jid='push.localhost' node='n{n}'/></iq>")
    };
    for n in 1..=16 {
        alice.send(&enable(n)).await;
        let (r, _) = alice
            .until(|e| e.attr("id") == Some(&format!("e{n}")))
            .await;
        assert_eq!(r.attr("type"), Some("result"), "registration {n}: {r:?}");
    }
    alice.send(&enable(17)).await;
    let (r, _) = alice.until(|e| e.attr("id") == Some("e17")).await;
    let condition = r
        .child("error", "jabber:client")
        .and_then(|e| e.children().next());
    assert_eq!(condition.map(|c| c.name()), Some("resource-constraint"));
    // Enabling one already there again replaces it, within the bound.
    alice.send(&enable(16)).await;
    let (r, _) = alice.until(|e| e.attr("id") == Some("e16")).await;
    assert_eq!(r.attr("type"), Some("result"));
}
