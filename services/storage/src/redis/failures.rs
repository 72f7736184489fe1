//! [`LoginFailures`] on Redis (single node or Redis Cluster), shared by every router and
//! so by every edge behind them.
//!
//! Each count is one integer key that expires `window` after its last failure (INCR then
//! PEXPIRE in one script), so Redis's clock alone decides expiry and no sweeper is
//! needed; what is left of a window is read back with PTTL. Keys, under the deployment's
//! prefix: `{prefix}login:a:<network>:<account>` (an account from a network) and
//! `{prefix}login:n:<network>` (a network). Every script touches one key, so the two
//! counts of an attempt may live in different cluster slots; they are sent concurrently.

use super::conn::{Conn, RedisServers};
use super::scripts::Lua;
use super::unavailable;
use crate::traits::{FailureCount, LoginFailureCounts, LoginFailures};
use crate::StorageError;
use async_trait::async_trait;
use std::time::Duration;
use switchyard_core::Jid;

/// One more failure, lasting ARGV[1] milliseconds; returns the new count.
const RECORD: &str = "local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return n";

/// The count and the milliseconds it has left; {0, 0} when there is none.
const READ: &str = "local n = redis.call('GET', KEYS[1])
if not n then return {0, 0} end
return {tonumber(n), redis.call('PTTL', KEYS[1])}";

pub struct RedisLoginFailures {
    conn: Conn,
    prefix: String,
    record: Lua,
    read: Lua,
}

impl std::fmt::Debug for RedisLoginFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLoginFailures")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisLoginFailures {
    /// Connects like [`super::RedisRegistry::connect`]; `prefix` must not contain braces.
    pub async fn connect(servers: &RedisServers, prefix: &str) -> Result<Self, StorageError> {
        if prefix.contains(['{', '}']) {
            return Err(unavailable("redis key prefix must not contain braces"));
        }
        Ok(Self {
            conn: Conn::connect(servers).await?,
            prefix: prefix.to_owned(),
            record: Lua::new(RECORD),
            read: Lua::new(READ),
        })
    }

    fn keys(&self, account: &Jid, network: &str) -> (String, String) {
        let prefix = &self.prefix;
        (
            format!("{prefix}login:a:{network}:{account}"),
            format!("{prefix}login:n:{network}"),
        )
    }

    async fn add(&self, key: &str, window: Duration) -> Result<FailureCount, StorageError> {
        let ms = window.as_millis().max(1).to_string();
        let failures: u32 = self
            .record
            .script
            .key(key)
            .arg(ms)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(FailureCount {
            failures,
            expires_in: window,
        })
    }

    async fn get(&self, key: &str) -> Result<FailureCount, StorageError> {
        let (failures, ms): (u32, i64) = self
            .read
            .script
            .key(key)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        // PTTL is negative for a key that just expired (or, never here, has no TTL).
        Ok(match u64::try_from(ms) {
            Ok(ms) if failures > 0 && ms > 0 => FailureCount {
                failures,
                expires_in: Duration::from_millis(ms),
            },
            _ => FailureCount::default(),
        })
    }
}

#[async_trait]
impl LoginFailures for RedisLoginFailures {
    async fn failures(
        &self,
        account: &Jid,
        network: &str,
    ) -> Result<LoginFailureCounts, StorageError> {
        let (pair, net) = self.keys(account, network);
        let (account, network) = tokio::try_join!(self.get(&pair), self.get(&net))?;
        Ok(LoginFailureCounts { account, network })
    }

    async fn record(
        &self,
        account: &Jid,
        network: &str,
        window: Duration,
    ) -> Result<LoginFailureCounts, StorageError> {
        let (pair, net) = self.keys(account, network);
        let (account, network) = tokio::try_join!(self.add(&pair, window), self.add(&net, window))?;
        Ok(LoginFailureCounts { account, network })
    }

    async fn clear(&self, account: &Jid, network: &str) -> Result<(), StorageError> {
        let mut del = redis::cmd("DEL");
        del.arg(self.keys(account, network).0);
        del.query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::super::conn::glob_escape;
    use super::super::test_cluster::RedisCluster;
    use super::*;

    fn prefix() -> String {
        format!("sytest:failures:{}:", switchyard_core::token::token(8))
    }

    /// Runs the suite, then deletes what it left under its prefix: only a network count
    /// whose window has not passed yet.
    async fn conforms(store: RedisLoginFailures) {
        crate::conformance::login_failures(&store).await;
        let pattern = format!("{}*", glob_escape(&store.prefix));
        let left = store.conn.scan(&pattern).await.expect("scan");
        assert!(left.iter().all(|k| k.contains("login:n:")), "{left:?}");
        for key in left {
            let mut del = redis::cmd("DEL");
            del.arg(key);
            del.query_async::<()>(&mut store.conn.clone())
                .await
                .expect("DEL");
        }
    }

    /// On the machine's Redis (`SWITCHYARD_TEST_REDIS`); CI fails loudly without it.
    #[tokio::test]
    async fn conforms_on_redis() {
        let url = std::env::var("SWITCHYARD_TEST_REDIS")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = prefix();
        let servers = RedisServers::at(std::slice::from_ref(&url), false);
        let connect = RedisLoginFailures::connect(&servers, &prefix);
        match tokio::time::timeout(Duration::from_secs(5), connect).await {
            Ok(Ok(store)) => conforms(store).await,
            _ if std::env::var_os("CI").is_some() => panic!("Redis at {url} is required in CI"),
            _ => eprintln!("SKIPPED: no Redis at {url}; set SWITCHYARD_TEST_REDIS"),
        }
    }

    /// On a three-master Redis Cluster: an attempt's two counts live in different slots.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conforms_on_a_redis_cluster() {
        let cluster = RedisCluster::start();
        let store =
            RedisLoginFailures::connect(&RedisServers::at(&cluster.urls(), true), &prefix())
                .await
                .expect("connect to the test Redis Cluster");
        conforms(store).await;
    }
}
