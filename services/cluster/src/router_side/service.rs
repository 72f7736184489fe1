//! The `Router` gRPC service of one router process.
//!
//! Stanzas from one link are routed by a fixed set of workers, each sender (full JID)
//! always on the same worker, so one client's stanzas are processed in order (RFC 6120
//! §10.1) while different clients proceed in parallel. A stanza is acknowledged only
//! after [`Router::route`] returned, i.e. after it was delivered to the recipient's edge
//! (that edge answered), stored offline, or bounced.

use super::links::{EdgeLinks, Link, Origin};
use super::{LINK_TOKEN, MAX_MESSAGE_BYTES};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::{Jid, Stanza};
use switchyard_router::Router;
use switchyard_rpc::convert;
use switchyard_rpc::pb;
use switchyard_rpc::pb::router_server;
use switchyard_storage::{
    AccountStore, LoginFailures, SessionRecord, SessionRegistry, StorageError,
};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

/// Workers per link; each processes its share of senders in order. A worker waits on
/// storage and on the edge's delivery answer for every stanza, so this bounds one link's
/// stanzas in progress: 8 capped a login storm at ~280 logins/s (each login's initial
/// presence waits ~6 ms on PostgreSQL and Redis).
const WORKERS: usize = 64;
/// Stanzas a link may have unacknowledged: the edge keeps to [`crate::MAX_IN_FLIGHT`];
/// a link that sends more is closed. The link's reader never waits for a worker (the
/// same stream carries the edge's answers to deliveries, which busy workers wait for),
/// so this window is what bounds the workers' queues.
const WINDOW: usize = crate::MAX_IN_FLIGHT;
/// Most sessions one Reconcile may name (the router holds the list while it runs).
const MAX_HELD: usize = 2_000_000;
/// One Reconcile at a time in this process, so the lists held are bounded in bytes
/// whatever the edges send; another is refused at once and the edge tries again on its
/// next beat.
static RECONCILING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
/// Messages queued towards one edge before senders wait.
const OUTBOUND_QUEUE: usize = 4096;
/// Longest edge name accepted in a Hello.
const MAX_EDGE_ID: usize = 128;

/// The `Router` gRPC service of one router process.
#[derive(Debug, Clone)]
pub struct RouterService {
    pub router: Arc<Router>,
    pub accounts: Arc<dyn AccountStore>,
    pub links: Arc<EdgeLinks>,
    /// Where edge liveness is kept, and for how long one heartbeat counts.
    pub registry: Arc<dyn SessionRegistry>,
    pub edge_ttl: Duration,
    /// The login throttle's counts, kept here for every edge (Redis in a cluster).
    pub login_failures: Arc<dyn LoginFailures>,
}

impl RouterService {
    pub fn into_server(self) -> router_server::RouterServer<Self> {
        router_server::RouterServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// An account a login names: a bare JID of a served domain.
    fn login_account(&self, account: &Jid) -> Result<(), Status> {
        if !account.is_bare() || account.local().is_none() || !self.router.is_local(account) {
            return Err(Status::invalid_argument(
                "a login names a bare JID of a served domain",
            ));
        }
        Ok(())
    }

    /// The edge whose link token the call carries.
    fn caller<T>(&self, request: &Request<T>) -> Result<String, Status> {
        request
            .metadata()
            .get(LINK_TOKEN)
            .and_then(|v| v.to_str().ok())
            .and_then(|token| self.links.edge_of(token))
            .ok_or_else(|| Status::unauthenticated("no token of a link that is up"))
    }

    /// Whether `from` is a session that `edge` bound. A sender missing from the
    /// registry is looked for again once the registry is settled: it may have lost its
    /// data, and the edges are binding their sessions again (the router waits for that).
    /// A registry that still cannot be read after that wait leaves the edge's certificate
    /// as the only check: the stanza is routed (logged) rather than lost.
    async fn bound_by(&self, edge: &str, from: &Jid) -> bool {
        // A component (XEP-0114) sends from any JID at its domain, which is what is bound.
        let bound = match self.router.is_component(from) {
            true => Jid::parse(from.domain()).unwrap_or_else(|_| from.bare()),
            false => from.clone(),
        };
        let owned =
            |sessions: &[SessionRecord]| sessions.iter().any(|s| s.jid == bound && s.edge == edge);
        let bare = bound.bare();
        if self
            .router
            .sessions_of(&bare)
            .await
            .is_ok_and(|s| owned(&s))
        {
            return true;
        }
        self.router.registry_settled().await;
        match self.router.sessions_of(&bare).await {
            Ok(sessions) => owned(&sessions),
            Err(e) => {
                tracing::warn!(error = %e, edge, %from, "registry unreadable: routing on the edge's word");
                true
            }
        }
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

/// A stanza queued for a worker: its link sequence number and origin, trace context,
/// content and, from a resumable session, its XEP-0198 count.
type Queued = (u64, u64, String, Stanza, Option<pb::SmCount>);

/// Routes one worker's share of a link's stanzas in order and acknowledges each. A
/// stanza whose `from` is not a session of the link's edge is not routed: an edge acts
/// only for its own sessions.
async fn work(
    service: RouterService,
    link: Arc<Link>,
    in_flight: Arc<AtomicUsize>,
    mut queue: mpsc::Receiver<Queued>,
) {
    while let Some((seq, origin, traceparent, stanza, sm)) = queue.recv().await {
        if service.bound_by(&link.edge, &stanza.from).await {
            let span = switchyard_telemetry::trace::route_span(&traceparent);
            let routing = service.router.route(stanza).instrument(span);
            Origin::new(link.edge.clone(), origin).scope(routing).await;
            if let Some(sm) = sm {
                service.links.kept.handled(&link.edge, sm.conn, sm.handled);
            }
        } else {
            tracing::warn!(edge = link.edge, from = %stanza.from, "a stanza from a session this edge did not bind, refused");
            switchyard_telemetry::ROUTER_REFUSED_FROM_EDGES.inc();
        }
        in_flight.fetch_sub(1, Ordering::Relaxed);
        if link.tx.send(Ok(ack(seq))).await.is_err() {
            return;
        }
    }
}

/// Reads one link until it ends (or breaks the rules: a window overrun ends it).
async fn serve_link(
    service: RouterService,
    link: Arc<Link>,
    mut inbound: Streaming<pb::EdgeMessage>,
) {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let workers: Vec<mpsc::Sender<Queued>> = (0..WORKERS)
        .map(|_| {
            let (tx, rx) = mpsc::channel(WINDOW);
            tokio::spawn(work(service.clone(), link.clone(), in_flight.clone(), rx));
            tx
        })
        .collect();
    let edge = link.edge.as_str();
    'read: while let Ok(Some(message)) = inbound.message().await {
        match message.body {
            Some(pb::edge_message::Body::Stanzas(batch)) => {
                for s in batch.stanzas {
                    if in_flight.fetch_add(1, Ordering::Relaxed) >= WINDOW {
                        tracing::warn!(edge, "link sent past its in-flight window, closed");
                        let overrun = Status::resource_exhausted("in-flight window overrun");
                        let _ = link.tx.send(Err(overrun)).await;
                        break 'read;
                    }
                    let Some(stanza) = convert::stanza(s.xml) else {
                        tracing::warn!(edge, "unreadable stanza from edge, refused");
                        in_flight.fetch_sub(1, Ordering::Relaxed);
                        let _ = link.tx.send(Ok(ack(s.seq))).await;
                        continue;
                    };
                    // Never waits: the window keeps every queue below its capacity.
                    if workers[worker_of(&stanza)]
                        .try_send((s.seq, s.origin, s.traceparent, stanza, s.sm))
                        .is_err()
                    {
                        break 'read;
                    }
                }
            }
            Some(pb::edge_message::Body::Results(results)) => {
                if let Some(confirmed) = link.answered(results.results) {
                    // Never awaited here: this loop must go on reading the edge whatever
                    // the state of the queue to it (the edge's own reader can be waiting
                    // on its queue to this router). When the queue is full the message
                    // waits in a task of its own: bounded by the answers read.
                    if let Err(mpsc::error::TrySendError::Full(confirmed)) =
                        link.tx.try_send(Ok(confirmed))
                    {
                        let tx = link.tx.clone();
                        tokio::spawn(async move { tx.send(confirmed).await });
                    }
                }
            }
            Some(pb::edge_message::Body::Resynced(done)) => link.resynced(done.id),
            Some(pb::edge_message::Body::HandedOver(answer)) => link.handed_over(answer),
            Some(pb::edge_message::Body::Progress(p)) => {
                super::orphans::progress(&service, edge, p);
            }
            Some(pb::edge_message::Body::Hello(_)) | None => {}
        }
    }
    tracing::info!(edge, "edge link closed");
    service.links.close(&link);
}

/// Longest a login failure may be remembered (the edge's `auth.failure_window_secs`).
const MAX_FAILURE_WINDOW: Duration = Duration::from_secs(86_400);

/// A login-failure request's account and network, checked: a bare JID of a served domain,
/// and a network exactly as an edge writes it (an IPv4 address, or an IPv6 /64 with its
/// host bits zero), so one network is always one key.
fn failures_key(
    service: &RouterService,
    r: &pb::LoginFailuresRequest,
) -> Result<(Jid, String), Status> {
    let account = convert::jid(&r.account)?;
    if !account.is_bare() || account.local().is_none() || !service.router.is_local(&account) {
        return Err(Status::invalid_argument(
            "login failures take a bare JID of a served domain",
        ));
    }
    if !valid_network(&r.network) {
        return Err(Status::invalid_argument(
            "a network is an IPv4 address or an IPv6 /64",
        ));
    }
    Ok((account, r.network.clone()))
}

fn valid_network(text: &str) -> bool {
    if let Ok(v4) = text.parse::<std::net::Ipv4Addr>() {
        return v4.to_string() == text;
    }
    let Some(Ok(v6)) = text
        .strip_suffix("/64")
        .map(str::parse::<std::net::Ipv6Addr>)
    else {
        return false;
    };
    v6.segments()[4..].iter().all(|&s| s == 0)
        && v6.to_ipv4_mapped().is_none()
        && format!("{v6}/64") == text
}

/// A valid edge name: printable ASCII without spaces, as the registry keys hold it.
fn valid_edge_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_EDGE_ID && id.bytes().all(|b| b.is_ascii_graphic())
}

#[tonic::async_trait]
impl router_server::Router for RouterService {
    type LinkStream = crate::coalesce::Coalesced<Result<pb::RouterMessage, Status>>;

    async fn link(
        &self,
        request: Request<Streaming<pb::EdgeMessage>>,
    ) -> Result<Response<Self::LinkStream>, Status> {
        let mut inbound = request.into_inner();
        let edge = match inbound.message().await? {
            Some(pb::EdgeMessage {
                body: Some(pb::edge_message::Body::Hello(hello)),
            }) if valid_edge_id(&hello.edge_id) => hello.edge_id,
            _ => return Err(Status::invalid_argument("a link starts with a valid Hello")),
        };
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let Some(link) = self.links.open(&edge, tx) else {
            tracing::warn!(edge, "refused a second link under a linked edge's name");
            return Err(Status::already_exists("this edge already holds a link"));
        };
        // Alive from the first moment, not from the next heartbeat: another router must
        // not mistake a new edge for a dead one.
        if let Err(e) = self.registry.heartbeat(&edge, self.edge_ttl).await {
            self.links.close(&link);
            return Err(Status::unavailable(e.to_string()));
        }
        let welcome = pb::RouterMessage {
            body: Some(pb::router_message::Body::Welcome(pb::Welcome {
                token: link.token.clone(),
            })),
        };
        let _ = link.tx.send(Ok(welcome)).await;
        tracing::info!(edge, "edge link open");
        tokio::spawn(serve_link(self.clone(), link, inbound));
        Ok(Response::new(crate::coalesce::Coalesced::new(rx)))
    }

    async fn credentials(
        &self,
        request: Request<pb::CredentialsRequest>,
    ) -> Result<Response<pb::CredentialsReply>, Status> {
        self.caller(&request)?;
        let account = convert::jid(&request.get_ref().account)?;
        let found = self
            .accounts
            .credentials(&account.bare())
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(pb::CredentialsReply {
            salts: found.as_ref().map(convert::salts_pb),
        }))
    }

    async fn login_failures(
        &self,
        request: Request<pb::LoginFailuresRequest>,
    ) -> Result<Response<pb::LoginFailuresReply>, Status> {
        self.caller(&request)?;
        let (account, network) = failures_key(self, request.get_ref())?;
        let counts = self
            .login_failures
            .failures(&account, &network)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(convert::login_failures_pb(counts)))
    }

    async fn record_login_failure(
        &self,
        request: Request<pb::LoginFailuresRequest>,
    ) -> Result<Response<pb::LoginFailuresReply>, Status> {
        self.caller(&request)?;
        let (account, network) = failures_key(self, request.get_ref())?;
        let window = Duration::from_millis(request.get_ref().window_ms);
        if !(Duration::from_secs(1)..=MAX_FAILURE_WINDOW).contains(&window) {
            return Err(Status::invalid_argument("window_ms is 1 s to 1 day"));
        }
        let counts = self
            .login_failures
            .record(&account, &network, window)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(convert::login_failures_pb(counts)))
    }

    async fn clear_login_failures(
        &self,
        request: Request<pb::LoginFailuresRequest>,
    ) -> Result<Response<pb::LoginFailuresReply>, Status> {
        self.caller(&request)?;
        let (account, network) = failures_key(self, request.get_ref())?;
        self.login_failures
            .clear(&account, &network)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(pb::LoginFailuresReply::default()))
    }

    async fn bind(
        &self,
        request: Request<pb::BindRequest>,
    ) -> Result<Response<pb::BindReply>, Status> {
        let edge = self.caller(&request)?;
        let r = request.into_inner();
        if r.edge_id != edge {
            return Err(Status::permission_denied(
                "a link binds only its own edge's sessions",
            ));
        }
        let jid = convert::jid(&r.jid)?;
        let session = !jid.is_bare() && self.router.is_local(&jid);
        let component = jid.local().is_none() && jid.is_bare() && self.router.is_component(&jid);
        if !session && !component {
            return Err(Status::invalid_argument(
                "bind takes a full JID of a served domain, or a component's domain",
            ));
        }
        let mut record = SessionRecord::bound(jid, edge, r.conn);
        record.carbons = r.carbons && session;
        let bound = if r.presence.is_empty() {
            self.router.bind(record).await
        } else {
            let presence = convert::element(r.presence.as_bytes())?;
            self.router.rebind(record, presence).await
        };
        let error_condition = match bound {
            Ok(()) => String::new(),
            Err(condition) => condition.as_str().to_owned(),
        };
        Ok(Response::new(pb::BindReply { error_condition }))
    }

    async fn reconcile(
        &self,
        request: Request<Streaming<pb::ReconcileChunk>>,
    ) -> Result<Response<pb::ReconcileReply>, Status> {
        let edge = self.caller(&request)?;
        let _one = RECONCILING
            .try_acquire()
            .map_err(|_| Status::resource_exhausted("another reconcile is running here"))?;
        let mut chunks = request.into_inner();
        let mut held = Vec::new();
        while let Some(chunk) = chunks.message().await? {
            if held.len() + chunk.held.len() > MAX_HELD {
                return Err(Status::resource_exhausted(
                    "more sessions than an edge holds",
                ));
            }
            for s in chunk.held {
                held.push((convert::jid(&s.jid)?, s.conn));
            }
        }
        let removed = self
            .router
            .reconcile(&edge, &held)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(pb::ReconcileReply {
            removed: removed as u64,
        }))
    }

    async fn unbind(
        &self,
        request: Request<pb::UnbindRequest>,
    ) -> Result<Response<pb::UnbindReply>, Status> {
        let edge = self.caller(&request)?;
        let r = request.into_inner();
        let jid = convert::jid(&r.jid)?;
        let unacked: Option<Vec<_>> = r.unacked.into_iter().map(convert::stanza).collect();
        let unacked = unacked
            .ok_or_else(|| Status::invalid_argument("an unreadable unacknowledged stanza"))?;
        let sessions = self
            .router
            .sessions_of(&jid.bare())
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let own = sessions
            .iter()
            .any(|s| s.jid == jid && s.conn == r.conn && s.edge == edge);
        if own {
            self.router.unbind(&jid, r.conn).await;
        }
        // Handed back even when the record is already gone (a delivery or a reconcile
        // removed it first): the stanzas must not be lost, and `session_lapsed` only takes
        // those addressed to this account, which the edge serves anyway.
        self.router.take_unacked(&jid, unacked).await;
        Ok(Response::new(pb::UnbindReply {}))
    }

    /// XEP-0357 for a detached session: only one the calling edge bound, and only a
    /// message addressed to its account.
    async fn notify_detached(
        &self,
        request: Request<pb::NotifyDetachedRequest>,
    ) -> Result<Response<pb::NotifyDetachedReply>, Status> {
        let edge = self.caller(&request)?;
        let r = request.into_inner();
        let jid = convert::jid(&r.jid)?;
        let stanza = convert::stanza(r.stanza)
            .ok_or_else(|| Status::invalid_argument("an unreadable stanza"))?;
        if jid.is_bare() || !self.bound_by(&edge, &jid).await {
            return Err(Status::permission_denied(
                "notifications only for a session this edge bound",
            ));
        }
        self.router.notify_detached(&jid, &stanza).await;
        Ok(Response::new(pb::NotifyDetachedReply {}))
    }

    /// XEP-0198 resumption on another edge (see `handover`): the caller names its own
    /// connection and an account; the SM-ID (random, only ever shown to that account's
    /// client) is what proves the session is the caller's to take.
    async fn take_session(
        &self,
        request: Request<pb::TakeSessionRequest>,
    ) -> Result<Response<pb::TakeSessionReply>, Status> {
        let edge = self.caller(&request)?;
        let r = request.into_inner();
        let account = convert::jid(&r.account)?;
        let named =
            account.is_bare() && account.local().is_some() && self.router.is_local(&account);
        if !named || r.previd.is_empty() || r.previd.len() > super::MAX_SM_ID {
            return Err(Status::invalid_argument(
                "take_session takes an SM-ID and a bare JID of a served domain",
            ));
        }
        let state = super::handover::take_session(
            &self.router,
            &self.links,
            &edge,
            r.conn,
            &r.previd,
            &account,
        )
        .await;
        let orphan = match state {
            Some(_) => None,
            None => super::orphans::take_orphan(self, &edge, r.conn, &r.previd, &account).await,
        };
        Ok(Response::new(pb::TakeSessionReply { state, orphan }))
    }

    /// XEP-0198 after an edge died: this router's share of a session moved to the
    /// caller (see `orphans`).
    async fn take_copies(
        &self,
        request: Request<pb::TakeCopiesRequest>,
    ) -> Result<Response<pb::TakeCopiesReply>, Status> {
        let edge = self.caller(&request)?;
        let reply = super::orphans::take_copies(self, &edge, request.into_inner()).await?;
        Ok(Response::new(reply))
    }

    /// A FAST token checked here, where the tokens are; inputs checked as untrusted (see
    /// `convert::token_check`), the account as for a SCRAM proof.
    async fn verify_token(
        &self,
        request: Request<pb::VerifyTokenRequest>,
    ) -> Result<Response<pb::VerifyTokenReply>, Status> {
        self.caller(&request)?;
        let check = convert::token_check(request.into_inner())?;
        self.login_account(&check.account)?;
        let verdict = self
            .router
            .fast_tokens()
            .verify(&check)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(pb::VerifyTokenReply {
            responder: verdict.responder.unwrap_or_default(),
            rotate: verdict.rotate,
        }))
    }

    /// Issues a token only to an account that exists (an edge asks after a login).
    async fn issue_token(
        &self,
        request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenReply>, Status> {
        self.caller(&request)?;
        let request = convert::token_request(request.into_inner())?;
        self.login_account(&request.account)?;
        let issued = self
            .router
            .fast_tokens()
            .issue(&request)
            .await
            .map_err(|e| match e {
                StorageError::NotFound => Status::not_found("no such account"),
                e => Status::unavailable(e.to_string()),
            })?;
        let expiry = issued.expiry.duration_since(std::time::UNIX_EPOCH);
        Ok(Response::new(pb::IssueTokenReply {
            token: issued.token,
            expiry: expiry.map_or(0, |d| d.as_secs()),
        }))
    }

    /// The edge's proof checked here, where the keys are; inputs checked as untrusted
    /// (a bare JID of a served domain, a known hash, bounded sizes).
    async fn verify_scram(
        &self,
        request: Request<pb::VerifyScramRequest>,
    ) -> Result<Response<pb::VerifyScramReply>, Status> {
        self.caller(&request)?;
        let r = request.into_inner();
        let account = convert::jid(&r.account)?;
        self.login_account(&account)?;
        let proof = convert::proof(r)?;
        let stored = self
            .accounts
            .credentials(&account)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(pb::VerifyScramReply {
            server_signature: proof.check(stored.as_ref()).unwrap_or_default(),
        }))
    }
}
