//! Builds the parts a role needs from the configuration: the durable stores (PostgreSQL,
//! or the embedded SQLite file), the session registry (Redis, or memory) and the router;
//! and keeps the data directory private to the service user (0700, files in it 0600).

use crate::config::Config;
use anyhow::Context;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use switchyard_router::fast::FastPolicy;
use switchyard_router::{
    BareDelivery, EdgeDelivery, Router, RouterConfig, ServerInfo, UnknownAccountMessages,
};
use switchyard_storage::{
    CachedBlocks, CachedRegistry, Instrumented, MemoryRegistry, PgStore, RedisRegistry,
    SessionRegistry, SqliteStore, Stores,
};
use switchyard_storage::{
    LoginFailures, MemoryLoginFailures, PgTarget, RedisLoginFailures, RedisServers,
};

/// The embedded SQLite store in `data_dir`. The file is created owner-only before SQLite
/// opens it, because SQLite gives its `-wal` and `-shm` side files the database's mode.
pub fn open_sqlite(config: &Config) -> anyhow::Result<SqliteStore> {
    private_data_dir(&config.data_dir)?;
    let path = config.data_dir.join("switchyard.db");
    private_file(&path)?;
    for side in ["-wal", "-shm", "-journal"] {
        let mut name = path.clone().into_os_string();
        name.push(side);
        tighten(Path::new(&name));
    }
    SqliteStore::open(&path).with_context(|| format!("cannot open {}", path.display()))
}

/// Creates `data_dir` (and missing parents) readable by the service user only (0700), or
/// tightens an existing one: it holds the accounts database and the development key.
pub fn private_data_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create data_dir {}", dir.display()))?;
    tighten(dir);
    Ok(())
}

/// Creates an empty `path` with mode 0600 unless it exists, which is then tightened.
fn private_file(path: &Path) -> anyhow::Result<()> {
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            tighten(path);
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// Takes the group and other permission bits off `path` (if it exists and has any), so
/// files an older version or a permissive umask left readable become private. Where that
/// is not allowed (another owner, a read-only mount) the process still runs, and says so.
pub fn tighten(path: &Path) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return;
    }
    let private = mode & 0o700;
    let path_shown = path.display();
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(private)) {
        Ok(()) => tracing::warn!(
            path = %path_shown,
            "{path_shown} was open to other users (mode {mode:o}); made it private ({private:o})"
        ),
        Err(e) => tracing::warn!(
            path = %path_shown,
            "{path_shown} is open to other users (mode {mode:o}) and cannot be made private ({e}): \
             restrict it to the service user"
        ),
    }
}

/// Warns when a key file the operator supplied is readable by every user; it is not ours
/// to change (a group-readable key, as with Debian's `ssl-cert` group, is a choice).
pub fn warn_if_world_readable(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o004 != 0 {
            tracing::warn!(
                path = %path.display(),
                "the TLS key {} is readable by every user (mode {mode:o}): chmod o-r it",
                path.display()
            );
        }
    }
}

/// The PostgreSQL store of this configuration, if one is configured.
pub fn open_postgres(config: &Config) -> anyhow::Result<Option<PgStore>> {
    let pg = &config.postgres;
    if pg.url.is_empty() && pg.host.is_empty() {
        return Ok(None);
    }
    let schema = (!pg.schema.is_empty()).then_some(pg.schema.as_str());
    let set = |s: &String| (!s.is_empty()).then(|| s.clone());
    let ca_pem = match pg.ca_path.as_str() {
        "" => None,
        path => Some(
            std::fs::read(path).with_context(|| format!("postgres.ca_path: cannot read {path}"))?,
        ),
    };
    let target = PgTarget {
        url: pg.url.clone(),
        host: set(&pg.host),
        port: (pg.port != 0).then_some(pg.port),
        user: set(&pg.user),
        password: set(&pg.password),
        dbname: set(&pg.dbname),
        ca_pem,
    };
    let store = PgStore::connect(&target, schema, pg.pool_size).context("postgres")?;
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

/// Where Redis is, with the CA of its certificates when `redis.ca_path` names one.
fn redis_servers(config: &Config) -> anyhow::Result<RedisServers> {
    let redis = &config.redis;
    let mut servers = RedisServers::at(&redis.urls, redis.cluster);
    if !redis.ca_path.is_empty() {
        let pem = std::fs::read(&redis.ca_path)
            .with_context(|| format!("redis.ca_path: cannot read {}", redis.ca_path))?;
        servers.ca_pem = Some(pem);
    }
    Ok(servers)
}

/// The session registry: Redis when configured, else memory (one router only).
pub async fn open_registry(config: &Config) -> anyhow::Result<Arc<dyn SessionRegistry>> {
    let redis = &config.redis;
    if redis.urls.is_empty() {
        let memory = MemoryRegistry::default();
        return Ok(Arc::new(Instrumented::new(memory, "memory")));
    }
    let registry = RedisRegistry::connect(&redis_servers(config)?, &redis.key_prefix)
        .await
        .context("redis")?;
    Ok(Arc::new(CachedRegistry::new(
        Arc::new(Instrumented::new(registry, "redis")),
        200_000,
        Duration::from_secs(300),
    )))
}

/// The router's settings from the configuration (also the limits an import holds
/// accounts to).
pub fn router_config(config: &Config) -> RouterConfig {
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
    let im = &config.im;
    router.offline_quota_bytes = im.offline_quota_bytes;
    router.unknown_account_messages = match im.unknown_account_messages.as_str() {
        "service-unavailable" => UnknownAccountMessages::ServiceUnavailable,
        _ => UnknownAccountMessages::Ignore,
    };
    router.private_quota_namespaces = im.private_quota_namespaces;
    router.private_quota_bytes = im.private_quota_bytes;
    router.max_roster_name_bytes = im.max_roster_name_bytes;
    router.max_roster_group_bytes = im.max_roster_group_bytes;
    router.max_roster_groups = im.max_roster_groups;
    router.components = config.component_domains();
    router.push_include_body = config.push.include_body;
    router.push_min_interval = Duration::from_secs(config.push.min_interval_secs);
    router.fast = FastPolicy {
        ttl: Duration::from_secs(config.auth.fast_token_secs),
        rotate_after: Duration::from_secs(config.auth.fast_rotate_secs),
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

/// Where the throttle's login-failure counts live for a router or the all-in-one process:
/// Redis when configured, shared by every router and so by every edge; else memory,
/// bounded by `auth.failure_table_entries`.
pub async fn open_login_failures(config: &Config) -> anyhow::Result<Arc<dyn LoginFailures>> {
    let redis = &config.redis;
    if redis.urls.is_empty() {
        let memory = MemoryLoginFailures::new(config.auth.failure_table_entries);
        return Ok(Arc::new(memory));
    }
    let store = RedisLoginFailures::connect(&redis_servers(config)?, &redis.key_prefix)
        .await
        .context("redis (login failures)")?;
    Ok(Arc::new(store))
}

/// The file in `data_dir` that keeps a generated decoy secret.
pub const DECOY_SECRET_FILE: &str = "decoy-secret";

/// The secret the SASL decoy salts come from (see `switchyard_core::sasl::Decoy`): it must
/// be the same on every edge and across restarts, or an unknown account shows itself by a
/// salt that changes. `auth.decoy_secret` when set; else, when `generate` (the all-in-one
/// mode, whose one edge is this process), one made on first start and kept in
/// `<data_dir>/decoy-secret`, owner-only. A cluster edge cannot make one up: edges share
/// nothing secret that would do, so the setting is required there.
pub fn decoy_secret(config: &Config, generate: bool) -> anyhow::Result<Vec<u8>> {
    if !config.auth.decoy_secret.is_empty() {
        return Ok(config.auth.decoy_secret.as_bytes().to_vec());
    }
    anyhow::ensure!(
        generate,
        "auth.decoy_secret (SWITCHYARD_AUTH__DECOY_SECRET) is required on an edge: the same \
         secret of at least {} characters on every edge, e.g. from `openssl rand -hex 32`",
        crate::config::MIN_DECOY_SECRET_CHARS
    );
    private_data_dir(&config.data_dir)?;
    let path = config.data_dir.join(DECOY_SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(kept) => {
            tighten(&path);
            let kept = kept.trim();
            anyhow::ensure!(
                kept.chars().count() >= crate::config::MIN_DECOY_SECRET_CHARS,
                "{} holds no usable decoy secret: remove it to have a new one made",
                path.display()
            );
            Ok(kept.as_bytes().to_vec())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Written whole under another name, then renamed: never seen half-written.
            let secret = switchyard_core::token::token(48);
            let partial = config.data_dir.join(format!("{DECOY_SECRET_FILE}.new"));
            let _ = std::fs::remove_file(&partial);
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&partial)
                .and_then(|mut f| std::io::Write::write_all(&mut f, secret.as_bytes()))
                .and_then(|()| std::fs::rename(&partial, &path))
                .with_context(|| format!("cannot write {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated the SASL decoy secret");
            Ok(secret.into_bytes())
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}
