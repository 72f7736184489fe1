//! `resume-storm`: N sessions log in with stream management and resumption (XEP-0198),
//! paced like every ramp, and hold, answering the server's ack requests. Once all are up
//! (and a short settle, so every stanza of the login has been read and counted), every
//! connection is dropped at once: a TCP reset, no `</stream:stream>`, which the server
//! sees as a lost network and keeps the sessions detached. After `--pause-ms` every client
//! reconnects at once (at most `--concurrency` in flight), authenticates and sends
//! `<resume previd h/>` with its SM-ID and `h`; `--fresh` logs in again instead (binds
//! the same resource, which replaces the detached session, and enables stream management
//! again), as the reference for the same storm.
//!
//! Measured: successes and failures (by kind: `<failed/>` conditions and the rest),
//! successes per second and the time from the first reconnection to the last success,
//! each client's time from its TCP connect to `<resumed/>` (fresh: the roster result),
//! the server's CPU seconds. The sessions are then held `--hold-secs` more: every stanza
//! read after `<resumed/>` is counted, since the client had acknowledged all it had read,
//! so any is a resend the server should not have made.
//!
//! With `--messages M`, senders of their own write M numbered messages to the sessions
//! from 1 s before the drop on, through the storm (see `senders.rs`); every session
//! counts those it reads, on the old stream and on the resumed one, and the report says
//! how many arrived once, never or twice. Those are not counted as stanzas after.

use super::idle::sleep_or_cancel;
use super::senders::{self, Traffic};
use super::{finish, spawn_ramp, Ctx, Live, RunClock, UpGuard, POLL_INTERVAL};
use crate::cli::ResumeStormArgs;
use crate::client::{Ledger, SmClient};
use crate::procstat::Sample;
use crate::progress;
use crate::report::{Report, ResumeFigures};
use crate::stats::Stats;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Pause between "all up" and the drop, so echoes of the initial presence are read (and
/// counted in `h`) before the connections go.
const SETTLE: Duration = Duration::from_secs(1);

/// The longest the dropping takes (each held task only resets its socket).
const DROP_LIMIT: Duration = Duration::from_secs(10);

/// What the reconnecting clients share.
struct Storm {
    stats: Arc<Stats>,
    /// The first reconnection: times are measured from here.
    epoch: Instant,
    /// Microseconds from `epoch` to the latest success.
    last_back_us: AtomicU64,
    settled: AtomicU64,
    h_mismatches: AtomicU64,
    stanzas_after: AtomicU64,
    sessions_with_stanzas_after: AtomicU64,
    errors_after: Stats,
}

pub async fn run(args: ResumeStormArgs, cancel: CancellationToken) -> anyhow::Result<Report> {
    let mut target = args.target.clone();
    target.sm = true;
    let ctx = Ctx::new(target, &args.output, cancel)?;
    let progress = progress::spawn(ctx.stats.clone(), args.output.quiet, &ctx.cancel);
    let clock = RunClock::start();
    let n = args.ramp.sessions;
    let users = ctx.connector.target.accounts.users;
    if args.messages > 0 && users < n + args.senders {
        anyhow::bail!(
            "--messages needs --users of at least {} (-n plus --senders), so that every \
             session and every sender has an account of its own",
            n + args.senders
        );
    }
    let ledger = (args.messages > 0).then(|| Arc::new(Ledger::new(args.messages)));
    if let Some(ledger) = &ledger {
        let _ = ctx.connector.ledger.set(ledger.clone());
    }

    // Log in and hold; at `drop`, each session resets its connection and leaves its
    // stream management state in `states`.
    let states: Arc<Mutex<Vec<Option<SmClient>>>> = Arc::new(Mutex::new(vec![None; n]));
    let drop_all = ctx.cancel.child_token();
    let (on_drop, kept) = (drop_all.clone(), states.clone());
    let set = spawn_ramp(ctx.clone(), args.ramp.clone(), move |ctx, i, live| {
        let (on_drop, kept) = (on_drop.clone(), kept.clone());
        async move {
            let Live { mut session, _up } = live;
            if let Err(kind) = session.hold(on_drop.cancelled()).await {
                return ctx.stats.error(&kind);
            }
            let sm = session.sm.clone().filter(|sm| sm.id.is_some());
            session.abort();
            match sm {
                Some(sm) if !ctx.cancel.is_cancelled() => {
                    kept.lock().unwrap_or_else(PoisonError::into_inner)[i] = Some(sm);
                }
                Some(_) => {}
                None => ctx.stats.error("sm-not-resumable"),
            }
        }
    });
    let login_seconds = ctx
        .wait_settled(n, ctx.ramp_deadline(&args.ramp))
        .await
        .as_secs_f64();
    let up = ctx.stats.up.load(Relaxed);
    eprintln!("{up} of {n} sessions up after {login_seconds:.1} s");
    let mut sending = match &ledger {
        Some(ledger) => {
            let a = &ctx.connector.target.accounts;
            let targets = Arc::new((0..n).map(|i| a.full_jid(i)).collect());
            let traffic = Traffic {
                total: args.messages,
                rate: args.message_rate,
                senders: args.senders,
            };
            let target = &ctx.connector.target;
            senders::spawn(target, n, targets, ledger.clone(), traffic, &ctx.cancel)?
        }
        None => JoinSet::new(),
    };
    sleep_or_cancel(&ctx, SETTLE).await;

    let before_drop = sample(&ctx);
    drop_all.cancel();
    finish(set, DROP_LIMIT).await;
    let dropped: Vec<(usize, SmClient)> =
        std::mem::take(&mut *states.lock().unwrap_or_else(PoisonError::into_inner))
            .into_iter()
            .enumerate()
            .filter_map(|(i, sm)| sm.map(|sm| (i, sm)))
            .collect();
    eprintln!(
        "{} connections dropped; reconnecting in {} ms",
        dropped.len(),
        args.pause_ms
    );
    sleep_or_cancel(&ctx, Duration::from_millis(args.pause_ms)).await;
    progress.cancel();

    let storm = Arc::new(Storm {
        stats: Arc::new(Stats::default()),
        epoch: Instant::now(),
        last_back_us: AtomicU64::new(0),
        settled: AtomicU64::new(0),
        h_mismatches: AtomicU64::new(0),
        stanzas_after: AtomicU64::new(0),
        sessions_with_stanzas_after: AtomicU64::new(0),
        errors_after: Stats::default(),
    });
    let progress = progress::spawn(storm.stats.clone(), args.output.quiet, &ctx.cancel);
    let at_storm = sample(&ctx);
    let release = ctx.cancel.child_token();
    let reconnects = dropped.len();
    let set = reconnect_all(&ctx, &storm, dropped, &args, &release);
    let limit = Duration::from_secs(2 * ctx.connector.target.login_timeout_secs + 10)
        + Duration::from_millis(10 * reconnects as u64);
    let deadline = storm.epoch + limit;
    while (storm.settled.load(Relaxed) as usize) < reconnects
        && Instant::now() < deadline
        && !ctx.cancel.is_cancelled()
    {
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    let after_storm = sample(&ctx);
    let settled = storm.settled.load(Relaxed);
    let succeeded = storm.stats.logins.load(Relaxed);
    eprintln!(
        "{succeeded} of {reconnects} back after {:.2} s",
        storm.epoch.elapsed().as_secs_f64()
    );
    // Every numbered message written (bounded: their time at the rate, and a minute).
    let sent_by = Instant::now()
        + Duration::from_secs_f64(args.messages as f64 / args.message_rate.max(1.0))
        + Duration::from_secs(60);
    while let Ok(Some(done)) = tokio::time::timeout_at(sent_by, sending.join_next()).await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(kind)) => storm.errors_after.error(&format!("sender-{kind}")),
            Err(_) => storm.errors_after.error("sender-panicked"),
        }
    }
    sending.abort_all();
    sleep_or_cancel(&ctx, Duration::from_secs(args.hold_secs)).await;
    release.cancel();
    finish(set, Duration::from_secs(10)).await;
    progress.cancel();

    let mut failures = storm.stats.errors();
    let unsettled = (reconnects as u64).saturating_sub(settled);
    if unsettled > 0 {
        *failures.entry("unsettled".into()).or_default() += unsettled;
    }
    let all_back = storm.last_back_us.load(Relaxed) as f64 / 1e6;
    let cpu = after_storm.cpu_seconds - at_storm.cpu_seconds;
    let mut report = ctx.report("resume-storm", n, login_seconds, &clock);
    report.resume = Some(ResumeFigures {
        mode: if args.fresh { "fresh" } else { "resume" },
        sessions_dropped: reconnects as u64,
        pause_ms: args.pause_ms,
        reconnects: reconnects as u64,
        succeeded,
        failed: failures.values().sum(),
        failures,
        per_second: if all_back > 0.0 {
            succeeded as f64 / all_back
        } else {
            0.0
        },
        all_back_seconds: all_back,
        time: storm.stats.login_time(),
        server_cpu_seconds: cpu,
        server_cpu_ms_per_success: if succeeded > 0 {
            cpu * 1000.0 / succeeded as f64
        } else {
            0.0
        },
        server_cpu_seconds_drop: at_storm.cpu_seconds - before_drop.cpu_seconds,
        h_mismatches: storm.h_mismatches.load(Relaxed),
        messages: ledger.map(|l| l.tally()),
        stanzas_after: storm.stanzas_after.load(Relaxed),
        sessions_with_stanzas_after: storm.sessions_with_stanzas_after.load(Relaxed),
        errors_after: storm.errors_after.errors(),
    });
    Ok(report)
}

fn sample(ctx: &Ctx) -> Sample {
    ctx.server.map(|s| s.sample()).unwrap_or_default()
}

/// Every dropped client reconnects now, at most `--concurrency` at once; each one that
/// is back holds its session until `release`, then closes it.
fn reconnect_all(
    ctx: &Arc<Ctx>,
    storm: &Arc<Storm>,
    dropped: Vec<(usize, SmClient)>,
    args: &ResumeStormArgs,
    release: &CancellationToken,
) -> JoinSet<()> {
    let permits = Arc::new(Semaphore::new(args.ramp.concurrency.max(1)));
    let fresh = args.fresh;
    let mut set = JoinSet::new();
    for (i, sm) in dropped {
        let (ctx, storm, permits, release) =
            (ctx.clone(), storm.clone(), permits.clone(), release.clone());
        let resume = (!fresh).then_some(sm);
        set.spawn(async move {
            let Ok(permit) = permits.acquire_owned().await else {
                return;
            };
            let started = Instant::now();
            let result = tokio::select! {
                r = ctx.connector.login_or_resume(i, resume) => r,
                () = ctx.cancel.cancelled() => Err("cancelled".into()),
            };
            drop(permit);
            let mut session = match result {
                Ok(session) => session,
                Err(kind) => {
                    storm.stats.error(&kind);
                    storm.settled.fetch_add(1, Relaxed);
                    return;
                }
            };
            storm.stats.login_done(started.elapsed());
            storm
                .last_back_us
                .fetch_max(storm.epoch.elapsed().as_micros() as u64, Relaxed);
            storm.settled.fetch_add(1, Relaxed);
            let _up = UpGuard(storm.stats.clone());
            let h_ok = session.sm.as_ref().is_some_and(SmClient::server_has_all);
            if !fresh && !h_ok {
                storm.h_mismatches.fetch_add(1, Relaxed);
            }
            if let Err(kind) = session.hold(release.cancelled()).await {
                storm.errors_after.error(&kind);
            }
            if session.stanzas_held > 0 {
                storm.stanzas_after.fetch_add(session.stanzas_held, Relaxed);
                storm.sessions_with_stanzas_after.fetch_add(1, Relaxed);
            }
            session.close().await;
        });
    }
    set
}
