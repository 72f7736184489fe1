//! One BOSH request: its checks, its payload to the session in `rid` order, its hold,
//! and its response (see the module doc for the XEP-0124 sections).

use super::{
    body, lock, terminate, watch, xml, Bosh, Pipe, State, HOLD, INACTIVITY, INBOUND, NS, POLLING,
    REQUESTS, WAIT_MAX,
};
use crate::admission::Handshake;
use crate::driver::Transport;
use crate::websocket::Conn;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::Response;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_core::sasl::ChannelBindings;
use switchyard_core::xml::{escape_attr, Element};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

pub(super) async fn request(conn: &Conn, bytes: Bytes) -> Response<Full<Bytes>> {
    // An XML declaration may come first (some clients write one).
    let text = std::str::from_utf8(&bytes).ok().map(|t| {
        let t = t.trim_start();
        match t
            .strip_prefix("<?xml")
            .and_then(|rest| rest.split_once("?>"))
        {
            Some((_, after)) => after.trim_start(),
            None => t,
        }
    });
    let parsed = text
        .and_then(|text| Element::parse_with(text, &conn.ctx.session.limits).ok())
        .filter(|el| el.is("body", NS));
    let Some(el) = parsed else {
        return terminate("bad-request");
    };
    // §7.1: at most 2^53 - 1, so that a client's number type holds every rid.
    let rid = el.attr("rid").and_then(|r| r.parse::<u64>().ok());
    let Some(rid) = rid.filter(|r| *r < 1 << 53) else {
        return terminate("bad-request");
    };
    match el.attr("sid") {
        None => create(conn, &el, rid).await,
        Some(sid) => match conn.ctx.bosh.get(sid) {
            Some(bosh) => next(&bosh, el, rid).await,
            None => terminate("item-not-found"),
        },
    }
}

/// §7: a new session, run by the driver like a connection, with the edge's caps.
async fn create(conn: &Conn, el: &Element, rid: u64) -> Response<Full<Bytes>> {
    let ctx = &conn.ctx;
    let Some(to) = el
        .attr("to")
        .filter(|to| ctx.session.domains.iter().any(|d| d == to))
    else {
        return terminate("host-unknown");
    };
    if ctx.stop_accepting.is_cancelled() {
        return terminate("system-shutdown");
    }
    if ctx.connections.open() >= ctx.config.max_connections {
        tracing::warn!("connection limit reached; refusing a BOSH session");
        return terminate("policy-violation");
    }
    let Some(id) = ctx
        .connections
        .admit(conn.ip, ctx.config.max_connections_per_ip)
    else {
        tracing::warn!(ip = %conn.ip, "per-IP connection limit reached; refusing a BOSH session");
        return terminate("policy-violation");
    };
    // The connection's own place, or (a kept-alive connection that created one before)
    // a new one.
    let place = lock(&conn.place).take().or_else(|| {
        let permit = ctx.handshakes.clone().try_acquire_owned().ok()?;
        let per_ip = ctx.config.max_handshakes_per_ip;
        Handshake::new(permit, &ctx.handshakes_per_ip, conn.ip, per_ip)
    });
    let Some(place) = place else {
        ctx.connections.release(id, conn.ip);
        return terminate("policy-violation");
    };
    let wait = el
        .attr("wait")
        .and_then(|w| w.parse::<u64>().ok())
        .unwrap_or(WAIT_MAX)
        .clamp(1, WAIT_MAX);
    let (tx, rx) = mpsc::channel(INBOUND);
    let bosh = Arc::new(Bosh {
        sid: switchyard_core::token::token(32),
        to: to.to_owned(),
        wait: Duration::from_secs(wait),
        ver: version(el.attr("ver")),
        hold: el
            .attr("hold")
            .and_then(|h| h.parse::<usize>().ok())
            .unwrap_or(HOLD)
            .min(HOLD),
        outbox_limit: ctx.config.mailbox.bytes,
        state: Mutex::new(State {
            last_rid: rid,
            created_rid: rid,
            last_seen: Some(Instant::now()),
            ..State::default()
        }),
        changed: Notify::new(),
        inbound: Mutex::new(Some(tx)),
        feeding: tokio::sync::Mutex::new(()),
    });
    lock(&ctx.bosh.0).insert(bosh.sid.clone(), bosh.clone());
    // Over TLS, but not one connection's: nothing to bind a SASL exchange to.
    let tls = conn.tls.then(ChannelBindings::default);
    let transport = Transport::Bosh(Box::new(Pipe::new(bosh.clone(), rx)));
    let (ctx2, ip) = (ctx.clone(), conn.ip);
    tokio::spawn(async move {
        let open = crate::listener::Open::new("bosh", None);
        let config = ctx2.websocket_session.clone();
        let places = crate::driver::Places {
            handshake: place,
            open,
        };
        crate::driver::serve(ctx2, config, transport, tls, id, ip, places).await;
    });
    tokio::spawn(watch(ctx.clone(), bosh.clone()));
    if !bosh.feed(vec![bosh.open(el.attr("xml:lang"))]).await {
        return terminate("internal-server-error");
    }
    hold(&bosh, rid).await
}

/// §9, §14: a request of a session, taken in `rid` order.
async fn next(bosh: &Bosh, el: Element, rid: u64) -> Response<Full<Bytes>> {
    {
        let state = lock(&bosh.state);
        // Over, and nothing left to say: as for a session that is gone.
        if state.ended && state.outbox.is_empty() {
            return terminate("item-not-found");
        }
        if rid <= state.last_rid {
            if let Some((_, cached)) = state.sent.iter().find(|(r, _)| *r == rid) {
                return xml(cached.clone());
            }
            if state.held.contains(&rid) {
                return xml(body("", ""));
            }
        }
        if rid <= state.last_rid || rid > state.last_rid + REQUESTS {
            drop(state);
            tracing::info!(sid = %bosh.sid, rid, "BOSH request out of the rid window; session ended");
            bosh.abandon();
            return terminate("item-not-found");
        }
    }
    let feeding = bosh.feeding.lock().await;
    let ready = {
        let mut guard = lock(&bosh.state);
        let state = &mut *guard;
        state.last_seen = Some(Instant::now());
        state.ahead.insert(rid, el);
        let mut ready = Vec::new();
        while let Some(body) = state.ahead.remove(&(state.last_rid + 1)) {
            state.last_rid += 1;
            ready.push(body);
        }
        ready
    };
    for body in ready {
        // A session that no longer reads is ending: the hold below answers with what it
        // left (a stream error, its close) and the end of the session.
        if !bosh.feed(messages(bosh, &body)).await {
            break;
        }
    }
    drop(feeding);
    hold(bosh, rid).await
}

/// §7.1: the highest version both speak, of the ones a client may name.
fn version(client: Option<&str>) -> &'static str {
    const KNOWN: [&str; 12] = [
        "1.0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7", "1.8", "1.9", "1.10", "1.11",
    ];
    client
        .and_then(|v| KNOWN.iter().find(|k| **k == v))
        .copied()
        .unwrap_or("1.11")
}

/// What one request's body gives the session, in order.
fn messages(bosh: &Bosh, body: &Element) -> Vec<Bytes> {
    let mut out = Vec::new();
    // XEP-0206 §5: a restart after SASL.
    if body.attr("xmpp:restart") == Some("true") {
        out.push(bosh.open(body.attr("xml:lang")));
    }
    // A stanza written without `jabber:client` inherits the body's namespace; it is
    // meant as a client stanza (XEP-0206 §7), and read as one.
    out.extend(body.children().map(|child| {
        let child = match child.ns() {
            NS => child
                .clone()
                .moved_namespace(NS, switchyard_core::ns::CLIENT),
            _ => child.clone(),
        };
        Bytes::from(child.to_xml(""))
    }));
    // XEP-0206 §6: the payload first, then the stream's end.
    if body.attr("type") == Some("terminate") {
        out.push(Bosh::close());
    }
    if out.is_empty() {
        // An empty poll is a sign of life, as whitespace is on TCP.
        out.push(Bytes::from_static(b" "));
    }
    out
}

/// §10, §12: holds the request until there is output, `wait` passes, or a newer request
/// releases it; then answers with what the session wrote.
async fn hold(bosh: &Bosh, rid: u64) -> Response<Full<Bytes>> {
    {
        let mut state = lock(&bosh.state);
        state.in_flight += 1;
        state.held.insert(rid);
        while state.held.len() > bosh.hold {
            let Some(oldest) = state.held.pop_first() else {
                break;
            };
            state.release_to = state.release_to.max(oldest);
        }
    }
    bosh.changed.notify_waiters();
    // If the client's connection goes while this is held, hyper drops this future: the
    // guard forgets the request and caches an empty answer, so the client's retry of the
    // same rid gets it (what was queued waits for the next response).
    let mut guard = Held {
        bosh,
        rid,
        done: false,
    };
    // A polling client's requests (hold 0) are answered at once.
    let deadline = Instant::now()
        + if bosh.hold == 0 {
            Duration::ZERO
        } else {
            bosh.wait
        };
    loop {
        let notified = bosh.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let state = lock(&bosh.state);
            if state.ended || rid <= state.release_to || !state.outbox.is_empty() {
                break;
            }
        }
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep_until(deadline) => break,
        }
    }
    guard.done = true;
    let bytes = finish(bosh, rid);
    bosh.changed.notify_waiters();
    xml(bytes)
}

/// A held request, forgotten cleanly if it is dropped before its answer.
struct Held<'a> {
    bosh: &'a Bosh,
    rid: u64,
    done: bool,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut state = lock(&self.bosh.state);
        state.held.remove(&self.rid);
        state.in_flight -= 1;
        state.last_seen = Some(Instant::now());
        cache(&mut state, self.rid, body("", ""));
    }
}

/// Keeps a response for a client that repeats its request (the last `requests`).
fn cache(state: &mut State, rid: u64, bytes: Bytes) {
    state.sent.push_back((rid, bytes));
    while state.sent.len() as u64 > REQUESTS {
        state.sent.pop_front();
    }
}

/// The response: the session's elements, the session's attributes on the first one,
/// `type='terminate'` once its stream ended; kept for a repeated request.
fn finish(bosh: &Bosh, rid: u64) -> Bytes {
    let mut state = lock(&bosh.state);
    state.held.remove(&rid);
    state.in_flight -= 1;
    state.last_seen = Some(Instant::now());
    let outbox = std::mem::take(&mut state.outbox);
    state.outbox_bytes = 0;
    state.taken += outbox.len() as u64;
    let mut payload = String::new();
    let (mut closed, mut error) = (state.ended && outbox.is_empty(), false);
    for element in &outbox {
        if element.starts_with("<open ") {
            state.stream_id = Element::parse(element)
                .ok()
                .and_then(|open| open.attr("id").map(str::to_owned));
        } else if element.starts_with("<close ") {
            closed = true;
        } else {
            error |= element.starts_with("<stream:error");
            payload.push_str(element);
        }
    }
    let mut attrs = String::new();
    if rid == state.created_rid {
        attrs = format!(
            " sid='{}' wait='{}' hold='{}' requests='{REQUESTS}' inactivity='{}' polling='{POLLING}' ver='{}' from='{}' secure='true' xmpp:version='1.0' xmpp:restartlogic='true'",
            bosh.sid,
            bosh.wait.as_secs(),
            bosh.hold,
            INACTIVITY.as_secs(),
            bosh.ver,
            escape_attr(&bosh.to),
        );
        if let Some(id) = &state.stream_id {
            attrs.push_str(&format!(" authid='{}'", escape_attr(id)));
        }
    }
    if closed {
        attrs.push_str(" type='terminate'");
        if error {
            attrs.push_str(" condition='remote-stream-error'");
        }
    }
    let bytes = body(&attrs, &payload);
    cache(&mut state, rid, bytes.clone());
    bytes
}
