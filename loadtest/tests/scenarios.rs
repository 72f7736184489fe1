//! The generator against a real Switchyard started in this process on 127.0.0.1:0: a
//! short chat where every message must arrive, a login storm, idle and churn, over
//! plaintext, STARTTLS and direct TLS, a resume storm (XEP-0198) and its fresh-login
//! reference, a saturation run with no good step, plus bulk provisioning into a data
//! directory.

use clap::Parser;
use switchyard::config::Config;
use switchyard::serve::Running;
use switchyard_core::sasl::StoredCredentials;
use switchyard_core::Jid;
use switchyard_loadtest::cli::{Cli, Command};
use switchyard_loadtest::report::Report;
use tokio_util::sync::CancellationToken;

const USERS: usize = 6;

struct Server {
    running: Running,
    _dir: tempfile::TempDir,
}

async fn server() -> Server {
    server_with(USERS).await
}

/// A fresh server with accounts `load0` .. `load{users - 1}`.
async fn server_with(users: usize) -> Server {
    let server = start(tempfile::tempdir().unwrap()).await;
    let creds = StoredCredentials::from_password("pw", 4096).unwrap();
    for i in 0..users {
        let jid = Jid::parse(&format!("load{i}@localhost")).unwrap();
        let accounts = server
            .running
            .accounts
            .as_ref()
            .expect("all-in-one stores accounts");
        accounts.create(&jid, &creds).await.unwrap();
    }
    server
}

/// A server on `dir` as it is.
async fn start(dir: tempfile::TempDir) -> Server {
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    config.listen.c2s = "127.0.0.1:0".into();
    config.listen.c2s_direct_tls = "127.0.0.1:0".into();
    config.listen.websocket = String::new();
    config.tls.required = false;
    config.admin.listen = "127.0.0.1:0".into();
    let running = switchyard::serve::start(config).await.unwrap();
    Server { running, _dir: dir }
}

async fn run(server: &Server, direct_tls: bool, args: &str) -> Report {
    run_as(server, direct_tls, USERS, args).await
}

async fn run_as(server: &Server, direct_tls: bool, users: usize, args: &str) -> Report {
    let addr = if direct_tls {
        server.running.c2s_direct_tls
    } else {
        server.running.c2s
    };
    let line = format!(
        "switchyard-loadtest {args} --server {} --users {users} --user-pattern load{{}} --password pw --quiet --server-pid {}",
        addr.unwrap(),
        std::process::id()
    );
    let cli = Cli::try_parse_from(line.split_whitespace()).unwrap();
    switchyard_loadtest::execute(cli.command, CancellationToken::new())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_delivers_every_message_over_each_transport() {
    let server = server().await;
    for (transport, mechanism, direct) in [
        ("plain", "PLAIN", false),
        ("starttls", "SCRAM-SHA-256", false),
        ("tls", "SCRAM-SHA-1", true),
    ] {
        let args = format!(
            "chat --transport {transport} --mechanism {mechanism} --rate 300 --duration-secs 1 --drain-secs 3"
        );
        let report = run(&server, direct, &args).await;
        assert_eq!(report.errors.len(), 0, "{transport}: {:?}", report.errors);
        assert_eq!(report.sessions_established, USERS as u64);
        let step = report.steps[0];
        assert!(step.offered > 200, "{transport}: {step:?}");
        assert_eq!(step.delivered, step.offered, "{transport}: {step:?}");
        assert!(step.latency.p99_ms < 1000.0);
        assert!(step.server_cpu_seconds >= 0.0);
    }
}

/// `--saturate` whose first step fails (no p99 is within -1 ms): with no good step there
/// is no saturation and no half-rate step; the failed step is reported as a step, not as
/// the half-rate one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturation_with_no_good_step_has_no_half_rate_step() {
    let server = server().await;
    let args = "chat --transport plain --mechanism PLAIN --rate 300 --saturate --max-p99-ms=-1 \
                --duration-secs 1 --drain-secs 1";
    let report = run(&server, false, args).await;
    assert_eq!(report.steps.len(), 1, "{:?}", report.steps);
    assert!(!report.steps[0].good);
    assert!(report.saturation.is_none());
    assert!(
        report.half_saturation.is_none(),
        "{:?}",
        report.half_saturation
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_idle_and_churn_log_in_cleanly() {
    let server = server().await;
    let storm = run(
        &server,
        false,
        "login-storm -n 40 --arrival-rate 0 --concurrency 8 --transport starttls",
    )
    .await;
    assert_eq!(storm.sessions_established, 40, "{:?}", storm.errors);
    assert!(storm.errors.is_empty() && storm.logins_per_second > 0.0);
    let idle = run(
        &server,
        false,
        "idle -n 12 --duration-secs 1 --transport plain",
    )
    .await;
    let figures = idle.idle.unwrap();
    assert_eq!(figures.sessions_held, 12, "{:?}", idle.errors);
    assert!(figures.server_after.rss_kib > 0);
    let idle_sm = run(
        &server,
        false,
        "idle -n 12 --duration-secs 1 --transport starttls --sm",
    )
    .await;
    assert!(
        idle_sm.sm && idle_sm.errors.is_empty(),
        "{:?}",
        idle_sm.errors
    );
    assert_eq!(idle_sm.idle.unwrap().sessions_held, 12);
    let churn = run(
        &server,
        false,
        "churn -n 6 --churn-rate 20 --duration-secs 2 --transport plain",
    )
    .await;
    assert!(churn.errors.is_empty(), "{:?}", churn.errors);
    assert!(churn.churn.unwrap().reconnects > 5);
}

/// Every session of a resume storm comes back: resumed with nothing resent and the
/// server's `h` matching what the client sent, or (`--fresh`) logged in again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_storm_brings_every_session_back() {
    const N: usize = 20;
    let server = server_with(N).await;
    for (mode, transport) in [("", "starttls"), ("--fresh", "plain"), ("", "plain")] {
        let args = format!(
            "resume-storm -n {N} --arrival-rate 0 --concurrency 10 --pause-ms 200 --transport {transport} {mode}"
        );
        let report = run_as(&server, false, N, &args).await;
        assert!(report.sm, "stream management is implied");
        assert_eq!(report.sessions_established, N as u64, "{:?}", report.errors);
        assert!(report.errors.is_empty(), "{args}: {:?}", report.errors);
        let r = report.resume.expect("resume figures");
        assert_eq!(r.mode, if mode.is_empty() { "resume" } else { "fresh" });
        assert_eq!(
            (r.reconnects, r.succeeded, r.failed),
            (N as u64, N as u64, 0),
            "{args}: {r:?}"
        );
        assert_eq!(r.time.count, N as u64);
        assert!(r.all_back_seconds > 0.0 && r.per_second > 0.0, "{r:?}");
        assert_eq!(r.h_mismatches, 0, "{r:?}");
        if r.mode == "resume" {
            assert_eq!(r.stanzas_after, 0, "{args}: nothing resent: {r:?}");
        }
        assert!(r.errors_after.is_empty(), "{r:?}");
    }
}

fn provision_args(line: &str) -> switchyard_loadtest::cli::ProvisionArgs {
    let Command::Provision(args) = Cli::try_parse_from(line.split_whitespace())
        .unwrap()
        .command
    else {
        panic!("parsed as provision");
    };
    args
}

/// `fanout` with 3 contacts logged in, against a data directory provisioned with
/// `extra` (`--hub-contacts N`, or nothing).
async fn fanout(
    extra: &str,
    rounds: u32,
    timeout_secs: u32,
) -> switchyard_loadtest::report::FanoutFigures {
    let dir = tempfile::tempdir().unwrap();
    let args = provision_args(&format!(
        "switchyard-loadtest provision --data-dir {} --users {USERS} --user-pattern load{{}} --password pw {extra}",
        dir.path().display()
    ));
    switchyard_loadtest::provision::run(&args).await.unwrap();
    let server = start(dir).await;
    let report = run(
        &server,
        false,
        &format!("fanout --transport plain --contacts 3 --rounds {rounds} --round-timeout-secs {timeout_secs}"),
    )
    .await;
    assert_eq!(report.errors.len(), 0, "{:?}", report.errors);
    report.fanout.expect("fanout figures")
}

/// Every round of the hub's presence reaches every contact; a contact provisioned beyond
/// those logged in changes nothing; without the roster rows no round reaches anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_reaches_every_contact_every_round() {
    let figures = fanout("--hub-contacts 4", 5, 5).await;
    assert_eq!(figures.contacts_online, 3);
    assert_eq!(figures.complete_rounds, 5, "{figures:?}");
    assert_eq!(figures.time_to_last_ms.len(), 5);
    assert!(figures
        .time_to_last_ms
        .iter()
        .all(|t| (0.0..5000.0).contains(t)));
    assert_eq!(fanout("", 1, 1).await.complete_rounds, 0);
}

#[tokio::test]
async fn provision_is_rerunnable() {
    let dir = tempfile::tempdir().unwrap();
    let args = provision_args(&format!(
        "switchyard-loadtest provision --data-dir {} --users 50",
        dir.path().display()
    ));
    let first = switchyard_loadtest::provision::run(&args).await.unwrap();
    assert_eq!((first.created, first.existing), (50, 0));
    let again = switchyard_loadtest::provision::run(&args).await.unwrap();
    assert_eq!((again.created, again.existing), (0, 50));
}
