//! `login-storm`: N logins as fast as the server takes them, at most `--concurrency` in
//! flight (and paced by `--arrival-rate` when it is not 0). Each session closes its stream
//! as soon as it is ready, so the server also pays for the teardown.

use super::{finish, spawn_ramp, Ctx, RunClock};
use crate::cli::StormArgs;
use crate::progress;
use crate::report::Report;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub async fn run(args: StormArgs, cancel: CancellationToken) -> anyhow::Result<Report> {
    let ctx = Ctx::new(args.target, &args.output, cancel)?;
    let progress = progress::spawn(ctx.stats.clone(), args.output.quiet, &ctx.cancel);
    let clock = RunClock::start();
    let set = spawn_ramp(ctx.clone(), args.ramp.clone(), |_, _, live| live.close());
    let login_seconds = ctx
        .wait_settled(args.ramp.sessions, ctx.ramp_deadline(&args.ramp))
        .await
        .as_secs_f64();
    finish(set, Duration::from_secs(10)).await;
    progress.cancel();
    Ok(ctx.report("login-storm", args.ramp.sessions, login_seconds, &clock))
}
