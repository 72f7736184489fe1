//! PostgreSQL backend (tokio-postgres behind a deadpool pool): the durable store of the
//! cluster. It implements every data trait, as SQLite does, and passes the same
//! conformance suite.
//!
//! Migrations are embedded and versioned: [`PgStore::migrate`] applies the missing ones
//! in order, each in its own transaction, under an advisory lock so that several
//! processes starting together apply each migration once (`switchyard migrate`, or at
//! start-up when configured). Every per-account table references `accounts` with
//! `ON DELETE CASCADE`.
//!
//! Roster edits lock the account row (`UPDATE … RETURNING roster_version`), which
//! serializes edits of one roster across routers; offline pushes and bounded document
//! puts lock it the same way (`SELECT … FOR UPDATE`) before they sum what is held, so
//! their quotas hold under concurrency: the next transaction to get the lock reads, in
//! a fresh READ COMMITTED snapshot, what the previous one committed.

mod accounts;
mod im;
mod sql;
pub mod tls;

use crate::backend_error::DbResult;
use crate::StorageError;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE accounts (
        jid TEXT PRIMARY KEY,
        sha1_salt BYTEA NOT NULL, sha1_iterations INTEGER NOT NULL,
        sha1_stored_key BYTEA NOT NULL, sha1_server_key BYTEA NOT NULL,
        sha256_salt BYTEA NOT NULL, sha256_iterations INTEGER NOT NULL,
        sha256_stored_key BYTEA NOT NULL, sha256_server_key BYTEA NOT NULL,
        roster_version BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE roster (
        account TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
        contact TEXT NOT NULL,
        name TEXT,
        groups TEXT[] NOT NULL,
        subscription TEXT NOT NULL,
        ask BOOLEAN NOT NULL,
        approved BOOLEAN NOT NULL,
        pending_in TEXT,
        listed BOOLEAN NOT NULL,
        version BIGINT NOT NULL,
        PRIMARY KEY (account, contact)
    );
    CREATE TABLE offline (
        id BIGSERIAL PRIMARY KEY,
        account TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
        stanza TEXT NOT NULL
    );
    CREATE INDEX offline_by_account ON offline (account, id);
    CREATE TABLE blocks (
        account TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
        jid TEXT NOT NULL,
        PRIMARY KEY (account, jid)
    );
    CREATE TABLE documents (
        account TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (account, key)
    );",
    // Byte quotas: each held message records its size, so a push sums a column.
    "ALTER TABLE offline ADD COLUMN bytes BIGINT NOT NULL DEFAULT 0;
    UPDATE offline SET bytes = octet_length(stanza);",
];

/// Arbitrary, fixed: the advisory lock key that serializes migrations.
const MIGRATION_LOCK: i64 = 0x5357_5944_4d49_4752;

#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.pool.status())
            .finish()
    }
}

/// Where PostgreSQL is: a URL (`postgres://user@host:port/db?sslmode=…`, or a libpq
/// `key=value` string), each part of which the separate fields replace when set (as
/// platform charts hand out host, user and password as separate secret keys), and the
/// CA its certificate is checked against.
#[derive(Clone, Default)]
pub struct PgTarget {
    pub url: String,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub dbname: Option<String>,
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("dbname", &self.dbname)
            .finish_non_exhaustive()
    }
}

impl PgTarget {
    pub fn url(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            ..Self::default()
        }
    }

    /// The connection settings (TLS aside, see `tls.rs`) and how much of the server's
    /// certificate to check.
    fn config(&self) -> Result<(tokio_postgres::Config, tls::Verify), StorageError> {
        let (url, verify) = tls::read_sslmode(&self.url, self.ca_pem.is_some());
        let mut config = match url.as_str() {
            "" => tokio_postgres::Config::new(),
            url => url
                .parse()
                .map_err(|e| StorageError::Unavailable(format!("postgres url: {e}")))?,
        };
        if let Some(host) = &self.host {
            config.host(host);
        }
        if let Some(port) = self.port {
            config.port(port);
        }
        if let Some(user) = &self.user {
            config.user(user);
        }
        if let Some(password) = &self.password {
            config.password(password);
        }
        if let Some(dbname) = &self.dbname {
            config.dbname(dbname);
        }
        Ok((config, verify))
    }
}

impl PgStore {
    /// A pool for `target` (TLS by its `sslmode`, see `tls.rs`), using `schema` when
    /// given. Connections are made lazily; nothing is checked here.
    pub fn connect(
        target: &PgTarget,
        schema: Option<&str>,
        max_size: usize,
    ) -> Result<Self, StorageError> {
        let (mut config, verify) = target.config()?;
        let tls = tls::PgTls::new(verify, target.ca_pem.as_deref())?;
        if let Some(schema) = schema {
            config.options(format!("-c search_path={schema}"));
        }
        config.connect_timeout(std::time::Duration::from_secs(5));
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_size)
            .wait_timeout(Some(std::time::Duration::from_secs(5)))
            .create_timeout(Some(std::time::Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StorageError::Unavailable(e.to_string()))?;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let name = schema.unwrap_or("public").to_owned();
            runtime.spawn(publish_status(pool.weak(), name));
        }
        Ok(Self { pool })
    }

    /// Creates the configured schema (the first one of the connection's `search_path`)
    /// when it does not exist; returns its name if it was created. A schema that cannot
    /// be created is named in the error with PostgreSQL's reason.
    pub async fn ensure_schema(&self) -> Result<Option<String>, StorageError> {
        let client = self.pool.get().await.db()?;
        let current: Option<String> = client
            .query_one("SELECT current_schema()", &[])
            .await
            .db()?
            .get(0);
        if current.is_some() {
            return Ok(None);
        }
        let path: String = client.query_one("SHOW search_path", &[]).await.db()?.get(0);
        let schema = path.split(',').next().unwrap_or("").trim().to_owned();
        let plain = !schema.is_empty()
            && schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !plain {
            return Err(StorageError::Unavailable(format!(
                "no schema of the search path {path:?} exists; create it, or name an existing one in postgres.schema"
            )));
        }
        client
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .await
            .map_err(|e| {
                StorageError::Unavailable(format!(
                    "the schema {schema} does not exist and cannot be created ({e}); create it, or name an existing one in postgres.schema"
                ))
            })?;
        tracing::info!(schema, "created the PostgreSQL schema");
        Ok(Some(schema))
    }

    /// Applies pending migrations (creating the schema first when it does not exist);
    /// returns how many were applied.
    pub async fn migrate(&self) -> Result<usize, StorageError> {
        self.ensure_schema().await?;
        let mut client = self.pool.get().await.db()?;
        let tx = client.transaction().await.db()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .db()?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS switchyard_migrations (
                version INTEGER PRIMARY KEY,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await
        .db()?;
        let done: i64 = tx
            .query_one("SELECT COUNT(*) FROM switchyard_migrations", &[])
            .await
            .db()?
            .get(0);
        let mut applied = 0;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done as usize) {
            tx.batch_execute(sql).await.db()?;
            let version = i as i32 + 1;
            tx.execute(
                "INSERT INTO switchyard_migrations (version) VALUES ($1)",
                &[&version],
            )
            .await
            .db()?;
            applied += 1;
        }
        tx.commit().await.db()?;
        Ok(applied)
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StorageError> {
        self.pool.get().await.db()
    }
}

/// Publishes the pool's use every second (`switchyard_storage_pool_connections`) while
/// the pool exists.
async fn publish_status(pool: deadpool_postgres::WeakPool, name: String) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        let status = pool.status();
        let in_use = status.size.saturating_sub(status.available);
        for (state, value) in [
            ("in_use", in_use),
            ("idle", status.available),
            ("max", status.max_size),
            ("waiting", status.waiting),
        ] {
            switchyard_telemetry::STORAGE_POOL
                .with_label_values(&[&name, state])
                .set(value as i64);
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;
