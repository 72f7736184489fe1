//! XEP-0198 resumption on another edge, the router's part (`TakeSession`).
//!
//! The client came back on edge C with the SM-ID of a session held by edge B. Only the
//! edges know SM-IDs, so the router asks, over their links, each edge holding one of
//! the account's sessions where `previd` lives (`Handover` without `export`): at most a
//! few edges, one round trip each. Then, in this order:
//!
//! 1. the registry record moves from B's connection to C's, everything else kept
//!    (presence, carbons, roster interest, directed presence): no presence is sent,
//!    the session goes on. Deliveries from here on queue in C's connection mailbox;
//! 2. B hands the state over (`Handover` with `export`): what it had not had
//!    acknowledged, including what reached it before the move, and its counters; the
//!    session ends on B without an unbind. A delivery that still reaches B finds no
//!    connection, and the router routes it as for a resource that is gone (RFC 6121
//!    §8.5.3.2), which now finds the session on C; the unbind that answer causes names
//!    B's connection and no longer matches the record;
//! 3. the state goes to C, which checks the client's `h` against it and resumes.
//!
//! If B no longer holds the session at step 2 (it expired meanwhile, and its unacked
//! stanzas went to offline storage), the record moved at step 1 is removed again, with
//! the unavailable presence the session's end implies, and C answers `<failed/>`.
//!
//! Trust: the calling edge names its own connection and an account it authenticated;
//! the answering edge's state is checked (a full JID of that account, counts that agree
//! with the queue, every stanza one element) before it goes anywhere.

use super::links::{lock, EdgeLinks, Link};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use switchyard_core::Jid;
use switchyard_router::Router;
use switchyard_rpc::convert;
use switchyard_rpc::pb;
use tokio::sync::oneshot;

/// How long an edge has to answer a Handover.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// Handovers a link is waiting for, by id.
#[derive(Debug, Default)]
pub(super) struct Pending {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<pb::HandedOver>>>,
}

impl Link {
    /// Asks the edge where session `previd` of `account` is (and, with `export`, for
    /// its state); `None` when it does not answer in time.
    async fn handover(&self, previd: &str, account: &Jid, export: bool) -> Option<pb::HandedOver> {
        let id = self.handovers.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (done, answer) = oneshot::channel();
        lock(&self.handovers.waiting).insert(id, done);
        let message = pb::RouterMessage {
            body: Some(pb::router_message::Body::Handover(pb::Handover {
                id,
                previd: previd.to_owned(),
                account: account.to_string(),
                export,
            })),
        };
        let answered = match self.tx.send(Ok(message)).await {
            Ok(()) => tokio::time::timeout(HANDOVER_TIMEOUT, answer)
                .await
                .ok()?
                .ok(),
            Err(_) => None,
        };
        lock(&self.handovers.waiting).remove(&id);
        answered
    }

    /// The edge answered a Handover; answers to ones never asked are ignored.
    pub(super) fn handed_over(&self, answer: pb::HandedOver) {
        if let Some(done) = lock(&self.handovers.waiting).remove(&answer.id) {
            let _ = done.send(answer);
        }
    }
}

/// Moves resumable session `previd` of `account` to connection `conn` of `edge` and
/// returns its state (see the module doc); `None` when no edge holds it.
pub(super) async fn take_session(
    router: &Router,
    links: &EdgeLinks,
    edge: &str,
    conn: u64,
    previd: &str,
    account: &Jid,
) -> Option<pb::SmState> {
    let sessions = router.sessions_of(account).await.ok()?;
    let mut asked: Vec<&str> = Vec::new();
    let mut found = None;
    for s in sessions.iter().filter(|s| s.edge != edge) {
        if asked.contains(&s.edge.as_str()) {
            continue;
        }
        asked.push(&s.edge);
        let Some(link) = links.get(&s.edge) else {
            continue;
        };
        let at = link.handover(previd, account, false).await;
        if let Some(held) = at.filter(|a| a.conn != 0) {
            found = sessions
                .iter()
                .find(|r| r.edge == s.edge && r.conn == held.conn)
                .map(|r| (link, r.clone()));
            break;
        }
    }
    let (link, old) = found?;
    // Moved only from where it was found: a resumption racing this one for the session
    // (the client trying again through another edge) has it, or neither does.
    router.move_session(&old, edge, conn).await.ok()??;
    let state = link
        .handover(previd, account, true)
        .await
        .and_then(|a| a.state)
        .filter(|state| acceptable(state, &old.jid));
    if state.is_none() {
        tracing::info!(jid = %old.jid, "a resumable session ended before it could move");
        router.unbind(&old.jid, conn).await;
    }
    state
}

/// A state an edge handed over, checked before it goes anywhere.
fn acceptable(state: &pb::SmState, jid: &Jid) -> bool {
    let counts = state.sent.wrapping_sub(state.acked) as usize == state.unacked.len();
    let stanzas = state
        .unacked
        .iter()
        .all(|xml| convert::routed(xml.clone()).is_ok());
    state.jid == jid.to_string() && counts && stanzas
}
