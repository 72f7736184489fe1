//! Builds the parts a role needs from the configuration: the durable stores (PostgreSQL,
//! or the embedded SQLite file), the session registry (Redis, or memory) and the router.

use crate::config::Config;
use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;
use switchyard_router::{BareDelivery, EdgeDelivery, Router, RouterConfig, ServerInfo};
use switchyard_storage::{
    CachedBlocks, CachedRegistry, Instrumented, MemoryRegistry, PgStore, RedisRegistry,
    SessionRegistry, SqliteStore, Stores,
};

/// The embedded SQLite store in `data_dir`.
pub fn open_sqlite(config: &Config) -> anyhow::Result<SqliteStore> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
    let path = config.data_dir.join("switchyard.db");
    SqliteStore::open(&path).with_context(|| format!("cannot open {}", path.display()))
}

/// The PostgreSQL store of this configuration, if one is configured.
pub fn open_postgres(config: &Config) -> anyhow::Result<Option<PgStore>> {
    let pg = &config.postgres;
    if pg.url.is_empty() {
        return Ok(None);
    }
    let schema = (!pg.schema.is_empty()).then_some(pg.schema.as_str());
    let store = PgStore::connect(&pg.url, schema, pg.pool_size).context("postgres")?;
    Ok(Some(store))
}

/// The durable stores: PostgreSQL when configured (migrated first if asked), else SQLite.
pub async fn open_stores(config: &Config) -> anyhow::Result<Stores> {
    let mut stores = match open_postgres(config)? {
        Some(pg) => {
            if config.postgres.migrate_on_start {
                let applied = pg.migrate().await.context("postgres migrations")?;
                tracing::info!(applied, "postgres migrations applied");
            }
            Stores::of(Arc::new(Instrumented::new(pg, "postgres")))
        }
        None => Stores::of(Arc::new(Instrumented::new(open_sqlite(config)?, "sqlite"))),
    };
    stores.blocks = Arc::new(CachedBlocks::new(
        stores.blocks.clone(),
        100_000,
        Duration::from_secs(60),
    ));
    Ok(stores)
}

/// The session registry: Redis when configured, else memory (one router only).
pub async fn open_registry(config: &Config) -> anyhow::Result<Arc<dyn SessionRegistry>> {
    let redis = &config.redis;
    if redis.urls.is_empty() {
        let memory = MemoryRegistry::default();
        return Ok(Arc::new(Instrumented::new(memory, "memory")));
    }
    let registry = RedisRegistry::connect(&redis.urls, redis.cluster, &redis.key_prefix)
        .await
        .context("redis")?;
    Ok(Arc::new(CachedRegistry::new(
        Arc::new(Instrumented::new(registry, "redis")),
        200_000,
        Duration::from_secs(300),
    )))
}

fn router_config(config: &Config) -> RouterConfig {
    let info = ServerInfo {
        name: "Switchyard",
        version: env!("CARGO_PKG_VERSION"),
        expose_version: config.server.expose_version,
    };
    let mut router = RouterConfig::new(config.domains.clone(), info);
    router.offline_quota = config.im.offline_quota;
    router.max_roster_items = config.im.max_roster_items;
    router.bare_delivery = match config.im.bare_jid_messages.as_str() {
        "all-non-negative" => BareDelivery::AllNonNegative,
        _ => BareDelivery::HighestPriority,
    };
    router
}

pub fn router(
    config: &Config,
    registry: Arc<dyn SessionRegistry>,
    stores: Stores,
    edges: Arc<dyn EdgeDelivery>,
) -> Arc<Router> {
    Arc::new(Router::new(router_config(config), registry, stores, edges))
}
