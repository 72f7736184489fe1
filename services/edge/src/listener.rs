//! Accept loops: a global connection cap (semaphore), a per-IP cap, one task per
//! connection, and drain on shutdown (stop accepting, end sessions with `system-shutdown`,
//! wait a bounded grace).

use crate::admission::Handshake;
use crate::connections::Connections;
use crate::link::RouterLink;
use crate::mailbox::MailboxLimits;
use crate::throttle::{Throttle, ThrottlePolicy};
use crate::tls::TlsStore;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::session::SessionConfig;
use switchyard_telemetry as metrics;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Edge connection policy (see the README's configuration reference for defaults).
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// This edge's name in the session registry.
    pub edge_id: String,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Connections still in their handshake (TLS, SASL, bind or resume) at once; more
    /// are refused at once (see [`crate::admission`]).
    pub max_handshakes: usize,
    /// Of those, at most this many from one client address.
    pub max_handshakes_per_ip: usize,
    /// Every client connection starts with a PROXY protocol header (see [`crate::proxy`]).
    pub proxy_protocol: bool,
    /// Time allowed from accept to a bound resource.
    pub handshake_timeout: Duration,
    /// Time allowed for a TLS handshake (direct TLS or STARTTLS): a few round trips.
    pub tls_handshake_timeout: Duration,
    /// How long a stream header or stanza begun during the handshake may stay
    /// incomplete: a connection that trickles it (slowloris) is closed then.
    pub handshake_frame_timeout: Duration,
    /// Time without any bytes from the client (whitespace keepalives count).
    pub idle_timeout: Duration,
    /// Quiet time after which the server asks a bound client for a sign of life (an
    /// XEP-0198 ack request, else an XEP-0199 ping), so that a dead connection TCP has
    /// not noticed ends at the idle timeout; `None`: never.
    pub keepalive_after: Option<Duration>,
    /// Time a write to the client may take before it is treated as gone.
    pub write_timeout: Duration,
    /// What may be queued for one connection and for the process; deliveries beyond it
    /// wait (pushback), up to the patience.
    pub mailbox: MailboxLimits,
    /// How failed logins slow down and refuse the next ones (see `throttle.rs`).
    pub login_throttle: ThrottlePolicy,
    /// How long draining sessions get after `system-shutdown` before the process exits.
    pub shutdown_grace: Duration,
    /// The WebSocket listener's HTTP side.
    pub websocket: crate::websocket::WebSocketPolicy,
    /// The components the component listener accepts, with their secrets.
    pub components: Arc<switchyard_core::component::ComponentConfig>,
}

/// A bound listening socket and what its clients speak.
#[derive(Debug)]
pub struct Listener {
    pub socket: TcpListener,
    pub kind: ListenerKind,
}

/// How a listener's connections start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// RFC 6120 §5: plain TCP, upgraded with STARTTLS.
    StartTls,
    /// XEP-0368: TLS from the first byte.
    DirectTls,
    /// RFC 7395 over HTTP/1.1 (see [`crate::websocket`]); `tls: false` only behind a load
    /// balancer that terminates TLS.
    WebSocket { tls: bool },
    /// XEP-0114 external components (see [`crate::component`]).
    Component,
}

impl ListenerKind {
    /// The `listener` label of the edge's metrics.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::StartTls => "starttls",
            Self::DirectTls => "direct_tls",
            Self::WebSocket { .. } => "websocket",
            Self::Component => "component",
        }
    }
}

/// Everything a connection task shares with the others.
pub(crate) struct EdgeCtx {
    pub config: Arc<EdgeConfig>,
    pub session: Arc<SessionConfig>,
    /// The same policy framed for WebSocket (RFC 7395), without STARTTLS.
    pub websocket_session: Arc<SessionConfig>,
    pub tls: Arc<TlsStore>,
    pub link: Arc<dyn RouterLink>,
    pub connections: Arc<Connections>,
    pub throttle: Throttle,
    /// Watched by the accept loops; sessions hear of it through their mailboxes.
    pub shutdown: CancellationToken,
    /// Cancelled when the drain starts: no new connections from then on.
    pub stop_accepting: CancellationToken,
    /// Handshakes in progress per client address.
    pub handshakes_per_ip: Arc<crate::admission::PerIp>,
    /// Places among connections in their handshake (`limits.max_concurrent_handshakes`).
    pub handshakes: Arc<Semaphore>,
    /// BOSH sessions by SID (XEP-0124), on the HTTP listener.
    pub bosh: crate::bosh::Sessions,
}

/// The two steps of a drain.
#[derive(Debug, Clone, Default)]
pub struct Drain {
    /// First: no new connections (and readiness turns false).
    pub stop_accepting: CancellationToken,
    /// Then: every session ends with `system-shutdown`, within the grace.
    pub shutdown: CancellationToken,
}

/// Serves the listeners until the drain ends them (see [`Drain`]).
pub async fn serve(
    listeners: Vec<Listener>,
    config: EdgeConfig,
    session: SessionConfig,
    tls: Arc<TlsStore>,
    link: Arc<dyn RouterLink>,
    connections: Arc<Connections>,
    drain: Drain,
) {
    let Drain {
        stop_accepting,
        shutdown,
    } = drain;
    let grace = config.shutdown_grace;
    let config_max_handshakes = config.max_handshakes;
    let ctx = Arc::new(EdgeCtx {
        // The counts are shared through the router link (see `throttle.rs`).
        throttle: Throttle::new(config.login_throttle.clone(), link.clone()),
        websocket_session: Arc::new(crate::websocket::session_config(&session, &listeners)),
        config: Arc::new(config),
        session: Arc::new(session),
        tls,
        link,
        connections,
        shutdown: shutdown.clone(),
        stop_accepting,
        handshakes_per_ip: Arc::default(),
        handshakes: Arc::new(Semaphore::new(config_max_handshakes)),
        bosh: crate::bosh::Sessions::default(),
    });
    metrics::EDGE_CONNECTION_LIMIT.set(ctx.config.max_connections as i64);
    let permits = Permits {
        connections: Arc::new(Semaphore::new(ctx.config.max_connections)),
        handshakes: ctx.handshakes.clone(),
    };
    let tracker = TaskTracker::new();
    for listener in listeners {
        tracker.spawn(accept_loop(
            ctx.clone(),
            listener,
            permits.clone(),
            tracker.clone(),
        ));
    }
    shutdown.cancelled().await;
    ctx.connections.shut_down();
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            remaining = ctx.connections.open(),
            "shutdown grace elapsed with connections open"
        );
    }
}

/// What a connection needs to be served: a place among all connections, and one among
/// those in their handshake.
#[derive(Clone)]
struct Permits {
    connections: Arc<Semaphore>,
    handshakes: Arc<Semaphore>,
}

async fn accept_loop(
    ctx: Arc<EdgeCtx>,
    listener: Listener,
    permits: Permits,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.socket.accept() => accepted,
            () = ctx.stop_accepting.cancelled() => return,
            () = ctx.shutdown.cancelled() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.connections.clone().try_acquire_owned() else {
            tracing::warn!("connection limit reached; refusing connection");
            continue;
        };
        let Ok(handshake) = permits.handshakes.clone().try_acquire_owned() else {
            crate::admission::refuse(&ctx, &tracker, tcp, listener.kind);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let ctx = ctx.clone();
        let kind = listener.kind;
        tracker.spawn(serve_connection(
            ctx,
            tcp,
            peer.ip(),
            kind,
            handshake,
            permit,
        ));
    }
}

/// One accepted connection: its client's address (from the PROXY header when the
/// listeners take one), the per-IP cap, then the session.
async fn serve_connection(
    ctx: Arc<EdgeCtx>,
    mut tcp: TcpStream,
    peer: IpAddr,
    kind: ListenerKind,
    handshake: OwnedSemaphorePermit,
    permit: OwnedSemaphorePermit,
) {
    // Components connect from the cluster's own network, never through the balancer.
    let ip = if ctx.config.proxy_protocol && kind != ListenerKind::Component {
        match crate::proxy::read(&mut tcp, peer, ctx.config.handshake_timeout).await {
            Ok(ip) => ip,
            Err(why) => {
                tracing::info!(%peer, reason = why.0, "PROXY header refused; closing");
                metrics::EDGE_PROXY_REFUSED.inc();
                return;
            }
        }
    } else {
        peer
    };
    let per_ip_limit = ctx.config.max_handshakes_per_ip;
    let Some(handshake) = Handshake::new(handshake, &ctx.handshakes_per_ip, ip, per_ip_limit)
    else {
        tracing::debug!(%ip, "per-IP handshake share reached; refusing a connection");
        return crate::admission::refuse_here(&ctx, tcp, kind).await;
    };
    let Some(id) = ctx.connections.admit(ip, ctx.config.max_connections_per_ip) else {
        tracing::warn!(%ip, "per-IP connection limit reached; refusing connection");
        return;
    };
    let open = Open::new(kind.label(), Some(permit));
    match kind {
        ListenerKind::StartTls => {
            crate::driver::run(ctx, tcp, false, id, ip, handshake, open).await;
        }
        ListenerKind::DirectTls => {
            crate::driver::run(ctx, tcp, true, id, ip, handshake, open).await
        }
        ListenerKind::WebSocket { tls } => {
            crate::websocket::run(ctx, tcp, tls, id, ip, handshake, open).await;
        }
        ListenerKind::Component => {
            crate::component::run(ctx, tcp, id, ip, handshake).await;
            drop(open);
        }
    }
}

/// One open client connection: its count in `switchyard_edge_connections` and its place
/// among `limits.max_connections`, while it lives. It travels with the socket: a
/// stream-managed session that detaches drops it with its dead socket, and a resuming
/// connection's goes to the session that takes the socket over. So the gauge and the
/// limit count sockets (descriptors), not sessions waiting to be resumed (those are
/// `switchyard_edge_sm_detached_sessions`, bounded per client address by
/// `limits.max_connections_per_ip` and each by its queue bound).
#[derive(Debug)]
pub(crate) struct Open {
    gauge: metrics::IntGauge,
    _place: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Open {
    /// `place` is the connection's permit under `limits.max_connections`; a BOSH session,
    /// which lives over its HTTP connections' sockets, has none of its own.
    pub(crate) fn new(listener: &str, place: Option<tokio::sync::OwnedSemaphorePermit>) -> Self {
        let gauge = metrics::EDGE_CONNECTIONS.with_label_values(&[listener]);
        gauge.inc();
        Self {
            gauge,
            _place: place,
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}
