//! Per-account bounds in bytes: offline messages (XEP-0160), private XML (XEP-0049) and
//! roster items (RFC 6121 §2.3.3), each at its bound and one past it.

mod support;
use support::*;
use switchyard_core::ns;

fn chat(to: &str, body: &str) -> String {
    format!("<message to='{to}' type='chat'><body>{body}</body></message>")
}

#[tokio::test]
async fn xep0160_the_byte_quota_bounces_what_the_count_quota_would_take() {
    let w = World::with(|c| c.offline_quota_bytes = 4096).await;
    w.accounts(&["romeo", "juliet"]).await;
    let r = w.login("romeo@localhost/orchard").await;
    w.take(&r);
    // ~1.2 KB each once stamped: three fit in 4 KiB, the fourth does not, though the count
    // quota (1000) is far away.
    let body = "x".repeat(1000);
    for _ in 0..3 {
        w.send(&r, &chat("juliet@localhost", &body)).await;
    }
    assert!(w.take(&r).is_empty(), "stored");
    let reply = w.ask(&r, &chat("juliet@localhost", &body)).await;
    assert_eq!(condition(&reply).as_deref(), Some("service-unavailable"));
    // A small one still fits; the held messages all arrive at the next login.
    w.send(&r, &chat("juliet@localhost", "small")).await;
    assert!(w.take(&r).is_empty());
    let j = w.login("juliet@localhost/balcony").await;
    assert_eq!(of(&w.take(&j), "message", Some("chat")).len(), 4);
    w.send(&j, "<presence type='unavailable'/>").await;
    w.take(&r);
    w.send(&r, &chat("juliet@localhost", &body)).await;
    assert!(w.take(&r).is_empty(), "delivery freed the quota");
}

#[tokio::test]
async fn xep0160_the_default_byte_quota_holds_far_less_than_count_times_stanza() {
    let w = World::new().await;
    w.accounts(&["romeo", "juliet"]).await;
    let r = w.login("romeo@localhost/orchard").await;
    w.take(&r);
    // 250 KB messages: the count quota alone (1000) would hold 250 MB; the default 2 MiB
    // takes 8 of them.
    let body = "x".repeat(250_000);
    let mut stored = 0;
    for _ in 0..10 {
        w.send(&r, &chat("juliet@localhost", &body)).await;
        if w.take(&r).is_empty() {
            stored += 1;
        }
    }
    assert_eq!(stored, 8, "2 MiB / 250 KB");
}

fn private_set(ns: &str, content: &str) -> String {
    format!(
        "<iq type='set' id='p'><query xmlns='jabber:iq:private'><x xmlns='{ns}'>{content}</x></query></iq>"
    )
}

#[tokio::test]
async fn xep0049_namespace_and_byte_quotas() {
    let w = World::with(|c| {
        c.private_quota_namespaces = 2;
        c.private_quota_bytes = 1000;
    })
    .await;
    w.accounts(&["juliet"]).await;
    let j = w.login("juliet@localhost/balcony").await;
    let ok = |reply: switchyard_core::Element| reply.attr("type") == Some("result");
    assert!(ok(w.ask(&j, &private_set("ex:a", "1")).await));
    assert!(ok(w.ask(&j, &private_set("ex:b", "2")).await));
    let third = w.ask(&j, &private_set("ex:c", "3")).await;
    assert_eq!(condition(&third).as_deref(), Some("resource-constraint"));
    assert!(
        ok(w.ask(&j, &private_set("ex:b", "replaced")).await),
        "replacing a namespace is not a new one"
    );
    // An empty element reads back like nothing stored: storing it frees the namespace.
    assert!(ok(w.ask(&j, &private_set("ex:a", "")).await));
    assert!(ok(w.ask(&j, &private_set("ex:c", "3")).await));
    let get =
        "<iq type='get' id='g'><query xmlns='jabber:iq:private'><x xmlns='ex:a'/></query></iq>";
    let got = w.ask(&j, get).await;
    let x = got.child("query", ns::PRIVATE).unwrap().child("x", "ex:a");
    assert_eq!(x.unwrap().children().count(), 0);

    // Bytes: an element alone larger than the quota never fits (not-acceptable); one that
    // does not fit beside what is held waits for room (resource-constraint).
    let huge = w.ask(&j, &private_set("ex:b", &"y".repeat(1000))).await;
    assert_eq!(condition(&huge).as_deref(), Some("not-acceptable"));
    assert!(ok(w.ask(&j, &private_set("ex:b", &"y".repeat(600))).await));
    let over = w.ask(&j, &private_set("ex:c", &"z".repeat(400))).await;
    assert_eq!(condition(&over).as_deref(), Some("resource-constraint"));
    assert!(ok(w.ask(&j, &private_set("ex:c", &"z".repeat(300))).await));
}

fn roster_set(item: &str) -> String {
    format!("<iq type='set' id='s'><query xmlns='jabber:iq:roster'>{item}</query></iq>")
}

#[tokio::test]
async fn rfc6121_2_3_3_name_group_and_group_count_limits() {
    let w = World::new().await; // defaults: 256-byte names and groups, 16 groups
    w.accounts(&["juliet"]).await;
    let j = w.connect("juliet@localhost/balcony").await;
    let groups = |n: usize, len: usize| -> String {
        (0..n)
            .map(|i| format!("<group>{i:0>len$}</group>"))
            .collect()
    };
    // 'é' is two bytes: the limits count bytes, not characters.
    let name = |bytes: usize| "é".repeat(bytes / 2);
    let at_bounds = [
        format!("<item jid='a@example.net' name='{}'/>", name(256)),
        format!("<item jid='b@example.net'>{}</item>", groups(16, 256)),
    ];
    for item in at_bounds {
        let reply = w.ask(&j, &roster_set(&item)).await;
        assert_eq!(reply.attr("type"), Some("result"), "{item}");
    }
    let past = [
        format!("<item jid='a@example.net' name='{}'/>", name(258)),
        format!("<item jid='b@example.net'>{}</item>", groups(1, 257)),
        format!("<item jid='b@example.net'>{}</item>", groups(17, 3)),
    ];
    for item in past {
        let reply = w.ask(&j, &roster_set(&item)).await;
        assert_eq!(
            condition(&reply).as_deref(),
            Some("not-acceptable"),
            "{item}"
        );
    }
    // Configurable.
    let wide = World::with(|c| {
        c.max_roster_groups = 20;
        c.max_roster_name_bytes = 1000;
    })
    .await;
    wide.accounts(&["juliet"]).await;
    let j = wide.connect("juliet@localhost/balcony").await;
    for item in [
        format!("<item jid='b@example.net'>{}</item>", groups(20, 3)),
        format!("<item jid='a@example.net' name='{}'/>", name(1000)),
    ] {
        let reply = wide.ask(&j, &roster_set(&item)).await;
        assert_eq!(reply.attr("type"), Some("result"));
    }
}
