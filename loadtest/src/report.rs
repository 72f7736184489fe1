//! The result of a run, printed as a human summary or as JSON (`--json`). Every scenario
//! fills the common part; chat adds its rate steps and idle its memory figures.

use crate::procstat::Sample;
use crate::stats::Percentiles;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub server: String,
    pub transport: String,
    pub mechanism: &'static str,
    /// Whether the sessions enabled XEP-0198 stream management (`--sm`).
    pub sm: bool,
    /// Sessions that completed login (roster result received), over the whole run.
    pub sessions_established: u64,
    /// Sessions requested.
    pub sessions_requested: usize,
    /// Seconds from the first connection to the last login settled.
    pub login_seconds: f64,
    pub logins_per_second: f64,
    pub login_time: Percentiles,
    pub errors: BTreeMap<String, u64>,
    /// The generator's own CPU seconds (user + system) for the whole run.
    pub generator_cpu_seconds: f64,
    pub wall_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle: Option<IdleFigures>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// Chat: the last step that met the latency and delivery bounds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saturation: Option<Step>,
    /// Chat with `--saturate`: the step run at half the saturation rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub half_saturation: Option<Step>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub churn: Option<ChurnFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fanout: Option<FanoutFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume: Option<ResumeFigures>,
}

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct IdleFigures {
    pub server_before: Sample,
    pub server_after: Sample,
    pub sessions_held: u64,
    pub kib_per_session: f64,
}

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct ChurnFigures {
    pub reconnects: u64,
    pub reconnects_per_second: f64,
}

/// `fanout`: presence broadcasts from one account to its online contacts.
#[derive(Debug, Default, Clone, Serialize)]
pub struct FanoutFigures {
    /// Contacts logged in when the broadcasts began.
    pub contacts_online: u64,
    pub rounds: u32,
    /// Rounds that reached every online contact within the round timeout.
    pub complete_rounds: u32,
    /// Per round: milliseconds from the hub's write to the last contact's read.
    pub time_to_last_ms: Vec<f64>,
    pub time_to_last_p50_ms: f64,
    pub time_to_last_max_ms: f64,
    /// Server CPU (and `--other-pid` processes') over all rounds, per broadcast.
    pub server_cpu_ms_per_broadcast: f64,
    pub other_cpu_ms_per_broadcast: f64,
}

/// `resume-storm`: every connection dropped at once, then every client back, resuming
/// (`mode` "resume") or logging in afresh (`mode` "fresh").
#[derive(Debug, Default, Clone, Serialize)]
pub struct ResumeFigures {
    pub mode: &'static str,
    /// Sessions up (stream management enabled) when the connections were dropped.
    pub sessions_dropped: u64,
    /// Milliseconds between the drop and the reconnections.
    pub pause_ms: u64,
    /// Clients that reconnected (one per dropped session).
    pub reconnects: u64,
    /// `<resumed/>` received (fresh: roster result received).
    pub succeeded: u64,
    pub failed: u64,
    /// Why reconnections failed, by kind (`resume-failed:item-not-found` is a `<failed/>`
    /// with that condition); reconnections still pending at the deadline are
    /// `unsettled`.
    pub failures: BTreeMap<String, u64>,
    /// Successes per second over `all_back_seconds`.
    pub per_second: f64,
    /// From the first reconnection to the last success.
    pub all_back_seconds: f64,
    /// Per client, from its TCP connect to `<resumed/>` (fresh: to the roster result).
    pub time: Percentiles,
    /// Server CPU seconds from the first reconnection until every one settled.
    pub server_cpu_seconds: f64,
    pub server_cpu_ms_per_success: f64,
    /// Server CPU seconds between the drop and the reconnections (detaching).
    pub server_cpu_seconds_drop: f64,
    /// Resumed streams whose `<resumed h/>` was not the number of stanzas the client sent.
    pub h_mismatches: u64,
    /// The numbered messages sent through the storm (`--messages`), and their fate.
    pub messages: Option<crate::client::Tally>,
    /// Stanzas read after `<resumed/>` (fresh: after the roster result) while held; the
    /// client acknowledged everything it had read, so after a resumption any is a resend.
    /// Fresh logins read one each at least: the echo of their own initial presence.
    pub stanzas_after: u64,
    pub sessions_with_stanzas_after: u64,
    /// Errors of the sessions held after coming back, by kind.
    pub errors_after: BTreeMap<String, u64>,
}

/// One chat step at one offered rate.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Step {
    pub offered_rate: f64,
    pub seconds: f64,
    pub offered: u64,
    pub delivered: u64,
    pub lost: u64,
    pub delivered_per_second: f64,
    pub latency: Percentiles,
    pub server_cpu_seconds: f64,
    pub server_cpu_seconds_per_100k: f64,
    /// CPU of the `--other-pid` processes (a cluster's router), summed; 0 without them.
    pub other_cpu_seconds: f64,
    pub other_cpu_seconds_per_100k: f64,
    pub generator_cpu_seconds: f64,
    /// Whether the step met `--max-p99-ms` and `--min-delivery`.
    pub good: bool,
}

impl Report {
    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string_pretty(self)?);
        } else {
            print!("{}", self.human());
        }
        Ok(())
    }

    fn human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} against {} ({}, {}{})",
            self.scenario,
            self.server,
            self.transport,
            self.mechanism,
            if self.sm { ", stream management" } else { "" }
        );
        let lt = &self.login_time;
        let _ = writeln!(
            s,
            "  sessions: {} of {} established; {:.0} logins/s over {:.2} s; login p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.sessions_established, self.sessions_requested, self.logins_per_second,
            self.login_seconds, lt.p50_ms, lt.p99_ms, lt.max_ms
        );
        if let Some(i) = &self.idle {
            let _ = writeln!(
                s,
                "  idle: {} held; server RSS {} -> {} KiB = {:.1} KiB/session",
                i.sessions_held, i.server_before.rss_kib, i.server_after.rss_kib, i.kib_per_session
            );
        }
        if let Some(c) = &self.churn {
            let _ = writeln!(
                s,
                "  churn: {} reconnects, {:.1}/s",
                c.reconnects, c.reconnects_per_second
            );
        }
        if let Some(f) = &self.fanout {
            let _ = writeln!(
                s,
                "  fanout: {} contacts, {}/{} rounds complete; time to last contact p50 {:.2} ms, max {:.2} ms; server CPU {:.2} ms (+ others {:.2} ms) per broadcast",
                f.contacts_online, f.complete_rounds, f.rounds, f.time_to_last_p50_ms,
                f.time_to_last_max_ms, f.server_cpu_ms_per_broadcast, f.other_cpu_ms_per_broadcast
            );
        }
        if let Some(r) = &self.resume {
            let t = &r.time;
            let _ = writeln!(
                s,
                "  {}: {} dropped; {} of {} back ({} failed {:?}) in {:.2} s = {:.0}/s; per client p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; server CPU {:.2} s ({:.3} ms each), {:.2} s while detaching; h mismatches {}; stanzas after {} in {} sessions; errors after {:?}",
                r.mode, r.sessions_dropped, r.succeeded, r.reconnects, r.failed, r.failures,
                r.all_back_seconds, r.per_second, t.p50_ms, t.p90_ms, t.p99_ms, t.max_ms,
                r.server_cpu_seconds, r.server_cpu_ms_per_success, r.server_cpu_seconds_drop,
                r.h_mismatches, r.stanzas_after, r.sessions_with_stanzas_after, r.errors_after
            );
            if let Some(m) = &r.messages {
                let _ = writeln!(
                    s,
                    "  numbered messages: {} sent, {} read once, {} lost, {} duplicated",
                    m.sent, m.once, m.lost, m.duplicated
                );
            }
        }
        for step in &self.steps {
            let _ = writeln!(s, "  {}", step.line());
        }
        if let Some(step) = &self.saturation {
            let _ = writeln!(s, "  saturation: {}", step.line());
        }
        if let Some(step) = &self.half_saturation {
            let _ = writeln!(s, "  half saturation: {}", step.line());
        }
        let _ = writeln!(s, "  errors: {:?}", self.errors);
        let _ = writeln!(
            s,
            "  generator CPU {:.2} s over {:.1} s wall",
            self.generator_cpu_seconds, self.wall_seconds
        );
        s
    }
}

impl Step {
    fn line(&self) -> String {
        let l = &self.latency;
        format!(
            "rate {:.0}/s: offered {} delivered {} lost {} ({:.0}/s); latency p50 {:.2} p90 {:.2} p99 {:.2} max {:.2} ms; server CPU {:.2} s ({:.2} s/100k msgs); generator CPU {:.2} s{}",
            self.offered_rate, self.offered, self.delivered, self.lost, self.delivered_per_second,
            l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, self.server_cpu_seconds,
            self.server_cpu_seconds_per_100k, self.generator_cpu_seconds,
            if self.good { "" } else { " [over bounds]" }
        )
    }
}
