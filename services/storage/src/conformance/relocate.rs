//! [`SessionRegistry::relocate`]: a resumed session moves once, from where it was.

use super::jid;
use crate::{SessionRecord, SessionRegistry};

/// Two resumptions race for a dead edge's session: one moves it, the other finds it gone;
/// the dead edge no longer holds it (it is not reaped with it) and the winner's edge does.
pub(super) async fn relocating(reg: &dyn SessionRegistry) {
    let phone = jid("conformance-jan@localhost/phone");
    let old = SessionRecord::bound(phone.clone(), "edge-gone", 5);
    reg.bind(old.clone()).await.expect("bind");

    assert_eq!(
        reg.relocate(&phone, ("edge-other", 5), ("edge-a", 1))
            .await
            .expect("relocate"),
        None,
        "not from an edge that does not hold it"
    );
    let (a, b) = tokio::join!(
        reg.relocate(&phone, ("edge-gone", 5), ("edge-a", 1)),
        reg.relocate(&phone, ("edge-gone", 5), ("edge-b", 1)),
    );
    let winners: Vec<SessionRecord> = [a, b]
        .into_iter()
        .filter_map(|moved| moved.expect("relocate"))
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one resumption moves it: {winners:?}"
    );
    let moved = &winners[0];
    assert_eq!(moved.conn, 1);
    assert!(["edge-a", "edge-b"].contains(&moved.edge.as_str()));
    assert_eq!(
        SessionRecord {
            edge: old.edge.clone(),
            conn: old.conn,
            ..moved.clone()
        },
        old,
        "everything but the connection kept"
    );
    let stored = reg.sessions(&phone.bare()).await.expect("sessions");
    assert_eq!(*stored, vec![moved.clone()]);
    assert_eq!(
        reg.relocate(&phone, ("edge-gone", 5), ("edge-c", 2))
            .await
            .expect("relocate"),
        None,
        "gone from where it was"
    );
    assert!(
        reg.reap("edge-gone").await.expect("reap").is_empty(),
        "the old edge no longer holds it"
    );
    // The loser may leave an index entry under its edge: it removes nobody.
    for edge in ["edge-a", "edge-b"] {
        let reaped = reg.reap(edge).await.expect("reap");
        let expected = if edge == moved.edge {
            vec![moved.clone()]
        } else {
            vec![]
        };
        assert_eq!(reaped, expected, "only its new edge holds it");
    }
}
