//! Rosters, offline messages, block lists and documents in SQLite.

use super::{missing_account, SqliteStore};
use crate::backend_error::DbResult;
use crate::traits::{
    fits, BlockStore, DocumentQuota, DocumentStore, OfflineQuota, OfflineStore, RosterStore,
};
use crate::StorageError;
use crate::{Roster, RosterEdit, RosterItem, RosterUpdate, Subscription};
use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row};
use switchyard_core::Jid;

/// Group names are joined with U+001F, a character XML 1.0 cannot carry, so it never
/// occurs inside a name.
const GROUP_SEP: char = '\u{1f}';

const ROW_COLUMNS: &str =
    "contact, name, groups, subscription, ask, approved, pending_in, listed, version";

fn stored_jid(s: &str) -> Result<Jid, StorageError> {
    Jid::parse(s).map_err(|e| StorageError::Unavailable(format!("stored JID {s:?}: {e}")))
}

/// One stored row, or why it could not be read back.
fn roster_row(row: &Row<'_>) -> rusqlite::Result<Result<RosterItem, StorageError>> {
    let contact: String = row.get(0)?;
    let groups: String = row.get(2)?;
    let subscription: String = row.get(3)?;
    let (name, ask, approved, pending_in, listed, version) = (
        row.get(1)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
    );
    Ok(stored_jid(&contact).map(|jid| RosterItem {
        jid,
        name,
        groups: groups
            .split(GROUP_SEP)
            .filter(|g| !g.is_empty())
            .map(str::to_owned)
            .collect(),
        subscription: Subscription::parse(&subscription).unwrap_or_default(),
        ask,
        approved,
        pending_in,
        listed,
        version,
    }))
}

#[async_trait]
impl RosterStore for SqliteStore {
    async fn roster(&self, account: &Jid) -> Result<Roster, StorageError> {
        let account = account.to_string();
        self.with(move |db| {
            let tx = db.transaction().db()?;
            let version: Option<u64> = tx
                .query_row(
                    "SELECT roster_version FROM accounts WHERE jid = ?1",
                    [&account],
                    |r| r.get(0),
                )
                .optional()
                .db()?;
            let mut stmt = tx
                .prepare(&format!(
                    "SELECT {ROW_COLUMNS} FROM roster WHERE account = ?1 ORDER BY contact"
                ))
                .db()?;
            let rows = stmt.query_map([&account], roster_row).db()?;
            let items = rows
                .map(|r| -> Result<RosterItem, StorageError> { r.db()? })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Roster {
                version: version.unwrap_or(0),
                items,
            })
        })
        .await
    }

    async fn item(&self, account: &Jid, contact: &Jid) -> Result<Option<RosterItem>, StorageError> {
        let (account, contact) = (account.to_string(), contact.to_string());
        self.with(move |db| read_row(db, &account, &contact)).await
    }

    async fn update(
        &self,
        account: &Jid,
        contact: &Jid,
        edit: RosterEdit,
    ) -> Result<RosterUpdate, StorageError> {
        let (account, contact_jid) = (account.to_string(), contact.clone());
        self.with(move |db| {
            let contact = contact_jid.to_string();
            let tx = db
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .db()?;
            let version: u64 = tx
                .query_row(
                    "UPDATE accounts SET roster_version = roster_version + 1 WHERE jid = ?1
                     RETURNING roster_version",
                    [&account],
                    |r| r.get(0),
                )
                .optional()
                .db()?
                .ok_or(StorageError::NotFound)?;
            let before = read_row(&tx, &account, &contact)?;
            let Some(mut row) = edit(before.clone()) else {
                // Dropping the transaction rolls the version back.
                return Ok(RosterUpdate {
                    before,
                    after: None,
                });
            };
            row.jid = contact_jid;
            row.version = version;
            tx.execute(
                &format!(
                    "INSERT OR REPLACE INTO roster (account, {ROW_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ),
                params![
                    account,
                    contact,
                    row.name,
                    row.groups.join(&GROUP_SEP.to_string()),
                    row.subscription.as_str(),
                    row.ask,
                    row.approved,
                    row.pending_in,
                    row.listed,
                    row.version
                ],
            )
            .db()?;
            tx.commit().db()?;
            Ok(RosterUpdate {
                before,
                after: Some(row),
            })
        })
        .await
    }
}

fn read_row(
    db: &rusqlite::Connection,
    account: &str,
    contact: &str,
) -> Result<Option<RosterItem>, StorageError> {
    db.query_row(
        &format!("SELECT {ROW_COLUMNS} FROM roster WHERE account = ?1 AND contact = ?2"),
        [account, contact],
        roster_row,
    )
    .optional()
    .db()?
    .transpose()
}

#[async_trait]
impl OfflineStore for SqliteStore {
    async fn push_within(
        &self,
        account: &Jid,
        stanza: &str,
        quota: OfflineQuota,
    ) -> Result<(), StorageError> {
        let (account, stanza) = (account.to_string(), stanza.to_owned());
        self.with(move |db| {
            // IMMEDIATE takes the write lock first, so no other writer (another process on
            // the same file included) runs between the sum and the insert.
            let tx = db
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .db()?;
            let held: (usize, usize) = tx
                .query_row(
                    "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM offline WHERE account = ?1",
                    [&account],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .db()?;
            if !fits(held, stanza.len(), (quota.messages, quota.bytes)) {
                return Err(StorageError::QuotaExceeded);
            }
            tx.execute(
                "INSERT INTO offline (account, stanza, bytes) VALUES (?1, ?2, ?3)",
                params![account, stanza, stanza.len()],
            )
            .map_err(missing_account)?;
            tx.commit().db()?;
            Ok(())
        })
        .await
    }

    async fn take(&self, account: &Jid) -> Result<Vec<String>, StorageError> {
        let account = account.to_string();
        self.with(move |db| {
            let tx = db.transaction().db()?;
            let stanzas = {
                let mut stmt = tx
                    .prepare("DELETE FROM offline WHERE account = ?1 RETURNING id, stanza")
                    .db()?;
                let mut rows = stmt
                    .query_map([&account], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?)))
                    .db()?
                    .collect::<Result<Vec<(i64, String)>, _>>()
                    .db()?;
                rows.sort_by_key(|(id, _)| *id);
                rows.into_iter().map(|(_, s)| s).collect()
            };
            tx.commit().db()?;
            Ok(stanzas)
        })
        .await
    }
    async fn held(&self, account: &Jid) -> Result<Vec<String>, StorageError> {
        let account = account.to_string();
        self.with(move |db| {
            let mut stmt = db
                .prepare("SELECT stanza FROM offline WHERE account = ?1 ORDER BY id")
                .db()?;
            let rows = stmt.query_map([&account], |r| r.get(0)).db()?;
            rows.collect::<Result<Vec<String>, _>>().db()
        })
        .await
    }
}

#[async_trait]
impl BlockStore for SqliteStore {
    async fn blocked(&self, account: &Jid) -> Result<Vec<Jid>, StorageError> {
        let account = account.to_string();
        self.with(move |db| {
            let mut stmt = db
                .prepare("SELECT jid FROM blocks WHERE account = ?1")
                .db()?;
            let rows = stmt.query_map([&account], |r| r.get::<_, String>(0)).db()?;
            let mut jids = rows
                .map(|r| stored_jid(&r.db()?))
                .collect::<Result<Vec<_>, _>>()?;
            jids.sort();
            Ok(jids)
        })
        .await
    }

    async fn block(&self, account: &Jid, jids: &[Jid]) -> Result<(), StorageError> {
        let account = account.to_string();
        let jids: Vec<String> = jids.iter().map(Jid::to_string).collect();
        self.with(move |db| {
            let tx = db.transaction().db()?;
            for jid in &jids {
                tx.execute(
                    "INSERT OR IGNORE INTO blocks (account, jid) VALUES (?1, ?2)",
                    [&account, jid],
                )
                .map_err(missing_account)?;
            }
            tx.commit().db()?;
            Ok(())
        })
        .await
    }

    async fn unblock(&self, account: &Jid, jids: &[Jid]) -> Result<(), StorageError> {
        let account = account.to_string();
        let jids: Vec<String> = jids.iter().map(Jid::to_string).collect();
        self.with(move |db| {
            let tx = db.transaction().db()?;
            if jids.is_empty() {
                tx.execute("DELETE FROM blocks WHERE account = ?1", [&account])
                    .db()?;
            }
            for jid in &jids {
                tx.execute(
                    "DELETE FROM blocks WHERE account = ?1 AND jid = ?2",
                    [&account, jid],
                )
                .db()?;
            }
            tx.commit().db()?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl DocumentStore for SqliteStore {
    async fn get(&self, account: &Jid, key: &str) -> Result<Option<String>, StorageError> {
        let (account, key) = (account.to_string(), key.to_owned());
        self.with(move |db| {
            db.query_row(
                "SELECT value FROM documents WHERE account = ?1 AND key = ?2",
                [&account, &key],
                |r| r.get(0),
            )
            .optional()
            .db()
        })
        .await
    }

    async fn family(
        &self,
        account: &Jid,
        family: &str,
    ) -> Result<Vec<(String, String)>, StorageError> {
        let (account, family) = (account.to_string(), family.to_owned());
        self.with(move |db| {
            let mut query = db
                .prepare_cached(
                    "SELECT key, value FROM documents
                     WHERE account = ?1 AND substr(key, 1, length(?2)) = ?2 ORDER BY key",
                )
                .db()?;
            let rows = query
                .query_map([&account, &family], |r| Ok((r.get(0)?, r.get(1)?)))
                .db()?;
            rows.collect::<Result<Vec<_>, _>>().db()
        })
        .await
    }

    async fn put(&self, account: &Jid, key: &str, value: Option<&str>) -> Result<(), StorageError> {
        let (account, key, value) = (
            account.to_string(),
            key.to_owned(),
            value.map(str::to_owned),
        );
        self.with(move |db| {
            match value {
                Some(v) => db
                    .execute(
                        "INSERT OR REPLACE INTO documents (account, key, value)
                         VALUES (?1, ?2, ?3)",
                        [&account, &key, &v],
                    )
                    .map_err(missing_account)?,
                None => db
                    .execute(
                        "DELETE FROM documents WHERE account = ?1 AND key = ?2",
                        [&account, &key],
                    )
                    .db()?,
            };
            Ok(())
        })
        .await
    }

    async fn put_within(
        &self,
        account: &Jid,
        family: &str,
        key: &str,
        value: &str,
        quota: DocumentQuota,
    ) -> Result<(), StorageError> {
        let (account, family) = (account.to_string(), family.to_owned());
        let (key, value) = (key.to_owned(), value.to_owned());
        self.with(move |db| {
            let tx = db
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .db()?;
            let held: (usize, usize) = tx
                .query_row(
                    "SELECT COUNT(*), COALESCE(SUM(length(CAST(key AS BLOB))
                                             + length(CAST(value AS BLOB))), 0)
                 FROM documents
                 WHERE account = ?1 AND substr(key, 1, length(?2)) = ?2 AND key <> ?3",
                    [&account, &family, &key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .db()?;
            if !fits(held, key.len() + value.len(), (quota.keys, quota.bytes)) {
                return Err(StorageError::QuotaExceeded);
            }
            tx.execute(
                "INSERT OR REPLACE INTO documents (account, key, value) VALUES (?1, ?2, ?3)",
                [&account, &key, &value],
            )
            .map_err(missing_account)?;
            tx.commit().db()?;
            Ok(())
        })
        .await
    }
}
