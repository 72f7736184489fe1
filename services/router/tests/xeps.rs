//! The everyday XEPs: 0191 blocking, 0280 carbons, 0054 vCard, 0049 private storage,
//! 0012 last activity, 0030 disco, 0199 ping, 0092 version.

mod support;
use support::*;
use switchyard_core::ns;

async fn mutual(w: &World, a: &Client, b: &Client) {
    for (x, y) in [(a, b), (b, a)] {
        let (to_y, to_x) = (y.jid.bare(), x.jid.bare());
        w.send(x, &format!("<presence type='subscribe' to='{to_y}'/>"))
            .await;
        w.send(y, &format!("<presence type='subscribed' to='{to_x}'/>"))
            .await;
    }
    w.take(a);
    w.take(b);
}

const BLOCK_ROMEO: &str = "<iq type='set' id='b'><block xmlns='urn:xmpp:blocking'><item jid='romeo@localhost'/></block></iq>";

#[tokio::test]
async fn xep0191_block_hides_presence_refuses_stanzas_and_pushes() {
    let w = World::new().await;
    w.accounts(&["romeo", "juliet"]).await;
    let j = w.login("juliet@localhost/balcony").await;
    let j2 = w.connect("juliet@localhost/phone").await;
    let r = w.login("romeo@localhost/orchard").await;
    mutual(&w, &j, &r).await;
    w.take(&j2);

    w.send(&j, BLOCK_ROMEO).await;
    let at_j = w.take(&j);
    assert!(at_j
        .iter()
        .any(|e| e.attr("id") == Some("b") && e.attr("type") == Some("result")));
    let push = |got: &[switchyard_core::Element]| {
        got.iter()
            .any(|e| e.child("block", ns::BLOCKING).is_some() && e.attr("type") == Some("set"))
    };
    assert!(
        push(&at_j) && push(&w.take(&j2)),
        "§3.3: pushed to all resources"
    );
    let at_r = w.take(&r);
    assert_eq!(
        of(&at_r, "presence", Some("unavailable")).len(),
        1,
        "presence withdrawn"
    );

    // Inbound from the blocked contact: message dropped in silence (the answer for an
    // unknown account, see message.rs), IQ refused, presence dropped.
    w.take(&r);
    w.send(
        &r,
        "<message to='juliet@localhost' type='chat'><body>x</body></message>",
    )
    .await;
    assert!(w.take(&r).is_empty() && w.take(&j).is_empty());
    let reply = w
        .ask(
            &r,
            "<iq type='get' id='p' to='juliet@localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
    assert_eq!(condition(&reply).as_deref(), Some("service-unavailable"));
    w.send(&r, "<presence><show>chat</show></presence>").await;
    assert!(w.take(&j).is_empty());
    // Outbound to the blocked contact: not-acceptable + <blocked/>.
    let reply = w
        .ask(
            &j,
            "<message to='romeo@localhost' type='chat'><body>x</body></message>",
        )
        .await;
    assert_eq!(condition(&reply).as_deref(), Some("not-acceptable"));
    let error = reply.child("error", ns::CLIENT).unwrap();
    assert!(error.child("blocked", ns::BLOCKING_ERRORS).is_some());

    let list = w
        .ask(
            &j,
            "<iq type='get' id='l'><blocklist xmlns='urn:xmpp:blocking'/></iq>",
        )
        .await;
    let items: Vec<_> = list
        .child("blocklist", ns::BLOCKING)
        .unwrap()
        .children()
        .collect();
    assert_eq!(items[0].attr("jid"), Some("romeo@localhost"));

    // Unblock everyone: presence flows again, the current presence is sent.
    w.take(&r);
    w.send(
        &j,
        "<iq type='set' id='u'><unblock xmlns='urn:xmpp:blocking'/></iq>",
    )
    .await;
    assert_eq!(of(&w.take(&r), "presence", None).len(), 1);
    let reply = w
        .ask(
            &j,
            "<iq type='set' id='e'><block xmlns='urn:xmpp:blocking'/></iq>",
        )
        .await;
    assert_eq!(condition(&reply).as_deref(), Some("bad-request"));
}

#[tokio::test]
async fn xep0280_carbons_sent_and_received_copies_and_private() {
    let w = World::new().await;
    w.accounts(&["romeo", "juliet"]).await;
    let r_phone = w.login("romeo@localhost/phone").await;
    let r_desk = w.login("romeo@localhost/desk").await;
    let j_high = w
        .login_with(
            "juliet@localhost/high",
            "<presence><priority>9</priority></presence>",
        )
        .await;
    let j_low = w.login("juliet@localhost/low").await;
    let enable = "<iq type='set' id='c'><enable xmlns='urn:xmpp:carbons:2'/></iq>";
    for c in [&r_desk, &j_low] {
        let reply = w.ask(c, enable).await;
        assert_eq!(reply.attr("type"), Some("result"));
    }
    for c in [&r_phone, &r_desk, &j_high, &j_low] {
        w.take(c);
    }
    w.send(
        &r_phone,
        "<message to='juliet@localhost' type='chat'><body>hi</body></message>",
    )
    .await;
    assert_eq!(
        w.take(&j_high).len(),
        1,
        "the original to the highest priority"
    );
    let received = w.take(&j_low);
    let wrapper = received[0]
        .child("received", ns::CARBONS)
        .expect("received copy");
    assert_eq!(received[0].attr("from"), Some("juliet@localhost"));
    let inner = wrapper
        .child("forwarded", ns::FORWARD)
        .unwrap()
        .child("message", ns::CLIENT);
    assert_eq!(
        inner.unwrap().child("body", ns::CLIENT).unwrap().text(),
        "hi"
    );
    let sent = w.take(&r_desk);
    assert!(sent[0].child("sent", ns::CARBONS).is_some(), "sent copy");
    assert!(w.take(&r_phone).is_empty(), "§8: never back to the sender");

    w.send(&r_phone, "<message to='juliet@localhost' type='chat'><body>psst</body><private xmlns='urn:xmpp:carbons:2'/></message>")
        .await;
    assert_eq!(w.take(&j_high).len(), 1);
    assert!(
        w.take(&j_low).is_empty() && w.take(&r_desk).is_empty(),
        "§9: private"
    );

    let disable = "<iq type='set' id='d'><disable xmlns='urn:xmpp:carbons:2'/></iq>";
    w.ask(&j_low, disable).await;
    w.send(
        &r_phone,
        "<message to='juliet@localhost' type='chat'><body>again</body></message>",
    )
    .await;
    assert!(w.take(&j_low).is_empty());
}

#[tokio::test]
async fn xep0054_vcard_set_get_and_others_read() {
    let (w, j, r) = World::romeo_and_juliet().await;
    let get = |to: &str| format!("<iq type='get' id='v' {to}><vCard xmlns='vcard-temp'/></iq>");
    let empty = w.ask(&j, &get("")).await;
    assert_eq!(
        empty.child("vCard", ns::VCARD).unwrap().children().count(),
        0
    );
    let missing = w.ask(&r, &get("to='juliet@localhost'")).await;
    assert_eq!(condition(&missing).as_deref(), Some("item-not-found"));
    let set =
        "<iq type='set' id='s'><vCard xmlns='vcard-temp'><FN>Juliet Capulet</FN></vCard></iq>";
    assert_eq!(w.ask(&j, set).await.attr("type"), Some("result"));
    for (c, to) in [(&j, ""), (&r, "to='juliet@localhost'")] {
        let card = w.ask(c, &get(to)).await;
        let fn_ = card
            .child("vCard", ns::VCARD)
            .unwrap()
            .child("FN", ns::VCARD)
            .unwrap()
            .text();
        assert_eq!(fn_, "Juliet Capulet");
    }
    let forged = "<iq type='set' id='s' to='juliet@localhost'><vCard xmlns='vcard-temp'/></iq>";
    assert_eq!(
        condition(&w.ask(&r, forged).await).as_deref(),
        Some("service-unavailable")
    );
}

#[tokio::test]
async fn xep0049_private_storage() {
    let (w, j, r) = World::romeo_and_juliet().await;
    let set = "<iq type='set' id='p'><query xmlns='jabber:iq:private'><prefs xmlns='ex:prefs'><n>1</n></prefs></query></iq>";
    assert_eq!(w.ask(&j, set).await.attr("type"), Some("result"));
    let get = "<iq type='get' id='g'><query xmlns='jabber:iq:private'><prefs xmlns='ex:prefs'/></query></iq>";
    let got = w.ask(&j, get).await;
    let prefs = got
        .child("query", ns::PRIVATE)
        .unwrap()
        .child("prefs", "ex:prefs")
        .unwrap();
    assert_eq!(prefs.children().next().unwrap().text(), "1");
    let other = w.ask(&j, "<iq type='get' id='g'><query xmlns='jabber:iq:private'><x xmlns='ex:none'/></query></iq>").await;
    assert!(other
        .child("query", ns::PRIVATE)
        .unwrap()
        .child("x", "ex:none")
        .is_some());
    for bad in [
        "<iq type='set' id='p'><query xmlns='jabber:iq:private'><x xmlns='jabber:client'/></query></iq>",
        "<iq type='get' id='p'><query xmlns='jabber:iq:private'/></iq>",
    ] {
        assert_eq!(condition(&w.ask(&j, bad).await).as_deref(), Some("not-acceptable"), "{bad}");
    }
    let foreign = "<iq type='get' id='g' to='juliet@localhost'><query xmlns='jabber:iq:private'><prefs xmlns='ex:prefs'/></query></iq>";
    assert_eq!(
        condition(&w.ask(&r, foreign).await).as_deref(),
        Some("service-unavailable")
    );
}

#[tokio::test]
async fn xep0012_last_activity() {
    let w = World::new().await;
    w.accounts(&["romeo", "juliet", "paris"]).await;
    let j = w.login("juliet@localhost/balcony").await;
    let r = w.login("romeo@localhost/orchard").await;
    let p = w.login("paris@localhost/court").await;
    w.send(&r, "<presence type='subscribe' to='juliet@localhost'/>")
        .await;
    w.send(&j, "<presence type='subscribed' to='romeo@localhost'/>")
        .await;
    let last = "<iq type='get' id='l' to='juliet@localhost'><query xmlns='jabber:iq:last'/></iq>";
    let online = w.ask(&r, last).await;
    assert_eq!(
        online.child("query", ns::LAST).unwrap().attr("seconds"),
        Some("0")
    );
    w.send(
        &j,
        "<presence type='unavailable'><status>asleep</status></presence>",
    )
    .await;
    let offline = w.ask(&r, last).await;
    let q = offline.child("query", ns::LAST).unwrap();
    assert!(q.attr("seconds").unwrap().parse::<u64>().unwrap() < 5);
    assert_eq!(q.text(), "asleep");
    assert_eq!(
        condition(&w.ask(&p, last).await).as_deref(),
        Some("forbidden")
    );
    let uptime = w
        .ask(
            &p,
            "<iq type='get' id='u' to='localhost'><query xmlns='jabber:iq:last'/></iq>",
        )
        .await;
    assert!(uptime
        .child("query", ns::LAST)
        .unwrap()
        .attr("seconds")
        .is_some());
}

#[tokio::test]
async fn xep0030_server_and_account_discovery() {
    let (w, j, r) = World::romeo_and_juliet().await;
    let info = |to: &str| {
        format!("<iq type='get' id='d' to='{to}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    };
    let server = w.ask(&j, &info("localhost")).await;
    let features: Vec<String> = server
        .child("query", ns::DISCO_INFO)
        .unwrap()
        .children()
        .filter_map(|f| f.attr("var").map(str::to_owned))
        .collect();
    for needed in [
        ns::PING,
        ns::DISCO_INFO,
        ns::DISCO_ITEMS,
        ns::VERSION,
        ns::BLOCKING,
        ns::CARBONS,
        ns::VCARD,
        ns::PRIVATE,
        ns::LAST,
        ns::OFFLINE,
    ] {
        assert!(
            features.iter().any(|f| f == needed),
            "server lacks {needed}"
        );
    }
    let own = w.ask(&j, &info("juliet@localhost")).await;
    let identity = own
        .child("query", ns::DISCO_INFO)
        .unwrap()
        .children()
        .next()
        .unwrap()
        .clone();
    assert_eq!(identity.attr("category"), Some("account"));
    assert_eq!(identity.attr("type"), Some("registered"));
    let stranger = w.ask(&r, &info("juliet@localhost")).await;
    assert_eq!(
        condition(&stranger).as_deref(),
        Some("service-unavailable"),
        "§8"
    );
    let node = w
        .ask(&j, "<iq type='get' id='n' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='x'/></iq>")
        .await;
    assert_eq!(condition(&node).as_deref(), Some("item-not-found"));
}

#[tokio::test]
async fn xep0199_ping_and_xep0092_version() {
    let w = World::new().await;
    w.accounts(&["romeo", "juliet"]).await;
    let r = w.login("romeo@localhost/orchard").await;
    let j = w.login("juliet@localhost/balcony").await;
    w.send(&r, "<presence type='subscribe' to='juliet@localhost'/>")
        .await;
    w.send(&j, "<presence type='subscribed' to='romeo@localhost'/>")
        .await;
    // Another account answers a contact it shares presence with, and nobody else (not
    // even whether it exists: tests/privacy.rs).
    for to in [
        "",
        "to='localhost'",
        "to='romeo@localhost'",
        "to='juliet@localhost'",
    ] {
        let pong = w
            .ask(
                &r,
                &format!("<iq type='get' id='p' {to}><ping xmlns='urn:xmpp:ping'/></iq>"),
            )
            .await;
        assert_eq!(pong.attr("type"), Some("result"), "{to}");
    }
    let version = w
        .ask(
            &r,
            "<iq type='get' id='v' to='localhost'><query xmlns='jabber:iq:version'/></iq>",
        )
        .await;
    let q = version.child("query", ns::VERSION).unwrap();
    assert_eq!(q.child("name", ns::VERSION).unwrap().text(), "Switchyard");

    let hidden = World::with(|c| c.info.expose_version = false).await;
    hidden.accounts(&["romeo"]).await;
    let r = hidden.login("romeo@localhost/orchard").await;
    let reply = hidden
        .ask(
            &r,
            "<iq type='get' id='v' to='localhost'><query xmlns='jabber:iq:version'/></iq>",
        )
        .await;
    assert_eq!(condition(&reply).as_deref(), Some("service-unavailable"));
    let unknown = hidden
        .ask(
            &r,
            "<iq type='get' id='u'><query xmlns='urn:unknown'/></iq>",
        )
        .await;
    assert_eq!(condition(&unknown).as_deref(), Some("service-unavailable"));
}

#[tokio::test]
async fn xep0191_block_list_is_bounded() {
    let (w, j, _r) = World::romeo_and_juliet().await;
    let items: String = (0..1001)
        .map(|i| format!("<item jid='spam{i}@example.net'/>"))
        .collect();
    let request =
        format!("<iq type='set' id='b'><block xmlns='urn:xmpp:blocking'>{items}</block></iq>");
    let reply = w.ask(&j, &request).await;
    assert_eq!(condition(&reply).as_deref(), Some("resource-constraint"));
    let list = w
        .ask(
            &j,
            "<iq type='get' id='l'><blocklist xmlns='urn:xmpp:blocking'/></iq>",
        )
        .await;
    assert_eq!(
        list.child("blocklist", ns::BLOCKING)
            .unwrap()
            .children()
            .count(),
        0
    );
}
