//! Rosters, offline messages, block lists and documents in PostgreSQL.

use super::PgStore;
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
    let sql = format!("SELECT {ROW_COLUMNS} FROM roster WHERE account = $1 AND contact = $2");
    db.query_opt(&sql, &[&account, &contact])
        .await
        .db()?
        .map(|r| roster_row(&r))
        .transpose()
}

#[async_trait]
impl RosterStore for PgStore {
    async fn roster(&self, account: &Jid) -> Result<Roster, StorageError> {
        let account = account.to_string();
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let version: Option<i64> = tx
            .query_opt(
                "SELECT roster_version FROM accounts WHERE jid = $1",
                &[&account],
            )
            .await
            .db()?
            .map(|r| r.get(0));
        let sql = format!("SELECT {ROW_COLUMNS} FROM roster WHERE account = $1 ORDER BY contact");
        let rows = tx.query(&sql, &[&account]).await.db()?;
        tx.commit().await.db()?;
        Ok(Roster {
            version: version.unwrap_or(0) as u64,
            items: rows.iter().map(roster_row).collect::<Result<_, _>>()?,
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
        let version: i64 = tx
            .query_opt(
                "UPDATE accounts SET roster_version = roster_version + 1 WHERE jid = $1
                 RETURNING roster_version",
                &[&account_s],
            )
            .await
            .db()?
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
        tx.execute(
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
        .await
        .db()?;
        tx.commit().await.db()?;
        Ok(RosterUpdate {
            before,
            after: Some(row),
        })
    }
}

/// Locks the account's row for the rest of the transaction; [`StorageError::NotFound`]
/// when there is no such account.
async fn lock_account(db: &impl GenericClient, account: &str) -> Result<(), StorageError> {
    db.query_opt(
        "SELECT 1 FROM accounts WHERE jid = $1 FOR UPDATE",
        &[&account],
    )
    .await
    .db()?
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
        let row = tx
            .query_one(
                "SELECT COUNT(*), COALESCE(SUM(bytes), 0)::BIGINT FROM offline
                 WHERE account = $1",
                &[&account],
            )
            .await
            .db()?;
        if !fits(held(&row)?, stanza.len(), (quota.messages, quota.bytes)) {
            return Err(StorageError::QuotaExceeded);
        }
        let bytes = stanza.len() as i64;
        tx.execute(
            "INSERT INTO offline (account, stanza, bytes) VALUES ($1, $2, $3)",
            &[&account, &stanza, &bytes],
        )
        .await
        .db()?;
        tx.commit().await.db()?;
        Ok(())
    }

    async fn take(&self, account: &Jid) -> Result<Vec<String>, StorageError> {
        let rows = self
            .client()
            .await?
            .query(
                "DELETE FROM offline WHERE account = $1 RETURNING id, stanza",
                &[&account.to_string()],
            )
            .await
            .db()?;
        let mut held: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        held.sort_by_key(|(id, _)| *id);
        Ok(held.into_iter().map(|(_, s)| s).collect())
    }

    async fn held(&self, account: &Jid) -> Result<Vec<String>, StorageError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT stanza FROM offline WHERE account = $1 ORDER BY id",
                &[&account.to_string()],
            )
            .await
            .db()?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

#[async_trait]
impl BlockStore for PgStore {
    async fn blocked(&self, account: &Jid) -> Result<Vec<Jid>, StorageError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT jid FROM blocks WHERE account = $1",
                &[&account.to_string()],
            )
            .await
            .db()?;
        let mut jids = rows
            .iter()
            .map(|r| stored_jid(r.get(0)))
            .collect::<Result<Vec<_>, _>>()?;
        jids.sort();
        Ok(jids)
    }

    async fn block(&self, account: &Jid, jids: &[Jid]) -> Result<(), StorageError> {
        let jids: Vec<String> = jids.iter().map(Jid::to_string).collect();
        self.client()
            .await?
            .execute(
                "INSERT INTO blocks (account, jid) SELECT $1, unnest($2::text[])
                 ON CONFLICT DO NOTHING",
                &[&account.to_string(), &jids],
            )
            .await
            .db()?;
        Ok(())
    }

    async fn unblock(&self, account: &Jid, jids: &[Jid]) -> Result<(), StorageError> {
        let account = account.to_string();
        let client = self.client().await?;
        if jids.is_empty() {
            client
                .execute("DELETE FROM blocks WHERE account = $1", &[&account])
                .await
                .db()?;
            return Ok(());
        }
        let jids: Vec<String> = jids.iter().map(Jid::to_string).collect();
        client
            .execute(
                "DELETE FROM blocks WHERE account = $1 AND jid = ANY($2)",
                &[&account, &jids],
            )
            .await
            .db()?;
        Ok(())
    }
}

#[async_trait]
impl DocumentStore for PgStore {
    async fn get(&self, account: &Jid, key: &str) -> Result<Option<String>, StorageError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT value FROM documents WHERE account = $1 AND key = $2",
                &[&account.to_string(), &key],
            )
            .await
            .db()?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn family(
        &self,
        account: &Jid,
        family: &str,
    ) -> Result<Vec<(String, String)>, StorageError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT key, value FROM documents
                 WHERE account = $1 AND left(key, char_length($2::TEXT)) = $2::TEXT ORDER BY key",
                &[&account.to_string(), &family],
            )
            .await
            .db()?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn put(&self, account: &Jid, key: &str, value: Option<&str>) -> Result<(), StorageError> {
        let account = account.to_string();
        let client = self.client().await?;
        match value {
            Some(v) => client
                .execute(
                    "INSERT INTO documents (account, key, value) VALUES ($1, $2, $3)
                         ON CONFLICT (account, key) DO UPDATE SET value = $3",
                    &[&account, &key, &v],
                )
                .await
                .db()?,
            None => client
                .execute(
                    "DELETE FROM documents WHERE account = $1 AND key = $2",
                    &[&account, &key],
                )
                .await
                .db()?,
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
        let row = tx
            .query_one(
                "SELECT COUNT(*), COALESCE(SUM(octet_length(key) + octet_length(value)), 0)::BIGINT
                 FROM documents
                 WHERE account = $1 AND left(key, char_length($2::TEXT)) = $2::TEXT AND key <> $3",
                &[&account, &family, &key],
            )
            .await
            .db()?;
        if !fits(
            held(&row)?,
            key.len() + value.len(),
            (quota.keys, quota.bytes),
        ) {
            return Err(StorageError::QuotaExceeded);
        }
        tx.execute(
            "INSERT INTO documents (account, key, value) VALUES ($1, $2, $3)
             ON CONFLICT (account, key) DO UPDATE SET value = $3",
            &[&account, &key, &value],
        )
        .await
        .db()?;
        tx.commit().await.db()?;
        Ok(())
    }
}
