//! All-in-one routing off the connections' tasks.
//!
//! A connection hands each stanza it reads to the queue and goes on reading; workers
//! route them. One sender's stanzas always go to the same lane, whose worker routes them
//! one at a time in arrival order (RFC 6120 §10.1), while other senders proceed on other
//! lanes. This is the cluster's shape (a link's workers keyed by sender) inside one
//! process: a sender no longer waits for each recipient's write before reading its next
//! stanza, and bursts reach the recipient's mailbox together and go out in one write.
//!
//! The queue is bounded in bytes ([`QUEUE_BYTES`] for the process, shared equally by the
//! lanes, each stanza counted by [`switchyard_core::Element::estimated_bytes`]): a sender
//! whose lane is full waits, and stops reading its socket meanwhile (pushback, as a full
//! cluster window pushes back); a lane stuck behind a slow recipient holds back only the
//! senders that share it, never the process. Binds and unbinds go through the same lane
//! as the connection's stanzas, so a session ends after what it sent was routed. Nothing
//! is dropped: a stanza that was taken is routed, and [`RoutingQueue::drained`] lets the
//! process wait for the queue to empty before it exits.

use futures_util::FutureExt;
use std::hash::{Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::{Jid, Stanza, StanzaCondition};
use switchyard_router::Router;
use switchyard_storage::SessionRecord;
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};

/// Lanes, each with one worker: how many senders are routed at once.
const LANES: usize = 64;
/// Bytes of stanzas queued in the process before senders wait, shared equally by the
/// lanes: a lane stuck behind a slow recipient holds back its own senders only.
pub(crate) const QUEUE_BYTES: usize = 16 * 1024 * 1024;

/// What a lane's worker does, in the order its connections asked.
enum Item {
    /// Routes a stanza; the permit holds its bytes of the lane's budget.
    Route(Stanza, OwnedSemaphorePermit),
    /// Binds a session, after everything queued by an earlier connection of the same
    /// full JID (a quick reconnect does not overtake the old one's stanzas).
    Bind(SessionRecord, oneshot::Sender<Result<(), StanzaCondition>>),
    /// Ends a session after every stanza it queued was routed (its last presence and
    /// directed presence are known when its unavailable is decided), with what its
    /// client never acknowledged (XEP-0198).
    Unbind(Jid, u64, Vec<Stanza>, oneshot::Sender<()>),
}

struct Lane {
    tx: mpsc::UnboundedSender<Item>,
    budget: Arc<Semaphore>,
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane")
            .field("bytes_free", &self.budget.available_permits())
            .finish()
    }
}

#[derive(Debug)]
pub(crate) struct RoutingQueue {
    lanes: Vec<Lane>,
    /// Each lane's budget: a stanza larger than all of it waits for all of it.
    lane_bytes: usize,
    /// Items taken and not yet done, and who waits for none.
    pending: Arc<(AtomicUsize, Notify)>,
}

impl RoutingQueue {
    /// Starts the workers; they end when the queue is dropped and their lanes are empty.
    pub(crate) fn start(router: Arc<Router>) -> Self {
        Self::with_budget(router, QUEUE_BYTES)
    }

    /// A queue whose lanes share `bytes` equally.
    pub(crate) fn with_budget(router: Arc<Router>, bytes: usize) -> Self {
        let pending = Arc::new((AtomicUsize::new(0), Notify::new()));
        let lane_bytes = (bytes / LANES).clamp(1, u32::MAX as usize);
        let lanes = (0..LANES)
            .map(|_| {
                // Unbounded as a channel, bounded by the byte budget every stanza holds
                // (binds and unbinds wait for their answer, one per connection).
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(work(router.clone(), rx, pending.clone()));
                Lane {
                    tx,
                    budget: Arc::new(Semaphore::new(lane_bytes)),
                }
            })
            .collect();
        Self {
            lanes,
            lane_bytes,
            pending,
        }
    }

    /// Takes a stanza for routing, waiting while its lane is full.
    pub(crate) async fn submit(&self, stanza: Stanza) {
        let lane = &self.lanes[lane_of(&stanza.from)];
        let bytes = stanza.element().estimated_bytes().clamp(1, self.lane_bytes);
        let permit = lane
            .budget
            .clone()
            .acquire_many_owned(bytes as u32)
            .await
            .expect("the budget is never closed");
        self.send(lane, Item::Route(stanza, permit));
    }

    /// Binds a session in its lane (see [`Item::Bind`]).
    pub(crate) async fn bind(&self, record: SessionRecord) -> Result<(), StanzaCondition> {
        let (done, answer) = oneshot::channel();
        let lane = &self.lanes[lane_of(&record.jid)];
        self.send(lane, Item::Bind(record, done));
        answer
            .await
            .unwrap_or(Err(StanzaCondition::InternalServerError))
    }

    /// Ends a session in its lane, after what it queued (see [`Item::Unbind`]).
    pub(crate) async fn unbind(&self, jid: &Jid, conn: u64, unacked: Vec<Stanza>) {
        let (done, answer) = oneshot::channel();
        self.send(
            &self.lanes[lane_of(jid)],
            Item::Unbind(jid.clone(), conn, unacked, done),
        );
        let _ = answer.await;
    }

    fn send(&self, lane: &Lane, item: Item) {
        self.pending.0.fetch_add(1, Ordering::SeqCst);
        if lane.tx.send(item).is_err() {
            // Only when the runtime is shutting down and the worker is gone.
            tracing::warn!("routing worker gone; a stanza or session change was not handled");
            done(&self.pending);
        }
    }

    /// Waits until every item taken so far is done, or `grace` passed; `false` when some
    /// were still queued.
    pub(crate) async fn drained(&self, grace: Duration) -> bool {
        let wait = async {
            loop {
                let idle = self.pending.1.notified();
                if self.pending.0.load(Ordering::SeqCst) == 0 {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(grace, wait).await.is_ok()
    }
}

/// The lane of a full JID: a connection's stanzas, bind and unbind share one.
fn lane_of(jid: &Jid) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    jid.hash(&mut h);
    (h.finish() as usize) % LANES
}

fn done(pending: &(AtomicUsize, Notify)) {
    if pending.0.fetch_sub(1, Ordering::SeqCst) == 1 {
        pending.1.notify_waiters();
    }
}

/// One lane's worker. A panic while handling an item is logged and the lane goes on:
/// it never takes the lane's other senders with it.
async fn work(
    router: Arc<Router>,
    mut lane: mpsc::UnboundedReceiver<Item>,
    pending: Arc<(AtomicUsize, Notify)>,
) {
    while let Some(item) = lane.recv().await {
        let handled = AssertUnwindSafe(handle(&router, item)).catch_unwind().await;
        if handled.is_err() {
            tracing::error!("routing a stanza panicked; the lane goes on");
        }
        done(&pending);
    }
}

async fn handle(router: &Router, item: Item) {
    match item {
        Item::Route(stanza, permit) => {
            let _timer = switchyard_telemetry::EDGE_ROUTING_LATENCY.start_timer();
            router.route(stanza).await;
            drop(permit);
        }
        Item::Bind(record, done) => {
            let _ = done.send(router.bind(record).await);
        }
        Item::Unbind(jid, conn, unacked, done) => {
            router.session_lapsed(&jid, conn, unacked).await;
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use std::sync::Mutex;
    use switchyard_core::sasl::StoredCredentials;
    use switchyard_core::{ns, Element, Jid, Routed, StreamCondition};
    use switchyard_router::{EdgeDelivery, RouterConfig, ServerInfo, Undeliverable};
    use switchyard_storage::{
        AccountStore, MemoryRegistry, MemoryStore, Presence, SessionRecord, SessionRegistry, Stores,
    };

    /// Records what it is handed; while `held`, every delivery waits for a permit.
    #[derive(Debug)]
    struct Edge {
        received: Mutex<Vec<Element>>,
        gate: Semaphore,
        held: bool,
    }

    #[async_trait::async_trait]
    impl EdgeDelivery for Edge {
        async fn deliver(&self, _: &str, _: u64, stanza: Routed) -> Result<(), Undeliverable> {
            if self.held {
                self.gate.acquire().await.unwrap().forget();
            }
            self.received
                .lock()
                .unwrap()
                .push(stanza.to_element().unwrap());
            Ok(())
        }
        async fn terminate(&self, _: &str, _: u64, _: StreamCondition) {}
    }

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    /// A router with `juliet@localhost/balcony` available, delivering to `edge`.
    async fn router(edge: Arc<Edge>) -> Arc<Router> {
        let info = ServerInfo {
            name: "Switchyard",
            version: "test",
            expose_version: false,
        };
        let store = Arc::new(MemoryStore::default());
        let registry = Arc::new(MemoryRegistry::default());
        let creds = StoredCredentials::from_password("pw", 4096).unwrap();
        store
            .create(&jid("juliet@localhost"), &creds)
            .await
            .unwrap();
        let mut juliet = SessionRecord::bound(jid("juliet@localhost/balcony"), "edge", 1);
        juliet.presence = Some(Presence {
            priority: 0,
            stanza: String::new(),
        });
        registry.bind(juliet).await.unwrap();
        let config = RouterConfig::new(vec!["localhost".into()], info);
        Arc::new(Router::new(config, registry, Stores::of(store), edge))
    }

    fn edge(held: bool) -> Arc<Edge> {
        Arc::new(Edge {
            received: Mutex::new(Vec::new()),
            gate: Semaphore::new(0),
            held,
        })
    }

    fn chat(from: &str, n: usize) -> Stanza {
        let el = Element::new("message", ns::CLIENT)
            .with_attr("from", from)
            .with_attr("to", "juliet@localhost/balcony")
            .with_attr("type", "chat")
            .with_attr("id", n.to_string())
            .with_child(Element::new("body", ns::CLIENT).with_text("hi"));
        Stanza::from_element(el).unwrap()
    }

    #[tokio::test]
    async fn a_hundred_senders_interleaved_each_arrive_in_order_none_lost() {
        let edge = edge(false);
        let queue = RoutingQueue::start(router(edge.clone()).await);
        for n in 0..50 {
            for s in 0..100 {
                queue.submit(chat(&format!("s{s}@localhost/r"), n)).await;
            }
        }
        assert!(queue.drained(Duration::from_secs(30)).await);
        let received = edge.received.lock().unwrap();
        assert_eq!(received.len(), 5_000);
        for s in 0..100 {
            let from = format!("s{s}@localhost/r");
            let ids: Vec<usize> = received
                .iter()
                .filter(|el| el.attr("from") == Some(from.as_str()))
                .map(|el| el.attr("id").unwrap().parse().unwrap())
                .collect();
            assert_eq!(ids, (0..50).collect::<Vec<_>>(), "{from} in order");
        }
    }

    #[tokio::test]
    async fn a_full_queue_pushes_back_at_its_bound_and_loses_nothing() {
        let edge = edge(true);
        let one = chat("romeo@localhost/r", 0).element().estimated_bytes();
        let queue = RoutingQueue::with_budget(router(edge.clone()).await, 3 * one * LANES);
        // Exactly the bound fits (the first is being routed, held at the edge, and
        // still counts): three are taken at once.
        for n in 0..3 {
            let taken = queue.submit(chat("romeo@localhost/r", n)).now_or_never();
            assert!(taken.is_some(), "stanza {n} fits in the bound");
        }
        // One past the bound waits until routing makes room.
        let mut fourth = Box::pin(queue.submit(chat("romeo@localhost/r", 3)));
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!((&mut fourth).now_or_never().is_none(), "pushed back");
        edge.gate.add_permits(1);
        tokio::time::timeout(Duration::from_secs(10), &mut fourth)
            .await
            .expect("taken once the first was routed");
        edge.gate.add_permits(3);
        assert!(queue.drained(Duration::from_secs(10)).await);
        let ids: Vec<String> = edge
            .received
            .lock()
            .unwrap()
            .iter()
            .map(|el| el.attr("id").unwrap().to_owned())
            .collect();
        assert_eq!(ids, ["0", "1", "2", "3"]);
    }

    #[tokio::test]
    async fn a_lane_stuck_behind_a_slow_recipient_holds_back_only_its_own_senders() {
        let edge = edge(true);
        let one = chat("romeo@localhost/r", 0).element().estimated_bytes();
        let queue = RoutingQueue::with_budget(router(edge.clone()).await, 3 * one * LANES);
        let romeo = jid("romeo@localhost/r");
        for n in 0..3 {
            queue.submit(chat("romeo@localhost/r", n)).await;
        }
        let mut stuck = Box::pin(queue.submit(chat("romeo@localhost/r", 3)));
        assert!(
            (&mut stuck).now_or_never().is_none(),
            "romeo's lane is full"
        );
        let other = (0..1000)
            .map(|i| format!("s{i}@localhost/r"))
            .find(|s| lane_of(&jid(s)) != lane_of(&romeo))
            .unwrap();
        let free = queue.submit(chat(&other, 0)).now_or_never();
        assert!(
            free.is_some(),
            "another lane takes its sender's stanza at once"
        );
        edge.gate.add_permits(5);
        tokio::time::timeout(Duration::from_secs(10), stuck)
            .await
            .unwrap();
        assert!(queue.drained(Duration::from_secs(10)).await);
        assert_eq!(edge.received.lock().unwrap().len(), 5);
    }

    #[tokio::test]
    async fn an_unbind_waits_for_what_its_connection_queued() {
        let edge = edge(true);
        let queue = RoutingQueue::start(router(edge.clone()).await);
        queue.submit(chat("romeo@localhost/r", 0)).await;
        let romeo = jid("romeo@localhost/r");
        let mut unbind = Box::pin(queue.unbind(&romeo, 7, Vec::new()));
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!((&mut unbind).now_or_never().is_none(), "behind the stanza");
        edge.gate.add_permits(1);
        tokio::time::timeout(Duration::from_secs(10), unbind)
            .await
            .unwrap();
        assert_eq!(edge.received.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn drained_waits_for_what_was_taken() {
        let edge = edge(true);
        let queue = RoutingQueue::start(router(edge.clone()).await);
        queue.submit(chat("romeo@localhost/r", 0)).await;
        assert!(
            !queue.drained(Duration::from_millis(50)).await,
            "still held"
        );
        edge.gate.add_permits(1);
        assert!(queue.drained(Duration::from_secs(10)).await);
        assert_eq!(edge.received.lock().unwrap().len(), 1);
    }
}
