//! A connection's mailbox: what other tasks ask of the connection, in order and bounded.
//! Many producers (deliveries from the router), one consumer (the connection's task).
//!
//! Written for idle cost: a lock, a queue that holds no allocation while empty and a
//! wake-up slot, about a hundred bytes per connection. A tokio channel costs ~0.9 KiB
//! (cache-padded shared state and a preallocated block of 32 slots), which was 7% of an
//! idle TLS session.

use crate::connections::Command;
use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::Notify;

/// Queue capacity kept after a burst; beyond it an emptied queue gives its memory back.
const KEEP_CAPACITY: usize = 16;

#[derive(Debug)]
pub(crate) struct Mailbox {
    capacity: usize,
    state: Mutex<State>,
    ready: Notify,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Command>,
    closed: bool,
}

/// Why a command was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The connection is not keeping up (a slow consumer).
    Full,
    /// The connection is gone or being closed.
    Closed,
}

impl Mailbox {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            state: Mutex::default(),
            ready: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn try_send(&self, command: Command) -> Result<(), Refused> {
        let mut state = self.lock();
        if state.closed {
            return Err(Refused::Closed);
        }
        if state.queue.len() >= self.capacity {
            return Err(Refused::Full);
        }
        state.queue.push_back(command);
        drop(state);
        // With no waiter this leaves a permit, so a consumer between its check and its
        // wait still wakes.
        self.ready.notify_one();
        Ok(())
    }

    /// Queues a command past the capacity (unless closed): for the one last command a
    /// connection must get even when it is behind, such as a shutdown.
    pub(crate) fn force(&self, command: Command) {
        let mut state = self.lock();
        if !state.closed {
            state.queue.push_back(command);
            drop(state);
            self.ready.notify_one();
        }
    }

    /// The next command without waiting.
    pub(crate) fn try_recv(&self) -> Option<Command> {
        let mut state = self.lock();
        let command = state.queue.pop_front();
        if state.queue.is_empty() && state.queue.capacity() > KEEP_CAPACITY {
            state.queue = VecDeque::new();
        }
        command
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

    /// Refuses further commands; those already queued are still received.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use switchyard_core::StreamCondition;

    fn terminate() -> Command {
        Command::Terminate(StreamCondition::PolicyViolation)
    }

    #[tokio::test]
    async fn bounded_ordered_and_drained_after_close() {
        let mailbox = Mailbox::new(2);
        let conditions = [
            StreamCondition::Conflict,
            StreamCondition::SystemShutdown,
            StreamCondition::PolicyViolation,
        ];
        for c in &conditions[..2] {
            assert_eq!(mailbox.try_send(Command::Terminate(*c)), Ok(()));
        }
        assert_eq!(mailbox.try_send(terminate()), Err(Refused::Full));
        mailbox.force(Command::Terminate(conditions[2]));
        mailbox.close();
        assert_eq!(mailbox.try_send(terminate()), Err(Refused::Closed));
        mailbox.force(terminate());
        for c in conditions {
            assert!(matches!(mailbox.recv().await, Some(Command::Terminate(got)) if got == c));
        }
        assert!(mailbox.recv().await.is_none(), "closed and drained");
    }

    #[tokio::test]
    async fn a_waiting_consumer_wakes_for_each_command_and_for_close() {
        let mailbox = Arc::new(Mailbox::new(8));
        let consumer = {
            let mailbox = mailbox.clone();
            tokio::spawn(async move {
                let mut received = 0;
                while mailbox.recv().await.is_some() {
                    received += 1;
                }
                received
            })
        };
        for _ in 0..100 {
            while mailbox.try_send(terminate()) == Err(Refused::Full) {
                tokio::task::yield_now().await;
            }
            tokio::task::yield_now().await;
        }
        mailbox.close();
        let received = tokio::time::timeout(std::time::Duration::from_secs(5), consumer)
            .await
            .expect("the consumer woke for every command and for close")
            .unwrap();
        assert_eq!(received, 100);
    }
}
