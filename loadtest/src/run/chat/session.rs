//! One chat participant: a sender that follows the conductor's commands and a receiver
//! that stamps latency, polled together in the session's task over the split stream.
//!
//! User `i` sends to user `i + 1` (mod N) at its full JID (`r{i+1}` resource), so every
//! user receives exactly what its predecessor sends. Each body is
//! `{step}.{scheduled send time in µs}.` padded with `x` to the body size; the time is the
//! tick's scheduled instant, not when the write happened, so a generator that falls
//! behind shows up as latency instead of hiding it (no coordinated omission).
//!
//! With `--sm` the receiver counts what it reads (XEP-0198 `h`) and the sender writes the
//! `<a/>` each `<r/>` from the server asks for, between its messages.

use crate::client::sm::{Inbound, SmClient};
use crate::client::{next_frame, stream_end, write};
use crate::run::{Ctx, Live};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::{ns, Frame};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

/// What the conductor tells every sender.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Command {
    /// Send nothing (between steps).
    Pause,
    /// Send one message every `interval`, phase-shifted per user, from `start`.
    Run {
        step: u32,
        interval: Duration,
        start: Instant,
    },
    /// Close the stream and end.
    Close,
}

/// What every participant shares.
#[derive(Debug)]
pub struct Shared {
    /// Stamps are microseconds since this instant.
    pub epoch: Instant,
    /// The step whose deliveries count; others are late.
    pub step: AtomicU32,
    pub users: usize,
    pub body_bytes: usize,
}

pub async fn run(
    ctx: Arc<Ctx>,
    shared: Arc<Shared>,
    commands: watch::Receiver<Command>,
    i: usize,
    live: Live,
) {
    let peer = (i + 1) % shared.users;
    let to = format!(
        "{}@{}/r{peer}",
        ctx.connector.target.accounts.username(peer),
        ctx.connector.target.accounts.domain
    );
    let Live { session, _up } = live;
    let (reader, writer) = tokio::io::split(session.stream);
    let mut framer = session.framer;
    // One answer waiting is enough: a later `<r/>` is answered with the later count.
    let (acks, asked) = mpsc::channel(1);
    let receive = receive(&ctx, &shared, reader, &mut framer, session.sm, acks);
    let send = send(&ctx, &shared, commands, writer, i, &to, asked);
    tokio::select! {
        result = receive => if let Err(kind) = result {
            ctx.stats.error(&kind);
        },
        () = send => {}
    }
}

async fn receive<R: AsyncRead + Unpin>(
    ctx: &Ctx,
    shared: &Shared,
    mut reader: R,
    framer: &mut switchyard_core::Framer,
    mut sm: Option<SmClient>,
    acks: mpsc::Sender<String>,
) -> Result<(), String> {
    let mut buf = [0u8; 4096];
    loop {
        let frame = stream_end(next_frame(&mut reader, framer, &mut buf).await?)?;
        let Frame::Stanza(el, _) = frame else {
            continue;
        };
        if let Some(Inbound::Request(ack)) = sm.as_mut().map(|sm| sm.on_element(&el)) {
            // Full: an answer is already waiting; the server asks again.
            let _ = acks.try_send(ack);
            continue;
        }
        if !el.is("message", ns::CLIENT) {
            continue;
        }
        if el.attr("type") == Some("error") {
            let condition = el
                .child("error", ns::CLIENT)
                .and_then(|e| e.children().next())
                .map_or("undefined", |c| c.name());
            ctx.stats.error(&format!("message-error:{condition}"));
            continue;
        }
        let Some(body) = el.child("body", ns::CLIENT).map(|b| b.text()) else {
            continue;
        };
        let mut fields = body.split('.');
        let step = fields.next().and_then(|s| s.parse::<u32>().ok());
        let stamp = fields.next().and_then(|s| s.parse::<u64>().ok());
        match (step, stamp) {
            (Some(step), Some(stamp)) if step == shared.step.load(Relaxed) => {
                let now = shared.epoch.elapsed().as_micros() as u64;
                ctx.stats.delivered(now.saturating_sub(stamp));
            }
            (Some(_), Some(_)) => ctx.stats.error("delivered-after-drain"),
            _ => ctx.stats.error("foreign-message"),
        }
    }
}

async fn send<W: AsyncWrite + Unpin>(
    ctx: &Ctx,
    shared: &Shared,
    mut commands: watch::Receiver<Command>,
    mut writer: W,
    i: usize,
    to: &str,
    mut asked: mpsc::Receiver<String>,
) {
    let head = format!("<message type='chat' to='{to}'><body>");
    let tail = "</body></message>";
    let mut out = String::with_capacity(head.len() + shared.body_bytes + tail.len());
    loop {
        let command = *commands.borrow_and_update();
        let (step, interval, start) = match command {
            Command::Close => {
                let _ = write(&mut writer, b"</stream:stream>").await;
                let _ = writer.shutdown().await;
                return;
            }
            Command::Pause => {
                tokio::select! {
                    changed = commands.changed() => if changed.is_err() { return },
                    () = ctx.cancel.cancelled() => return,
                    Some(ack) = asked.recv() => if let Err(kind) = write(&mut writer, ack.as_bytes()).await {
                        return ctx.stats.error(&kind);
                    },
                }
                continue;
            }
            Command::Run {
                step,
                interval,
                start,
            } => (step, interval, start),
        };
        // Spread users over the interval (golden-ratio sequence: even, deterministic).
        let phase = (i as f64 * 0.618_033_988_749_895).fract();
        let mut tick = tokio::time::interval_at(start + interval.mul_f64(phase), interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
        loop {
            tokio::select! {
                biased;
                changed = commands.changed() => {
                    if changed.is_err() { return }
                    break;
                }
                () = ctx.cancel.cancelled() => return,
                Some(ack) = asked.recv() => if let Err(kind) = write(&mut writer, ack.as_bytes()).await {
                    return ctx.stats.error(&kind);
                },
                at = tick.tick() => {
                    ctx.stats.offered.fetch_add(1, Relaxed);
                    let stamp = at.saturating_duration_since(shared.epoch).as_micros();
                    out.clear();
                    out.push_str(&head);
                    let body_start = out.len();
                    out.push_str(&format!("{step}.{stamp}."));
                    let pad = shared.body_bytes.saturating_sub(out.len() - body_start);
                    out.extend(std::iter::repeat_n('x', pad));
                    out.push_str(tail);
                    if let Err(kind) = write(&mut writer, out.as_bytes()).await {
                        return ctx.stats.error(&kind);
                    }
                }
            }
        }
    }
}
