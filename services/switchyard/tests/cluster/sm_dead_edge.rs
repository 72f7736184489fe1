//! XEP-0198 after the edge holding a session was killed (-9): the client comes back on
//! the other edge and resumes. What the dead edge had written to the client and not had
//! acknowledged comes again from the routers' copies, what was sent to the session
//! meanwhile follows, and what the client had sent that no router had is what the
//! `<resumed/>` count tells it to send again: every message arrives once, in order, and
//! contacts see no presence change.

use super::harness::{Cluster, REDIS};
use super::sm::{bob_on_edge_0, chat, send};
use super::support::sm::Counted;
use super::support::Client;
use super::{body, online};
use std::time::Duration;

/// Longer than the routers need to hear of a new resumable session (a second).
const HEARD: Duration = Duration::from_millis(1500);
/// What a resumption after an edge's death may wait: the registry declares the edge
/// dead within its TTL (3 s here) plus a beat.
const DECLARED_DEAD: Duration = Duration::from_secs(15);

/// The bodies of the next `count` chat messages.
async fn bodies(bob: &mut Counted, count: usize) -> Vec<String> {
    let mut got = Vec::with_capacity(count);
    while got.len() < count {
        let (m, _) = bob.until(chat).await;
        got.push(body(&m).unwrap_or_default());
    }
    got
}

fn numbered(range: std::ops::RangeInclusive<usize>) -> Vec<String> {
    range.map(|n| format!("m{n}")).collect()
}

/// Alice asks for a pong: what she got before it (no unavailable presence of Bob's, say).
async fn before_pong(alice: &mut Client) -> Vec<switchyard_core::xml::Element> {
    alice
        .send("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    alice.until(|e| e.attr("id") == Some("sync")).await.1
}

/// A user whose stanzas go through the other router than `alice`'s (routers are chosen
/// by the sender's bare JID), so that both routers deliver to Bob and hold copies.
fn on_the_other_router(cluster: &Cluster) -> &'static str {
    let addrs: Vec<String> = cluster.routers.iter().map(|r| r.addr.to_string()).collect();
    let router = |user: &str| {
        let key = switchyard_core::Jid::parse(&format!("{user}@localhost")).unwrap();
        switchyard_cluster::preferred_router(&key, &addrs).cloned()
    };
    let alices = router("alice");
    SENDERS
        .into_iter()
        .find(|user| router(user) != alices)
        .expect("one of sixteen users hashes to the other router")
}

/// Candidates for [`on_the_other_router`]: the routers' addresses change every run, so
/// each is a coin toss; with sixteen, all landing with Alice is one run in 65,536 (four
/// made that one in sixteen).
const SENDERS: [&str; 16] = [
    "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj",
    "olivia", "peggy", "rupert", "sybil", "trent", "victor",
];

async fn say(client: &mut Client, who: &str, n: usize) {
    client
        .send(&format!(
            "<message to='bob@localhost/phone' type='chat' id='{who}{n}'><body>{who}{n}</body></message>"
        ))
        .await;
}

/// The messages of `who` among `got`, in the order they came.
fn from(got: &[String], who: &str) -> Vec<String> {
    got.iter().filter(|b| b.starts_with(who)).cloned().collect()
}

/// The first arrival of each message, in order, and the ones that came again.
fn once(got: &[String]) -> (Vec<String>, Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    let (mut first, mut again) = (Vec::new(), Vec::new());
    for body in got {
        match seen.insert(body.clone()) {
            true => first.push(body.clone()),
            false => again.push(body.clone()),
        }
    }
    (first, again)
}

fn numbered_as(who: &str, count: usize) -> Vec<String> {
    (1..=count).map(|n| format!("{who}{n}")).collect()
}

#[tokio::test]
async fn xep0198_a_session_resumes_on_another_edge_after_its_edge_is_killed_mid_flow() {
    let users: Vec<&str> = ["alice", "bob"].into_iter().chain(SENDERS).collect();
    let Some(mut cluster) = Cluster::start(&users).await else {
        return;
    };
    let other = on_the_other_router(&cluster);
    let mut alice = online(&cluster, 1, "alice", "desk").await;
    let mut them = online(&cluster, 1, other, "desk").await;
    let (mut bob, id) = bob_on_edge_0(&cluster, &mut alice).await;
    tokio::time::sleep(HEARD).await;
    const EACH: usize = 150;
    // Steady flows from two senders through both routers, on the edge that stays:
    // before, during and after.
    let flow = tokio::spawn(async move {
        for n in 1..=EACH {
            say(&mut alice, "a", n).await;
            say(&mut them, "o", n).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (alice, them)
    });
    let mut got = bodies(&mut bob, 60).await;
    cluster.edges[0].kill_9().await;
    // What Bob's client read is what it counts; anything the dead edge wrote after that
    // is lost in the broken connection.
    let h = bob.h;
    drop(bob);
    let at = (cluster.edges[1].addr, cluster.cert_der.clone());
    let (mut bob, _) = Counted::resumed_within(at, "bob", &id, h, DECLARED_DEAD).await;
    // Until both flows are complete (bounded: a duplicate is a read more).
    while [("a", EACH), ("o", EACH)]
        .iter()
        .any(|(who, each)| once(&from(&got, who)).0.len() < *each)
    {
        assert!(got.len() < 2 * EACH + 10, "far too many: {got:?}");
        got.extend(bodies(&mut bob, 1).await);
    }
    let (mut alice, _them) = flow.await.expect("the flow");
    for who in ["a", "o"] {
        let (kept, twice) = once(&from(&got, who));
        assert_eq!(kept, numbered_as(who, EACH), "{who}: none lost, in order");
        // Exactly once: a stanza whose answer died with the edge (its router stored it
        // offline) was never written, as the edge writes only what a router confirmed.
        assert!(twice.is_empty(), "{who}: delivered twice: {twice:?}");
    }
    let seen = before_pong(&mut alice).await;
    assert!(
        !seen.iter().any(|e| e.attr("type") == Some("unavailable")),
        "contacts see no presence change: {seen:?}"
    );
    // The session goes on: Bob's stanzas are his on the edge he came back to, and
    // nothing more was on its way to him.
    bob.client
        .send("<message to='alice@localhost/desk' type='chat'><body>back</body></message>")
        .await;
    let (back, _) = alice.until(|e| body(e).as_deref() == Some("back")).await;
    assert_eq!(back.attr("from"), Some("bob@localhost/phone"));
    say(&mut alice, "end", 0).await;
    assert_eq!(bodies(&mut bob, 1).await, ["end0"]);
    cluster.clean_up().await;
}

/// The sender's edge dies under a burst: `<resumed h/>` counts exactly the stanzas some
/// router routed (a resumable session's stanza is answered only once a router has it),
/// and the client sends the rest again.
#[tokio::test]
async fn xep0198_a_sender_whose_edge_is_killed_mid_burst_sends_again_only_what_was_lost() {
    let Some(mut cluster) = Cluster::start(&["alice", "bob"]).await else {
        return;
    };
    let mut bob = Counted {
        client: online(&cluster, 1, "bob", "phone").await,
        h: 0,
        answer_requests: true,
    };
    let alice = Client::login_at(
        cluster.edges[0].addr,
        cluster.cert_der.clone(),
        "alice",
        "SCRAM-SHA-256",
        "desk",
    )
    .await;
    let (alice, id) = Counted::enable(alice, true).await;
    let (mut alice, id) = (alice.client, id.expect("resumable"));
    tokio::time::sleep(HEARD).await;
    let message = |n: usize| {
        format!(
            "<message to='bob@localhost/phone' type='chat' id='m{n}'><body>m{n}</body></message>"
        )
    };
    // A burst, and the edge killed under it; the client goes on writing for a while,
    // not knowing yet (those writes fail or vanish).
    const BURST: usize = 80;
    const BLIND: usize = 20;
    const TOTAL: usize = 150;
    for n in 1..=BURST {
        alice.send_bytes(message(n).as_bytes()).await;
    }
    // The edge routes a resumable session's stanzas one router round trip apart: once
    // Bob has a few, the rest are still on their way.
    const SEEN: usize = 10;
    let mut got = bodies(&mut bob, SEEN).await;
    cluster.edges[0].kill_9().await;
    for n in BURST + 1..=BURST + BLIND {
        alice.send_bytes(message(n).as_bytes()).await;
    }
    drop(alice);
    // Alice never heard an acknowledgement: every message she sent is unacknowledged.
    let at = (cluster.edges[1].addr, cluster.cert_der.clone());
    let (alice, resumed) = Counted::resumed_within(at, "alice", &id, 0, DECLARED_DEAD).await;
    let mut alice = alice.client;
    let handled: usize = resumed.attr("h").expect("h").parse().expect("a count");
    assert!(
        (SEEN..=BURST).contains(&handled),
        "at least what Bob got, never more than reached the edge: {handled}"
    );
    println!("{handled} of {BURST} routed before the edge died");
    for n in handled + 1..=TOTAL {
        alice.send(&message(n)).await;
    }
    got.extend(bodies(&mut bob, TOTAL - SEEN).await);
    assert_eq!(got, numbered(1..=TOTAL), "every message once, in order");
    // Nothing more: no copy of one sent twice follows.
    alice
        .send("<message to='bob@localhost/phone' type='chat' id='end'><body>end</body></message>")
        .await;
    assert_eq!(bodies(&mut bob, 1).await, ["end"]);
    cluster.clean_up().await;
}

/// Nobody resumes in time: what the dead edge's session had not had acknowledged is
/// stored offline (never dropped), its contacts then see it go, and it arrives at the
/// next login.
#[tokio::test]
async fn xep0198_an_orphaned_session_not_resumed_in_time_goes_offline_with_its_copies() {
    let quick = "[stream_management]\nresume_max_secs = 4\n";
    let Some(mut cluster) = Cluster::start_with(&["alice", "bob"], REDIS, quick).await else {
        return;
    };
    let mut alice = online(&cluster, 1, "alice", "desk").await;
    let (mut bob, _) = bob_on_edge_0(&cluster, &mut alice).await;
    // Bob's client asks for `max` and reads without acknowledging anything.
    bob.answer_requests = false;
    tokio::time::sleep(HEARD).await;
    for n in 1..=5 {
        send(&mut alice, n).await;
    }
    assert_eq!(bodies(&mut bob, 5).await, numbered(1..=5));
    tokio::time::sleep(HEARD).await;
    cluster.edges[0].kill_9().await;
    drop(bob);
    // The edge is declared dead within its TTL (3 s) and a beat; Bob's session stays,
    // for its `max` (4 s from the kill) and then the grace every router gets to store
    // its copies (10 s): no word to Alice meanwhile.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let quiet = before_pong(&mut alice).await;
    assert!(
        !quiet.iter().any(|e| e.attr("type") == Some("unavailable")),
        "Bob's session stays while it may be resumed: {quiet:?}"
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (gone, _) = alice
        .until(|e| e.name() == "presence" && e.attr("type") == Some("unavailable"))
        .await;
    assert_eq!(gone.attr("from"), Some("bob@localhost/phone"));
    let mut bob = online(&cluster, 1, "bob", "phone").await;
    send(&mut alice, 6).await;
    let mut got = Vec::new();
    while got.len() < 6 {
        let (m, _) = bob.until(|e| e.name() == "message").await;
        got.push(body(&m).unwrap_or_default());
    }
    assert_eq!(
        got,
        numbered(1..=6),
        "stored, in order, once; then the live one"
    );
    cluster.clean_up().await;
}
