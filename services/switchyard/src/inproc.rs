//! The in-process wiring of the all-in-one mode: the edge's [`RouterLink`] calls the router
//! directly, and the router's [`EdgeDelivery`] posts to the edge's connection mailboxes.
//! The cluster replaces both with gRPC implementations of the same traits. Stanzas are
//! routed off the connections' tasks, behind a bounded queue ([`queue`]).

mod queue;

pub(crate) use queue::RoutingQueue;

use async_trait::async_trait;
use futures_util::future::join_all;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::sasl::fast::{IssuedToken, TokenCheck, TokenRequest, TokenVerdict};
use switchyard_core::sasl::{AccountSalts, ScramProof, StoredCredentials};
use switchyard_core::{Jid, Routed, Stanza, StanzaCondition, StreamCondition};
use switchyard_edge::{Connections, RouterLink, SmCount};
use switchyard_router::{per_connection, Batch, BatchResults, EdgeDelivery, Undeliverable};
use switchyard_storage::{
    AccountStore, LoginFailureCounts, LoginFailures, SessionRecord, StorageError,
};

#[derive(Debug)]
pub(crate) struct InProcessLink {
    pub accounts: Arc<dyn AccountStore>,
    /// The login throttle's counts (memory, or Redis when configured).
    pub login_failures: Arc<dyn LoginFailures>,
    /// Where stanzas wait for the router's workers.
    pub queue: Arc<RoutingQueue>,
    /// For what is no stanza from a session (XEP-0357 notifications of detached ones).
    pub router: Arc<switchyard_router::Router>,
}

#[async_trait]
impl LoginFailures for InProcessLink {
    async fn failures(
        &self,
        account: &Jid,
        network: &str,
    ) -> Result<LoginFailureCounts, StorageError> {
        self.login_failures.failures(account, network).await
    }
    async fn record(
        &self,
        account: &Jid,
        network: &str,
        window: Duration,
    ) -> Result<LoginFailureCounts, StorageError> {
        self.login_failures.record(account, network, window).await
    }
    async fn clear(&self, account: &Jid, network: &str) -> Result<(), StorageError> {
        self.login_failures.clear(account, network).await
    }
}

#[async_trait]
impl RouterLink for InProcessLink {
    /// The salts only, as over gRPC: the edge's exchange never holds the keys.
    async fn credentials(&self, account: &Jid) -> Result<Option<AccountSalts>, StorageError> {
        let stored = self.accounts.credentials(account).await?;
        Ok(stored.as_ref().map(StoredCredentials::salts))
    }
    async fn verify(
        &self,
        account: &Jid,
        proof: &ScramProof,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let stored = self.accounts.credentials(account).await?;
        Ok(proof.check(stored.as_ref()))
    }
    async fn verify_token(&self, check: &TokenCheck) -> Result<TokenVerdict, StorageError> {
        self.router.fast_tokens().verify(check).await
    }
    async fn issue_token(&self, request: &TokenRequest) -> Result<IssuedToken, StorageError> {
        self.router.fast_tokens().issue(request).await
    }
    /// In the session's routing lane, behind what an earlier connection queued.
    async fn bind(&self, record: SessionRecord) -> Result<(), StanzaCondition> {
        self.queue.bind(record).await
    }
    /// In the session's routing lane, after every stanza it queued.
    async fn unbind(&self, jid: &Jid, conn: u64, unacked: Vec<Routed>) {
        let unacked = unacked
            .iter()
            .filter_map(|r| Stanza::from_element(r.to_element().ok()?));
        self.queue.unbind(jid, conn, unacked.collect()).await;
    }
    /// Returns once the stanza is queued for routing (see [`queue`]).
    /// One process: an edge that dies takes its routers with it, so a resumable
    /// session's stanzas need not wait for their routing.
    async fn submit(&self, stanza: Stanza, _: Option<SmCount>) {
        self.queue.submit(stanza).await;
    }
    async fn notify_detached(&self, jid: &Jid, message: Routed) {
        if let Some(stanza) = message.to_element().ok().and_then(Stanza::from_element) {
            self.router.notify_detached(jid, &stanza).await;
        }
    }
}

/// Delivery to this process's own edge; the edge id is checked so a stale record naming
/// another edge is reported undeliverable rather than misdelivered. A delivery waits for
/// room in the connection's mailbox (the router, and through it the sender, is pushed back
/// rather than the recipient closed) and succeeds once the stanza is written.
#[derive(Debug)]
pub(crate) struct LocalEdge {
    pub edge_id: String,
    pub connections: Arc<Connections>,
}

#[async_trait]
impl EdgeDelivery for LocalEdge {
    async fn deliver(&self, edge: &str, conn: u64, stanza: Routed) -> Result<(), Undeliverable> {
        if edge != self.edge_id {
            return Err(Undeliverable::NoSession);
        }
        match self.connections.deliver(conn, stanza, false).await {
            Some(_) => Ok(()),
            None => Err(Undeliverable::NoSession),
        }
    }
    /// Each connection's stanzas queued together and written in order; all connections
    /// at once.
    async fn deliver_batch(&self, edge: &str, batch: Batch) -> BatchResults {
        if edge != self.edge_id {
            return vec![Err(Undeliverable::NoSession); batch.len()];
        }
        let mut results = vec![Err(Undeliverable::NoSession); batch.len()];
        let sends = per_connection(batch)
            .into_iter()
            .map(|(conn, items)| async move {
                let (at, stanzas): (Vec<usize>, Vec<Routed>) = items.into_iter().unzip();
                let written = self.connections.deliver_all(conn, stanzas, false).await;
                at.into_iter().zip(written)
            });
        for (at, written) in join_all(sends).await.into_iter().flatten() {
            if written.is_some() {
                results[at] = Ok(());
            }
        }
        results
    }
    async fn terminate(&self, edge: &str, conn: u64, condition: StreamCondition) {
        if edge == self.edge_id {
            self.connections.terminate(conn, condition);
        }
    }
}
