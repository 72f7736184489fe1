//! The configuration tree: one TOML file plus `SWITCHYARD_*` environment overrides, read
//! here and nowhere else. Nested keys use `__` in variable names, e.g.
//! `SWITCHYARD_LIMITS__MAX_STANZA_BYTES=65536` sets `[limits] max_stanza_bytes`.
//! `SWITCHYARD_CONFIG` names the file itself, and `SWITCHYARD_ADMIN_URL` /
//! `SWITCHYARD_ADMIN_TOKEN` are the `user` command's; none of them is a key.
//! Every field has a default, so an empty file (or none) runs a development server.

mod auth;
mod components;
mod push;
mod redact;
mod sm;
mod websocket;

pub use auth::{Auth, MIN_DECOY_SECRET_CHARS};
pub use components::ComponentEntry;
pub use push::Push;
pub use redact::{redact, MASK};
pub use sm::StreamManagement;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use switchyard_core::sasl::Mechanism;

/// Prefix of every configuration variable.
const ENV_PREFIX: &str = "SWITCHYARD_";
/// `SWITCHYARD_*` variables that are not configuration keys: the configuration file's
/// name, and the admin API address and token the `user` command takes.
const NOT_KEYS: &[&str] = &["config", "admin_url", "admin_token"];
/// Keys whose `SWITCHYARD_*` values are taken as the text they are. Other values are
/// read as TOML values, so `12345` would be a number and `true` a boolean, which a
/// password, a user name or a generated secret may well be.
const TEXT_KEYS: &[&str] = &[
    "postgres.url",
    "postgres.host",
    "postgres.user",
    "postgres.password",
    "postgres.dbname",
    "admin.token",
    "auth.decoy_secret",
];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Domains served; the first is the default for clients that name none.
    pub domains: Vec<String>,
    /// Directory for the SQLite database and the generated development certificate.
    pub data_dir: PathBuf,
    pub listen: Listen,
    pub tls: Tls,
    pub auth: Auth,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub stream_management: StreamManagement,
    pub server: Server,
    pub im: Im,
    pub cluster: Cluster,
    pub redis: Redis,
    pub postgres: Postgres,
    pub admin: Admin,
    pub telemetry: Telemetry,
    /// XEP-0114 external components (`[[components]]` tables).
    pub components: Vec<ComponentEntry>,
    pub push: Push,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Telemetry {
    /// OTLP/gRPC collector for traces (e.g. `http://otel-collector:4317`); empty = off.
    pub otlp_endpoint: String,
    /// Share of new traces kept, 0.0 to 1.0.
    pub sample_ratio: f64,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self {
            otlp_endpoint: String::new(),
            sample_ratio: 1.0,
        }
    }
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Admin {
    /// HTTP listener for /metrics, /healthz, /readyz and the admin API; empty disables.
    /// Plain HTTP, so loopback by default: set `0.0.0.0:9400` (as the Helm chart and
    /// docker-compose.yml do) for probes and scraping from outside the host or pod.
    pub listen: String,
    /// Bearer token for /api/v1; empty disables the admin API.
    pub token: String,
}

impl Default for Admin {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9400".into(),
            token: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Cluster {
    /// Edge: the routers to link to, `host:port` each; names are resolved every few
    /// seconds, so a Kubernetes headless service name covers every router pod.
    pub routers: Vec<String>,
    /// Router: the gRPC listen address for edges.
    pub rpc_listen: String,
    /// Edge: this edge's id in the registry; empty = host name plus a random suffix.
    pub edge_id: String,
    /// Seconds an edge stays alive in the registry after the last router heard from it.
    pub edge_ttl_secs: u64,
    /// Mutual TLS on the edge↔router gRPC link (on by default): a router accepts only
    /// callers with a certificate chained to `tls_ca_path`, an edge only routers whose
    /// certificate carries `tls_server_name`. `false` (plaintext h2c) is for development
    /// and refused unless the link stays on loopback (a router's `rpc_listen`, every
    /// address in an edge's `routers`) or `insecure_plaintext` is set. The all-in-one
    /// mode has no link and needs none of the `tls_*` keys.
    pub tls: bool,
    /// The cluster CA (PEM): what peers' certificates must chain to. Edge and router.
    pub tls_ca_path: String,
    /// This process's certificate chain (PEM, leaf first), signed by the cluster CA: a
    /// router's server certificate, an edge's client certificate, whose first DNS name is
    /// the edge's identity to routers.
    pub tls_cert_path: String,
    /// The private key of `tls_cert_path` (PEM), readable by the service user only.
    pub tls_key_path: String,
    /// Edge: the DNS name every router's certificate must carry (one name for all router
    /// pods, since their addresses come and go behind one service name).
    pub tls_server_name: String,
    /// Seconds between checks of the three `tls_*_path` files: changed files are loaded
    /// for the next handshakes without a restart; a bad one is logged and the old kept.
    pub tls_reload_interval_secs: u64,
    /// Development only: lets `tls = false` run on non-loopback addresses, where anyone on
    /// the network can read the link and act as an edge.
    pub insecure_plaintext: bool,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Redis {
    /// Session registry: `redis://host:port` (one, or seed nodes of a Redis Cluster);
    /// empty keeps the registry in memory, which only a single router can use.
    pub urls: Vec<String>,
    /// Use the Redis Cluster protocol even with one seed URL.
    pub cluster: bool,
    /// Prefix of every key, so deployments can share a Redis.
    pub key_prefix: String,
    /// PEM file of the CA that signed the Redis servers' certificates (`rediss://` URLs),
    /// when it is not among the system's; empty: the system's CAs.
    pub ca_path: String,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Postgres {
    /// `postgres://user:password@host:port/db` or a libpq `host=… password=…` string;
    /// empty uses the embedded SQLite file. Shown redacted by `check-config`.
    pub url: String,
    /// Schema (search_path); empty uses the server's default. A plain identifier
    /// (lowercase letters, digits, `_`); `switchyard migrate` creates it if missing.
    pub schema: String,
    pub pool_size: usize,
    /// Apply pending migrations at start-up (otherwise run `switchyard migrate`).
    pub migrate_on_start: bool,
    /// Each replaces that part of `url` when set (as CloudNativePG's and Bitnami's
    /// charts hand out host, user and password as separate secret keys: set them from
    /// `SWITCHYARD_POSTGRES__HOST`, `__USER`, `__PASSWORD`); `host` alone, with `url`
    /// empty, selects PostgreSQL too. `port` 0 keeps the URL's (or 5432).
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Shown as `***` by `check-config`.
    pub password: String,
    pub dbname: String,
    /// PEM file of the CA that signed PostgreSQL's certificate: with it the chain is
    /// checked even under `sslmode=require` (as libpq does with a root file); without
    /// it `verify-ca`/`verify-full` check against the system's CAs.
    pub ca_path: String,
}

impl Default for Cluster {
    fn default() -> Self {
        Self {
            routers: Vec::new(),
            rpc_listen: "[::]:7400".into(),
            edge_id: String::new(),
            edge_ttl_secs: 10,
            tls: true,
            tls_ca_path: String::new(),
            tls_cert_path: String::new(),
            tls_key_path: String::new(),
            tls_server_name: "switchyard-router".into(),
            tls_reload_interval_secs: 5,
            insecure_plaintext: false,
        }
    }
}

impl Default for Redis {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            cluster: false,
            key_prefix: "sy:".into(),
            ca_path: String::new(),
        }
    }
}

impl Default for Postgres {
    fn default() -> Self {
        Self {
            url: String::new(),
            schema: String::new(),
            pool_size: 16,
            migrate_on_start: false,
            host: String::new(),
            port: 0,
            user: String::new(),
            password: String::new(),
            dbname: String::new(),
            ca_path: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Listen {
    /// STARTTLS client listener (RFC 6120); empty disables it.
    pub c2s: String,
    /// Direct-TLS client listener (XEP-0368); empty disables it.
    pub c2s_direct_tls: String,
    /// Every client connection starts with a PROXY protocol header (v1 or v2) from a
    /// load balancer, which names the client's address. Only where nothing else can
    /// reach the listeners.
    pub proxy_protocol: bool,
    /// XMPP over WebSocket (RFC 7395) at `/xmpp-websocket`, with XEP-0156 host-meta;
    /// empty disables it.
    pub websocket: String,
    /// TLS on the WebSocket listener, with the same certificates. `false` only where a
    /// load balancer terminates TLS in front of it (logins then count as secure).
    pub websocket_tls: bool,
    /// Browser origins allowed to open a WebSocket session (`https://chat.example.org`);
    /// empty: any.
    pub websocket_origins: Vec<String>,
    /// The public URL host-meta advertises; empty: `wss://` + the request's Host +
    /// `/xmpp-websocket`.
    pub websocket_url: String,
    /// XEP-0114 component listener (plain TCP: for the cluster's own network), bound
    /// only when `[[components]]` are configured; empty disables it.
    pub component: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain; empty means `<data_dir>/dev-cert.pem`, generated if missing.
    pub cert_path: String,
    /// PEM private key; empty means `<data_dir>/dev-key.pem`, generated if missing.
    pub key_path: String,
    /// Whether clients must negotiate TLS before authenticating.
    pub required: bool,
    /// How often the certificate files are checked for changes (SIGHUP reloads at once).
    pub reload_interval_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub max_stanza_bytes: usize,
    /// Largest stanza in bytes before the client has authenticated: anyone can send it,
    /// so it is kept small (RFC 6120 §13.12). At least 1024, at most `max_stanza_bytes`.
    pub max_stanza_bytes_before_auth: usize,
    pub max_depth: usize,
    pub max_attributes: usize,
    pub max_attribute_bytes: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Connections between accept and a bound (or resumed) session at once: past it new
    /// connections are refused at once with `resource-constraint` and a retry hint, so a
    /// reconnect storm cannot starve the sessions already up.
    pub max_concurrent_handshakes: usize,
    /// Of those, at most this many from one client address (a carrier's NAT can put
    /// many clients behind one).
    pub max_concurrent_handshakes_per_ip: usize,
    /// Stanzas queued for one connection; a delivery beyond it waits for room (the
    /// sender is pushed back), up to twice `timeouts.write_secs`.
    pub mailbox_stanzas: usize,
    /// Bytes (estimated serialized size) queued for one connection, as above. One stanza
    /// is always accepted into an empty mailbox, whatever its size.
    pub mailbox_bytes: usize,
    /// Bytes queued in all connections' mailboxes of one edge process together.
    pub mailbox_bytes_total: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    pub handshake_secs: u64,
    /// A TLS handshake (direct TLS, or after STARTTLS) takes a few round trips.
    pub tls_handshake_secs: u64,
    /// A stream header or stanza begun before the session is bound must be complete
    /// within this: a client that trickles it (slowloris) is closed then.
    pub handshake_frame_secs: u64,
    pub idle_secs: u64,
    pub write_secs: u64,
    pub shutdown_grace_secs: u64,
    /// After SIGTERM: seconds between turning unready (and not accepting) and ending
    /// sessions with `system-shutdown`, so load balancers move new clients away first.
    pub drain_delay_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Server {
    /// Answer XEP-0092 software version queries.
    pub expose_version: bool,
    /// Log format: `text` or `json`.
    pub log_format: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Im {
    /// Messages to a bare JID with several available resources (RFC 6121 §8.5.2.1.1):
    /// `highest-priority` or `all-non-negative`.
    pub bare_jid_messages: String,
    /// XEP-0160: messages held per offline account; beyond it senders get an error.
    pub offline_quota: usize,
    /// XEP-0160: bytes of messages held per offline account (stored stanzas with their
    /// delay stamp); beyond it senders get the same error as past `offline_quota`.
    pub offline_quota_bytes: usize,
    /// Messages that reach no one, to an account that does not exist or refused by the
    /// recipient's block list (RFC 6121 §8.5.1, XEP-0191 §3.5): `ignore` (silence, so no
    /// answer tells a sender which accounts exist; `normal` messages to a resource that
    /// is not connected then go to the bare JID as `chat` ones do) or
    /// `service-unavailable` (an error for each, telling any sender which accounts exist).
    pub unknown_account_messages: String,
    /// XEP-0049: namespaces of private XML per account; more is `resource-constraint`.
    pub private_quota_namespaces: usize,
    /// XEP-0049: bytes of private XML per account (namespaces and elements); more is
    /// `resource-constraint`, one element larger than this `not-acceptable`.
    pub private_quota_bytes: usize,
    /// Roster rows per account.
    pub max_roster_items: usize,
    /// RFC 6121 §2.3.3: bytes of a roster item's name; longer is `not-acceptable`.
    pub max_roster_name_bytes: usize,
    /// RFC 6121 §2.3.3: bytes of a roster group's name; longer is `not-acceptable`.
    pub max_roster_group_bytes: usize,
    /// Groups per roster item; more is `not-acceptable`.
    pub max_roster_groups: usize,
}

impl Default for Im {
    fn default() -> Self {
        Self {
            bare_jid_messages: "highest-priority".into(),
            offline_quota: 1000,
            offline_quota_bytes: 2 * 1024 * 1024,
            unknown_account_messages: "ignore".into(),
            private_quota_namespaces: 64,
            private_quota_bytes: 256 * 1024,
            max_roster_items: 2000,
            max_roster_name_bytes: 256,
            max_roster_group_bytes: 256,
            max_roster_groups: 16,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            domains: vec!["localhost".into()],
            data_dir: PathBuf::from("data"),
            listen: Listen::default(),
            tls: Tls::default(),
            auth: Auth::default(),
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            stream_management: StreamManagement::default(),
            server: Server::default(),
            im: Im::default(),
            cluster: Cluster::default(),
            redis: Redis::default(),
            postgres: Postgres::default(),
            admin: Admin::default(),
            telemetry: Telemetry::default(),
            components: Vec::new(),
            push: Push::default(),
        }
    }
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            c2s: "[::]:5222".into(),
            c2s_direct_tls: "[::]:5223".into(),
            proxy_protocol: false,
            websocket: "[::]:5443".into(),
            websocket_tls: true,
            websocket_origins: Vec::new(),
            websocket_url: String::new(),
            component: "[::]:5347".into(),
        }
    }
}

impl Default for Tls {
    fn default() -> Self {
        Self {
            cert_path: String::new(),
            key_path: String::new(),
            required: true,
            reload_interval_secs: 30,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        let core = switchyard_core::Limits::default();
        Self {
            max_stanza_bytes: core.max_stanza_bytes,
            max_stanza_bytes_before_auth: core.max_stanza_bytes_before_auth,
            max_depth: core.max_depth,
            max_attributes: core.max_attributes,
            max_attribute_bytes: core.max_attribute_bytes,
            max_connections: 100_000,
            max_connections_per_ip: 1_000,
            max_concurrent_handshakes: 1_000,
            max_concurrent_handshakes_per_ip: 100,
            mailbox_stanzas: 1_024,
            mailbox_bytes: 1024 * 1024,
            mailbox_bytes_total: 512 * 1024 * 1024,
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            handshake_secs: 30,
            tls_handshake_secs: 10,
            handshake_frame_secs: 10,
            idle_secs: 600,
            write_secs: 30,
            shutdown_grace_secs: 10,
            drain_delay_secs: 5,
        }
    }
}

impl Default for Server {
    fn default() -> Self {
        Self {
            expose_version: true,
            log_format: "text".into(),
        }
    }
}

impl Config {
    /// Defaults, then the file (if given), then `SWITCHYARD_*` variables.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            anyhow::ensure!(
                file.exists(),
                "config file {} does not exist",
                file.display()
            );
            figment = figment.merge(Toml::file(file));
        }
        figment = figment.merge(Env::prefixed(ENV_PREFIX).ignore(NOT_KEYS).split("__"));
        for key in TEXT_KEYS {
            let var = format!(
                "{ENV_PREFIX}{}",
                key.to_ascii_uppercase().replace('.', "__")
            );
            if let Ok(text) = std::env::var(var) {
                figment = figment.merge(Serialized::default(key, text));
            }
        }
        let config: Config = figment.extract().map_err(explain)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.domains.is_empty(),
            "domains: at least one domain is required"
        );
        for d in &self.domains {
            let jid = switchyard_core::Jid::parse(d)
                .map_err(|e| anyhow::anyhow!("domains: {d:?} is not a domain: {e}"))?;
            anyhow::ensure!(
                jid.local().is_none() && jid.is_bare(),
                "domains: {d:?} is not a bare domain"
            );
        }
        self.auth.validate()?;
        anyhow::ensure!(
            self.limits.max_stanza_bytes >= 10_000,
            "limits.max_stanza_bytes must be at least 10000 (RFC 6120 §13.12)"
        );
        anyhow::ensure!(
            (1024..=self.limits.max_stanza_bytes)
                .contains(&self.limits.max_stanza_bytes_before_auth),
            "limits.max_stanza_bytes_before_auth must be at least 1024 and at most \
             limits.max_stanza_bytes"
        );
        anyhow::ensure!(
            self.limits.max_concurrent_handshakes >= 1
                && self.limits.max_concurrent_handshakes_per_ip >= 1,
            "limits.max_concurrent_handshakes and limits.max_concurrent_handshakes_per_ip must be at least 1"
        );
        anyhow::ensure!(
            self.limits.mailbox_stanzas >= 1,
            "limits.mailbox_stanzas must be at least 1"
        );
        anyhow::ensure!(
            self.limits.mailbox_bytes >= self.limits.max_stanza_bytes
                && self.limits.mailbox_bytes_total >= self.limits.mailbox_bytes,
            "limits.mailbox_bytes must be at least limits.max_stanza_bytes, and limits.mailbox_bytes_total at least limits.mailbox_bytes"
        );
        anyhow::ensure!(
            self.tls.cert_path.is_empty() == self.tls.key_path.is_empty(),
            "tls.cert_path and tls.key_path must be set together"
        );
        anyhow::ensure!(
            matches!(self.server.log_format.as_str(), "text" | "json"),
            "server.log_format must be text or json"
        );
        anyhow::ensure!(
            matches!(
                self.im.bare_jid_messages.as_str(),
                "highest-priority" | "all-non-negative"
            ),
            "im.bare_jid_messages must be highest-priority or all-non-negative"
        );
        anyhow::ensure!(
            matches!(
                self.im.unknown_account_messages.as_str(),
                "ignore" | "service-unavailable"
            ),
            "im.unknown_account_messages must be ignore or service-unavailable"
        );
        anyhow::ensure!(
            self.cluster.edge_ttl_secs >= 3,
            "cluster.edge_ttl_secs must be at least 3"
        );
        self.stream_management.validate(self.timeouts.idle_secs)?;
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.telemetry.sample_ratio),
            "telemetry.sample_ratio must be 0 to 1"
        );
        let pg = &self.postgres;
        let parts = [&pg.user, &pg.password, &pg.dbname];
        anyhow::ensure!(
            !pg.url.is_empty() || !pg.host.is_empty() || parts.iter().all(|p| p.is_empty()),
            "postgres.user, postgres.password and postgres.dbname need postgres.url or postgres.host"
        );
        let identifier = |s: &str| {
            s.len() <= 63
                && s.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        anyhow::ensure!(
            pg.schema.is_empty() || identifier(&pg.schema),
            "postgres.schema {:?} must be a plain identifier: lowercase letters, digits and _, not starting with a digit, at most 63 characters",
            pg.schema
        );
        if !self.postgres.url.is_empty() {
            self.postgres
                .url
                .parse::<tokio_postgres::Config>()
                .map_err(|e| {
                    anyhow::anyhow!("postgres.url is not a PostgreSQL URL or key=value string: {e}")
                })?;
        }
        for url in &self.redis.urls {
            redis::Client::open(url.as_str())
                .map_err(|e| anyhow::anyhow!("redis.urls: {url:?} is not a Redis URL: {e}"))?;
        }
        self.validate_cluster_tls()?;
        anyhow::ensure!(
            !self.redis.key_prefix.contains(['{', '}']),
            "redis.key_prefix must not contain braces (they are Redis Cluster hash tags)"
        );
        anyhow::ensure!(
            self.postgres.pool_size >= 1,
            "postgres.pool_size must be at least 1"
        );
        for addr in [
            &self.listen.c2s,
            &self.listen.c2s_direct_tls,
            &self.listen.websocket,
            &self.listen.component,
            &self.cluster.rpc_listen,
            &self.admin.listen,
        ] {
            anyhow::ensure!(
                addr.is_empty() || addr.parse::<std::net::SocketAddr>().is_ok(),
                "listen: {addr:?} is not an address:port"
            );
        }
        self.listen.validate_websocket()?;
        self.validate_components()
    }

    /// The link's TLS keys, whatever the roles (which ones need the files is checked
    /// when a router or an edge starts).
    fn validate_cluster_tls(&self) -> anyhow::Result<()> {
        let c = &self.cluster;
        let paths = [&c.tls_ca_path, &c.tls_cert_path, &c.tls_key_path];
        anyhow::ensure!(
            paths.iter().all(|p| p.is_empty()) || paths.iter().all(|p| !p.is_empty()),
            "cluster.tls_ca_path, cluster.tls_cert_path and cluster.tls_key_path must be set together"
        );
        anyhow::ensure!(
            switchyard_rpc::tls::server_name(&c.tls_server_name).is_ok(),
            "cluster.tls_server_name: {:?} is not a DNS name",
            c.tls_server_name
        );
        anyhow::ensure!(
            c.tls_reload_interval_secs >= 1,
            "cluster.tls_reload_interval_secs must be at least 1"
        );
        anyhow::ensure!(
            !(c.tls && c.insecure_plaintext),
            "cluster.insecure_plaintext only applies with cluster.tls = false"
        );
        Ok(())
    }

    /// A copy safe to print: every secret in a connection string or URL (see [`redact`])
    /// and the admin token replaced by [`MASK`].
    pub fn redacted(&self) -> Self {
        let mut shown = self.clone();
        shown.postgres.url = redact(&self.postgres.url);
        shown.postgres.password = mask(&self.postgres.password);
        shown.redis.urls = self.redis.urls.iter().map(|u| redact(u)).collect();
        shown.telemetry.otlp_endpoint = redact(&self.telemetry.otlp_endpoint);
        shown.cluster.routers = self.cluster.routers.iter().map(|r| redact(r)).collect();
        shown.admin.token = mask(&self.admin.token);
        shown.auth.decoy_secret = mask(&self.auth.decoy_secret);
        for c in &mut shown.components {
            c.secret = mask(&c.secret);
        }
        shown
    }

    /// `auth.mechanisms`, strongest first.
    pub fn mechanisms(&self) -> Vec<Mechanism> {
        Mechanism::ALL
            .into_iter()
            .filter(|m| self.auth.mechanisms.iter().any(|n| n == m.name()))
            .collect()
    }

    pub fn core_limits(&self) -> switchyard_core::Limits {
        switchyard_core::Limits {
            max_stanza_bytes: self.limits.max_stanza_bytes,
            max_stanza_bytes_before_auth: self.limits.max_stanza_bytes_before_auth,
            max_depth: self.limits.max_depth,
            // Not a configuration key (yet): the core default.
            max_elements: switchyard_core::Limits::default().max_elements,
            max_attributes: self.limits.max_attributes,
            max_attribute_bytes: self.limits.max_attribute_bytes,
        }
    }
}

/// figment's errors, with each key named as the user wrote it: `limits.max_depth` for
/// the file (figment says `default.limits.max_depth`, after its profile) and
/// `SWITCHYARD_LIMITS__MAX_DEPTH` for a variable (figment says `LIMITS.MAX_DEPTH`); values
/// quoted in the messages are redacted.
fn explain(errors: figment::Error) -> anyhow::Error {
    let lines: Vec<String> = errors
        .into_iter()
        .map(|e| {
            let from_env = e
                .metadata
                .as_ref()
                .is_some_and(|md| md.name.contains("environment"));
            let key = if from_env {
                format!("{ENV_PREFIX}{}", e.path.join("__").to_ascii_uppercase())
            } else {
                e.path.join(".")
            };
            let source = match e.metadata.as_ref().map(|md| (&md.source, &md.name)) {
                Some((Some(source), _)) => format!(" (in {source})"),
                Some((None, name)) if from_env => format!(" (from the {name})"),
                _ => String::new(),
            };
            match key.is_empty() {
                true => format!("{}{source}", e.kind),
                false => format!("{key}: {}{source}", e.kind),
            }
        })
        .collect();
    anyhow::anyhow!(redact(&lines.join("\n")))
}

/// Empty stays empty (so "not set" still shows), anything else becomes [`MASK`].
fn mask(secret: &str) -> String {
    if secret.is_empty() {
        String::new()
    } else {
        MASK.to_owned()
    }
}

// The sections holding secrets print them redacted, so a `{:?}` in a log line is safe too.

impl fmt::Debug for Postgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Postgres")
            .field("url", &redact(&self.url))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &mask(&self.password))
            .field("dbname", &self.dbname)
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("migrate_on_start", &self.migrate_on_start)
            .finish()
    }
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<String> = self.urls.iter().map(|u| redact(u)).collect();
        f.debug_struct("Redis")
            .field("urls", &urls)
            .field("cluster", &self.cluster)
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("listen", &self.listen)
            .field("token", &mask(&self.token))
            .finish()
    }
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("otlp_endpoint", &redact(&self.otlp_endpoint))
            .field("sample_ratio", &self.sample_ratio)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the closure's error type
    fn file_and_env_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "domains = ['example.org']\n[limits]\nmax_depth = 8\n",
        )
        .unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("SWITCHYARD_LIMITS__MAX_STANZA_BYTES", "65536");
            jail.set_env("SWITCHYARD_CONFIG", "names the file, not a key");
            jail.set_env("SWITCHYARD_ADMIN_URL", "http://127.0.0.1:9400");
            jail.set_env("SWITCHYARD_ADMIN_TOKEN", "for the user command, not a key");
            let c = Config::load(Some(&file)).unwrap();
            assert_eq!(c.domains, vec!["example.org"]);
            assert_eq!(c.limits.max_depth, 8);
            assert_eq!(c.limits.max_stanza_bytes, 65536);
            assert_eq!(c.auth.scram_iterations, 4096);
            assert_eq!(c.limits.max_stanza_bytes_before_auth, 16384);
            jail.set_env("SWITCHYARD_LIMITS__MAX_STANZA_BYTES_BEFORE_AUTH", "4096");
            let c = Config::load(Some(&file)).unwrap();
            assert_eq!(c.limits.max_stanza_bytes_before_auth, 4096);
            assert_eq!(c.core_limits().max_stanza_bytes_before_auth, 4096);
            assert_eq!(c.core_limits().max_stanza_bytes, 65536);
            // Secrets are text, whatever they look like.
            jail.set_env("SWITCHYARD_POSTGRES__HOST", "db");
            jail.set_env("SWITCHYARD_POSTGRES__PASSWORD", "007");
            jail.set_env("SWITCHYARD_POSTGRES__USER", "true");
            jail.set_env("SWITCHYARD_POSTGRES__DBNAME", "[x]");
            let c = Config::load(Some(&file)).unwrap();
            assert_eq!(c.postgres.password, "007");
            assert_eq!(c.postgres.user, "true");
            assert_eq!(c.postgres.dbname, "[x]");
            Ok(())
        });
    }

    /// In a jail like the tests that set `SWITCHYARD_` variables: the environment is the
    /// process's, and a variable another test set meanwhile would be read here.
    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the closure's error type
    fn bad_values_get_clear_errors() {
        figment::Jail::expect_with(|_| {
            bad_values();
            Ok(())
        });
    }

    fn bad_values() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        for (body, needle) in [
            ("[auth]\nscram_iterations = 100\n", "scram_iterations"),
            ("[auth]\ndecoy_secret = 'short'\n", "auth.decoy_secret"),
            ("[auth]\nmax_failures = 0\n", "auth.max_failures"),
            (
                "[auth]\nfailure_delay_initial_ms = 2000\nfailure_delay_max_ms = 1000\n",
                "auth.failure_delay_initial_ms",
            ),
            ("unknown_key = 1\n", "unknown_key"),
            ("[listen]\nc2s = 'nope'\n", "listen"),
            (
                "[limits]\nmax_stanza_bytes_before_auth = 1023\n",
                "limits.max_stanza_bytes_before_auth",
            ),
            (
                "[limits]\nmax_stanza_bytes = 20000\nmax_stanza_bytes_before_auth = 20001\n",
                "limits.max_stanza_bytes_before_auth",
            ),
            (
                "[im]\nunknown_account_messages = 'bounce'\n",
                "im.unknown_account_messages",
            ),
            (
                "[stream_management]\nkeepalive_secs = 600\n",
                "stream_management.keepalive_secs",
            ),
            (
                "[stream_management]\nmax_unacked_bytes = 8388608\n",
                "stream_management.max_unacked_bytes",
            ),
            (
                "[stream_management]\nrequest_every = 0\n",
                "stream_management.request_every",
            ),
        ] {
            std::fs::write(&file, body).unwrap();
            let err = format!("{:#}", Config::load(Some(&file)).unwrap_err());
            assert!(err.contains(needle), "{body}: {err}");
        }
        assert!(Config::load(Some(Path::new("/nonexistent.toml"))).is_err());
    }
}

#[cfg(test)]
mod redaction {
    fn with_secrets() -> super::Config {
        let mut c = super::Config::default();
        c.postgres.url = "postgres://sy:hunter2@db:5432/sy".into();
        c.postgres.password = "pg-secret".into();
        c.redis.urls = vec!["redis://:pw@r:6379".into(), "redis://r2:6379".into()];
        c.telemetry.otlp_endpoint = "http://otel:otlp-pw@collector:4317".into();
        c.admin.token = "t0ken".into();
        c.auth.decoy_secret = "decoy-secret-of-at-least-32-characters".into();
        c
    }

    #[test]
    fn secrets_are_not_printed() {
        let shown = with_secrets().redacted();
        assert_eq!(shown.postgres.url, "postgres://sy:***@db:5432/sy");
        assert_eq!(shown.postgres.password, "***");
        assert_eq!(shown.redis.urls, ["redis://:***@r:6379", "redis://r2:6379"]);
        assert_eq!(
            shown.telemetry.otlp_endpoint,
            "http://otel:***@collector:4317"
        );
        assert_eq!(shown.admin.token, "***");
        assert_eq!(shown.auth.decoy_secret, "***");
        assert_eq!(super::Config::default().redacted().admin.token, "");
    }

    #[test]
    fn debug_output_is_redacted_too() {
        let debug = format!("{:?}", with_secrets());
        for secret in [
            "hunter2",
            "pw@",
            "otlp-pw",
            "t0ken",
            "decoy-secret",
            "pg-secret",
        ] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
    }
}

/// The Helm chart's `values.schema.json` and this configuration agree: every key an
/// operator may set through the chart's `config:` block exists here, and every key here
/// is in the schema unless the chart sets it itself (listeners, paths, secrets, names).
#[cfg(test)]
mod chart_schema {
    use std::collections::BTreeSet;

    /// Keys the chart sets itself; its schema leaves them out on purpose.
    const CHART_SETS: &[&str] = &[
        "data_dir",
        "listen",
        "admin",
        "tls.cert_path",
        "tls.key_path",
        "auth.decoy_secret",
        "cluster.routers",
        "cluster.rpc_listen",
        "cluster.edge_id",
        "cluster.tls",
        "cluster.tls_ca_path",
        "cluster.tls_cert_path",
        "cluster.tls_key_path",
        "cluster.tls_server_name",
        "cluster.insecure_plaintext",
        "redis.urls",
        "postgres.url",
        "postgres.host",
        "postgres.port",
        "postgres.user",
        "postgres.password",
        "postgres.dbname",
        // Secrets: set from a Secret through SWITCHYARD_COMPONENTS, never the ConfigMap.
        "components",
    ];

    fn keys(value: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
        let Some(map) = value.as_object() else { return };
        for (k, v) in map {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if CHART_SETS.contains(&key.as_str()) {
                continue;
            }
            if v.is_object() {
                keys(v, &key, out);
            } else {
                out.insert(key);
            }
        }
    }

    fn schema_keys(schema: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
        let Some(props) = schema.get("properties").and_then(|p| p.as_object()) else {
            return;
        };
        for (k, v) in props {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if v.get("type").and_then(|t| t.as_str()) == Some("object") {
                schema_keys(v, &key, out);
            } else {
                out.insert(key);
            }
        }
    }

    #[test]
    fn every_configuration_key_is_in_the_charts_schema_and_back() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../helm/switchyard/values.schema.json"
        );
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("chart schema"))
                .expect("json");
        let mut charted = BTreeSet::new();
        schema_keys(&schema["properties"]["config"], "", &mut charted);
        let config = serde_json::to_value(super::Config::default()).expect("serializable");
        let mut ours = BTreeSet::new();
        keys(&config, "", &mut ours);
        let missing: Vec<_> = ours.difference(&charted).collect();
        let unknown: Vec<_> = charted.difference(&ours).collect();
        assert!(
            missing.is_empty(),
            "keys the chart's schema refuses: {missing:?}"
        );
        assert!(
            unknown.is_empty(),
            "keys the chart accepts and the binary does not: {unknown:?}"
        );
    }
}
