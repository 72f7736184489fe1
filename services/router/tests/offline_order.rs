//! XEP-0160 offline messages and live ones in one order: a message stored while its
//! recipient logs in reaches that session, a sender's messages arrive in the order sent
//! whether they were held or live, and concurrent flushes deliver each held message once
//! (see the `offline` module of the router). The edge's gate holds a flush in progress.

mod support;
use std::sync::Arc;
use support::*;
use switchyard_core::{ns, Element};
use switchyard_storage::OfflineStore;

fn chat(body: &str) -> String {
    format!("<message to='juliet@localhost' type='chat'><body>{body}</body></message>")
}

/// The bodies of the messages among `got`, in the order received.
fn bodies(got: &[Element]) -> Vec<String> {
    got.iter()
        .filter(|e| e.name() == "message")
        .filter_map(|e| e.child("body", ns::CLIENT).map(Element::text))
        .collect()
}

fn numbers(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| i.to_string()).collect()
}

/// Romeo logged in and Juliet offline, holding `held` messages from him ("0", "1" …).
async fn juliet_away(w: &World, held: usize) -> Client {
    w.accounts(&["romeo", "juliet"]).await;
    let r = w.login("romeo@localhost/orchard").await;
    for i in 0..held {
        w.send(&r, &chat(&i.to_string())).await;
    }
    r
}

/// Runs a gated race, failing rather than hanging if a flush never gets past the gate.
async fn within<T>(race: impl std::future::Future<Output = T>) -> T {
    let bound = std::time::Duration::from_secs(20);
    tokio::time::timeout(bound, race)
        .await
        .expect("a stored message was held at the gate by a flush nobody waits for")
}

/// Nothing left held or pending for Juliet.
async fn assert_drained(w: &World) {
    let juliet = jid("juliet@localhost");
    let left = w.store.take(&juliet).await.unwrap();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert_eq!(
        w.registry.pending(&juliet).await.unwrap(),
        0,
        "count cleared"
    );
}

#[tokio::test]
async fn xep0160_a_message_stored_during_the_login_flush_arrives_in_that_session_after_the_held_ones(
) {
    let w = World::new().await;
    let r = juliet_away(&w, 3).await;
    let j = w.connect("juliet@localhost/balcony").await;
    w.edge.gate.close_after(j.conn, 1);
    let raced = async {
        w.edge.gate.holding().await;
        w.send(&r, &chat("raced")).await;
        w.edge.gate.open();
    };
    within(async { tokio::join!(w.send(&j, "<presence/>"), raced) }).await;
    assert_eq!(bodies(&w.take(&j)), ["0", "1", "2", "raced"]);
    assert_drained(&w).await;
    // Nothing pending: live again, not through storage.
    w.send(&r, &chat("live")).await;
    let got = w.take(&j);
    assert_eq!(bodies(&got), ["live"]);
    let live = got.iter().find(|e| e.name() == "message").unwrap();
    assert!(live.child("delay", ns::DELAY).is_none(), "{got:#?}");
}

#[tokio::test]
async fn xep0160_a_senders_messages_stay_in_order_across_a_flush_of_a_large_backlog() {
    let w = World::new().await;
    let r = juliet_away(&w, 500).await;
    let j = w.connect("juliet@localhost/balcony").await;
    w.edge.gate.close_after(j.conn, 100);
    let live = async {
        w.edge.gate.holding().await;
        for i in 500..550 {
            w.send(&r, &chat(&i.to_string())).await;
        }
        w.edge.gate.open();
    };
    within(async { tokio::join!(w.send(&j, "<presence/>"), live) }).await;
    let got = bodies(&w.take(&j));
    assert_eq!(got.len(), 550, "none lost or duplicated");
    assert_eq!(got, numbers(0..550), "in the order sent");
    let bounced = w.take(&r);
    assert!(
        of(&bounced, "message", Some("error")).is_empty(),
        "{bounced:#?}"
    );
    assert_drained(&w).await;
}

/// Two flushes triggered at once: Juliet's second resource logs in, and a message is
/// stored on a stale view of her sessions (its catch-up flush), both while her first
/// resource's login flush is in progress. The flush already running delivers them all.
#[tokio::test]
async fn xep0160_concurrent_flushes_deliver_each_held_message_once_and_in_order() {
    let registry = Arc::new(stale::StaleOnce::default());
    let w = World::with_registry(registry.clone(), |_| {}).await;
    let r = juliet_away(&w, 300).await;
    let a = w.connect("juliet@localhost/a").await;
    let b = w.connect("juliet@localhost/b").await;
    w.edge.gate.close_after(a.conn, 5);
    let others = async {
        w.edge.gate.holding().await;
        w.send(&b, "<presence/>").await;
        *registry.stale.lock().unwrap() = Some(jid("juliet@localhost"));
        w.send(&r, &chat("300")).await;
        w.edge.gate.open();
    };
    within(async { tokio::join!(w.send(&a, "<presence/>"), others) }).await;
    let (at_a, at_b) = (bodies(&w.take(&a)), bodies(&w.take(&b)));
    assert!(
        at_b.is_empty(),
        "the second flush found one running: {at_b:?}"
    );
    assert_eq!(at_a, numbers(0..301), "each once, in order");
    assert_drained(&w).await;
}

/// A client binds, then sends its initial presence (which flushes what is held): a
/// sender's message to its full JID in between does not overtake the held ones.
#[tokio::test]
async fn xep0160_a_message_to_the_full_jid_before_initial_presence_comes_after_the_held_ones() {
    let w = World::new().await;
    let r = juliet_away(&w, 3).await;
    let j = w.connect("juliet@localhost/balcony").await;
    let live = "<message to='juliet@localhost/balcony' type='chat'><body>live</body></message>";
    w.send(&r, live).await;
    w.send(&j, "<presence/>").await;
    assert_eq!(bodies(&w.take(&j)), ["0", "1", "2", "live"]);
}

/// A session whose edge is out of reach (dead, its session kept for a resumption
/// elsewhere) is not flushed to: a flush would fail whole, and what it took would go back
/// behind what was stored meanwhile. The messages wait in order, and reach the session
/// once its edge can be reached (after the resumption, on another edge).
#[tokio::test]
async fn xep0160_messages_for_a_session_out_of_reach_wait_in_order_for_it() {
    let w = World::new().await;
    w.accounts(&["romeo", "juliet"]).await;
    let r = w.login("romeo@localhost/orchard").await;
    let j = w.login("juliet@localhost/balcony").await;
    w.edge.down.store(true, std::sync::atomic::Ordering::SeqCst);
    for i in 0..3 {
        w.send(&r, &chat(&i.to_string())).await;
    }
    let attempts = w
        .edge
        .held_attempts
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(attempts, 0, "no flush to a session out of reach");
    let juliet = jid("juliet@localhost");
    assert_eq!(w.registry.pending(&juliet).await.unwrap(), 3, "all stored");
    w.edge
        .down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    w.send(&r, &chat("3")).await;
    assert_eq!(
        bodies(&w.take(&j)),
        numbers(0..4),
        "in order, behind the held"
    );
    assert_drained(&w).await;
}
