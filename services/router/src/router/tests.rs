use super::*;
use crate::delivery::Undeliverable;
use async_trait::async_trait;
use std::sync::Mutex;
use switchyard_core::ns;
use switchyard_storage::MemoryRegistry;

/// Records deliveries instead of writing to sockets.
#[derive(Debug, Default)]
struct Recorder {
    delivered: Mutex<Vec<(u64, String)>>,
    terminated: Mutex<Vec<(u64, StreamCondition)>>,
}

#[async_trait]
impl EdgeDelivery for Recorder {
    async fn deliver(&self, _: &str, conn: u64, stanza: Element) -> Result<(), Undeliverable> {
        self.delivered
            .lock()
            .unwrap()
            .push((conn, stanza.to_xml(ns::CLIENT)));
        Ok(())
    }
    async fn terminate(&self, _: &str, conn: u64, condition: StreamCondition) {
        self.terminated.lock().unwrap().push((conn, condition));
    }
}

async fn router(expose_version: bool) -> (Router, Arc<Recorder>) {
    let edges = Arc::new(Recorder::default());
    let info = ServerInfo {
        name: "Switchyard",
        version: "0.1.0",
        expose_version,
    };
    let r = Router::new(
        vec!["localhost".into()],
        info,
        Arc::new(MemoryRegistry::default()),
        edges.clone(),
    );
    for (jid, conn) in [
        ("a@localhost/1", 1),
        ("b@localhost/1", 2),
        ("b@localhost/2", 3),
    ] {
        r.bind(SessionRecord {
            jid: Jid::parse(jid).unwrap(),
            edge: "e".into(),
            conn,
        })
        .await
        .unwrap();
    }
    (r, edges)
}

fn stanza(xml_from: &str, el: Element) -> Stanza {
    Stanza::from_element(el.with_attr("from", xml_from)).unwrap()
}

fn iq(to: Option<&str>, payload: Element) -> Element {
    let mut e = Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("id", "q")
        .with_child(payload);
    if let Some(to) = to {
        e.set_attr("to", to);
    }
    e
}

#[tokio::test]
async fn xep0199_ping_and_unknown_iq_to_server() {
    let (r, edges) = router(true).await;
    r.route(stanza(
        "a@localhost/1",
        iq(Some("localhost"), Element::new("ping", ns::PING)),
    ))
    .await;
    r.route(stanza(
        "a@localhost/1",
        iq(None, Element::new("query", "urn:unknown")),
    ))
    .await;
    let got = edges.delivered.lock().unwrap().clone();
    assert_eq!(
        got[0],
        (
            1,
            "<iq type='result' to='a@localhost/1' from='localhost' id='q'/>".into()
        )
    );
    assert!(got[1].1.contains("<service-unavailable"), "{got:?}");
}

#[tokio::test]
async fn xep0030_disco_and_xep0092_version_hiding() {
    let (r, edges) = router(false).await;
    r.route(stanza(
        "a@localhost/1",
        iq(Some("localhost"), Element::new("query", ns::DISCO_INFO)),
    ))
    .await;
    r.route(stanza(
        "a@localhost/1",
        iq(Some("localhost"), Element::new("query", ns::VERSION)),
    ))
    .await;
    let got = edges.delivered.lock().unwrap().clone();
    assert!(
        got[0].1.contains("category='server'") && got[0].1.contains(ns::PING),
        "{got:?}"
    );
    assert!(
        !got[0].1.contains(ns::VERSION),
        "hidden version is not advertised"
    );
    assert!(got[1].1.contains("<service-unavailable"), "{got:?}");
}

#[tokio::test]
async fn full_jid_delivery_bare_fanout_and_bounces() {
    let (r, edges) = router(true).await;
    let msg = |to: &str| {
        Element::new("message", ns::CLIENT)
            .with_attr("to", to)
            .with_attr("type", "chat")
    };
    r.route(stanza("a@localhost/1", msg("b@localhost/2"))).await;
    r.route(stanza("a@localhost/1", msg("b@localhost"))).await;
    r.route(stanza("a@localhost/1", msg("nobody@localhost")))
        .await;
    let got = edges.delivered.lock().unwrap().clone();
    let conns: Vec<u64> = got.iter().map(|(c, _)| *c).collect();
    assert_eq!(conns[0], 3);
    assert_eq!(
        {
            let mut v = conns[1..3].to_vec();
            v.sort();
            v
        },
        vec![2, 3]
    );
    assert_eq!(conns[3], 1, "bounce goes back to the sender");
    assert!(got[3].1.contains("type='error'") && got[3].1.contains("<service-unavailable"));
}

#[tokio::test]
async fn rfc6120_7_7_2_2_rebind_terminates_the_old_session() {
    let (r, edges) = router(true).await;
    r.bind(SessionRecord {
        jid: Jid::parse("a@localhost/1").unwrap(),
        edge: "e".into(),
        conn: 9,
    })
    .await
    .unwrap();
    assert_eq!(
        edges.terminated.lock().unwrap().clone(),
        vec![(1, StreamCondition::Conflict)]
    );
}
