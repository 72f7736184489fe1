//! The progress line: once a second on stderr, what the run's counters say now and how
//! fast they moved in the last second. Ends when its token is cancelled.

use crate::stats::Stats;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Starts the progress task; cancel the returned token to stop it.
pub fn spawn(stats: Arc<Stats>, quiet: bool, parent: &CancellationToken) -> CancellationToken {
    let stop = parent.child_token();
    if quiet {
        return stop;
    }
    let token = stop.clone();
    tokio::spawn(async move {
        let start = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        let (mut logins, mut delivered) = (0, 0);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = token.cancelled() => break,
            }
            let l = stats.logins.load(Relaxed);
            let d = stats.delivered.load(Relaxed);
            eprintln!(
                "[{:>4}s] up {} | logins {} (+{}/s) | offered {} delivered {} (+{}/s) | errors {}",
                start.elapsed().as_secs(),
                stats.up.load(Relaxed),
                l,
                l.saturating_sub(logins),
                stats.offered.load(Relaxed),
                d,
                d.saturating_sub(delivered),
                stats.error_count(),
            );
            (logins, delivered) = (l, d);
        }
    });
    stop
}
