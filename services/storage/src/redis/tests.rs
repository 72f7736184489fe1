//! The registry conformance suite and the Redis-only properties, on the machine's Redis
//! and on a three-master Redis Cluster each test starts for itself.

use super::test_cluster::RedisCluster;
use super::*;
use std::time::Instant;

fn prefix() -> String {
    format!(
        "sytest:{}:{}:",
        std::process::id(),
        switchyard_core::token::token(8)
    )
}

/// `SWITCHYARD_TEST_REDIS` names the server (default: the local one); CI fails
/// loudly without it, a laptop skips with a message.
pub(crate) async fn registry() -> Option<RedisRegistry> {
    let url =
        std::env::var("SWITCHYARD_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let urls = [url.clone()];
    let prefix = prefix();
    let servers = RedisServers::at(&urls, false);
    let connect = RedisRegistry::connect(&servers, &prefix);
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(r)) => Some(r),
        _ if std::env::var_os("CI").is_some() => panic!("Redis at {url} is required in CI"),
        _ => {
            eprintln!("SKIPPED: no Redis at {url}; set SWITCHYARD_TEST_REDIS");
            None
        }
    }
}

async fn on_cluster(cluster: &RedisCluster) -> RedisRegistry {
    RedisRegistry::connect(&RedisServers::at(&cluster.urls(), true), &prefix())
        .await
        .expect("connect to the test Redis Cluster")
}

/// Nothing but the edge registry, the epoch and liveness keys is left behind.
async fn assert_clean(reg: &RedisRegistry) {
    let left = reg.all_keys().await.expect("scan");
    let stale: Vec<&String> = left
        .iter()
        .filter(|k| !k.ends_with("edges") && !k.ends_with("epoch") && !k.ends_with(":alive"))
        .collect();
    assert!(
        stale.is_empty(),
        "sessions and indexes are cleaned up: {stale:?}"
    );
}

/// A relocated session is indexed under its new edge only, also when the same move was
/// asked twice at once (a retried `TakeSession`): the loser leaves the winner's entry.
async fn relocation_moves_the_index_entry(reg: &RedisRegistry) {
    let jid = Jid::parse("moving@localhost/r").unwrap();
    reg.bind(SessionRecord::bound(jid.clone(), "edge-r1", 3))
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        reg.relocate(&jid, ("edge-r1", 3), ("edge-r2", 4)),
        reg.relocate(&jid, ("edge-r1", 3), ("edge-r2", 4)),
    );
    let moved: Vec<_> = [a, b].into_iter().filter_map(Result::unwrap).collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert!(reg.index_entries("edge-r1").await.unwrap().is_empty());
    assert_eq!(
        reg.index_entries("edge-r2").await.unwrap(),
        vec![member(&jid, 4)]
    );
    assert_eq!(reg.unbind(&jid, 4).await.unwrap(), Some(moved[0].clone()));
    assert!(reg.index_entries("edge-r2").await.unwrap().is_empty());
}

/// An index entry left behind (a crash between a bind's steps) names a session that has
/// since moved to another edge with the same connection id: neither reaping nor
/// reconciling the first edge removes it, and the entry itself goes.
async fn stale_entries_remove_nobody(reg: &RedisRegistry) {
    let moved = SessionRecord::bound(Jid::parse("stale@localhost/r").unwrap(), "edge-b", 7);
    reg.bind(moved.clone()).await.unwrap();
    for edge in ["edge-a", "edge-c"] {
        let mut sadd = redis::cmd("SADD");
        sadd.arg(reg.index_key(edge))
            .arg(member(&moved.jid, 7))
            .arg("not an entry");
        reg.run::<()>(&sadd).await.unwrap();
    }
    assert!(reg.reconcile("edge-a", &[]).await.unwrap().is_empty());
    assert!(reg.reap("edge-c").await.unwrap().is_empty());
    for edge in ["edge-a", "edge-c"] {
        assert!(reg.index_entries(edge).await.unwrap().is_empty(), "{edge}");
    }
    assert_eq!(*reg.sessions(&moved.jid.bare()).await.unwrap(), vec![moved]);
    assert!(reg
        .unbind(&Jid::parse("stale@localhost/r").unwrap(), 7)
        .await
        .unwrap()
        .is_some());
}

/// `n` sessions on one edge all log out at once: every unbind succeeds and nothing stays
/// in Redis; `n` more, of which the edge holds a tenth, are reconciled.
async fn mass_logout(reg: Arc<RedisRegistry>, n: u64) {
    let jid = |i: u64| Jid::parse(&format!("mass{i}@localhost/r")).unwrap();
    let run_all = |calls: Vec<tokio::task::JoinHandle<()>>| async {
        for c in calls {
            c.await.unwrap();
        }
    };
    let binds = (0..n).map(|i| {
        let reg = reg.clone();
        tokio::spawn(async move {
            reg.bind(SessionRecord::bound(jid(i), "edge-mass", i))
                .await
                .unwrap();
        })
    });
    run_all(binds.collect()).await;
    let started = Instant::now();
    let unbinds = (0..n).map(|i| {
        let reg = reg.clone();
        tokio::spawn(async move {
            assert!(reg.unbind(&jid(i), i).await.unwrap().is_some());
        })
    });
    run_all(unbinds.collect()).await;
    eprintln!("{n} unbinds at once: {:?}", started.elapsed());
    assert!(reg.index_entries("edge-mass").await.unwrap().is_empty());
    assert_clean(&reg).await;

    let binds = (0..n).map(|i| {
        let reg = reg.clone();
        tokio::spawn(async move {
            reg.bind(SessionRecord::bound(jid(i), "edge-mass", i))
                .await
                .unwrap();
        })
    });
    run_all(binds.collect()).await;
    let held: Vec<(Jid, u64)> = (0..n).step_by(10).map(|i| (jid(i), i)).collect();
    let started = Instant::now();
    let removed = reg.reconcile("edge-mass", &held).await.unwrap();
    eprintln!(
        "reconciled {} of {n}: {:?}",
        removed.len(),
        started.elapsed()
    );
    assert_eq!(removed.len() as u64, n - held.len() as u64);
    assert!(removed.iter().all(|r| r.conn % 10 != 0));
    assert_eq!(
        reg.index_entries("edge-mass").await.unwrap().len(),
        held.len()
    );
    assert_eq!(
        reg.reconcile("edge-mass", &[]).await.unwrap().len(),
        held.len()
    );
    assert_clean(&reg).await;
}

#[tokio::test]
async fn conforms_on_a_real_redis() {
    let Some(reg) = registry().await else { return };
    crate::conformance::registry(&reg).await;
    stale_entries_remove_nobody(&reg).await;
    relocation_moves_the_index_entry(&reg).await;
    assert_clean(&reg).await;
    reg.delete_all_keys().await.unwrap();
    assert!(reg.all_keys().await.unwrap().is_empty());
}

#[tokio::test]
async fn ten_thousand_logouts_at_once_leave_nothing_behind() {
    let Some(reg) = registry().await else { return };
    let reg = Arc::new(reg);
    mass_logout(reg.clone(), 10_000).await;
    reg.delete_all_keys().await.unwrap();
}

/// The whole Redis Cluster story in one test, so the cluster starts once: conformance,
/// the cases only Redis has, a mass logout, notifications heard from every node, and
/// clean-up reaching every master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_on_a_redis_cluster() {
    let started = Instant::now();
    let cluster = RedisCluster::start();
    eprintln!("cluster up in {:?}", started.elapsed());
    let reg = on_cluster(&cluster).await;
    let mut changes = reg.changes().expect("notifications");
    assert_eq!(changes.recv().await, Some(Change::Unknown), "subscribed");
    // The scripts' own PUBLISH works on a cluster.
    let first = SessionRecord::bound(Jid::parse("first@localhost/r").unwrap(), "edge-1", 1);
    reg.bind(first.clone()).await.unwrap();
    reg.unbind(&first.jid, 1).await.unwrap();
    for _ in 0..2 {
        let change = tokio::time::timeout(Duration::from_secs(5), changes.recv()).await;
        assert_eq!(
            change.ok().flatten(),
            Some(Change::Account(first.jid.bare()))
        );
    }

    crate::conformance::registry(&reg).await;
    stale_entries_remove_nobody(&reg).await;
    assert_clean(&reg).await;

    // Every node's PUBLISH reaches the one subscription.
    for &port in &cluster.ports {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        let mut node = client.get_multiplexed_async_connection().await.unwrap();
        let mut publish = redis::cmd("PUBLISH");
        publish
            .arg(reg.changes_channel())
            .arg(format!("n{port}@localhost"));
        publish.query_async::<()>(&mut node).await.unwrap();
    }
    let mut heard = Vec::new();
    while heard.len() < cluster.ports.len() {
        match tokio::time::timeout(Duration::from_secs(5), changes.recv()).await {
            Ok(Some(Change::Account(jid))) if jid.local().is_some_and(|l| l.starts_with('n')) => {
                heard.push(jid);
            }
            Ok(Some(_)) => {} // the suite's own changes
            other => panic!("notification missing: {other:?} after {heard:?}"),
        }
    }

    let reg = Arc::new(reg);
    mass_logout(reg.clone(), 2_000).await;

    // Keys on every master, all found and deleted.
    for i in 0..30 {
        let jid = Jid::parse(&format!("spread{i}@localhost/r")).unwrap();
        reg.bind(SessionRecord::bound(jid, format!("edge-{i}"), i))
            .await
            .unwrap();
    }
    let per_node = |cluster: &RedisCluster, prefix: String| {
        let ports = cluster.ports.clone();
        async move {
            let mut counts = Vec::new();
            for port in ports {
                let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
                let mut node = client.get_multiplexed_async_connection().await.unwrap();
                let mut keys = redis::cmd("KEYS");
                keys.arg(format!("{prefix}*"));
                let found: Vec<String> = keys.query_async(&mut node).await.unwrap();
                counts.push(found.len());
            }
            counts
        }
    };
    let before = per_node(&cluster, reg.prefix.clone()).await;
    assert!(
        before.iter().all(|&n| n > 0),
        "keys on every master: {before:?}"
    );
    reg.delete_all_keys().await.unwrap();
    let after = per_node(&cluster, reg.prefix.clone()).await;
    assert_eq!(after, vec![0; cluster.ports.len()]);
    eprintln!("Redis Cluster test: {:?}", started.elapsed());
}

/// Redis over TLS (`rediss://`) with a CA of its own (`redis.ca_path`): a private
/// `redis-server` with a TLS port and a certificate signed by a test CA; the registry
/// works through it, and a client trusting another CA is refused.
#[tokio::test]
async fn rediss_with_a_ca_of_its_own() {
    use crate::test_tls::{free_port, listening, write_certificates, Killed};
    let dir = tempfile::tempdir().unwrap();
    write_certificates(dir.path());
    let port = free_port();
    let path = |f: &str| dir.path().join(f).display().to_string();
    let _server = Killed(
        std::process::Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--tls-port", &port.to_string()])
            .args(["--tls-cert-file", &path("server.pem")])
            .args(["--tls-key-file", &path("server-key.pem")])
            .args(["--tls-ca-cert-file", &path("ca.pem")])
            .args(["--tls-auth-clients", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (CI installs it)"),
    );
    listening(port).await;
    let url = format!("rediss://127.0.0.1:{port}");
    let servers = |ca: &str| RedisServers {
        urls: vec![url.clone()],
        cluster: false,
        ca_pem: Some(std::fs::read(dir.path().join(ca)).unwrap()),
    };
    let result = async {
        let registry = RedisRegistry::connect(&servers("ca.pem"), &prefix())
            .await
            .expect("connected over TLS");
        let jid = Jid::parse("tls@localhost/r").unwrap();
        registry
            .bind(SessionRecord::bound(jid.clone(), "edge", 1))
            .await
            .unwrap();
        let held = registry.sessions(&jid.bare()).await.unwrap();
        assert_eq!(held.len(), 1);
        let refused = RedisRegistry::connect(&servers("other-ca.pem"), &prefix()).await;
        assert!(refused.is_err(), "a certificate from another CA is refused");
    };
    tokio::time::timeout(Duration::from_secs(30), result)
        .await
        .expect("done in time");
}
