//! `chat`: N users log in (one session each), then the conductor runs rate steps. In each
//! step every sender offers `rate / N` messages per second (open loop), then pauses while
//! messages in flight drain, and the step's offered/delivered counts, latency histogram
//! and the server's CPU time are read. With `--saturate` the rate grows by
//! `--step-factor` until a step breaks the bounds, `--refine` steps bisect between the
//! best good rate and the lowest failing one, then one step runs at half the best good
//! rate (where latency is quoted).

mod session;

use super::idle::sleep_or_cancel;
use super::{finish, spawn_ramp, Ctx, RunClock, POLL_INTERVAL};
use crate::cli::{ChatArgs, Ramp};
use crate::procstat::own_cpu_seconds;
use crate::progress;
use crate::report::{Report, Step};
use session::{Command, Shared};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Lead time between announcing a step and its first tick, so every sender sees it.
const STEP_LEAD: Duration = Duration::from_millis(200);

/// Longest wait for an overloaded server's backlog to clear before the half-rate step.
const QUIESCE_LIMIT: Duration = Duration::from_secs(60);

pub async fn run(args: ChatArgs, cancel: CancellationToken) -> anyhow::Result<Report> {
    let users = args.target.accounts.users;
    anyhow::ensure!(users >= 2, "chat needs at least 2 users");
    let ctx = Ctx::new(args.target.clone(), &args.output, cancel)?;
    let progress = progress::spawn(ctx.stats.clone(), args.output.quiet, &ctx.cancel);
    let clock = RunClock::start();
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        step: AtomicU32::new(0),
        users,
        body_bytes: args.body_bytes,
    });
    let (commands, listen) = watch::channel(Command::Pause);
    let ramp = Ramp {
        sessions: users,
        arrival_rate: args.arrival_rate,
        concurrency: args.concurrency,
    };
    let deadline = ctx.ramp_deadline(&ramp);
    let sh = shared.clone();
    let set = spawn_ramp(ctx.clone(), ramp, move |ctx, i, live| {
        session::run(ctx, sh.clone(), listen.clone(), i, live)
    });
    let login_seconds = ctx.wait_settled(users, deadline).await.as_secs_f64();
    let up = ctx.stats.up.load(Relaxed);
    eprintln!("{up} of {users} users up after {login_seconds:.1} s");
    let conductor = Conductor {
        ctx: &ctx,
        shared: &shared,
        commands: &commands,
        args: &args,
    };
    let (report_steps, half) = if up as usize == users {
        conductor.steps().await
    } else {
        ctx.stats.error("chat-not-started:users-missing");
        (Vec::new(), None)
    };
    let _ = commands.send(Command::Close);
    finish(set, Duration::from_secs(10)).await;
    progress.cancel();
    let mut report = ctx.report("chat", users, login_seconds, &clock);
    if args.saturate {
        report.half_saturation = half;
        report.saturation = best_good(&report_steps);
    }
    report.steps = report_steps;
    Ok(report)
}

/// The good step with the highest offered rate: the saturation figure.
fn best_good(steps: &[Step]) -> Option<Step> {
    steps
        .iter()
        .filter(|s| s.good)
        .max_by(|a, b| a.offered_rate.total_cmp(&b.offered_rate))
        .copied()
}

/// The geometric middle between the best good rate and the lowest failing rate above it;
/// `None` until a step above the best good one has failed.
fn refinement_rate(steps: &[Step]) -> Option<f64> {
    let good = best_good(steps)?.offered_rate;
    let bad = steps
        .iter()
        .filter(|s| !s.good && s.offered_rate > good)
        .map(|s| s.offered_rate)
        .min_by(f64::total_cmp)?;
    Some((good * bad).sqrt())
}

struct Conductor<'a> {
    ctx: &'a Ctx,
    shared: &'a Shared,
    commands: &'a watch::Sender<Command>,
    args: &'a ChatArgs,
}

impl Conductor<'_> {
    /// Runs the configured steps; with `--saturate`, also the half-rate step, returned
    /// apart, when a step was good (none runs when the first step failed or on cancel).
    async fn steps(&self) -> (Vec<Step>, Option<Step>) {
        let mut rates = self.args.rate.clone();
        let mut steps: Vec<Step> = Vec::new();
        let mut next = 0;
        while next < rates.len() && !self.ctx.cancel.is_cancelled() {
            let step = self.step(next as u32 + 1, rates[next]).await;
            steps.push(step);
            next += 1;
            if self.args.saturate {
                if !step.good {
                    break;
                }
                if next == rates.len() && rates.len() < self.args.max_steps {
                    rates.push(rates[next - 1] * self.args.step_factor);
                }
            }
        }
        let mut half = None;
        if self.args.saturate {
            self.refine(&mut steps).await;
            let good = best_good(&steps).map(|s| s.offered_rate);
            if let Some(rate) = good.filter(|_| !self.ctx.cancel.is_cancelled()) {
                self.quiesce().await;
                half = Some(self.step(steps.len() as u32 + 1, rate / 2.0).await);
            }
        }
        (steps, half)
    }

    /// Bisects between the best good rate and the lowest failing one (`--refine` steps).
    async fn refine(&self, steps: &mut Vec<Step>) {
        for _ in 0..self.args.refine {
            let Some(rate) = refinement_rate(steps) else {
                return;
            };
            if self.ctx.cancel.is_cancelled() {
                return;
            }
            self.quiesce().await;
            let step = self.step(steps.len() as u32 + 1, rate).await;
            steps.push(step);
        }
    }

    /// After an overloaded step the server may still hold a backlog; wait (bounded) until
    /// no stale message has arrived for a second, so the next step starts clean.
    async fn quiesce(&self) {
        let deadline = Instant::now() + QUIESCE_LIMIT;
        let mut seen = self.ctx.stats.error_count();
        while Instant::now() < deadline && !self.ctx.cancel.is_cancelled() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = self.ctx.stats.error_count();
            if now == seen {
                return;
            }
            seen = now;
        }
    }

    async fn step(&self, id: u32, rate: f64) -> Step {
        let (ctx, args) = (self.ctx, self.args);
        ctx.stats.reset_messages();
        self.shared.step.store(id, Relaxed);
        let server0 = ctx.server.map(|s| s.sample()).unwrap_or_default();
        let others0 = ctx.others_cpu_seconds();
        let cpu0 = own_cpu_seconds();
        let interval = Duration::from_secs_f64(self.shared.users as f64 / rate.max(0.001));
        let start = Instant::now() + STEP_LEAD;
        let _ = self.commands.send(Command::Run {
            step: id,
            interval,
            start,
        });
        tokio::time::sleep_until(start).await;
        sleep_or_cancel(ctx, Duration::from_secs(args.duration_secs)).await;
        let _ = self.commands.send(Command::Pause);
        let seconds = start.elapsed().as_secs_f64();
        let drain_end = Instant::now() + Duration::from_secs(args.drain_secs);
        while ctx.stats.delivered.load(Relaxed) < ctx.stats.offered.load(Relaxed)
            && Instant::now() < drain_end
            && !ctx.cancel.is_cancelled()
        {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        // Anything arriving from now on belongs to no step.
        self.shared.step.store(0, Relaxed);
        let server1 = ctx.server.map(|s| s.sample()).unwrap_or_default();
        let other_cpu = ctx.others_cpu_seconds() - others0;
        let (offered, delivered) = (
            ctx.stats.offered.load(Relaxed),
            ctx.stats.delivered.load(Relaxed),
        );
        let latency = ctx.stats.latency();
        let server_cpu = server1.cpu_seconds - server0.cpu_seconds;
        let step = Step {
            offered_rate: rate,
            seconds,
            offered,
            delivered,
            lost: offered.saturating_sub(delivered),
            delivered_per_second: delivered as f64 / seconds,
            latency,
            server_cpu_seconds: server_cpu,
            server_cpu_seconds_per_100k: if delivered > 0 {
                server_cpu * 100_000.0 / delivered as f64
            } else {
                0.0
            },
            other_cpu_seconds: other_cpu,
            other_cpu_seconds_per_100k: if delivered > 0 {
                other_cpu * 100_000.0 / delivered as f64
            } else {
                0.0
            },
            generator_cpu_seconds: own_cpu_seconds() - cpu0,
            good: latency.p99_ms <= args.max_p99_ms
                && delivered as f64 >= args.min_delivery * offered as f64,
        };
        eprintln!("step {id}: {step:?}");
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(offered_rate: f64, good: bool) -> Step {
        Step {
            offered_rate,
            good,
            ..Step::default()
        }
    }

    #[test]
    fn refinement_bisects_between_the_best_good_and_the_lowest_bad_rate() {
        let mut steps = vec![step(1000.0, true), step(1500.0, true)];
        assert_eq!(refinement_rate(&steps), None, "nothing failed yet");
        steps.push(step(2250.0, false));
        let first = refinement_rate(&steps).unwrap();
        assert!((first - (1500.0f64 * 2250.0).sqrt()).abs() < 1e-6);
        steps.push(step(first, false));
        let second = refinement_rate(&steps).unwrap();
        assert!((second - (1500.0 * first).sqrt()).abs() < 1e-6);
        steps.push(step(second, true));
        assert_eq!(best_good(&steps).unwrap().offered_rate, second);
        let noisy = [step(1000.0, false), step(1500.0, true)];
        assert_eq!(
            refinement_rate(&noisy),
            None,
            "a failure below the best good is noise"
        );
    }
}
