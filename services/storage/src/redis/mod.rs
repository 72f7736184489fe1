//! The session registry on Redis, single node or Redis Cluster.
//!
//! # Keys
//!
//! Every key is under a configurable prefix (no braces), so test runs and deployments
//! never mix. Braces are Redis Cluster hash tags: keys with the same tag share a slot.
//! - `{prefix}{<bare JID>}:s`: a hash, resource → session record (JSON). Everything about
//!   one account is in one slot, so each change is one atomic script on one key.
//! - `{prefix}{<bare JID>}:p`: the account's offline-pending count (an integer, absent
//!   when zero), and `{prefix}{<bare JID>}:f`: its flush lock (the holder's token, with
//!   a TTL). They share the account's slot, so a lookup reads sessions and count in one
//!   pipeline, and each change to them is one script (which also announces it).
//! - `{prefix}{edge:<id>}:i`: the edge's index, a set of `full JID \n conn`, for reaping
//!   and reconciling. `{prefix}{edge:<id>}:alive`: the edge's liveness, set with a TTL by
//!   the routers that hear from it. An edge's own keys share its `{edge:<id>}` slot.
//! - `{prefix}edges`: the edges that may hold sessions (reaping removes an edge);
//!   `{prefix}epoch`: a random token that vanishes when Redis loses its data.
//! - Channel `{prefix}changes`: the bare JIDs whose sessions changed (see [`changes`]).
//!
//! # One slot per round trip, in a crash-safe order
//!
//! A Redis Cluster rejects a pipeline or script that spans slots, so every operation
//! touches one slot per command, script or pipeline, and an operation that needs several
//! slots writes them one after the other in an order where a crash between two steps
//! leaves only harmless state. The rule: an index entry may name a session that does
//! not exist (the reaper and [`SessionRegistry::reconcile`] drop it, and the scripts
//! compare edge and connection, so it never removes anyone else), but a session must
//! never exist that no index names, since it would not be reaped when its edge dies.
//! - bind: add the edge to `edges` and the entry to its index (together: one pipeline on
//!   a single Redis, two concurrent commands on a cluster), then write the session (the
//!   script also announces it); then remove the replaced session's entry, if any.
//! - unbind: remove the session (comparing the connection), then its index entry.
//! - reap and reconcile: remove the sessions (comparing edge and connection), then their
//!   index entries; reap then forgets the edge, unless its index is not empty (an entry
//!   that could not be removed, or the edge came back).
//! - heartbeat: the liveness key and the edge's membership of `edges` (concurrently), so
//!   an edge that any router hears from is always found again by the reaper, even after
//!   a reap raced with its return.
//! - lookup (HGETALL and GET in one pipeline), the pending count and the flush lock:
//!   the account's slot only.
//! - relocate (a resumed session moving to another edge): add the entry to the new edge's
//!   index, then swap the record (comparing all of it), then remove the old entry; a
//!   swap that loses leaves its entry (it may be the winner's).
//! - update, sessions, epoch: one slot each (epoch's SET NX and GET are one pipeline);
//!   dead_edges reads `edges`, then the liveness keys with one MGET (split per slot by
//!   the cluster client).
//!
//! bind, unbind and updates are Lua scripts that compare the connection id, so a late
//! unbind of a replaced connection never removes its successor, and a reaped record is
//! removed (and returned) exactly once however many routers reap at the same time.

mod changes;
mod conn;
mod failures;
mod online;
mod record;
mod scripts;
mod sweep;
#[cfg(test)]
mod test_cluster;
#[cfg(test)]
mod tests;

use crate::traits::{
    Change, Lookup, OnlinePage, SessionEdit, SessionRecord, SessionRegistry, Sessions,
};
use crate::StorageError;
use async_trait::async_trait;
use conn::{Conn, Keyed};
use record::{decode, encode, member};
use redis::Cmd;
use scripts::Lua;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::Jid;
use tokio::sync::mpsc;

pub use conn::RedisServers;
pub use failures::RedisLoginFailures;

/// How long a connection attempt or a reply may take.
const TIMEOUT: Duration = Duration::from_secs(5);

pub struct RedisRegistry {
    conn: Conn,
    /// Where change notifications are subscribed: the seed URLs, tried in turn.
    servers: RedisServers,
    prefix: String,
    bind_script: Lua,
    unbind_script: Lua,
    swap_script: Lua,
    pending_add_script: Lua,
    pending_clear_script: Lua,
    flush_lock_script: Lua,
    flush_unlock_script: Lua,
    /// Commands sent, for tests and metrics.
    commands: Arc<AtomicU64>,
}

impl std::fmt::Debug for RedisRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRegistry")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> StorageError {
    StorageError::Unavailable(format!("redis: {e}"))
}

fn resource(jid: &Jid) -> &str {
    jid.resource().unwrap_or_default()
}

/// An account's hash (resource → record) as records.
fn decode_all(bare: &Jid, all: Vec<(String, String)>) -> Result<Vec<SessionRecord>, StorageError> {
    all.into_iter()
        .map(|(res, json)| {
            // No resource: a record bound to the bare JID (an XEP-0114 component's domain).
            let jid = match res.is_empty() {
                true => bare.clone(),
                false => bare.with_resource(&res).map_err(unavailable)?,
            };
            decode(jid, &json)
        })
        .collect()
}

impl RedisRegistry {
    /// Connects to one Redis (`redis://host:port`), or to a Redis Cluster through the
    /// given seed nodes when there are several or `cluster` is set.
    pub async fn connect(servers: &RedisServers, prefix: &str) -> Result<Self, StorageError> {
        if prefix.contains(['{', '}']) {
            return Err(StorageError::Unavailable(
                "redis key prefix must not contain braces".into(),
            ));
        }
        let conn = Conn::connect(servers).await?;
        Ok(Self {
            conn,
            servers: servers.clone(),
            prefix: prefix.to_owned(),
            bind_script: Lua::new(scripts::BIND),
            unbind_script: Lua::new(scripts::UNBIND),
            swap_script: Lua::new(scripts::SWAP),
            pending_add_script: Lua::new(scripts::PENDING_ADD),
            pending_clear_script: Lua::new(scripts::PENDING_CLEAR),
            flush_lock_script: Lua::new(scripts::FLUSH_LOCK),
            flush_unlock_script: Lua::new(scripts::FLUSH_UNLOCK),
            commands: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Deletes every key under this registry's prefix (tests, decommissioning), on every
    /// master of a cluster.
    pub async fn delete_all_keys(&self) -> Result<(), StorageError> {
        let keys = self.all_keys().await?;
        for chunk in keys.chunks(500) {
            let mut del = redis::cmd("DEL");
            del.arg(chunk);
            self.run::<()>(&del).await?;
        }
        Ok(())
    }

    /// Every key under this registry's prefix (SCAN, on every master of a cluster).
    pub async fn all_keys(&self) -> Result<Vec<String>, StorageError> {
        let pattern = format!("{}*", conn::glob_escape(&self.prefix));
        self.conn.scan(&pattern).await.map_err(unavailable)
    }

    /// How many commands this registry has sent so far.
    pub fn commands_sent(&self) -> u64 {
        self.commands.load(Ordering::Relaxed)
    }

    fn session_key(&self, bare: &Jid) -> String {
        format!("{}{{{bare}}}:s", self.prefix)
    }

    fn pending_key(&self, bare: &Jid) -> String {
        format!("{}{{{bare}}}:p", self.prefix)
    }

    fn flush_key(&self, bare: &Jid) -> String {
        format!("{}{{{bare}}}:f", self.prefix)
    }

    fn index_key(&self, edge: &str) -> String {
        format!("{}{{edge:{edge}}}:i", self.prefix)
    }

    fn alive_key(&self, edge: &str) -> String {
        format!("{}{{edge:{edge}}}:alive", self.prefix)
    }

    fn edges_key(&self) -> String {
        format!("{}edges", self.prefix)
    }

    fn changes_channel(&self) -> String {
        format!("{}changes", self.prefix)
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StorageError> {
        self.commands.fetch_add(1, Ordering::Relaxed);
        cmd.query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }

    async fn script<T: redis::FromRedisValue>(
        &self,
        lua: &Lua,
        key: &str,
        args: &[&str],
    ) -> Result<T, StorageError> {
        self.commands.fetch_add(1, Ordering::Relaxed);
        let mut invocation = lua.script.key(key);
        for a in args {
            invocation.arg(*a);
        }
        invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }

    /// Runs one-slot commands in as few round trips as the deployment allows; fails
    /// if any of them failed.
    async fn all(&self, commands: Vec<Keyed>) -> Result<(), StorageError> {
        self.commands
            .fetch_add(commands.len() as u64, Ordering::Relaxed);
        match self
            .conn
            .batch(commands)
            .await
            .into_iter()
            .find_map(Result::err)
        {
            Some(e) => Err(unavailable(e)),
            None => Ok(()),
        }
    }

    /// `name key args…`, to run in a batch.
    fn keyed(name: &str, key: String, args: &[&str]) -> Keyed {
        let mut cmd = redis::cmd(name);
        cmd.arg(&key).arg(args);
        Keyed { key, cmd }
    }

    /// Puts `jid`/`conn` in `edge`'s index and `edge` in `edges`: the step before a
    /// session is written.
    async fn index(&self, edge: &str, jid: &Jid, conn: u64) -> Result<(), StorageError> {
        self.all(vec![
            Self::keyed("SADD", self.index_key(edge), &[&member(jid, conn)]),
            Self::keyed("SADD", self.edges_key(), &[edge]),
        ])
        .await
    }

    /// Drops `jid`/`conn` from `edge`'s index: the step after its session is gone.
    async fn unindex(&self, edge: &str, jid: &Jid, conn: u64) -> Result<(), StorageError> {
        let mut cmd = redis::cmd("SREM");
        cmd.arg(self.index_key(edge)).arg(member(jid, conn));
        self.run(&cmd).await
    }
}

#[async_trait]
impl SessionRegistry for RedisRegistry {
    async fn bind(&self, record: SessionRecord) -> Result<Option<SessionRecord>, StorageError> {
        self.index(&record.edge, &record.jid, record.conn).await?;
        let bare = record.jid.bare();
        let (channel, bare_text) = (self.changes_channel(), bare.to_string());
        let old: Option<String> = self
            .script(
                &self.bind_script,
                &self.session_key(&bare),
                &[
                    resource(&record.jid),
                    &encode(&record),
                    &channel,
                    &bare_text,
                ],
            )
            .await?;
        let old = old
            .map(|json| decode(record.jid.clone(), &json))
            .transpose()?
            .filter(|old| !old.same_connection(&record));
        if let Some(old) = &old {
            self.unindex(&old.edge, &old.jid, old.conn).await?;
        }
        Ok(old)
    }

    async fn unbind(&self, jid: &Jid, conn: u64) -> Result<Option<SessionRecord>, StorageError> {
        let bare = jid.bare();
        let (channel, bare_text) = (self.changes_channel(), bare.to_string());
        let removed: Option<String> = self
            .script(
                &self.unbind_script,
                &self.session_key(&bare),
                &[resource(jid), &conn.to_string(), "", &channel, &bare_text],
            )
            .await?;
        let Some(json) = removed else { return Ok(None) };
        let record = decode(jid.clone(), &json)?;
        self.unindex(&record.edge, jid, conn).await?;
        Ok(Some(record))
    }

    async fn update(
        &self,
        jid: &Jid,
        conn: u64,
        edit: SessionEdit,
    ) -> Result<Option<SessionRecord>, StorageError> {
        let key = self.session_key(&jid.bare());
        // Only the session's own stanzas edit its record, one at a time, so the swap
        // practically always succeeds; a bounded retry covers a racing rebind.
        for _ in 0..3 {
            let Some((json, mut record)) = self.stored(&key, jid).await? else {
                return Ok(None);
            };
            if record.conn != conn {
                return Ok(None);
            }
            edit(&mut record);
            if self.swap(&key, jid, &json, &record).await? {
                return Ok(Some(record));
            }
        }
        Err(unavailable("session record kept changing"))
    }

    async fn relocate(
        &self,
        jid: &Jid,
        from: (&str, u64),
        to: (&str, u64),
    ) -> Result<Option<SessionRecord>, StorageError> {
        let key = self.session_key(&jid.bare());
        // The swap fails when the record changed at all: an edit of its presence is
        // tried again, a move elsewhere is final.
        for _ in 0..3 {
            let Some((json, mut record)) = self.stored(&key, jid).await? else {
                return Ok(None);
            };
            if (record.edge.as_str(), record.conn) != from {
                return Ok(None);
            }
            if from == to {
                return Ok(Some(record));
            }
            (record.edge, record.conn) = (to.0.to_owned(), to.1);
            // Indexed under its new edge first, as `bind` does, so that no reaping of that
            // edge can miss it. A swap that loses leaves the entry: it may be the winner's
            // (the same move asked of two routers), and a stale one removes nobody.
            self.index(to.0, jid, to.1).await?;
            if self.swap(&key, jid, &json, &record).await? {
                // Moved: a failure to drop the old entry leaves a stale one, not an error.
                if let Err(e) = self.unindex(from.0, jid, from.1).await {
                    tracing::warn!(error = %e, edge = from.0, "a moved session's old index entry stays");
                }
                return Ok(Some(record));
            }
        }
        Err(unavailable("session record kept changing"))
    }

    async fn sessions(&self, bare: &Jid) -> Result<Sessions, StorageError> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(self.session_key(bare));
        let all: Vec<(String, String)> = self.run(&cmd).await?;
        decode_all(bare, all).map(Arc::new)
    }

    async fn lookup(&self, bare: &Jid) -> Result<Lookup, StorageError> {
        let mut pipe = redis::pipe();
        pipe.cmd("HGETALL")
            .arg(self.session_key(bare))
            .cmd("GET")
            .arg(self.pending_key(bare));
        self.commands.fetch_add(2, Ordering::Relaxed);
        let (all, pending): (Vec<(String, String)>, Option<u64>) = pipe
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        let sessions = Arc::new(decode_all(bare, all)?);
        let pending = pending.unwrap_or(0);
        Ok(Lookup { sessions, pending })
    }

    async fn pending(&self, bare: &Jid) -> Result<u64, StorageError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.pending_key(bare));
        Ok(self.run::<Option<u64>>(&cmd).await?.unwrap_or(0))
    }

    async fn add_pending(&self, bare: &Jid) -> Result<u64, StorageError> {
        let (channel, bare_text) = (self.changes_channel(), bare.to_string());
        let key = self.pending_key(bare);
        let args = [channel.as_str(), &bare_text];
        self.script(&self.pending_add_script, &key, &args).await
    }

    async fn clear_pending(&self, bare: &Jid, seen: u64) -> Result<bool, StorageError> {
        let (channel, bare_text) = (self.changes_channel(), bare.to_string());
        let key = self.pending_key(bare);
        let args = [seen.to_string(), channel, bare_text];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let cleared: i64 = self.script(&self.pending_clear_script, &key, &args).await?;
        Ok(cleared == 1)
    }

    async fn lock_flush(
        &self,
        bare: &Jid,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StorageError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let key = self.flush_key(bare);
        let args = [holder, &ttl_ms.to_string()];
        let held: i64 = self.script(&self.flush_lock_script, &key, &args).await?;
        Ok(held == 1)
    }

    async fn unlock_flush(&self, bare: &Jid, holder: &str) -> Result<(), StorageError> {
        let key = self.flush_key(bare);
        self.script::<i64>(&self.flush_unlock_script, &key, &[holder])
            .await
            .map(drop)
    }

    async fn heartbeat(&self, edge: &str, ttl: Duration) -> Result<(), StorageError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.all(vec![
            Self::keyed(
                "SET",
                self.alive_key(edge),
                &["1", "PX", &ttl_ms.to_string()],
            ),
            Self::keyed("SADD", self.edges_key(), &[edge]),
        ])
        .await
    }

    async fn dead_edges(&self) -> Result<Vec<String>, StorageError> {
        let mut members = redis::cmd("SMEMBERS");
        members.arg(self.edges_key());
        let edges: Vec<String> = self.run(&members).await?;
        if edges.is_empty() {
            return Ok(edges);
        }
        let mut alive = redis::cmd("MGET");
        for edge in &edges {
            alive.arg(self.alive_key(edge));
        }
        let alive: Vec<Option<String>> = self.run(&alive).await?;
        let mut dead: Vec<String> = edges
            .into_iter()
            .zip(alive)
            .filter_map(|(edge, alive)| alive.is_none().then_some(edge))
            .collect();
        dead.sort();
        Ok(dead)
    }

    async fn epoch(&self) -> Result<String, StorageError> {
        let key = format!("{}epoch", self.prefix);
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&key)
            .arg(switchyard_core::token::token(16))
            .arg("NX")
            .ignore()
            .cmd("GET")
            .arg(&key);
        self.commands.fetch_add(2, Ordering::Relaxed);
        let (epoch,): (Option<String>,) = pipe
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        epoch.ok_or_else(|| unavailable("epoch vanished"))
    }

    fn changes(&self) -> Option<mpsc::Receiver<Change>> {
        let (tx, rx) = mpsc::channel(4096);
        let (servers, channel) = (self.servers.clone(), self.changes_channel());
        tokio::spawn(changes::follow(servers, channel, tx));
        Some(rx)
    }

    async fn online(
        &self,
        domain: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<OnlinePage, StorageError> {
        self.online_page(domain, cursor, limit).await
    }

    async fn online_count(&self) -> Result<u64, StorageError> {
        self.online_total().await
    }

    async fn reap(&self, edge: &str) -> Result<Vec<SessionRecord>, StorageError> {
        let entries = self.index_entries(edge).await?;
        let reaped = self.sweep(edge, entries).await;
        self.forget_edge_if_empty(edge).await;
        Ok(reaped)
    }

    async fn reconcile(
        &self,
        edge: &str,
        held: &[(Jid, u64)],
    ) -> Result<Vec<SessionRecord>, StorageError> {
        let held: std::collections::HashSet<String> =
            held.iter().map(|(jid, conn)| member(jid, *conn)).collect();
        let mut entries = self.index_entries(edge).await?;
        entries.retain(|entry| !held.contains(entry));
        Ok(self.sweep(edge, entries).await)
    }
}
