//! RFC 6121 §2: roster management, named after the section each test proves.

mod support;
use support::*;
use switchyard_core::ns;

const GET: &str = "<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>";

fn set(item: &str) -> String {
    format!("<iq type='set' id='s'><query xmlns='jabber:iq:roster'>{item}</query></iq>")
}

#[tokio::test]
async fn rfc6121_2_1_4_empty_roster_is_an_empty_result_with_a_version() {
    let w = World::new().await;
    w.accounts(&["juliet"]).await;
    let j = w.connect("juliet@localhost/balcony").await;
    let reply = w.ask(&j, GET).await;
    assert_eq!(reply.attr("type"), Some("result"));
    let query = reply.child("query", ns::ROSTER).expect("query");
    assert_eq!(query.children().count(), 0);
    assert!(query.attr("ver").is_some(), "§2.6.3: ver on every result");
}

#[tokio::test]
async fn rfc6121_2_3_2_add_results_and_pushes_to_every_interested_resource() {
    let w = World::new().await;
    w.accounts(&["juliet"]).await;
    let balcony = w.connect("juliet@localhost/balcony").await;
    let chamber = w.connect("juliet@localhost/chamber").await;
    let uninterested = w.connect("juliet@localhost/idle").await;
    w.send(&chamber, GET).await;
    w.send(&balcony, GET).await;
    w.take(&chamber);
    w.take(&balcony);
    let item = "<item jid='nurse@example.net' name='Nurse'><group>Servants</group></item>";
    w.send(&balcony, &set(item)).await;
    let got = w.take(&balcony);
    assert!(got
        .iter()
        .any(|e| e.attr("type") == Some("result") && e.attr("id") == Some("s")));
    let pushed = pushes(&got);
    assert_eq!(pushed.len(), 1, "the requester is pushed too");
    assert_eq!(pushed[0].attr("jid"), Some("nurse@example.net"));
    assert_eq!(pushed[0].attr("subscription"), Some("none"));
    assert_eq!(pushed[0].attr("name"), Some("Nurse"));
    assert_eq!(pushes(&w.take(&chamber)).len(), 1);
    assert!(
        w.take(&uninterested).is_empty(),
        "§2.2: only interested resources"
    );

    let roster = w.ask(&balcony, GET).await;
    let items: Vec<_> = roster
        .child("query", ns::ROSTER)
        .unwrap()
        .children()
        .collect();
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0].child("group", ns::ROSTER).unwrap().text(),
        "Servants"
    );
}

#[tokio::test]
async fn rfc6121_2_3_3_set_errors() {
    let w = World::new().await;
    w.accounts(&["juliet", "romeo"]).await;
    let j = w.connect("juliet@localhost/balcony").await;
    let long = "x".repeat(2000);
    let cases = [
        (
            set("<item jid='a@example.net'/><item jid='b@example.net'/>"),
            "bad-request",
        ),
        (
            set("<item jid='a@example.net'><group>G</group><group>G</group></item>"),
            "bad-request",
        ),
        (
            set("<item jid='a@example.net'><group></group></item>"),
            "not-acceptable",
        ),
        (
            set(&format!("<item jid='a@example.net' name='{long}'/>")),
            "not-acceptable",
        ),
        (
            set(&format!(
                "<item jid='a@example.net'><group>{long}</group></item>"
            )),
            "not-acceptable",
        ),
        (set("<item jid='@@'/>"), "jid-malformed"),
        // §2.1.5: only the owner may edit a roster.
        (
            "<iq type='set' id='s' to='romeo@localhost'><query xmlns='jabber:iq:roster'>\
             <item jid='a@example.net'/></query></iq>"
                .to_owned(),
            "forbidden",
        ),
        (
            "<iq type='get' id='g' to='romeo@localhost'><query xmlns='jabber:iq:roster'/></iq>"
                .to_owned(),
            "forbidden",
        ),
    ];
    for (request, expected) in cases {
        let reply = w.ask(&j, &request).await;
        assert_eq!(condition(&reply).as_deref(), Some(expected), "{request}");
    }
}

#[tokio::test]
async fn rfc6121_2_1_2_5_subscription_values_other_than_remove_are_ignored() {
    let w = World::new().await;
    w.accounts(&["juliet"]).await;
    let j = w.login("juliet@localhost/balcony").await;
    w.take(&j);
    w.send(
        &j,
        &set("<item jid='romeo@example.net' subscription='both' ask='subscribe' approved='true'/>"),
    )
    .await;
    let got = w.take(&j);
    let pushed = pushes(&got);
    assert_eq!(pushed[0].attr("subscription"), Some("none"));
    assert_eq!(pushed[0].attr("ask"), None);
    assert_eq!(pushed[0].attr("approved"), None);
}

#[tokio::test]
async fn rfc6121_2_4_update_replaces_name_and_groups_wholesale() {
    let w = World::new().await;
    w.accounts(&["juliet"]).await;
    let j = w.login("juliet@localhost/balcony").await;
    w.send(
        &j,
        &set("<item jid='romeo@example.net' name='R'><group>A</group><group>B</group></item>"),
    )
    .await;
    w.send(
        &j,
        &set("<item jid='romeo@example.net'><group>C</group></item>"),
    )
    .await;
    let roster = w.ask(&j, GET).await;
    let item = roster
        .child("query", ns::ROSTER)
        .unwrap()
        .children()
        .next()
        .unwrap()
        .clone();
    assert_eq!(item.attr("name"), None);
    let groups: Vec<String> = item.children().map(|g| g.text()).collect();
    assert_eq!(groups, ["C"]);
}

#[tokio::test]
async fn rfc6121_2_5_remove_pushes_remove_and_cancels_both_subscriptions() {
    let w = World::new().await;
    w.accounts(&["juliet", "romeo"]).await;
    let j = w.login("juliet@localhost/balcony").await;
    let r = w.login("romeo@localhost/orchard").await;
    subscribe_both(&w, &j, &r).await;
    w.take(&j);
    w.take(&r);

    w.send(
        &j,
        &set("<item jid='romeo@localhost' subscription='remove'/>"),
    )
    .await;
    let got = w.take(&j);
    let removal = pushes(&got);
    assert!(removal
        .iter()
        .any(|i| i.attr("subscription") == Some("remove")));
    let at_romeo = w.take(&r);
    assert!(!of(&at_romeo, "presence", Some("unsubscribe")).is_empty());
    assert!(!of(&at_romeo, "presence", Some("unsubscribed")).is_empty());
    assert!(
        !of(&at_romeo, "presence", Some("unavailable")).is_empty(),
        "§3.2.2"
    );
    let romeo_view = pushes(&at_romeo);
    assert_eq!(
        romeo_view.last().unwrap().attr("subscription"),
        Some("none")
    );

    // §2.5.3: removing what is not there.
    let reply = w
        .ask(
            &j,
            &set("<item jid='romeo@localhost' subscription='remove'/>"),
        )
        .await;
    assert_eq!(condition(&reply).as_deref(), Some("item-not-found"));
}

#[tokio::test]
async fn rfc6121_2_6_3_versioning_sends_only_changes_as_pushes() {
    let w = World::new().await;
    w.accounts(&["juliet"]).await;
    let j = w.login("juliet@localhost/balcony").await;
    w.send(&j, &set("<item jid='a@example.net'/>")).await;
    w.send(&j, &set("<item jid='b@example.net'/>")).await;
    let full = w.ask(&j, GET).await;
    let ver = full
        .child("query", ns::ROSTER)
        .unwrap()
        .attr("ver")
        .unwrap()
        .to_owned();

    // Up to date: an empty result and nothing else.
    let get_ver =
        |v: &str| format!("<iq type='get' id='v'><query xmlns='jabber:iq:roster' ver='{v}'/></iq>");
    let reply = w.ask(&j, &get_ver(&ver)).await;
    assert_eq!(reply.attr("type"), Some("result"));
    assert_eq!(reply.children().count(), 0);

    // Changes since: the result, then one push per changed row, removals included.
    w.send(&j, &set("<item jid='c@example.net'/>")).await;
    w.send(
        &j,
        &set("<item jid='a@example.net' subscription='remove'/>"),
    )
    .await;
    w.take(&j);
    w.send(&j, &get_ver(&ver)).await;
    let got = w.take(&j);
    assert_eq!(got[0].attr("type"), Some("result"));
    assert_eq!(got[0].children().count(), 0);
    let pushed: Vec<(String, String)> = pushes(&got[1..])
        .iter()
        .map(|i| {
            (
                i.attr("jid").unwrap().into(),
                i.attr("subscription").unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        pushed,
        [
            ("c@example.net".into(), "none".into()),
            ("a@example.net".into(), "remove".into())
        ]
    );

    // An unknown version: the whole roster.
    let reply = w.ask(&j, &get_ver("999999")).await;
    let items = reply.child("query", ns::ROSTER).unwrap().children().count();
    assert_eq!(items, 2);
}

/// Juliet and Romeo subscribe to each other (both online).
pub async fn subscribe_both(w: &World, j: &Client, r: &Client) {
    for (a, b) in [(j, r), (r, j)] {
        let to_b = b.jid.bare();
        let to_a = a.jid.bare();
        w.send(a, &format!("<presence type='subscribe' to='{to_b}'/>"))
            .await;
        w.send(b, &format!("<presence type='subscribed' to='{to_a}'/>"))
            .await;
    }
}
