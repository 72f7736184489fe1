//! The router→edge direction: hand a stanza to the connection holding a session.

use async_trait::async_trait;
use switchyard_core::{Element, StreamCondition};

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

#[async_trait]
pub trait EdgeDelivery: Send + Sync + std::fmt::Debug {
    async fn deliver(&self, edge: &str, conn: u64, stanza: Element) -> Result<(), Undeliverable>;
    /// Ends a connection's stream with a condition (e.g. `conflict`).
    async fn terminate(&self, edge: &str, conn: u64, condition: StreamCondition);
    /// Asks every edge to bind its live sessions again (the registry lost its data) and
    /// returns once all have, or after a bound. In one process nothing is ever lost.
    async fn reregister(&self) {}
}
