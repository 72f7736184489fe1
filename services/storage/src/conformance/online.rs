//! [`SessionRegistry::online`] and [`SessionRegistry::online_count`]: the cluster-wide
//! listing pages through every edge's sessions, each once, whatever the page size, and
//! filters by domain.

use super::jid;
use crate::{SessionRecord, SessionRegistry, StorageError};
use std::collections::BTreeSet;

const DOMAIN: &str = "conformance-online.example";

/// Every page from the start, at `limit` per page: the full JIDs listed, in order.
async fn all_pages(reg: &dyn SessionRegistry, domain: Option<&str>, limit: usize) -> Vec<String> {
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let page = reg
            .online(domain, cursor.as_deref(), limit)
            .await
            .expect("page");
        listed.extend(page.sessions.iter().map(|s| s.jid.to_string()));
        match page.next {
            Some(next) => cursor = Some(next),
            None => return listed,
        }
    }
    panic!("the listing did not end in 100 pages of {limit}");
}

pub async fn online(reg: &dyn SessionRegistry) {
    let before = reg.online_count().await.expect("count");
    // Two edges with sessions (three and two), in edge order a, c; one other domain.
    let records: Vec<SessionRecord> = [
        ("u1", "r", "edge-online-a", 1),
        ("u2", "r", "edge-online-a", 2),
        ("u3", "a/b", "edge-online-a", 3),
        ("u4", "r", "edge-online-c", 4),
        ("u5", "r", "edge-online-c", 5),
    ]
    .iter()
    .map(|(user, res, edge, conn)| {
        SessionRecord::bound(jid(&format!("{user}@{DOMAIN}/{res}")), *edge, *conn)
    })
    .collect();
    for r in &records {
        reg.bind(r.clone()).await.expect("bind");
    }
    let other = SessionRecord::bound(jid("u6@conformance-other.example/r"), "edge-online-a", 6);
    reg.bind(other.clone()).await.expect("bind");
    assert_eq!(reg.online_count().await.expect("count"), before + 6);

    let expected: BTreeSet<String> = records.iter().map(|r| r.jid.to_string()).collect();
    // Page sizes around the edges' sizes and the total: 1, 2, 3 (one edge), 5 (all),
    // 6 (one more than all).
    for limit in [1, 2, 3, 5, 6] {
        let listed = all_pages(reg, Some(DOMAIN), limit).await;
        let distinct: BTreeSet<String> = listed.iter().cloned().collect();
        assert_eq!(distinct, expected, "limit {limit}");
        assert_eq!(listed.len(), expected.len(), "each once at limit {limit}");
    }
    // Without a filter the other domain is there too.
    let everything: BTreeSet<String> = all_pages(reg, None, 2).await.into_iter().collect();
    assert!(everything.is_superset(&expected));
    assert!(everything.contains(&other.jid.to_string()));
    // The listing names the edge and the connection.
    let first = reg.online(Some(DOMAIN), None, 10).await.expect("page");
    let u1 = first
        .sessions
        .iter()
        .find(|s| s.jid == records[0].jid)
        .expect("u1 listed");
    assert_eq!((u1.edge.as_str(), u1.conn), ("edge-online-a", 1));
    // A session that ended is not listed.
    reg.unbind(&records[0].jid, 1).await.expect("unbind");
    let after: BTreeSet<String> = all_pages(reg, Some(DOMAIN), 2).await.into_iter().collect();
    assert!(!after.contains(&records[0].jid.to_string()));
    assert_eq!(after.len(), 4);
    // A cursor this backend never gave is refused as such, not read as the end.
    for bad in ["not a cursor", "", "0", "x:edge-online-a"] {
        match reg.online(Some(DOMAIN), Some(bad), 2).await {
            Err(StorageError::Invalid(_)) => {}
            other => panic!("the cursor {bad:?} gave {other:?}"),
        }
    }
    for r in records.iter().skip(1).chain([&other]) {
        reg.unbind(&r.jid, r.conn).await.expect("cleanup");
    }
    assert_eq!(reg.online_count().await.expect("count"), before);
}
