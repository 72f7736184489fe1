//! `churn`: hold N sessions and, like mobile clients losing their network, close and
//! reopen them. Each session lives an exponentially distributed time with mean
//! N / churn-rate seconds, so the aggregate reconnect rate is the churn rate.

use super::idle::sleep_or_cancel;
use super::{finish, spawn_ramp, Ctx, RunClock};
use crate::cli::ChurnArgs;
use crate::progress;
use crate::report::{ChurnFigures, Report};
use rand::Rng;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub async fn run(args: ChurnArgs, cancel: CancellationToken) -> anyhow::Result<Report> {
    let ctx = Ctx::new(args.target, &args.output, cancel)?;
    let progress = progress::spawn(ctx.stats.clone(), args.output.quiet, &ctx.cancel);
    let clock = RunClock::start();
    let mean_life_secs = args.ramp.sessions as f64 / args.churn_rate.max(0.001);
    let end = ctx.cancel.child_token();
    let reconnects = Arc::new(AtomicU64::new(0));
    let (stop, counted) = (end.clone(), reconnects.clone());
    let set = spawn_ramp(ctx.clone(), args.ramp.clone(), move |ctx, n, live| {
        let (end, reconnects) = (stop.clone(), counted.clone());
        async move {
            let mut live = live;
            loop {
                let u: f64 = rand::thread_rng().gen_range(f64::EPSILON..1.0);
                let life = Duration::from_secs_f64(-mean_life_secs * u.ln());
                let until = async {
                    tokio::select! {
                        () = tokio::time::sleep(life) => {}
                        () = end.cancelled() => {}
                    }
                };
                if let Err(kind) = live.session.hold(until).await {
                    return ctx.stats.error(&kind);
                }
                live.close().await;
                if end.is_cancelled() {
                    return;
                }
                reconnects.fetch_add(1, Relaxed);
                match ctx.login(n).await {
                    Some(next) => live = next,
                    None => return,
                }
            }
        }
    });
    let login_seconds = ctx
        .wait_settled(args.ramp.sessions, ctx.ramp_deadline(&args.ramp))
        .await
        .as_secs_f64();
    let churn_start = Instant::now();
    let churned_before = reconnects.load(Relaxed);
    sleep_or_cancel(&ctx, Duration::from_secs(args.duration_secs)).await;
    let churned = reconnects.load(Relaxed) - churned_before;
    let seconds = churn_start.elapsed().as_secs_f64();
    end.cancel();
    finish(set, Duration::from_secs(10)).await;
    progress.cancel();
    let mut report = ctx.report("churn", args.ramp.sessions, login_seconds, &clock);
    report.churn = Some(ChurnFigures {
        reconnects: churned,
        reconnects_per_second: churned as f64 / seconds.max(0.001),
    });
    Ok(report)
}
