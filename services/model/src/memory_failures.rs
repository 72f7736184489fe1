//! [`LoginFailures`] in this process's memory: the all-in-one mode's throttle state, and a
//! router's when no Redis is configured (one router only).
//!
//! Bounded: at most `capacity` counts (each failure touches two: the account's from the
//! network, and the network's). When a new count finds the table full, the one whose last
//! failure is oldest goes first, so a flood of new keys evicts stale ones and the newest
//! failures are always counted, where refusing to track new keys would let an attacker
//! fill the table and then go uncounted. Time is tokio's clock, so tests can pause it.

use crate::{FailureCount, LoginFailureCounts, LoginFailures, StorageError};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;
use switchyard_core::Jid;
use tokio::time::Instant;

/// The default bound on counts held.
pub const DEFAULT_CAPACITY: usize = 100_000;

#[derive(Debug)]
struct Count {
    failures: u32,
    expires: Instant,
    /// When it last changed, in the table's own order (a key of `Table::by_age`).
    stamp: u64,
}

#[derive(Debug, Default)]
struct Table {
    counts: HashMap<String, Count>,
    /// Every key by the stamp of its last failure, oldest first.
    by_age: BTreeMap<u64, String>,
    next_stamp: u64,
}

impl Table {
    /// The live count of `key`; an expired one is removed.
    fn get(&mut self, key: &str, now: Instant) -> FailureCount {
        match self.counts.get(key) {
            Some(c) if c.expires > now => FailureCount {
                failures: c.failures,
                expires_in: c.expires - now,
            },
            Some(_) => {
                self.remove(key);
                FailureCount::default()
            }
            None => FailureCount::default(),
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some(c) = self.counts.remove(key) {
            self.by_age.remove(&c.stamp);
        }
    }

    /// One more failure on `key`, lasting `window`; evicts the oldest counts for room.
    fn add(
        &mut self,
        key: String,
        window: Duration,
        now: Instant,
        capacity: usize,
    ) -> FailureCount {
        let before = self.get(&key, now).failures;
        self.remove(&key);
        while self.counts.len() >= capacity.max(1) {
            let Some((_, oldest)) = self.by_age.pop_first() else {
                break;
            };
            self.counts.remove(&oldest);
        }
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        let failures = before.saturating_add(1);
        self.by_age.insert(stamp, key.clone());
        self.counts.insert(
            key,
            Count {
                failures,
                expires: now + window,
                stamp,
            },
        );
        FailureCount {
            failures,
            expires_in: window,
        }
    }
}

/// Login failures held in memory, at most `capacity` counts.
#[derive(Debug)]
pub struct MemoryLoginFailures {
    capacity: usize,
    table: Mutex<Table>,
}

impl Default for MemoryLoginFailures {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl MemoryLoginFailures {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            table: Mutex::new(Table::default()),
        }
    }

    /// How many counts are held (expired ones until they are next looked at).
    pub fn len(&self) -> usize {
        self.lock().counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The table keys of one attempt: the account's from the network, and the network's.
/// NUL cannot occur in a JID or an address, so the two kinds never collide.
fn keys(account: &Jid, network: &str) -> (String, String) {
    (format!("a\0{network}\0{account}"), format!("n\0{network}"))
}

#[async_trait]
impl LoginFailures for MemoryLoginFailures {
    async fn failures(
        &self,
        account: &Jid,
        network: &str,
    ) -> Result<LoginFailureCounts, StorageError> {
        let (pair, net) = keys(account, network);
        let now = Instant::now();
        let mut table = self.lock();
        Ok(LoginFailureCounts {
            account: table.get(&pair, now),
            network: table.get(&net, now),
        })
    }

    async fn record(
        &self,
        account: &Jid,
        network: &str,
        window: Duration,
    ) -> Result<LoginFailureCounts, StorageError> {
        let (pair, net) = keys(account, network);
        let now = Instant::now();
        let mut table = self.lock();
        let network = table.add(net, window, now, self.capacity);
        let account = table.add(pair, window, now, self.capacity);
        Ok(LoginFailureCounts { account, network })
    }

    async fn clear(&self, account: &Jid, network: &str) -> Result<(), StorageError> {
        self.lock().remove(&keys(account, network).0);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
