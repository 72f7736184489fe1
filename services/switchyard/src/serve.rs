//! `switchyard serve`: wires storage, router and edge for the requested roles, handles
//! signals (SIGTERM/Ctrl-C drain, SIGHUP reloads TLS) and waits for the drain to finish.

use crate::config::Config;
use crate::inproc::{InProcessLink, LocalEdge};
use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::sasl::Mechanism;
use switchyard_core::session::SessionConfig;
use switchyard_edge::{Connections, EdgeConfig, Listener, TlsStore};
use switchyard_router::{BareDelivery, Router, RouterConfig, ServerInfo};
use switchyard_storage::{AccountStore, CachedBlocks, MemoryRegistry, Stores};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running all-in-one server.
#[derive(Debug)]
pub struct Running {
    /// Bound STARTTLS address, if that listener is enabled.
    pub c2s: Option<SocketAddr>,
    /// Bound direct-TLS address, if enabled.
    pub c2s_direct_tls: Option<SocketAddr>,
    pub shutdown: CancellationToken,
    pub tls: Arc<TlsStore>,
    pub accounts: Arc<dyn AccountStore>,
    pub task: JoinHandle<()>,
}

async fn bind(addr: &str, direct_tls: bool) -> anyhow::Result<Option<Listener>> {
    if addr.is_empty() {
        return Ok(None);
    }
    let socket = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    Ok(Some(Listener { socket, direct_tls }))
}

fn tls_paths(config: &Config) -> (PathBuf, PathBuf, bool) {
    if config.tls.cert_path.is_empty() {
        (
            config.data_dir.join("dev-cert.pem"),
            config.data_dir.join("dev-key.pem"),
            true,
        )
    } else {
        (
            PathBuf::from(&config.tls.cert_path),
            PathBuf::from(&config.tls.key_path),
            false,
        )
    }
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

/// Starts all roles in this process and returns once the listeners are bound.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let mut stores = Stores::of(Arc::new(crate::user::open_store(&config)?));
    stores.blocks = Arc::new(CachedBlocks::new(
        stores.blocks.clone(),
        100_000,
        Duration::from_secs(60),
    ));
    let accounts = stores.accounts.clone();
    let (cert, key, generate) = tls_paths(&config);
    let tls = Arc::new(TlsStore::open(cert, key, &config.domains, generate)?);
    let edge_id = "edge-local".to_owned();
    let connections = Arc::new(Connections::default());
    let router = Arc::new(Router::new(
        router_config(&config),
        Arc::new(MemoryRegistry::default()),
        stores,
        Arc::new(LocalEdge {
            edge_id: edge_id.clone(),
            connections: connections.clone(),
        }),
    ));
    let link = Arc::new(InProcessLink {
        router,
        accounts: accounts.clone(),
    });
    let listeners: Vec<Listener> = [
        bind(&config.listen.c2s, false).await?,
        bind(&config.listen.c2s_direct_tls, true).await?,
    ]
    .into_iter()
    .flatten()
    .collect();
    let addr_of = |direct: bool| {
        listeners
            .iter()
            .find(|l| l.direct_tls == direct)
            .and_then(|l| l.socket.local_addr().ok())
    };
    let (c2s, c2s_direct_tls) = (addr_of(false), addr_of(true));
    let secs = Duration::from_secs;
    let edge = EdgeConfig {
        edge_id,
        max_connections: config.limits.max_connections,
        max_connections_per_ip: config.limits.max_connections_per_ip,
        handshake_timeout: secs(config.timeouts.handshake_secs),
        idle_timeout: secs(config.timeouts.idle_secs),
        write_timeout: secs(config.timeouts.write_secs),
        mailbox_capacity: config.limits.mailbox_stanzas,
        read_buffer_bytes: 8 * 1024,
        auth_max_failures: config.auth.max_failures,
        auth_failure_window: secs(config.auth.failure_window_secs),
        shutdown_grace: secs(config.timeouts.shutdown_grace_secs),
    };
    let session = SessionConfig {
        domains: config.domains.clone(),
        starttls: true,
        tls_required: config.tls.required,
        mechanisms: Mechanism::ALL.to_vec(),
        decoy_iterations: config.auth.scram_iterations,
        max_auth_attempts: config.auth.max_attempts_per_connection,
        limits: config.core_limits(),
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(reload_tls(
        tls.clone(),
        secs(config.tls.reload_interval_secs.max(1)),
        shutdown.clone(),
    ));
    let task = tokio::spawn(switchyard_edge::serve(
        listeners,
        edge,
        session,
        tls.clone(),
        link,
        connections,
        shutdown.clone(),
    ));
    tracing::info!(?c2s, ?c2s_direct_tls, domains = ?config.domains, "switchyard serving");
    Ok(Running {
        c2s,
        c2s_direct_tls,
        shutdown,
        tls,
        accounts,
        task,
    })
}

/// Reloads the certificate when its files change, and at once on SIGHUP.
async fn reload_tls(tls: Arc<TlsStore>, every: Duration, shutdown: CancellationToken) {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(every);
    loop {
        let force = tokio::select! {
            _ = tick.tick() => false,
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
            () = shutdown.cancelled() => return,
        };
        tls.reload(force);
    }
}

/// `switchyard serve`: runs until SIGTERM or Ctrl-C, then drains.
pub async fn run(config: Config, roles: &[String]) -> anyhow::Result<()> {
    let mut roles: Vec<&str> = roles.iter().map(|r| r.trim()).collect();
    roles.sort_unstable();
    roles.dedup();
    if let Some(bad) = roles.iter().find(|r| !matches!(**r, "edge" | "router")) {
        anyhow::bail!("unknown role {bad:?}: roles are edge and router");
    }
    anyhow::ensure!(
        roles == ["edge", "router"],
        "--roles {} alone needs the cluster link (gRPC), which this build does not have yet; run --roles edge,router",
        roles.join(",")
    );
    let running = start(config).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: draining"),
    }
    running.shutdown.cancel();
    running.task.await?;
    tracing::info!("stopped");
    Ok(())
}
