//! Bringing the registry in line with what this edge really holds (issue: delivery
//! guarantees, "the registry never keeps a session that ended").
//!
//! An unbind is retried for a minute; one that still failed (no router reachable) leaves
//! a registry record that swallows stanzas for its full JID until a delivery to it finds
//! it gone. So when an unbind gave up, and when a router link comes back after being
//! down, the edge sends a router the full list of sessions it holds (`Reconcile`, in
//! chunks), and the router removes this edge's other sessions with their unavailable
//! presence. It runs on the discovery beat, at most once per beat.
//!
//! The list must name every session whose bind may still reach the registry, or a bind
//! landing after the router looked would be removed: a connection claims its JID before
//! its bind starts ([`Connections::claim`]), binds hold `binds` for reading during their
//! call, and the list is taken, and the call made, under the write lock. So no bind runs
//! while a reconcile does; logins wait for it (rare: after lost unbinds or a link outage;
//! at most [`PATIENCE`]).

use super::RemoteRouters;
use std::sync::atomic::Ordering;
use switchyard_rpc::pb;

/// Sessions per chunk: well under the link's message size limit.
const CHUNK: usize = 10_000;
/// Longest a reconcile may hold binds back.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);

impl RemoteRouters {
    /// Asks for a reconcile on the next beat.
    pub(super) fn want_reconcile(&self) {
        self.reconcile_wanted.store(true, Ordering::SeqCst);
    }

    /// Runs a reconcile if one is wanted; one that fails is wanted again.
    pub(super) async fn reconcile_if_wanted(&self) {
        if !self.reconcile_wanted.swap(false, Ordering::SeqCst) {
            return;
        }
        let _no_binds = self.binds.write().await;
        let held = self.connections.held();
        let chunks: Vec<pb::ReconcileChunk> = held
            .chunks(CHUNK)
            .map(|chunk| pb::ReconcileChunk {
                held: chunk
                    .iter()
                    .map(|(jid, conn)| pb::SessionRef {
                        jid: jid.to_string(),
                        conn: *conn,
                    })
                    .collect(),
            })
            .collect();
        // Any router will do: the key only ranks them.
        let call = self.call(self.edge_id.as_str(), chunks, |mut c, r| async move {
            let (metadata, extensions, chunks) = r.into_parts();
            let stream = tokio_stream::iter(chunks);
            c.reconcile(tonic::Request::from_parts(metadata, extensions, stream))
                .await
        });
        // Logins wait while this runs: a router that does not answer must not hold them.
        let reply = tokio::time::timeout(PATIENCE, call)
            .await
            .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("reconcile took too long")));
        match reply {
            Ok(r) => tracing::info!(
                held = held.len(),
                removed = r.removed,
                "registry reconciled with the sessions this edge holds"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "registry reconcile failed; trying again");
                self.want_reconcile();
            }
        }
    }
}
