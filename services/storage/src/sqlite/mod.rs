//! Embedded SQLite backend: the single-node default, one file in the data directory.
//!
//! rusqlite is blocking, so every call runs on tokio's blocking pool behind one connection
//! (SQLite serializes writers anyway). Schema versions live in `PRAGMA user_version` and
//! are applied in order at open. Every per-account table references `accounts` with
//! `ON DELETE CASCADE`, so removing an account removes its data, and a write for an
//! account that does not exist fails.

mod accounts;
mod im;

use crate::backend_error::DbResult;
use crate::StorageError;
use rusqlite::Connection;
use std::path::Path;
use std::sync::{Arc, Mutex};

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE accounts (
        jid TEXT PRIMARY KEY NOT NULL,
        sha1_salt BLOB NOT NULL, sha1_iterations INTEGER NOT NULL,
        sha1_stored_key BLOB NOT NULL, sha1_server_key BLOB NOT NULL,
        sha256_salt BLOB NOT NULL, sha256_iterations INTEGER NOT NULL,
        sha256_stored_key BLOB NOT NULL, sha256_server_key BLOB NOT NULL
    )",
    "ALTER TABLE accounts ADD COLUMN roster_version INTEGER NOT NULL DEFAULT 0;
     CREATE TABLE roster (
        account TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
        contact TEXT NOT NULL,
        name TEXT,
        groups TEXT NOT NULL,
        subscription TEXT NOT NULL,
        ask INTEGER NOT NULL,
        approved INTEGER NOT NULL,
        pending_in TEXT,
        listed INTEGER NOT NULL,
        version INTEGER NOT NULL,
        PRIMARY KEY (account, contact)
     );
     CREATE TABLE offline (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        account TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
        stanza TEXT NOT NULL
     );
     CREATE INDEX offline_by_account ON offline (account, id);
     CREATE TABLE blocks (
        account TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
        jid TEXT NOT NULL,
        PRIMARY KEY (account, jid)
     );
     CREATE TABLE documents (
        account TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (account, key)
     );",
    // Byte quotas: each held message records its size, so a push sums a column.
    "ALTER TABLE offline ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
     UPDATE offline SET bytes = length(CAST(stanza AS BLOB));",
];

/// How long a statement waits for another connection's lock on the file.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let mut conn = Connection::open(path).db()?;
        // First: every statement after it, the journal mode switch and the migrations
        // included, waits for another process's lock (the CLI beside a running server,
        // several CLIs at once) instead of failing with "database is locked".
        conn.busy_timeout(BUSY_TIMEOUT).db()?;
        wal(&conn)?;
        conn.pragma_update(None, "synchronous", "NORMAL").db()?;
        conn.pragma_update(None, "foreign_keys", "ON").db()?;
        // Each migration under the write lock, the version read inside it: processes
        // opening a new file at once apply each migration exactly once.
        loop {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .db()?;
            let version: usize = tx
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .db()?;
            let Some(sql) = MIGRATIONS.get(version) else {
                break;
            };
            tx.execute_batch(sql).db()?;
            tx.pragma_update(None, "user_version", version + 1).db()?;
            tx.commit().db()?;
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut guard)
        })
        .await
        .map_err(|e| StorageError::Unavailable(e.to_string()))?
    }
}

/// A write that violated the `accounts` reference: the account does not exist.
/// Switches the file to WAL. SQLite answers that switch "locked" at once, without its
/// busy handler, while another connection is opening the file, so it is retried here
/// (every 10 ms) up to the busy timeout.
fn wal(conn: &Connection) -> Result<(), StorageError> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            result => return result.db(),
        }
    }
}

fn missing_account(e: rusqlite::Error) -> StorageError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => StorageError::NotFound,
        _ => StorageError::Unavailable(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AccountStore;
    use switchyard_core::sasl::StoredCredentials;
    use switchyard_core::Jid;

    #[tokio::test]
    async fn conforms_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchyard.db");
        let store = SqliteStore::open(&path).unwrap();
        crate::conformance::backend(&store).await;
        let alice = Jid::parse("persist@localhost").unwrap();
        let creds = StoredCredentials::from_password("pw", 4096).unwrap();
        store.create(&alice, &creds).await.unwrap();
        drop(store);
        let reopened = SqliteStore::open(&path).unwrap();
        assert_eq!(reopened.credentials(&alice).await.unwrap(), Some(creds));
    }

    /// Eight handles opening one new file at once and writing (as `user add` run eight
    /// at a time does), twenty times over: each waits for the others' locks, none fails.
    #[test]
    fn concurrent_opens_and_writes_wait_for_each_other() {
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = Arc::new(dir.path().join("switchyard.db"));
            let writers: Vec<_> = (0..8)
                .map(|i| {
                    let path = path.clone();
                    std::thread::spawn(move || {
                        let runtime = tokio::runtime::Builder::new_current_thread()
                            .build()
                            .unwrap();
                        let store = SqliteStore::open(&path).map_err(|e| format!("open: {e}"))?;
                        let jid = Jid::parse(&format!("u{i}@localhost")).unwrap();
                        let creds = StoredCredentials::from_password("pw", 4096).unwrap();
                        runtime
                            .block_on(store.create(&jid, &creds))
                            .map_err(|e| format!("create: {e}"))
                    })
                })
                .collect();
            for writer in writers {
                let result = writer.join().unwrap();
                assert!(result.is_ok(), "round {round}: {result:?}");
            }
        }
    }

    /// Two handles on one file (as two processes would have) share the quotas.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn quotas_hold_under_concurrency() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchyard.db");
        let one = Arc::new(SqliteStore::open(&path).unwrap());
        let two = Arc::new(SqliteStore::open(&path).unwrap());
        crate::conformance::quotas_under_concurrency(&[one, two]).await;
    }

    /// A database written before the byte column existed counts its held messages' bytes.
    #[tokio::test]
    async fn migration_sizes_messages_held_before_it() {
        use crate::{OfflineQuota, OfflineStore};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchyard.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            for (i, sql) in MIGRATIONS.iter().enumerate().take(2) {
                let tx = conn.transaction().unwrap();
                tx.execute_batch(sql).unwrap();
                tx.pragma_update(None, "user_version", i + 1).unwrap();
                tx.commit().unwrap();
            }
            conn.execute(
                "INSERT INTO accounts VALUES ('old@localhost', x'', 1, x'', x'', x'', 1, x'', x'', 0)",
                [],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO offline (account, stanza) VALUES ('old@localhost', ?1)",
                ["x".repeat(100)],
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let old = Jid::parse("old@localhost").unwrap();
        let quota = OfflineQuota {
            messages: 10,
            bytes: 150,
        };
        assert!(matches!(
            store.push_within(&old, &"y".repeat(51), quota).await,
            Err(StorageError::QuotaExceeded)
        ));
        store
            .push_within(&old, &"y".repeat(50), quota)
            .await
            .unwrap();
    }
}
