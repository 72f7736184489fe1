//! RFC 6121 §3 subscription flows and §4 presence, end to end through the router.

mod support;
use support::*;
use switchyard_core::ns;

async fn subscribe(w: &World, a: &Client, b: &Client) {
    let (to_b, to_a) = (b.jid.bare(), a.jid.bare());
    w.send(a, &format!("<presence type='subscribe' to='{to_b}'/>"))
        .await;
    w.send(b, &format!("<presence type='subscribed' to='{to_a}'/>"))
        .await;
}

#[tokio::test]
async fn rfc6121_3_1_handshake_with_offline_contact_pending_request_redelivered() {
    let w = World::new().await;
    w.accounts(&["romeo", "juliet"]).await;
    let r = w.login("romeo@localhost/orchard").await;
    w.take(&r);
    // §3.1.2: the request leaves stamped with the bare JID, the item is pushed with ask.
    w.send(&r, "<presence type='subscribe' to='juliet@localhost/balcony' id='s1'><status>hi</status></presence>")
        .await;
    let got = w.take(&r);
    let item = pushes(&got)[0].clone();
    assert_eq!(item.attr("jid"), Some("juliet@localhost"));
    assert_eq!(item.attr("ask"), Some("subscribe"));
    assert_eq!(item.attr("subscription"), Some("none"));

    // §3.1.3: Juliet is offline; the request is stored and delivered at each login,
    // once per requester, until answered.
    w.send(&r, "<presence type='subscribe' to='juliet@localhost'/>")
        .await;
    for _ in 0..2 {
        let j = w.login("juliet@localhost/balcony").await;
        let got = w.take(&j);
        let requests = of(&got, "presence", Some("subscribe"));
        assert_eq!(requests.len(), 1, "{got:#?}");
        assert_eq!(requests[0].attr("from"), Some("romeo@localhost"));
        assert_eq!(
            requests[0].child("status", ns::CLIENT).unwrap().text(),
            "hi"
        );
        assert!(
            pushes(&got).is_empty(),
            "§3.1.3: a request is not a roster item"
        );
        w.drop_connection(&j).await;
    }

    // §3.1.5: approval pushes `from`, routes `subscribed`, then sends presence.
    let j = w.login("juliet@localhost/balcony").await;
    w.take(&j);
    w.take(&r);
    w.send(&j, "<presence type='subscribed' to='romeo@localhost'/>")
        .await;
    let at_j = w.take(&j);
    assert_eq!(pushes(&at_j)[0].attr("subscription"), Some("from"));
    let at_r = w.take(&r);
    let kinds: Vec<String> = at_r
        .iter()
        .map(|e| format!("{}:{}", e.name(), e.attr("type").unwrap_or("available")))
        .collect();
    let subscribed = kinds
        .iter()
        .position(|k| k == "presence:subscribed")
        .expect("subscribed");
    let push = kinds.iter().position(|k| k == "iq:set").expect("push");
    let presence = kinds
        .iter()
        .position(|k| k == "presence:available")
        .expect("presence");
    assert!(
        subscribed < push,
        "§3.1.6: delivered before the push: {kinds:?}"
    );
    assert!(push < presence || subscribed < presence, "{kinds:?}");
    assert_eq!(pushes(&at_r)[0].attr("subscription"), Some("to"));
    assert_eq!(pushes(&at_r)[0].attr("ask"), None);
    let p = of(&at_r, "presence", None);
    assert_eq!(p[0].attr("from"), Some("juliet@localhost/balcony"));

    // Answered: no more redelivery.
    w.drop_connection(&j).await;
    let j = w.login("juliet@localhost/balcony").await;
    assert!(of(&w.take(&j), "presence", Some("subscribe")).is_empty());
}

/// By default a request to an account that does not exist looks exactly like one to an
/// existing contact who is offline: one roster push showing it pending, no error (RFC
/// 6121 §8.5.1: presence to a missing account may be silently ignored).
#[tokio::test]
async fn rfc6121_8_5_1_request_to_a_missing_account_tells_nothing() {
    let w = World::new().await;
    w.accounts(&["romeo", "juliet"]).await;
    let r = w.login("romeo@localhost/orchard").await;
    w.take(&r);
    let mut answers = Vec::new();
    for to in ["juliet@localhost", "nobody@localhost"] {
        w.send(&r, &format!("<presence type='subscribe' to='{to}'/>"))
            .await;
        let got = w.take(&r);
        assert_eq!(got.len(), 1, "{got:#?}");
        let item = got[0]
            .child("query", "jabber:iq:roster")
            .and_then(|q| q.child("item", "jabber:iq:roster"))
            .expect("a roster push");
        assert_eq!(item.attr("jid"), Some(to));
        answers.push((
            item.attr("ask").map(str::to_owned),
            item.attr("subscription").map(str::to_owned),
        ));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0.as_deref(), Some("subscribe"));
}

#[tokio::test]
async fn rfc6121_3_1_2_request_to_a_missing_account_is_refused_when_accounts_are_not_hidden() {
    let w = World::with(|c| {
        c.unknown_account_messages = switchyard_router::UnknownAccountMessages::ServiceUnavailable
    })
    .await;
    w.accounts(&["romeo"]).await;
    let r = w.login("romeo@localhost/orchard").await;
    let reply = w
        .ask(&r, "<presence type='subscribe' to='nobody@localhost'/>")
        .await;
    assert_eq!(condition(&reply).as_deref(), Some("item-not-found"));
    let reply = w
        .ask(&r, "<presence type='subscribe' to='a@elsewhere.example'/>")
        .await;
    assert_eq!(
        condition(&reply).as_deref(),
        Some("remote-server-not-found")
    );
}

#[tokio::test]
async fn rfc6121_3_4_preapproval_answers_the_later_request() {
    let (w, j, r) = World::romeo_and_juliet().await;
    w.take(&r);
    w.send(&j, "<presence type='subscribed' to='romeo@localhost'/>")
        .await;
    let at_j = w.take(&j);
    assert_eq!(pushes(&at_j)[0].attr("approved"), Some("true"));
    assert!(w.take(&r).is_empty(), "§3.4: a pre-approval is not routed");

    w.send(&r, "<presence type='subscribe' to='juliet@localhost'/>")
        .await;
    let at_j = w.take(&j);
    assert!(
        of(&at_j, "presence", Some("subscribe")).is_empty(),
        "§3.4.2: not delivered"
    );
    assert_eq!(pushes(&at_j)[0].attr("subscription"), Some("from"));
    let at_r = w.take(&r);
    assert_eq!(of(&at_r, "presence", Some("subscribed")).len(), 1);
    assert_eq!(
        pushes(&at_r).last().unwrap().attr("subscription"),
        Some("to")
    );
    assert_eq!(
        of(&at_r, "presence", None).len(),
        1,
        "Juliet's presence follows"
    );
}

#[tokio::test]
async fn rfc6121_3_2_and_3_3_cancelling_both_ways() {
    let (w, j, r) = World::romeo_and_juliet().await;
    subscribe(&w, &r, &j).await;
    w.take(&j);
    w.take(&r);
    // §3.2.2: Juliet cancels Romeo's subscription: unavailable first, then unsubscribed.
    w.send(&j, "<presence type='unsubscribed' to='romeo@localhost'/>")
        .await;
    let at_r = w.take(&r);
    let unavailable = at_r
        .iter()
        .position(|e| e.attr("type") == Some("unavailable"));
    let unsubscribed = at_r
        .iter()
        .position(|e| e.attr("type") == Some("unsubscribed"));
    assert!(unavailable.unwrap() < unsubscribed.unwrap());
    assert_eq!(pushes(&at_r)[0].attr("subscription"), Some("none"));
    assert_eq!(pushes(&w.take(&j))[0].attr("subscription"), Some("none"));

    // §3.3: Romeo resubscribes, then unsubscribes himself.
    subscribe(&w, &r, &j).await;
    w.take(&j);
    w.take(&r);
    w.send(&r, "<presence type='unsubscribe' to='juliet@localhost'/>")
        .await;
    let at_j = w.take(&j);
    assert_eq!(of(&at_j, "presence", Some("unsubscribe")).len(), 1);
    assert_eq!(pushes(&at_j)[0].attr("subscription"), Some("none"));
    let at_r = w.take(&r);
    assert_eq!(
        of(&at_r, "presence", Some("unavailable")).len(),
        1,
        "§3.3.3 step 3"
    );
}

#[tokio::test]
async fn rfc6121_4_2_initial_presence_broadcast_probe_and_siblings() {
    let (w, j, r) = World::romeo_and_juliet().await;
    subscribe(&w, &r, &j).await; // Romeo sees Juliet
    subscribe(&w, &j, &r).await; // Juliet sees Romeo
    w.drop_connection(&j).await;
    w.take(&r);

    let chamber = w.connect("juliet@localhost/chamber").await;
    let balcony = w
        .login_with(
            "juliet@localhost/balcony",
            "<presence><show>away</show></presence>",
        )
        .await;
    let at_balcony = w.take(&balcony);
    // §4.2.2: the broadcast reaches subscribers and the sender itself.
    let at_r = w.take(&r);
    let p = of(&at_r, "presence", None);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].attr("from"), Some("juliet@localhost/balcony"));
    assert_eq!(p[0].child("show", ns::CLIENT).unwrap().text(), "away");
    let own: Vec<_> = of(&at_balcony, "presence", None);
    assert!(own
        .iter()
        .any(|e| e.attr("from") == Some("juliet@localhost/balcony")));
    // §4.3: the contact's presence comes back (the probe answered).
    assert!(own
        .iter()
        .any(|e| e.attr("from") == Some("romeo@localhost/orchard")));
    // A connected resource that is not available gets no presence.
    assert!(w.take(&chamber).is_empty());

    // A second available resource learns about its sibling.
    let chamber2 = w.login("juliet@localhost/study").await;
    let got = w.take(&chamber2);
    assert!(of(&got, "presence", None)
        .iter()
        .any(|e| e.attr("from") == Some("juliet@localhost/balcony")));
    assert_eq!(
        of(&w.take(&balcony), "presence", None).len(),
        1,
        "§4.4.2: siblings hear it"
    );
}

#[tokio::test]
async fn rfc6121_4_3_2_probe_answers() {
    let w = World::new().await;
    w.accounts(&["romeo", "juliet", "paris"]).await;
    let j = w.login("juliet@localhost/balcony").await;
    let r = w.login("romeo@localhost/orchard").await;
    let p = w.login("paris@localhost/court").await;
    subscribe(&w, &r, &j).await;
    w.take(&r);
    w.take(&p);
    // Unauthorised: nothing.
    w.send(&p, "<presence type='probe' to='juliet@localhost'/>")
        .await;
    assert!(w.take(&p).is_empty(), "§11: no presence leak");
    // Authorised, available: the last presence of each resource.
    w.send(&r, "<presence type='probe' to='juliet@localhost'/>")
        .await;
    let got = w.take(&r);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attr("from"), Some("juliet@localhost/balcony"));
    // Authorised, offline: unavailable from the bare JID.
    w.drop_connection(&j).await;
    w.take(&r);
    w.send(&r, "<presence type='probe' to='juliet@localhost'/>")
        .await;
    let got = w.take(&r);
    assert_eq!(got[0].attr("type"), Some("unavailable"));
    assert_eq!(got[0].attr("from"), Some("juliet@localhost"));
}

#[tokio::test]
async fn rfc6121_4_5_unavailable_graceful_abrupt_and_initial_again() {
    let (w, j, r) = World::romeo_and_juliet().await;
    subscribe(&w, &r, &j).await;
    w.take(&r);
    // Graceful: the client's own stanza, status kept.
    w.send(
        &j,
        "<presence type='unavailable'><status>gone</status></presence>",
    )
    .await;
    let got = w.take(&r);
    assert_eq!(got[0].attr("type"), Some("unavailable"));
    assert_eq!(got[0].child("status", ns::CLIENT).unwrap().text(), "gone");
    assert_eq!(
        of(&w.take(&j), "presence", Some("unavailable")).len(),
        1,
        "echo to sender"
    );
    // §4.5.2: the next broadcast is initial again (probes re-run).
    w.send(&j, "<presence/>").await;
    assert_eq!(of(&w.take(&r), "presence", None).len(), 1);
    // Abrupt: the server generates it.
    w.drop_connection(&j).await;
    let got = w.take(&r);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attr("type"), Some("unavailable"));
    assert_eq!(got[0].attr("from"), Some("juliet@localhost/balcony"));
}

#[tokio::test]
async fn rfc6121_4_6_directed_presence_is_undone_on_unavailable() {
    let (w, j, r) = World::romeo_and_juliet().await;
    w.take(&r);
    w.send(&j, "<presence to='romeo@localhost'/>").await;
    assert_eq!(of(&w.take(&r), "presence", None).len(), 1);
    // Not a subscriber: later broadcasts do not reach Romeo …
    w.send(&j, "<presence><show>dnd</show></presence>").await;
    assert!(w.take(&r).is_empty(), "§4.6.3 #2");
    // … but going offline does.
    w.drop_connection(&j).await;
    let got = w.take(&r);
    assert_eq!(of(&got, "presence", Some("unavailable")).len(), 1);

    // A directed unavailable removes the entry (§4.6.1).
    let j = w.login("juliet@localhost/balcony").await;
    w.send(&j, "<presence to='romeo@localhost'/>").await;
    w.send(&j, "<presence type='unavailable' to='romeo@localhost'/>")
        .await;
    w.take(&r);
    w.drop_connection(&j).await;
    assert!(w.take(&r).is_empty());
}

#[tokio::test]
async fn rfc6121_4_7_bad_priority_and_unknown_type_are_bad_request() {
    let w = World::new().await;
    w.accounts(&["juliet"]).await;
    let j = w.connect("juliet@localhost/balcony").await;
    for bad in [
        "<presence><priority>300</priority></presence>",
        "<presence type='bogus'/>",
    ] {
        let reply = w.ask(&j, bad).await;
        assert_eq!(condition(&reply).as_deref(), Some("bad-request"), "{bad}");
    }
}

#[tokio::test]
async fn rfc6120_7_7_2_2_rebind_replaces_and_the_old_resource_goes_unavailable() {
    let (w, j, r) = World::romeo_and_juliet().await;
    subscribe(&w, &r, &j).await;
    w.take(&r);
    let again = w.connect("juliet@localhost/balcony").await;
    let terminated = w.edge.terminated.lock().unwrap().clone();
    assert_eq!(
        terminated,
        vec![(j.conn, switchyard_core::StreamCondition::Conflict)]
    );
    assert_eq!(of(&w.take(&r), "presence", Some("unavailable")).len(), 1);
    assert_ne!(again.conn, j.conn);
}

/// §3.1.3 across routers: Juliet's initial presence is recorded by another router, which
/// read her roster before Romeo's request was stored there, while this router still
/// caches her as bound but not available (the change notification is on its way). The
/// request must still reach her: the router decides on a fresh read, not the cache.
#[tokio::test]
async fn rfc6121_3_1_3_a_request_racing_presence_on_another_router_is_delivered() {
    use std::sync::Arc;
    use std::time::Duration;
    use switchyard_storage::{CachedRegistry, MemoryRegistry, Presence, SessionRegistry};
    let shared = Arc::new(MemoryRegistry::default());
    let cached = Arc::new(CachedRegistry::new(
        shared.clone(),
        100,
        Duration::from_secs(60),
    ));
    let w = World::with_registry(cached, |_| {}).await;
    w.accounts(&["romeo", "juliet"]).await;
    let j = w.connect("juliet@localhost/balcony").await;
    let r = w.login("romeo@localhost/orchard").await;
    // This router caches Juliet's one session, not yet available.
    w.send(
        &r,
        "<message to='juliet@localhost/balcony' type='chat'><body>hi</body></message>",
    )
    .await;
    assert_eq!(of(&w.take(&j), "message", Some("chat")).len(), 1);
    // The other router records her presence in the shared registry only.
    let presence = Presence {
        priority: 0,
        stanza: "<presence xmlns='jabber:client' from='juliet@localhost/balcony'/>".into(),
    };
    let edit = Box::new(move |s: &mut switchyard_storage::SessionRecord| {
        s.presence = Some(presence.clone())
    });
    shared.update(&j.jid, j.conn, edit).await.unwrap();

    w.send(&r, "<presence type='subscribe' to='juliet@localhost'/>")
        .await;
    let got = w.take(&j);
    assert_eq!(
        of(&got, "presence", Some("subscribe")).len(),
        1,
        "delivered now: her presence already read the roster without it; got {got:?}"
    );
}
