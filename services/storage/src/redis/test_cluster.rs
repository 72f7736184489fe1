//! A throwaway Redis Cluster for tests: three `redis-server --cluster-enabled yes` masters
//! on loopback, in a temporary directory, joined with `redis-cli --cluster create`. The
//! guard kills them when it drops, also when the test panics.
//!
//! Ports are chosen at random below 22768, so that each node's cluster bus (port + 10000)
//! also stays below 32768, out of the kernel's ephemeral range; a port taken between the
//! check and the start makes the attempt fail, and a new set of ports is tried.
//!
//! Shared by the storage tests and the process-level cluster tests, which include this
//! file by path: it needs only `std`, `tempfile` and the synchronous `redis` client.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MASTERS: usize = 3;
const BUS_OFFSET: u16 = 10_000;
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Running masters; killed on drop.
pub struct RedisCluster {
    pub ports: Vec<u16>,
    children: Vec<Child>,
    dir: tempfile::TempDir,
}

impl RedisCluster {
    /// Starts and joins the cluster, waiting for `cluster_state:ok` on every node. Panics
    /// (never skips) when `redis-server` or `redis-cli` is missing or it does not come up.
    pub fn start() -> Self {
        let mut last = String::new();
        for _ in 0..3 {
            let mut cluster = Self::spawn(free_ports());
            match cluster.join() {
                Ok(()) => return cluster,
                Err(e) => last = format!("{e}\n{}", cluster.logs()),
            }
        }
        panic!("Redis Cluster did not start: {last}");
    }

    /// Seed URLs, one per master.
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    fn spawn(ports: Vec<u16>) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let children = ports.iter().map(|&p| server(dir.path(), p)).collect();
        Self {
            ports,
            children,
            dir,
        }
    }

    fn join(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        for &port in &self.ports {
            wait_until(deadline, || query(port, "PING").is_ok_and(|r| r == "PONG"))
                .map_err(|()| format!("node {port} did not answer PING"))?;
        }
        let nodes: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("redis-cli (Debian package redis-tools) is required: {e}"));
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        for &port in &self.ports {
            wait_until(deadline, || {
                query(port, "CLUSTER INFO").is_ok_and(|info| info.contains("cluster_state:ok"))
            })
            .map_err(|()| format!("node {port} never reported cluster_state:ok"))?;
        }
        Ok(())
    }

    /// The nodes' log files, for a failure message.
    fn logs(&self) -> String {
        self.ports
            .iter()
            .map(|p| {
                let log = std::fs::read_to_string(self.dir.path().join(format!("{p}.log")));
                format!("--- {p}.log\n{}", log.unwrap_or_default())
            })
            .collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn server(dir: &Path, port: u16) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--cluster-enabled", "yes"])
        .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
        .args(["--cluster-node-timeout", "5000"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join(format!("{port}.log")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("redis-server (Debian package redis-server) is required: {e}"))
}

/// One command over a fresh synchronous connection, as text.
fn query(port: u16, command: &str) -> Result<String, redis::RedisError> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut conn = client.get_connection_with_timeout(Duration::from_millis(500))?;
    let mut words = command.split(' ');
    let mut cmd = redis::cmd(words.next().unwrap_or_default());
    for w in words {
        cmd.arg(w);
    }
    cmd.query(&mut conn)
}

fn wait_until(deadline: Instant, mut ready: impl FnMut() -> bool) -> Result<(), ()> {
    while Instant::now() < deadline {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(())
}

/// `MASTERS` ports in 10000..22768 whose bus ports are free too.
fn free_ports() -> Vec<u16> {
    let mut seed = RandomState::new().build_hasher();
    seed.write_u32(std::process::id());
    let mut random = seed.finish();
    let mut ports = Vec::new();
    while ports.len() < MASTERS {
        random = random
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let port = 10_000 + (random >> 33) as u16 % (32_768 - BUS_OFFSET - 10_000);
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if !ports.contains(&port) && free(port) && free(port + BUS_OFFSET) {
            ports.push(port);
        }
    }
    ports
}
