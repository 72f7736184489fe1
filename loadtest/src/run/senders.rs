//! Numbered messages (see [`Ledger`]) to held sessions at a steady aggregate rate, from
//! sessions of their own that are never dropped (fan-in: every sender writes to every
//! target in turn). They log in without stream management: nothing they are sent matters.

use crate::cli::Target;
use crate::client::{write, Connector, Ledger};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Each sender writes what is due every this often, in one write.
const TICK: Duration = Duration::from_millis(10);

/// How many numbered messages, how fast, from how many senders.
#[derive(Debug, Clone, Copy)]
pub struct Traffic {
    pub total: usize,
    /// Messages per second, all senders together.
    pub rate: f64,
    pub senders: usize,
}

/// Logs sessions `first..first + senders` in and has them write `traffic.total` numbered
/// messages to `targets` (full JIDs, round robin) until done or `cancel`; each task ends
/// with the kind of error that stopped its sender, if one did.
pub fn spawn(
    target: &Target,
    first: usize,
    targets: Arc<Vec<String>>,
    ledger: Arc<Ledger>,
    traffic: Traffic,
    cancel: &CancellationToken,
) -> anyhow::Result<JoinSet<Result<(), String>>> {
    let mut target = target.clone();
    target.sm = false;
    let connector = Arc::new(Connector::new(target)?);
    let senders = traffic.senders.max(1);
    let total = traffic.total.min(ledger.capacity());
    let per_sender = traffic.rate.max(1.0) / senders as f64;
    let mut set = JoinSet::new();
    for k in 0..senders {
        let (connector, targets, ledger, cancel) = (
            connector.clone(),
            targets.clone(),
            ledger.clone(),
            cancel.clone(),
        );
        set.spawn(async move {
            let mut session = connector.login(first + k).await?;
            let mine: Vec<usize> = (k..total).step_by(senders).collect();
            let started = Instant::now();
            let mut written = 0;
            let mut tick = tokio::time::interval(TICK);
            while written < mine.len() {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = cancel.cancelled() => return Err("cancelled".into()),
                }
                let due = (started.elapsed().as_secs_f64() * per_sender) as usize;
                let numbers = &mine[written..due.clamp(written, mine.len())];
                let batch: String = numbers
                    .iter()
                    .map(|&n| ledger.message(n, &targets[n % targets.len()]))
                    .collect();
                write(&mut session.stream, batch.as_bytes()).await?;
                ledger.written(numbers);
                written += numbers.len();
            }
            session.close().await;
            Ok(())
        });
    }
    Ok(set)
}
