//! The router→edge direction: hand a stanza to the connection holding a session.

use async_trait::async_trait;
use switchyard_core::{Element, StreamCondition};

/// The connection is gone (or its mailbox is full and it was closed as a slow consumer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undeliverable;

#[async_trait]
pub trait EdgeDelivery: Send + Sync + std::fmt::Debug {
    async fn deliver(&self, edge: &str, conn: u64, stanza: Element) -> Result<(), Undeliverable>;
    /// Ends a connection's stream with a condition (e.g. `conflict`).
    async fn terminate(&self, edge: &str, conn: u64, condition: StreamCondition);
}
