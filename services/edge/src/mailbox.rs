//! A connection's mailbox: what other tasks ask of the connection, in order and bounded.
//! Many producers (deliveries from the router), one consumer (the connection's task).
//!
//! Bounded in stanzas and in bytes, per connection and per process (STYLE §14). What
//! does not fit is decided here, in one place: a delivery *waits* for room (the producer
//! is pushed back, so a healthy consumer is never closed for being busy) until the
//! connection closes; [`crate::Connections::deliver`] bounds the wait by the patience.
//! A delivery carries a one-shot that the connection answers once the stanza is written;
//! deliveries still queued when the connection ends are dropped unanswered, which tells
//! their producers to route them elsewhere (other resources, offline storage, an error
//! to the sender). Nothing is lost silently.
//!
//! One stanza is always accepted into an empty mailbox, whatever its size, so a stanza
//! larger than the byte bounds is still delivered, one at a time.
//!
//! Written for idle cost: a lock, a queue that holds no allocation while empty and two
//! wake-up slots, about a hundred and fifty bytes per connection. A tokio channel costs
//! ~0.9 KiB (cache-padded shared state and a preallocated block of 32 slots).

use crate::connections::{Command, Delivery};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard_telemetry as metrics;
use tokio::sync::Notify;

/// Queue capacity kept after a burst; beyond it an emptied queue gives its memory back.
const KEEP_CAPACITY: usize = 16;

/// How much one connection, and the process as a whole, may hold queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxLimits {
    /// Stanzas queued for one connection.
    pub stanzas: usize,
    /// Bytes (serialized size, estimated) queued for one connection.
    pub bytes: usize,
    /// Bytes queued for all connections of this process together.
    pub process_bytes: usize,
    /// How long a delivery may wait for room and for its write before the connection is
    /// treated as stuck and closed as a slow consumer.
    pub patience: Duration,
}

impl Default for MailboxLimits {
    fn default() -> Self {
        Self {
            stanzas: 1024,
            bytes: 1024 * 1024,
            process_bytes: 512 * 1024 * 1024,
            patience: Duration::from_secs(60),
        }
    }
}

/// Bytes queued in every mailbox of a process, shared by its mailboxes.
#[derive(Debug, Default)]
pub(crate) struct ProcessBudget(AtomicUsize);

#[derive(Debug)]
pub(crate) struct Mailbox {
    limits: MailboxLimits,
    budget: Arc<ProcessBudget>,
    state: Mutex<State>,
    /// Wakes the consumer.
    ready: Notify,
    /// Wakes producers waiting for room.
    room: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// Commands with the bytes each was counted as.
    queue: VecDeque<(Command, usize)>,
    bytes: usize,
    closed: bool,
}

/// A delivery was not queued: the connection is gone or being closed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Closed;

impl Mailbox {
    pub(crate) fn new(limits: MailboxLimits, budget: Arc<ProcessBudget>) -> Self {
        Self {
            limits,
            budget,
            state: Mutex::default(),
            ready: Notify::new(),
            room: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `bytes` more fit: always into an empty queue, otherwise within the
    /// connection's stanza and byte bounds and the process's byte bound.
    fn fits(&self, state: &State, bytes: usize) -> bool {
        state.queue.is_empty()
            || (state.queue.len() < self.limits.stanzas
                && state.bytes + bytes <= self.limits.bytes
                && self.budget.0.load(Ordering::Relaxed) + bytes <= self.limits.process_bytes)
    }

    fn push(&self, mut state: std::sync::MutexGuard<'_, State>, command: Command, bytes: usize) {
        state.queue.push_back((command, bytes));
        state.bytes += bytes;
        drop(state);
        self.budget.0.fetch_add(bytes, Ordering::Relaxed);
        metrics::EDGE_MAILBOX_BYTES.add(bytes as i64);
        // With no waiter this leaves a permit, so a consumer between its check and its
        // wait still wakes.
        self.ready.notify_one();
    }

    /// Queues the delivery in `slot` if it fits now: `None` while it has to wait.
    fn try_push(
        &self,
        slot: &mut Option<Box<Delivery>>,
        bytes: usize,
    ) -> Option<Result<(), Closed>> {
        let state = self.lock();
        if state.closed {
            return Some(Err(Closed));
        }
        if !self.fits(&state, bytes) {
            return None;
        }
        let delivery = slot.take()?;
        self.push(state, Command::Deliver(delivery), bytes);
        Some(Ok(()))
    }

    /// Queues a delivery, waiting for room while there is none: the producer is pushed
    /// back. Ends only when queued or closed; the caller bounds the wait.
    pub(crate) async fn deliver(&self, delivery: Box<Delivery>) -> Result<(), Closed> {
        let bytes = delivery.stanza.estimated_bytes();
        let mut slot = Some(delivery);
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if let Some(result) = self.try_push(&mut slot, bytes) {
                return result;
            }
            room.await;
        }
    }

    /// Queues a command past the bounds (unless closed): for the one last command a
    /// connection must get even when it is behind, such as a shutdown.
    pub(crate) fn force(&self, command: Command) {
        let _ = self.offer(command);
    }

    /// Queues a command past the bounds, or gives it back when the mailbox is closed.
    pub(crate) fn offer(&self, command: Command) -> Result<(), Command> {
        let state = self.lock();
        if state.closed {
            return Err(command);
        }
        self.push(state, command, 0);
        Ok(())
    }

    /// The next command without waiting.
    pub(crate) fn try_recv(&self) -> Option<Command> {
        let mut state = self.lock();
        let (command, bytes) = state.queue.pop_front()?;
        state.bytes -= bytes;
        if state.queue.is_empty() && state.queue.capacity() > KEEP_CAPACITY {
            state.queue = VecDeque::new();
        }
        drop(state);
        self.release(bytes);
        self.room.notify_one();
        Some(command)
    }

    fn release(&self, bytes: usize) {
        self.budget.0.fetch_sub(bytes, Ordering::Relaxed);
        metrics::EDGE_MAILBOX_BYTES.sub(bytes as i64);
    }

    /// The next command; `None` once the mailbox is closed and drained. Cancel-safe: the
    /// commands stay in the queue until returned.
    pub(crate) async fn recv(&self) -> Option<Command> {
        loop {
            if let Some(command) = self.try_recv() {
                return Some(command);
            }
            if self.lock().closed {
                return None;
            }
            self.ready.notified().await;
        }
    }

    /// Refuses further commands; those already queued are still received. Producers
    /// waiting for room learn at once that the connection is closing.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
        self.room.notify_waiters();
    }

    /// Closes the mailbox and drops what is queued: each delivery's producer hears that
    /// it was never written, and routes it elsewhere.
    pub(crate) fn close_and_clear(&self) {
        let mut state = self.lock();
        state.closed = true;
        let queued = std::mem::take(&mut state.queue);
        let bytes = std::mem::take(&mut state.bytes);
        drop(state);
        drop(queued);
        self.release(bytes);
        self.ready.notify_one();
        self.room.notify_waiters();
    }

    pub(crate) fn patience(&self) -> Duration {
        self.limits.patience
    }
}

#[cfg(test)]
mod tests;
