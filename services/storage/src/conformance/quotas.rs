//! The quota part of the conformance suite: per-account bounds on offline messages
//! (count and bytes) and on document families (keys and bytes), at their bound, one past
//! it, and under concurrent writers.

use super::{creds, jid};
use crate::{Backend, DocumentQuota, DocumentStore, OfflineQuota, StorageError};
use std::sync::Arc;

/// [`OfflineStore`]: the byte quota, at its bound and one past it, beside the count.
pub async fn offline_bytes<B: Backend>(store: &B) {
    let owner = jid("conformance-offline-bytes@localhost");
    store.create(&owner, &creds("x")).await.expect("create");
    let ten = "<m>12345</m>"; // 12 bytes
    let multibyte = "<m>ééééé</m>"; // 17 bytes: the quota counts bytes, not characters
    let quota = OfflineQuota {
        messages: 100,
        bytes: 12 + 12 + 17,
    };
    for stanza in [ten, ten, multibyte] {
        store
            .push_within(&owner, stanza, quota)
            .await
            .expect("within the byte quota");
    }
    assert!(
        matches!(
            store.push_within(&owner, "<m/>", quota).await,
            Err(StorageError::QuotaExceeded)
        ),
        "one byte past the quota is refused"
    );
    let huge = "x".repeat(quota.bytes + 1);
    store.take(&owner).await.expect("take");
    assert!(
        matches!(
            store.push_within(&owner, &huge, quota).await,
            Err(StorageError::QuotaExceeded)
        ),
        "a message larger than the whole quota never fits"
    );
    store
        .push_within(&owner, ten, quota)
        .await
        .expect("taking frees the bytes");
    let count_only = OfflineQuota {
        messages: 2,
        bytes: usize::MAX,
    };
    store
        .push_within(&owner, ten, count_only)
        .await
        .expect("2nd");
    assert!(matches!(
        store.push_within(&owner, ten, count_only).await,
        Err(StorageError::QuotaExceeded)
    ));
    // Putting back what was taken (the count-only push) ignores the byte bound.
    store
        .push(&owner, &huge, usize::MAX)
        .await
        .expect("re-store");
    assert_eq!(store.take(&owner).await.expect("take").len(), 3);
    let ghost = jid("conformance-ghost@localhost");
    assert!(matches!(
        store.push_within(&ghost, ten, quota).await,
        Err(StorageError::NotFound)
    ));
    store.remove(&owner).await.expect("cleanup");
}

/// Concurrent pushes and bounded puts through several handles on one backend (several
/// routers on one database) never overshoot a quota: exactly what fits is accepted.
pub async fn quotas_under_concurrency<B: Backend + 'static>(handles: &[Arc<B>]) {
    const TRIES: usize = 40;
    let owner = jid("conformance-concurrent@localhost");
    handles[0]
        .create(&owner, &creds("x"))
        .await
        .expect("create");
    let stanza = format!("<message>{}</message>", "x".repeat(81)); // 100 bytes
    let quota = OfflineQuota {
        messages: 1000,
        bytes: 1050, // room for 10 and a half
    };
    let mut pushes = tokio::task::JoinSet::new();
    for i in 0..TRIES {
        let (store, owner, stanza) = (
            handles[i % handles.len()].clone(),
            owner.clone(),
            stanza.clone(),
        );
        pushes.spawn(async move { store.push_within(&owner, &stanza, quota).await });
    }
    let accepted = outcomes(pushes).await;
    assert_eq!(accepted, 10, "offline byte quota under concurrency");
    assert_eq!(handles[0].take(&owner).await.expect("take").len(), 10);

    let docs = DocumentQuota {
        keys: 7,
        bytes: usize::MAX,
    };
    let mut puts = tokio::task::JoinSet::new();
    for i in 0..TRIES {
        let (store, owner) = (handles[i % handles.len()].clone(), owner.clone());
        puts.spawn(async move {
            let key = format!("fam:{i}");
            store.put_within(&owner, "fam:", &key, "<x/>", docs).await
        });
    }
    assert_eq!(
        outcomes(puts).await,
        7,
        "document key quota under concurrency"
    );
    handles[0].remove(&owner).await.expect("cleanup");
}

/// How many succeeded; every failure must be the quota.
async fn outcomes(mut set: tokio::task::JoinSet<Result<(), StorageError>>) -> usize {
    let mut accepted = 0;
    while let Some(done) = set.join_next().await {
        match done.expect("task") {
            Ok(()) => accepted += 1,
            Err(StorageError::QuotaExceeded) => {}
            Err(e) => panic!("unexpected failure: {e}"),
        }
    }
    accepted
}

/// [`DocumentStore::put_within`]: a family's key count and bytes, replacing, removing;
/// [`DocumentStore::family`] lists it.
pub async fn bounded_documents<B: Backend>(store: &B) {
    let owner = jid("conformance-bounded-docs@localhost");
    store.create(&owner, &creds("x")).await.expect("create");
    // Outside the family: never counted.
    store
        .put(&owner, "vcard", Some(&"v".repeat(500)))
        .await
        .expect("other doc");
    let quota = DocumentQuota { keys: 2, bytes: 40 };
    // "p:a" + 10 bytes = 13; "p:b" + 10 = 13.
    store
        .put_within(&owner, "p:", "p:a", "0123456789", quota)
        .await
        .expect("first key");
    store
        .put_within(&owner, "p:", "p:b", "0123456789", quota)
        .await
        .expect("second key");
    assert!(
        matches!(
            store.put_within(&owner, "p:", "p:c", "0", quota).await,
            Err(StorageError::QuotaExceeded)
        ),
        "a third key is past the key count"
    );
    // Replacing counts the new value only: 13 + 3 + 24 = 40 fits exactly, 41 does not.
    store
        .put_within(&owner, "p:", "p:b", &"y".repeat(24), quota)
        .await
        .expect("replace up to the byte bound");
    assert!(matches!(
        store
            .put_within(&owner, "p:", "p:b", &"y".repeat(25), quota)
            .await,
        Err(StorageError::QuotaExceeded)
    ));
    assert_eq!(
        DocumentStore::get(store, &owner, "p:b")
            .await
            .expect("get")
            .map(|v| v.len()),
        Some(24),
        "a refused put changes nothing"
    );
    // A family is listed by prefix, in key order, and nothing outside it (the prefix's
    // `_` and `%` are no patterns).
    store
        .put(&owner, "p_x", Some("other"))
        .await
        .expect("look-alike");
    store
        .put(&owner, "p%", Some("other"))
        .await
        .expect("look-alike");
    let listed = store.family(&owner, "p:").await.expect("family");
    let want = [("p:a", "0123456789".to_owned()), ("p:b", "y".repeat(24))];
    let want: Vec<(String, String)> = want.into_iter().map(|(k, v)| (k.into(), v)).collect();
    assert_eq!(listed, want);
    assert!(store.family(&owner, "q:").await.expect("none").is_empty());
    store.put(&owner, "p:a", None).await.expect("remove frees");
    store
        .put_within(&owner, "p:", "p:c", "0", quota)
        .await
        .expect("room again");
    let ghost = jid("conformance-ghost@localhost");
    assert!(matches!(
        store.put_within(&ghost, "p:", "p:a", "0", quota).await,
        Err(StorageError::NotFound)
    ));
    store.remove(&owner).await.expect("cleanup");
}
