//! Account and session probing (RFC 6121 §8.5.1, §8.5.3; RFC 6120 §10.5.3; XEP-0054
//! §3.3; XEP-0199 §10): the same probe, sent by a stranger to an account that shares
//! nothing with it, gets the same answer (type, condition, text, addresses) at the same
//! cost in storage calls whether the account exists, is online, is offline or does not
//! exist; a full JID answers alike whether its resource is connected, not connected or
//! of no account. A contact the account shares presence with is the control row: its
//! answers may differ, which shows the probes can tell things apart.

mod support;
use support::*;
use switchyard_core::Element;
use switchyard_router::UnknownAccountMessages;

/// The targets, all on localhost: `friend` shares presence with the prober, `online` and
/// `offline` exist and share nothing, `ghost` does not exist.
const FRIEND: &str = "friend";
const STRANGERS: [&str; 3] = ["online", "offline", "ghost"];

/// Eve probes; her second resource has carbons on, so carbons are compared too. Friend
/// shares presence with her; `online` is connected as `online@localhost/phone`.
async fn world(tune: impl FnOnce(&mut switchyard_router::RouterConfig)) -> (World, Client, Client) {
    let w = World::with(tune).await;
    w.accounts(&["eve", FRIEND, "online", "offline"]).await;
    let eve = w.login("eve@localhost/probe").await;
    let carbons = w.login("eve@localhost/carbons").await;
    w.send(
        &carbons,
        "<iq type='set' id='c'><enable xmlns='urn:xmpp:carbons:2'/></iq>",
    )
    .await;
    let friend = w.login("friend@localhost/phone").await;
    w.login("online@localhost/phone").await;
    w.send(&eve, "<presence type='subscribe' to='friend@localhost'/>")
        .await;
    w.send(&friend, "<presence type='subscribed' to='eve@localhost'/>")
        .await;
    w.take(&eve);
    w.take(&carbons);
    (w, eve, carbons)
}

/// What the prober's two resources received, as text with the target's name replaced,
/// and the storage calls it cost.
async fn probe(
    w: &World,
    eve: &Client,
    carbons: &Client,
    target: &str,
    probe: &str,
) -> (String, usize) {
    w.take(eve);
    w.take(carbons);
    let before = w.calls();
    w.send(eve, &probe.replace("TARGET", target)).await;
    let cost = w.calls() - before;
    let show = |got: Vec<Element>| -> String {
        got.iter()
            .map(|e| e.to_xml("").replace(&format!("{target}@"), "TARGET@"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let seen = format!(
        "probe: [{}] carbons: [{}]",
        show(w.take(eve)),
        show(w.take(carbons))
    );
    (seen, cost)
}

/// Whether a probe's cost in storage calls must match too: an answer's timing follows
/// it. A message that gets no answer has no timing to compare (what stays observable, the
/// sender's carbon, leaves before the recipient's side is decided).
#[derive(Clone, Copy, PartialEq)]
enum Cost {
    Compared,
    Unobservable,
}

/// Sends each probe to each target and asserts one answer (and cost) per probe.
async fn assert_alike(
    w: &World,
    (eve, carbons): (&Client, &Client),
    targets: &[&str],
    probes: &[String],
    cost: Cost,
) {
    for p in probes {
        let mut answers = Vec::new();
        for target in targets {
            let (seen, calls) = probe(w, eve, carbons, target, p).await;
            let calls = if cost == Cost::Compared { calls } else { 0 };
            answers.push((target, (seen, calls)));
        }
        let first = &answers[0].1;
        for (target, answer) in &answers[1..] {
            assert_eq!(
                answer, first,
                "{p}\n{target} answers unlike {}: {answers:#?}",
                answers[0].0
            );
        }
    }
}

fn iq(kind: &str, to: &str, payload: &str) -> String {
    format!("<iq type='{kind}' id='q' to='{to}'>{payload}</iq>")
}

/// Every namespace served at an account's bare JID (from the account's own disco#info),
/// and a few that are not.
async fn account_namespaces(w: &World, eve: &Client) -> Vec<String> {
    let info = w
        .ask(
            eve,
            "<iq type='get' id='d' to='eve@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        )
        .await;
    let query = info.children().next().expect("disco#info");
    let mut namespaces: Vec<String> = query
        .children()
        .filter_map(|f| f.attr("var").map(str::to_owned))
        .collect();
    assert!(namespaces.len() >= 5, "{namespaces:?}");
    for more in [
        "jabber:iq:version",
        "jabber:iq:private",
        "urn:xmpp:blocking",
        "urn:xmpp:carbons:2",
        "urn:example:unknown",
    ] {
        namespaces.push(more.to_owned());
    }
    namespaces
}

#[tokio::test]
async fn iq_to_a_bare_jid_answers_a_stranger_alike_whether_the_account_exists() {
    let (w, eve, carbons) = world(|_| {}).await;
    let mut probes = Vec::new();
    for ns in account_namespaces(&w, &eve).await {
        for kind in ["get", "set"] {
            probes.push(iq(
                kind,
                "TARGET@localhost",
                &format!("<query xmlns='{ns}'/>"),
            ));
        }
    }
    probes.push(iq(
        "get",
        "TARGET@localhost",
        "<ping xmlns='urn:xmpp:ping'/>",
    ));
    probes.push(iq("get", "TARGET@localhost", "<vCard xmlns='vcard-temp'/>"));
    probes.push(iq(
        "get",
        "TARGET@localhost",
        "<query xmlns='http://jabber.org/protocol/disco#items' node='x'/>",
    ));
    probes.push(iq("result", "TARGET@localhost", ""));
    assert_alike(&w, (&eve, &carbons), &STRANGERS, &probes, Cost::Compared).await;

    // The control row: a contact learns what strangers cannot.
    let ping = iq("get", "TARGET@localhost", "<ping xmlns='urn:xmpp:ping'/>");
    let (friend, _) = probe(&w, &eve, &carbons, FRIEND, &ping).await;
    let (ghost, _) = probe(&w, &eve, &carbons, "ghost", &ping).await;
    assert!(friend.contains("type='result'"), "{friend}");
    assert!(ghost.contains("service-unavailable"), "§8.5.1: {ghost}");
}

#[tokio::test]
async fn iq_to_a_full_jid_answers_alike_connected_or_not_or_of_no_account() {
    let (w, eve, carbons) = world(|_| {}).await;
    let payloads = [
        "<ping xmlns='urn:xmpp:ping'/>",
        "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        "<query xmlns='http://jabber.org/protocol/disco#items'/>",
        "<query xmlns='jabber:iq:version'/>",
        "<query xmlns='jabber:iq:last'/>",
        "<vCard xmlns='vcard-temp'/>",
        "<query xmlns='urn:example:unknown'/>",
    ];
    let mut probes: Vec<String> = payloads
        .iter()
        .flat_map(|p| ["get", "set"].map(|kind| iq(kind, "TARGET@localhost/phone", p)))
        .collect();
    probes.push(iq("result", "TARGET@localhost/phone", ""));
    // `online` is connected as /phone; `offline` has no session; `ghost` has no account.
    assert_alike(&w, (&eve, &carbons), &STRANGERS, &probes, Cost::Compared).await;
    // A resource that is not connected, of an account that is.
    let other = probes
        .iter()
        .map(|p| p.replace("/phone", "/gone"))
        .collect::<Vec<_>>();
    assert_alike(
        &w,
        (&eve, &carbons),
        &["online", "ghost"],
        &other,
        Cost::Compared,
    )
    .await;

    let ping = iq(
        "get",
        "TARGET@localhost/phone",
        "<ping xmlns='urn:xmpp:ping'/>",
    );
    let (friend, _) = probe(&w, &eve, &carbons, FRIEND, &ping).await;
    assert_eq!(
        friend, "probe: [] carbons: []",
        "a contact's ping reaches the client"
    );
}

fn messages(to: &str) -> Vec<String> {
    ["chat", "normal", "headline", "groupchat", "error"]
        .iter()
        .map(|kind| format!("<message type='{kind}' id='m' to='{to}'><body>hi</body></message>"))
        .collect()
}

#[tokio::test]
async fn messages_answer_alike_whether_the_account_exists_or_a_resource_is_connected() {
    let (w, eve, carbons) = world(|_| {}).await;
    // Bare JIDs: delivered (online), stored (offline) or ignored (ghost), all in silence
    // but for the sender's carbon; groupchat is an error to every one of them.
    let bare = messages("TARGET@localhost");
    assert_alike(&w, (&eve, &carbons), &STRANGERS, &bare, Cost::Unobservable).await;
    // Full JIDs: a connected resource, one that is not, one of no account. Groupchat is
    // left out: it must bounce when no such resource is connected (a room drops its
    // occupant on that bounce), which a connected one cannot do.
    let full: Vec<String> = messages("TARGET@localhost/phone")
        .into_iter()
        .filter(|m| !m.contains("groupchat"))
        .collect();
    assert_alike(&w, (&eve, &carbons), &STRANGERS, &full, Cost::Unobservable).await;
    // Groupchat to a resource that is not connected: the same error whether the account
    // exists or not.
    let groupchat = ["<message type='groupchat' id='m' to='TARGET@localhost/gone'/>".to_owned()];
    assert_alike(
        &w,
        (&eve, &carbons),
        &STRANGERS,
        &groupchat,
        Cost::Unobservable,
    )
    .await;
    let (ghost, _) = probe(
        &w,
        &eve,
        &carbons,
        "ghost",
        &messages("TARGET@localhost")[0],
    )
    .await;
    assert!(
        ghost.starts_with("probe: [] carbons: [<message") && ghost.contains("<sent"),
        "ignored in silence, carbon as for a stored message: {ghost}"
    );
}

#[tokio::test]
async fn xep0191_a_block_answers_messages_as_an_unknown_account_does() {
    let (w, eve, carbons) = world(|_| {}).await;
    let offline = w.connect("offline@localhost/tmp").await;
    let block = "<iq type='set' id='b'><block xmlns='urn:xmpp:blocking'><item jid='eve@localhost'/></block></iq>";
    w.send(&offline, block).await;
    w.drop_connection(&offline).await;
    // `offline` blocks eve; `ghost` does not exist: eve cannot tell them apart.
    let bare = messages("TARGET@localhost");
    let targets = ["offline", "ghost"];
    assert_alike(&w, (&eve, &carbons), &targets, &bare, Cost::Unobservable).await;
}

#[tokio::test]
async fn configured_service_unavailable_tells_senders_about_unknown_accounts() {
    let (w, eve, carbons) =
        world(|c| c.unknown_account_messages = UnknownAccountMessages::ServiceUnavailable).await;
    for kind in ["chat", "normal"] {
        let m =
            format!("<message type='{kind}' id='m' to='TARGET@localhost'><body>x</body></message>");
        let (ghost, _) = probe(&w, &eve, &carbons, "ghost", &m).await;
        assert!(ghost.contains("service-unavailable"), "{kind}: {ghost}");
        let (offline, _) = probe(&w, &eve, &carbons, "offline", &m).await;
        assert!(!offline.contains("error"), "{kind}: stored: {offline}");
    }
    let normal =
        "<message type='normal' id='m' to='TARGET@localhost/gone'><body>x</body></message>";
    let (gone, _) = probe(&w, &eve, &carbons, "online", normal).await;
    assert!(
        gone.contains("service-unavailable"),
        "§8.5.3.2.1 (b): {gone}"
    );
}
