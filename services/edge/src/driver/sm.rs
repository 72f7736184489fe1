//! The driver's half of XEP-0198 stream management: listing resumable sessions,
//! keeping a session whose connection is gone (detached) until it is resumed or expires,
//! and handing a resuming connection to the session it names (see [`crate::resume`]).
//!
//! While detached, deliveries are taken into the session's unacknowledged queue and
//! answered at once (the session holds them and hands them back to the router if it
//! ends unresumed, so nothing is lost), within the session's bound; stanzas the client
//! sent before the connection broke are routed to completion; the registry record stays,
//! so contacts see no presence change. A detached session ends at its `max`, when its
//! queue passes the bound, when it is replaced or kicked, or at shutdown.

use super::{Conn, Transport};
use crate::connections::{Command, Delivery, Written};
use crate::mailbox::Mailbox;
use crate::resume::{Answer, Resuming};
use std::future::poll_fn;
use std::task::Poll;
use std::time::Duration;
use switchyard_core::session::{Input, Output, ResumeRefused, Session, SmState};
use switchyard_core::{Jid, Routed, StreamCondition};
use switchyard_telemetry as metrics;
use tokio::sync::oneshot;

impl Conn {
    /// Lists the session as resumable once its client enabled resumption.
    pub(super) fn list_resumable(&mut self) {
        if self.sm_id.is_some() {
            return;
        }
        let (Some(resumable), Some(jid)) = (self.session.resumable(), self.session.jid()) else {
            return;
        };
        self.ctx
            .connections
            .resumables
            .insert(resumable.id.clone(), jid.bare(), self.id);
        let counts = self.session.sm_counts().unwrap_or_default();
        self.ctx.connections.sm_progress.enabled(
            self.id,
            &resumable.id,
            jid,
            resumable.max_secs,
            counts,
        );
        self.reported = Some(counts);
        self.sm_id = Some(resumable.id);
    }

    /// Tells the routers (see [`crate::progress`]) when the client acknowledged more (so
    /// that they drop their copies of what it has) or sent more (a resumption after this
    /// edge's death must not tell it a lower `h` than it was last told). Only once no
    /// stanza of the client's is still being routed: the count includes them, and a
    /// resumption after this edge's death must not count one that died with it (the
    /// client would never send it again). Called after each event is carried out.
    pub(super) fn report_counts(&mut self) {
        if self.sm_id.is_none() || self.routing.is_some() {
            return;
        }
        let counts = self.session.sm_counts();
        if let Some((acked, handled)) = counts.filter(|_| counts != self.reported) {
            self.reported = counts;
            let progress = &self.ctx.connections.sm_progress;
            progress.acked(self.id, acked, handled);
        }
    }

    /// The idle timeout: a resumable session detaches quietly (its client may come back
    /// on another network), any other stream ends with `connection-timeout`.
    pub(super) fn timed_out(&mut self) -> Vec<Output> {
        let condition = StreamCondition::ConnectionTimeout;
        if self.session.is_established() && self.sm_id.is_some() {
            tracing::info!(
                conn = self.id,
                "no sign of life within the idle timeout; detaching"
            );
            return self.session.handle(Input::PeerClosed);
        }
        self.session.handle(Input::Terminate(condition))
    }

    /// A new connection resumes this session: its transport replaces ours (the old one,
    /// if still open, is dropped: XEP-0198 §5 ends the old stream). The outputs for the
    /// new transport, or `None` when the client's `h` is impossible and the connection
    /// goes back refused.
    pub(super) fn take_over(
        &mut self,
        resuming: Box<Resuming>,
        answer: Answer,
    ) -> Option<Vec<Output>> {
        let Resuming {
            transport,
            mut session,
            h,
            ip,
            open,
        } = *resuming;
        match self.session.resume(&mut session, h) {
            Ok(outputs) => {
                self.transport = transport;
                // The old socket's count, if it still had one, goes with it.
                self.open = open;
                self.ctx.connections.move_ip(self.ip, ip);
                self.ip = ip;
                let _ = answer.send(None);
                metrics::EDGE_SM_RESUMPTIONS
                    .with_label_values(&["resumed"])
                    .inc();
                tracing::info!(jid = %jid_of(&self.session), conn = self.id, %ip, "session resumed");
                Some(outputs)
            }
            Err(refused) => {
                tracing::info!(jid = %jid_of(&self.session), conn = self.id, ?refused, "resumption refused");
                metrics::EDGE_SM_RESUMPTIONS
                    .with_label_values(&["refused"])
                    .inc();
                let back = Resuming {
                    transport,
                    session,
                    h,
                    ip,
                    open,
                };
                let _ = answer.send(Some((Box::new(back), refused)));
                None
            }
        }
    }

    /// The session waits, detached, to be resumed (see the module doc); the outputs
    /// for the connection that took it over, or `None` once it ended.
    pub(super) async fn detached(&mut self, mailbox: &Mailbox) -> Option<Vec<Output>> {
        let max = self.session.resumable().map_or(0, |r| r.max_secs);
        let expiry = tokio::time::sleep(Duration::from_secs(max.into()));
        tokio::pin!(expiry);
        metrics::EDGE_SM_DETACHED.inc();
        // The dead connection's socket and TLS state go now, not when the wait ends: a
        // detached session holds no descriptor and only its own state, and is no longer
        // counted as an open connection.
        self.transport = Transport::Upgrading;
        self.open = None;
        // What waited for a confirmation was never written: it is in the queue a
        // resumption resends, which waits for those confirmations.
        if let Some(gate) = self.gate.as_mut() {
            gate.detach();
        }
        tracing::info!(jid = %jid_of(&self.session), conn = self.id, max, "connection lost; session kept for resumption");
        let mut push = self.session.jid().cloned().map(|jid| {
            let link = self.ctx.link.clone();
            Notifier::new(move |message| {
                let (link, jid) = (link.clone(), jid.clone());
                async move { link.notify_detached(&jid, message).await }
            })
        });
        let resumed = loop {
            tokio::select! {
                command = mailbox.recv() => match command {
                    Some(Command::Deliver(delivery)) => {
                        let Delivery { stanza, written, confirmed } = *delivery;
                        if let Some(push) = push.as_mut().filter(|_| stanza.name() == "message") {
                            push.message(&stanza);
                        }
                        let (_, sm_seq) = self.session.deliver_numbered(stanza);
                        if let Some(seq) = sm_seq.filter(|_| confirmed) {
                            self.gate.get_or_insert_default().mark(0, seq);
                        }
                        let _ = written.send(Written { sm_seq });
                        if self.session.is_closed() {
                            tracing::info!(conn = self.id, "a detached session's queue passed its bound; ending it");
                            break None;
                        }
                    }
                    Some(Command::Resume(resuming, answer)) => {
                        if let Some(outputs) = self.take_over(resuming, answer) {
                            break Some(outputs);
                        }
                    }
                    Some(Command::Terminate(condition)) => {
                        self.session.handle(Input::Terminate(condition));
                        break None;
                    }
                    Some(Command::Export(answer)) => {
                        if self.export(answer) {
                            break None;
                        }
                    }
                    Some(Command::Confirmed(seqs)) => self.confirmed(&seqs),
                    None => break None,
                },
                () = poll_fn(|cx| match self.routing.as_mut() {
                    Some(routing) => routing.as_mut().poll(cx),
                    None => Poll::Pending,
                }), if self.routing.is_some() => self.next_routing(),
                () = async {
                    if let Some(push) = push.as_mut() {
                        push.answered().await;
                    }
                }, if push.as_ref().is_some_and(Notifier::busy) => {}
                () = &mut expiry => break None,
            }
        };
        metrics::EDGE_SM_DETACHED.dec();
        if resumed.is_none() && !self.moved {
            metrics::EDGE_SM_EXPIRED.inc();
            // Ends it if still detached (expired, or the mailbox closed).
            self.session
                .handle(Input::Terminate(StreamCondition::ConnectionTimeout));
        }
        resumed
    }

    /// Another edge takes the session (its client resumed there): its state goes to
    /// `answer`; `true` when it moved (the session is over here).
    pub(super) fn export(&mut self, answer: oneshot::Sender<Option<SmState>>) -> bool {
        let state = self.session.export();
        self.moved = state.is_some();
        if self.moved {
            metrics::EDGE_SM_RESUMPTIONS
                .with_label_values(&["moved_away"])
                .inc();
        }
        let _ = answer.send(state);
        self.moved
    }

    /// XEP-0198 §5 for a session another edge holds: it moves here through a router
    /// (see `router_side::handover` in the cluster crate), registry record and all.
    async fn resume_from_elsewhere(
        &mut self,
        previd: &str,
        h: Option<u32>,
        account: &Jid,
    ) -> Vec<Output> {
        let taken = self.ctx.link.take_session(previd, account, self.id, h);
        let Some(state) = taken.await else {
            metrics::EDGE_SM_RESUMPTIONS
                .with_label_values(&["not_found"])
                .inc();
            tracing::info!(%account, conn = self.id, "resumption of an unknown session");
            return self
                .session
                .handle(Input::ResumeFailed(ResumeRefused::NotFound));
        };
        let jid = state.jid.clone();
        match self.session.adopt(state, h) {
            Ok(outputs) => {
                self.ctx.connections.bound(self.id, jid.clone());
                self.list_resumable();
                metrics::EDGE_SM_RESUMPTIONS
                    .with_label_values(&["moved_here"])
                    .inc();
                tracing::info!(%jid, conn = self.id, "session resumed from another edge");
                outputs
            }
            Err((state, why)) => {
                // The record already names this connection: the session ends here, and
                // what it held goes to the router like any ended session's.
                metrics::EDGE_SM_RESUMPTIONS
                    .with_label_values(&["refused"])
                    .inc();
                tracing::info!(%jid, conn = self.id, ?why, "resumption refused; the moved session ends");
                self.ctx.link.unbind(&jid, self.id, state.unacked).await;
                self.session.handle(Input::ResumeFailed(why))
            }
        }
    }

    /// A stream-managed session ended: everything it holds unacknowledged, then
    /// everything queued for it until its client's last stanzas are routed (replies to
    /// them included), in order, for the unbind. The queued ones' answers are held until
    /// that unbind is done and the mailbox stays open meanwhile (what arrives waits), so
    /// no sender's later stanza can be stored offline ahead of these; the caller answers
    /// them and then closes the mailbox. Resumptions waiting in it are told the session
    /// is gone.
    pub(super) async fn hand_back(
        &mut self,
        mailbox: &Mailbox,
    ) -> (Vec<Routed>, Vec<oneshot::Sender<Written>>) {
        let mut unacked = self.session.take_unacked();
        let mut held = Vec::new();
        // The session's own stanzas coming back are refused at once (see `unbind`).
        let own = self.session.jid().map(Jid::to_string);
        let mut take = |command: Command| match command {
            Command::Deliver(delivery) if delivery.stanza.from_attr() != own.as_deref() => {
                let Delivery {
                    stanza, written, ..
                } = *delivery;
                unacked.push(stanza);
                held.push(written);
            }
            other => refuse(other),
        };
        {
            let finish = self.finish_routing();
            tokio::pin!(finish);
            loop {
                tokio::select! {
                    () = &mut finish => break,
                    command = mailbox.recv() => match command {
                        Some(command) => take(command),
                        None => {
                            finish.as_mut().await;
                            break;
                        }
                    },
                }
            }
        }
        while let Some(command) = mailbox.try_recv() {
            take(command);
        }
        (unacked, held)
    }

    /// Unbinds the ended session, handing back `unacked`. What reaches the mailbox
    /// meanwhile has no stream left: it is refused once the unbind is done (so the router
    /// routes it as for a resource that is gone, after `unacked` is stored: order kept).
    /// Two kinds cannot wait that long, since the unbind is routed behind what caused
    /// them and would wait for them in turn: the session's own stanzas coming back (its
    /// unavailable presence echoed, RFC 6121 §4.5.2) are refused at once, and past
    /// [`UNBIND_PATIENCE`] everything is (another sender sharing the session's routing
    /// lane in one process).
    pub(super) async fn unbind(&mut self, mailbox: &Mailbox, jid: &Jid, unacked: Vec<Routed>) {
        let unbind = self.ctx.link.unbind(jid, self.id, unacked);
        tokio::pin!(unbind);
        let patience = tokio::time::sleep(UNBIND_PATIENCE);
        tokio::pin!(patience);
        let own = jid.to_string();
        let mut late = Vec::new();
        let mut waiting = true;
        loop {
            tokio::select! {
                () = &mut unbind => break,
                () = &mut patience, if waiting => {
                    waiting = false;
                    late.clear();
                }
                command = mailbox.recv() => match command {
                    Some(Command::Deliver(d)) if waiting && d.stanza.from_attr() != Some(&own) => {
                        late.push(d);
                    }
                    Some(command) => refuse(command),
                    None => {
                        unbind.as_mut().await;
                        break;
                    }
                },
            }
        }
        drop(late);
    }

    /// The stanza being routed is done: the next one the client sent, if any, starts.
    /// Their other outputs were for the stream that is gone (stanzas among them are in
    /// the session's queue and are resent on resumption).
    fn next_routing(&mut self) {
        self.routing = None;
        while let Some(output) = self.backlog.pop_front() {
            if let Output::Route(stanza, count) = output {
                self.routing = Some(self.route(stanza, count));
                return;
            }
        }
    }

    /// XEP-0198 §5 on a new connection: the session named by the SM-ID takes this
    /// connection over, if it is the authenticated account's; else `<failed/>`.
    pub(super) async fn resume(
        &mut self,
        previd: String,
        h: Option<u32>,
        account: Jid,
    ) -> Vec<Output> {
        let Some(holder) = self.ctx.connections.resumables.find(&previd, &account) else {
            return self.resume_from_elsewhere(&previd, h, &account).await;
        };
        let resuming = Box::new(Resuming {
            transport: std::mem::replace(&mut self.transport, Transport::Upgrading),
            session: std::mem::replace(
                &mut self.session,
                Session::new(self.ctx.session.clone(), None),
            ),
            h,
            ip: self.ip,
            open: self.open.take(),
        });
        let (answer, hear) = oneshot::channel();
        let (back, why) = match self.ctx.connections.hand_over(holder, resuming, answer) {
            Err(back) => {
                metrics::EDGE_SM_RESUMPTIONS
                    .with_label_values(&["not_found"])
                    .inc();
                (back, ResumeRefused::NotFound)
            }
            // Taken over: this task is done (its stand-in session ends unbound).
            Ok(()) => match hear.await {
                Ok(Some(refused)) => refused,
                Ok(None) => return self.session.handle(Input::PeerClosed),
                Err(_) => {
                    tracing::info!(
                        conn = self.id,
                        "the session ended while being resumed; closing"
                    );
                    return self.session.handle(Input::PeerClosed);
                }
            },
        };
        self.transport = back.transport;
        self.session = back.session;
        self.open = back.open;
        self.session.handle(Input::ResumeFailed(why))
    }
}

/// A session's JID for the log, as the other log lines write JIDs.
fn jid_of(session: &Session) -> String {
    session
        .jid()
        .map_or_else(|| "-".to_owned(), ToString::to_string)
}

/// How long a push notification request may take before the next one may start.
const NOTIFY_PATIENCE: Duration = Duration::from_secs(10);

/// How long deliveries that came during an unbind wait for it before they are refused.
const UNBIND_PATIENCE: Duration = Duration::from_secs(5);

/// A command for a session that is over: a delivery goes unanswered (undelivered), a
/// resumption or a move finds nothing.
fn refuse(command: Command) {
    match command {
        Command::Deliver(_) | Command::Terminate(_) | Command::Confirmed(_) => {}
        Command::Resume(resuming, answer) => {
            let _ = answer.send(Some((resuming, ResumeRefused::NotFound)));
        }
        Command::Export(answer) => {
            let _ = answer.send(None);
        }
    }
}

/// XEP-0357 for a detached session: the account's devices hear of the messages it queues
/// (their app may wake and resume), through the link's `NotifyDetached`. At most one
/// request per session is in flight (each given [`NOTIFY_PATIENCE`]): the messages that
/// arrive meanwhile make one more request, for the latest of them, once it is answered.
/// So a flood to a sleeping phone costs the link one request per round trip, not one per
/// message. The router still sends at most one notification per device per
/// `push.min_interval_secs`, so a burst usually wakes the phone once, for its first
/// message; the follow-up matters when that interval is short.
struct Notifier<F> {
    send: F,
    in_flight: Option<tokio::task::JoinHandle<()>>,
    latest: Option<Routed>,
}

impl<F, Fut> Notifier<F>
where
    F: Fn(Routed) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    fn new(send: F) -> Self {
        Self {
            send,
            in_flight: None,
            latest: None,
        }
    }

    fn message(&mut self, message: &Routed) {
        if self.busy() {
            metrics::EDGE_PUSH_COALESCED.inc();
            self.latest = Some(message.clone());
        } else {
            self.start(message.clone());
        }
    }

    fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The request in flight is answered (or failed; the router logs why); the latest
    /// message that waited, if any, goes next. Cancel-safe.
    async fn answered(&mut self) {
        if let Some(handle) = self.in_flight.as_mut() {
            let _ = handle.await;
        }
        self.in_flight = None;
        if let Some(message) = self.latest.take() {
            self.start(message);
        }
    }

    fn start(&mut self, message: Routed) {
        metrics::EDGE_PUSH_REQUESTS.inc();
        let request = (self.send)(message);
        self.in_flight = Some(tokio::spawn(async move {
            // A router that never answers must not silence the session's later messages.
            if tokio::time::timeout(NOTIFY_PATIENCE, request)
                .await
                .is_err()
            {
                tracing::warn!("a push notification request went unanswered");
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::sync::Semaphore;

    fn message(n: usize) -> Routed {
        Routed::Wire(format!("<message id='m{n}'/>").into())
    }

    /// A burst while a request is in flight makes exactly one more request, for the
    /// last message; a message after that starts one of its own.
    #[tokio::test]
    async fn xep0357_a_burst_to_a_detached_session_is_one_request_in_flight_and_one_for_the_latest()
    {
        let gate = Arc::new(Semaphore::new(0));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (g, s) = (gate.clone(), sent.clone());
        let mut push = Notifier::new(move |m: Routed| {
            let (gate, sent) = (g.clone(), s.clone());
            async move {
                sent.lock().unwrap().push(m);
                gate.acquire().await.expect("open").forget();
            }
        });
        let ids = |sent: &Mutex<Vec<Routed>>| sent.lock().unwrap().len();
        push.message(&message(0));
        for n in 1..=10_000 {
            push.message(&message(n));
        }
        tokio::task::yield_now().await;
        assert_eq!(ids(&sent), 1, "one request while the first is in flight");
        assert!(push.busy());
        gate.add_permits(1);
        push.answered().await;
        tokio::task::yield_now().await;
        assert_eq!(ids(&sent), 2, "the waiting burst is one more request");
        assert_eq!(
            sent.lock().unwrap()[1],
            message(10_000),
            "for the latest message"
        );
        gate.add_permits(1);
        push.answered().await;
        assert!(!push.busy(), "nothing waited behind the second");
        push.message(&message(10_001));
        tokio::task::yield_now().await;
        assert_eq!(ids(&sent), 3, "a later message starts its own request");
        gate.add_permits(1);
        push.answered().await;
        assert!(!push.busy());
    }
}
