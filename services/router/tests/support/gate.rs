//! Holds back deliveries of stored messages (those carrying a XEP-0203 `<delay/>`) to one
//! connection while closed, as a slow link would hold an offline flush: a test can act
//! while a flush is in progress and see what overtakes what. Other stanzas always pass.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::sync::watch;

#[derive(Debug)]
pub struct Gate {
    open: watch::Sender<bool>,
    /// Deliveries waiting at the closed gate.
    waiting: watch::Sender<usize>,
    /// Stored messages still let through before the closed gate holds one.
    allowance: AtomicUsize,
    /// The connection whose stored messages are held.
    conn: AtomicU64,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            open: watch::Sender::new(true),
            waiting: watch::Sender::new(0),
            allowance: AtomicUsize::new(0),
            conn: AtomicU64::new(0),
        }
    }
}

impl Gate {
    /// Lets `n` more stored messages to `conn` through, then holds the rest until
    /// [`Gate::open`].
    pub fn close_after(&self, conn: u64, n: usize) {
        self.allowance.store(n, Ordering::SeqCst);
        self.conn.store(conn, Ordering::SeqCst);
        self.open.send_replace(false);
    }

    pub fn open(&self) {
        self.open.send_replace(true);
    }

    /// Returns once a delivery is held at the gate.
    pub async fn holding(&self) {
        let mut waiting = self.waiting.subscribe();
        waiting.wait_for(|n| *n > 0).await.expect("gate alive");
    }

    /// Called by the edge before it writes a stored message.
    pub(super) async fn pass(&self, conn: u64) {
        let mut open = self.open.subscribe();
        if *open.borrow_and_update() || conn != self.conn.load(Ordering::SeqCst) {
            return;
        }
        let spend = |n: usize| n.checked_sub(1);
        if self
            .allowance
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, spend)
            .is_ok()
        {
            return;
        }
        self.waiting.send_modify(|n| *n += 1);
        open.wait_for(|o| *o).await.expect("gate alive");
        self.waiting.send_modify(|n| *n -= 1);
    }
}
