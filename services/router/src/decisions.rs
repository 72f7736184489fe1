//! What the table's handlers decide, read from their effects alone: the router here has
//! an edge that fails the test if anything is delivered, so these prove the handlers
//! decide without acting (the RFC behaviour end to end is in `tests/`).

use crate::effects::{Effect, Effects};
use crate::handler::Target;
use crate::{EdgeDelivery, Router, RouterConfig, ServerInfo, Undeliverable};
use std::sync::Arc;
use switchyard_core::sasl::StoredCredentials;
use switchyard_core::{ns, Element, Jid, Routed, Stanza, StreamCondition};
use switchyard_storage::{
    AccountStore, MemoryRegistry, MemoryStore, Presence, RosterItem, RosterStore, SessionRecord,
    SessionRegistry, Stores, Subscription,
};

#[derive(Debug)]
struct NoEdge;

#[async_trait::async_trait]
impl EdgeDelivery for NoEdge {
    async fn deliver(&self, _: &str, _: u64, _: Routed) -> Result<(), Undeliverable> {
        panic!("a handler delivered instead of deciding");
    }
    async fn terminate(&self, _: &str, _: u64, _: StreamCondition) {
        panic!("a handler terminated a session instead of deciding");
    }
}

fn jid(s: &str) -> Jid {
    Jid::parse(s).unwrap()
}

struct World {
    router: Router,
    store: Arc<MemoryStore>,
    registry: Arc<MemoryRegistry>,
}

impl World {
    async fn new(accounts: &[&str]) -> Self {
        let info = ServerInfo {
            name: "Switchyard",
            version: "test",
            expose_version: true,
        };
        let config = RouterConfig::new(vec!["localhost".into()], info);
        let store = Arc::new(MemoryStore::default());
        let registry = Arc::new(MemoryRegistry::default());
        let creds = StoredCredentials::from_password("pw", 4096).unwrap();
        for name in accounts {
            store
                .create(&jid(&format!("{name}@localhost")), &creds)
                .await
                .unwrap();
        }
        let router = Router::new(
            config,
            registry.clone(),
            Stores::of(store.clone()),
            Arc::new(NoEdge),
        );
        Self {
            router,
            store,
            registry,
        }
    }

    /// A bound session, available with `priority` unless `None`.
    async fn session(&self, full: &str, conn: u64, priority: Option<i8>) -> SessionRecord {
        let mut record = SessionRecord::bound(jid(full), "edge", conn);
        record.presence = priority.map(|priority| Presence {
            priority,
            stanza: format!("<presence xmlns='jabber:client' from='{full}'/>"),
        });
        record.interested = true;
        self.registry.bind(record.clone()).await.unwrap();
        record
    }

    async fn subscribed_both(&self, a: &str, b: &str) {
        for (user, contact) in [(a, b), (b, a)] {
            let contact = jid(contact);
            let c = contact.clone();
            let edit = Box::new(move |_: Option<RosterItem>| {
                let mut row = RosterItem::new(c.clone());
                row.subscription = Subscription::with(true, true);
                row.listed = true;
                Some(row)
            });
            self.store.update(&jid(user), &contact, edit).await.unwrap();
        }
    }

    async fn decide(&self, from: &str, xml: &str, target: Target) -> Effects {
        let mut el = Element::parse(xml).unwrap();
        el.set_attr("from", from);
        let stanza = Stanza::from_element(el).unwrap();
        crate::table::decide(&self.router, &stanza, target).await
    }
}

/// A short name per effect: what it is and who it is for.
fn names(fx: &Effects) -> Vec<String> {
    fx.as_slice()
        .iter()
        .map(|e| match e {
            Effect::Deliver { to, stanza } => format!("deliver {} {}", stanza.name(), to.jid),
            Effect::DeliverTo { to, stanza } => format!("reply {} {to}", stanza.name()),
            Effect::Message { to, .. } => {
                let to: Vec<String> = to.iter().map(|r| r.jid.to_string()).collect();
                format!("message {}", to.join(","))
            }
            Effect::Update { jid, .. } => format!("update {jid}"),
            Effect::StoreOffline { account, .. } => format!("store {account}"),
            Effect::FlushOffline(to) => format!("flush {}", to.jid),
            other => format!("{other:?}"),
        })
        .collect()
}

const PRESENCE: &str = "<presence xmlns='jabber:client'/>";

#[tokio::test]
async fn rfc6121_4_2_initial_presence_is_recorded_then_broadcast_probed_and_flushed() {
    let w = World::new(&["romeo", "juliet"]).await;
    w.subscribed_both("romeo@localhost", "juliet@localhost")
        .await;
    w.session("juliet@localhost/balcony", 1, Some(0)).await;
    w.session("romeo@localhost/orchard", 2, None).await;
    let fx = w
        .decide("romeo@localhost/orchard", PRESENCE, Target::Own)
        .await;
    let romeo = w.registry.sessions(&jid("romeo@localhost")).await.unwrap();
    assert!(
        romeo[0].presence.is_some(),
        "recorded before the broadcast is decided, so a contact deciding later sees it"
    );
    assert_eq!(
        names(&fx),
        [
            "deliver presence juliet@localhost/balcony",
            "deliver presence romeo@localhost/orchard",
            "deliver presence romeo@localhost/orchard", // juliet's, answering the probe
            "flush romeo@localhost/orchard",
        ]
    );
}

#[tokio::test]
async fn xep0160_negative_priority_is_not_flushed_and_later_presence_is_not_initial() {
    let w = World::new(&["romeo"]).await;
    w.session("romeo@localhost/orchard", 2, None).await;
    let negative = "<presence xmlns='jabber:client'><priority>-1</priority></presence>";
    let fx = w
        .decide("romeo@localhost/orchard", negative, Target::Own)
        .await;
    assert!(!names(&fx).iter().any(|n| n.starts_with("flush")));
    w.session("romeo@localhost/garden", 3, Some(1)).await;
    let fx = w
        .decide("romeo@localhost/garden", PRESENCE, Target::Own)
        .await;
    assert!(
        !names(&fx).iter().any(|n| n.starts_with("flush")),
        "not initial"
    );
}

#[tokio::test]
async fn rfc6121_8_5_2_1_1_a_chat_to_the_bare_jid_goes_to_the_highest_priority() {
    let w = World::new(&["romeo", "juliet"]).await;
    w.session("juliet@localhost/low", 1, Some(1)).await;
    w.session("juliet@localhost/high", 2, Some(5)).await;
    w.session("juliet@localhost/negative", 3, Some(-1)).await;
    let chat = "<message xmlns='jabber:client' to='juliet@localhost' type='chat'><body>hi</body></message>";
    let fx = w
        .decide("romeo@localhost/orchard", chat, Target::Other)
        .await;
    assert_eq!(names(&fx), ["message juliet@localhost/high"]);
}

#[tokio::test]
async fn xep0160_a_chat_for_an_account_with_no_available_resource_is_stored() {
    let w = World::new(&["romeo", "juliet"]).await;
    w.session("juliet@localhost/idle", 1, None).await;
    let chat = "<message xmlns='jabber:client' to='juliet@localhost' type='chat'><body>hi</body></message>";
    let fx = w
        .decide("romeo@localhost/orchard", chat, Target::Other)
        .await;
    assert_eq!(names(&fx), ["store juliet@localhost"]);
    let fx = w
        .decide(
            "romeo@localhost/orchard",
            &chat.replace("juliet", "nobody"),
            Target::Other,
        )
        .await;
    assert!(
        fx.as_slice().is_empty(),
        "an unknown account answers as an offline one: {fx:?}"
    );
}

#[tokio::test]
async fn rfc6121_2_3_2_a_roster_set_pushes_to_interested_resources_before_the_result() {
    let w = World::new(&["romeo"]).await;
    w.session("romeo@localhost/orchard", 1, Some(0)).await;
    w.session("romeo@localhost/garden", 2, None).await;
    let set = format!(
        "<iq xmlns='jabber:client' type='set' id='s'><query xmlns='{}'><item jid='nurse@localhost'/></query></iq>",
        ns::ROSTER
    );
    let fx = w.decide("romeo@localhost/orchard", &set, Target::Own).await;
    let mut got = names(&fx);
    got[..2].sort();
    assert_eq!(
        got,
        [
            "deliver iq romeo@localhost/garden",
            "deliver iq romeo@localhost/orchard",
            "reply iq romeo@localhost/orchard",
        ]
    );
}

#[tokio::test]
async fn rfc6120_8_4_an_iq_nothing_handles_is_service_unavailable_and_remote_is_unreachable() {
    let w = World::new(&["romeo"]).await;
    let unknown = "<iq xmlns='jabber:client' type='get' id='u'><x xmlns='urn:nothing'/></iq>";
    let fx = w
        .decide("romeo@localhost/orchard", unknown, Target::Server)
        .await;
    let reply = match fx.as_slice() {
        [Effect::DeliverTo { stanza, .. }] => stanza.to_client_xml(),
        other => panic!("one reply expected: {other:?}"),
    };
    assert!(reply.contains("service-unavailable"));
    let remote =
        "<message xmlns='jabber:client' to='a@example.org' type='chat'><body>x</body></message>";
    let fx = w
        .decide("romeo@localhost/orchard", remote, Target::Remote)
        .await;
    let reply = match fx.as_slice() {
        [Effect::DeliverTo { stanza, .. }] => stanza.to_client_xml(),
        other => panic!("one bounce expected: {other:?}"),
    };
    assert!(reply.contains("remote-server-not-found"));
}
