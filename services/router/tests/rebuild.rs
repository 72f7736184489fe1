//! Registry rebuilds (DESIGN, failure semantics: "Redis restarts: edges re-register their
//! live sessions; nothing meant for a live session is parked offline meanwhile"): "no
//! session" is believed only once the registry is settled.

mod support;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use support::*;
use switchyard_storage::OfflineStore;

fn chat(to: &str, body: &str) -> String {
    format!("<message to='{to}' type='chat' id='m'><body>{body}</body></message>")
}

/// Romeo and Juliet online over a registry this router has seen at epoch `e1`.
async fn lovers() -> (World, Arc<stale::StaleOnce>, Client, Client) {
    let registry = Arc::new(stale::StaleOnce::default());
    *registry.epoch.lock().unwrap() = Some("e1".into());
    let w = World::with_registry(registry.clone(), |_| {}).await;
    w.accounts(&["romeo", "juliet"]).await;
    let r = w.login("romeo@localhost/orchard").await;
    let j = w.login("juliet@localhost/balcony").await;
    assert!(
        !w.router.registry_settled().await,
        "e1 is this router's baseline"
    );
    w.take(&j);
    (w, registry, r, j)
}

/// Delivered live, and nothing left in offline storage.
async fn live(w: &World, j: &Client) {
    let got = w.take(j);
    let messages = of(&got, "message", Some("chat"));
    assert_eq!(messages.len(), 1, "{got:#?}");
    assert!(
        messages[0].child("delay", "urn:xmpp:delay").is_none(),
        "not through offline storage"
    );
    let held = w.store.take(&jid("juliet@localhost")).await.unwrap();
    assert!(held.is_empty(), "{held:?}");
}

#[tokio::test]
async fn a_lookup_from_a_registry_that_lost_its_data_is_made_again_after_the_edges_reregister() {
    let (w, registry, r, j) = lovers().await;
    // Redis came back empty: a new epoch, and Juliet's record is missing until the edges
    // bind their sessions again (here: the next lookup).
    *registry.epoch.lock().unwrap() = Some("e2".into());
    *registry.stale.lock().unwrap() = Some(jid("juliet@localhost"));
    w.send(&r, &chat("juliet@localhost", "during the rebuild"))
        .await;
    assert_eq!(w.edge.reregistered.load(Ordering::SeqCst), 1);
    live(&w, &j).await;
    // Settled at e2: the next rebuild is not started again.
    assert!(!w.router.registry_settled().await);
    assert_eq!(w.edge.reregistered.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_registry_that_cannot_be_read_holds_the_message_instead_of_storing_it() {
    let (w, registry, r, j) = lovers().await;
    registry.unreadable.store(3, Ordering::SeqCst);
    *registry.stale.lock().unwrap() = Some(jid("juliet@localhost"));
    w.send(&r, &chat("juliet@localhost", "during the outage"))
        .await;
    assert_eq!(
        registry.unreadable.load(Ordering::SeqCst),
        0,
        "waited it out"
    );
    assert_eq!(w.edge.reregistered.load(Ordering::SeqCst), 0, "same epoch");
    live(&w, &j).await;
}

#[tokio::test]
async fn an_account_really_offline_is_stored_at_once_on_a_settled_registry() {
    let (w, _registry, r, j) = lovers().await;
    w.drop_connection(&j).await;
    w.send(&r, &chat("juliet@localhost", "held")).await;
    assert_eq!(w.edge.reregistered.load(Ordering::SeqCst), 0);
    let held = w.store.take(&jid("juliet@localhost")).await.unwrap();
    assert_eq!(held.len(), 1);
}
