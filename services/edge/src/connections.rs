//! The live connections of this edge: a bounded mailbox per connection, found by id.
//! A full mailbox means a slow consumer; it is closed rather than allowed to grow.

use crate::mailbox::{Mailbox, Refused};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use switchyard_core::{Element, Jid, StreamCondition};
use switchyard_telemetry as metrics;

/// What a connection's task is asked to do.
#[derive(Debug)]
pub enum Command {
    /// Boxed: a queued command stays small whatever the stanza.
    Deliver(Box<Element>),
    Terminate(StreamCondition),
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
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Set by [`Connections::shut_down`]: a connection registering later ends at once.
    shutting_down: AtomicBool,
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

    pub(crate) fn register(&self, id: u64, mailbox: Arc<Mailbox>) {
        lock(&self.mailboxes).insert(id, mailbox.clone());
        if self.shutting_down.load(Ordering::SeqCst) {
            mailbox.force(Command::Terminate(StreamCondition::SystemShutdown));
        }
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

    pub(crate) fn bound(&self, id: u64, jid: Jid) {
        lock(&self.bound).insert(
            id,
            BoundSession {
                jid,
                presence: None,
            },
        );
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

    pub(crate) fn release(&self, id: u64, ip: IpAddr) {
        if let Some(mailbox) = lock(&self.mailboxes).remove(&id) {
            mailbox.close();
        }
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

    /// Queues a command; `false` when the connection is gone. A full mailbox closes the
    /// connection as a slow consumer (`policy-violation`).
    pub fn send(&self, id: u64, command: Command) -> bool {
        let Some(mailbox) = lock(&self.mailboxes).get(&id).cloned() else {
            return false;
        };
        match mailbox.try_send(command) {
            Ok(()) => true,
            Err(Refused::Full) => {
                tracing::warn!(conn = id, "slow consumer: mailbox full, closing");
                metrics::EDGE_SLOW_CONSUMERS.inc();
                lock(&self.mailboxes).remove(&id);
                // The task drains what is queued, finds the mailbox closed and ends the
                // stream with `policy-violation`.
                mailbox.close();
                false
            }
            Err(Refused::Closed) => false,
        }
    }

    /// Connections with a live mailbox (for the shutdown log line).
    pub(crate) fn open(&self) -> usize {
        lock(&self.mailboxes).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::ns;

    fn delivery() -> Command {
        Command::Deliver(Box::new(Element::new("message", ns::CLIENT)))
    }

    fn is_terminate(command: Option<Command>, condition: StreamCondition) -> bool {
        matches!(command, Some(Command::Terminate(c)) if c == condition)
    }

    #[tokio::test]
    async fn a_full_mailbox_closes_the_connection_as_a_slow_consumer() {
        let connections = Connections::default();
        let mailbox = Arc::new(Mailbox::new(2));
        connections.register(7, mailbox.clone());
        assert!(connections.send(7, delivery()) && connections.send(7, delivery()));
        assert!(!connections.send(7, delivery()), "full: slow consumer");
        assert!(!connections.send(7, delivery()), "and gone from then on");
        assert!(mailbox.recv().await.is_some() && mailbox.recv().await.is_some());
        assert!(
            mailbox.recv().await.is_none(),
            "the task sees its mailbox closed"
        );
    }

    #[tokio::test]
    async fn shutdown_reaches_full_mailboxes_and_later_registrations() {
        let connections = Connections::default();
        let busy = Arc::new(Mailbox::new(1));
        connections.register(1, busy.clone());
        assert!(connections.send(1, delivery()));
        connections.shut_down();
        assert!(matches!(busy.recv().await, Some(Command::Deliver(_))));
        assert!(is_terminate(
            busy.recv().await,
            StreamCondition::SystemShutdown
        ));
        let late = Arc::new(Mailbox::new(1));
        connections.register(2, late.clone());
        assert!(is_terminate(
            late.recv().await,
            StreamCondition::SystemShutdown
        ));
    }
}
