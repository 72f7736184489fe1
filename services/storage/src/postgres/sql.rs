//! Every query of this backend goes through these four functions: each statement is
//! prepared once per pooled connection and kept there (deadpool's statement cache), so a
//! query costs one round trip instead of two (prepare, then execute) and PostgreSQL plans
//! it once per connection instead of on every call. The statements are this crate's
//! fixed texts, so the cache stays a few dozen entries per connection.
//!
//! Statements name their columns (no `SELECT *`), qualified where tables are joined: a
//! migration that adds a column while older routers run does not invalidate their cached
//! statements. A migration that changes a column's type does: PostgreSQL then refuses a
//! cached statement reading it ("cached plan must not change result type") on every
//! connection that prepared it, so such a migration needs the routers restarted after it
//! (a rolling restart), as the README says at `postgres.url`. The same holds behind a
//! connection pooler in transaction mode that does not track prepared statements
//! (PgBouncer before 1.21, or without `max_prepared_statements`): use session mode.

use crate::backend_error::DbResult;
use crate::StorageError;
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

/// Parameters of a statement, as tokio-postgres takes them.
pub(super) type Params<'a> = [&'a (dyn ToSql + Sync)];

pub(super) async fn query(
    db: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
) -> Result<Vec<Row>, StorageError> {
    let statement = db.prepare_cached(sql).await.db()?;
    db.query(&statement, params).await.db()
}

pub(super) async fn query_opt(
    db: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
) -> Result<Option<Row>, StorageError> {
    let statement = db.prepare_cached(sql).await.db()?;
    db.query_opt(&statement, params).await.db()
}

pub(super) async fn query_one(
    db: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
) -> Result<Row, StorageError> {
    let statement = db.prepare_cached(sql).await.db()?;
    db.query_one(&statement, params).await.db()
}

/// Runs a statement that returns no rows; returns how many rows it changed.
pub(super) async fn execute(
    db: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
) -> Result<u64, StorageError> {
    let statement = db.prepare_cached(sql).await.db()?;
    db.execute(&statement, params).await.db()
}
