//! The edge's end of the link: [`RemoteRouters`], the edge's [`RouterLink`] over gRPC.
//!
//! - Discovery: the configured router addresses (static `host:port` entries, or a
//!   Kubernetes headless service name) are resolved every few seconds; each resolved
//!   address gets one Link stream, reconnected with backoff.
//! - Affinity: a stanza goes to the router chosen by rendezvous hashing of the sender's
//!   bare JID over the routers whose link is up. One user's stanzas meet one router
//!   (in order, warm caches); when routers come or go only the users of that router
//!   move.
//! - Delivery guarantee: every stanza stays in the link's in-flight table until the
//!   router acknowledges it. When a link breaks, its unacknowledged stanzas are sent
//!   again through the routers still up. A router that routed a stanza but died before
//!   its acknowledgement reached the edge causes a duplicate; that window is the only
//!   source of duplicates (clients dedupe by stanza id where it matters).
//! - Backpressure: at most [`MAX_IN_FLIGHT`] unacknowledged stanzas per link; a
//!   session's next stanza waits for room.

use crate::dedup::{Origin, Recent};
use crate::router_side::{LINK_TOKEN, MAX_MESSAGE_BYTES};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_core::sasl::fast::{IssuedToken, TokenCheck, TokenRequest, TokenVerdict};
use switchyard_core::sasl::{AccountSalts, ScramProof};
use switchyard_core::session::SmState;
use switchyard_core::{Jid, Routed, Stanza, StanzaCondition};
use switchyard_edge::{Connections, RouterLink, SmCount};
use switchyard_rpc::convert;
use switchyard_rpc::pb;
use switchyard_rpc::pb::router_client::RouterClient;
use switchyard_storage::{LoginFailureCounts, LoginFailures, SessionRecord, StorageError};
use switchyard_telemetry as metrics;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tracing::Instrument;

mod handover;
mod held;
mod orphans;

pub const MAX_IN_FLIGHT: usize = 4096;
const RESOLVE_EVERY: Duration = Duration::from_secs(5);
/// How long a stanza waits for any router before it is given up (and logged).
const NO_ROUTER_PATIENCE: Duration = Duration::from_secs(30);
/// How long a failed unbind is retried.
const UNBIND_PATIENCE: Duration = Duration::from_secs(60);
/// How often each link hears what changed among the resumable sessions (XEP-0198): the
/// routers' copies of what a client has acknowledged live this long at most.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Counts a link as up while alive.
struct LinkUp;

impl Drop for LinkUp {
    fn drop(&mut self) {
        metrics::EDGE_ROUTER_LINKS.dec();
        metrics::EDGE_IN_FLIGHT_LIMIT.sub(MAX_IN_FLIGHT as i64);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One router address and the state of this edge's link to it.
#[derive(Debug)]
struct RouterConn {
    addr: String,
    client: RouterClient<Channel>,
    /// The open stream, while the link is up.
    up: Mutex<Option<Up>>,
    /// Unacknowledged stanzas: seq → the stanza and when the edge received it.
    in_flight: Mutex<BTreeMap<u64, InFlight>>,
    room: Arc<Semaphore>,
    stop: CancellationToken,
    /// The link has been up before: coming up again, it asks for a reconcile.
    was_up: std::sync::atomic::AtomicBool,
}

/// A link that is up: where to send, and the token the router issued for the edge's
/// unary calls.
#[derive(Debug, Clone)]
struct Up {
    tx: mpsc::Sender<pb::EdgeMessage>,
    token: MetadataValue<Ascii>,
}

/// A stanza sent to a router and not yet acknowledged.
#[derive(Debug)]
struct InFlight {
    xml: Vec<u8>,
    traceparent: String,
    /// The sender's bare JID (the affinity key).
    key: Jid,
    /// The stanza's number on this edge, kept across resends (`Stanza.origin`).
    origin: u64,
    received: std::time::Instant,
    /// From a resumable session (XEP-0198): its count, and who waits for the router's
    /// acknowledgement.
    sm: Option<(pb::SmCount, oneshot::Sender<()>)>,
}

#[derive(Debug)]
pub struct RemoteRouters {
    edge_id: String,
    connections: Arc<Connections>,
    routers: Mutex<HashMap<String, Arc<RouterConn>>>,
    next_seq: AtomicU64,
    next_origin: AtomicU64,
    /// Deliveries written recently, to recognise one made again after a router died.
    recent: Recent,
    /// Held while sessions are bound again after the registry lost its data.
    resyncing: tokio::sync::Mutex<()>,
    /// Binds hold it for reading during their call; a reconcile for writing (see
    /// [`held`]).
    binds: tokio::sync::RwLock<()>,
    /// A reconcile should run on the next discovery beat.
    reconcile_wanted: std::sync::atomic::AtomicBool,
}

fn score(key: &(impl Hash + ?Sized), addr: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (key, addr).hash(&mut h);
    h.finish()
}

/// The router address a key (a bare JID) prefers among `addrs` (rendezvous hashing).
pub fn preferred_router<'a>(key: &Jid, addrs: &'a [String]) -> Option<&'a String> {
    addrs.iter().max_by_key(|a| score(key, a))
}

fn status_error(e: tonic::Status) -> StorageError {
    StorageError::Unavailable(format!("router: {e}"))
}

impl RemoteRouters {
    /// Starts discovery and links; `routers` are `host:port` names to resolve.
    pub fn start(
        edge_id: String,
        routers: Vec<String>,
        connections: Arc<Connections>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let this = Arc::new(Self {
            edge_id,
            connections,
            routers: Mutex::new(HashMap::new()),
            next_seq: AtomicU64::new(1),
            next_origin: AtomicU64::new(1),
            recent: Recent::default(),
            resyncing: tokio::sync::Mutex::new(()),
            binds: tokio::sync::RwLock::new(()),
            reconcile_wanted: std::sync::atomic::AtomicBool::new(false),
        });
        tokio::spawn(this.clone().discover(routers, shutdown));
        this
    }

    /// How many router links are up (readiness: at least one).
    pub fn routers_up(&self) -> usize {
        lock(&self.routers)
            .values()
            .filter(|r| lock(&r.up).is_some())
            .count()
    }

    async fn discover(self: Arc<Self>, names: Vec<String>, shutdown: CancellationToken) {
        loop {
            let mut found = Vec::new();
            for name in &names {
                match tokio::net::lookup_host(name.as_str()).await {
                    Ok(addrs) => found.extend(addrs.map(|a| a.to_string())),
                    Err(e) => tracing::warn!(error = %e, name, "cannot resolve router address"),
                }
            }
            if !found.is_empty() {
                self.reconcile(&found);
            }
            self.reconcile_if_wanted().await;
            tokio::select! {
                () = tokio::time::sleep(RESOLVE_EVERY) => {}
                () = shutdown.cancelled() => {
                    for r in lock(&self.routers).values() {
                        r.stop.cancel();
                    }
                    return;
                }
            }
        }
    }

    /// Opens links to new addresses and closes links to vanished ones.
    fn reconcile(self: &Arc<Self>, addrs: &[String]) {
        let mut routers = lock(&self.routers);
        routers.retain(|addr, r| {
            let keep = addrs.contains(addr);
            if !keep {
                r.stop.cancel();
            }
            keep
        });
        for addr in addrs {
            if routers.contains_key(addr) {
                continue;
            }
            let Ok(endpoint) = Endpoint::from_shared(format!("http://{addr}")) else {
                continue;
            };
            let endpoint = endpoint
                .connect_timeout(Duration::from_secs(2))
                .http2_keep_alive_interval(Duration::from_secs(5))
                .keep_alive_timeout(Duration::from_secs(5))
                .keep_alive_while_idle(true);
            let conn = Arc::new(RouterConn {
                addr: addr.clone(),
                client: RouterClient::new(switchyard_rpc::tls::connect_lazy(&endpoint))
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
                up: Mutex::new(None),
                in_flight: Mutex::new(BTreeMap::new()),
                room: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
                stop: CancellationToken::new(),
                was_up: std::sync::atomic::AtomicBool::new(false),
            });
            routers.insert(addr.clone(), conn.clone());
            tokio::spawn(self.clone().keep_linked(conn));
        }
    }

    /// The routers whose link is up, best first for `key`.
    fn ranked(&self, key: &(impl Hash + ?Sized)) -> Vec<Arc<RouterConn>> {
        let mut up: Vec<Arc<RouterConn>> = lock(&self.routers)
            .values()
            .filter(|r| lock(&r.up).is_some())
            .cloned()
            .collect();
        up.sort_by_key(|r| std::cmp::Reverse(score(key, &r.addr)));
        up
    }

    /// Sends one serialized stanza through the best router for `key`, waiting (bounded)
    /// for a router when none is up.
    async fn send(&self, stanza: InFlight) {
        let InFlight {
            xml,
            traceparent,
            key,
            origin,
            received,
            mut sm,
        } = stanza;
        let deadline = tokio::time::Instant::now() + NO_ROUTER_PATIENCE;
        loop {
            if let Some(router) = self.ranked(&key).into_iter().next() {
                let Ok(permit) = router.room.clone().acquire_owned().await else {
                    continue;
                };
                let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
                let count = sm.as_ref().map(|(count, _)| *count);
                let entry = InFlight {
                    xml: xml.clone(),
                    traceparent: traceparent.clone(),
                    key: key.clone(),
                    origin,
                    received,
                    sm: sm.take(),
                };
                lock(&router.in_flight).insert(seq, entry);
                metrics::EDGE_IN_FLIGHT.inc();
                permit.forget(); // returned when the router acknowledges
                let batch = pb::EdgeMessage {
                    body: Some(pb::edge_message::Body::Stanzas(pb::StanzaBatch {
                        stanzas: vec![pb::Stanza {
                            seq,
                            xml,
                            traceparent,
                            origin,
                            sm: count,
                        }],
                    })),
                };
                let sender = lock(&router.up).as_ref().map(|up| up.tx.clone());
                if let Some(tx) = sender {
                    // If the link died meanwhile, its failure handling resends this one.
                    let _ = tx.send(batch).await;
                }
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::error!(%key, "no router reachable: a stanza was dropped");
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Keeps one router's link open until it is stopped.
    async fn keep_linked(self: Arc<Self>, router: Arc<RouterConn>) {
        let mut backoff = Duration::from_millis(100);
        while !router.stop.is_cancelled() {
            match self.link_once(&router).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => tracing::debug!(error = %e, addr = router.addr, "router link failed"),
            }
            *lock(&router.up) = None;
            self.resend_from(&router).await;
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = router.stop.cancelled() => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
        *lock(&router.up) = None;
        self.resend_from(&router).await;
    }

    /// Sends what `router` never acknowledged through the routers still up.
    async fn resend_from(&self, router: &RouterConn) {
        let orphans = std::mem::take(&mut *lock(&router.in_flight));
        router.room.add_permits(orphans.len());
        metrics::EDGE_IN_FLIGHT.sub(orphans.len() as i64);
        if !orphans.is_empty() {
            tracing::warn!(
                addr = router.addr,
                stanzas = orphans.len(),
                "resending unacknowledged stanzas"
            );
            metrics::EDGE_RESENDS.inc_by(orphans.len() as u64);
        }
        for (_, orphan) in orphans {
            self.send(orphan).await;
        }
    }

    async fn link_once(self: &Arc<Self>, router: &RouterConn) -> Result<(), tonic::Status> {
        let (tx, rx) = mpsc::channel(1024);
        let hello = pb::EdgeMessage {
            body: Some(pb::edge_message::Body::Hello(pb::Hello {
                edge_id: self.edge_id.clone(),
            })),
        };
        tx.send(hello)
            .await
            .map_err(|_| tonic::Status::cancelled("link closed"))?;
        let mut inbound = router
            .client
            .clone()
            .link(crate::coalesce::Coalesced::new(rx))
            .await?
            .into_inner();
        let token = match inbound.message().await? {
            Some(pb::RouterMessage {
                body: Some(pb::router_message::Body::Welcome(welcome)),
            }) => MetadataValue::try_from(welcome.token)
                .map_err(|_| tonic::Status::internal("a Welcome token that is not ASCII"))?,
            _ => return Err(tonic::Status::internal("a link starts with a Welcome")),
        };
        *lock(&router.up) = Some(Up {
            tx: tx.clone(),
            token,
        });
        tracing::info!(addr = router.addr, "router link up");
        if router.was_up.swap(true, Ordering::SeqCst) {
            // Unbinds made while it was down may have been lost.
            self.want_reconcile();
        }
        metrics::EDGE_ROUTER_LINKS.inc();
        metrics::EDGE_IN_FLIGHT_LIMIT.add(MAX_IN_FLIGHT as i64);
        let _down = LinkUp;
        // XEP-0198: what the router must hear of the resumable sessions, all of it now.
        let mut progress = tokio::time::interval(PROGRESS_EVERY);
        let mut seen = 0;
        loop {
            let message = tokio::select! {
                m = inbound.message() => m?,
                () = router.stop.cancelled() => {
                    // The sessions that ended at shutdown: the router must not keep
                    // their copies for a resumption that will not come.
                    self.report_progress(&tx, &mut seen).await;
                    return Ok(());
                }
                _ = progress.tick() => {
                    if !self.report_progress(&tx, &mut seen).await {
                        return Ok(());
                    }
                    continue;
                }
            };
            let Some(message) = message else {
                return Ok(());
            };
            match message.body {
                Some(pb::router_message::Body::Acks(acks)) => {
                    let mut in_flight = lock(&router.in_flight);
                    let mut acked = 0;
                    for done in acks.seqs.iter().filter_map(|s| in_flight.remove(s)) {
                        let waited = done.received.elapsed().as_secs_f64();
                        metrics::EDGE_ROUTING_LATENCY.observe(waited);
                        acked += 1;
                        if let Some((_, routed)) = done.sm {
                            let _ = routed.send(());
                        }
                    }
                    router.room.add_permits(acked);
                    metrics::EDGE_IN_FLIGHT.sub(acked as i64);
                }
                Some(pb::router_message::Body::Deliveries(batch)) => {
                    // Answered once written, by a task of its own: the link goes on
                    // reading (acknowledgements, other deliveries) while a busy
                    // connection makes room. Each router worker waits for its answer,
                    // so these tasks are bounded by the routers' workers.
                    tokio::spawn(self.clone().deliver(batch, tx.clone()));
                }
                Some(pb::router_message::Body::Terminate(t)) => {
                    let condition = convert::stream_condition(&t.condition);
                    self.connections.terminate(t.conn, condition);
                }
                Some(pb::router_message::Body::Resync(resync)) => {
                    tokio::spawn(self.clone().resync(resync.id, tx.clone()));
                }
                Some(pb::router_message::Body::Handover(h)) => {
                    tokio::spawn(self.clone().handover(h, tx.clone()));
                }
                Some(pb::router_message::Body::Confirmed(confirmed)) => {
                    for run in confirmed.copies.chunk_by(|a, b| a.conn == b.conn) {
                        self.connections
                            .confirm(run[0].conn, run.iter().map(|c| c.sm_seq));
                    }
                }
                Some(pb::router_message::Body::Welcome(_)) | None => {}
            }
        }
    }

    /// Hands a router's deliveries to their connections and answers each once it is
    /// written (or why it was not). Each connection's are written in the batch's order,
    /// and none after one that was not (it and the rest answer alike), so a session
    /// never sees a later stanza without an earlier one; connections proceed at once.
    async fn deliver(self: Arc<Self>, batch: pb::DeliveryBatch, tx: mpsc::Sender<pb::EdgeMessage>) {
        let batch = batch.deliveries.into_iter().map(|d| (d.conn, d));
        let per_conn = switchyard_router::per_connection(batch);
        // Each connection's answers go as soon as its chain is done: one slow connection
        // holds back no other's (the link merges answers that are ready together).
        let chains = per_conn.into_iter().map(|(_, deliveries)| {
            let deliveries: Vec<pb::Delivery> = deliveries.into_iter().map(|(_, d)| d).collect();
            let tx = tx.clone();
            let this = self.clone();
            async move {
                let results = this.deliver_in_order(deliveries).await;
                let reply = pb::EdgeMessage {
                    body: Some(pb::edge_message::Body::Results(pb::DeliveryResults {
                        results,
                    })),
                };
                let _ = tx.send(reply).await;
            }
        });
        futures_util::future::join_all(chains).await;
    }

    /// One connection's deliveries, in order, stopping at the first not written.
    async fn deliver_in_order(&self, deliveries: Vec<pb::Delivery>) -> Vec<pb::DeliveryResult> {
        let mut results = Vec::with_capacity(deliveries.len());
        // Once one is not written, the rest answer as it did.
        let mut failed: Option<bool> = None;
        for d in deliveries {
            let (written, no_session) = match convert::routed(d.xml) {
                _ if failed.is_some() => (None, failed == Some(true)),
                Ok(stanza) => {
                    let span = metrics::trace::deliver_span(&d.traceparent);
                    let origin = Origin::of(&d.origin_edge, d.origin_seq, d.origin_index, d.conn);
                    let write = self.connections.deliver(d.conn, stanza, d.confirms);
                    let write = write.instrument(span);
                    let written = self.recent.once(origin, write).await;
                    (written, written.is_none())
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a router sent an unreadable delivery");
                    (None, false)
                }
            };
            if written.is_none() {
                failed = Some(no_session);
            }
            results.push(pb::DeliveryResult {
                id: d.id,
                delivered: written.is_some(),
                no_session,
                sm_seq: written.and_then(|w| w.sm_seq),
            });
        }
        results
    }

    /// The registry lost its data: bind every live session again with its last
    /// broadcast presence (available again, without a broadcast: its contacts were never
    /// told it left), then tell the router that asked. One resync at a time: several
    /// routers ask at once, and each answer must follow binds made after its request.
    async fn resync(self: Arc<Self>, id: u64, tx: mpsc::Sender<pb::EdgeMessage>) {
        let _one = self.resyncing.lock().await;
        let sessions = self.connections.sessions();
        tracing::warn!(
            sessions = sessions.len(),
            "registry lost its data: registering sessions again"
        );
        for (conn, session) in sessions {
            let record = SessionRecord::bound(session.jid.clone(), self.edge_id.clone(), conn);
            let presence = session.presence.unwrap_or_default();
            // A router's first call on a restarted Redis can fail on a stale connection.
            for backoff in [100, 400, 1_600].map(Duration::from_millis) {
                if self
                    .bind_with(record.clone(), presence.clone())
                    .await
                    .is_ok()
                {
                    break;
                }
                tokio::time::sleep(backoff).await;
            }
        }
        let done = pb::EdgeMessage {
            body: Some(pb::edge_message::Body::Resynced(pb::ResyncDone { id })),
        };
        let _ = tx.send(done).await;
    }

    /// Binds a session, with its last broadcast presence when it is bound again after
    /// the registry lost its data (empty otherwise).
    async fn bind_with(
        &self,
        record: SessionRecord,
        presence: String,
    ) -> Result<(), StanzaCondition> {
        let _reconcile_waits = self.binds.read().await;
        let request = pb::BindRequest {
            jid: record.jid.to_string(),
            edge_id: record.edge.clone(),
            conn: record.conn,
            presence,
            carbons: record.carbons,
        };
        let reply = self
            .call(&record.jid.bare(), request, |mut c, r| async move {
                c.bind(r).await
            })
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "bind through the router failed");
                StanzaCondition::InternalServerError
            })?;
        match reply.error_condition.as_str() {
            "" => Ok(()),
            other => Err(convert::stanza_condition(other)),
        }
    }

    /// A unary call on the best router for `key`, falling back to the others; each
    /// carries the token of this edge's link to that router.
    async fn call<M, T, F, Fut>(
        &self,
        key: &(impl Hash + ?Sized + Sync),
        message: M,
        f: F,
    ) -> Result<T, tonic::Status>
    where
        M: Clone,
        F: Fn(RouterClient<Channel>, tonic::Request<M>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut last = tonic::Status::unavailable("no router link is up");
        for router in self.ranked(key) {
            let Some(token) = lock(&router.up).as_ref().map(|up| up.token.clone()) else {
                continue;
            };
            let mut request = tonic::Request::new(message.clone());
            request.metadata_mut().insert(LINK_TOKEN, token);
            match f(router.client.clone(), request).await {
                Ok(v) => return Ok(v.into_inner()),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

#[async_trait]
impl RouterLink for RemoteRouters {
    async fn credentials(&self, account: &Jid) -> Result<Option<AccountSalts>, StorageError> {
        let request = pb::CredentialsRequest {
            account: account.to_string(),
        };
        let reply = self
            .call(account, request, |mut c, r| async move {
                c.credentials(r).await
            })
            .await
            .map_err(status_error)?;
        reply
            .salts
            .map(convert::salts)
            .transpose()
            .map_err(status_error)
    }

    /// Asked of the account's preferred router, like its salts.
    async fn verify(
        &self,
        account: &Jid,
        proof: &ScramProof,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let request = convert::verify_request(account, proof);
        let reply = self
            .call(account, request, |mut c, r| async move {
                c.verify_scram(r).await
            })
            .await
            .map_err(status_error)?;
        let signature = reply.server_signature;
        Ok((!signature.is_empty()).then_some(signature))
    }

    async fn verify_token(&self, check: &TokenCheck) -> Result<TokenVerdict, StorageError> {
        let request = convert::verify_token_request(check);
        let reply = self
            .call(&check.account, request, |mut c, r| async move {
                c.verify_token(r).await
            })
            .await
            .map_err(status_error)?;
        let responder = reply.responder;
        Ok(TokenVerdict {
            responder: (!responder.is_empty()).then_some(responder),
            rotate: reply.rotate,
        })
    }

    async fn issue_token(&self, request: &TokenRequest) -> Result<IssuedToken, StorageError> {
        let account = &request.account;
        let request = convert::issue_token_request(request);
        let reply = self
            .call(account, request, |mut c, r| async move {
                c.issue_token(r).await
            })
            .await
            .map_err(status_error)?;
        Ok(IssuedToken {
            token: reply.token,
            expiry: std::time::UNIX_EPOCH + std::time::Duration::from_secs(reply.expiry),
        })
    }

    async fn bind(&self, record: SessionRecord) -> Result<(), StanzaCondition> {
        self.bind_with(record, String::new()).await
    }

    /// Retried with backoff for a bounded time: a session left in the registry after
    /// its connection ended would swallow stanzas meant for it until this edge died.
    /// What the client never acknowledged goes along, in requests of at most
    /// [`UNACKED_CHUNK`] bytes (the first one ends the session, the others only carry).
    async fn unbind(&self, jid: &Jid, conn: u64, unacked: Vec<Routed>) {
        let mut chunks = vec![Vec::new()];
        let mut bytes = 0;
        for stanza in unacked {
            let xml = stanza.to_wire_xml();
            if bytes > 0 && bytes + xml.len() > UNACKED_CHUNK {
                chunks.push(Vec::new());
                bytes = 0;
            }
            bytes += xml.len();
            chunks
                .last_mut()
                .expect("one")
                .push(xml.as_bytes().to_vec());
        }
        for unacked in chunks {
            let request = pb::UnbindRequest {
                jid: jid.to_string(),
                conn,
                unacked,
            };
            self.unbind_once(jid, request).await;
        }
    }

    async fn take_session(
        &self,
        previd: &str,
        account: &Jid,
        conn: u64,
        h: Option<u32>,
    ) -> Option<SmState> {
        self.take_session_from(previd, account, conn, h).await
    }

    /// Best effort, once: a lost notification costs a wake-up, and the next message
    /// tries again.
    async fn notify_detached(&self, jid: &Jid, message: Routed) {
        let request = pb::NotifyDetachedRequest {
            jid: jid.to_string(),
            stanza: message.to_wire_xml().as_bytes().to_vec(),
        };
        let sent = self
            .call(&jid.bare(), request, |mut c, r| async move {
                c.notify_detached(r).await
            })
            .await;
        if let Err(e) = sent {
            tracing::debug!(error = %e, %jid, "a detached session's notification was not sent");
        }
    }

    async fn submit(&self, stanza: Stanza, sm: Option<SmCount>) {
        let (routed, acknowledged) = oneshot::channel();
        let sm = sm.map(|c| {
            let count = pb::SmCount {
                conn: c.conn,
                handled: c.handled,
            };
            (count, routed)
        });
        let waits = sm.is_some();
        self.send(InFlight {
            xml: convert::stanza_bytes(stanza.element()),
            traceparent: metrics::trace::current_traceparent(),
            key: stanza.from.bare(),
            origin: self.next_origin.fetch_add(1, Ordering::Relaxed),
            received: std::time::Instant::now(),
            sm,
        })
        .await;
        if waits {
            // Given up (no router for too long) when the sender is dropped.
            let _ = acknowledged.await;
        }
    }
}

/// Bytes of unacknowledged stanzas carried by one unbind request (well under gRPC's
/// 4 MiB message limit).
const UNACKED_CHUNK: usize = 1024 * 1024;

impl RemoteRouters {
    async fn unbind_once(&self, jid: &Jid, request: pb::UnbindRequest) {
        let mut backoff = Duration::from_millis(100);
        let deadline = tokio::time::Instant::now() + UNBIND_PATIENCE;
        loop {
            let result = self
                .call(&jid.bare(), request.clone(), |mut c, r| async move {
                    c.unbind(r).await
                })
                .await;
            let Err(e) = result else {
                return;
            };
            if tokio::time::Instant::now() + backoff > deadline {
                // Routers still remove it: at the first delivery, which this edge
                // answers "no such session", or when this edge is reaped.
                tracing::warn!(
                    error = %e,
                    %jid,
                    unacked = request.unacked.len(),
                    "unbind through the router failed; gave up retrying (unacknowledged stanzas it carried are lost)"
                );
                self.want_reconcile();
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

/// The login throttle's counts, kept by the routers (in Redis) for every edge alike; each
/// call goes to the account's preferred router, like its credentials.
#[async_trait]
impl LoginFailures for RemoteRouters {
    async fn failures(
        &self,
        account: &Jid,
        network: &str,
    ) -> Result<LoginFailureCounts, StorageError> {
        let request = failures_request(account, network, Duration::ZERO);
        self.call(account, request, |mut c, r| async move {
            c.login_failures(r).await
        })
        .await
        .map(convert::login_failures)
        .map_err(status_error)
    }

    async fn record(
        &self,
        account: &Jid,
        network: &str,
        window: Duration,
    ) -> Result<LoginFailureCounts, StorageError> {
        let request = failures_request(account, network, window);
        self.call(account, request, |mut c, r| async move {
            c.record_login_failure(r).await
        })
        .await
        .map(convert::login_failures)
        .map_err(status_error)
    }

    async fn clear(&self, account: &Jid, network: &str) -> Result<(), StorageError> {
        let request = failures_request(account, network, Duration::ZERO);
        self.call(account, request, |mut c, r| async move {
            c.clear_login_failures(r).await
        })
        .await
        .map(drop)
        .map_err(status_error)
    }
}

fn failures_request(account: &Jid, network: &str, window: Duration) -> pb::LoginFailuresRequest {
    pb::LoginFailuresRequest {
        account: account.to_string(),
        network: network.to_owned(),
        window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
    }
}
