//! The one conformance suite per trait. Every backend's tests call these functions, so all
//! backends are held to the same behaviour, not to look-alike tests.
//!
//! Names are prefixed with `conformance-` so a suite can share a database with other data.

use crate::{Presence, RosterItem, Subscription};
mod failures;
mod online;
mod pending;
mod quotas;
mod relocate;

pub use failures::login_failures;
pub use quotas::{bounded_documents, offline_bytes, quotas_under_concurrency};

use crate::{AccountStore, Backend, DocumentStore, SessionRecord, SessionRegistry, StorageError};
use switchyard_core::sasl::StoredCredentials;
use switchyard_core::Jid;

fn jid(s: &str) -> Jid {
    Jid::parse(s).expect("test JID")
}

fn creds(password: &str) -> StoredCredentials {
    StoredCredentials::from_password(password, 4096).expect("creds")
}

/// Every data trait of a durable backend.
pub async fn backend<B: Backend>(store: &B) {
    accounts(store).await;
    roster(store).await;
    offline(store).await;
    offline_bytes(store).await;
    blocks(store).await;
    documents(store).await;
    bounded_documents(store).await;
    removal_takes_everything(store).await;
}

/// [`AccountStore`] behaviour.
pub async fn accounts(store: &dyn AccountStore) {
    let alice = jid("conformance-alice@localhost");
    let bob = jid("conformance-bob@localhost");
    let (one, two) = (creds("one"), creds("two"));

    assert_eq!(store.credentials(&alice).await.expect("get"), None);
    store.create(&alice, &one).await.expect("create");
    assert!(matches!(
        store.create(&alice, &two).await,
        Err(StorageError::AlreadyExists)
    ));
    assert_eq!(
        store.credentials(&alice).await.expect("get"),
        Some(one.clone())
    );

    store.set_credentials(&alice, &two).await.expect("set");
    assert_eq!(
        store.credentials(&alice).await.expect("get"),
        Some(two.clone())
    );
    assert!(matches!(
        store.set_credentials(&bob, &one).await,
        Err(StorageError::NotFound)
    ));

    store.create(&bob, &one).await.expect("create bob");
    let listed = store.list().await.expect("list");
    let ours: Vec<_> = listed
        .iter()
        .filter(|j| j.local().is_some_and(|l| l.starts_with("conformance-")))
        .collect();
    assert_eq!(ours, vec![&alice, &bob], "sorted");

    assert!(store.remove(&alice).await.expect("remove"));
    assert!(!store.remove(&alice).await.expect("remove again"));
    assert_eq!(store.credentials(&alice).await.expect("get"), None);
    assert!(store.remove(&bob).await.expect("remove bob"));
}

/// [`RosterStore`]: atomic edits, versions, unchanged edits, missing accounts.
pub async fn roster<B: Backend>(store: &B) {
    let owner = jid("conformance-roster@localhost");
    let (romeo, nurse) = (jid("romeo@example.net"), jid("nurse@example.net"));
    store.create(&owner, &creds("x")).await.expect("create");
    assert_eq!(store.roster(&owner).await.expect("empty").items, vec![]);

    let added = store
        .update(
            &owner,
            &romeo,
            Box::new(|row| {
                assert_eq!(row, None);
                let mut item = RosterItem::new(jid("romeo@example.net"));
                item.name = Some("Romeo & co".into());
                item.groups = vec!["Friends".into(), "Lovers".into()];
                item.listed = true;
                item.ask = true;
                Some(item)
            }),
        )
        .await
        .expect("add")
        .after
        .expect("changed");
    assert!(added.version > 0);
    assert_eq!(added.jid, romeo);

    let unchanged = store
        .update(&owner, &romeo, Box::new(|_| None))
        .await
        .expect("no-op");
    assert_eq!(unchanged.before, Some(added.clone()));
    assert_eq!(unchanged.after, None);
    assert_eq!(
        store.roster(&owner).await.expect("r").version,
        added.version
    );

    let pending = store
        .update(
            &owner,
            &nurse,
            Box::new(|_| {
                let mut item = RosterItem::new(jid("nurse@example.net"));
                item.pending_in = Some("<presence type='subscribe'/>".into());
                Some(item)
            }),
        )
        .await
        .expect("pending")
        .after
        .expect("changed");
    assert!(pending.version > added.version, "versions increase");

    let updated = store
        .update(
            &owner,
            &romeo,
            Box::new(|row| {
                let mut row = row.expect("existing row");
                row.subscription = Subscription::Both;
                row.ask = false;
                row.approved = true;
                row.groups.clear();
                Some(row)
            }),
        )
        .await
        .expect("update")
        .after
        .expect("changed");
    let roster = store.roster(&owner).await.expect("roster");
    assert_eq!(roster.version, updated.version);
    let contacts: Vec<&Jid> = roster.items.iter().map(|i| &i.jid).collect();
    assert_eq!(contacts, [&nurse, &romeo], "items in contact order");
    assert_eq!(
        store.item(&owner, &romeo).await.expect("item"),
        Some(updated.clone())
    );
    assert_eq!(updated.name.as_deref(), Some("Romeo & co"));
    assert_eq!(updated.subscription, Subscription::Both);
    assert!(updated.groups.is_empty() && updated.approved && !updated.ask);
    assert_eq!(
        store.item(&owner, &nurse).await.expect("item"),
        Some(pending)
    );

    let ghost = jid("conformance-ghost@localhost");
    assert_eq!(store.roster(&ghost).await.expect("read").items, vec![]);
    assert!(matches!(
        store
            .update(
                &ghost,
                &romeo,
                Box::new(|_| Some(RosterItem::new(jid("a@b"))))
            )
            .await,
        Err(StorageError::NotFound)
    ));
    store.remove(&owner).await.expect("cleanup");
}

/// [`OfflineStore`]: order, quota, take empties.
pub async fn offline<B: Backend>(store: &B) {
    let owner = jid("conformance-offline@localhost");
    store.create(&owner, &creds("x")).await.expect("create");
    for i in 0..3 {
        store
            .push(&owner, &format!("<message id='{i}'/>"), 3)
            .await
            .expect("push");
    }
    assert!(matches!(
        store.push(&owner, "<message id='over'/>", 3).await,
        Err(StorageError::QuotaExceeded)
    ));
    let held = store.take(&owner).await.expect("take");
    assert_eq!(
        held,
        vec![
            "<message id='0'/>",
            "<message id='1'/>",
            "<message id='2'/>"
        ]
    );
    assert!(store.take(&owner).await.expect("again").is_empty());
    // `held` reads without taking, oldest first.
    store
        .push(&owner, "<message id='a'/>", 3)
        .await
        .expect("push");
    store
        .push(&owner, "<message id='b'/>", 3)
        .await
        .expect("push");
    let expected = vec!["<message id='a'/>", "<message id='b'/>"];
    assert_eq!(store.held(&owner).await.expect("held"), expected);
    assert_eq!(store.take(&owner).await.expect("take"), expected);
    assert!(store.held(&owner).await.expect("held").is_empty());
    let ghost = jid("conformance-ghost@localhost");
    assert!(matches!(
        store.push(&ghost, "<message/>", 3).await,
        Err(StorageError::NotFound)
    ));
    store.remove(&owner).await.expect("cleanup");
}

/// [`BlockStore`]: set semantics, sorted, unblock all.
pub async fn blocks<B: Backend>(store: &B) {
    let owner = jid("conformance-blocks@localhost");
    store.create(&owner, &creds("x")).await.expect("create");
    let list = [
        jid("b@example.net"),
        jid("example.org"),
        jid("a@example.net/r"),
    ];
    store.block(&owner, &list).await.expect("block");
    store.block(&owner, &list[..1]).await.expect("idempotent");
    let mut sorted = list.to_vec();
    sorted.sort();
    assert_eq!(store.blocked(&owner).await.expect("list"), sorted);
    store
        .unblock(&owner, &list[1..2])
        .await
        .expect("unblock one");
    assert_eq!(store.blocked(&owner).await.expect("list").len(), 2);
    store.unblock(&owner, &[]).await.expect("unblock all");
    assert!(store.blocked(&owner).await.expect("list").is_empty());
    store.remove(&owner).await.expect("cleanup");
}

/// [`DocumentStore`]: put, replace, remove.
pub async fn documents<B: Backend>(store: &B) {
    let owner = jid("conformance-docs@localhost");
    store.create(&owner, &creds("x")).await.expect("create");
    assert_eq!(
        DocumentStore::get(store, &owner, "vcard")
            .await
            .expect("get"),
        None
    );
    store
        .put(&owner, "vcard", Some("<vCard/>"))
        .await
        .expect("put");
    store
        .put(&owner, "vcard", Some("<vCard><FN>J</FN></vCard>"))
        .await
        .expect("replace");
    assert_eq!(
        DocumentStore::get(store, &owner, "vcard")
            .await
            .expect("get")
            .as_deref(),
        Some("<vCard><FN>J</FN></vCard>")
    );
    store.put(&owner, "vcard", None).await.expect("remove");
    assert_eq!(
        DocumentStore::get(store, &owner, "vcard")
            .await
            .expect("get"),
        None
    );
    store.remove(&owner).await.expect("cleanup");
}

/// Removing an account removes all its data; a new account of that name starts empty.
async fn removal_takes_everything<B: Backend>(store: &B) {
    let owner = jid("conformance-gone@localhost");
    let contact = jid("contact@example.net");
    store.create(&owner, &creds("x")).await.expect("create");
    let row = Box::new(|_| {
        let mut item = RosterItem::new(jid("contact@example.net"));
        item.listed = true;
        Some(item)
    });
    store.update(&owner, &contact, row).await.expect("roster");
    store.push(&owner, "<message/>", 10).await.expect("offline");
    store
        .block(&owner, std::slice::from_ref(&contact))
        .await
        .expect("block");
    store
        .put(&owner, "vcard", Some("<vCard/>"))
        .await
        .expect("doc");
    assert!(store.remove(&owner).await.expect("remove"));
    store.create(&owner, &creds("x")).await.expect("recreate");
    assert!(store.roster(&owner).await.expect("roster").items.is_empty());
    assert!(store.take(&owner).await.expect("offline").is_empty());
    assert!(store.blocked(&owner).await.expect("blocks").is_empty());
    assert_eq!(
        DocumentStore::get(store, &owner, "vcard")
            .await
            .expect("doc"),
        None
    );
    store.remove(&owner).await.expect("cleanup");
}

/// [`SessionRegistry`] behaviour.
pub async fn registry(reg: &dyn SessionRegistry) {
    let phone = jid("conformance-carol@localhost/phone");
    let laptop = jid("conformance-carol@localhost/laptop");
    let rec = |j: &Jid, conn| SessionRecord::bound(j.clone(), "edge-1", conn);

    assert_eq!(reg.bind(rec(&phone, 1)).await.expect("bind"), None);
    assert_eq!(reg.bind(rec(&laptop, 2)).await.expect("bind"), None);
    let mut all = reg
        .sessions(&phone.bare())
        .await
        .expect("sessions")
        .to_vec();
    all.sort_by_key(|r| r.conn);
    assert_eq!(all, vec![rec(&phone, 1), rec(&laptop, 2)]);

    // RFC 6120 §7.7.2.2: the new session replaces the old one with the same full JID.
    assert_eq!(
        reg.bind(rec(&phone, 3)).await.expect("rebind"),
        Some(rec(&phone, 1))
    );

    // Updates reach only the session that still owns the connection.
    let presence = Presence {
        priority: -5,
        stanza: "<presence><priority>-5</priority></presence>".into(),
    };
    let p = presence.clone();
    let edit = Box::new(move |r: &mut SessionRecord| {
        r.presence = Some(p.clone());
        r.carbons = true;
        r.interested = true;
        r.directed.push(Jid::parse("x@example.net/y").expect("jid"));
    });
    let updated = reg
        .update(&phone, 3, edit)
        .await
        .expect("update")
        .expect("live");
    assert_eq!(updated.presence, Some(presence));
    assert!(updated.carbons && updated.interested);
    assert_eq!(updated.directed, vec![jid("x@example.net/y")]);
    assert_eq!(
        reg.update(&phone, 1, Box::new(|r| r.carbons = false))
            .await
            .expect("stale"),
        None
    );
    let stored = reg.sessions(&phone.bare()).await.expect("sessions");
    assert!(stored.contains(&updated), "update persisted");

    // The replaced connection's late unbind must not remove its successor.
    assert_eq!(reg.unbind(&phone, 1).await.expect("stale unbind"), None);
    assert_eq!(reg.unbind(&phone, 3).await.expect("unbind"), Some(updated));
    assert_eq!(
        reg.unbind(&laptop, 2).await.expect("unbind"),
        Some(rec(&laptop, 2))
    );
    assert!(reg
        .sessions(&phone.bare())
        .await
        .expect("sessions")
        .is_empty());
    // An XEP-0114 component binds its domain: a bare JID, no resource.
    let component = jid("conformance-push.localhost");
    assert_eq!(reg.bind(rec(&component, 4)).await.expect("bind"), None);
    let found = reg.sessions(&component).await.expect("sessions").to_vec();
    assert_eq!(found, vec![rec(&component, 4)]);
    assert_eq!(
        reg.unbind(&component, 4).await.expect("unbind"),
        Some(rec(&component, 4))
    );
    liveness(reg).await;
    reconciling(reg).await;
    relocate::relocating(reg).await;
    online::online(reg).await;
    pending::pending_and_flush_lock(reg).await;
    let epoch = reg.epoch().await.expect("epoch");
    assert_eq!(
        reg.epoch().await.expect("epoch"),
        epoch,
        "stable while data lives"
    );
}

/// Edge liveness and reaping: a dead edge's sessions are removed once.
async fn liveness(reg: &dyn SessionRegistry) {
    let live = SessionRecord::bound(jid("conformance-dave@localhost/a"), "edge-live", 7);
    let doomed = SessionRecord::bound(jid("conformance-dave@localhost/b"), "edge-dead", 8);
    let also = SessionRecord::bound(jid("conformance-erin@localhost/c"), "edge-dead", 9);
    for r in [&live, &doomed, &also] {
        reg.bind(r.clone()).await.expect("bind");
    }
    // A resync binds the same connection again: nothing is replaced, and the edge
    // index still knows the session (it is reaped below).
    assert_eq!(reg.bind(doomed.clone()).await.expect("rebind"), None);
    let long = std::time::Duration::from_secs(60);
    reg.heartbeat("edge-live", long).await.expect("heartbeat");
    // Long enough that the next call finds it alive on a loaded machine.
    reg.heartbeat("edge-dead", std::time::Duration::from_millis(1000))
        .await
        .expect("heartbeat");
    assert!(!reg
        .dead_edges()
        .await
        .expect("dead")
        .contains(&"edge-dead".to_owned()));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let dead = reg.dead_edges().await.expect("dead");
    assert!(dead.contains(&"edge-dead".to_owned()), "{dead:?}");
    assert!(!dead.contains(&"edge-live".to_owned()), "{dead:?}");
    let (first, second) = tokio::join!(reg.reap("edge-dead"), reg.reap("edge-dead"));
    let mut reaped: Vec<u64> = first
        .expect("reap")
        .into_iter()
        .chain(second.expect("reap"))
        .map(|r| r.conn)
        .collect();
    reaped.sort_unstable();
    assert_eq!(reaped, vec![8, 9], "each record reaped exactly once");
    let left = reg.sessions(&live.jid.bare()).await.expect("sessions");
    assert_eq!(*left, vec![live.clone()]);
    assert!(!reg
        .dead_edges()
        .await
        .expect("dead")
        .contains(&"edge-dead".to_owned()));
    reg.unbind(&live.jid, live.conn).await.expect("cleanup");
}

/// An edge reconciles: its sessions it does not hold go, once; nobody else's do.
async fn reconciling(reg: &dyn SessionRegistry) {
    let at = |j: &str, edge: &str, conn| SessionRecord::bound(jid(j), edge, conn);
    let kept = at("conformance-fay@localhost/a", "edge-rec", 1);
    let lost = [
        at("conformance-fay@localhost/b", "edge-rec", 2),
        at("conformance-gus@localhost/c", "edge-rec", 3),
    ];
    let elsewhere = at("conformance-hal@localhost/d", "edge-rec-other", 4);
    // Moved to another edge with the same connection id: no longer this edge's.
    let moved = at("conformance-ida@localhost/e", "edge-rec-other", 5);
    for r in lost.iter().chain([&kept, &elsewhere]) {
        reg.bind(r.clone()).await.expect("bind");
    }
    reg.bind(at("conformance-ida@localhost/e", "edge-rec", 5))
        .await
        .expect("bind");
    reg.bind(moved.clone()).await.expect("rebind elsewhere");

    let held = [(kept.jid.clone(), kept.conn), (lost[0].jid.clone(), 99)];
    let (first, second) = tokio::join!(
        reg.reconcile("edge-rec", &held),
        reg.reconcile("edge-rec", &held)
    );
    let mut removed: Vec<SessionRecord> = first
        .expect("reconcile")
        .into_iter()
        .chain(second.expect("reconcile"))
        .collect();
    removed.sort_by_key(|r| r.conn);
    assert_eq!(removed, lost.to_vec(), "each record removed exactly once");
    assert!(reg
        .reconcile("edge-rec", &held)
        .await
        .expect("again")
        .is_empty());
    let fay = reg.sessions(&kept.jid.bare()).await.expect("sessions");
    assert_eq!(*fay, vec![kept.clone()]);
    assert!(reg
        .sessions(&lost[1].jid.bare())
        .await
        .expect("sessions")
        .is_empty());
    for other in [&elsewhere, &moved] {
        let left = reg.sessions(&other.jid.bare()).await.expect("sessions");
        assert_eq!(*left, vec![other.clone()], "other edges untouched");
    }
    assert_eq!(
        reg.reconcile("edge-rec", &[]).await.expect("all"),
        vec![kept]
    );
    for r in [elsewhere, moved] {
        reg.unbind(&r.jid, r.conn).await.expect("cleanup");
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_backends_conform() {
        super::backend(&crate::MemoryStore::default()).await;
        super::registry(&crate::MemoryRegistry::default()).await;
    }

    /// The in-memory table lives in `switchyard-model`; its conformance runs here, with
    /// the suite.
    #[tokio::test]
    async fn memory_login_failures_conform() {
        super::login_failures(&crate::MemoryLoginFailures::default()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory_quotas_hold_under_concurrency() {
        let store = std::sync::Arc::new(crate::MemoryStore::default());
        super::quotas_under_concurrency(&[store]).await;
    }
}
