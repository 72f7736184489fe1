//! BOSH (XEP-0124) carrying XMPP (XEP-0206) at `/http-bind`, on the HTTP listener that
//! also serves WebSocket.
//!
//! A BOSH session is a session like any other: the same driver runs it, over a transport
//! ([`Pipe`]) that requests feed and responses drain, with the stream framed as for
//! WebSocket (each payload element a message, `<open/>` for the stream header). So limits,
//! stream management and everything else behave as over TCP; a session whose client stops
//! polling counts as a broken connection, so with XEP-0198 it can be resumed (over any
//! transport).
//!
//! The protocol as served (XEP-0124 section numbers):
//!
//! - §7: a request without `sid` creates a session. The response names `sid`, `wait`
//!   (the client's, at most [`WAIT_MAX`]), `hold` 1, `requests` 2, `inactivity`, `polling`
//!   and, per XEP-0206, `authid` (the stream id), `xmpp:version` and the stream features.
//! - §9, §14: requests are taken in `rid` order whatever order they arrive in, within a
//!   window of `requests`; one ahead of a gap waits for it. A repeated `rid` (its response
//!   was lost) gets the response sent before, from a cache of the last `requests`; one
//!   no longer cached, or outside the window, ends the session with `item-not-found`.
//! - §10, §12: a request is held until there is something to send, `wait` passes, or a
//!   newer request arrives while `hold` are held (then the oldest is answered at once).
//! - §13: no request for `inactivity` seconds ends the session as a broken connection.
//! - XEP-0206 §5: `xmpp:restart='true'` restarts the stream (after SASL); §6
//!   `type='terminate'` sends its payload, then closes the stream. A stream error
//!   ends the session with `condition='remote-stream-error'` and the error inside.
//!
//! Bounded: request bodies by the stanza limit, what waits for the next response by the
//! mailbox's byte bound (the session's writes wait for room, and a client that stops
//! polling meets the write timeout), the cache by `requests` responses, sessions by the
//! edge's connection caps (per address too). Sessions live on the edge that created them:
//! behind several edges a load balancer must keep a client's requests on one edge (by
//! client address, or by a cookie); WebSocket needs no such thing.

use crate::websocket::{lock, origin_allowed, plain, Conn};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_core::ns;
use switchyard_core::xml::{escape_attr, Element};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

mod pipe;
mod respond;

pub(crate) use pipe::Pipe;

pub(crate) const PATH: &str = "/http-bind";
const NS: &str = "http://jabber.org/protocol/httpbind";
const NS_XBOSH: &str = "urn:xmpp:xbosh";
/// Longest a request is held (seconds).
const WAIT_MAX: u64 = 60;
/// Requests held at once.
const HOLD: usize = 1;
/// Requests a client may have open at once; also the `rid` window and the cache size.
const REQUESTS: u64 = 2;
/// A session no request came for this long is over (its connection counts as broken).
const INACTIVITY: Duration = Duration::from_secs(60);
/// Shortest interval the client should leave between empty polls (seconds).
const POLLING: u64 = 2;
/// Messages queued from requests to the session; past it a request waits (pushback).
const INBOUND: usize = 64;
/// How long reading a request body may take.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The edge's BOSH sessions by SID.
#[derive(Default)]
pub(crate) struct Sessions(Mutex<HashMap<String, Arc<Bosh>>>);

impl Sessions {
    fn get(&self, sid: &str) -> Option<Arc<Bosh>> {
        lock(&self.0).get(sid).cloned()
    }

    fn remove(&self, sid: &str) {
        lock(&self.0).remove(sid);
    }
}

/// One BOSH session's shared state: requests on one side, the session's driver on the
/// other (through its [`Pipe`]).
pub(crate) struct Bosh {
    sid: String,
    /// The domain the session was opened to (for restarts).
    to: String,
    /// Seconds a request is held.
    wait: Duration,
    /// Requests held at once: [`HOLD`], or 0 for a client that polls (§7.1: never more
    /// than it asked for).
    hold: usize,
    /// The protocol version answered: ours (1.11), or the client's if older (§7.1).
    ver: &'static str,
    /// Bytes that may wait for the next response before the session's writes wait.
    outbox_limit: usize,
    state: Mutex<State>,
    /// Something changed: output to send, a request to release, room, the end.
    changed: Notify,
    /// To the session; taken away (closed) when the session is abandoned.
    inbound: Mutex<Option<mpsc::Sender<Bytes>>>,
    /// Requests go to the session one at a time, in `rid` order.
    feeding: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    /// The last `rid` whose payload went to the session.
    last_rid: u64,
    /// The creating request's `rid`: its response carries the session's attributes.
    created_rid: u64,
    /// Requests that came ahead of a gap, by `rid`.
    ahead: BTreeMap<u64, Element>,
    /// What the session wrote, one element each, for the next response.
    outbox: Vec<String>,
    outbox_bytes: usize,
    /// Elements the session has written, and of those, taken into responses: a write is
    /// done once a response carries it (a session that ends first has it unwritten).
    written: u64,
    taken: u64,
    /// The last responses, for a client that repeats a request.
    sent: VecDeque<(u64, Bytes)>,
    /// Requests waiting for their response, by `rid`.
    held: BTreeSet<u64>,
    /// Held requests up to this `rid` are to be answered at once.
    release_to: u64,
    /// Requests being handled; the session is inactive only while none are.
    in_flight: usize,
    last_seen: Option<Instant>,
    /// The stream id, from the session's `<open/>`.
    stream_id: Option<String>,
    /// The session's side is over (its transport shut down).
    ended: bool,
}

/// Handles one request at [`PATH`].
pub(crate) async fn http(conn: &Conn, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let policy = &conn.ctx.config.websocket;
    if !origin_allowed(policy, req.headers()) {
        return crate::websocket::refused("origin", StatusCode::FORBIDDEN, "origin not allowed\n");
    }
    let origin = req.headers().get(header::ORIGIN).cloned();
    let mut response = match *req.method() {
        Method::OPTIONS => {
            let mut r = Response::new(Full::default());
            *r.status_mut() = StatusCode::NO_CONTENT;
            let h = r.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("POST, OPTIONS"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("Content-Type"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("86400"),
            );
            r
        }
        Method::POST => {
            // Requests are no handshake of their own: the connection gives back its place.
            lock(&conn.place).take();
            let limit = conn.ctx.session.limits.max_stanza_bytes;
            let read = Limited::new(req.into_body(), limit).collect();
            match tokio::time::timeout(BODY_TIMEOUT, read).await {
                Ok(Ok(body)) => respond::request(conn, body.to_bytes()).await,
                _ => plain(
                    StatusCode::BAD_REQUEST,
                    "the request body is too big or too slow\n",
                ),
            }
        }
        _ => plain(StatusCode::METHOD_NOT_ALLOWED, "POST only\n"),
    };
    let headers = response.headers_mut();
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

impl Bosh {
    /// Queues messages for the session, in order; `false` once it no longer reads.
    async fn feed(&self, messages: Vec<Bytes>) -> bool {
        let Some(inbound) = lock(&self.inbound).clone() else {
            return false;
        };
        for message in messages {
            if inbound.send(message).await.is_err() {
                return false;
            }
        }
        true
    }

    /// The session's `<open/>` for a new stream (creation or restart, XEP-0206 §5).
    fn open(&self, lang: Option<&str>) -> Bytes {
        let lang = lang
            .map(|l| format!(" xml:lang='{}'", escape_attr(l)))
            .unwrap_or_default();
        Bytes::from(format!(
            "<open xmlns='{}' to='{}' version='1.0'{lang}/>",
            ns::FRAMING,
            escape_attr(&self.to)
        ))
    }

    fn close() -> Bytes {
        Bytes::from(format!("<close xmlns='{}'/>", ns::FRAMING))
    }

    /// Abandons the session: it reads the end of its stream (a broken connection).
    fn abandon(&self) {
        lock(&self.inbound).take();
    }
}

/// Ends sessions whose client stopped polling, and forgets ended ones (§13).
async fn watch(ctx: Arc<crate::listener::EdgeCtx>, bosh: Arc<Bosh>) {
    let tick = INACTIVITY / 4;
    loop {
        tokio::time::sleep(tick).await;
        let (ended, idle) = {
            let state = lock(&bosh.state);
            let idle =
                state.in_flight == 0 && state.last_seen.is_some_and(|t| t.elapsed() >= INACTIVITY);
            (state.ended, idle)
        };
        if ended {
            ctx.bosh.remove(&bosh.sid);
            return;
        }
        if idle {
            tracing::info!(sid = %bosh.sid, "BOSH client stopped polling; its connection counts as broken");
            bosh.abandon();
        }
    }
}

/// A response body: `<body/>` with `attrs` around `payload`.
fn body(attrs: &str, payload: &str) -> Bytes {
    let head = format!(
        "<body xmlns='{NS}' xmlns:stream='{}' xmlns:xmpp='{NS_XBOSH}'{attrs}",
        ns::STREAMS
    );
    if payload.is_empty() {
        Bytes::from(format!("{head}/>"))
    } else {
        Bytes::from(format!("{head}>{payload}</body>"))
    }
}

fn xml(bytes: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(bytes));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    response
}

/// Ends the exchange with `condition` (§17): the session, if any, is over.
fn terminate(condition: &str) -> Response<Full<Bytes>> {
    xml(body(
        &format!(" type='terminate' condition='{condition}'"),
        "",
    ))
}
