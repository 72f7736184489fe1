//! The router's end of the link: the `Router` gRPC service, and [`EdgeLinks`], the
//! router's [`EdgeDelivery`] over the Link streams edges keep open to it.
//!
//! Stanzas from one link are routed by a fixed set of workers, each sender (full JID)
//! always on the same worker, so one client's stanzas are processed in order (RFC 6120
//! §10.1) while different clients proceed in parallel. A stanza is acknowledged only
//! after [`Router::route`] returned, i.e. after it was delivered to the recipient's edge
//! (that edge answered), stored offline, or bounced.

use crate::convert;
use crate::pb;
use crate::pb::router_server;
use async_trait::async_trait;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_core::{Element, Stanza, StreamCondition};
use switchyard_router::{EdgeDelivery, Router, Undeliverable};
use switchyard_storage::{AccountStore, SessionRecord, SessionRegistry};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

/// Workers per link; each processes its share of senders in order. A worker waits on
/// storage and on the edge's delivery answer for every stanza, so this bounds one link's
/// stanzas in progress: 8 capped a login storm at ~280 logins/s (each login's initial
/// presence waits ~6 ms on PostgreSQL and Redis).
const WORKERS: usize = 64;
/// Stanzas queued per worker. The link's reader must never wait for a worker: the same
/// stream carries the edge's answers to deliveries, which busy workers are waiting for,
/// so a reader blocked on a full queue would deadlock the link. The edge allows at most
/// [`crate::MAX_IN_FLIGHT`] unacknowledged stanzas per link, so queues of that size can
/// never fill; that window is the backpressure.
const WORKER_QUEUE: usize = crate::MAX_IN_FLIGHT;
/// Messages queued towards one edge before senders wait.
const OUTBOUND_QUEUE: usize = 4096;
/// How long a delivery may wait for the edge's answer before it counts as failed. The
/// edge answers once the stanza is written, and makes a delivery to a busy connection
/// wait (pushback) up to its patience (twice its write timeout, 60 s by default), so
/// this is longer; a dead edge's link breaks within its HTTP/2 keepalive long before.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(90);

type Outbound = mpsc::Sender<Result<pb::RouterMessage, Status>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One edge's open link to this router.
#[derive(Debug)]
struct Link {
    instance: u64,
    tx: Outbound,
    next_delivery: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<(), Undeliverable>>>>,
}

/// The edges that currently hold a link to this router.
#[derive(Debug, Default)]
pub struct EdgeLinks {
    links: Mutex<HashMap<String, Arc<Link>>>,
    instances: AtomicU64,
}

impl EdgeLinks {
    fn get(&self, edge: &str) -> Option<Arc<Link>> {
        lock(&self.links).get(edge).cloned()
    }

    /// Asks every linked edge to register its sessions again.
    pub async fn resync_all(&self) {
        let links: Vec<Arc<Link>> = lock(&self.links).values().cloned().collect();
        for link in links {
            let message = pb::RouterMessage {
                body: Some(pb::router_message::Body::Resync(pb::Resync {})),
            };
            let _ = link.tx.send(Ok(message)).await;
        }
    }

    /// Edges with a link up now (kept alive in the registry by this router).
    pub fn edges(&self) -> Vec<String> {
        lock(&self.links).keys().cloned().collect()
    }

    fn open(&self, edge: &str, tx: Outbound) -> Arc<Link> {
        let link = Arc::new(Link {
            instance: self.instances.fetch_add(1, Ordering::Relaxed),
            tx,
            next_delivery: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
        });
        if lock(&self.links)
            .insert(edge.to_owned(), link.clone())
            .is_none()
        {
            switchyard_telemetry::ROUTER_EDGE_LINKS.inc();
        }
        link
    }

    /// Forgets the link if it is still this instance; its pending deliveries fail.
    fn close(&self, edge: &str, link: &Link) {
        let mut links = lock(&self.links);
        if links.get(edge).is_some_and(|l| l.instance == link.instance) {
            links.remove(edge);
            switchyard_telemetry::ROUTER_EDGE_LINKS.dec();
        }
        lock(&link.pending).clear();
    }
}

#[async_trait]
impl EdgeDelivery for EdgeLinks {
    async fn deliver(&self, edge: &str, conn: u64, stanza: Element) -> Result<(), Undeliverable> {
        let link = self.get(edge).ok_or(Undeliverable::Unreachable)?;
        let id = link.next_delivery.fetch_add(1, Ordering::Relaxed);
        let (done, answer) = oneshot::channel();
        lock(&link.pending).insert(id, done);
        let delivery = pb::Delivery {
            id,
            conn,
            xml: convert::stanza_bytes(&stanza),
            traceparent: switchyard_telemetry::trace::current_traceparent(),
        };
        let message = pb::RouterMessage {
            body: Some(pb::router_message::Body::Deliveries(pb::DeliveryBatch {
                deliveries: vec![delivery],
            })),
        };
        if link.tx.send(Ok(message)).await.is_err() {
            lock(&link.pending).remove(&id);
            return Err(Undeliverable::Unreachable);
        }
        match tokio::time::timeout(DELIVERY_TIMEOUT, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Undeliverable::Unreachable),
            Err(_) => {
                lock(&link.pending).remove(&id);
                tracing::warn!(edge, conn, "edge did not answer a delivery in time");
                Err(Undeliverable::Unreachable)
            }
        }
    }

    async fn terminate(&self, edge: &str, conn: u64, condition: StreamCondition) {
        if let Some(link) = self.get(edge) {
            let message = pb::RouterMessage {
                body: Some(pb::router_message::Body::Terminate(pb::Terminate {
                    conn,
                    condition: condition.as_str().to_owned(),
                })),
            };
            let _ = link.tx.send(Ok(message)).await;
        }
    }
}

/// The `Router` gRPC service of one router process.
#[derive(Debug, Clone)]
pub struct RouterService {
    pub router: Arc<Router>,
    pub accounts: Arc<dyn AccountStore>,
    pub links: Arc<EdgeLinks>,
    /// Where edge liveness is kept, and for how long one heartbeat counts.
    pub registry: Arc<dyn SessionRegistry>,
    pub edge_ttl: Duration,
}

impl RouterService {
    pub fn into_server(self) -> router_server::RouterServer<Self> {
        router_server::RouterServer::new(self)
    }
}

fn worker_of(stanza: &Stanza) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    stanza.from.hash(&mut h);
    (h.finish() as usize) % WORKERS
}

fn ack(seq: u64) -> pb::RouterMessage {
    pb::RouterMessage {
        body: Some(pb::router_message::Body::Acks(pb::Acks { seqs: vec![seq] })),
    }
}

/// A stanza queued for a worker: its link sequence number, trace context and content.
type Queued = (u64, String, Stanza);

/// Routes one worker's share of a link's stanzas in order and acknowledges each.
async fn work(router: Arc<Router>, tx: Outbound, mut queue: mpsc::Receiver<Queued>) {
    while let Some((seq, traceparent, stanza)) = queue.recv().await {
        let span = switchyard_telemetry::trace::route_span(&traceparent);
        router.route(stanza).instrument(span).await;
        if tx.send(Ok(ack(seq))).await.is_err() {
            return;
        }
    }
}

/// Reads one link until it ends.
async fn serve_link(
    service: RouterService,
    edge: String,
    link: Arc<Link>,
    mut inbound: Streaming<pb::EdgeMessage>,
) {
    let workers: Vec<mpsc::Sender<Queued>> = (0..WORKERS)
        .map(|_| {
            let (tx, rx) = mpsc::channel(WORKER_QUEUE);
            tokio::spawn(work(service.router.clone(), link.tx.clone(), rx));
            tx
        })
        .collect();
    while let Ok(Some(message)) = inbound.message().await {
        match message.body {
            Some(pb::edge_message::Body::Stanzas(batch)) => {
                for s in batch.stanzas {
                    let parsed = convert::element(&s.xml).ok().and_then(Stanza::from_element);
                    let Some(stanza) = parsed else {
                        tracing::warn!(edge, "unreadable stanza from edge, dropped");
                        let _ = link.tx.send(Ok(ack(s.seq))).await;
                        continue;
                    };
                    let worker = &workers[worker_of(&stanza)];
                    if worker.send((s.seq, s.traceparent, stanza)).await.is_err() {
                        break;
                    }
                }
            }
            Some(pb::edge_message::Body::Results(results)) => {
                let mut pending = lock(&link.pending);
                for r in results.results {
                    if let Some(done) = pending.remove(&r.id) {
                        let _ = done.send(match (r.delivered, r.no_session) {
                            (true, _) => Ok(()),
                            (false, true) => Err(Undeliverable::NoSession),
                            (false, false) => Err(Undeliverable::Unreachable),
                        });
                    }
                }
            }
            Some(pb::edge_message::Body::Hello(_)) | None => {}
        }
    }
    tracing::info!(edge, "edge link closed");
    service.links.close(&edge, &link);
}

#[tonic::async_trait]
impl router_server::Router for RouterService {
    type LinkStream = ReceiverStream<Result<pb::RouterMessage, Status>>;

    async fn link(
        &self,
        request: Request<Streaming<pb::EdgeMessage>>,
    ) -> Result<Response<Self::LinkStream>, Status> {
        let mut inbound = request.into_inner();
        let edge = match inbound.message().await? {
            Some(pb::EdgeMessage {
                body: Some(pb::edge_message::Body::Hello(hello)),
            }) if !hello.edge_id.is_empty() => hello.edge_id,
            _ => return Err(Status::invalid_argument("a link starts with Hello")),
        };
        // Alive from the first moment, not from the next heartbeat: another router must
        // not mistake a new edge for a dead one.
        self.registry
            .heartbeat(&edge, self.edge_ttl)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let link = self.links.open(&edge, tx);
        tracing::info!(edge, "edge link open");
        tokio::spawn(serve_link(self.clone(), edge, link, inbound));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn credentials(
        &self,
        request: Request<pb::CredentialsRequest>,
    ) -> Result<Response<pb::CredentialsReply>, Status> {
        let account = convert::jid(&request.get_ref().account)?;
        let found = self
            .accounts
            .credentials(&account)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(pb::CredentialsReply {
            found: found.as_ref().map(convert::credentials_pb),
        }))
    }

    async fn bind(
        &self,
        request: Request<pb::BindRequest>,
    ) -> Result<Response<pb::BindReply>, Status> {
        let r = request.into_inner();
        let record = SessionRecord::bound(convert::jid(&r.jid)?, r.edge_id, r.conn);
        let error_condition = match self.router.bind(record).await {
            Ok(()) => String::new(),
            Err(condition) => condition.as_str().to_owned(),
        };
        Ok(Response::new(pb::BindReply { error_condition }))
    }

    async fn unbind(
        &self,
        request: Request<pb::UnbindRequest>,
    ) -> Result<Response<pb::UnbindReply>, Status> {
        let r = request.into_inner();
        self.router.unbind(&convert::jid(&r.jid)?, r.conn).await;
        Ok(Response::new(pb::UnbindReply {}))
    }
}
