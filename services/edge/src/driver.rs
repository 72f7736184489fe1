//! The connection driver: one task per connection that moves bytes and events between the
//! socket, the sans-IO session, the connection's mailbox and the router link.
//!
//! Bounded everywhere: reads stop while the session waits (credentials, their proof
//! check, bind, TLS), the
//! mailbox has a fixed capacity, writes have a timeout, and the handshake and idle timers
//! end the stream with `connection-timeout`.
//!
//! Pushback without deadlock: while a stanza from the client is being routed (its
//! recipient's mailbox may be full, storage may be slow) the driver stops reading the
//! socket, so the client is held back as TCP would hold it, but it keeps writing what
//! arrives in its own mailbox. Two clients flooding each other therefore never wait on
//! one another: each one's deliveries drain while its own stanza waits for room.
//!
//! Nothing accepted is dropped at the end: a stanza being routed when the connection
//! ends is routed to completion. A delivery is answered only after the write that carried
//! it succeeded; those never written are dropped unanswered, and the router routes them
//! as for a resource that is not connected (RFC 6121 §8.5.3.2).
//!
//! Cheap while idle, cheap per stanza: a connection holds no read buffer (each read lands
//! in a scratch buffer on the worker's stack and goes straight into the session's framer);
//! the idle timer is one registration that is moved only when it fires early, not re-armed
//! per read; and deliveries already waiting in the mailbox are written with one flush.

use crate::admission::Handshake;
use crate::connections::{Command, Delivery, Written};
use crate::link::SmCount;
use crate::listener::{EdgeCtx, Open};
use crate::mailbox::Mailbox;
use crate::resume::Resuming;
use crate::throttle::Attempt;
use crate::tls::{TlsSnapshot, TlsStream};
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use switchyard_core::session::{self, Input, Output, Session, SessionConfig};
use switchyard_core::{StanzaKind, StreamCondition};
use switchyard_telemetry as metrics;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::{sleep_until, timeout, Instant};
use tracing::Instrument;

/// Deliveries handled before one write, when more are already waiting in the mailbox.
const WRITE_BATCH: usize = 64;

/// XEP-0198: how long after stanzas were sent the server asks for their ack, if the
/// every-N-stanzas request has not already.
const ACK_WHEN_QUIET: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs the TLS handshake and returns the stream with its channel bindings.
pub(crate) async fn handshake(
    ctx: &EdgeCtx,
    tcp: TcpStream,
) -> Option<(Box<TlsStream>, switchyard_core::sasl::ChannelBindings)> {
    let snapshot: Arc<TlsSnapshot> = ctx.tls.snapshot();
    let limit = ctx.config.tls_handshake_timeout;
    match timeout(limit, snapshot.accept(tcp)).await {
        Ok(Ok((stream, cb))) => Some((Box::new(stream), cb)),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            metrics::EDGE_TLS_FAILURES.inc();
            None
        }
        Err(_) => {
            metrics::EDGE_TLS_FAILURES.inc();
            None
        }
    }
}

pub(crate) async fn run(
    ctx: Arc<EdgeCtx>,
    tcp: TcpStream,
    direct_tls: bool,
    id: u64,
    ip: IpAddr,
    admitted: Handshake,
    open: Open,
) {
    let (transport, tls) = if direct_tls {
        match Box::pin(handshake(&ctx, tcp)).await {
            Some((stream, cb)) => (Transport::Tls(stream), Some(cb)),
            None => return ctx.connections.release(id, ip),
        }
    } else {
        (Transport::Plain(tcp), None)
    };
    let config = ctx.session.clone();
    let places = Places {
        handshake: admitted,
        open,
    };
    serve(ctx, config, transport, tls, id, ip, places).await;
}

/// What a connection holds in the edge's accounting: its place among connections in
/// their handshake (until its session is up) and its count among open connections (while
/// it has a socket, or for BOSH its HTTP session).
pub(crate) struct Places {
    pub(crate) handshake: Handshake,
    pub(crate) open: Open,
}

/// Serves a connection whose transport is set up, with this session policy, until its
/// session ends.
pub(crate) async fn serve(
    ctx: Arc<EdgeCtx>,
    config: Arc<SessionConfig>,
    transport: Transport,
    tls: Option<switchyard_core::sasl::ChannelBindings>,
    id: u64,
    ip: IpAddr,
    places: Places,
) {
    let Places { handshake, open } = places;
    let mailbox = ctx.connections.register(id, ctx.config.mailbox);
    let mut conn = Conn {
        session: Session::new(config, tls),
        ctx,
        transport,
        id,
        ip,
        attempt: None,
        routing: None,
        backlog: VecDeque::new(),
        written: Vec::new(),
        sm_id: None,
        reported: None,
        resuming: None,
        moved: false,
        handshake: Some(handshake),
        open: Some(open),
        gate: None,
    };
    let mut resumed = Vec::new();
    loop {
        conn.serve(&mailbox, resumed).await;
        if !conn.session.is_closed() && !conn.session.is_detached() {
            // The transport failed under the session (a write error or timeout).
            conn.session.handle(Input::PeerClosed);
        }
        if !conn.session.is_detached() {
            break;
        }
        match Box::pin(conn.detached(&mailbox)).await {
            Some(outputs) => resumed = outputs,
            None => break,
        }
    }
    if let Some(sm_id) = conn.sm_id.take() {
        conn.ctx.connections.resumables.remove(&sm_id);
        conn.ctx.connections.sm_progress.ended(id);
    }
    conn.written.clear();
    // XEP-0198: what the session holds unacknowledged, then what is still queued for it
    // or arrives while its client's last stanzas are routed, go back to the router
    // together, in order (see `driver/sm.rs`); the mailbox closes after that.
    let (unacked, held) = if conn.session.keeps_unacked() && !conn.moved {
        Box::pin(conn.hand_back(&mailbox)).await
    } else {
        // Closed first, so that deliveries from here on (replies to the stanzas still
        // being routed below, too) are refused at once and routed elsewhere.
        conn.ctx.connections.release(id, conn.ip);
        conn.finish_routing().await;
        (Vec::new(), Vec::new())
    };
    if conn.moved {
        tracing::info!(jid = ?conn.session.jid(), conn = id, "session moved to another edge");
    } else if let Some(jid) = conn.session.jid().cloned() {
        metrics::EDGE_SM_UNACKED_RETURNED.inc_by(unacked.len() as u64);
        Box::pin(conn.unbind(&mailbox, &jid, unacked)).await;
        tracing::info!(%jid, conn = id, "session ended");
    }
    // Answered once stored: their senders' next stanzas are routed only now, so they
    // cannot reach offline storage ahead of these; what is queued after is refused.
    for written in held {
        let _ = written.send(Written::default());
    }
    conn.ctx.connections.release(id, conn.ip);
}

mod gate;
mod login;
mod sm;
mod transport;

use transport::Pending;
pub(crate) use transport::Transport;

/// A stanza from the client on its way through the router.
type Routing = Pin<Box<dyn Future<Output = ()> + Send>>;

struct Conn {
    ctx: Arc<EdgeCtx>,
    session: Session,
    transport: Transport,
    id: u64,
    ip: IpAddr,
    /// The current SASL attempt as the throttle saw it, until its outcome is known.
    attempt: Option<Box<Attempt>>,
    /// The client's stanza being routed, while its routing waits; reading stops
    /// meanwhile, writing deliveries does not.
    routing: Option<Routing>,
    /// Outputs that came after the stanza being routed, carried out when it is done
    /// (writes among them go at once: see [`Conn::park`]). Empty whenever `routing` is
    /// `None`.
    backlog: VecDeque<Output>,
    /// Deliveries handed to the session since the last write, answered once it succeeds.
    written: Vec<oneshot::Sender<Written>>,
    /// The XEP-0198 SM-ID under which this session is listed as resumable.
    sm_id: Option<String>,
    /// The counts the routers were last told of (see [`crate::progress`]).
    reported: Option<(u32, u32)>,
    /// A connection resuming this session, taken from the mailbox, until taken over.
    resuming: Option<(Box<Resuming>, crate::resume::Answer)>,
    /// The session moved to another edge (XEP-0198): it ends here without an unbind.
    moved: bool,
    /// Its place among connections in their handshake, until its session is up.
    handshake: Option<Handshake>,
    /// Its count among open connections, while it has a socket (see [`Open`]).
    open: Option<Open>,
    /// XEP-0198: writes waiting for a router's confirmation, while any do.
    gate: Option<Box<gate::Gate>>,
}

impl Conn {
    /// Serves the connection until its transport is finished; `first` are outputs to
    /// carry out before anything else (a resumed session's `<resumed/>` and resends).
    async fn serve(&mut self, mailbox: &Mailbox, first: Vec<Output>) {
        let first = self.gated(first);
        if !first.is_empty() && !Box::pin(self.execute(first)).await {
            return;
        }
        let cfg = self.ctx.config.clone();
        let handshake_deadline = Instant::now() + cfg.handshake_timeout;
        // Since when a stream header or stanza begun during the handshake is incomplete: a
        // client that trickles it (slowloris) is closed `handshake_frame_timeout` later.
        // A client waiting for a busy server holds no partial frame, so it is never hit.
        let mut partial_since: Option<Instant> = None;
        let mut idle_deadline = Instant::now() + cfg.idle_timeout;
        // When a quiet bound client is asked for a sign of life; `None` once asked.
        let mut keepalive_at = cfg.keepalive_after.map(|after| Instant::now() + after);
        // XEP-0198: when to ask for an ack of what was sent, once the stream is quiet.
        let mut ack_at: Option<Instant> = None;
        let timer = sleep_until(handshake_deadline.min(idle_deadline));
        tokio::pin!(timer);
        loop {
            let in_handshake = self.session.in_handshake();
            let trickle_deadline = partial_since
                .filter(|_| in_handshake)
                .map(|since| since + cfg.handshake_frame_timeout);
            let deadline = if in_handshake {
                handshake_deadline.min(idle_deadline)
            } else {
                idle_deadline
            };
            let keepalive = keepalive_at.filter(|_| self.session.is_established());
            let gate = self.gate.as_ref().and_then(|gate| gate.deadline());
            // Other deadlines only move later, so the timer fires at or before them; a
            // partial frame, a keepalive or a write waiting can bring the wake-up forward.
            let wake = [trickle_deadline, keepalive, ack_at, gate]
                .into_iter()
                .flatten()
                .fold(deadline, Instant::min);
            if wake < timer.deadline() {
                timer.as_mut().reset(wake);
            }
            let mut outputs = tokio::select! {
                (read, outputs) = poll_fn(|cx| self.transport.poll_read_with(cx, |read| match read {
                    Ok([]) | Err(_) => (false, self.session.handle(Input::PeerClosed)),
                    Ok(bytes) => {
                        metrics::EDGE_BYTES_IN.inc_by(bytes.len() as u64);
                        (true, self.session.handle(Input::Bytes(bytes)))
                    }
                })), if self.session.wants_bytes() && self.routing.is_none() => {
                    if read {
                        let now = Instant::now();
                        idle_deadline = now + cfg.idle_timeout;
                        keepalive_at = cfg.keepalive_after.map(|after| now + after);
                        let partial = self.session.buffered_input() > 0;
                        partial_since = partial.then(|| partial_since.unwrap_or(now));
                    }
                    self.list_resumable();
                    outputs
                },
                // A session that closed behind a stanza still being routed takes nothing
                // more: what reaches it waits for its end (`hand_back`), where it is
                // routed back, instead of being answered as delivered and dropped.
                command = mailbox.recv(), if !(self.session.is_closed() && self.routing.is_some()) => {
                    self.commands(command, mailbox)
                }
                () = poll_fn(|cx| match self.routing.as_mut() {
                    Some(routing) => routing.as_mut().poll(cx),
                    None => Poll::Pending,
                }), if self.routing.is_some() => {
                    self.routing = None;
                    std::mem::take(&mut self.backlog).into()
                },
                () = &mut timer => {
                    let now = Instant::now();
                    let trickling = trickle_deadline.is_some_and(|t| now >= t);
                    if trickling {
                        tracing::info!(conn = self.id, ip = %self.ip, "a handshake frame trickled in too slowly, closing");
                    }
                    if now >= deadline || trickling {
                        self.timed_out()
                    } else if keepalive.is_some_and(|k| now >= k) {
                        keepalive_at = None;
                        metrics::EDGE_KEEPALIVES.inc();
                        self.session.keepalive()
                    } else if ack_at.is_some_and(|a| now >= a) {
                        ack_at = None;
                        self.session.ask_for_ack()
                    } else {
                        timer.as_mut().reset(deadline);
                        Vec::new()
                    }
                },
            };
            if let Some((resuming, answer)) = self.resuming.take() {
                if let Some(resumed) = self.take_over(resuming, answer) {
                    // What the old stream had yet to write is in the resent queue; the
                    // resends wait for what is still unconfirmed.
                    if let Some(gate) = self.gate.as_mut() {
                        gate.detach();
                    }
                    outputs.retain(|o| !matches!(o, Output::Send(_)));
                    outputs.extend(resumed);
                    let now = Instant::now();
                    idle_deadline = now + cfg.idle_timeout;
                    keepalive_at = cfg.keepalive_after.map(|after| now + after);
                }
            }
            let outputs = self.gated(outputs);
            if outputs.is_empty() {
                self.report_counts();
                continue; // a partial stanza, a keepalive or an early timer: nothing to do
            }
            // Boxed: its state (outputs, write and link futures) is over a kilobyte and
            // exists only while an event is handled, not while the connection waits.
            if !Box::pin(self.execute(outputs)).await {
                break;
            }
            if !self.session.in_handshake() {
                let handshake = self.handshake.take();
                if let Some(handshake) = handshake.filter(|_| self.session.is_established()) {
                    handshake.established();
                }
            }
            if ack_at.is_none() && self.session.owes_ack() {
                ack_at = Some(Instant::now() + ACK_WHEN_QUIET);
            }
            self.report_counts();
        }
    }

    /// At the end of the connection: the stanza being routed and those read after it
    /// are routed to completion (the client sent them; they are delivered, stored or
    /// bounced like any other). Their other outputs have no stream left to go to.
    async fn finish_routing(&mut self) {
        if let Some(routing) = self.routing.take() {
            routing.await;
        }
        for output in std::mem::take(&mut self.backlog) {
            if let Output::Route(stanza, count) = output {
                self.route(stanza, count).await;
            }
        }
    }

    /// Starts routing one stanza from the client; `count`: see [`Output::Route`].
    fn route(&self, stanza: switchyard_core::Stanza, count: Option<u32>) -> Routing {
        metrics::EDGE_STANZAS_IN_BY_KIND.inc(stanza.kind.as_str());
        if stanza.kind == StanzaKind::Presence && stanza.to.is_none() {
            let available = stanza.type_attr().is_none();
            let presence = available.then(|| stanza.element().to_xml(""));
            self.ctx.connections.presence(self.id, presence);
        }
        let span = metrics::trace::stanza_span(stanza.kind.as_str());
        let link = self.ctx.link.clone();
        let sm = count.map(|handled| SmCount {
            conn: self.id,
            handled,
        });
        Box::pin(async move { link.submit(stanza, sm).instrument(span).await })
    }

    /// Handles a mailbox command and, for a delivery, the deliveries already queued behind
    /// it (up to [`WRITE_BATCH`]), so that a burst goes out in one write.
    fn commands(&mut self, first: Option<Command>, mailbox: &Mailbox) -> Vec<Output> {
        if first.is_none() {
            return self
                .session
                .handle(Input::Terminate(StreamCondition::PolicyViolation));
        }
        let mut outputs = Vec::new();
        let mut next = first;
        let mut handled = 0;
        while let Some(command) = next.take() {
            match command {
                Command::Deliver(delivery) => {
                    let Delivery {
                        stanza,
                        written,
                        confirmed,
                    } = *delivery;
                    metrics::EDGE_STANZAS_OUT_BY_KIND.inc(stanza.name());
                    // The session is open here (the loop stops once it closes): it takes
                    // this stanza, even the one that puts it past its bound.
                    let (more, sm_seq) = self.session.deliver_numbered(stanza);
                    if let Some(seq) = sm_seq.filter(|_| confirmed) {
                        let gate = self.gate.get_or_insert_default();
                        gate.mark(outputs.len(), seq);
                    }
                    outputs.extend(more);
                    if self.session.keeps_unacked() {
                        // XEP-0198: the session holds it until the client acknowledges
                        // it, and hands it back if the client never does.
                        let _ = written.send(Written { sm_seq });
                    } else {
                        self.written.push(written);
                    }
                }
                Command::Terminate(c) => {
                    outputs.extend(self.session.handle(Input::Terminate(c)));
                    break;
                }
                Command::Resume(resuming, answer) => {
                    self.resuming = Some((resuming, answer));
                    break;
                }
                Command::Confirmed(seqs) => self.confirmed(&seqs),
                Command::Export(answer) => {
                    if self.export(answer) {
                        // What was not written yet went with the state: the old stream
                        // gets none of it (a client still reading it would see it twice).
                        self.gate = None;
                        outputs.retain(|o| !matches!(o, Output::Send(_)));
                        outputs.push(Output::Close);
                        break;
                    }
                }
            }
            handled += 1;
            if self.session.is_closed() {
                // What is still queued stays there for the session's end (`hand_back`).
                break;
            }
            // Taken only while the batch has room: a command taken past it would be lost.
            if handled < WRITE_BATCH {
                next = mailbox.try_recv();
            }
        }
        if outputs.is_empty() {
            // Taken with nothing to write (presence held while the client is inactive,
            // XEP-0352): done as far as the router is concerned.
            self.answer_written();
        }
        outputs
    }

    /// A router read the answers for these numbers (see [`gate`]).
    fn confirmed(&mut self, seqs: &[u32]) {
        if let Some(gate) = self.gate.as_mut() {
            seqs.iter().for_each(|&seq| gate.confirm(seq));
            if gate.is_empty() {
                self.gate = None;
            }
        }
    }

    /// What of `outputs` may be carried out now: all of them, unless writes wait for a
    /// router's confirmation (see [`gate`]).
    fn gated(&mut self, outputs: Vec<Output>) -> Vec<Output> {
        let Some(gate) = self.gate.as_mut() else {
            return outputs;
        };
        let outputs = gate.pass(outputs, Instant::now(), self.session.is_detached());
        if gate.is_empty() {
            self.gate = None;
        }
        outputs
    }

    /// Carries out outputs in order; `false` once the connection is finished.
    async fn execute(&mut self, outputs: Vec<Output>) -> bool {
        let mut queue: VecDeque<Output> = outputs.into();
        let mut pending = Pending::default();
        while let Some(output) = queue.pop_front() {
            let more = match output {
                Output::Send(xml) => {
                    pending.push(&xml);
                    continue;
                }
                Output::Route(stanza, count) => {
                    if self.routing.is_some() {
                        // Behind the stanza being routed, in the order they came.
                        self.backlog.push_back(Output::Route(stanza, count));
                        self.park(&mut queue, &mut pending);
                        break;
                    }
                    let mut routing = self.route(stanza, count);
                    // Most stanzas are routed without waiting: poll once before parking.
                    let done = poll_fn(|cx| Poll::Ready(routing.as_mut().poll(cx).is_ready()));
                    if !done.await {
                        self.routing = Some(routing);
                        self.park(&mut queue, &mut pending);
                        break;
                    }
                    continue;
                }
                Output::StreamError(condition) => {
                    metrics::EDGE_STREAM_ERRORS
                        .with_label_values(&[condition.as_str()])
                        .inc();
                    continue;
                }
                Output::Authenticated {
                    username,
                    mechanism,
                } => {
                    metrics::EDGE_LOGINS
                        .with_label_values(&[mechanism.name(), "success", "none"])
                        .inc();
                    tracing::info!(user = %username, mechanism = mechanism.name(), conn = self.id, "authenticated");
                    if let Some(attempt) = self.attempt.take() {
                        self.ctx.throttle.succeeded(&attempt).await;
                    }
                    continue;
                }
                Output::AuthFailed { mechanism, failure } => {
                    self.auth_failed(mechanism, failure).await;
                    continue;
                }
                other => {
                    if !self.flush(&mut pending).await {
                        return false;
                    }
                    other
                }
            };
            let next = match more {
                // Boxed: these run once per connection, and their futures would otherwise
                // be part of every connection's idle task.
                Output::StartTls => Box::pin(self.start_tls()).await,
                Output::FetchCredentials { account } => Box::pin(self.fetch(account)).await,
                Output::VerifyProof { account, proof } => {
                    Box::pin(self.verify(account, proof)).await
                }
                Output::Bind { jid, carbons } => Box::pin(self.bind(jid, carbons)).await,
                Output::VerifyToken(check) => Box::pin(self.verify_token(check)).await,
                Output::IssueToken(request) => Box::pin(self.issue_token(request)).await,
                Output::Resume { previd, h, account } => {
                    Box::pin(self.resume(previd, h, account)).await
                }
                _ => {
                    self.transport.shutdown().await;
                    return false;
                }
            };
            queue.extend(next);
        }
        self.flush(&mut pending).await
    }

    /// Parks `rest` behind the stanza being routed. Its writes go now, up to the first
    /// output that is neither a write nor a stanza to route: the session numbered them
    /// (XEP-0198 `h`) before anything delivered from now on, and a delivery written while
    /// they waited would reach the client ahead of them, so its count and a resumption's
    /// resends would name other stanzas. Stanzas to route wait in their order, an `<a/>`
    /// waits (it counts the stanzas being routed, which must not die with this edge once
    /// the client stops holding them; it is not numbered, so the writes after it still
    /// go), and so does everything from that first other output on (a stream's end, say).
    fn park(&mut self, rest: &mut VecDeque<Output>, pending: &mut Pending) {
        let mut writing = true;
        for output in rest.drain(..) {
            match output {
                Output::Send(xml) if writing && !session::is_ack(&xml) => pending.push(&xml),
                Output::Route(..) | Output::Send(_) if writing => self.backlog.push_back(output),
                other => {
                    writing = false;
                    self.backlog.push_back(other);
                }
            }
        }
    }

    /// Writes what is pending; once it is written, the deliveries it carried are
    /// answered (a failed write leaves them unanswered).
    async fn flush(&mut self, pending: &mut Pending) -> bool {
        if !pending.is_empty() {
            metrics::EDGE_BYTES_OUT.inc_by(pending.text.len() as u64);
            let write = self.transport.write_all(pending);
            let ok = match timeout(self.ctx.config.write_timeout, write).await {
                Ok(result) => result.is_ok(),
                Err(_) => {
                    tracing::warn!(
                        conn = self.id,
                        "slow consumer: a write took longer than the write timeout, closing"
                    );
                    metrics::EDGE_SLOW_CONSUMERS.inc();
                    false
                }
            };
            pending.clear();
            if !ok {
                self.written.clear();
                return false;
            }
        }
        self.answer_written();
        true
    }

    fn answer_written(&mut self) {
        for written in self.written.drain(..) {
            let _ = written.send(Written::default());
        }
    }
}
