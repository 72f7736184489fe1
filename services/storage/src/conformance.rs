//! The one conformance suite per trait. Every backend's tests call these functions, so all
//! backends are held to the same behaviour, not to look-alike tests.

use crate::{AccountStore, SessionRecord, SessionRegistry, StorageError};
use switchyard_core::sasl::StoredCredentials;
use switchyard_core::Jid;

fn jid(s: &str) -> Jid {
    Jid::parse(s).expect("test JID")
}

/// [`AccountStore`] behaviour. Uses accounts under the `conformance-*` names.
pub async fn accounts(store: &dyn AccountStore) {
    let alice = jid("conformance-alice@localhost");
    let bob = jid("conformance-bob@localhost");
    let creds = StoredCredentials::from_password("one", 4096).expect("creds");
    let other = StoredCredentials::from_password("two", 4096).expect("creds");

    assert_eq!(store.credentials(&alice).await.expect("get"), None);
    store.create(&alice, &creds).await.expect("create");
    assert!(matches!(
        store.create(&alice, &other).await,
        Err(StorageError::AlreadyExists)
    ));
    assert_eq!(
        store.credentials(&alice).await.expect("get"),
        Some(creds.clone())
    );

    store.set_credentials(&alice, &other).await.expect("set");
    assert_eq!(
        store.credentials(&alice).await.expect("get"),
        Some(other.clone())
    );
    assert!(matches!(
        store.set_credentials(&bob, &creds).await,
        Err(StorageError::NotFound)
    ));

    store.create(&bob, &creds).await.expect("create bob");
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

/// [`SessionRegistry`] behaviour.
pub async fn registry(reg: &dyn SessionRegistry) {
    let phone = jid("conformance-carol@localhost/phone");
    let laptop = jid("conformance-carol@localhost/laptop");
    let rec = |j: &Jid, conn| SessionRecord {
        jid: j.clone(),
        edge: "edge-1".into(),
        conn,
    };

    assert_eq!(reg.bind(rec(&phone, 1)).await.expect("bind"), None);
    assert_eq!(reg.bind(rec(&laptop, 2)).await.expect("bind"), None);
    let mut all = reg.sessions(&phone.bare()).await.expect("sessions");
    all.sort_by_key(|r| r.conn);
    assert_eq!(all, vec![rec(&phone, 1), rec(&laptop, 2)]);

    // RFC 6120 §7.7.2.2: the new session replaces the old one with the same full JID.
    assert_eq!(
        reg.bind(rec(&phone, 3)).await.expect("rebind"),
        Some(rec(&phone, 1))
    );
    // The replaced connection's late unbind must not remove its successor.
    assert!(!reg.unbind(&phone, 1).await.expect("stale unbind"));
    assert!(reg.unbind(&phone, 3).await.expect("unbind"));
    assert!(reg.unbind(&laptop, 2).await.expect("unbind"));
    assert!(reg
        .sessions(&phone.bare())
        .await
        .expect("sessions")
        .is_empty());
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_backends_conform() {
        super::accounts(&crate::MemoryAccounts::default()).await;
        super::registry(&crate::MemoryRegistry::default()).await;
    }
}
