//! The standard process metrics, read from `/proc/self` at each scrape, with CPU time in
//! fractional seconds: the `prometheus` crate's collector counts whole seconds, which
//! makes `rate(process_cpu_seconds_total[1m])` a staircase for a process that uses less
//! than a core.
//!
//! Names and meanings are Prometheus' (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`,
//! `process_max_fds`, `process_start_time_seconds`, `process_threads`).

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Gauge, Opts};

/// Clock ticks per second of `/proc`'s CPU times (Linux's USER_HZ, 100 on every
/// architecture Switchyard builds for).
const TICKS_PER_SECOND: f64 = 100.0;

pub struct ProcessMetrics {
    cpu: Counter,
    resident: Gauge,
    virtual_bytes: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    start_time: Gauge,
    threads: Gauge,
    descs: Vec<Desc>,
}

impl ProcessMetrics {
    pub fn new() -> Self {
        let gauge =
            |name: &str, help: &str| Gauge::with_opts(Opts::new(name, help)).expect("valid metric");
        let cpu = Counter::with_opts(Opts::new(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds",
        ))
        .expect("valid metric");
        let metrics = [
            gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
            ),
            gauge(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
            ),
            gauge("process_open_fds", "Number of open file descriptors"),
            gauge("process_max_fds", "Maximum number of open file descriptors"),
            gauge(
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
            ),
            gauge("process_threads", "Number of OS threads in the process"),
        ];
        let mut descs: Vec<Desc> = cpu.desc().into_iter().cloned().collect();
        for g in &metrics {
            descs.extend(g.desc().into_iter().cloned());
        }
        let [resident, virtual_bytes, open_fds, max_fds, start_time, threads] = metrics;
        Self {
            cpu,
            resident,
            virtual_bytes,
            open_fds,
            max_fds,
            start_time,
            threads,
            descs,
        }
    }

    /// Reads `/proc/self`; a file that cannot be read leaves its metrics as they were.
    fn refresh(&self) {
        if let Some(stat) = Stat::read() {
            let cpu = (stat.utime + stat.stime) as f64 / TICKS_PER_SECOND;
            let grown = cpu - self.cpu.get();
            if grown > 0.0 {
                self.cpu.inc_by(grown);
            }
            self.virtual_bytes.set(stat.vsize as f64);
            self.threads.set(stat.threads as f64);
            if let Some(boot) = boot_time() {
                self.start_time
                    .set(boot + stat.start_ticks as f64 / TICKS_PER_SECOND);
            }
        }
        if let Some(kib) = status_field("VmRSS:") {
            self.resident.set((kib * 1024) as f64);
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(fds.count() as f64);
        }
        if let Some(max) = max_open_files() {
            self.max_fds.set(max as f64);
        }
    }
}

impl Default for ProcessMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector for ProcessMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.refresh();
        let mut families = self.cpu.collect();
        for g in [
            &self.resident,
            &self.virtual_bytes,
            &self.open_fds,
            &self.max_fds,
            &self.start_time,
            &self.threads,
        ] {
            families.extend(g.collect());
        }
        families
    }
}

/// The fields of `/proc/self/stat` used here (proc(5)).
struct Stat {
    utime: u64,
    stime: u64,
    threads: u64,
    start_ticks: u64,
    vsize: u64,
}

impl Stat {
    fn read() -> Option<Self> {
        let text = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name (field 2) is in parentheses and may hold spaces: the fields
        // after it start after the last `)`.
        let rest = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3 (state): field N is at index N - 3.
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        Some(Self {
            utime: field(14)?,
            stime: field(15)?,
            threads: field(20)?,
            start_ticks: field(22)?,
            vsize: field(23)?,
        })
    }
}

/// A `kB` field of `/proc/self/status`.
fn status_field(name: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// The soft limit on open files (`/proc/self/limits`).
fn max_open_files() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Seconds since the Unix epoch at boot (`btime` in `/proc/stat`).
fn boot_time() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("btime "))?;
    line["btime ".len()..].trim().parse::<f64>().ok()
}
