//! Rosters, offline messages, block lists and documents in PostgreSQL.

use super::{sql, PgStore};
use crate::backend_error::DbResult;
use crate::traits::{
    fits, BlockStore, DocumentQuota, DocumentStore, OfflineQuota, OfflineStore, RosterStore,
};
use crate::StorageError;
use crate::{Roster, RosterEdit, RosterItem, RosterUpdate, Subscription};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use switchyard_core::Jid;
use tokio_postgres::Row;

const ROW_COLUMNS: &str =
    "contact, name, groups, subscription, ask, approved, pending_in, listed, version";

/// An account's roster version with every item, one row per item (an account without
/// items is one row of NULL items; no account, no row). Every roster column is named by
/// its table: a column `accounts` gains later must not make one of them ambiguous.
static ROSTER_WITH_VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let columns: Vec<String> = ROW_COLUMNS.split(", ").map(|c| format!("r.{c}")).collect();
    format!(
        "SELECT {}, a.roster_version FROM accounts a
         LEFT JOIN roster r ON r.account = a.jid WHERE a.jid = $1 ORDER BY r.contact",
        columns.join(", ")
    )
});

pub(super) fn stored_jid(s: &str) -> Result<Jid, StorageError> {
    Jid::parse(s).map_err(|e| StorageError::Unavailable(format!("stored JID {s:?}: {e}")))
}

fn roster_row(row: &Row) -> Result<RosterItem, StorageError> {
    let subscription: &str = row.try_get(3).db()?;
    let version: i64 = row.try_get(8).db()?;
    Ok(RosterItem {
        jid: stored_jid(row.try_get(0).db()?)?,
        name: row.try_get(1).db()?,
        groups: row.try_get(2).db()?,
        subscription: Subscription::parse(subscription).unwrap_or_default(),
        ask: row.try_get(4).db()?,
        approved: row.try_get(5).db()?,
        pending_in: row.try_get(6).db()?,
        listed: row.try_get(7).db()?,
        version: version as u64,
    })
}

async fn read_row(
    db: &impl GenericClient,
    account: &str,
    contact: &str,
) -> Result<Option<RosterItem>, StorageError> {
    let statement = format!("SELECT {ROW_COLUMNS} FROM roster WHERE account = $1 AND contact = $2");
    sql::query_opt(db, &statement, &[&account, &contact])
        .await?
        .map(|r| roster_row(&r))
        .transpose()
}

#[async_trait]
impl RosterStore for PgStore {
    async fn roster(&self, account: &Jid) -> Result<Roster, StorageError> {
        // One statement, so one snapshot and one round trip.
        let rows = sql::query(
            &self.client().await?,
            &ROSTER_WITH_VERSION,
            &[&account.to_string()],
        )
        .await?;
        let version: i64 = match rows.first() {
            Some(row) => row.try_get(row.len() - 1).db()?, // the version comes last
            None => 0,
        };
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            if row.try_get::<_, Option<&str>>(0).db()?.is_some() {
                items.push(roster_row(row)?);
            }
        }
        Ok(Roster {
            version: version as u64,
            items,
        })
    }

    async fn item(&self, account: &Jid, contact: &Jid) -> Result<Option<RosterItem>, StorageError> {
        let client = self.client().await?;
        read_row(&client, &account.to_string(), &contact.to_string()).await
    }

    async fn update(
        &self,
        account: &Jid,
        contact: &Jid,
        edit: RosterEdit,
    ) -> Result<RosterUpdate, StorageError> {
        let (account_s, contact_s) = (account.to_string(), contact.to_string());
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let version: i64 = sql::query_opt(
            &tx,
            "UPDATE accounts SET roster_version = roster_version + 1 WHERE jid = $1
             RETURNING roster_version",
            &[&account_s],
        )
        .await?
        .ok_or(StorageError::NotFound)?
        .get(0);
        let before = read_row(&tx, &account_s, &contact_s).await?;
        let Some(mut row) = edit(before.clone()) else {
            tx.rollback().await.db()?;
            return Ok(RosterUpdate {
                before,
                after: None,
            });
        };
        row.jid = contact.clone();
        row.version = version as u64;
        sql::execute(
            &tx,
            &format!(
                "INSERT INTO roster (account, {ROW_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (account, contact) DO UPDATE SET name = $3, groups = $4,
                 subscription = $5, ask = $6, approved = $7, pending_in = $8, listed = $9,
                 version = $10"
            ),
            &[
                &account_s,
                &contact_s,
                &row.name,
                &row.groups,
                &row.subscription.as_str(),
                &row.ask,
                &row.approved,
                &row.pending_in,
                &row.listed,
                &version,
            ],
        )
        .await?;
        tx.commit().await.db()?;
        Ok(RosterUpdate {
            before,
            after: Some(row),
        })
    }
}

/// Writes a document, replacing the one under the same key.
const PUT_DOCUMENT: &str = "INSERT INTO documents (account, key, value) VALUES ($1, $2, $3)
     ON CONFLICT (account, key) DO UPDATE SET value = $3";

/// Locks the account's row for the rest of the transaction; [`StorageError::NotFound`]
/// when there is no such account.
async fn lock_account(db: &impl GenericClient, account: &str) -> Result<(), StorageError> {
    sql::query_opt(
        db,
        "SELECT 1 FROM accounts WHERE jid = $1 FOR UPDATE",
        &[&account],
    )
    .await?
    .map(|_| ())
    .ok_or(StorageError::NotFound)
}

/// A `(COUNT(*), SUM(bytes))` row as the sizes it counts.
fn held(row: &Row) -> Result<(usize, usize), StorageError> {
    let (count, bytes): (i64, i64) = (row.try_get(0).db()?, row.try_get(1).db()?);
    Ok((count.max(0) as usize, bytes.max(0) as usize))
}

#[async_trait]
impl OfflineStore for PgStore {
    async fn push_within(
        &self,
        account: &Jid,
        stanza: &str,
        quota: OfflineQuota,
    ) -> Result<(), StorageError> {
        let account = account.to_string();
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        lock_account(&tx, &account).await?;
        let row = sql::query_one(
            &tx,
            "SELECT COUNT(*), COALESCE(SUM(bytes), 0)::BIGINT FROM offline WHERE account = $1",
            &[&account],
        )
        .await?;
        if !fits(held(&row)?, stanza.len(), (quota.messages, quota.bytes)) {
            return Err(StorageError::QuotaExceeded);
        }
        let bytes = stanza.len() as i64;
        sql::execute(
            &tx,
            "INSERT INTO offline (account, stanza, bytes) VALUES ($1, $2, $3)",
            &[&account, &stanza, &bytes],
        )
        .await?;
        tx.commit().await.db()?;
        Ok(())
    }

    async fn take(&self, account: &Jid) -> Result<Vec<String>, StorageError> {
        let rows = sql::query(
            &self.client().await?,
            "DELETE FROM offline WHERE account = $1 RETURNING id, stanza",
            &[&account.to_string()],
        )
        .await?;
        let mut held: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        held.sort_by_key(|(id, _)| *id);
        Ok(held.into_iter().map(|(_, s)| s).collect())
    }

    async fn held(&self, account: &Jid) -> Result<Vec<String>, StorageError> {
        let rows = sql::query(
            &self.client().await?,
            "SELECT stanza FROM offline WHERE account = $1 ORDER BY id",
            &[&account.to_string()],
        )
        .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

#[async_trait]
impl BlockStore for PgStore {
    async fn blocked(&self, account: &Jid) -> Result<Vec<Jid>, StorageError> {
        let rows = sql::query(
            &self.client().await?,
            "SELECT jid FROM blocks WHERE account = $1",
            &[&account.to_string()],
        )
        .await?;
        let mut jids = rows
            .iter()
            .map(|r| stored_jid(r.get(0)))
            .collect::<Result<Vec<_>, _>>()?;
        jids.sort();
        Ok(jids)
    }

    async fn block(&self, account: &Jid, jids: &[Jid]) -> Result<(), StorageError> {
        let jids: Vec<String> = jids.iter().map(Jid::to_string).collect();
        sql::execute(
            &self.client().await?,
            "INSERT INTO blocks (account, jid) SELECT $1, unnest($2::text[])
             ON CONFLICT DO NOTHING",
            &[&account.to_string(), &jids],
        )
        .await?;
        Ok(())
    }

    async fn unblock(&self, account: &Jid, jids: &[Jid]) -> Result<(), StorageError> {
        let account = account.to_string();
        let client = self.client().await?;
        if jids.is_empty() {
            sql::execute(
                &client,
                "DELETE FROM blocks WHERE account = $1",
                &[&account],
            )
            .await?;
            return Ok(());
        }
        let jids: Vec<String> = jids.iter().map(Jid::to_string).collect();
        sql::execute(
            &client,
            "DELETE FROM blocks WHERE account = $1 AND jid = ANY($2)",
            &[&account, &jids],
        )
        .await?;
        Ok(())
    }
}

#[async_trait]
impl DocumentStore for PgStore {
    async fn get(&self, account: &Jid, key: &str) -> Result<Option<String>, StorageError> {
        let row = sql::query_opt(
            &self.client().await?,
            "SELECT value FROM documents WHERE account = $1 AND key = $2",
            &[&account.to_string(), &key],
        )
        .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn family(
        &self,
        account: &Jid,
        family: &str,
    ) -> Result<Vec<(String, String)>, StorageError> {
        let rows = sql::query(
            &self.client().await?,
            "SELECT key, value FROM documents
             WHERE account = $1 AND left(key, char_length($2::TEXT)) = $2::TEXT ORDER BY key",
            &[&account.to_string(), &family],
        )
        .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn put(&self, account: &Jid, key: &str, value: Option<&str>) -> Result<(), StorageError> {
        let account = account.to_string();
        let client = self.client().await?;
        match value {
            Some(v) => sql::execute(&client, PUT_DOCUMENT, &[&account, &key, &v]).await?,
            None => {
                sql::execute(
                    &client,
                    "DELETE FROM documents WHERE account = $1 AND key = $2",
                    &[&account, &key],
                )
                .await?
            }
        };
        Ok(())
    }

    async fn put_within(
        &self,
        account: &Jid,
        family: &str,
        key: &str,
        value: &str,
        quota: DocumentQuota,
    ) -> Result<(), StorageError> {
        let account = account.to_string();
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        lock_account(&tx, &account).await?;
        let row = sql::query_one(
            &tx,
            "SELECT COUNT(*), COALESCE(SUM(octet_length(key) + octet_length(value)), 0)::BIGINT
             FROM documents
             WHERE account = $1 AND left(key, char_length($2::TEXT)) = $2::TEXT AND key <> $3",
            &[&account, &family, &key],
        )
        .await?;
        if !fits(
            held(&row)?,
            key.len() + value.len(),
            (quota.keys, quota.bytes),
        ) {
            return Err(StorageError::QuotaExceeded);
        }
        sql::execute(&tx, PUT_DOCUMENT, &[&account, &key, &value]).await?;
        tx.commit().await.db()?;
        Ok(())
    }
}
