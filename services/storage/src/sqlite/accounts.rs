//! Accounts and their SCRAM keys in SQLite.

use super::SqliteStore;
use crate::backend_error::DbResult;
use crate::{AccountStore, StorageError};
use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use switchyard_core::sasl::{ScramKeys, StoredCredentials};
use switchyard_core::Jid;

impl SqliteStore {
    /// Runs `sql` with the account's JID as `?1` and its keys as `?2..?9`; `unchanged` is
    /// the error when no row was written.
    async fn write_credentials(
        &self,
        sql: &'static str,
        account: &Jid,
        creds: &StoredCredentials,
        unchanged: StorageError,
    ) -> Result<(), StorageError> {
        let (jid, c) = (account.to_string(), creds.clone());
        self.with(move |db| {
            let written = db
                .execute(
                    sql,
                    params![
                        jid,
                        c.sha1.salt,
                        c.sha1.iterations,
                        c.sha1.stored_key,
                        c.sha1.server_key,
                        c.sha256.salt,
                        c.sha256.iterations,
                        c.sha256.stored_key,
                        c.sha256.server_key
                    ],
                )
                .db()?;
            if written == 0 {
                return Err(unchanged);
            }
            Ok(())
        })
        .await
    }
}

fn keys(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<ScramKeys> {
    Ok(ScramKeys {
        salt: row.get(at)?,
        iterations: row.get(at + 1)?,
        stored_key: row.get(at + 2)?,
        server_key: row.get(at + 3)?,
    })
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn create(&self, account: &Jid, creds: &StoredCredentials) -> Result<(), StorageError> {
        const SQL: &str = "INSERT INTO accounts (jid, sha1_salt, sha1_iterations, sha1_stored_key,
            sha1_server_key, sha256_salt, sha256_iterations, sha256_stored_key,
            sha256_server_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                           ON CONFLICT DO NOTHING";
        self.write_credentials(SQL, account, creds, StorageError::AlreadyExists)
            .await
    }

    async fn set_credentials(
        &self,
        account: &Jid,
        creds: &StoredCredentials,
    ) -> Result<(), StorageError> {
        const SQL: &str = "UPDATE accounts SET sha1_salt = ?2, sha1_iterations = ?3,
            sha1_stored_key = ?4, sha1_server_key = ?5, sha256_salt = ?6,
            sha256_iterations = ?7, sha256_stored_key = ?8, sha256_server_key = ?9 WHERE jid = ?1";
        self.write_credentials(SQL, account, creds, StorageError::NotFound)
            .await
    }

    async fn credentials(&self, account: &Jid) -> Result<Option<StoredCredentials>, StorageError> {
        let jid = account.to_string();
        self.with(move |db| {
            let row = db
                .query_row(
                    "SELECT sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key,
                     sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key
                     FROM accounts WHERE jid = ?1",
                    [jid],
                    |row| {
                        Ok(StoredCredentials {
                            sha1: keys(row, 0)?,
                            sha256: keys(row, 4)?,
                        })
                    },
                )
                .optional()
                .db()?;
            Ok(row)
        })
        .await
    }

    async fn remove(&self, account: &Jid) -> Result<bool, StorageError> {
        let jid = account.to_string();
        self.with(move |db| {
            Ok(db
                .execute("DELETE FROM accounts WHERE jid = ?1", [jid])
                .db()?
                > 0)
        })
        .await
    }

    async fn list(&self) -> Result<Vec<Jid>, StorageError> {
        self.with(|db| {
            let mut stmt = db.prepare("SELECT jid FROM accounts ORDER BY jid").db()?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).db()?;
            rows.map(|r| {
                let s = r.db()?;
                Jid::parse(&s)
                    .map_err(|e| StorageError::Unavailable(format!("stored JID {s:?}: {e}")))
            })
            .collect()
        })
        .await
    }
}
