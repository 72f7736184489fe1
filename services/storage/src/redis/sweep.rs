//! Removing many sessions of one edge at once: what reaping a dead edge and reconciling
//! a live one share.
//!
//! Sessions first, index entries after (see the module order rule): each chunk of
//! entries becomes one batch of scripts (one round trip per slot group), then one SREM
//! of the entries that are settled. The script removes a session only while it still
//! belongs to this edge and connection, so an entry left behind by a replaced session,
//! or a connection id reused on another edge, removes nobody. An entry whose script
//! failed stays in the index for the next sweep.

use super::record::{decode, parse_member};
use super::{conn::Keyed, RedisRegistry};
use crate::traits::SessionRecord;
use crate::StorageError;
use redis::{FromRedisValue, Value};
use std::sync::atomic::Ordering;

/// Index entries handled per batch.
const CHUNK: usize = 1000;

impl RedisRegistry {
    pub(super) async fn index_entries(&self, edge: &str) -> Result<Vec<String>, StorageError> {
        let mut members = redis::cmd("SMEMBERS");
        members.arg(self.index_key(edge));
        self.run(&members).await
    }

    /// Removes the sessions `entries` of `edge`'s index name, then the entries; returns
    /// the removed records, each to exactly one caller. Never fails once something is
    /// removed, so no removed record goes untold: what fails is logged and left for the
    /// next sweep.
    pub(super) async fn sweep(&self, edge: &str, entries: Vec<String>) -> Vec<SessionRecord> {
        let mut removed = Vec::new();
        let channel = self.changes_channel();
        for chunk in entries.chunks(CHUNK) {
            let mut settled: Vec<&String> = Vec::new();
            let mut named = Vec::new();
            let mut scripts = Vec::new();
            for entry in chunk {
                let Some((jid, conn)) = parse_member(entry) else {
                    settled.push(entry); // not an entry at all: drop it
                    continue;
                };
                let (bare, resource) = (jid.bare(), jid.resource().unwrap_or_default());
                let key = self.session_key(&bare);
                let args = [
                    resource,
                    &conn.to_string(),
                    edge,
                    &channel,
                    &bare.to_string(),
                ];
                scripts.push(Keyed {
                    cmd: self.unbind_script.eval(&key, &args),
                    key,
                });
                named.push((entry, jid));
            }
            self.commands
                .fetch_add(scripts.len() as u64, Ordering::Relaxed);
            let outcomes = self.conn.batch(scripts).await;
            for ((entry, jid), outcome) in named.into_iter().zip(outcomes) {
                match outcome {
                    Ok(Value::Nil) => settled.push(entry),
                    Ok(value) => {
                        settled.push(entry);
                        match String::from_redis_value(value).map(|json| decode(jid, &json)) {
                            Ok(Ok(record)) => removed.push(record),
                            _ => tracing::warn!(edge, "removed an unreadable session record"),
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, edge, "session removal failed"),
                }
            }
            if !settled.is_empty() {
                let mut srem = redis::cmd("SREM");
                srem.arg(self.index_key(edge)).arg(settled);
                if let Err(e) = self.run::<()>(&srem).await {
                    tracing::warn!(error = %e, edge, "index clean-up failed");
                }
            }
        }
        removed
    }

    /// Drops `edge` from `edges` once its index is empty. A bind racing this can leave a
    /// live edge out of `edges`; its next heartbeat puts it back.
    pub(super) async fn forget_edge_if_empty(&self, edge: &str) {
        let mut count = redis::cmd("SCARD");
        count.arg(self.index_key(edge));
        let mut forget = redis::cmd("SREM");
        forget.arg(self.edges_key()).arg(edge);
        let forgotten = match self.run::<u64>(&count).await {
            Ok(0) => self.run::<()>(&forget).await,
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = forgotten {
            tracing::warn!(error = %e, edge, "forgetting a reaped edge failed");
        }
    }
}
