//! RFC 6121 and the everyday XEPs over real sockets, in the all-in-one mode.

mod support;
use support::*;
use switchyard_core::xml::Element;

fn is<'a>(name: &'a str, kind: Option<&'a str>) -> impl Fn(&Element) -> bool + 'a {
    move |e| e.name() == name && e.attr("type") == kind
}

fn body(e: &Element) -> String {
    e.child("body", "jabber:client")
        .map(|b| b.text())
        .unwrap_or_default()
}

#[tokio::test]
async fn bound_stream_features_advertise_rosterver_preapproval_and_csi() {
    let server = Server::start().await;
    let mut c = Client::connect(server.c2s()).await;
    c.open().await;
    c.starttls(server.cert_der()).await;
    c.open().await;
    assert_eq!(
        c.auth("SCRAM-SHA-256", "alice", "secret").await.name(),
        "success"
    );
    let features = c.open().await;
    for (name, ns) in [
        ("ver", "urn:xmpp:features:rosterver"),
        ("sub", "urn:xmpp:features:pre-approval"),
        ("csi", "urn:xmpp:csi:0"),
    ] {
        assert!(
            features.child(name, ns).is_some(),
            "{name} missing: {features:?}"
        );
    }
}

#[tokio::test]
async fn subscription_presence_and_offline_delivery_over_tcp() {
    let server = Server::start().await;
    let mut alice = Client::login(&server, "alice", "SCRAM-SHA-256-PLUS", "desk").await;
    alice
        .send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    alice.until(is("iq", Some("result"))).await;
    alice.send("<presence/>").await;
    alice.until(is("presence", None)).await; // §4.2.2: own presence echoed

    // Bob is offline: the request and a message wait for him.
    alice
        .send("<presence type='subscribe' to='bob@localhost'/>")
        .await;
    alice.send("<message to='bob@localhost' type='chat' id='m1'><body>while you were out</body></message>")
        .await;
    // One sender's stanzas are routed in order: once this ping is answered, both were
    // stored before Bob logs in, whatever the machine's load. Without it a late message
    // races Bob's initial presence, and its own flush may deliver it after the pending
    // request (allowed, but not what this test checks).
    alice
        .send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    alice.until(is("iq", Some("result"))).await;

    let mut bob = Client::login(&server, "bob", "SCRAM-SHA-256", "phone").await;
    bob.send("<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    bob.until(is("iq", Some("result"))).await;
    bob.send("<presence/>").await;
    let (offline, _) = bob.until(is("message", Some("chat"))).await;
    assert_eq!(body(&offline), "while you were out");
    assert!(
        offline.child("delay", "urn:xmpp:delay").is_some(),
        "XEP-0203 stamp"
    );
    let (request, _) = bob.until(is("presence", Some("subscribe"))).await;
    assert_eq!(request.attr("from"), Some("alice@localhost"));

    bob.send("<presence type='subscribed' to='alice@localhost'/>")
        .await;
    let pushed = |e: &Element| {
        let item = e
            .child("query", "jabber:iq:roster")
            .and_then(|q| q.children().next());
        item.is_some_and(|i| i.attr("subscription") == Some("to") && i.attr("ask").is_none())
    };
    alice.until(pushed).await;
    let (presence, _) = alice.until(is("presence", None)).await;
    assert_eq!(presence.attr("from"), Some("bob@localhost/phone"));

    // Bob goes away abruptly: Alice sees him go.
    drop(bob);
    let (gone, _) = alice.until(is("presence", Some("unavailable"))).await;
    assert_eq!(gone.attr("from"), Some("bob@localhost/phone"));
}

#[tokio::test]
async fn xep0352_inactive_client_gets_coalesced_presence_before_the_next_message() {
    let server = Server::start().await;
    let mut alice = Client::login(&server, "alice", "SCRAM-SHA-256", "desk").await;
    let mut bob = Client::login(&server, "bob", "SCRAM-SHA-256", "phone").await;
    for c in [&mut alice, &mut bob] {
        c.send("<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq><presence/>")
            .await;
        c.until(is("presence", None)).await;
    }
    bob.send("<presence type='subscribe' to='alice@localhost'/>")
        .await;
    alice.until(is("presence", Some("subscribe"))).await;
    alice
        .send("<presence type='subscribed' to='bob@localhost'/>")
        .await;
    bob.until(is("presence", None)).await; // Alice's presence after approval

    bob.send("<inactive xmlns='urn:xmpp:csi:0'/>").await;
    for show in ["away", "xa", "dnd"] {
        alice
            .send(&format!("<presence><show>{show}</show></presence>"))
            .await;
    }
    alice
        .send("<message to='bob@localhost/phone' type='chat'><body>wake up</body></message>")
        .await;
    let (message, before) = bob.until(is("message", Some("chat"))).await;
    assert_eq!(body(&message), "wake up");
    let shows: Vec<String> = before
        .iter()
        .filter(|e| e.name() == "presence")
        .map(|e| {
            e.child("show", "jabber:client")
                .map(|s| s.text())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        shows,
        ["dnd"],
        "only the latest presence, flushed before the message"
    );
}
