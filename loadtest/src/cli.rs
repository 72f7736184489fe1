//! Command-line interface: one subcommand per scenario plus account provisioning. The
//! argument structs are plain data, so tests build them with `Cli::try_parse_from`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "switchyard-loadtest",
    about = "Load generator for XMPP servers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Hold N authenticated sessions, report when all are up, hold for the duration.
    Idle(IdleArgs),
    /// One-to-one chat at an open-loop aggregate rate, latency measured at the receiver.
    Chat(ChatArgs),
    /// N logins as fast as the server takes them (each session closes once it is ready).
    LoginStorm(StormArgs),
    /// N sessions with stream management; every connection dropped at once, then every
    /// client resumes its session (XEP-0198 §5), or logs in afresh with `--fresh`.
    ResumeStorm(ResumeStormArgs),
    /// Hold N sessions and disconnect/reconnect them at an aggregate rate.
    Churn(ChurnArgs),
    /// One account's presence broadcast to its online contacts (see `provision
    /// --hub-contacts`): time until the last contact has it, and CPU per broadcast.
    Fanout(FanoutArgs),
    /// Create N accounts directly in a Switchyard data directory (server stopped).
    Provision(ProvisionArgs),
    /// Create N accounts over XMPP in-band registration (XEP-0077), for other servers.
    Register(RegisterArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// No TLS at all (the server must allow SASL without TLS).
    Plain,
    /// TCP, then STARTTLS (RFC 6120 §5).
    Starttls,
    /// TLS from the first byte (XEP-0368).
    Tls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mechanism {
    #[value(name = "PLAIN")]
    Plain,
    #[value(name = "SCRAM-SHA-1")]
    ScramSha1,
    #[value(name = "SCRAM-SHA-256")]
    ScramSha256,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha1 => "SCRAM-SHA-1",
            Self::ScramSha256 => "SCRAM-SHA-256",
        }
    }
}

/// The test accounts: what `provision` creates and what the scenarios log in as.
#[derive(Debug, Clone, Args)]
pub struct Accounts {
    /// XMPP domain (stream `to`, JID domainpart, TLS server name).
    #[arg(long, default_value = "localhost")]
    pub domain: String,
    /// Username pattern; `{}` is replaced by the user index (0-based).
    #[arg(long, default_value = "user{}")]
    pub user_pattern: String,
    /// Password of every test account.
    #[arg(long, default_value = "password")]
    pub password: String,
    /// Number of accounts (scenarios with more sessions reuse accounts with distinct
    /// resources).
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
}

impl Accounts {
    /// The account name of user `index`.
    pub fn username(&self, index: usize) -> String {
        self.user_pattern.replace("{}", &index.to_string())
    }

    /// Session `n`'s resource (it logs in as user `n % users`).
    pub fn resource(n: usize) -> String {
        format!("r{n}")
    }

    /// Session `n`'s full JID.
    pub fn full_jid(&self, n: usize) -> String {
        let user = self.username(n % self.users.max(1));
        format!("{user}@{}/{}", self.domain, Self::resource(n))
    }
}

/// Where and how each simulated client connects and logs in.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Server address (loopback only in this project's benchmarks).
    #[arg(long, default_value = "127.0.0.1:5222")]
    pub server: SocketAddr,
    #[command(flatten)]
    pub accounts: Accounts,
    #[arg(long, value_enum, default_value = "starttls")]
    pub transport: Transport,
    #[arg(long, value_enum, default_value = "PLAIN")]
    pub mechanism: Mechanism,
    /// Local source addresses to spread connections over (comma-separated), to go past
    /// the ephemeral-port limit of one address pair; empty lets the OS choose.
    #[arg(long, value_delimiter = ',')]
    pub sources: Vec<IpAddr>,
    /// PEM CA file to verify the server certificate; without it TLS is not verified.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// File of SCRAM salted passwords kept between runs, as clients that remember their
    /// keys do (RFC 5802 §5.1): read at the start, written at the end. Without it every
    /// SCRAM login runs PBKDF2 in the generator.
    #[arg(long)]
    pub scram_cache: Option<PathBuf>,
    /// Seconds one login (connect to roster result) may take.
    #[arg(long, default_value_t = 30)]
    pub login_timeout_secs: u64,
    /// Enable XEP-0198 stream management with resumption after binding (`<enable/>` goes
    /// with the roster get); held sessions answer the server's `<r/>` with their `h`.
    /// Scenarios that hold sessions: idle, login-storm, churn, chat (resume-storm always).
    #[arg(long)]
    pub sm: bool,
}

/// What every scenario reports and how.
#[derive(Debug, Clone, Args)]
pub struct Output {
    /// Print the report as JSON on stdout instead of the human summary.
    #[arg(long)]
    pub json: bool,
    /// PID of the server process, to report its CPU time and memory from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// More server processes (e.g. a cluster's router, with the edge as `--server-pid`):
    /// their CPU seconds are reported per chat step, summed, as `other_cpu_seconds`.
    #[arg(long, value_delimiter = ',')]
    pub other_pid: Vec<u32>,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// How sessions are opened.
#[derive(Debug, Clone, Args)]
pub struct Ramp {
    /// Sessions to open.
    #[arg(long, short = 'n', default_value_t = 1000)]
    pub sessions: usize,
    /// New connections per second (0 = no pacing; `--concurrency` still caps).
    #[arg(long, default_value_t = 500.0)]
    pub arrival_rate: f64,
    /// Logins in flight at most.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
}

#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub ramp: Ramp,
    #[command(flatten)]
    pub output: Output,
    /// Seconds to hold the sessions once all are up.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
}

#[derive(Debug, Clone, Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub output: Output,
    /// New connections per second during the ramp.
    #[arg(long, default_value_t = 500.0)]
    pub arrival_rate: f64,
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Aggregate messages per second offered; several (comma-separated) run as steps.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    pub rate: Vec<f64>,
    /// Keep multiplying the last rate by `--step-factor` until a step fails (p99 above
    /// `--max-p99-ms` or delivery below `--min-delivery`), then run one step at half the
    /// last good rate.
    #[arg(long)]
    pub saturate: bool,
    #[arg(long, default_value_t = 1.5)]
    pub step_factor: f64,
    /// At most this many steps in `--saturate` mode.
    #[arg(long, default_value_t = 16)]
    pub max_steps: usize,
    /// After the first failing step, this many more steps bisect (geometrically) between
    /// the best good rate and the lowest failing one, to narrow the saturation figure.
    #[arg(long, default_value_t = 0)]
    pub refine: u32,
    #[arg(long, default_value_t = 100.0)]
    pub max_p99_ms: f64,
    #[arg(long, default_value_t = 0.95)]
    pub min_delivery: f64,
    /// Body size in bytes (at least the stamp, ~24 bytes).
    #[arg(long, default_value_t = 64)]
    pub body_bytes: usize,
    /// Seconds per rate step.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Seconds to wait after a step for messages still in flight.
    #[arg(long, default_value_t = 3)]
    pub drain_secs: u64,
}

#[derive(Debug, Clone, Args)]
pub struct StormArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub ramp: Ramp,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Debug, Clone, Args)]
pub struct ResumeStormArgs {
    // `--sm` is implied.
    #[command(flatten)]
    pub target: Target,
    // The initial logins (`-n`, `--arrival-rate`); `--concurrency` also bounds the
    // reconnections in flight.
    #[command(flatten)]
    pub ramp: Ramp,
    #[command(flatten)]
    pub output: Output,
    /// Milliseconds between dropping every connection and reconnecting them all.
    #[arg(long, default_value_t = 500)]
    pub pause_ms: u64,
    /// Reconnect with a fresh login (bind the same resource, enable stream management
    /// again) instead of resuming: the reference for the same storm.
    #[arg(long)]
    pub fresh: bool,
    /// Seconds the sessions are held once all are back (and every numbered message was
    /// sent), reading whatever arrives after `<resumed/>` (or the roster result), before
    /// they close.
    #[arg(long, default_value_t = 1)]
    pub hold_secs: u64,
    /// Numbered messages to the sessions, sent from 1 s before the drop on, through the
    /// storm, at `--message-rate`; each is counted where it is read, before the drop or
    /// after: once, never (lost) or more (duplicated).
    #[arg(long, default_value_t = 0)]
    pub messages: usize,
    /// Numbered messages per second, all senders together.
    #[arg(long, default_value_t = 2000.0)]
    pub message_rate: f64,
    /// Sessions sending them (logged in beyond the `-n` held ones, never dropped).
    #[arg(long, default_value_t = 10)]
    pub senders: usize,
}

#[derive(Debug, Clone, Args)]
pub struct ChurnArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub ramp: Ramp,
    #[command(flatten)]
    pub output: Output,
    /// Aggregate disconnect/reconnect cycles per second once the sessions are up.
    #[arg(long, default_value_t = 50.0)]
    pub churn_rate: f64,
    #[arg(long, default_value_t = 30)]
    pub duration_secs: u64,
}

#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub output: Output,
    /// Contacts of user 0 (users 1..=N), each logged in once before the broadcasts; the
    /// accounts need `provision --hub-contacts N` (and `--users` above N).
    #[arg(long, default_value_t = 1000)]
    pub contacts: usize,
    /// Presence changes the hub sends, each after the one before reached every contact.
    #[arg(long, default_value_t = 20)]
    pub rounds: u32,
    /// Seconds one broadcast may take before it counts as incomplete.
    #[arg(long, default_value_t = 10)]
    pub round_timeout_secs: u64,
    /// New connections per second while the contacts log in.
    #[arg(long, default_value_t = 500.0)]
    pub arrival_rate: f64,
}

#[derive(Debug, Clone, Args)]
pub struct ProvisionArgs {
    /// The server's data directory (holds switchyard.db).
    #[arg(long, required_unless_present = "postgres")]
    pub data_dir: Option<PathBuf>,
    /// Write the accounts into PostgreSQL (a cluster's store) instead of SQLite.
    #[arg(long, conflicts_with = "data_dir")]
    pub postgres: Option<String>,
    /// PostgreSQL schema (must exist); migrations are applied first.
    #[arg(long, requires = "postgres")]
    pub schema: Option<String>,
    #[command(flatten)]
    pub accounts: Accounts,
    /// PBKDF2 iterations of the one shared credential.
    #[arg(long, default_value_t = 4096)]
    pub iterations: u32,
    /// Make users 1..=N contacts of user 0 with a mutual (`both`) subscription, for
    /// `fanout`.
    #[arg(long, default_value_t = 0)]
    pub hub_contacts: usize,
}

#[derive(Debug, Clone, Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    pub target: Target,
    /// Registrations in flight at most.
    #[arg(long, default_value_t = 20)]
    pub concurrency: usize,
}
