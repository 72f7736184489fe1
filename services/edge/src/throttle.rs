//! Login failure throttling per IP address and per account (RFC 6120 §6.4.5 leaves the
//! policy to the server). After `max_failures` within `window`, further attempts from that
//! key fail with `temporary-auth-failure` until the window passes. The table is bounded:
//! when full, expired entries are swept and, if still full, new keys are not tracked.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use switchyard_core::Jid;

const MAX_KEYS: usize = 100_000;

#[derive(Debug)]
pub(crate) struct Throttle {
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Throttle {
    pub(crate) fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn record(&self, key: &str) {
        let now = Instant::now();
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            map.retain(|_, (_, since)| now.duration_since(*since) < self.window);
            if map.len() >= MAX_KEYS {
                return;
            }
        }
        let entry = map.entry(key.to_owned()).or_insert((0, now));
        if now.duration_since(entry.1) >= self.window {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    fn check(&self, key: &str) -> bool {
        let map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(key).is_none_or(|(count, since)| {
            *count < self.max_failures || since.elapsed() >= self.window
        })
    }
}

impl Throttle {
    /// Counts a failed login against the address and, when named, the account.
    pub(crate) fn failed(&self, ip: IpAddr, account: Option<&Jid>) {
        self.record(&ip.to_string());
        if let Some(a) = account {
            self.record(&a.to_string());
        }
    }

    /// Whether a login from this address for this account may be attempted now.
    pub(crate) fn allowed(&self, ip: IpAddr, account: Option<&Jid>) -> bool {
        self.check(&ip.to_string()) && account.is_none_or(|a| self.check(&a.to_string()))
    }
}
