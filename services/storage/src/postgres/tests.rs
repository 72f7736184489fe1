//! The conformance suite against a real PostgreSQL, in a schema of its own per run.
//! `SWITCHYARD_TEST_POSTGRES` names the server (default: the local test database);
//! without one, CI fails loudly and a laptop skips with a message.

use super::*;
use crate::AccountStore;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A store in a fresh schema, dropped by [`TestSchema::drop_schema`].
pub(crate) struct TestSchema {
    pub store: PgStore,
    admin: PgStore,
    name: String,
}

impl TestSchema {
    pub(crate) async fn create() -> Option<Self> {
        let url = std::env::var("SWITCHYARD_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_URL.into());
        let admin = PgStore::connect(&PgTarget::url(&url), None, 2).expect("postgres url");
        let name = format!(
            "sy_test_{}_{}",
            std::process::id(),
            switchyard_core::token::token(8).to_lowercase()
        );
        let client = match admin.client().await {
            Ok(c) => c,
            Err(e) if std::env::var_os("CI").is_some() => {
                panic!("PostgreSQL at {url} is required in CI: {e}")
            }
            Err(e) => {
                eprintln!("SKIPPED: no PostgreSQL at {url} ({e}); set SWITCHYARD_TEST_POSTGRES");
                return None;
            }
        };
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .expect("create schema");
        let store = PgStore::connect(&PgTarget::url(&url), Some(&name), 4).expect("store");
        Some(Self { store, admin, name })
    }

    pub(crate) async fn drop_schema(self) {
        let client = self.admin.client().await.expect("admin");
        client
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await
            .expect("drop schema");
    }
}

#[tokio::test]
async fn conforms_migrates_once_and_survives_reconnect() {
    let Some(db) = TestSchema::create().await else {
        return;
    };
    assert_eq!(db.store.migrate().await.unwrap(), MIGRATIONS.len());
    assert_eq!(db.store.migrate().await.unwrap(), 0, "idempotent");
    crate::conformance::backend(&db.store).await;

    let alice = switchyard_core::Jid::parse("persist@localhost").unwrap();
    let creds = switchyard_core::sasl::StoredCredentials::from_password("pw", 4096).unwrap();
    db.store.create(&alice, &creds).await.unwrap();
    let url = std::env::var("SWITCHYARD_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_URL.into());
    let again = PgStore::connect(&PgTarget::url(&url), Some(&db.name), 2).unwrap();
    assert_eq!(again.credentials(&alice).await.unwrap(), Some(creds));
    db.drop_schema().await;
}

/// Two pools on one schema (two routers) pushing at once never overshoot a quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quotas_hold_under_concurrent_pushes_from_two_routers() {
    let Some(db) = TestSchema::create().await else {
        return;
    };
    db.store.migrate().await.unwrap();
    let url = std::env::var("SWITCHYARD_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_URL.into());
    let other = PgStore::connect(&PgTarget::url(&url), Some(&db.name), 4).unwrap();
    let handles = [
        std::sync::Arc::new(db.store.clone()),
        std::sync::Arc::new(other),
    ];
    crate::conformance::quotas_under_concurrency(&handles).await;
    db.drop_schema().await;
}

/// Messages held before the byte column existed are counted by their size.
#[tokio::test]
async fn migration_sizes_messages_held_before_it() {
    use crate::{OfflineQuota, OfflineStore};
    let Some(db) = TestSchema::create().await else {
        return;
    };
    let client = db.store.client().await.unwrap();
    client.batch_execute(MIGRATIONS[0]).await.unwrap();
    client
        .batch_execute(&format!(
            "INSERT INTO accounts VALUES ('old@localhost', '', 1, '', '', '', 1, '', '', 0);
             INSERT INTO offline (account, stanza) VALUES ('old@localhost', '{}');
             CREATE TABLE switchyard_migrations (
                version INTEGER PRIMARY KEY,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             );
             INSERT INTO switchyard_migrations (version) VALUES (1);",
            "x".repeat(100)
        ))
        .await
        .unwrap();
    drop(client);
    assert_eq!(db.store.migrate().await.unwrap(), MIGRATIONS.len() - 1);
    let old = switchyard_core::Jid::parse("old@localhost").unwrap();
    let quota = OfflineQuota {
        messages: 10,
        bytes: 150,
    };
    assert!(matches!(
        db.store.push_within(&old, &"y".repeat(51), quota).await,
        Err(StorageError::QuotaExceeded)
    ));
    db.store
        .push_within(&old, &"y".repeat(50), quota)
        .await
        .unwrap();
    db.drop_schema().await;
}

#[tokio::test]
async fn unreachable_database_is_unavailable_not_a_panic() {
    let store = PgStore::connect(
        &PgTarget::url("postgres://nobody@127.0.0.1:1/none"),
        None,
        1,
    )
    .unwrap();
    let alice = switchyard_core::Jid::parse("a@localhost").unwrap();
    assert!(matches!(
        store.credentials(&alice).await,
        Err(StorageError::Unavailable(_))
    ));
}

#[tokio::test]
async fn the_pool_publishes_its_use_and_returns_to_rest() {
    let Some(db) = TestSchema::create().await else {
        return;
    };
    let gauge = |state: &str| {
        switchyard_telemetry::STORAGE_POOL
            .with_label_values(&[&db.name, state])
            .get()
    };
    let held = [
        db.store.client().await.unwrap(),
        db.store.client().await.unwrap(),
    ];
    let published = async {
        for _ in 0..50 {
            if gauge("in_use") == 2 {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    };
    assert!(published.await, "two connections in use");
    assert_eq!(gauge("max"), 4);
    drop(held);
    let rested = async {
        for _ in 0..50 {
            if gauge("in_use") == 0 && gauge("idle") == 2 {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    };
    assert!(rested.await, "back at rest");
    db.drop_schema().await;
}

/// Host, port, user and database given apart (as charts hand them out from secret keys)
/// replace the URL's: a URL naming nowhere reaches the test database through them, and
/// with no URL at all they are the whole target.
#[tokio::test]
async fn separate_fields_replace_the_urls_parts() {
    let Some(db) = TestSchema::create().await else {
        return;
    };
    let url = std::env::var("SWITCHYARD_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_URL.into());
    let real: tokio_postgres::Config = url.parse().unwrap();
    let host = match real.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        other => panic!("a TCP host in {url}: {other:?}"),
    };
    let parts = PgTarget {
        host: Some(host),
        port: real.get_ports().first().copied(),
        user: real.get_user().map(str::to_owned),
        password: real
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        dbname: real.get_dbname().map(str::to_owned),
        ..PgTarget::default()
    };
    let nowhere = "postgres://nobody:wrong@127.0.0.1:1/none?sslmode=disable";
    for target in [
        parts.clone(),
        PgTarget {
            url: nowhere.into(),
            ..parts
        },
    ] {
        let store = PgStore::connect(&target, None, 1).unwrap();
        let client = store.client().await.expect("connected through the fields");
        let row = client
            .query_one("SELECT current_database()", &[])
            .await
            .unwrap();
        assert_eq!(Some(row.get::<_, String>(0).as_str()), real.get_dbname());
    }
    db.drop_schema().await;
}

/// A schema that does not exist yet is created by the migration, and one that cannot be
/// (a name PostgreSQL would fold) is named in a clear error.
#[tokio::test]
async fn migrate_creates_a_missing_schema_and_names_one_it_cannot() {
    let Some(db) = TestSchema::create().await else {
        return;
    };
    let url = std::env::var("SWITCHYARD_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_URL.into());
    let fresh = format!("{}_new", db.name);
    let store = PgStore::connect(&PgTarget::url(&url), Some(&fresh), 2).expect("store");
    assert_eq!(store.ensure_schema().await.unwrap(), Some(fresh.clone()));
    assert_eq!(store.migrate().await.unwrap(), MIGRATIONS.len());
    assert_eq!(store.ensure_schema().await.unwrap(), None, "there now");
    let odd = PgStore::connect(&PgTarget::url(&url), Some("\"Mixed-Case\""), 2).expect("store");
    let err = odd.migrate().await.unwrap_err().to_string();
    assert!(
        err.contains("create it, or name an existing one in postgres.schema"),
        "{err}"
    );
    let client = db.admin.client().await.expect("admin");
    client
        .batch_execute(&format!("DROP SCHEMA {fresh} CASCADE"))
        .await
        .expect("drop");
    db.drop_schema().await;
}
