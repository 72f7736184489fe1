//! `fanout`: one account changes its presence and the server broadcasts it to every
//! online contact (RFC 6121 §4.4.2); how long until the last contact has it, and what one
//! broadcast costs the server.
//!
//! `provision --hub-contacts N` makes users 1..=N contacts of user 0 (the hub), subscribed
//! both ways. Sessions 1..=N log in (user `i`, resource `r{i}`) and watch for presence from
//! the hub carrying `<status>round R</status>`; session 0 logs in as the hub once they are
//! up and sends the rounds one at a time, each after the one before reached every contact
//! or timed out. Time to last is from just before the hub's write to the last contact's
//! read, on the generator's clock.

use super::{finish, spawn_ramp, Ctx, Live, RunClock};
use crate::cli::{FanoutArgs, Ramp};
use crate::client::{next_frame, stream_end, write};
use crate::report::{FanoutFigures, Report};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::{ns, Element, Frame, Jid};
use tokio::sync::watch;
use tokio::time::Instant;

/// Pause between rounds, so one broadcast's tail never overlaps the next.
const BETWEEN_ROUNDS: Duration = Duration::from_millis(100);

/// What the contacts record, per round: how many have it and when the last one read it.
#[derive(Debug)]
struct Rounds {
    epoch: Instant,
    hub: Jid,
    reached: Vec<AtomicU64>,
    /// Microseconds since `epoch` of the latest read.
    last_us: Vec<AtomicU64>,
}

impl Rounds {
    fn arrived(&self, round: usize) {
        let (Some(reached), Some(last)) = (self.reached.get(round), self.last_us.get(round)) else {
            return;
        };
        last.fetch_max(self.epoch.elapsed().as_micros() as u64, Relaxed);
        reached.fetch_add(1, Relaxed);
    }

    /// The round a presence from the hub announces, if it is one.
    fn round_of(&self, el: &Element) -> Option<usize> {
        if el.name() != "presence" || el.attr("type").is_some() {
            return None;
        }
        let from = Jid::parse(el.attr("from")?).ok()?;
        if from.bare() != self.hub {
            return None;
        }
        el.child("status", ns::CLIENT)?
            .text()
            .strip_prefix("round ")?
            .parse()
            .ok()
    }
}

pub async fn run(
    args: FanoutArgs,
    cancel: tokio_util::sync::CancellationToken,
) -> anyhow::Result<Report> {
    anyhow::ensure!(
        !args.target.sm,
        "--sm is not supported by fanout (the hub's reader cannot answer ack requests)"
    );
    let ctx = Ctx::new(args.target, &args.output, cancel)?;
    let accounts = &ctx.connector.target.accounts;
    anyhow::ensure!(
        args.contacts < accounts.users,
        "--users must be above --contacts (user 0 is the hub)"
    );
    let hub_jid = Jid::bare_from(&accounts.username(0), &accounts.domain)?;
    let rounds = Arc::new(Rounds {
        epoch: Instant::now(),
        hub: hub_jid,
        reached: (0..=args.rounds).map(|_| AtomicU64::new(0)).collect(),
        last_us: (0..=args.rounds).map(|_| AtomicU64::new(0)).collect(),
    });
    let clock = RunClock::start();
    let hold = ctx.cancel.child_token();
    let release = hold.clone();
    // Session 0 is the hub: it waits for `go` with the number of contacts online.
    let (go, start) = watch::channel(None::<u64>);
    let (done_tx, mut done) = watch::channel(None::<Vec<Option<f64>>>);
    let ramp = Ramp {
        sessions: args.contacts + 1,
        arrival_rate: args.arrival_rate,
        concurrency: 100,
    };
    let timeout = Duration::from_secs(args.round_timeout_secs);
    let total = args.rounds;
    let shared = rounds.clone();
    let set = spawn_ramp(ctx.clone(), ramp.clone(), move |ctx, n, live| {
        let (hold, rounds, start, done_tx) =
            (hold.clone(), shared.clone(), start.clone(), done_tx.clone());
        async move {
            let result = if n == 0 {
                hub(live, &rounds, start, total, timeout, &done_tx).await
            } else {
                watch_rounds(live, &rounds, hold).await
            };
            if let Err(kind) = result {
                ctx.stats.error(&kind);
            }
        }
    });
    let login_seconds = ctx
        .wait_settled(ramp.sessions, ctx.ramp_deadline(&ramp))
        .await
        .as_secs_f64();
    // The hub counts as up too; what it waits for is its contacts.
    let online = ctx.stats.up.load(Relaxed).saturating_sub(1);
    eprintln!(
        "{online} of {} contacts up after {login_seconds:.1} s",
        args.contacts
    );
    let before = cpu(&ctx);
    let _ = go.send(Some(online));
    let limit = timeout * (args.rounds + 1) + Duration::from_secs(10);
    tokio::select! {
        _ = tokio::time::timeout(limit, done.wait_for(Option::is_some)) => {}
        () = ctx.cancel.cancelled() => {}
    }
    let times = done.borrow().clone().unwrap_or_default();
    let after = cpu(&ctx);
    release.cancel();
    finish(set, Duration::from_secs(10)).await;
    let mut report = ctx.report("fanout", ramp.sessions, login_seconds, &clock);
    report.fanout = Some(figures(online, args.rounds, &times, before, after));
    Ok(report)
}

/// Server and other processes' CPU seconds now.
fn cpu(ctx: &Ctx) -> (f64, f64) {
    let server = ctx.server.and_then(|s| s.cpu_seconds()).unwrap_or(0.0);
    (server, ctx.others_cpu_seconds())
}

fn figures(
    online: u64,
    rounds: u32,
    times: &[Option<f64>],
    before: (f64, f64),
    after: (f64, f64),
) -> FanoutFigures {
    let mut complete: Vec<f64> = times.iter().flatten().copied().collect();
    complete.sort_by(f64::total_cmp);
    let sent = times.len().max(1) as f64;
    FanoutFigures {
        contacts_online: online,
        rounds,
        complete_rounds: complete.len() as u32,
        time_to_last_ms: times.iter().map(|t| t.unwrap_or(f64::NAN)).collect(),
        time_to_last_p50_ms: complete.get(complete.len() / 2).copied().unwrap_or(0.0),
        time_to_last_max_ms: complete.last().copied().unwrap_or(0.0),
        server_cpu_ms_per_broadcast: (after.0 - before.0) * 1000.0 / sent,
        other_cpu_ms_per_broadcast: (after.1 - before.1) * 1000.0 / sent,
    }
}

/// A contact: reads until the run ends, recording each round it sees.
async fn watch_rounds(
    live: Live,
    rounds: &Rounds,
    hold: tokio_util::sync::CancellationToken,
) -> Result<(), String> {
    let Live { mut session, _up } = live;
    let mut buf = [0u8; 4096];
    loop {
        let frame = tokio::select! {
            f = next_frame(&mut session.stream, &mut session.framer, &mut buf) => f?,
            () = hold.cancelled() => break,
        };
        if let Frame::Stanza(el, _) = stream_end(frame)? {
            if let Some(round) = rounds.round_of(&el) {
                rounds.arrived(round);
            }
        }
    }
    session.close().await;
    Ok(())
}

/// The hub: once its contacts are up, sends each round and waits until it reached all of
/// them (or `timeout`); reports each round's time to last contact, `None` when incomplete.
async fn hub(
    live: Live,
    rounds: &Rounds,
    mut start: watch::Receiver<Option<u64>>,
    total: u32,
    timeout: Duration,
    done: &watch::Sender<Option<Vec<Option<f64>>>>,
) -> Result<(), String> {
    let Live { session, _up } = live;
    let (mut reader, mut writer) = tokio::io::split(session.stream);
    let mut framer = session.framer;
    // What the server sends the hub (its contacts' presence) is read and dropped.
    let drain = async {
        let mut buf = [0u8; 4096];
        loop {
            if let Err(kind) = next_frame(&mut reader, &mut framer, &mut buf)
                .await
                .and_then(stream_end)
            {
                return kind;
            }
        }
    };
    let send = async {
        let online = match start.wait_for(Option::is_some).await {
            Ok(n) => n.unwrap_or(0),
            Err(_) => return Err("cancelled".to_owned()),
        };
        let mut times = Vec::with_capacity(total as usize);
        for round in 1..=total as usize {
            tokio::time::sleep(BETWEEN_ROUNDS).await;
            let sent_us = rounds.epoch.elapsed().as_micros() as u64;
            let presence = Element::new("presence", ns::CLIENT)
                .with_child(Element::new("status", ns::CLIENT).with_text(format!("round {round}")));
            write(&mut writer, presence.to_xml(ns::CLIENT).as_bytes()).await?;
            let deadline = Instant::now() + timeout;
            while rounds.reached[round].load(Relaxed) < online && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let complete = rounds.reached[round].load(Relaxed) >= online;
            let last = rounds.last_us[round].load(Relaxed);
            times.push(complete.then(|| last.saturating_sub(sent_us) as f64 / 1000.0));
        }
        Ok(times)
    };
    let outcome = tokio::select! {
        kind = drain => Err(kind),
        sent = send => sent,
    };
    let _ = done.send(Some(outcome.clone().unwrap_or_default()));
    outcome.map(|_| ())
}
