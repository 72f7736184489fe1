//! The session registry on Redis, single node or Redis Cluster.
//!
//! Keys (every one under a configurable prefix, so test runs and deployments never mix):
//! - `{prefix}{<bare JID>}:s`: a hash, resource → session record (JSON). The braces are
//!   a Redis Cluster hash tag: everything about one account lives in one slot, so every
//!   change is one atomic script on one key.
//! - `{prefix}edge:<id>`: the set of `full JID \n conn` on an edge, for reaping.
//! - `{prefix}alive:<id>`: the edge's liveness, refreshed with a TTL by the routers that
//!   hear from it; `{prefix}edges`: edges that ever held sessions.
//!
//! bind, unbind and updates are Lua scripts that compare the connection id, so a late
//! unbind of a replaced connection never removes its successor, and a reaped record is
//! removed (and returned) exactly once however many routers reap at the same time.

use crate::traits::{Change, SessionEdit, SessionRecord, SessionRegistry};
use crate::{Presence, StorageError};
use async_trait::async_trait;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::Jid;
use tokio::sync::mpsc;

/// One connection handle to a single Redis or to a Redis Cluster.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// The stored form of a session record (the full JID is the key and field).
#[derive(Serialize, Deserialize)]
struct Stored {
    edge: String,
    conn: u64,
    priority: Option<i8>,
    presence: Option<String>,
    carbons: bool,
    interested: bool,
    directed: Vec<String>,
}

impl Stored {
    fn of(r: &SessionRecord) -> Self {
        Self {
            edge: r.edge.clone(),
            conn: r.conn,
            priority: r.presence.as_ref().map(|p| p.priority),
            presence: r.presence.as_ref().map(|p| p.stanza.clone()),
            carbons: r.carbons,
            interested: r.interested,
            directed: r.directed.iter().map(Jid::to_string).collect(),
        }
    }

    fn record(self, jid: Jid) -> SessionRecord {
        let presence = match (self.priority, self.presence) {
            (Some(priority), Some(stanza)) => Some(Presence { priority, stanza }),
            _ => None,
        };
        SessionRecord {
            jid,
            edge: self.edge,
            conn: self.conn,
            presence,
            carbons: self.carbons,
            interested: self.interested,
            directed: self
                .directed
                .iter()
                .filter_map(|d| Jid::parse(d).ok())
                .collect(),
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> StorageError {
    StorageError::Unavailable(format!("redis: {e}"))
}

fn decode(jid: Jid, json: &str) -> Result<SessionRecord, StorageError> {
    let stored: Stored = serde_json::from_str(json).map_err(unavailable)?;
    Ok(stored.record(jid))
}

fn encode(r: &SessionRecord) -> String {
    serde_json::to_string(&Stored::of(r)).expect("plain data serializes")
}

/// HSET the new value; return the old one.
const BIND: &str = "local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return old";

/// HDEL only when the stored conn matches; return the removed value.
const UNBIND: &str = "local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and tostring(cjson.decode(v).conn) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return v
end
return false";

/// Replace only when the stored value is exactly what the edit started from.
const SWAP: &str = "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return 1
end
return 0";

pub struct RedisRegistry {
    conn: Conn,
    /// Where change notifications are subscribed (the first URL).
    notify_url: String,
    prefix: String,
    scripts: [Script; 3],
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

impl RedisRegistry {
    /// Connects to one Redis (`redis://host:port`), or to a Redis Cluster through the
    /// given seed nodes when there are several or `cluster` is set.
    pub async fn connect(
        urls: &[String],
        cluster: bool,
        prefix: &str,
    ) -> Result<Self, StorageError> {
        if prefix.contains(['{', '}']) {
            return Err(StorageError::Unavailable(
                "redis key prefix must not contain braces".into(),
            ));
        }
        let conn = if cluster || urls.len() > 1 {
            let client = redis::cluster::ClusterClient::new(urls.to_vec()).map_err(unavailable)?;
            Conn::Cluster(client.get_async_connection().await.map_err(unavailable)?)
        } else {
            let url = urls.first().ok_or_else(|| unavailable("no redis url"))?;
            let client = redis::Client::open(url.as_str()).map_err(unavailable)?;
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(5)))
                .set_response_timeout(Some(Duration::from_secs(5)));
            Conn::Single(
                ConnectionManager::new_with_config(client, config)
                    .await
                    .map_err(unavailable)?,
            )
        };
        Ok(Self {
            conn,
            notify_url: urls.first().cloned().unwrap_or_default(),
            prefix: prefix.to_owned(),
            scripts: [Script::new(BIND), Script::new(UNBIND), Script::new(SWAP)],
            commands: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Deletes every key under this registry's prefix (tests, decommissioning).
    pub async fn delete_all_keys(&self) -> Result<(), StorageError> {
        let mut scan = redis::cmd("KEYS");
        scan.arg(format!("{}*", self.prefix));
        let keys: Vec<String> = self.run(&scan).await?;
        for key in keys {
            let mut del = redis::cmd("DEL");
            del.arg(key);
            self.run::<()>(&del).await?;
        }
        Ok(())
    }

    /// How many commands this registry has sent so far.
    pub fn commands_sent(&self) -> u64 {
        self.commands.load(Ordering::Relaxed)
    }

    fn session_key(&self, bare: &Jid) -> String {
        format!("{}{{{bare}}}:s", self.prefix)
    }

    fn edge_key(&self, edge: &str) -> String {
        format!("{}edge:{edge}", self.prefix)
    }

    fn alive_key(&self, edge: &str) -> String {
        format!("{}alive:{edge}", self.prefix)
    }

    fn edges_key(&self) -> String {
        format!("{}edges", self.prefix)
    }

    fn changes_channel(&self) -> String {
        format!("{}changes", self.prefix)
    }

    /// Tells every router's cache that `bare`'s sessions changed.
    async fn announce(&self, bare: &Jid) -> Result<(), StorageError> {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.changes_channel()).arg(bare.to_string());
        self.run::<()>(&cmd).await
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StorageError> {
        self.commands.fetch_add(1, Ordering::Relaxed);
        cmd.query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }

    async fn script<T: redis::FromRedisValue>(
        &self,
        which: usize,
        key: &str,
        args: &[&str],
    ) -> Result<T, StorageError> {
        self.commands.fetch_add(1, Ordering::Relaxed);
        let mut invocation = self.scripts[which].key(key);
        for a in args {
            invocation.arg(*a);
        }
        invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }

    fn member(jid: &Jid, conn: u64) -> String {
        format!("{jid}\n{conn}")
    }
}

fn resource(jid: &Jid) -> &str {
    jid.resource().unwrap_or_default()
}

#[async_trait]
impl SessionRegistry for RedisRegistry {
    async fn bind(&self, record: SessionRecord) -> Result<Option<SessionRecord>, StorageError> {
        let key = self.session_key(&record.jid.bare());
        let old: Option<String> = self
            .script(0, &key, &[resource(&record.jid), &encode(&record)])
            .await?;
        let old = old
            .map(|json| decode(record.jid.clone(), &json))
            .transpose()?
            .filter(|old| !old.same_connection(&record));
        let mut index = redis::pipe();
        index
            .sadd(
                self.edge_key(&record.edge),
                Self::member(&record.jid, record.conn),
            )
            .ignore()
            .sadd(self.edges_key(), &record.edge)
            .ignore();
        if let Some(old) = &old {
            index
                .srem(self.edge_key(&old.edge), Self::member(&old.jid, old.conn))
                .ignore();
        }
        self.commands.fetch_add(1, Ordering::Relaxed);
        index
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        self.announce(&record.jid.bare()).await?;
        Ok(old)
    }

    async fn unbind(&self, jid: &Jid, conn: u64) -> Result<Option<SessionRecord>, StorageError> {
        let key = self.session_key(&jid.bare());
        let removed: Option<String> = self
            .script(1, &key, &[resource(jid), &conn.to_string()])
            .await?;
        let Some(json) = removed else { return Ok(None) };
        let record = decode(jid.clone(), &json)?;
        let mut cmd = redis::cmd("SREM");
        cmd.arg(self.edge_key(&record.edge))
            .arg(Self::member(jid, conn));
        self.run::<()>(&cmd).await?;
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
            let mut get = redis::cmd("HGET");
            get.arg(&key).arg(resource(jid));
            let Some(json) = self.run::<Option<String>>(&get).await? else {
                return Ok(None);
            };
            let mut record = decode(jid.clone(), &json)?;
            if record.conn != conn {
                return Ok(None);
            }
            edit(&mut record);
            let swapped: i64 = self
                .script(2, &key, &[resource(jid), &json, &encode(&record)])
                .await?;
            if swapped == 1 {
                self.announce(&jid.bare()).await?;
                return Ok(Some(record));
            }
        }
        Err(unavailable("session record kept changing"))
    }

    async fn sessions(&self, bare: &Jid) -> Result<Vec<SessionRecord>, StorageError> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(self.session_key(bare));
        let all: Vec<(String, String)> = self.run(&cmd).await?;
        all.into_iter()
            .map(|(res, json)| {
                let jid = bare.with_resource(&res).map_err(unavailable)?;
                decode(jid, &json)
            })
            .collect()
    }

    async fn heartbeat(&self, edge: &str, ttl: Duration) -> Result<(), StorageError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.alive_key(edge))
            .arg(1)
            .arg("PX")
            .arg(ttl.as_millis() as u64);
        self.run::<()>(&cmd).await
    }

    async fn dead_edges(&self) -> Result<Vec<String>, StorageError> {
        let mut members = redis::cmd("SMEMBERS");
        members.arg(self.edges_key());
        let edges: Vec<String> = self.run(&members).await?;
        let mut dead = Vec::new();
        for edge in edges {
            let mut exists = redis::cmd("EXISTS");
            exists.arg(self.alive_key(&edge));
            if self.run::<i64>(&exists).await? == 0 {
                dead.push(edge);
            }
        }
        dead.sort();
        Ok(dead)
    }

    async fn epoch(&self) -> Result<String, StorageError> {
        let key = format!("{}epoch", self.prefix);
        let mut set = redis::cmd("SET");
        set.arg(&key)
            .arg(switchyard_core::token::token(16))
            .arg("NX");
        self.run::<()>(&set).await?;
        let mut get = redis::cmd("GET");
        get.arg(&key);
        let epoch: Option<String> = self.run(&get).await?;
        epoch.ok_or_else(|| unavailable("epoch vanished"))
    }

    fn changes(&self) -> Option<mpsc::Receiver<Change>> {
        let (tx, rx) = mpsc::channel(4096);
        let (url, channel) = (self.notify_url.clone(), self.changes_channel());
        tokio::spawn(follow_changes(url, channel, tx));
        Some(rx)
    }

    async fn reap(&self, edge: &str) -> Result<Vec<SessionRecord>, StorageError> {
        let mut members = redis::cmd("SMEMBERS");
        members.arg(self.edge_key(edge));
        let entries: Vec<String> = self.run(&members).await?;
        let mut reaped = Vec::new();
        for entry in entries {
            let Some((jid, conn)) = entry.split_once('\n') else {
                continue;
            };
            let (Ok(jid), Ok(conn)) = (Jid::parse(jid), conn.parse::<u64>()) else {
                continue;
            };
            if let Some(record) = self.unbind(&jid, conn).await? {
                reaped.push(record);
            }
        }
        let mut forget = redis::cmd("SREM");
        forget.arg(self.edges_key()).arg(edge);
        self.run::<()>(&forget).await?;
        Ok(reaped)
    }
}

/// Forwards change notifications until the receiver is dropped, resubscribing with
/// backoff; after any gap it reports [`Change::Unknown`] so caches start over.
async fn follow_changes(url: String, channel: String, tx: mpsc::Sender<Change>) {
    use tokio_stream::StreamExt;
    let mut backoff = Duration::from_millis(100);
    while !tx.is_closed() {
        let subscribed = async {
            let client = redis::Client::open(url.as_str())?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub.into_on_message())
        };
        match subscribed.await {
            Ok(mut messages) => {
                backoff = Duration::from_millis(100);
                if tx.send(Change::Unknown).await.is_err() {
                    return;
                }
                while let Some(message) = messages.next().await {
                    let change = message
                        .get_payload::<String>()
                        .ok()
                        .and_then(|s| Jid::parse(&s).ok())
                        .map_or(Change::Unknown, Change::Account);
                    if tx.send(change).await.is_err() {
                        return;
                    }
                }
                tracing::warn!("registry change notifications interrupted; resubscribing");
            }
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to registry changes"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `SWITCHYARD_TEST_REDIS` names the server (default: the local one); CI fails
    /// loudly without it, a laptop skips with a message.
    pub(crate) async fn registry() -> Option<RedisRegistry> {
        let url = std::env::var("SWITCHYARD_TEST_REDIS")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!(
            "sytest:{}:{}:",
            std::process::id(),
            switchyard_core::token::token(8)
        );
        let urls = [url.clone()];
        let connect = RedisRegistry::connect(&urls, false, &prefix);
        match tokio::time::timeout(Duration::from_secs(5), connect).await {
            Ok(Ok(r)) => Some(r),
            _ if std::env::var_os("CI").is_some() => panic!("Redis at {url} is required in CI"),
            _ => {
                eprintln!("SKIPPED: no Redis at {url}; set SWITCHYARD_TEST_REDIS");
                None
            }
        }
    }

    #[tokio::test]
    async fn conforms_on_a_real_redis() {
        let Some(reg) = registry().await else { return };
        crate::conformance::registry(&reg).await;
        let mut scan = redis::cmd("KEYS");
        scan.arg(format!("{}*", reg.prefix));
        let left: Vec<String> = reg.run(&scan).await.unwrap();
        let stale: Vec<&String> = left
            .iter()
            .filter(|k| !k.ends_with("edges") && !k.ends_with("epoch") && !k.contains("alive:"))
            .collect();
        assert!(
            stale.is_empty(),
            "sessions and indexes are cleaned up: {stale:?}"
        );
        reg.delete_all_keys().await.unwrap();
    }
}
