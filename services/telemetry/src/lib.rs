//! Logs and traces are set up in [`trace`].
//!
//! Every Prometheus metric Switchyard exports, defined in one place so names, types and
//! labels stay consistent (`switchyard_<subsystem>_<noun>_<unit>`; never a JID, IP or
//! resource as a label). Metrics register on first use in one registry that also
//! carries the process collector; [`render`] produces the `/metrics` text.
//!
//! Updating a metric is an atomic add on a pre-resolved series, so the hot path pays no
//! lock and no allocation for it.

mod process;
pub mod trace;

/// The gauge and histogram types the metrics below are, for code that holds one.
pub use prometheus::{Histogram, IntGauge};

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::sync::LazyLock;

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let registry = Registry::new();
    registry
        .register(Box::new(process::ProcessMetrics::new()))
        .expect("process metrics");
    let build = IntGaugeVec::new(
        Opts::new("switchyard_build_info", "Build of this binary (value 1)"),
        &["version"],
    )
    .expect("valid metric");
    build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    registry.register(Box::new(build)).expect("build info");
    registry
});

/// Latency buckets, 0.25 ms to 5 s.
const LATENCY: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

fn register<C: prometheus::core::Collector + Clone + 'static>(c: C) -> C {
    REGISTRY
        .register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn counter(name: &str, help: &str) -> IntCounter {
    register(IntCounter::new(name, help).expect("valid metric"))
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
}

fn gauge(name: &str, help: &str) -> IntGauge {
    register(IntGauge::new(name, help).expect("valid metric"))
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
}

fn histogram(name: &str, help: &str) -> Histogram {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY.to_vec());
    register(Histogram::with_opts(opts).expect("valid metric"))
}

fn histogram_vec(name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY.to_vec());
    register(HistogramVec::new(opts, labels).expect("valid metric"))
}

/// The stanza kinds every per-kind counter has a series for from the start.
const KINDS: [&str; 3] = ["message", "presence", "iq"];

/// A counter by stanza kind with its series resolved once: counting one is an atomic add,
/// where a label lookup would hash, lock and clone for each stanza. Any name but message,
/// presence and IQ counts as `other`, so what a peer sends cannot add series.
#[derive(Debug)]
pub struct PerKind {
    kinds: [IntCounter; 3],
    other: IntCounter,
}

impl PerKind {
    fn of(vec: &IntCounterVec) -> Self {
        Self {
            kinds: KINDS.map(|kind| vec.with_label_values(&[kind])),
            other: vec.with_label_values(&["other"]),
        }
    }

    /// Counts one stanza of `kind`.
    pub fn inc(&self, kind: &str) {
        match KINDS.iter().position(|k| *k == kind) {
            Some(at) => self.kinds[at].inc(),
            None => self.other.inc(),
        }
    }

    /// Stanzas counted, of every kind.
    pub fn total(&self) -> u64 {
        self.kinds.iter().map(IntCounter::get).sum::<u64>() + self.other.get()
    }
}

/// Stanzas from clients by kind (`switchyard_edge_stanzas_in_total`).
pub static EDGE_STANZAS_IN_BY_KIND: LazyLock<PerKind> =
    LazyLock::new(|| PerKind::of(&EDGE_STANZAS_IN));
/// Stanzas written to clients by kind (`switchyard_edge_stanzas_out_total`).
pub static EDGE_STANZAS_OUT_BY_KIND: LazyLock<PerKind> =
    LazyLock::new(|| PerKind::of(&EDGE_STANZAS_OUT));
/// Stanzas routed by kind (`switchyard_router_stanzas_routed_total`).
pub static ROUTER_STANZAS_BY_KIND: LazyLock<PerKind> =
    LazyLock::new(|| PerKind::of(&ROUTER_STANZAS));

macro_rules! metrics {
    ($($(#[$doc:meta])* $name:ident: $ty:ty = $init:expr;)*) => {
        $($(#[$doc])* pub static $name: LazyLock<$ty> = LazyLock::new(|| $init);)*
        /// Registers every metric, so `/metrics` lists them before first use, with the
        /// fixed label values present at zero.
        pub fn init() {
            $(LazyLock::force(&$name);)*
            for listener in ["starttls", "direct_tls", "websocket", "bosh", "component"] {
                EDGE_CONNECTIONS.with_label_values(&[listener]);
            }
            LazyLock::force(&EDGE_STANZAS_IN_BY_KIND);
            LazyLock::force(&EDGE_STANZAS_OUT_BY_KIND);
            LazyLock::force(&ROUTER_STANZAS_BY_KIND);
        }

        /// The name of every `switchyard_*` metric this binary exports.
        pub fn names() -> Vec<String> {
            let mut names = vec!["switchyard_build_info".to_owned()];
            $(names.extend(
                prometheus::core::Collector::desc(&*$name).iter().map(|d| d.fq_name.clone()),
            );)*
            names
        }
    };
}

metrics! {
    EDGE_CONNECTIONS: IntGaugeVec = gauge_vec("switchyard_edge_connections", "Open client connections (sockets; a stream-managed session waiting to be resumed is not one: see switchyard_edge_sm_detached_sessions)", &["listener"]);
    EDGE_SESSIONS: IntGauge = gauge("switchyard_edge_sessions", "Bound sessions on this edge");
    EDGE_SM_DETACHED: IntGauge = gauge("switchyard_edge_sm_detached_sessions", "XEP-0198 sessions whose connection is gone, waiting to be resumed");
    EDGE_SM_RESUMPTIONS: IntCounterVec = counter_vec("switchyard_edge_sm_resumptions_total", "XEP-0198 resumption attempts by outcome (resumed, not_found, refused)", &["outcome"]);
    EDGE_SM_UNCONFIRMED: IntCounter = counter("switchyard_edge_sm_unconfirmed_writes_total", "XEP-0198 stanzas a resumable session wrote without the confirmation that their router read its answer (none came within the patience: a lost or slow router link); only these could reach a client twice if this edge is killed");
    EDGE_SM_EXPIRED: IntCounter = counter("switchyard_edge_sm_expired_total", "XEP-0198 detached sessions that ended unresumed (timeout or queue bound)");
    EDGE_PUSH_REQUESTS: IntCounter = counter("switchyard_edge_push_requests_total", "XEP-0357 notification requests detached sessions sent to a router (each message that found none in flight, and one follow-up per burst that waited)");
    EDGE_PUSH_COALESCED: IntCounter = counter("switchyard_edge_push_coalesced_total", "Messages a detached session queued while its notification request was in flight: one more request follows, for the latest");
    EDGE_SM_UNACKED_RETURNED: IntCounter = counter("switchyard_edge_sm_unacked_returned_total", "Stanzas a session ended with unacknowledged, handed back to the router");
    EDGE_WEBSOCKET_REFUSED: IntCounterVec = counter_vec("switchyard_edge_websocket_refused_total", "HTTP requests on the WebSocket listener answered without a session, by reason (origin, subprotocol, not_websocket, not_found, bad_host)", &["reason"]);
    EDGE_ADMISSION_REFUSED: IntCounterVec = counter_vec("switchyard_edge_admission_refused_total", "Connections refused at once because limits.max_concurrent_handshakes were in their handshake", &["listener"]);
    EDGE_PROXY_REFUSED: IntCounter = counter("switchyard_edge_proxy_header_refused_total", "Connections closed because they did not start with a valid PROXY protocol header (listen.proxy_protocol)");
    EDGE_LOGIN_DURATION: Histogram = register(Histogram::with_opts(HistogramOpts::new("switchyard_edge_login_duration_seconds", "From accepting a connection to its bound or resumed session (TLS, SASL, bind or resume)").buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])).expect("valid metric"));
    EDGE_CONNECTION_LIMIT: IntGauge = gauge("switchyard_edge_connection_limit", "limits.max_connections: the headroom is this minus the sum of switchyard_edge_connections");
    TLS_CERTIFICATE_EXPIRY: IntGaugeVec = gauge_vec("switchyard_tls_certificate_expiry_timestamp_seconds", "notAfter of the certificate in use, as a Unix time (alert on it minus time())", &["purpose"]);
    EDGE_HANDSHAKES: IntGauge = gauge("switchyard_edge_handshakes_in_progress", "Connections between accept and a bound or resumed session");
    EDGE_KEEPALIVES: IntCounter = counter("switchyard_edge_keepalives_total", "Ack requests or XEP-0199 pings sent to quiet connections");
    EDGE_LOGINS: IntCounterVec = counter_vec("switchyard_edge_logins_total", "SASL outcomes", &["mechanism", "result", "reason"]);
    EDGE_FAST_TOKENS_ISSUED: IntCounter = counter("switchyard_edge_fast_tokens_issued_total", "XEP-0484 FAST tokens issued to clients (on request or rotation)");
    EDGE_STANZAS_IN: IntCounterVec = counter_vec("switchyard_edge_stanzas_in_total", "Stanzas from clients", &["kind"]);
    EDGE_STANZAS_OUT: IntCounterVec = counter_vec("switchyard_edge_stanzas_out_total", "Stanzas written to clients", &["kind"]);
    EDGE_BYTES_IN: IntCounter = counter("switchyard_edge_received_bytes_total", "Bytes read from clients");
    EDGE_BYTES_OUT: IntCounter = counter("switchyard_edge_sent_bytes_total", "Bytes written to clients");
    EDGE_TLS_FAILURES: IntCounter = counter("switchyard_edge_tls_handshake_failures_total", "Failed TLS handshakes");
    EDGE_STREAM_ERRORS: IntCounterVec = counter_vec("switchyard_edge_stream_errors_total", "Streams ended with an RFC 6120 stream error", &["condition"]);
    EDGE_SLOW_CONSUMERS: IntCounter = counter("switchyard_edge_slow_consumer_closes_total", "Connections closed because their mailbox had no room within the delivery patience");
    EDGE_MAILBOX_BYTES: IntGauge = gauge("switchyard_edge_mailbox_queued_bytes", "Bytes (estimated) queued in connection mailboxes, all connections");
    /// Edge receive → router acknowledgement (delivered to the recipient's edge or stored).
    EDGE_ROUTING_LATENCY: Histogram = histogram("switchyard_edge_routing_latency_seconds", "Edge receive to router acknowledgement");
    EDGE_IN_FLIGHT: IntGauge = gauge("switchyard_edge_link_in_flight", "Stanzas sent to routers and not yet acknowledged");
    EDGE_IN_FLIGHT_LIMIT: IntGauge = gauge("switchyard_edge_link_in_flight_limit", "Stanzas the router links up may have unacknowledged in all (the per-link window times the links up): past it senders wait");
    EDGE_DUPLICATES_SUPPRESSED: IntCounter = counter("switchyard_edge_duplicate_deliveries_suppressed_total", "Deliveries recognised as made again after a router died, answered without writing them twice");
    EDGE_RESENDS: IntCounter = counter("switchyard_edge_link_resends_total", "Stanzas resent after a router link broke");
    EDGE_ROUTER_LINKS: IntGauge = gauge("switchyard_edge_router_links_up", "Router links up");
    CLUSTER_SESSIONS: IntGauge = gauge("switchyard_cluster_sessions_online", "Sessions bound anywhere in the cluster, read from the session registry every 15 s by each router (all report the same count: aggregate with max)");
    ROUTER_STANZAS: IntCounterVec = counter_vec("switchyard_router_stanzas_routed_total", "Stanzas routed", &["kind"]);
    ROUTER_PUSH_NOTIFICATIONS: IntCounter = counter("switchyard_router_push_notifications_total", "XEP-0357 notifications sent to app servers");
    ROUTER_STANZA_ERRORS: IntCounterVec = counter_vec("switchyard_router_stanza_errors_total", "Stanzas answered with an error (RFC 6120 section 8.3), by condition", &["condition"]);
    ROUTER_ROUTE_DURATION: Histogram = histogram("switchyard_router_route_duration_seconds", "One stanza through the router");
    ROUTER_DELIVERIES: IntCounter = counter("switchyard_router_deliveries_total", "Stanzas handed to edges for sessions (each delivery batch counts its stanzas)");
    ROUTER_DELIVERY_BATCHES: IntCounter = counter("switchyard_router_delivery_batches_total", "Delivery batches sent to edges (one per edge per step of a stanza's effects)");
    ROUTER_EDGE_LINKS: IntGauge = gauge("switchyard_router_edge_links", "Edges linked to this router");
    ROUTER_CACHE_HITS: IntCounter = counter("switchyard_router_registry_cache_hits_total", "Session lookups served by the registry cache");
    ROUTER_CACHE_MISSES: IntCounter = counter("switchyard_router_registry_cache_misses_total", "Session lookups that went to the registry");
    ROUTER_OFFLINE_STORED: IntCounter = counter("switchyard_router_offline_stored_total", "Messages stored for offline accounts");
    ROUTER_OFFLINE_DELIVERED: IntCounter = counter("switchyard_router_offline_delivered_total", "Stored messages delivered");
    ROUTER_REFUSED_FROM_EDGES: IntCounter = counter("switchyard_router_edge_stanzas_refused_total", "Stanzas an edge sent for a session it did not bind (a misbehaving or hostile edge)");
    ROUTER_UNACKED_STORED: IntCounter = counter("switchyard_router_unacked_stored_total", "Messages a session ended with unacknowledged (XEP-0198) that went to offline storage");
    ROUTER_SESSIONS_GONE: IntCounter = counter("switchyard_router_stale_sessions_removed_total", "Registry sessions removed because their edge no longer held them when a delivery was made");
    ROUTER_REGISTRY_REBUILDS: IntCounter = counter("switchyard_router_registry_rebuilds_total", "Times the session registry was found to have lost its data and edges were asked to register their sessions again");
    ROUTER_SESSIONS_RECONCILED: IntCounter = counter("switchyard_router_reconciled_sessions_total", "Registry sessions removed because their live edge said it no longer held them (unbinds that were lost)");
    ROUTER_REAPED: IntCounter = counter("switchyard_router_reaped_sessions_total", "Sessions removed with a dead edge");
    ROUTER_SM_SESSIONS_KEPT: IntCounter = counter("switchyard_router_sm_sessions_kept_total", "Resumable sessions (XEP-0198) announced by edges, whose unacknowledged stanzas this router keeps copies of");
    ROUTER_SM_COPY_BYTES: IntGauge = gauge("switchyard_router_sm_copy_bytes", "Bytes of stanzas kept for resumable sessions until their clients acknowledge them");
    ROUTER_SM_COPIES_DROPPED: IntCounter = counter("switchyard_router_sm_copies_dropped_total", "Resumable sessions whose copies were dropped (a bound passed): not resumable if their edge dies");
    ROUTER_SM_ORPHANS: IntCounterVec = counter_vec("switchyard_router_sm_orphans_total", "Resumable sessions of dead edges, by outcome (resumed: taken by another edge; expired: stored offline)", &["outcome"]);
    STORAGE_POOL: IntGaugeVec = gauge_vec("switchyard_storage_pool_connections", "PostgreSQL pool (by schema): connections in use, idle, the pool's maximum, and callers waiting for one", &["pool", "state"]);
    STORAGE_DURATION: HistogramVec = histogram_vec("switchyard_storage_call_duration_seconds", "Storage calls", &["backend", "op"]);
    STORAGE_ERRORS: IntCounterVec = counter_vec("switchyard_storage_errors_total", "Failed storage calls", &["backend", "op"]);
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    init();
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&REGISTRY.gather(), &mut out)
        .expect("text encoding cannot fail");
    String::from_utf8(out).expect("the text format is UTF-8")
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_follow_the_convention_and_render() {
        super::EDGE_BYTES_IN.inc_by(3);
        let text = super::render();
        assert!(
            text.contains("switchyard_edge_received_bytes_total 3"),
            "{text}"
        );
        // Fractional CPU seconds, and the other process metrics read from /proc.
        let cpu = text
            .lines()
            .find_map(|l| l.strip_prefix("process_cpu_seconds_total "))
            .expect("process_cpu_seconds_total");
        assert!(cpu.parse::<f64>().is_ok(), "{cpu}");
        for name in [
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
            "process_threads",
        ] {
            let value = text
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} missing"));
            assert!(value.parse::<f64>().unwrap() > 0.0, "{name} {value}");
        }
        for line in text.lines().filter(|l| l.starts_with("# TYPE switchyard_")) {
            let name = line.split_whitespace().nth(2).unwrap();
            let counter_ok = !line.ends_with("counter") || name.ends_with("_total");
            assert!(counter_ok, "counters end in _total: {line}");
        }
    }

    /// The three kinds have their own series; every other name shares one.
    #[test]
    fn names_other_than_the_kinds_share_one_series() {
        let vec = super::IntCounterVec::new(super::Opts::new("per_kind_test", "test"), &["kind"])
            .unwrap();
        let per_kind = super::PerKind::of(&vec);
        for kind in ["message", "presence", "iq", "iq", "x1", "x2"] {
            per_kind.inc(kind);
        }
        let count = |kind: &str| vec.with_label_values(&[kind]).get();
        assert_eq!(
            [count("message"), count("presence"), count("iq")],
            [1, 1, 2]
        );
        assert_eq!(count("other"), 2);
        assert_eq!(per_kind.total(), 6);
        let series = prometheus::core::Collector::collect(&vec)[0]
            .get_metric()
            .len();
        assert_eq!(series, 4, "no series named after x1 or x2");
    }
}
