//! RFC 6121 §8.5 delivery rules, XEP-0160 offline storage, RFC 6120 §8.2.3 IQ routing.

mod support;
use std::sync::Arc;
use support::*;
use switchyard_core::ns;
use switchyard_storage::OfflineStore;

fn chat(to: &str, body: &str) -> String {
    format!("<message to='{to}' type='chat' id='m'><body>{body}</body></message>")
}

/// Binds a resource and makes it available with `priority`.
async fn available(w: &World, full: &str, priority: i8) -> Client {
    let presence = format!("<presence><priority>{priority}</priority></presence>");
    w.login_with(full, &presence).await
}

#[tokio::test]
async fn rfc6121_8_5_1_no_such_account() {
    let w = World::new().await;
    w.accounts(&["romeo"]).await;
    let r = w.login("romeo@localhost/orchard").await;
    // By default silently ignored, as a message stored for an offline account is.
    w.take(&r);
    for kind in ["chat", "normal"] {
        for to in ["nobody@localhost", "nobody@localhost/x"] {
            let msg = format!("<message to='{to}' type='{kind}'><body>x</body></message>");
            w.send(&r, &msg).await;
            assert!(w.take(&r).is_empty(), "{kind} to {to}");
        }
    }
    let msg = "<message to='nobody@localhost' type='groupchat'><body>x</body></message>";
    let reply = w.ask(&r, msg).await;
    assert_eq!(condition(&reply).as_deref(), Some("service-unavailable"));
    // Configured to answer: service-unavailable.
    let told = World::with(|c| {
        c.unknown_account_messages = switchyard_router::UnknownAccountMessages::ServiceUnavailable
    })
    .await;
    told.accounts(&["romeo"]).await;
    let tr = told.login("romeo@localhost/orchard").await;
    for kind in ["chat", "normal", "groupchat"] {
        let msg = format!("<message to='nobody@localhost' type='{kind}'><body>x</body></message>");
        let reply = told.ask(&tr, &msg).await;
        assert_eq!(
            condition(&reply).as_deref(),
            Some("service-unavailable"),
            "{kind}"
        );
    }
    w.take(&r);
    w.send(
        &r,
        "<message to='nobody@localhost' type='headline'><body>x</body></message>",
    )
    .await;
    w.send(&r, "<message to='nobody@localhost' type='error'/>")
        .await;
    assert!(
        w.take(&r).is_empty(),
        "headline and error are never answered"
    );
    let reply = w
        .ask(
            &r,
            "<iq type='get' id='q' to='nobody@localhost/x'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
    assert_eq!(condition(&reply).as_deref(), Some("service-unavailable"));
    let reply = w.ask(&r, &chat("juliet@elsewhere.example", "x")).await;
    assert_eq!(
        condition(&reply).as_deref(),
        Some("remote-server-not-found")
    );
}

#[tokio::test]
async fn rfc6121_8_5_2_1_1_bare_jid_goes_to_highest_priority_never_negative() {
    let w = World::new().await;
    w.accounts(&["romeo", "juliet"]).await;
    let r = w.login("romeo@localhost/orchard").await;
    let high = available(&w, "juliet@localhost/high", 5).await;
    let low = available(&w, "juliet@localhost/low", 1).await;
    let neg = available(&w, "juliet@localhost/neg", -1).await;
    for c in [&high, &low, &neg] {
        w.take(c);
    }
    w.send(&r, &chat("juliet@localhost", "to the bare JID"))
        .await;
    assert_eq!(of(&w.take(&high), "message", Some("chat")).len(), 1);
    assert!(w.take(&low).is_empty());
    assert!(
        w.take(&neg).is_empty(),
        "§8.5.2.1.1: never a negative priority"
    );
    // Headlines go to every non-negative resource.
    w.send(
        &r,
        "<message to='juliet@localhost' type='headline'><body>news</body></message>",
    )
    .await;
    assert_eq!(w.take(&high).len(), 1);
    assert_eq!(w.take(&low).len(), 1);
    assert!(w.take(&neg).is_empty());
    // §8.5.3.1: a full JID reaches its resource whatever the priority.
    w.send(&r, &chat("juliet@localhost/neg", "direct")).await;
    assert_eq!(w.take(&neg).len(), 1);
    // §8.5.2.1.1: groupchat to a bare JID is an error.
    let reply = w
        .ask(
            &r,
            "<message to='juliet@localhost' type='groupchat'><body>x</body></message>",
        )
        .await;
    assert_eq!(condition(&reply).as_deref(), Some("service-unavailable"));
}

#[tokio::test]
async fn rfc6121_8_5_2_1_1_all_non_negative_when_configured() {
    let w =
        World::with(|c| c.bare_delivery = switchyard_router::BareDelivery::AllNonNegative).await;
    w.accounts(&["romeo", "juliet"]).await;
    let r = w.login("romeo@localhost/orchard").await;
    let a = available(&w, "juliet@localhost/a", 5).await;
    let b = available(&w, "juliet@localhost/b", 0).await;
    w.take(&a);
    w.take(&b);
    w.send(&r, &chat("juliet@localhost", "both")).await;
    assert_eq!(w.take(&a).len(), 1);
    assert_eq!(w.take(&b).len(), 1);
}

#[tokio::test]
async fn rfc6121_8_5_3_2_unknown_resource() {
    let w = World::new().await;
    w.accounts(&["romeo", "juliet"]).await;
    let r = w.login("romeo@localhost/orchard").await;
    let j = w.login("juliet@localhost/balcony").await;
    w.take(&j);
    // chat: as if to the bare JID.
    w.send(&r, &chat("juliet@localhost/gone", "hello")).await;
    let got = w.take(&j);
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].attr("to"),
        Some("juliet@localhost/gone"),
        "§8.5.2: `to` not rewritten"
    );
    // normal: as bare too by default (an error would tell the sender the resource is not
    // connected); with service-unavailable configured, an error.
    w.take(&r);
    w.send(
        &r,
        "<message to='juliet@localhost/gone'><body>x</body></message>",
    )
    .await;
    assert!(w.take(&r).is_empty());
    assert_eq!(of(&w.take(&j), "message", None).len(), 1);
    let told = World::with(|c| {
        c.unknown_account_messages = switchyard_router::UnknownAccountMessages::ServiceUnavailable
    })
    .await;
    told.accounts(&["romeo", "juliet"]).await;
    let tr = told.login("romeo@localhost/orchard").await;
    told.login("juliet@localhost/balcony").await;
    let reply = told
        .ask(
            &tr,
            "<message to='juliet@localhost/gone'><body>x</body></message>",
        )
        .await;
    assert_eq!(condition(&reply).as_deref(), Some("service-unavailable"));
    // IQ: service-unavailable; IQ responses are dropped.
    let iq = "<iq type='get' id='i' to='juliet@localhost/gone'><query xmlns='urn:x'/></iq>";
    assert_eq!(
        condition(&w.ask(&r, iq).await).as_deref(),
        Some("service-unavailable")
    );
    w.send(&r, "<iq type='result' id='i' to='juliet@localhost/gone'/>")
        .await;
    assert!(w.take(&r).is_empty());
}

#[tokio::test]
async fn rfc6121_8_5_3_1_iq_to_a_full_jid_needs_shared_presence() {
    let w = World::new().await;
    w.accounts(&["romeo", "juliet"]).await;
    let r = w.login("romeo@localhost/orchard").await;
    let j = w.login("juliet@localhost/balcony").await;
    w.take(&j);
    let iq = "<iq type='get' id='i' to='juliet@localhost/balcony'><query xmlns='urn:x'/></iq>";
    assert_eq!(
        condition(&w.ask(&r, iq).await).as_deref(),
        Some("service-unavailable")
    );
    w.send(&r, "<presence type='subscribe' to='juliet@localhost'/>")
        .await;
    w.send(&j, "<presence type='subscribed' to='romeo@localhost'/>")
        .await;
    w.take(&j);
    w.send(&r, iq).await;
    assert_eq!(of(&w.take(&j), "iq", Some("get")).len(), 1);
}

#[tokio::test]
async fn xep0160_offline_messages_stored_stamped_and_delivered_at_next_presence() {
    let w = World::new().await;
    w.accounts(&["romeo", "juliet"]).await;
    let r = w.login("romeo@localhost/orchard").await;
    w.take(&r);
    w.send(&r, &chat("juliet@localhost", "one")).await;
    w.send(
        &r,
        "<message to='juliet@localhost'><body>two</body></message>",
    )
    .await;
    w.send(&r, "<message to='juliet@localhost' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>")
        .await;
    w.send(
        &r,
        "<message to='juliet@localhost' type='headline'><body>h</body></message>",
    )
    .await;
    w.send(&r, "<message to='juliet@localhost' type='chat'><body>s</body><no-store xmlns='urn:xmpp:hints'/></message>")
        .await;
    assert!(w.take(&r).is_empty(), "stored, not bounced");
    // Negative priority: still held (XEP-0160 §2).
    let neg = available(&w, "juliet@localhost/neg", -1).await;
    assert!(of(&w.take(&neg), "message", Some("chat")).is_empty());
    let j = w.login("juliet@localhost/balcony").await;
    let got = w.take(&j);
    let bodies: Vec<String> = got
        .iter()
        .filter(|e| e.name() == "message")
        .map(|e| e.child("body", ns::CLIENT).unwrap().text())
        .collect();
    assert_eq!(
        bodies,
        ["one", "two"],
        "in order; chat states, headlines, no-store dropped"
    );
    let delay = got
        .iter()
        .find(|e| e.name() == "message")
        .unwrap()
        .child("delay", "urn:xmpp:delay")
        .expect("XEP-0203 stamp");
    assert_eq!(delay.attr("from"), Some("localhost"));
    assert!(delay.attr("stamp").unwrap().ends_with('Z'));
    // Delivered once.
    let j2 = w.login("juliet@localhost/study").await;
    assert!(of(&w.take(&j2), "message", Some("chat")).is_empty());
}

#[tokio::test]
async fn xep0160_full_quota_bounces_instead_of_losing() {
    let w = World::with(|c| c.offline_quota = 2).await;
    w.accounts(&["romeo", "juliet"]).await;
    let r = w.login("romeo@localhost/orchard").await;
    w.take(&r);
    w.send(&r, &chat("juliet@localhost", "1")).await;
    w.send(&r, &chat("juliet@localhost", "2")).await;
    assert!(w.take(&r).is_empty());
    let reply = w.ask(&r, &chat("juliet@localhost", "3")).await;
    assert_eq!(condition(&reply).as_deref(), Some("service-unavailable"));
    assert_eq!(
        reply.child("body", ns::CLIENT).unwrap().text(),
        "3",
        "the error carries the original"
    );
}

#[tokio::test]
async fn rfc6120_8_3_1_errors_are_never_answered_with_errors() {
    let w = World::new().await;
    w.accounts(&["romeo"]).await;
    let r = w.login("romeo@localhost/orchard").await;
    w.take(&r);
    w.send(&r, "<message to='nobody@localhost/x' type='error'/>")
        .await;
    w.send(&r, "<iq type='error' id='e' to='nobody@localhost'/>")
        .await;
    w.send(&r, "<presence type='error' to='nobody@localhost'/>")
        .await;
    assert!(w.take(&r).is_empty());
}

/// A session can end between the registry lookup and the delivery (or its record can
/// outlive it after failed unbinds): the edge answers "no such session". RFC 6121
/// §8.5.3.2 then applies as for a resource that is not connected, and the stale record
/// is removed so it swallows nothing later.
#[tokio::test]
async fn rfc6121_8_5_3_2_a_session_gone_at_delivery_is_an_absent_resource() {
    let (w, j, r) = World::romeo_and_juliet().await;
    let other = w.login("juliet@localhost/hall").await;
    w.take(&other);
    w.take(&r);
    w.edge_forgets(&j);
    // chat to the gone full JID: as if to the bare JID, so the other resource gets it.
    w.send(&r, &chat("juliet@localhost/balcony", "one")).await;
    let got = w.take(&other);
    let messages = of(&got, "message", Some("chat"));
    assert_eq!(messages.len(), 1, "{got:#?}");
    assert_eq!(messages[0].child("body", ns::CLIENT).unwrap().text(), "one");
    // The stale record is gone, and its end was broadcast (juliet's other resource
    // hears her balcony go unavailable).
    let sessions = w
        .router
        .sessions_of(&jid("juliet@localhost"))
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert!(
        of(&got, "presence", Some("unavailable"))
            .iter()
            .any(|p| p.attr("from") == Some("juliet@localhost/balcony")),
        "{got:#?}"
    );
    // normal and chat with every resource gone: as to the bare JID, so stored, not lost.
    w.edge_forgets(&other);
    w.take(&r);
    w.send(
        &r,
        "<message to='juliet@localhost/hall' type='normal' id='n'><body>two</body></message>",
    )
    .await;
    w.send(&r, &chat("juliet@localhost/balcony", "three")).await;
    assert!(w.take(&r).is_empty());
    let held = w.store.take(&jid("juliet@localhost")).await.unwrap();
    assert_eq!(held.len(), 2, "held offline: {held:?}");
    assert!(w
        .router
        .sessions_of(&jid("juliet@localhost"))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn rfc6121_8_5_2_1_1_a_gone_highest_priority_resource_yields_to_the_next() {
    let w = World::new().await;
    w.accounts(&["romeo", "juliet"]).await;
    let r = w.login("romeo@localhost/orchard").await;
    let high = available(&w, "juliet@localhost/high", 5).await;
    let low = available(&w, "juliet@localhost/low", 1).await;
    w.take(&low);
    w.edge_forgets(&high);
    w.send(&r, &chat("juliet@localhost", "to the bare JID"))
        .await;
    let got = w.take(&low);
    assert_eq!(of(&got, "message", Some("chat")).len(), 1, "{got:#?}");
}

/// XEP-0160 with a login racing the message: the router looked the recipient up just
/// before her initial presence (so her flush ran before the message was stored). The
/// message still reaches that session, without waiting for her next login.
#[tokio::test]
async fn xep0160_a_message_stored_while_its_recipient_logs_in_reaches_that_session() {
    let registry = Arc::new(stale::StaleOnce::default());
    let w = World::with_registry(registry.clone(), |_| {}).await;
    w.accounts(&["romeo", "juliet"]).await;
    let r = w.login("romeo@localhost/orchard").await;
    let j = w.login("juliet@localhost/balcony").await;
    w.take(&j);
    *registry.stale.lock().unwrap() = Some(jid("juliet@localhost"));
    w.send(&r, &chat("juliet@localhost", "raced")).await;
    let got = w.take(&j);
    let messages = of(&got, "message", Some("chat"));
    assert_eq!(messages.len(), 1, "delivered in this session: {got:#?}");
    assert!(
        messages[0].child("delay", "urn:xmpp:delay").is_some(),
        "through storage"
    );
    let held = w.store.take(&jid("juliet@localhost")).await.unwrap();
    assert!(held.is_empty(), "nothing left behind: {held:?}");
}
