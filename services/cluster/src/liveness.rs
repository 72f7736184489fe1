//! Edge liveness as the routers see it (DESIGN: failure semantics).
//!
//! Every router refreshes, with a TTL, the liveness of each edge that holds a link to it;
//! an edge is therefore alive while any router hears from it. Every router also looks
//! for edges whose liveness expired and reaps their sessions; the registry hands each
//! reaped session to exactly one router, which sends its unavailable presence. So when an
//! edge dies, its sessions leave the registry within about `ttl` plus one period, and
//! contacts are told once.
//!
//! A dead edge's resumable sessions (XEP-0198) are the exception: their records stay
//! while their clients may still resume them on another edge (see
//! `router_side::kept`), and the edge's other sessions go without them. A router that
//! never linked with the dead edge cannot tell them apart and waits
//! [`UNKNOWN_EDGE_PATIENCE`] before reaping what the others left.
//!
//! On the same beat each router checks that the registry still holds its data (see
//! `switchyard_router`'s `rebuild` module): when Redis restarted empty, the router asks
//! its edges to register their live sessions again, even if no message is waiting.

use crate::router_side::{DeadEdge, EdgeLinks};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;
use switchyard_router::Router;
use switchyard_storage::SessionRegistry;
use tokio_util::sync::CancellationToken;

/// How long a router that never linked with a dead edge waits before reaping it itself:
/// the routers that did know it keep its resumable sessions (`router_side::kept`), and
/// reap the rest at once; this one reaps only what they left (all of them gone, say).
const UNKNOWN_EDGE_PATIENCE: Duration = Duration::from_secs(600);

/// Runs until `shutdown`: heartbeats every `ttl / 3`, reaping on the same beat.
pub async fn keep_edges_alive(
    links: Arc<EdgeLinks>,
    registry: Arc<dyn SessionRegistry>,
    router: Arc<Router>,
    ttl: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(ttl / 3);
    // Dead edges this router never linked with, since when it has seen them dead.
    let mut unknown: HashMap<String, Instant> = HashMap::new();
    // The check can wait for the edges for longer than a beat; heartbeats must not.
    let mut check: Option<tokio::task::JoinHandle<bool>> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if check
            .as_ref()
            .is_none_or(tokio::task::JoinHandle::is_finished)
        {
            let router = router.clone();
            check = Some(tokio::spawn(async move { router.registry_settled().await }));
        }
        let heard = links.edges();
        links.sweep_kept();
        for edge in &heard {
            if let Err(e) = registry.heartbeat(edge, ttl).await {
                tracing::warn!(error = %e, edge, "edge heartbeat failed");
            }
        }
        let dead = match registry.dead_edges().await {
            Ok(dead) => dead,
            Err(e) => {
                tracing::warn!(error = %e, "dead edge scan failed");
                continue;
            }
        };
        unknown.retain(|edge, _| dead.contains(edge));
        for edge in dead.iter().filter(|e| !heard.contains(e)) {
            match crate::router_side::dead_edge(&links, &router, edge).await {
                DeadEdge::Kept => continue,
                DeadEdge::Reap => {}
                DeadEdge::Unknown => {
                    let since = *unknown.entry(edge.clone()).or_insert_with(Instant::now);
                    if since.elapsed() < UNKNOWN_EDGE_PATIENCE {
                        continue;
                    }
                }
            }
            match registry.reap(edge).await {
                // Routers scan at once; the ones that find the sessions taken by
                // another (each record is removed by exactly one) have nothing to say.
                Ok(reaped) if reaped.is_empty() => {}
                Ok(reaped) => {
                    tracing::info!(edge, sessions = reaped.len(), "reaped a dead edge");
                    switchyard_telemetry::ROUTER_REAPED.inc_by(reaped.len() as u64);
                    for record in reaped {
                        router.session_ended(record).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, edge, "reaping failed"),
            }
        }
    }
}
