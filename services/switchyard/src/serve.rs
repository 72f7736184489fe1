//! `switchyard serve`: wires the requested roles, handles signals (SIGTERM/Ctrl-C drain,
//! SIGHUP reloads TLS) and waits for the drain to finish.
//!
//! - `edge,router` (default): one process, the edge→router hop an in-process call.
//! - `router`: the gRPC `Router` service for edges, with the registry and the stores;
//!   keeps the edges it hears alive in the registry and reaps dead ones.
//! - `edge`: client listeners, linked over gRPC to every configured router.

use crate::admin::{self, Api, Readiness};
use crate::config::Config;
use crate::inproc::{InProcessLink, LocalEdge, RoutingQueue};
use crate::link_tls;
use crate::wiring;
use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use switchyard_cluster::{EdgeLinks, RemoteRouters, RouterService};
use switchyard_core::sasl::Decoy;
use switchyard_core::session::{Framing, SessionConfig};
use switchyard_edge::{
    Connections, Drain, EdgeConfig, Listener, ListenerKind, MailboxLimits, RouterLink,
    ThrottlePolicy, TlsStore,
};
use switchyard_rpc::tls::LinkSecurity;
use switchyard_storage::AccountStore;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Which roles one process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roles {
    All,
    Edge,
    Router,
}

impl Roles {
    pub fn parse(roles: &[String]) -> anyhow::Result<Self> {
        let mut roles: Vec<&str> = roles.iter().map(|r| r.trim()).collect();
        roles.sort_unstable();
        roles.dedup();
        match roles.as_slice() {
            ["edge", "router"] => Ok(Self::All),
            ["edge"] => Ok(Self::Edge),
            ["router"] => Ok(Self::Router),
            _ => anyhow::bail!("unknown roles {roles:?}: use edge, router, or edge,router"),
        }
    }
}

/// A running server (some roles of it).
#[derive(Debug)]
pub struct Running {
    /// Bound STARTTLS address, if this process is an edge with that listener.
    pub c2s: Option<SocketAddr>,
    /// Bound direct-TLS address, if enabled.
    pub c2s_direct_tls: Option<SocketAddr>,
    /// Bound WebSocket address, if enabled.
    pub websocket: Option<SocketAddr>,
    /// Bound XEP-0114 component address, if components are configured.
    pub component: Option<SocketAddr>,
    /// Bound gRPC address of a router.
    pub rpc: Option<SocketAddr>,
    /// Bound admin HTTP address (metrics, health, admin API).
    pub admin: Option<SocketAddr>,
    /// First step of the drain: stop accepting, turn unready.
    pub draining: CancellationToken,
    /// Second step: end sessions and stop.
    pub shutdown: CancellationToken,
    pub tls: Option<Arc<TlsStore>>,
    pub accounts: Option<Arc<dyn AccountStore>>,
    pub task: JoinHandle<()>,
}

async fn bind(addr: &str, kind: ListenerKind) -> anyhow::Result<Option<Listener>> {
    if addr.is_empty() {
        return Ok(None);
    }
    let socket = listen(addr).await?;
    Ok(Some(Listener { socket, kind }))
}

/// Binds a listener. `[::]:port` is dual stack (IPv6 and IPv4, as Linux binds it by
/// default); where the host has no IPv6 at all it falls back to `0.0.0.0:port`, with a
/// warning, so one default serves both kinds of host.
pub async fn listen(addr: &str) -> anyhow::Result<TcpListener> {
    let bound = TcpListener::bind(addr).await;
    let any_v6 = addr
        .parse::<std::net::SocketAddr>()
        .ok()
        .filter(|a| a.ip() == std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED));
    match (bound, any_v6) {
        (Ok(socket), _) => Ok(socket),
        (Err(e), Some(v6)) => {
            let v4 = std::net::SocketAddr::from(([0, 0, 0, 0], v6.port()));
            tracing::warn!(error = %e, %v4, "no IPv6 on this host; listening on IPv4 only");
            TcpListener::bind(v4)
                .await
                .with_context(|| format!("cannot listen on {addr} or {v4}"))
        }
        (Err(e), None) => Err(e).with_context(|| format!("cannot listen on {addr}")),
    }
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

fn edge_id(config: &Config) -> String {
    if !config.cluster.edge_id.is_empty() {
        return config.cluster.edge_id.clone();
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "edge".into());
    format!("{host}-{}", switchyard_core::token::token(6))
}

/// Starts all roles in this process and returns once the listeners are bound.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    start_roles(config, Roles::All).await
}

/// Starts the given roles and returns once their listeners are bound.
pub async fn start_roles(config: Config, roles: Roles) -> anyhow::Result<Running> {
    let drain = Drain::default();
    let mut running = match roles {
        Roles::All => {
            let stores = wiring::open_stores(&config).await?;
            let accounts = stores.accounts.clone();
            let registry = wiring::open_registry(&config).await?;
            let connections = Arc::new(Connections::default());
            let edge_id = edge_id(&config);
            let local = Arc::new(LocalEdge {
                edge_id: edge_id.clone(),
                connections: connections.clone(),
            });
            let router = wiring::router(&config, registry, stores, local);
            let queue = Arc::new(RoutingQueue::start(router.clone()));
            let link = Arc::new(InProcessLink {
                accounts: accounts.clone(),
                login_failures: wiring::open_login_failures(&config).await?,
                queue: queue.clone(),
                router: router.clone(),
            });
            // This process is the only edge: a secret kept in data_dir does.
            let decoy = wiring::decoy_secret(&config, true)?;
            let mut running =
                start_edge(&config, edge_id, link, connections, decoy, drain.clone()).await?;
            // The edge's connections are done; what they queued is routed before exit.
            let grace = Duration::from_secs(config.timeouts.shutdown_grace_secs);
            let edge = std::mem::replace(&mut running.task, tokio::spawn(async {}));
            running.task = tokio::spawn(async move {
                let _ = edge.await;
                if !queue.drained(grace).await {
                    tracing::warn!("stanzas still queued for routing at exit");
                }
            });
            running.accounts = Some(accounts.clone());
            running.admin = admin::serve(
                &config,
                Readiness::Local,
                Some(api(&config, router, accounts)),
                drain.stop_accepting.clone(),
                drain.shutdown.clone(),
            )
            .await?;
            running
        }
        Roles::Edge => {
            anyhow::ensure!(
                !config.cluster.routers.is_empty(),
                "--roles edge needs cluster.routers (router addresses to link to)"
            );
            let decoy = wiring::decoy_secret(&config, false)?;
            let security = match link_tls::open(&config, roles, drain.shutdown.clone())? {
                Some(tls) => LinkSecurity::Tls(tls),
                None => LinkSecurity::Plaintext,
            };
            switchyard_rpc::tls::set_link_security(security);
            let connections = Arc::new(Connections::default());
            let edge_id = edge_id(&config);
            let link = RemoteRouters::start(
                edge_id.clone(),
                config.cluster.routers.clone(),
                connections.clone(),
                drain.shutdown.clone(),
            );
            let mut running = start_edge(
                &config,
                edge_id,
                link.clone(),
                connections,
                decoy,
                drain.clone(),
            )
            .await?;
            running.admin = admin::serve(
                &config,
                Readiness::Edge(link),
                None,
                drain.stop_accepting.clone(),
                drain.shutdown.clone(),
            )
            .await?;
            running
        }
        Roles::Router => start_router(&config, drain.clone()).await?,
    };
    running.draining = drain.stop_accepting;
    running.shutdown = drain.shutdown;
    Ok(running)
}

fn api(
    config: &Config,
    router: Arc<switchyard_router::Router>,
    accounts: Arc<dyn AccountStore>,
) -> Api {
    Api {
        router,
        accounts,
        token: config.admin.token.clone(),
        scram_iterations: config.auth.scram_iterations,
        min_password_chars: config.auth.min_password_chars,
    }
}

async fn start_router(config: &Config, drain: Drain) -> anyhow::Result<Running> {
    let shutdown = drain.shutdown.clone();
    let stores = wiring::open_stores(config).await?;
    let accounts = stores.accounts.clone();
    let registry = wiring::open_registry(config).await?;
    if config.redis.urls.is_empty() {
        tracing::warn!("no redis.urls: the registry is in memory, so run only one router");
    }
    let links = Arc::new(EdgeLinks::default());
    let router = wiring::router(config, registry.clone(), stores, links.clone());
    let admin = admin::serve(
        config,
        Readiness::Router {
            registry: registry.clone(),
            accounts: accounts.clone(),
        },
        Some(api(config, router.clone(), accounts.clone())),
        drain.stop_accepting.clone(),
        drain.shutdown.clone(),
    )
    .await?;
    let ttl = Duration::from_secs(config.cluster.edge_ttl_secs);
    let service = RouterService {
        router: router.clone(),
        accounts: accounts.clone(),
        links: links.clone(),
        registry: registry.clone(),
        edge_ttl: ttl,
        login_failures: wiring::open_login_failures(config).await?,
    };
    let tls = link_tls::open(config, Roles::Router, shutdown.clone())?;
    let mutual_tls = tls.is_some();
    let listener = listen(&config.cluster.rpc_listen).await?;
    let rpc = listener.local_addr()?;
    println!("switchyard: listening rpc {rpc}");
    tokio::spawn(switchyard_cluster::keep_edges_alive(
        links.clone(),
        registry,
        router,
        ttl,
        shutdown.clone(),
    ));
    let stop = shutdown.clone();
    // At shutdown the links end first: the server's graceful shutdown waits for every
    // open request, and a link is one that lasts as long as its edge.
    let closing = shutdown.clone();
    tokio::spawn(async move {
        closing.cancelled().await;
        tracing::info!(
            edges = links.edges().len(),
            "shutting down: ending the edges' links"
        );
        links.close_all();
    });
    let task = tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(5)))
            .http2_keepalive_timeout(Some(Duration::from_secs(5)))
            // Each request carries the caller's certificate identity (PeerIdentity).
            .add_service(switchyard_rpc::tls::with_peer(service.into_server()))
            .serve_with_incoming_shutdown(
                switchyard_rpc::tls::incoming(listener, tls, stop.clone()),
                stop.cancelled(),
            )
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "router gRPC server failed");
        }
    });
    tracing::info!(%rpc, mutual_tls, "switchyard router serving");
    Ok(Running {
        c2s: None,
        c2s_direct_tls: None,
        websocket: None,
        component: None,
        rpc: Some(rpc),
        admin,
        draining: drain.stop_accepting,
        shutdown,
        tls: None,
        accounts: Some(accounts),
        task,
    })
}

async fn start_edge(
    config: &Config,
    edge_id: String,
    link: Arc<dyn RouterLink>,
    connections: Arc<Connections>,
    decoy_secret: Vec<u8>,
    drain: Drain,
) -> anyhow::Result<Running> {
    let (cert, key, generate) = tls_paths(config);
    if generate {
        wiring::private_data_dir(&config.data_dir)?;
        wiring::tighten(&key);
    } else {
        wiring::warn_if_world_readable(&key);
    }
    let tls = Arc::new(TlsStore::open(cert, key, &config.domains, generate)?);
    let websocket = ListenerKind::WebSocket {
        tls: config.listen.websocket_tls,
    };
    let listeners: Vec<Listener> = [
        bind(&config.listen.c2s, ListenerKind::StartTls).await?,
        bind(&config.listen.c2s_direct_tls, ListenerKind::DirectTls).await?,
        bind(&config.listen.websocket, websocket).await?,
        match config.components.is_empty() {
            true => None,
            false => bind(&config.listen.component, ListenerKind::Component).await?,
        },
    ]
    .into_iter()
    .flatten()
    .collect();
    let addr_of = |kind: ListenerKind| {
        listeners
            .iter()
            .find(|l| l.kind == kind)
            .and_then(|l| l.socket.local_addr().ok())
    };
    let c2s = addr_of(ListenerKind::StartTls);
    let c2s_direct_tls = addr_of(ListenerKind::DirectTls);
    let websocket = addr_of(websocket);
    let component = addr_of(ListenerKind::Component);
    for (kind, addr) in [
        ("c2s", c2s),
        ("c2s_direct_tls", c2s_direct_tls),
        ("websocket", websocket),
        ("component", component),
    ] {
        if let Some(addr) = addr {
            println!("switchyard: listening {kind} {addr}");
        }
    }
    let secs = Duration::from_secs;
    let edge = EdgeConfig {
        edge_id,
        max_connections: config.limits.max_connections,
        max_connections_per_ip: config.limits.max_connections_per_ip,
        max_handshakes: config.limits.max_concurrent_handshakes,
        max_handshakes_per_ip: config.limits.max_concurrent_handshakes_per_ip,
        proxy_protocol: config.listen.proxy_protocol,
        handshake_timeout: secs(config.timeouts.handshake_secs),
        tls_handshake_timeout: secs(config.timeouts.tls_handshake_secs),
        handshake_frame_timeout: secs(config.timeouts.handshake_frame_secs),
        idle_timeout: secs(config.timeouts.idle_secs),
        keepalive_after: Some(config.stream_management.keepalive_secs)
            .filter(|s| *s > 0)
            .map(secs),
        write_timeout: secs(config.timeouts.write_secs),
        mailbox: MailboxLimits {
            stanzas: config.limits.mailbox_stanzas,
            bytes: config.limits.mailbox_bytes,
            process_bytes: config.limits.mailbox_bytes_total,
            // A consumer that writes makes room long before this; one whose writes stall
            // is closed by the write timeout first.
            patience: secs(config.timeouts.write_secs) * 2,
        },
        // Held per connection for its whole life: small, since rustls buffers records
        // itself and stanzas are reassembled by the framer anyway.
        login_throttle: ThrottlePolicy {
            max_failures: config.auth.max_failures,
            max_failures_per_network: config.auth.max_failures_per_network,
            window: secs(config.auth.failure_window_secs),
            delay_initial: Duration::from_millis(config.auth.failure_delay_initial_ms),
            delay_max: Duration::from_millis(config.auth.failure_delay_max_ms),
        },
        shutdown_grace: secs(config.timeouts.shutdown_grace_secs),
        websocket: config.listen.websocket_policy(),
        components: config.component_config(),
    };
    let session = SessionConfig {
        domains: config.domains.clone(),
        starttls: true,
        tls_required: config.tls.required,
        mechanisms: config.mechanisms(),
        decoy: Decoy::new(&decoy_secret, config.auth.scram_iterations),
        max_auth_attempts: config.auth.max_attempts_per_connection,
        limits: config.core_limits(),
        sm: config.stream_management.policy(),
        // The WebSocket listener frames it for RFC 7395 (`switchyard_edge::WebSocketPolicy`).
        framing: Framing::Stream,
        fast: config.auth.fast,
    };
    tokio::spawn(reload_tls(
        tls.clone(),
        secs(config.tls.reload_interval_secs.max(1)),
        drain.shutdown.clone(),
    ));
    let task = tokio::spawn(switchyard_edge::serve(
        listeners,
        edge,
        session,
        tls.clone(),
        link,
        connections,
        drain.clone(),
    ));
    tracing::info!(?c2s, ?c2s_direct_tls, ?websocket, domains = ?config.domains, "switchyard edge serving");
    Ok(Running {
        c2s,
        c2s_direct_tls,
        websocket,
        component,
        rpc: None,
        admin: None,
        draining: drain.stop_accepting,
        shutdown: drain.shutdown,
        tls: Some(tls),
        accounts: None,
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

/// Logs, and traces when `telemetry.otlp_endpoint` is set (`service.name` names the role).
pub fn init_telemetry(
    config: &Config,
    roles: &[String],
) -> anyhow::Result<switchyard_telemetry::trace::TraceGuard> {
    let service = match Roles::parse(roles)? {
        Roles::All => "switchyard",
        Roles::Edge => "switchyard-edge",
        Roles::Router => "switchyard-router",
    };
    let trace = (!config.telemetry.otlp_endpoint.is_empty()).then(|| {
        switchyard_telemetry::trace::TraceConfig {
            endpoint: config.telemetry.otlp_endpoint.clone(),
            sample_ratio: config.telemetry.sample_ratio,
            service: service.to_owned(),
        }
    });
    switchyard_telemetry::trace::init(&config.server.log_format, trace).map_err(anyhow::Error::msg)
}

/// `switchyard serve`: runs until SIGTERM or Ctrl-C, then drains: stop accepting and
/// turn unready, wait `drain_delay_secs` for load balancers to notice, then end sessions
/// with `system-shutdown` within `shutdown_grace_secs`.
pub async fn run(config: Config, roles: &[String]) -> anyhow::Result<()> {
    let roles = Roles::parse(roles)?;
    let delay = Duration::from_secs(config.timeouts.drain_delay_secs);
    let grace_secs = config.timeouts.shutdown_grace_secs;
    let running = start_roles(config, roles).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: draining"),
    }
    running.draining.cancel();
    tokio::time::sleep(delay).await;
    running.shutdown.cancel();
    // Whatever the peers do, the process is gone within the grace (and a second for the
    // last writes), before Kubernetes' SIGKILL.
    let grace = Duration::from_secs(grace_secs) + Duration::from_secs(1);
    match tokio::time::timeout(grace, running.task).await {
        Ok(joined) => joined?,
        Err(_) => tracing::warn!("shutdown grace elapsed with work still running; exiting"),
    }
    tracing::info!("stopped");
    Ok(())
}
