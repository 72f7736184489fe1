//! The live connections of this edge: a bounded mailbox per connection, found by id.
//! A delivery to a full mailbox waits for room (see [`crate::mailbox`]); only a
//! connection that stays stuck past the mailbox's patience is closed as a slow consumer,
//! and the stanza that did not fit goes back to the caller, never lost.

use crate::mailbox::{Mailbox, MailboxLimits, ProcessBudget};
use crate::resume::Resuming;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use switchyard_core::session::SmState;
use switchyard_core::{Jid, Routed, StreamCondition};
use switchyard_telemetry as metrics;
use tokio::sync::oneshot;

/// What a connection's task is asked to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// Boxed: a queued command stays small whatever the stanza.
    Deliver(Box<Delivery>),
    Terminate(StreamCondition),
    /// XEP-0198: a new connection resumes this session (see [`crate::resume`]).
    Resume(Box<Resuming>, crate::resume::Answer),
    /// XEP-0198: the session moves to another edge; its state, and it ends here.
    Export(oneshot::Sender<Option<SmState>>),
    /// XEP-0198: a router read the answers to deliveries that wait for it, the stanzas
    /// the session numbered these (see [`Delivery::confirmed`]).
    Confirmed(Box<[u32]>),
}

/// A stanza for the client, and who hears once it is written.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub stanza: Routed,
    /// Answered after the write that carried the stanza succeeded; dropped unanswered
    /// when it never will be (the connection ended first).
    pub written: oneshot::Sender<Written>,
    /// The deliverer will confirm it read the answer ([`Command::Confirmed`]): a
    /// resumable session writes the stanza only then, so that no client reads a stanza
    /// whose number died with this process unread (a cluster router; see the README's
    /// cross-edge resumption).
    pub confirmed: bool,
}

/// A delivery the connection took: written, or (XEP-0198) queued in its session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// The number a resumable session gave the stanza (its `h` once the client has it).
    pub sm_seq: Option<u32>,
}

/// A bound session as the edge knows it: enough to register it again after the
/// registry lost its data.
#[derive(Debug, Clone)]
pub struct BoundSession {
    pub jid: Jid,
    /// The last presence it broadcast, while available, serialized: one allocation per
    /// session instead of a tree, for a stanza read back only after a registry loss.
    pub presence: Option<String>,
}

#[derive(Debug, Default)]
pub struct Connections {
    next_id: AtomicU64,
    mailboxes: Mutex<HashMap<u64, Arc<Mailbox>>>,
    bound: Mutex<HashMap<u64, BoundSession>>,
    /// Full JIDs whose bind is under way, by connection id: a registry reconcile must
    /// not remove a session whose bind may land after it looked.
    claims: Mutex<HashMap<u64, Jid>>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Bytes queued in all mailboxes together.
    budget: Arc<ProcessBudget>,
    /// Set by [`Connections::shut_down`]: a connection registering later ends at once.
    shutting_down: AtomicBool,
    /// XEP-0198: what the routers must hear of the resumable sessions.
    pub sm_progress: crate::progress::Progress,
    /// XEP-0198 sessions that can be resumed, by SM-ID.
    pub(crate) resumables: crate::resume::Resumables,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Connections {
    /// Counts a connection from `ip`; `None` when the per-IP cap is reached.
    pub(crate) fn admit(&self, ip: IpAddr, max_per_ip: usize) -> Option<u64> {
        let mut per_ip = lock(&self.per_ip);
        let count = per_ip.entry(ip).or_default();
        if *count >= max_per_ip {
            return None;
        }
        *count += 1;
        Some(self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Opens the mailbox of an admitted connection.
    pub(crate) fn register(&self, id: u64, limits: MailboxLimits) -> Arc<Mailbox> {
        let mailbox = Arc::new(Mailbox::new(limits, self.budget.clone()));
        lock(&self.mailboxes).insert(id, mailbox.clone());
        if self.shutting_down.load(Ordering::SeqCst) {
            mailbox.force(Command::Terminate(StreamCondition::SystemShutdown));
        }
        mailbox
    }

    /// Ends every session with `system-shutdown` (RFC 6120 §4.9.3.22), through each
    /// mailbox and past its capacity, so that a connection waiting for anything else
    /// carries no shutdown watch of its own.
    pub(crate) fn shut_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        for mailbox in lock(&self.mailboxes).values() {
            mailbox.force(Command::Terminate(StreamCondition::SystemShutdown));
        }
    }

    /// A bind of `jid` is starting on connection `id`; [`bound`](Self::bound) or
    /// [`unclaim`](Self::unclaim) follows.
    pub(crate) fn claim(&self, id: u64, jid: Jid) {
        lock(&self.claims).insert(id, jid);
    }

    /// The bind failed.
    pub(crate) fn unclaim(&self, id: u64) {
        lock(&self.claims).remove(&id);
    }

    /// The bind succeeded: bound first, then unclaimed, so that [`held`](Self::held)
    /// never misses it.
    pub(crate) fn bound(&self, id: u64, jid: Jid) {
        metrics::EDGE_SESSIONS.inc();
        lock(&self.bound).insert(
            id,
            BoundSession {
                jid,
                presence: None,
            },
        );
        lock(&self.claims).remove(&id);
    }

    /// Records a broadcast presence (`None` after unavailable).
    pub(crate) fn presence(&self, id: u64, presence: Option<String>) {
        if let Some(s) = lock(&self.bound).get_mut(&id) {
            s.presence = presence;
        }
    }

    /// Every bound session on this edge, by connection id.
    pub fn sessions(&self) -> Vec<(u64, BoundSession)> {
        lock(&self.bound)
            .iter()
            .map(|(id, s)| (*id, s.clone()))
            .collect()
    }

    /// Every session this edge holds or is binding, as the registry names them.
    pub fn held(&self) -> Vec<(Jid, u64)> {
        let bound = lock(&self.bound);
        let claims = lock(&self.claims);
        bound
            .iter()
            .map(|(id, s)| (s.jid.clone(), *id))
            .chain(claims.iter().map(|(id, jid)| (jid.clone(), *id)))
            .collect()
    }

    /// Forgets a finished connection. Deliveries still queued for it were never written:
    /// dropping them tells their producers so.
    pub(crate) fn release(&self, id: u64, ip: IpAddr) {
        if let Some(mailbox) = lock(&self.mailboxes).remove(&id) {
            mailbox.close_and_clear();
        }
        lock(&self.claims).remove(&id);
        if lock(&self.bound).remove(&id).is_some() {
            metrics::EDGE_SESSIONS.dec();
        }
        let mut per_ip = lock(&self.per_ip);
        if let Some(count) = per_ip.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&ip);
            }
        }
    }

    fn mailbox(&self, id: u64) -> Option<Arc<Mailbox>> {
        lock(&self.mailboxes).get(&id).cloned()
    }

    /// Ends a connection's stream with `condition`, past the mailbox's bounds (it is the
    /// last thing the connection is asked to do).
    pub fn terminate(&self, id: u64, condition: StreamCondition) {
        if let Some(mailbox) = self.mailbox(id) {
            mailbox.force(Command::Terminate(condition));
        }
    }

    /// XEP-0198: a router read the answers that numbered these stanzas of connection
    /// `id` (see [`Delivery::confirmed`]); one command past the mailbox's bounds, as the
    /// stanzas they release are already in the session. Ignored once the connection is
    /// gone.
    pub fn confirm(&self, id: u64, seqs: impl IntoIterator<Item = u32>) {
        if let Some(mailbox) = self.mailbox(id) {
            mailbox.force(Command::Confirmed(seqs.into_iter().collect()));
        }
    }

    /// Hands a resuming connection to connection `id`, past the mailbox's bounds; back
    /// when that connection is gone.
    pub(crate) fn hand_over(
        &self,
        id: u64,
        resuming: Box<Resuming>,
        answer: crate::resume::Answer,
    ) -> Result<(), Box<Resuming>> {
        let Some(mailbox) = self.mailbox(id) else {
            return Err(resuming);
        };
        match mailbox.offer(Command::Resume(resuming, answer)) {
            Ok(()) => Ok(()),
            Err(Command::Resume(resuming, _)) => Err(resuming),
            Err(_) => unreachable!("offered back as given"),
        }
    }

    /// XEP-0198: the connection holding the resumable session `previd`, if it is
    /// `account`'s (another edge asks, through a router, before a session moves).
    pub fn locate(&self, previd: &str, account: &Jid) -> Option<u64> {
        self.resumables.find(previd, account)
    }

    /// XEP-0198: takes resumable session `previd` away from connection `id`, which ends
    /// without unbinding (the session lives on at another edge); `None` when it holds
    /// no such session (any more).
    pub async fn export(&self, id: u64, previd: &str) -> Option<SmState> {
        let mailbox = self.mailbox(id)?;
        let (answer, hear) = oneshot::channel();
        mailbox.offer(Command::Export(answer)).ok()?;
        let state = hear.await.ok().flatten()?;
        (state.id == previd).then_some(state)
    }

    /// A connection now counts as coming from `to` (it took over a resuming connection
    /// from there).
    pub(crate) fn move_ip(&self, from: IpAddr, to: IpAddr) {
        let mut per_ip = lock(&self.per_ip);
        *per_ip.entry(to).or_default() += 1;
        if let Some(count) = per_ip.get_mut(&from) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&from);
            }
        }
    }

    /// Hands a stanza to a connection and waits until it is written to the socket;
    /// `None` when it was not (the connection is gone or ended first), and the caller
    /// routes it elsewhere. While the connection's mailbox is full the caller waits, and
    /// through it the sender: pushback, not a closed recipient. Only a connection that
    /// neither makes room nor writes within the mailbox's patience is closed as a slow
    /// consumer (what it still holds is dropped unwritten, so its producers reroute).
    /// `confirmed`: see [`Delivery::confirmed`].
    pub async fn deliver(&self, id: u64, stanza: Routed, confirmed: bool) -> Option<Written> {
        self.deliver_all(id, vec![stanza], confirmed).await[0]
    }

    /// Hands stanzas to one connection in order, as [`Connections::deliver`] does one:
    /// all are queued (waiting for room as needed) before any is waited for, so they can
    /// go out in one write. Whether each was written; they are written in order, so the
    /// written ones are a prefix. The patience applies to each step: a connection that makes
    /// progress is never closed, one that makes none for the patience is.
    pub async fn deliver_all(
        &self,
        id: u64,
        stanzas: Vec<Routed>,
        confirmed: bool,
    ) -> Vec<Option<Written>> {
        let count = stanzas.len();
        let Some(mailbox) = self.mailbox(id) else {
            return vec![None; count];
        };
        let patience = mailbox.patience();
        let mut heard = Vec::with_capacity(count);
        let mut stuck = false;
        for stanza in stanzas {
            let (written, hear) = oneshot::channel();
            let delivery = Box::new(Delivery {
                stanza,
                written,
                confirmed,
            });
            match tokio::time::timeout(patience, mailbox.deliver(delivery)).await {
                Ok(Ok(())) => heard.push(hear),
                Ok(Err(_closed)) => break,
                Err(_) => {
                    stuck = true;
                    break;
                }
            }
        }
        let mut written = Vec::with_capacity(count);
        for hear in heard {
            match tokio::time::timeout(patience, hear).await {
                Ok(Ok(taken)) => written.push(Some(taken)),
                Ok(Err(_)) => break,
                Err(_) => {
                    stuck = true;
                    break;
                }
            }
        }
        if stuck {
            tracing::warn!(
                conn = id,
                "slow consumer: nothing written within the delivery patience, closing"
            );
            metrics::EDGE_SLOW_CONSUMERS.inc();
            mailbox.force(Command::Terminate(StreamCondition::PolicyViolation));
            mailbox.close();
        }
        written.resize(count, None);
        written
    }

    /// Connections with a live mailbox (for the shutdown log line).
    pub(crate) fn open(&self) -> usize {
        lock(&self.mailboxes).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use switchyard_core::ns;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn limits(stanzas: usize) -> MailboxLimits {
        MailboxLimits {
            stanzas,
            patience: Duration::from_secs(60),
            ..MailboxLimits::default()
        }
    }

    fn message() -> Routed {
        switchyard_core::Element::new("message", ns::CLIENT).into()
    }

    /// Plays the connection's task: takes one command and, for a delivery, answers it
    /// as written.
    async fn write_one(mailbox: &Mailbox) -> bool {
        match mailbox.recv().await {
            Some(Command::Deliver(d)) => d.written.send(Written::default()).is_ok(),
            _ => false,
        }
    }

    /// What a registry reconcile is told this edge holds: a session from the moment its
    /// bind starts until its connection is released, never missing in between.
    /// Held by tests that bind sessions: the sessions gauge is one per process.
    static GAUGE: Mutex<()> = Mutex::new(());

    #[test]
    fn held_names_a_session_from_its_bind_until_its_release() {
        let _gauge = lock(&GAUGE);
        let connections = Connections::default();
        let id = connections.admit(IP, 10).unwrap();
        let jid = Jid::parse("a@localhost/r").unwrap();
        assert!(connections.held().is_empty());
        connections.claim(id, jid.clone());
        assert_eq!(connections.held(), [(jid.clone(), id)], "binding");
        connections.bound(id, jid.clone());
        assert_eq!(connections.held(), [(jid.clone(), id)], "bound, once");
        connections.release(id, IP);
        assert!(connections.held().is_empty(), "released");
        let other = connections.admit(IP, 10).unwrap();
        connections.claim(other, jid);
        connections.unclaim(other);
        assert!(connections.held().is_empty(), "a failed bind");
    }

    #[tokio::test]
    async fn a_delivery_succeeds_only_once_written() {
        let connections = Arc::new(Connections::default());
        let id = connections.admit(IP, 10).unwrap();
        let mailbox = connections.register(id, limits(4));
        let sent = tokio::spawn({
            let connections = connections.clone();
            async move { connections.deliver(id, message(), false).await }
        });
        tokio::task::yield_now().await;
        assert!(!sent.is_finished(), "queued, not yet written");
        assert!(write_one(&mailbox).await);
        assert!(sent.await.unwrap().is_some(), "written");
    }

    #[tokio::test]
    async fn deliveries_to_a_released_connection_fail_queued_ones_included() {
        let connections = Arc::new(Connections::default());
        let id = connections.admit(IP, 10).unwrap();
        let _mailbox = connections.register(id, limits(4));
        let sent = tokio::spawn({
            let connections = connections.clone();
            async move { connections.deliver(id, message(), false).await }
        });
        tokio::task::yield_now().await;
        connections.release(id, IP);
        assert!(
            sent.await.unwrap().is_none(),
            "queued, never written: not delivered"
        );
        assert!(
            connections.deliver(id, message(), false).await.is_none(),
            "gone"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_stops_writing_is_closed_after_the_patience() {
        let connections = Arc::new(Connections::default());
        let id = connections.admit(IP, 10).unwrap();
        let mailbox = connections.register(id, limits(1));
        let started = tokio::time::Instant::now();
        assert!(
            connections.deliver(id, message(), false).await.is_none(),
            "never written"
        );
        assert!(
            started.elapsed() >= Duration::from_secs(60),
            "waited the patience"
        );
        assert!(matches!(mailbox.recv().await, Some(Command::Deliver(_))));
        assert!(matches!(
            mailbox.recv().await,
            Some(Command::Terminate(StreamCondition::PolicyViolation))
        ));
        assert!(mailbox.recv().await.is_none(), "closed as a slow consumer");
        assert!(
            connections.deliver(id, message(), false).await.is_none(),
            "refused from then on"
        );
    }

    #[tokio::test]
    async fn shutdown_reaches_full_mailboxes_and_later_registrations() {
        let connections = Connections::default();
        let busy = connections.register(1, limits(1));
        connections.terminate(1, StreamCondition::Conflict);
        connections.shut_down();
        assert!(matches!(
            busy.recv().await,
            Some(Command::Terminate(StreamCondition::Conflict))
        ));
        assert!(matches!(
            busy.recv().await,
            Some(Command::Terminate(StreamCondition::SystemShutdown))
        ));
        let late = connections.register(2, limits(1));
        assert!(matches!(
            late.recv().await,
            Some(Command::Terminate(StreamCondition::SystemShutdown))
        ));
    }

    #[tokio::test]
    async fn the_sessions_gauge_returns_to_rest() {
        let _gauge = lock(&GAUGE);
        let connections = Connections::default();
        let before = metrics::EDGE_SESSIONS.get();
        let id = connections.admit(IP, 10).unwrap();
        connections.register(id, limits(1));
        connections.bound(id, Jid::parse("a@localhost/r").unwrap());
        assert_eq!(metrics::EDGE_SESSIONS.get(), before + 1);
        connections.release(id, IP);
        assert_eq!(metrics::EDGE_SESSIONS.get(), before);
    }
}
