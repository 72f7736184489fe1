//! Counters shared by every connection task of a run: atomics for counts, HDR histograms
//! for login time and end-to-end message latency (microseconds), and errors by kind.
//! Tasks record; the progress line and the report read snapshots.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Highest value the histograms track: one minute in microseconds.
const MAX_TRACKED_US: u64 = 60_000_000;

#[derive(Debug)]
pub struct Stats {
    /// Connection attempts started.
    pub attempts: AtomicU64,
    /// Logins that reached the roster result.
    pub logins: AtomicU64,
    /// Sessions logged in right now.
    pub up: AtomicU64,
    /// Messages whose scheduled send time has passed (open loop: counted even if late).
    pub offered: AtomicU64,
    /// Messages received with a stamp of the current step.
    pub delivered: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    latency_us: Mutex<Histogram<u64>>,
    login_us: Mutex<Histogram<u64>>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_US, 3).expect("valid histogram bounds")
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            attempts: AtomicU64::new(0),
            logins: AtomicU64::new(0),
            up: AtomicU64::new(0),
            offered: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            latency_us: Mutex::new(histogram()),
            login_us: Mutex::new(histogram()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Stats {
    pub fn error(&self, kind: &str) {
        *lock(&self.errors).entry(kind.to_owned()).or_default() += 1;
    }

    pub fn error_count(&self) -> u64 {
        lock(&self.errors).values().sum()
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        lock(&self.errors).clone()
    }

    pub fn login_done(&self, took: Duration) {
        self.logins.fetch_add(1, Relaxed);
        self.up.fetch_add(1, Relaxed);
        record(&self.login_us, took.as_micros() as u64);
    }

    pub fn delivered(&self, latency_us: u64) {
        self.delivered.fetch_add(1, Relaxed);
        record(&self.latency_us, latency_us);
    }

    pub fn latency(&self) -> Percentiles {
        Percentiles::of(&lock(&self.latency_us))
    }

    pub fn login_time(&self) -> Percentiles {
        Percentiles::of(&lock(&self.login_us))
    }

    /// Starts a new chat step: message counters and latency start from zero.
    pub fn reset_messages(&self) {
        self.offered.store(0, Relaxed);
        self.delivered.store(0, Relaxed);
        lock(&self.latency_us).reset();
    }
}

fn record(h: &Mutex<Histogram<u64>>, us: u64) {
    lock(h).saturating_record(us.clamp(1, MAX_TRACKED_US));
}

/// Milliseconds at the usual percentiles.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}
