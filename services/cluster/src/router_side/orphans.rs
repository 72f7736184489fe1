//! XEP-0198 resumption after the edge that held the session died, the router's part
//! (what is kept, and why, is in [`super::kept`]):
//!
//! 1. an edge's `SmProgress` is checked and kept;
//! 2. `TakeSession` finds no live edge holding the SM-ID and looks among the sessions
//!    it keeps. Until the registry declares that session's edge dead (no router heard
//!    from it within its TTL) the edge may be alive (the session ending there, or the
//!    edge only cut off from this router), so the call waits, up to the TTL and
//!    [`ORPHAN_PATIENCE`], and gives up as soon as the entry goes. Then the registry
//!    record moves to the calling edge's connection (no presence is sent) and what was
//!    stored offline for the session meanwhile is flushed to it (behind the resends);
//! 3. the calling edge asks every router for its share (`TakeCopies`): only for the
//!    session the registry now places on that edge's connection.
//!
//! Trust: progress from an edge names sessions by their edge's link (an edge speaks only
//! for itself), full JIDs of served domains and SM-IDs of bounded length; nothing in it
//! is acted on unless the registry has the same session on the same edge and connection.

use super::kept::{Announced, Kept, Orphan};
use super::service::RouterService;
use super::EdgeLinks;
use std::time::{Duration, Instant};
use switchyard_core::Jid;
use switchyard_router::Router;
use switchyard_rpc::{convert, pb};
use tonic::Status;

/// How long `TakeSession` waits for the registry to declare an edge dead, beyond the
/// edge TTL itself: a link to a host that vanished without a reset is found dead by the
/// router's HTTP/2 keepalive (5 s apart, 5 s to answer: 10 s), and until then this router
/// keeps the edge alive; then a liveness beat (a third of the TTL) and some slack.
const ORPHAN_PATIENCE: Duration = Duration::from_secs(15);
/// How often it looks meanwhile.
const ORPHAN_POLL: Duration = Duration::from_millis(200);

/// Keeps an edge's `SmProgress`; sessions that are not full JIDs of served domains with
/// a plausible SM-ID are ignored.
pub(super) fn progress(service: &RouterService, edge: &str, progress: pb::SmProgress) {
    let announced = progress
        .sessions
        .into_iter()
        .filter_map(|s| {
            let jid = Jid::parse(&s.jid).ok()?;
            let plausible = !s.id.is_empty() && s.id.len() <= super::MAX_SM_ID;
            let served = jid.resource().is_some() && service.router.is_local(&jid);
            (plausible && served).then_some(Announced {
                conn: s.conn,
                id: s.id,
                jid,
                max_secs: s.max_secs,
                acked: s.acked,
                handled: s.handled,
            })
        })
        .collect();
    let full = (progress.full, progress.complete);
    kept(service).progress(edge, announced, &progress.ended, full);
}

fn kept(service: &RouterService) -> &Kept {
    &service.links.kept
}

/// `TakeSession` for a session whose edge died (see the module doc): its description,
/// once its record is on connection `conn` of `edge`; `None` when there is none.
pub(super) async fn take_orphan(
    service: &RouterService,
    edge: &str,
    conn: u64,
    previd: &str,
    account: &Jid,
) -> Option<pb::Orphan> {
    // The edge may be alive (its session ending, its link to this router cut) or dead
    // and not yet declared so: wait for the one or the other.
    let deadline = Instant::now() + service.edge_ttl + ORPHAN_PATIENCE;
    let orphan = loop {
        match kept(service).orphan(previd, account, Instant::now())? {
            (orphan, true) => break orphan,
            (_, false) if Instant::now() >= deadline => return None,
            (_, false) => tokio::time::sleep(ORPHAN_POLL).await,
        }
    };
    if orphan.edge == edge {
        return None;
    }
    let sessions = service.router.fresh_sessions(account).await;
    let old = sessions
        .iter()
        .find(|r| r.edge == orphan.edge && r.conn == orphan.conn && r.jid == orphan.jid)?;
    let moved = match service.router.move_session(old, edge, conn).await {
        Ok(Some(moved)) => moved,
        Ok(None) => {
            tracing::info!(jid = %orphan.jid, to = edge, "another resumption moved the session first");
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e, jid = %orphan.jid, "an orphaned session could not move");
            return None;
        }
    };
    tracing::info!(jid = %orphan.jid, from = orphan.edge, to = edge, "a session of a dead edge is resumed");
    switchyard_telemetry::ROUTER_SM_ORPHANS
        .with_label_values(&["resumed"])
        .inc();
    let router = service.router.clone();
    tokio::spawn(async move { router.catch_up_session(&moved).await });
    Some(orphan_pb(orphan))
}

fn orphan_pb(o: Orphan) -> pb::Orphan {
    pb::Orphan {
        edge: o.edge,
        conn: o.conn,
        jid: o.jid.to_string(),
        id: o.id,
        max_secs: o.max_secs,
        acked: o.acked,
    }
}

/// `TakeCopies`: this router's share of a dead edge's session, for the edge it moved to.
pub(super) async fn take_copies(
    service: &RouterService,
    caller: &str,
    request: pb::TakeCopiesRequest,
) -> Result<pb::TakeCopiesReply, Status> {
    let Some(jid) = kept(service).jid_of(&request.edge, request.old_conn) else {
        return Ok(pb::TakeCopiesReply::default());
    };
    let sessions = service.router.fresh_sessions(&jid.bare()).await;
    let moved_here = sessions
        .iter()
        .any(|r| r.jid == jid && r.edge == caller && r.conn == request.conn);
    if !moved_here {
        return Err(Status::permission_denied(
            "copies only for a session moved to the calling edge's connection",
        ));
    }
    let Some(slice) = kept(service).take(&request.edge, request.old_conn) else {
        return Ok(pb::TakeCopiesReply::default());
    };
    Ok(pb::TakeCopiesReply {
        copies: slice
            .copies
            .into_iter()
            .map(|(seq, xml)| pb::SmCopy {
                seq,
                xml: xml.as_bytes().to_vec(),
            })
            .collect(),
        handled: Some(slice.handled),
    })
}

/// What the liveness beat does with a dead edge (see [`dead_edge`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeadEdge {
    /// Some of its sessions may still be resumed: their records stay, the others went.
    Kept,
    /// This router knew the edge and keeps nothing of it: reap it whole.
    Reap,
    /// This router never held a link with it (it started after the edge died): it cannot
    /// tell resumable sessions from others, and leaves them to the routers that can.
    Unknown,
}

/// The liveness beat for a dead edge: its resumable sessions' records stay while they
/// may be resumed (see [`Kept::dead_edge`]), its other sessions go with their
/// unavailable presence, and the sessions whose time ran out have their copies stored
/// offline.
pub(crate) async fn dead_edge(links: &EdgeLinks, router: &Router, edge: &str) -> DeadEdge {
    let beat = links.kept.dead_edge(edge, Instant::now());
    if beat.keep.is_empty() {
        if !links.kept.knew(edge) {
            return DeadEdge::Unknown;
        }
        links.kept.forget_edge(edge);
        return DeadEdge::Reap;
    }
    for (jid, conn, copies) in beat.expired {
        // Stored while a record of the session is left anywhere: here (nobody resumed),
        // or where a resumption that could not take this share moved it (it gets these
        // from offline storage). None left: the session ended and its edge handed them
        // back itself (its end did not reach this router before the edge died).
        let sessions = router.fresh_sessions(&jid.bare()).await;
        if !sessions.iter().any(|r| r.jid == jid) {
            continue;
        }
        let unacked: Vec<_> = copies
            .into_iter()
            .filter_map(|xml| convert::stanza(xml.as_bytes().to_vec()))
            .collect();
        tracing::info!(%jid, conn, edge, stanzas = unacked.len(), "a session of a dead edge was not resumed in time");
        switchyard_telemetry::ROUTER_SM_ORPHANS
            .with_label_values(&["expired"])
            .inc();
        router.take_unacked(&jid, unacked).await;
    }
    if let Err(e) = router.reconcile(edge, &beat.keep).await {
        tracing::warn!(error = %e, edge, "a dead edge's other sessions could not be removed");
    }
    DeadEdge::Kept
}
