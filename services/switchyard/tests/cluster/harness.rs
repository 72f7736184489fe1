//! A cluster of real `switchyard` processes on loopback: routers and edges with their own
//! configuration files, sharing the machine's PostgreSQL (a schema of their own) and
//! Redis (a key prefix of their own), or a Redis Cluster a test started. Without those
//! services CI fails loudly and a laptop skips with a message. The edge-router link runs
//! with mutual TLS, as in production: a CA and a certificate per process in `certs/`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
const PG: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const REDIS: &str = "redis://127.0.0.1:6379";
/// `auth.decoy_secret` of every process (edges refuse to start without one).
pub const DECOY_SECRET: &str = "the cluster test's decoy secret, shared by every edge";
/// The routers' certificate, named as the default `cluster.tls_server_name`.
pub const ROUTER_CERT: &str = "switchyard-router";

/// One `switchyard serve` process.
pub struct Proc {
    pub child: Child,
    pub addr: SocketAddr,
    /// An edge's WebSocket listener (RFC 7395).
    pub websocket: Option<SocketAddr>,
    /// An edge's XEP-0114 component listener, when components are configured.
    pub component: Option<SocketAddr>,
    /// The admin listener (metrics, health; the admin API on a router).
    pub admin: Option<SocketAddr>,
}

impl Proc {
    /// `kill -9`.
    pub async fn kill_9(&mut self) {
        self.child.start_kill().expect("SIGKILL");
        let _ = self.child.wait().await;
    }
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    /// The registry's Redis: one URL, or the seed nodes of a Redis Cluster.
    pub redis: Vec<String>,
    /// `redis.cluster`: `redis` is a Redis Cluster the test owns (and cleans up itself).
    pub redis_cluster: bool,
    /// TOML appended to every process's configuration.
    pub extra: String,
    /// `cluster.edge_ttl_secs`: routers beat (heartbeats, reaping, the registry check)
    /// every third of it.
    pub edge_ttl_secs: u64,
    pub schema: String,
    pub prefix: String,
    pub routers: Vec<Proc>,
    pub edges: Vec<Proc>,
    pub cert_der: Vec<u8>,
}

fn skip_or_fail(what: &str) -> Option<Cluster> {
    if std::env::var_os("CI").is_some() {
        panic!("{what} is required in CI");
    }
    eprintln!("SKIPPED: {what} not available");
    None
}

impl Cluster {
    fn config_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.toml"))
    }

    /// The cluster CA and every process's certificate (`gen-cluster-certs` layout):
    /// `ca.pem`, `switchyard-router.pem` (both routers; the default
    /// `cluster.tls_server_name`), `edge0.pem`, `edge1.pem` (each edge's identity), and
    /// their `-key.pem` files.
    pub fn certs_dir(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// Writes a configuration for one process; `routers` are the router addresses.
    /// Every process runs the link with mutual TLS: edges with their own certificate,
    /// routers with the router certificate, reloaded every second.
    fn write_config(&self, name: &str, routers: &[SocketAddr]) -> PathBuf {
        let leaf = if name.starts_with("edge") {
            name
        } else {
            ROUTER_CERT
        };
        let data = self.dir.path().join(name);
        std::fs::create_dir_all(&data).unwrap();
        let routers: Vec<String> = routers.iter().map(|a| format!("\"{a}\"")).collect();
        let redis: Vec<String> = self.redis.iter().map(|u| format!("\"{u}\"")).collect();
        let text = format!(
            r#"domains = ["localhost"]
data_dir = "{data}"
[listen]
c2s = "127.0.0.1:0"
c2s_direct_tls = ""
websocket = "127.0.0.1:0"
component = "127.0.0.1:0"
[tls]
cert_path = "{cert}"
key_path = "{key}"
[admin]
listen = "127.0.0.1:0"
token = "test-admin-token"
[cluster]
routers = [{routers}]
rpc_listen = "127.0.0.1:0"
edge_ttl_secs = {ttl}
tls_ca_path = "{certs}/ca.pem"
tls_cert_path = "{certs}/{leaf}.pem"
tls_key_path = "{certs}/{leaf}-key.pem"
tls_reload_interval_secs = 1
[redis]
urls = [{redis}]
cluster = {redis_cluster}
key_prefix = "{prefix}"
[postgres]
url = "{PG}"
schema = "{schema}"
pool_size = 4
migrate_on_start = true
{extra}
"#,
            data = data.display(),
            cert = self.dir.path().join("cert.pem").display(),
            key = self.dir.path().join("key.pem").display(),
            routers = routers.join(", "),
            certs = self.certs_dir().display(),
            prefix = self.prefix,
            schema = self.schema,
            redis = redis.join(", "),
            redis_cluster = self.redis_cluster,
            extra = self.extra,
            ttl = self.edge_ttl_secs,
        );
        let path = self.config_path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Two routers and two edges, with accounts `names` (password `secret`).
    pub async fn start(names: &[&str]) -> Option<Self> {
        Self::start_with_redis(names, REDIS).await
    }

    /// The same, with the registry on the Redis at `redis`.
    pub async fn start_with_redis(names: &[&str], redis: &str) -> Option<Self> {
        Self::start_with(names, redis, "").await
    }

    /// The same, with `extra` TOML in every configuration.
    pub async fn start_with(names: &[&str], redis: &str, extra: &str) -> Option<Self> {
        Self::start_on(names, vec![redis.to_owned()], false, extra, 3).await
    }

    /// On the Redis at `redis`, with routers beating only every third of `edge_ttl_secs`.
    pub async fn start_with_ttl(names: &[&str], redis: &str, edge_ttl_secs: u64) -> Option<Self> {
        Self::start_on(names, vec![redis.to_owned()], false, "", edge_ttl_secs).await
    }

    /// The same, with the registry on the Redis Cluster whose seed nodes are `seeds`.
    pub async fn start_on_redis_cluster(names: &[&str], seeds: Vec<String>) -> Option<Self> {
        Self::start_on(names, seeds, true, "", 3).await
    }

    async fn start_on(
        names: &[&str],
        redis: Vec<String>,
        redis_cluster: bool,
        extra: &str,
        edge_ttl_secs: u64,
    ) -> Option<Self> {
        let suffix = format!("{}_{}", std::process::id(), rand_suffix());
        let schema = format!("sy_cluster_{suffix}");
        let (admin, connection) = match tokio_postgres::connect(PG, tokio_postgres::NoTls).await {
            Ok(c) => c,
            Err(_) => return skip_or_fail("PostgreSQL on 127.0.0.1:5432"),
        };
        tokio::spawn(connection);
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
        if redis::Client::open(redis[0].as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .is_err()
        {
            return skip_or_fail("Redis on 127.0.0.1:6379");
        }
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
        let leaves = [ROUTER_CERT, "edge0", "edge1"].map(String::from);
        switchyard_rpc::tls::generate_cluster_certs(&dir.path().join("certs"), &leaves).unwrap();
        let mut cluster = Self {
            dir,
            redis,
            redis_cluster,
            extra: extra.to_owned(),
            edge_ttl_secs,
            schema,
            prefix: format!("sytest:{suffix}:"),
            routers: Vec::new(),
            edges: Vec::new(),
            cert_der: cert.cert.der().to_vec(),
        };
        let config = cluster.write_config("admin", &[]);
        run(&config, &["migrate"]).await;
        for name in names {
            run(&config, &["user", "add", name, "--password", "secret"]).await;
        }
        for i in 0..2 {
            let config = cluster.write_config(&format!("router{i}"), &[]);
            cluster.routers.push(spawn(&config, "router", "rpc").await);
        }
        let addrs: Vec<SocketAddr> = cluster.routers.iter().map(|r| r.addr).collect();
        for i in 0..2 {
            let config = cluster.write_config(&format!("edge{i}"), &addrs);
            cluster.edges.push(spawn(&config, "edge", "c2s").await);
        }
        // Every edge linked to every router before clients arrive, as both sides count
        // their links: a client that comes earlier may find no router, or a router that
        // cannot reach the other edge yet.
        for edge in &cluster.edges {
            metrics_show(edge, &["switchyard_edge_router_links_up 2"]).await;
        }
        for router in &cluster.routers {
            metrics_show(router, &["switchyard_router_edge_links 2"]).await;
        }
        Some(cluster)
    }

    /// Removes the schema and the Redis keys of this run.
    pub async fn clean_up(mut self) {
        for p in self.routers.iter_mut().chain(self.edges.iter_mut()) {
            p.kill_9().await;
        }
        if let Ok((admin, connection)) = tokio_postgres::connect(PG, tokio_postgres::NoTls).await {
            tokio::spawn(connection);
            let _ = admin
                .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
                .await;
        }
        if self.redis_cluster {
            return;
        }
        let Ok(mut redis) = redis::Client::open(self.redis[0].as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
        else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut redis)
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut redis).await;
        }
    }
}

/// A private `redis-server` on a fixed loopback port that keeps nothing on disk, so a
/// restart comes back empty.
pub struct PrivateRedis {
    pub port: u16,
    child: Child,
}

impl PrivateRedis {
    pub async fn start(port: Option<u16>) -> Self {
        let port = match port {
            Some(p) => p,
            None => std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port(),
        };
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server (Debian package redis-server) is installed");
        let url = format!("redis://127.0.0.1:{port}");
        for _ in 0..100 {
            let client = redis::Client::open(url.as_str()).unwrap();
            if client.get_multiplexed_async_connection().await.is_ok() {
                return Self { port, child };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("private redis-server did not start");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `kill -9`, then a fresh empty server on the same port.
    pub async fn restart_empty(&mut self) {
        self.outage(Duration::ZERO).await;
    }

    /// `kill -9`, `down` without a server, then a fresh empty one on the same port.
    pub async fn outage(&mut self, down: Duration) {
        self.child.start_kill().unwrap();
        let _ = self.child.wait().await;
        tokio::time::sleep(down).await;
        *self = Self::start(Some(self.port)).await;
    }
}

fn rand_suffix() -> String {
    switchyard_core::token::token(8).to_lowercase()
}

/// Runs a one-shot `switchyard` command and asserts it succeeded.
async fn run(config: &Path, args: &[&str]) {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        // The tests' accounts all have the password "secret" (6 characters).
        .env("SWITCHYARD_AUTH__MIN_PASSWORD_CHARS", "6")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "switchyard {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `switchyard serve --roles ROLE` and waits for its `listening KIND` line (an
/// edge's other listeners, printed before its admin line, too).
/// Its log goes next to its configuration (`NAME.log`), for post-mortems.
async fn spawn(config: &Path, role: &str, kind: &str) -> Proc {
    let log = std::fs::File::create(config.with_extension("log")).unwrap();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(["serve", "--roles", role])
        .env("RUST_LOG", "info")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        // Required on an edge: the same on every edge, so decoy salts match.
        .env("SWITCHYARD_AUTH__DECOY_SECRET", DECOY_SECRET)
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let last = if role == "edge" { "admin" } else { kind };
    let listening = tokio::time::timeout(Duration::from_secs(30), async {
        let mut listening = std::collections::HashMap::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            let Some((k, addr)) = line
                .strip_prefix("switchyard: listening ")
                .and_then(|rest| rest.split_once(' '))
            else {
                continue;
            };
            listening.insert(k.to_owned(), addr.parse::<SocketAddr>().unwrap());
            if k == last {
                return listening;
            }
        }
        panic!("{role} exited before listening");
    })
    .await
    .expect("process listening in time");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Proc {
        child,
        addr: listening[kind],
        websocket: listening.get("websocket").copied(),
        component: listening.get("component").copied(),
        admin: listening.get("admin").copied(),
    }
}

/// Waits (30 s at most) until `process` reports every one of `lines` among its metrics;
/// panics with what it reported last when it does not.
pub async fn metrics_show(process: &Proc, lines: &[&str]) {
    let base = format!("http://{}", process.admin.expect("an admin listener"));
    let mut text = String::new();
    for _ in 0..300 {
        if let Ok((_, body)) =
            switchyard::admin_client::request(&base, "GET", "/metrics", "", None).await
        {
            text = body;
            if lines.iter().all(|line| text.lines().any(|l| l == *line)) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{lines:?} not all reported within 30 s:\n{text}");
}
