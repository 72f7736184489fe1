//! `idle`: open N sessions, note the server's memory once all are up (after a short
//! settle), hold them for the duration, then close them all.

use super::{finish, spawn_ramp, Ctx, RunClock};
use crate::cli::IdleArgs;
use crate::progress;
use crate::report::{IdleFigures, Report};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Pause between "all up" and the memory reading, so allocations from the last logins
/// and the runtime's deferred work have landed.
const SETTLE: Duration = Duration::from_secs(2);

pub async fn run(args: IdleArgs, cancel: CancellationToken) -> anyhow::Result<Report> {
    let ctx = Ctx::new(args.target, &args.output, cancel)?;
    let progress = progress::spawn(ctx.stats.clone(), args.output.quiet, &ctx.cancel);
    let clock = RunClock::start();
    let before = ctx.server.map(|s| s.sample()).unwrap_or_default();
    let hold = ctx.cancel.child_token();
    let release = hold.clone();
    let set = spawn_ramp(ctx.clone(), args.ramp.clone(), move |ctx, _, mut live| {
        let hold = hold.clone();
        async move {
            match live.session.hold(hold.cancelled()).await {
                Ok(()) => live.close().await,
                Err(kind) => ctx.stats.error(&kind),
            }
        }
    });
    let login_seconds = ctx
        .wait_settled(args.ramp.sessions, ctx.ramp_deadline(&args.ramp))
        .await
        .as_secs_f64();
    let held = ctx.stats.up.load(Relaxed);
    eprintln!(
        "{held} of {} sessions up after {login_seconds:.1} s",
        args.ramp.sessions
    );
    sleep_or_cancel(&ctx, SETTLE).await;
    let after = ctx.server.map(|s| s.sample()).unwrap_or_default();
    sleep_or_cancel(&ctx, Duration::from_secs(args.duration_secs)).await;
    let held = held.min(ctx.stats.up.load(Relaxed));
    release.cancel();
    finish(set, Duration::from_secs(10)).await;
    progress.cancel();
    let mut report = ctx.report("idle", args.ramp.sessions, login_seconds, &clock);
    report.idle = Some(IdleFigures {
        server_before: before,
        server_after: after,
        sessions_held: held,
        kib_per_session: if held > 0 {
            after.rss_kib.saturating_sub(before.rss_kib) as f64 / held as f64
        } else {
            0.0
        },
    });
    Ok(report)
}

pub(crate) async fn sleep_or_cancel(ctx: &Ctx, d: Duration) {
    tokio::select! {
        () = tokio::time::sleep(d) => {}
        () = ctx.cancel.cancelled() => {}
    }
}
