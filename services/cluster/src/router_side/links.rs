//! The links edges hold to this router, by edge name, and delivery over them.

use super::kept::Kept;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_core::{Routed, StreamCondition};
use switchyard_router::{Batch, BatchResults, EdgeDelivery, Undeliverable};
use switchyard_rpc::pb;
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

/// How long a delivery may wait for the edge's answer before it counts as failed. The
/// edge answers once the stanza is written, and makes a delivery to a busy connection
/// wait (pushback) up to its patience (twice its write timeout, 60 s by default), so
/// this is longer; a dead edge's link breaks within its HTTP/2 keepalive long before.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(90);

/// How long a router waits for its edges to register their sessions again after the
/// registry lost its data; an edge that has not answered by then is not waited for (its
/// sessions come back as its binds arrive, and what was stored meanwhile follows them).
const RESYNC_PATIENCE: Duration = Duration::from_secs(10);

type Outbound = mpsc::Sender<Result<pb::RouterMessage, Status>>;

tokio::task_local! {
    /// The stanza a router worker is routing, for the deliveries it causes: a recipient
    /// edge recognises a delivery made again for the same stanza through another router.
    static ORIGIN: Origin;
}

/// Where a stanza came from: its edge and that edge's number for it.
#[derive(Debug)]
pub(super) struct Origin {
    edge: String,
    seq: u64,
    /// Deliveries made for it so far.
    made: std::sync::atomic::AtomicU32,
}

impl Origin {
    pub(super) fn new(edge: String, seq: u64) -> Self {
        Self {
            edge,
            seq,
            made: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Runs the routing of the stanza with its origin in scope.
    pub(super) async fn scope<F: std::future::Future>(self, routing: F) -> F::Output {
        ORIGIN.scope(self, routing).await
    }
}

/// The origin fields of the next delivery made by the current task.
fn next_origin() -> (String, u64, u32) {
    ORIGIN
        .try_with(|o| {
            (
                o.edge.clone(),
                o.seq,
                o.made.fetch_add(1, Ordering::Relaxed),
            )
        })
        .unwrap_or_default()
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One edge's open link to this router.
#[derive(Debug)]
pub(super) struct Link {
    instance: u64,
    pub(super) edge: String,
    pub(super) tx: Outbound,
    /// Authorizes the edge's unary calls while the link is up.
    pub(super) token: String,
    next_delivery: AtomicU64,
    /// Deliveries waiting for the edge's answer: who waits, and the connection and
    /// bytes (kept as a copy if the edge numbers it, see [`Kept`]).
    pending: Mutex<HashMap<u64, Pending>>,
    kept: Arc<Kept>,
    /// The id of the last Resync sent, and of the last one the edge answered done.
    resync_sent: AtomicU64,
    resync_done: tokio::sync::watch::Sender<u64>,
    /// XEP-0198 handovers waiting for the edge's answer.
    pub(super) handovers: super::handover::Pending,
}

impl Link {
    /// Sends one message of deliveries and waits for each answer (see
    /// [`EdgeLinks::deliver_batch`]).
    async fn send_chunk(
        &self,
        edge: &str,
        chunk: Vec<(u64, Arc<str>)>,
        traceparent: &str,
    ) -> BatchResults {
        let count = chunk.len();
        let mut deliveries = Vec::with_capacity(count);
        let mut answers = Vec::with_capacity(count);
        {
            let mut pending = lock(&self.pending);
            for (conn, xml) in chunk {
                let id = self.next_delivery.fetch_add(1, Ordering::Relaxed);
                let (done, answer) = oneshot::channel();
                let bytes = xml.as_bytes().to_vec();
                pending.insert(id, (done, conn, xml));
                let (origin_edge, origin_seq, origin_index) = next_origin();
                deliveries.push(pb::Delivery {
                    id,
                    conn,
                    xml: bytes,
                    traceparent: traceparent.to_owned(),
                    origin_edge,
                    origin_seq,
                    origin_index,
                    confirms: true,
                });
                answers.push((id, answer));
            }
        }
        let message = pb::RouterMessage {
            body: Some(pb::router_message::Body::Deliveries(pb::DeliveryBatch {
                deliveries,
            })),
        };
        if self.tx.send(Ok(message)).await.is_err() {
            let mut pending = lock(&self.pending);
            for (id, _) in &answers {
                pending.remove(id);
            }
            return vec![Err(Undeliverable::Unreachable); count];
        }
        let mut results = Vec::with_capacity(count);
        for (id, answer) in answers {
            results.push(match tokio::time::timeout(DELIVERY_TIMEOUT, answer).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(Undeliverable::Unreachable),
                Err(_) => {
                    lock(&self.pending).remove(&id);
                    tracing::warn!(edge, "edge did not answer a delivery in time");
                    Err(Undeliverable::Unreachable)
                }
            });
        }
        results
    }

    /// Asks the edge to bind its sessions again and waits until it says it has.
    async fn resync(&self) -> bool {
        let id = self.resync_sent.fetch_add(1, Ordering::Relaxed) + 1;
        let mut done = self.resync_done.subscribe();
        let message = pb::RouterMessage {
            body: Some(pb::router_message::Body::Resync(pb::Resync { id })),
        };
        if self.tx.send(Ok(message)).await.is_err() {
            return false;
        }
        let answered = done.wait_for(|answered| *answered >= id).await.is_ok();
        answered
    }

    /// The edge answered a Resync; ids it was never sent are ignored.
    pub(super) fn resynced(&self, id: u64) {
        if id <= self.resync_sent.load(Ordering::Relaxed) {
            self.resync_done.send_if_modified(|done| {
                let newer = id > *done;
                *done = (*done).max(id);
                newer
            });
        }
    }

    /// Hands the edge's answers to the deliveries waiting for them, keeping a copy of
    /// each a resumable session numbered; answers to deliveries this link never made are
    /// ignored. What it returns tells the edge which numbered answers were read (each a
    /// stanza its session holds unwritten until then), or `None` when there are none.
    pub(super) fn answered(&self, results: Vec<pb::DeliveryResult>) -> Option<pb::RouterMessage> {
        let mut copies = Vec::new();
        let mut pending = lock(&self.pending);
        for r in results {
            if let Some((done, conn, xml)) = pending.remove(&r.id) {
                if let Some(sm_seq) = r.sm_seq.filter(|_| r.delivered) {
                    self.kept.copy(&self.edge, conn, sm_seq, xml);
                    copies.push(pb::ConfirmedCopy { conn, sm_seq });
                }
                let _ = done.send(match (r.delivered, r.no_session) {
                    (true, _) => Ok(()),
                    (false, true) => Err(Undeliverable::NoSession),
                    (false, false) => Err(Undeliverable::Unreachable),
                });
            }
        }
        if copies.is_empty() {
            return None;
        }
        Some(pb::RouterMessage {
            body: Some(pb::router_message::Body::Confirmed(pb::Confirmed {
                copies,
            })),
        })
    }
}

/// A delivery waiting for the edge's answer.
type Pending = (oneshot::Sender<Result<(), Undeliverable>>, u64, Arc<str>);

/// The edges that currently hold a link to this router.
#[derive(Debug)]
pub struct EdgeLinks {
    links: Mutex<HashMap<String, Arc<Link>>>,
    instances: AtomicU64,
    /// What this router keeps of the edges' resumable sessions.
    pub(super) kept: Arc<Kept>,
}

impl Default for EdgeLinks {
    fn default() -> Self {
        Self {
            links: Mutex::new(HashMap::new()),
            instances: AtomicU64::new(0),
            kept: Arc::new(Kept::new(KEPT_BYTES)),
        }
    }
}

/// Bytes of copies kept for resumable sessions (see [`Kept`]): at 1 KiB a stanza, a
/// quarter of a million stanzas not yet acknowledged.
const KEPT_BYTES: usize = 256 * 1024 * 1024;

impl EdgeLinks {
    /// The open link of `edge`.
    pub(super) fn get(&self, edge: &str) -> Option<Arc<Link>> {
        lock(&self.links).get(edge).cloned()
    }

    /// Forgets what is kept of sessions whose edge went away long ago (see
    /// `kept::FORGOTTEN_AFTER`); on the liveness beat.
    pub fn sweep_kept(&self) {
        self.kept.sweep(std::time::Instant::now());
    }

    /// Edges with a link up now (kept alive in the registry by this router).
    pub fn edges(&self) -> Vec<String> {
        lock(&self.links).keys().cloned().collect()
    }

    /// Opens the link of `edge`; `None` when that edge already holds a link here: a
    /// second link under a linked edge's name would capture its deliveries, and when it
    /// went away the real edge's users would silently stop receiving.
    pub(super) fn open(&self, edge: &str, tx: Outbound) -> Option<Arc<Link>> {
        let mut links = lock(&self.links);
        if links.contains_key(edge) {
            return None;
        }
        let link = Arc::new(Link {
            instance: self.instances.fetch_add(1, Ordering::Relaxed),
            edge: edge.to_owned(),
            tx,
            token: switchyard_core::token::token(32),
            next_delivery: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            resync_sent: AtomicU64::new(0),
            resync_done: tokio::sync::watch::Sender::new(0),
            handovers: super::handover::Pending::default(),
            kept: self.kept.clone(),
        });
        links.insert(edge.to_owned(), link.clone());
        self.kept.link(edge, None);
        switchyard_telemetry::ROUTER_EDGE_LINKS.inc();
        Some(link)
    }

    /// Ends every link with `unavailable` (this router is shutting down): each edge
    /// resends what this router had not acknowledged through the others and moves its
    /// users to them, and the gRPC server's graceful shutdown no longer waits on links
    /// that would otherwise stay open as long as their edges do.
    pub fn close_all(&self) {
        let links: Vec<Arc<Link>> = lock(&self.links).values().cloned().collect();
        for link in links {
            let going = Status::unavailable("router shutting down");
            // A full queue is fine: the edge sees the stream end either way.
            let _ = link.tx.try_send(Err(going));
            self.close(&link);
        }
    }

    /// Forgets the link if it is still this instance; its pending deliveries fail.
    pub(super) fn close(&self, link: &Link) {
        let mut links = lock(&self.links);
        if links
            .get(&link.edge)
            .is_some_and(|l| l.instance == link.instance)
        {
            links.remove(&link.edge);
            switchyard_telemetry::ROUTER_EDGE_LINKS.dec();
            self.kept.link(&link.edge, Some(std::time::Instant::now()));
        }
        lock(&link.pending).clear();
    }

    /// The edge whose open link issued `token`.
    pub(super) fn edge_of(&self, token: &str) -> Option<String> {
        lock(&self.links)
            .values()
            .find(|l| constant_time_eq(l.token.as_bytes(), token.as_bytes()))
            .map(|l| l.edge.clone())
    }
}

/// Compares secrets without an early exit on the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[async_trait]
impl EdgeDelivery for EdgeLinks {
    async fn deliver(&self, edge: &str, conn: u64, stanza: Routed) -> Result<(), Undeliverable> {
        self.deliver_batch(edge, vec![(conn, stanza)]).await[0]
    }

    /// The batch in messages of at most [`crate::coalesce::MAX_ITEMS`] deliveries and
    /// about [`crate::coalesce::MAX_BYTES`] (far below the link's message cap), each sent
    /// once the one before is answered, so a connection's stanzas stay in order across
    /// them. The edge writes each connection's in order and answers them as written; an
    /// answer that does not come within [`DELIVERY_TIMEOUT`] of the one before counts as
    /// unreachable (a link that is gone answers the rest so at once).
    async fn deliver_batch(&self, edge: &str, batch: Batch) -> BatchResults {
        let count = batch.len();
        let Some(link) = self.get(edge) else {
            return vec![Err(Undeliverable::Unreachable); count];
        };
        let traceparent = switchyard_telemetry::trace::current_traceparent();
        let mut results = Vec::with_capacity(count);
        // Serialized first (once, or the bytes as they came): chunks count real bytes.
        let mut rest = batch
            .into_iter()
            .map(|(conn, stanza)| (conn, stanza.to_wire_xml()))
            .peekable();
        while rest.peek().is_some() {
            let mut chunk = Vec::new();
            let mut bytes = 0;
            while let Some((conn, xml)) = rest.next_if(|(_, xml)| {
                chunk.is_empty()
                    || (chunk.len() < crate::coalesce::MAX_ITEMS
                        && bytes + xml.len() <= crate::coalesce::MAX_BYTES)
            }) {
                bytes += xml.len();
                chunk.push((conn, xml));
            }
            results.extend(link.send_chunk(edge, chunk, &traceparent).await);
        }
        results
    }

    fn reachable(&self, edge: &str) -> bool {
        self.get(edge).is_some()
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

    /// Every linked edge binds its sessions again, all at once; returns when all said
    /// they did, or after [`RESYNC_PATIENCE`].
    async fn reregister(&self) {
        let mut all = tokio::task::JoinSet::new();
        let links: Vec<Arc<Link>> = lock(&self.links).values().cloned().collect();
        for link in links {
            all.spawn(async move { link.resync().await });
        }
        let edges = all.len();
        let waited = tokio::time::timeout(RESYNC_PATIENCE, async {
            let mut failed = 0;
            while let Some(done) = all.join_next().await {
                failed += usize::from(!matches!(done, Ok(true)));
            }
            failed
        });
        match waited.await {
            Ok(failed) => tracing::info!(edges, failed, "edges registered their sessions again"),
            Err(_) => tracing::warn!(
                edges,
                "not every edge registered its sessions again in time; going on"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coalesce::{MAX_BYTES, MAX_ITEMS};
    use switchyard_core::{ns, Element};

    fn message(i: usize, body: usize) -> Routed {
        Element::new("message", ns::CLIENT)
            .with_attr("id", i.to_string())
            .with_child(Element::new("body", ns::CLIENT).with_text("x".repeat(body)))
            .into()
    }

    /// The next message the link sends its edge, which must be deliveries.
    async fn next_deliveries(
        rx: &mut mpsc::Receiver<Result<pb::RouterMessage, Status>>,
    ) -> pb::DeliveryBatch {
        let message = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("the next message in time")
            .expect("link open")
            .expect("not an error");
        let Some(pb::router_message::Body::Deliveries(batch)) = message.body else {
            panic!("expected deliveries");
        };
        batch
    }

    /// Sends `batch` to a link whose edge answers every delivery as written; the number
    /// of deliveries in each link message, the ids of the stanzas in the order the edge
    /// got them, and the results.
    async fn deliver(batch: Batch) -> (Vec<usize>, Vec<String>, BatchResults) {
        let count = batch.len();
        let links = Arc::new(EdgeLinks::default());
        let (tx, mut rx) = mpsc::channel(4);
        let link = links.open("edge-a", tx).expect("link");
        let send = tokio::spawn({
            let links = links.clone();
            async move { links.deliver_batch("edge-a", batch).await }
        });
        let (mut sizes, mut ids) = (Vec::new(), Vec::new());
        while sizes.iter().sum::<usize>() < count {
            let batch = next_deliveries(&mut rx).await;
            sizes.push(batch.deliveries.len());
            let mut answers = Vec::new();
            for d in batch.deliveries {
                let el = Element::parse(std::str::from_utf8(&d.xml).unwrap()).unwrap();
                ids.push(el.attr("id").unwrap().to_owned());
                answers.push(pb::DeliveryResult {
                    id: d.id,
                    delivered: true,
                    no_session: false,
                    sm_seq: None,
                });
            }
            assert!(
                link.answered(answers).is_none(),
                "nothing numbered to confirm"
            );
        }
        (sizes, ids, send.await.unwrap())
    }

    /// XEP-0198: every delivery asks for confirmation, and the edge hears exactly which
    /// numbered answers were read: not an unnumbered one, not a number on a delivery that
    /// failed, not an answer to a delivery this link never made.
    #[tokio::test]
    async fn numbered_answers_read_are_confirmed_and_nothing_else() {
        let links = Arc::new(EdgeLinks::default());
        let (tx, mut rx) = mpsc::channel(4);
        let link = links.open("edge-a", tx).expect("link");
        let batch = (0..3).map(|i| (40 + i as u64, message(i, 8))).collect();
        let send = tokio::spawn({
            let links = links.clone();
            async move { links.deliver_batch("edge-a", batch).await }
        });
        let batch = next_deliveries(&mut rx).await;
        assert!(batch.deliveries.iter().all(|d| d.confirms));
        let ids: Vec<u64> = batch.deliveries.iter().map(|d| d.id).collect();
        let answer = |id, delivered, sm_seq| pb::DeliveryResult {
            id,
            delivered,
            no_session: false,
            sm_seq,
        };
        let confirmed = link.answered(vec![
            answer(ids[0], true, Some(7)),
            answer(ids[1], true, None),
            answer(ids[2], false, Some(9)),
            answer(ids[2] + 1_000, true, Some(5)),
        ]);
        let Some(pb::router_message::Body::Confirmed(confirmed)) = confirmed.and_then(|m| m.body)
        else {
            panic!("expected a confirmation");
        };
        assert_eq!(
            confirmed.copies,
            vec![pb::ConfirmedCopy {
                conn: 40,
                sm_seq: 7
            }]
        );
        let results = send.await.unwrap();
        assert!(results[0].is_ok() && results[1].is_ok() && results[2].is_err());
    }

    /// The edges of the split: exactly the count is one message, one more starts a second,
    /// which goes once the first is answered; nothing is lost or reordered either way.
    #[tokio::test]
    async fn a_batch_of_exactly_the_count_is_one_message_and_one_more_is_two() {
        for (count, want) in [
            (1, vec![1]),
            (MAX_ITEMS, vec![MAX_ITEMS]),
            (MAX_ITEMS + 1, vec![MAX_ITEMS, 1]),
            (2 * MAX_ITEMS + 1, vec![MAX_ITEMS, MAX_ITEMS, 1]),
        ] {
            let batch = (0..count).map(|i| (i as u64 % 3, message(i, 8))).collect();
            let (sizes, ids, results) = deliver(batch).await;
            assert_eq!(sizes, want, "{count} deliveries");
            let sent: Vec<String> = (0..count).map(|i| i.to_string()).collect();
            assert_eq!(ids, sent, "every one, in batch order");
            assert!(results.iter().all(|r| r.is_ok()) && results.len() == count);
        }
    }

    /// Bytes bound a message by what is written (escaping included), and one stanza
    /// larger than the bound still goes, alone.
    #[tokio::test]
    async fn bytes_bound_a_message_and_a_large_stanza_goes_alone() {
        let third = MAX_BYTES / 3;
        let batch = (0..4).map(|i| (1, message(i, third))).collect();
        let (sizes, ids, _) = deliver(batch).await;
        assert_eq!(sizes, [2, 2], "two thirds and a bit fit, three do not");
        assert_eq!(ids, ["0", "1", "2", "3"]);
        let big = vec![(1, message(0, 8)), (1, message(1, MAX_BYTES + 1))];
        let (sizes, _, results) = deliver(big).await;
        assert_eq!(sizes, [1, 1]);
        assert!(results.iter().all(|r| r.is_ok()));
    }

    #[test]
    fn a_second_link_under_a_linked_name_is_refused_until_the_first_closes() {
        let links = EdgeLinks::default();
        let (tx, _rx) = mpsc::channel(1);
        let first = links.open("edge-a", tx.clone()).expect("first link");
        assert!(links.open("edge-a", tx.clone()).is_none(), "name taken");
        assert_eq!(links.edge_of(&first.token).as_deref(), Some("edge-a"));
        assert_eq!(links.edge_of("guess"), None);
        links.close(&first);
        assert_eq!(
            links.edge_of(&first.token),
            None,
            "token dies with its link"
        );
        let second = links.open("edge-a", tx).expect("free again");
        assert_ne!(second.token, first.token);
    }
}
