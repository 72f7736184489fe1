//! A router over memory backends with a recording edge: tests connect resources, send
//! stanzas as those resources and read what each connection received.

#![allow(dead_code)] // each test file uses a different part of the harness

mod counting;
mod gate;
pub mod stale;

use async_trait::async_trait;
use counting::Counted;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use switchyard_core::sasl::StoredCredentials;
use switchyard_core::{ns, Element, Jid, Routed, Stanza, StreamCondition};
use switchyard_router::{EdgeDelivery, Router, RouterConfig, ServerInfo, Undeliverable};
use switchyard_storage::{
    AccountStore, MemoryRegistry, MemoryStore, SessionRecord, SessionRegistry, Stores,
};

#[derive(Debug, Default)]
pub struct Edge {
    connected: Mutex<HashSet<u64>>,
    received: Mutex<HashMap<u64, Vec<Element>>>,
    pub terminated: Mutex<Vec<(u64, StreamCondition)>>,
    /// Holds back stored messages while closed (see [`gate::Gate`]).
    pub gate: gate::Gate,
    /// Times the router asked for every session to be bound again.
    pub reregistered: AtomicUsize,
    /// The edge is out of reach: every delivery fails as unreachable.
    pub down: AtomicBool,
    /// Deliveries of stored messages (with a `<delay/>`) the router attempted.
    pub held_attempts: AtomicUsize,
}

#[async_trait]
impl EdgeDelivery for Edge {
    async fn deliver(&self, _: &str, conn: u64, stanza: Routed) -> Result<(), Undeliverable> {
        let stanza = stanza
            .to_element()
            .expect("a router delivers whole stanzas");
        if stanza.child("delay", ns::DELAY).is_some() {
            self.held_attempts.fetch_add(1, Ordering::SeqCst);
            self.gate.pass(conn).await;
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(Undeliverable::Unreachable);
        }
        if !self.connected.lock().unwrap().contains(&conn) {
            return Err(Undeliverable::NoSession);
        }
        self.received
            .lock()
            .unwrap()
            .entry(conn)
            .or_default()
            .push(stanza);
        Ok(())
    }

    async fn terminate(&self, _: &str, conn: u64, condition: StreamCondition) {
        self.terminated.lock().unwrap().push((conn, condition));
    }

    async fn reregister(&self) {
        self.reregistered.fetch_add(1, Ordering::SeqCst);
    }

    fn reachable(&self, _: &str) -> bool {
        !self.down.load(Ordering::SeqCst)
    }
}

/// One bound resource.
#[derive(Debug, Clone)]
pub struct Client {
    pub jid: Jid,
    pub conn: u64,
}

#[derive(Debug)]
pub struct World {
    pub router: Router,
    pub edge: Arc<Edge>,
    pub store: Arc<MemoryStore>,
    /// The registry the router uses (behind the call counter).
    pub registry: Arc<dyn SessionRegistry>,
    /// Storage and registry calls the router made (see [`World::calls`]).
    calls: Arc<AtomicUsize>,
    next_conn: AtomicU64,
}

/// Parses test XML written without the `jabber:client` namespace.
pub fn xml(text: &str) -> Element {
    let at = text.find([' ', '>', '/']).expect("a tag");
    let with_ns = format!("{} xmlns='{}'{}", &text[..at], ns::CLIENT, &text[at..]);
    Element::parse(&with_ns).expect("test XML")
}

pub fn jid(s: &str) -> Jid {
    Jid::parse(s).expect("test JID")
}

impl World {
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    pub async fn with(tune: impl FnOnce(&mut RouterConfig)) -> Self {
        Self::with_registry(Arc::new(MemoryRegistry::default()), tune).await
    }

    /// A router over `registry` (and memory stores).
    pub async fn with_registry(
        registry: Arc<dyn SessionRegistry>,
        tune: impl FnOnce(&mut RouterConfig),
    ) -> Self {
        let info = ServerInfo {
            name: "Switchyard",
            version: "test",
            expose_version: true,
        };
        let mut config = RouterConfig::new(vec!["localhost".into()], info);
        tune(&mut config);
        let edge = Arc::new(Edge::default());
        let store = Arc::new(MemoryStore::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::new(Counted {
            inner: store.clone(),
            calls: calls.clone(),
        });
        let counted_registry = Arc::new(Counted {
            inner: registry.clone(),
            calls: calls.clone(),
        });
        let stores = Stores::of(counted);
        let router = Router::new(config, counted_registry, stores, edge.clone());
        Self {
            router,
            edge,
            store,
            registry,
            calls,
            next_conn: AtomicU64::new(1),
        }
    }

    /// Juliet (balcony) and Romeo (orchard) logged in, with nothing left to read.
    pub async fn romeo_and_juliet() -> (Self, Client, Client) {
        let w = Self::new().await;
        w.accounts(&["romeo", "juliet"]).await;
        let j = w.login("juliet@localhost/balcony").await;
        let r = w.login("romeo@localhost/orchard").await;
        w.take(&j);
        w.take(&r);
        (w, j, r)
    }

    /// Creates accounts `name@localhost`.
    pub async fn accounts(&self, names: &[&str]) {
        let creds = StoredCredentials::from_password("pw", 4096).unwrap();
        for name in names {
            let account = jid(&format!("{name}@localhost"));
            self.store.create(&account, &creds).await.unwrap();
        }
    }

    /// Binds a resource (not yet available).
    pub async fn connect(&self, full: &str) -> Client {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        self.edge.connected.lock().unwrap().insert(conn);
        let jid = jid(full);
        let record = SessionRecord::bound(jid.clone(), "edge", conn);
        self.router.bind(record).await.unwrap();
        Client { jid, conn }
    }

    /// Binds, requests the roster and sends initial presence, like a typical client.
    pub async fn login(&self, full: &str) -> Client {
        self.login_with(full, "<presence/>").await
    }

    pub async fn login_with(&self, full: &str, presence: &str) -> Client {
        let c = self.connect(full).await;
        self.send(
            &c,
            "<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>",
        )
        .await;
        self.send(&c, presence).await;
        c
    }

    /// The connection drops (no unavailable presence from the client).
    pub async fn drop_connection(&self, c: &Client) {
        self.edge.connected.lock().unwrap().remove(&c.conn);
        self.router.unbind(&c.jid, c.conn).await;
    }

    /// Sends a stanza as `from` (the edge stamps `from`).
    pub async fn send(&self, from: &Client, text: &str) {
        let mut el = xml(text);
        el.set_attr("from", from.jid.to_string());
        self.router
            .route(Stanza::from_element(el).expect("a stanza"))
            .await;
    }

    /// Everything the connection received since the last call.
    pub fn take(&self, c: &Client) -> Vec<Element> {
        self.edge
            .received
            .lock()
            .unwrap()
            .remove(&c.conn)
            .unwrap_or_default()
    }

    /// Storage and registry calls the router has made so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// Sends and returns the one reply the sender got (panics otherwise).
    pub async fn ask(&self, from: &Client, text: &str) -> Element {
        self.take(from);
        self.send(from, text).await;
        let mut got = self.take(from);
        assert_eq!(got.len(), 1, "expected one reply, got {got:#?}");
        got.remove(0)
    }
}

/// The stanza error condition of an error reply.
pub fn condition(el: &Element) -> Option<String> {
    assert_eq!(el.attr("type"), Some("error"), "not an error: {el:?}");
    let error = el.child("error", ns::CLIENT)?;
    error
        .children()
        .find(|c| c.ns() == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.name() != "text")
        .map(|c| c.name().to_owned())
}

/// Stanzas of one kind (`presence`, `message`, `iq`), optionally filtered by `type`.
pub fn of<'a>(got: &'a [Element], name: &str, kind: Option<&str>) -> Vec<&'a Element> {
    got.iter()
        .filter(|e| e.name() == name && e.attr("type") == kind)
        .collect()
}

/// The `<item/>` of a roster push, if `el` is one.
pub fn pushed_item(el: &Element) -> Option<&Element> {
    if el.name() != "iq" || el.attr("type") != Some("set") {
        return None;
    }
    el.child("query", "jabber:iq:roster")?
        .child("item", "jabber:iq:roster")
}

pub fn pushes(got: &[Element]) -> Vec<&Element> {
    got.iter().filter_map(pushed_item).collect()
}

impl World {
    /// The edge loses a connection without telling the router (as when it crashes).
    pub fn edge_forgets(&self, c: &Client) {
        self.edge.connected.lock().unwrap().remove(&c.conn);
    }
}
