//! Accounts and their SCRAM keys in PostgreSQL.

use super::{sql, PgStore};
use crate::backend_error::DbResult;
use crate::{AccountStore, StorageError};
use async_trait::async_trait;
use switchyard_core::sasl::{ScramKeys, StoredCredentials};
use switchyard_core::Jid;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

fn keys(row: &Row, at: usize) -> Result<ScramKeys, StorageError> {
    let iterations: i32 = row.try_get(at + 1).db()?;
    Ok(ScramKeys {
        salt: row.try_get(at).db()?,
        iterations: u32::try_from(iterations)
            .map_err(|_| StorageError::Unavailable("negative iteration count".into()))?,
        stored_key: row.try_get(at + 2).db()?,
        server_key: row.try_get(at + 3).db()?,
    })
}

impl PgStore {
    /// Runs `statement` with the JID as `$1` and the keys as `$2..$9`; returns rows written.
    async fn write_credentials(
        &self,
        statement: &str,
        account: &Jid,
        c: &StoredCredentials,
    ) -> Result<u64, StorageError> {
        let jid = account.to_string();
        let (i1, i256) = (c.sha1.iterations as i32, c.sha256.iterations as i32);
        let params: [&(dyn ToSql + Sync); 9] = [
            &jid,
            &c.sha1.salt,
            &i1,
            &c.sha1.stored_key,
            &c.sha1.server_key,
            &c.sha256.salt,
            &i256,
            &c.sha256.stored_key,
            &c.sha256.server_key,
        ];
        sql::execute(&self.client().await?, statement, &params).await
    }
}

#[async_trait]
impl AccountStore for PgStore {
    async fn create(&self, account: &Jid, creds: &StoredCredentials) -> Result<(), StorageError> {
        const SQL: &str = "INSERT INTO accounts (jid, sha1_salt, sha1_iterations,
            sha1_stored_key, sha1_server_key, sha256_salt, sha256_iterations,
            sha256_stored_key, sha256_server_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            ON CONFLICT DO NOTHING";
        match self.write_credentials(SQL, account, creds).await? {
            0 => Err(StorageError::AlreadyExists),
            _ => Ok(()),
        }
    }

    async fn set_credentials(
        &self,
        account: &Jid,
        creds: &StoredCredentials,
    ) -> Result<(), StorageError> {
        const SQL: &str = "UPDATE accounts SET sha1_salt = $2, sha1_iterations = $3,
            sha1_stored_key = $4, sha1_server_key = $5, sha256_salt = $6,
            sha256_iterations = $7, sha256_stored_key = $8, sha256_server_key = $9
            WHERE jid = $1";
        match self.write_credentials(SQL, account, creds).await? {
            0 => Err(StorageError::NotFound),
            _ => Ok(()),
        }
    }

    async fn credentials(&self, account: &Jid) -> Result<Option<StoredCredentials>, StorageError> {
        let row = sql::query_opt(
            &self.client().await?,
            "SELECT sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key,
             sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key
             FROM accounts WHERE jid = $1",
            &[&account.to_string()],
        )
        .await?;
        row.map(|row| {
            Ok(StoredCredentials {
                sha1: keys(&row, 0)?,
                sha256: keys(&row, 4)?,
            })
        })
        .transpose()
    }

    async fn remove(&self, account: &Jid) -> Result<bool, StorageError> {
        let n = sql::execute(
            &self.client().await?,
            "DELETE FROM accounts WHERE jid = $1",
            &[&account.to_string()],
        )
        .await?;
        Ok(n > 0)
    }

    async fn list(&self) -> Result<Vec<Jid>, StorageError> {
        let rows = sql::query(&self.client().await?, "SELECT jid FROM accounts", &[]).await?;
        let mut jids = rows
            .iter()
            .map(|r| super::im::stored_jid(r.try_get(0).db()?))
            .collect::<Result<Vec<_>, _>>()?;
        jids.sort();
        Ok(jids)
    }
}
