//! What every scenario shares: the run context (connector, counters, cancellation, the
//! observed server), the paced ramp that opens sessions, and waiting for the ramp to
//! settle. Each scenario module adds only its own behaviour after login.

pub mod chat;
pub mod churn;
pub mod fanout;
pub mod idle;
pub mod resume;
mod senders;
pub mod storm;

use crate::cli::{Output, Ramp, Target};
use crate::client::{Connector, Session};
use crate::procstat::{own_cpu_seconds, Server};
use crate::report::Report;
use crate::stats::Stats;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often waits re-check their condition.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Everything a run's tasks share.
#[derive(Debug)]
pub struct Ctx {
    pub connector: Connector,
    pub stats: Arc<Stats>,
    /// Ctrl-C or the end of the run: every loop watches it.
    pub cancel: CancellationToken,
    pub server: Option<Server>,
    /// Further server processes whose CPU is reported (`--other-pid`).
    pub others: Vec<Server>,
    /// Logins finished either way (success or failure).
    settled: AtomicU64,
}

impl Ctx {
    pub fn new(
        target: Target,
        output: &Output,
        cancel: CancellationToken,
    ) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            connector: Connector::new(target)?,
            stats: Arc::new(Stats::default()),
            cancel,
            server: output.server_pid.map(|pid| Server { pid }),
            others: output.other_pid.iter().map(|&pid| Server { pid }).collect(),
            settled: AtomicU64::new(0),
        }))
    }

    /// One login attempt for session `n`, counted; `None` on failure (error recorded).
    pub async fn login(&self, n: usize) -> Option<Live> {
        self.stats.attempts.fetch_add(1, Relaxed);
        let started = Instant::now();
        let result = tokio::select! {
            r = self.connector.login(n) => r,
            () = self.cancel.cancelled() => Err("cancelled".into()),
        };
        match result {
            Ok(session) => {
                self.stats.login_done(started.elapsed());
                Some(Live {
                    session,
                    _up: UpGuard(self.stats.clone()),
                })
            }
            Err(kind) => {
                self.stats.error(&kind);
                None
            }
        }
    }

    /// Waits until `n` logins settled, the deadline passed or the run was cancelled;
    /// returns how long that took.
    pub async fn wait_settled(&self, n: usize, deadline: Instant) -> Duration {
        let start = Instant::now();
        while (self.settled.load(Relaxed) as usize) < n
            && Instant::now() < deadline
            && !self.cancel.is_cancelled()
        {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        start.elapsed()
    }

    /// CPU seconds of the `--other-pid` processes, summed.
    pub fn others_cpu_seconds(&self) -> f64 {
        self.others
            .iter()
            .map(|s| s.cpu_seconds().unwrap_or(0.0))
            .sum()
    }

    /// A deadline for a ramp of `n` sessions: pacing time plus one login timeout plus
    /// slack for a slow server.
    pub fn ramp_deadline(&self, ramp: &Ramp) -> Instant {
        let pacing = if ramp.arrival_rate > 0.0 {
            ramp.sessions as f64 / ramp.arrival_rate
        } else {
            0.0
        };
        let login = self.connector.target.login_timeout_secs as f64;
        Instant::now() + Duration::from_secs_f64(pacing + 2.0 * login + 10.0)
    }
}

/// A logged-in session, counted in `Stats::up` until dropped.
#[derive(Debug)]
pub struct Live {
    pub session: Session,
    _up: UpGuard,
}

impl Live {
    /// Closes the stream; the session stops counting as up.
    pub async fn close(self) {
        self.session.close().await;
    }
}

#[derive(Debug)]
struct UpGuard(Arc<Stats>);

impl Drop for UpGuard {
    fn drop(&mut self) {
        self.0.up.fetch_sub(1, Relaxed);
    }
}

/// Opens `ramp.sessions` sessions at the arrival rate with at most `ramp.concurrency`
/// logins in flight; each logged-in session is handed to `body` in its own task.
pub fn spawn_ramp<F, Fut>(ctx: Arc<Ctx>, ramp: Ramp, body: F) -> JoinSet<()>
where
    F: Fn(Arc<Ctx>, usize, Live) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut set = JoinSet::new();
    let ctx2 = ctx.clone();
    set.spawn(async move {
        let ctx = ctx2;
        let permits = Arc::new(Semaphore::new(ramp.concurrency.max(1)));
        let start = Instant::now();
        let mut tasks = JoinSet::new();
        for n in 0..ramp.sessions {
            if ramp.arrival_rate > 0.0 {
                let at = start + Duration::from_secs_f64(n as f64 / ramp.arrival_rate);
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = ctx.cancel.cancelled() => break,
                }
            }
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => p.expect("semaphore stays open"),
                () = ctx.cancel.cancelled() => break,
            };
            let (ctx, body) = (ctx.clone(), body.clone());
            tasks.spawn(async move {
                let session = ctx.login(n).await;
                drop(permit);
                ctx.settled.fetch_add(1, Relaxed);
                if let Some(live) = session {
                    body(ctx.clone(), n, live).await;
                }
            });
            // Reap finished tasks as we go so a long ramp holds no dead handles.
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    });
    set
}

/// Waits for the tasks to end, at most `grace`, then aborts the rest.
pub async fn finish(mut set: JoinSet<()>, grace: Duration) {
    let all = async { while set.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, all).await.is_err() {
        set.abort_all();
    }
}

impl Ctx {
    /// The common part of every report.
    pub fn report(
        &self,
        scenario: &'static str,
        requested: usize,
        login_seconds: f64,
        run: &RunClock,
    ) -> Report {
        let t = &self.connector.target;
        // The run is over: keep what was learned for the next one.
        if let Err(e) = self.connector.scram_cache.save() {
            eprintln!("warning: SCRAM cache not saved: {e}");
        }
        let logins = self.stats.logins.load(Relaxed);
        Report {
            scenario,
            server: t.server.to_string(),
            transport: format!("{:?}", t.transport).to_lowercase(),
            mechanism: t.mechanism.name(),
            sm: t.sm,
            sessions_established: logins,
            sessions_requested: requested,
            login_seconds,
            logins_per_second: if login_seconds > 0.0 {
                logins as f64 / login_seconds
            } else {
                0.0
            },
            login_time: self.stats.login_time(),
            errors: self.stats.errors(),
            generator_cpu_seconds: own_cpu_seconds() - run.cpu,
            wall_seconds: run.wall.elapsed().as_secs_f64(),
            ..Report::default()
        }
    }
}

/// When a run started, by the wall clock and by the generator's CPU time.
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    pub wall: Instant,
    pub cpu: f64,
}

impl RunClock {
    pub fn start() -> Self {
        Self {
            wall: Instant::now(),
            cpu: own_cpu_seconds(),
        }
    }
}
