//! XMPP over WebSocket (RFC 7395) and its discovery (XEP-0156), on a listener of their own.
//!
//! A connection speaks HTTP/1.1 (hyper) until it upgrades, and is then a session like any
//! other: the same driver, mailbox, limits and stream management, with the session core
//! framing the stream for WebSocket (`switchyard_core::session::Framing`). Requests:
//!
//! - `GET /xmpp-websocket` with an RFC 6455 §4.2.1 upgrade becomes a session when it
//!   offers the `xmpp` subprotocol (RFC 7395 §3.1: the reply names it; an upgrade without
//!   it gets 400) and, where `listen.websocket_origins` lists origins, comes from one of
//!   them (403 otherwise; a request without `Origin` is not a browser's and passes).
//!   Anything else on that path gets 426 with the version we speak.
//! - `GET /.well-known/host-meta` (XRD) and `/.well-known/host-meta.json` (JRD) name the
//!   WebSocket endpoint (XEP-0156 §3), readable from any origin (CORS `*`).
//! - Any other path: 404; another method: 405.
//!
//! The HTTP part is part of the handshake: it holds the connection's handshake place and
//! must upgrade within the handshake timeout; request heads are bounded in bytes. After
//! the upgrade a message is bounded by the stanza limit and the read buffer starts small,
//! so an idle session costs about what a TCP one does. Binary messages are not XMPP
//! (RFC 7395 §3.2: text frames): the connection closes. STARTTLS is never offered
//! (§3.7); TLS is the connection's, or a load balancer's when the listener is configured
//! plain for that (and then it counts as secure for authentication).

use crate::admission::Handshake;
use crate::driver::Transport;
use crate::listener::{EdgeCtx, Listener, ListenerKind};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use switchyard_core::session::{Framing, SessionConfig};
use switchyard_core::xml::escape_attr;
use switchyard_telemetry as metrics;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

/// The endpoint's path (the one XEP-0156 examples and clients' defaults use).
pub(crate) const PATH: &str = "/xmpp-websocket";
/// RFC 7395 §3.1: the subprotocol both sides name.
const SUBPROTOCOL: &str = "xmpp";
/// XEP-0156 §3: the link relation of a WebSocket endpoint.
const REL: &str = "urn:xmpp:alt-connections:websocket";
/// Bytes of request head hyper buffers (its floor is 8 KiB).
const MAX_HEAD: usize = 8 * 1024;
/// A WebSocket read buffer starts at this; it grows only for a bigger message.
const READ_BUFFER: usize = 4 * 1024;
/// A message may exceed the stanza limit by this much and still reach the framer, so a
/// stanza just over the limit is answered with `policy-violation` as over TCP; a bigger
/// message is refused by the WebSocket layer unread, and the connection closes.
const MESSAGE_SLACK: usize = 4 * 1024;
/// Written messages are collected up to this before they go to the socket (a flush
/// sends them sooner).
const WRITE_BUFFER: usize = 16 * 1024;

/// The HTTP side of the WebSocket listener.
#[derive(Debug, Clone, Default)]
pub struct WebSocketPolicy {
    /// Browser origins (`https://chat.example.org`) allowed to open a session (WebSocket
    /// or BOSH); empty: any.
    pub origins: Vec<String>,
    /// The URL host-meta advertises; `None`: `wss://` the request's `Host` `/xmpp-websocket`.
    pub public_url: Option<String>,
}

/// The edge's session policy as framed for WebSocket: no STARTTLS, and where TLS is a
/// load balancer's, authentication does not wait for TLS it will never see.
pub(crate) fn session_config(session: &SessionConfig, listeners: &[Listener]) -> SessionConfig {
    let behind_balancer = listeners
        .iter()
        .any(|l| l.kind == ListenerKind::WebSocket { tls: false });
    SessionConfig {
        framing: Framing::WebSocket,
        starttls: false,
        tls_required: session.tls_required && !behind_balancer,
        ..session.clone()
    }
}

/// Serves one accepted connection of the HTTP listener: WebSocket, BOSH or discovery.
pub(crate) async fn run(
    ctx: Arc<EdgeCtx>,
    tcp: TcpStream,
    tls: bool,
    id: u64,
    ip: IpAddr,
    admitted: Handshake,
    open: crate::listener::Open,
) {
    let place: Place = Arc::new(Mutex::new(Some(admitted)));
    let conn = Conn {
        ctx: ctx.clone(),
        ip,
        tls,
        place: place.clone(),
    };
    let upgraded = if tls {
        match Box::pin(crate::driver::handshake(&ctx, tcp)).await {
            Some((stream, cb)) => conn.http(stream).await.map(|ws| (ws, Some(cb))),
            None => None,
        }
    } else {
        conn.http(tcp).await.map(|ws| (ws, None))
    };
    let admitted = lock(&place).take();
    let (Some((ws, cb)), Some(admitted)) = (upgraded, admitted) else {
        return ctx.connections.release(id, ip);
    };
    let config = ctx.websocket_session.clone();
    let transport = Transport::WebSocket(Box::new(ws));
    let places = crate::driver::Places {
        handshake: admitted,
        open,
    };
    crate::driver::serve(ctx, config, transport, cb, id, ip, places).await;
}

/// The connection's place among those in their handshake, until a session takes it (an
/// upgrade, or a BOSH session created on it) or the connection turns out to carry BOSH
/// requests, which are no handshake of their own.
pub(crate) type Place = Arc<Mutex<Option<Handshake>>>;

/// One HTTP connection of the listener.
#[derive(Clone)]
pub(crate) struct Conn {
    pub ctx: Arc<EdgeCtx>,
    pub ip: IpAddr,
    /// TLS is the connection's (not a load balancer's).
    pub tls: bool,
    pub place: Place,
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

impl Conn {
    /// Serves requests; the upgraded WebSocket, once one asked for it. Until the
    /// connection upgrades or carries BOSH, it must do so within the handshake time.
    async fn http<S>(&self, io: S) -> Option<Ws>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let upgrade: Arc<Mutex<Option<hyper::upgrade::OnUpgrade>>> = Arc::default();
        let slot = upgrade.clone();
        let conn = self.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let conn = conn.clone();
            let slot = slot.clone();
            async move {
                if req.uri().path() == crate::bosh::PATH {
                    return Ok::<_, std::convert::Infallible>(crate::bosh::http(&conn, req).await);
                }
                let site = Site {
                    policy: &conn.ctx.config.websocket,
                    domains: &conn.ctx.session.domains,
                };
                let http11 = req.version() == hyper::Version::HTTP_11;
                let response =
                    respond(&site, req.method(), http11, req.uri().path(), req.headers());
                if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                    *lock(&slot) = Some(hyper::upgrade::on(&mut req));
                }
                Ok(response)
            }
        });
        let limit = self.ctx.config.handshake_timeout;
        let served = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            // Also how long a kept-alive connection may idle between requests.
            .header_read_timeout(limit)
            .max_buf_size(MAX_HEAD)
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::pin!(served);
        let deadline = tokio::time::sleep(limit);
        tokio::pin!(deadline);
        let result = loop {
            tokio::select! {
                result = &mut served => break result,
                () = &mut deadline => {
                    if lock(&self.place).is_some() {
                        return None;
                    }
                    deadline.as_mut().reset(tokio::time::Instant::now() + limit);
                }
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "HTTP listener: connection failed");
            return None;
        }
        let pending = lock(&upgrade).take()?;
        let upgraded = tokio::time::timeout(limit, pending).await.ok()?.ok()?;
        let max = self.ctx.session.limits.max_stanza_bytes + MESSAGE_SLACK;
        // Our own writes wait for room before they are buffered, so only frames the
        // WebSocket layer answers by itself (pongs to a client that pings and never reads)
        // can reach the write bound: that client is closed rather than buffered for.
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(WRITE_BUFFER)
            .max_write_buffer_size(WRITE_BUFFER + 2 * max)
            .max_message_size(Some(max))
            .max_frame_size(Some(max));
        let io = TokioIo::new(upgraded);
        Some(WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await)
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What requests are answered against: the listener's policy and the served domains.
pub(crate) struct Site<'a> {
    pub policy: &'a WebSocketPolicy,
    pub domains: &'a [String],
}

/// The answer to one request (see the module doc).
fn respond(
    site: &Site<'_>,
    method: &Method,
    http11: bool,
    path: &str,
    headers: &HeaderMap,
) -> Response<Full<Bytes>> {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match path {
        PATH => upgrade(site.policy, http11, headers),
        "/.well-known/host-meta" | "/.well-known/host-meta.json" => {
            let Some(url) = endpoint(site, headers) else {
                return refused(
                    "bad_host",
                    StatusCode::BAD_REQUEST,
                    "no usable Host header\n",
                );
            };
            let (body, kind) = if path.ends_with(".json") {
                (host_meta_json(&url), "application/json")
            } else {
                (host_meta_xrd(&url), "application/xrd+xml")
            };
            let mut response = Response::new(Full::new(Bytes::from(body)));
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
            response
        }
        _ => refused("not_found", StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// RFC 6455 §4.2.2 server handshake for RFC 7395 §3.1.
fn upgrade(policy: &WebSocketPolicy, http11: bool, headers: &HeaderMap) -> Response<Full<Bytes>> {
    let tokens = |name: header::HeaderName| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>()
    };
    let has_token = |name, token: &str| tokens(name).iter().any(|t| t.eq_ignore_ascii_case(token));
    let key = headers.get(header::SEC_WEBSOCKET_KEY);
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    let (true, true, Some(key), true) = (
        has_token(header::UPGRADE, "websocket"),
        has_token(header::CONNECTION, "upgrade"),
        key,
        version_ok,
    ) else {
        let mut response = refused(
            "not_websocket",
            StatusCode::UPGRADE_REQUIRED,
            "this is an XMPP WebSocket endpoint (RFC 7395)\n",
        );
        let headers = response.headers_mut();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return response;
    };
    // §4.1: HTTP/1.1, and a key that is 16 bytes in base64.
    if !http11 || !valid_key(key.as_bytes()) {
        return refused(
            "not_websocket",
            StatusCode::BAD_REQUEST,
            "a WebSocket upgrade needs HTTP/1.1 and a 16-byte Sec-WebSocket-Key\n",
        );
    }
    if !origin_allowed(policy, headers) {
        return refused("origin", StatusCode::FORBIDDEN, "origin not allowed\n");
    }
    // Subprotocol names are compared exactly (§4.1: the reply must be one offered).
    if !tokens(header::SEC_WEBSOCKET_PROTOCOL).contains(&SUBPROTOCOL) {
        return refused(
            "subprotocol",
            StatusCode::BAD_REQUEST,
            "the xmpp subprotocol is required (RFC 7395 section 3.1)\n",
        );
    }
    let accept = derive_accept_key(key.as_bytes());
    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(SUBPROTOCOL),
    );
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// Whether a request may come from its `Origin` (a request without one is not a
/// browser's, and has no origin to check).
pub(crate) fn origin_allowed(policy: &WebSocketPolicy, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let allowed = policy.origins.is_empty()
        || origin
            .to_str()
            .is_ok_and(|o| policy.origins.iter().any(|a| a.eq_ignore_ascii_case(o)));
    if !allowed {
        tracing::info!(?origin, "a request from an origin not allowed");
    }
    allowed
}

pub(crate) fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

pub(crate) fn refused(
    reason: &'static str,
    status: StatusCode,
    body: &'static str,
) -> Response<Full<Bytes>> {
    metrics::EDGE_WEBSOCKET_REFUSED
        .with_label_values(&[reason])
        .inc();
    plain(status, body)
}

/// A `Sec-WebSocket-Key`: 16 bytes in base64 (22 characters and `==`).
fn valid_key(key: &[u8]) -> bool {
    let b64 = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    key.len() == 24 && key.ends_with(b"==") && key[..22].iter().all(b64)
}

/// The endpoint's public URL: configured, or from the one `Host` the client used when it
/// names a served domain (with an optional port), so a forged Host is not echoed into
/// what a cache might keep.
fn endpoint(site: &Site<'_>, headers: &HeaderMap) -> Option<String> {
    if let Some(url) = &site.policy.public_url {
        return Some(url.clone());
    }
    let mut hosts = headers.get_all(header::HOST).iter();
    let (Some(host), None) = (hosts.next(), hosts.next()) else {
        return None;
    };
    let host = host.to_str().ok()?.to_ascii_lowercase();
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port.parse::<u16>().ok()?)),
        None => (host.as_str(), None),
    };
    let served = site.domains.iter().any(|d| d.eq_ignore_ascii_case(name));
    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
    served.then(|| format!("wss://{name}{port}{PATH}"))
}

/// XEP-0156 §3.1 XRD.
fn host_meta_xrd(url: &str) -> String {
    format!(
        "<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n  <Link rel='{REL}' href='{}'/>\n</XRD>\n",
        escape_attr(url)
    )
}

/// XEP-0156 §3.2 JRD.
fn host_meta_json(url: &str) -> String {
    let jrd = serde_json::json!({ "links": [{ "rel": REL, "href": url }] });
    format!("{jrd}\n")
}

#[cfg(test)]
mod tests;
