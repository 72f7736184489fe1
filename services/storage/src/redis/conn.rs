//! One connection handle to a single Redis or to a Redis Cluster, and the two things
//! that differ between them: running many one-slot commands at once ([`Conn::batch`])
//! and walking every key under a pattern ([`Conn::scan`]).
//!
//! A Redis Cluster refuses a pipeline whose commands live in different hash slots
//! (`CROSSSLOT`), so a batch goes to a single Redis as one pipeline, and to a cluster as
//! one pipeline per hash-tag group, the groups concurrently. SCAN walks one node, so on a
//! cluster it is run on every master.

use super::{unavailable, TIMEOUT};
use crate::StorageError;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, FromRedisValue, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use std::collections::HashMap;
use tokio::task::JoinSet;

/// At most this many commands in one pipeline.
const PIPELINE_COMMANDS: usize = 1000;
/// At most this many pipelines in flight on a cluster.
const GROUPS_IN_FLIGHT: usize = 64;
/// SCAN's COUNT hint.
const SCAN_COUNT: usize = 1000;

#[derive(Clone)]
pub(super) enum Conn {
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

/// One command of a batch and the key that decides its hash slot.
pub(super) struct Keyed {
    pub(super) key: String,
    pub(super) cmd: Cmd,
}

/// What became of one command of a batch: its reply, or why it has none.
pub(super) type Outcome = Result<Value, String>;

/// Where Redis is: one server (`redis://` or, over TLS, `rediss://host:port`) or the
/// seed nodes of a Redis Cluster, and the CA that signed their certificates when it is
/// not among the system's (PEM).
#[derive(Debug, Clone, Default)]
pub struct RedisServers {
    pub urls: Vec<String>,
    pub cluster: bool,
    pub ca_pem: Option<Vec<u8>>,
}

impl RedisServers {
    /// Servers reached without a CA of their own (plain, or TLS with the system's CAs).
    pub fn at(urls: &[String], cluster: bool) -> Self {
        Self {
            urls: urls.to_vec(),
            cluster,
            ca_pem: None,
        }
    }

    /// A client of one of the servers; `rediss://` trusts the CA given, else the
    /// system's.
    pub(super) fn client(&self, url: &str) -> redis::RedisResult<redis::Client> {
        tls_provider();
        match &self.ca_pem {
            Some(ca) => redis::Client::build_with_tls(url, self.certificates(ca)),
            None => redis::Client::open(url),
        }
    }

    fn certificates(&self, ca: &[u8]) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca.to_vec()),
        }
    }
}

/// The redis crate builds its TLS configurations with rustls's process-wide provider:
/// the one this workspace uses everywhere (ring) is installed once, if none is yet.
fn tls_provider() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Conn {
    /// Connects to one Redis, or to a Redis Cluster through the seed nodes when there
    /// are several or `cluster` is set.
    pub(super) async fn connect(servers: &RedisServers) -> Result<Self, StorageError> {
        tls_provider();
        let urls = &servers.urls;
        if servers.cluster || urls.len() > 1 {
            let mut builder = redis::cluster::ClusterClientBuilder::new(urls.to_vec())
                .connection_timeout(TIMEOUT)
                .response_timeout(TIMEOUT);
            if let Some(ca) = &servers.ca_pem {
                builder = builder.certs(servers.certificates(ca));
            }
            let client = builder.build().map_err(unavailable)?;
            Ok(Self::Cluster(
                client.get_async_connection().await.map_err(unavailable)?,
            ))
        } else {
            let url = urls.first().ok_or_else(|| unavailable("no redis url"))?;
            let client = servers.client(url).map_err(unavailable)?;
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(TIMEOUT))
                .set_response_timeout(Some(TIMEOUT));
            Ok(Self::Single(
                ConnectionManager::new_with_config(client, config)
                    .await
                    .map_err(unavailable)?,
            ))
        }
    }

    /// Runs every command (each touching only its own key) and returns their outcomes
    /// in order: one round trip per 1,000 commands on a single Redis, one per hash-tag
    /// group (at most 64 at once) on a cluster. A failed command fails alone.
    pub(super) async fn batch(&self, commands: Vec<Keyed>) -> Vec<Outcome> {
        let groups: Vec<Vec<usize>> = match self {
            Self::Single(_) => vec![(0..commands.len()).collect()],
            Self::Cluster(_) => {
                let mut by_tag: HashMap<&str, Vec<usize>> = HashMap::new();
                for (i, c) in commands.iter().enumerate() {
                    by_tag.entry(hash_tag(&c.key)).or_default().push(i);
                }
                by_tag.into_values().collect()
            }
        };
        let mut outcomes: Vec<Outcome> = vec![Err("not sent".into()); commands.len()];
        let mut running = JoinSet::new();
        for group in groups {
            for chunk in group.chunks(PIPELINE_COMMANDS) {
                let mut pipe = redis::pipe();
                pipe.ignore_errors();
                for &i in chunk {
                    pipe.add_command(commands[i].cmd.clone());
                }
                let (chunk, mut conn) = (chunk.to_vec(), self.clone());
                running.spawn(async move {
                    let replies = pipe.query_async::<Vec<Value>>(&mut conn).await;
                    (chunk, replies)
                });
                if running.len() >= GROUPS_IN_FLIGHT {
                    settle(running.join_next().await, &mut outcomes);
                }
            }
        }
        while let Some(done) = running.join_next().await {
            settle(Some(done), &mut outcomes);
        }
        outcomes
    }

    /// Every key matching `pattern`, on every master of a cluster, without blocking the
    /// server the way KEYS does.
    pub(super) async fn scan(&self, pattern: &str) -> RedisResult<Vec<String>> {
        let mut keys = Vec::new();
        match self {
            Self::Single(c) => {
                let mut cursor = 0u64;
                loop {
                    let (next, batch): (u64, Vec<String>) = scan_cmd(cursor, pattern)
                        .query_async(&mut c.clone())
                        .await?;
                    keys.extend(batch);
                    if next == 0 {
                        return Ok(keys);
                    }
                    cursor = next;
                }
            }
            Self::Cluster(c) => {
                let all = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                let first = c.clone().route_command(scan_cmd(0, pattern), all).await?;
                let per_node: Vec<(String, Value)> = FromRedisValue::from_redis_value(first)?;
                for (address, reply) in per_node {
                    let (mut cursor, batch): (u64, Vec<String>) =
                        FromRedisValue::from_redis_value(reply)?;
                    keys.extend(batch);
                    let node = by_address(&address)?;
                    while cursor != 0 {
                        let reply = c
                            .clone()
                            .route_command(scan_cmd(cursor, pattern), node.clone())
                            .await?;
                        let batch: Vec<String>;
                        (cursor, batch) = FromRedisValue::from_redis_value(reply)?;
                        keys.extend(batch);
                    }
                }
                Ok(keys)
            }
        }
    }
}

type Settled = Result<(Vec<usize>, RedisResult<Vec<Value>>), tokio::task::JoinError>;

fn settle(done: Option<Settled>, outcomes: &mut [Outcome]) {
    let Some(done) = done else { return };
    let (chunk, replies) = match done {
        Ok(finished) => finished,
        Err(e) => {
            tracing::warn!(error = %e, "redis batch task failed");
            return;
        }
    };
    match replies {
        Ok(replies) => {
            for (i, reply) in chunk.into_iter().zip(replies) {
                outcomes[i] = match reply {
                    Value::ServerError(e) => Err(RedisError::from(e).to_string()),
                    v => Ok(v),
                };
            }
        }
        Err(e) => {
            for i in chunk {
                outcomes[i] = Err(e.to_string());
            }
        }
    }
}

fn scan_cmd(cursor: u64, pattern: &str) -> Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SCAN_COUNT);
    cmd
}

fn by_address(address: &str) -> RedisResult<RoutingInfo> {
    let bad = || {
        RedisError::from((
            redis::ErrorKind::Client,
            "cluster node address",
            address.to_owned(),
        ))
    };
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse().map_err(|_| bad())?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Ok(RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
        host,
        port,
    }))
}

/// The part of a key Redis Cluster hashes: the text between the first `{` and the next
/// `}` when it is not empty, else the whole key. Keys with equal tags share a slot.
pub(super) fn hash_tag(key: &str) -> &str {
    if let Some(open) = key.find('{') {
        if let Some(len) = key[open + 1..].find('}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// `text` as a SCAN/KEYS pattern matching exactly itself.
pub(super) fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_tags_follow_the_cluster_rule() {
        assert_eq!(hash_tag("p:{alice@x}:s"), "alice@x");
        assert_eq!(hash_tag("p:{edge:e1}:i"), "edge:e1");
        assert_eq!(
            hash_tag("p:{}:x"),
            "p:{}:x",
            "an empty tag hashes the whole key"
        );
        assert_eq!(hash_tag("p:edges"), "p:edges");
        assert_eq!(
            hash_tag("p:{a{b}c}"),
            "a{b",
            "the first brace closes the tag"
        );
        assert_eq!(hash_tag("p:{open"), "p:{open");
    }

    #[test]
    fn glob_escape_matches_literally() {
        assert_eq!(glob_escape("sy:*?[x]\\"), "sy:\\*\\?\\[x\\]\\\\");
    }
}
