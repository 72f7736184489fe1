//! CPU time and memory: the generator's own (getrusage) and the server's, read from
//! `/proc/PID/stat` and `/proc/PID/status` when its PID is given.

use serde::Serialize;
use std::time::Duration;

/// Clock ticks per second in `/proc/PID/stat` (USER_HZ, 100 on Linux's ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// The generator's user + system CPU seconds so far.
pub fn own_cpu_seconds() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    let Ok(usage) = getrusage(UsageWho::RUSAGE_SELF) else {
        return 0.0;
    };
    let secs = |t: nix::sys::time::TimeVal| {
        Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000).as_secs_f64()
    };
    secs(usage.user_time()) + secs(usage.system_time())
}

/// A server process observed through /proc.
#[derive(Debug, Clone, Copy)]
pub struct Server {
    pub pid: u32,
}

/// One reading of a server process.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Sample {
    pub cpu_seconds: f64,
    pub rss_kib: u64,
}

impl Server {
    /// User + system CPU seconds of the process (all threads).
    pub fn cpu_seconds(self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        // The command name may hold spaces; fields are counted after its closing paren.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        Some((utime + stime) / TICKS_PER_SECOND)
    }

    /// Resident set size in KiB.
    pub fn rss_kib(self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    }

    pub fn sample(self) -> Sample {
        Sample {
            cpu_seconds: self.cpu_seconds().unwrap_or(0.0),
            rss_kib: self.rss_kib().unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = Server {
            pid: std::process::id(),
        };
        assert!(me.rss_kib().unwrap() > 0);
        assert!(me.cpu_seconds().is_some());
        assert!(own_cpu_seconds() >= 0.0);
    }
}
