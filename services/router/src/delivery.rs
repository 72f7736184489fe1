//! The router→edge direction: hand stanzas to the connections holding sessions.

use async_trait::async_trait;
use futures_util::future::join_all;
use std::collections::HashMap;
use switchyard_core::{Routed, StreamCondition};

/// Why a stanza was not handed to a connection. Either way the router routes it
/// elsewhere (RFC 6121 §8.5.3.2: as for a resource that is not connected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undeliverable {
    /// The edge holds no such connection (it ended, or is being closed as a slow
    /// consumer): the registry's record of it is stale and is removed.
    NoSession,
    /// The edge could not be reached or did not answer in time. The record stays: the
    /// edge's liveness decides whether its sessions are reaped.
    Unreachable,
}

/// A batch's items grouped by connection, in order of each connection's first item; each
/// keeps its place in the batch and the batch's order within its connection.
pub fn per_connection<T>(batch: impl IntoIterator<Item = (u64, T)>) -> Vec<(u64, Vec<(usize, T)>)> {
    let mut groups: Vec<(u64, Vec<(usize, T)>)> = Vec::new();
    let mut index: HashMap<u64, usize> = HashMap::new();
    for (at, (conn, item)) in batch.into_iter().enumerate() {
        let slot = *index.entry(conn).or_insert_with(|| {
            groups.push((conn, Vec::new()));
            groups.len() - 1
        });
        groups[slot].1.push((at, item));
    }
    groups
}

/// One edge's share of a batch: stanzas for its connections, in order per connection.
pub type Batch = Vec<(u64, Routed)>;
/// One result per stanza of a [`Batch`], in the same order.
pub type BatchResults = Vec<Result<(), Undeliverable>>;

#[async_trait]
pub trait EdgeDelivery: Send + Sync + std::fmt::Debug {
    async fn deliver(&self, edge: &str, conn: u64, stanza: Routed) -> Result<(), Undeliverable>;

    /// Hands a batch to one edge and returns once each stanza is written or known not to
    /// be. Stanzas for one connection are written in batch order, and none after one that
    /// failed (it and the rest fail alike), so a session never sees a gap closed out of
    /// order. The default delivers to each connection in turn, to all connections at once.
    async fn deliver_batch(&self, edge: &str, batch: Batch) -> BatchResults {
        let mut results: BatchResults = vec![Err(Undeliverable::NoSession); batch.len()];
        let chains = per_connection(batch)
            .into_iter()
            .map(|(conn, list)| async move {
                let mut out = Vec::with_capacity(list.len());
                let mut failed = None;
                for (at, stanza) in list {
                    let result = match failed {
                        Some(why) => Err(why),
                        None => self.deliver(edge, conn, stanza).await,
                    };
                    failed = failed.or(result.err());
                    out.push((at, result));
                }
                out
            });
        for (at, result) in join_all(chains).await.into_iter().flatten() {
            results[at] = result;
        }
        results
    }

    /// Ends a connection's stream with a condition (e.g. `conflict`).
    async fn terminate(&self, edge: &str, conn: u64, condition: StreamCondition);
    /// Asks every edge to bind its live sessions again (the registry lost its data) and
    /// returns once all have, or after a bound. In one process nothing is ever lost.
    async fn reregister(&self) {}
    /// Whether `edge` can be delivered to now (its link is up). In one process, always.
    fn reachable(&self, edge: &str) -> bool {
        let _ = edge;
        true
    }
}
