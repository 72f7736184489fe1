//! A rogue edge against a real router service: a gRPC client that holds a link of its
//! own (so it passes whatever the transport checks) and tries to act for another edge's
//! sessions. Everything it tries is refused; the honest edge's positive control shows
//! the same requests succeed from the right link.

use super::*;
use crate::pb;
use crate::pb::router_client::RouterClient;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::Jid;
use switchyard_router::{Router, RouterConfig, ServerInfo};
use switchyard_storage::{
    MemoryLoginFailures, MemoryRegistry, MemoryStore, SessionRegistry, Stores,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Request, Streaming};

const PATIENCE: Duration = Duration::from_secs(10);

struct Rig {
    addr: String,
    router: Arc<Router>,
}

async fn rig() -> Rig {
    let links = Arc::new(EdgeLinks::default());
    let registry: Arc<dyn SessionRegistry> = Arc::new(MemoryRegistry::default());
    let store = Arc::new(MemoryStore::default());
    let info = ServerInfo {
        name: "Switchyard",
        version: "test",
        expose_version: false,
    };
    let config = RouterConfig::new(vec!["localhost".into()], info);
    let stores = Stores::of(store.clone());
    let router = Arc::new(Router::new(config, registry.clone(), stores, links.clone()));
    let service = RouterService {
        router: router.clone(),
        accounts: store,
        links,
        registry,
        edge_ttl: Duration::from_secs(30),
        login_failures: Arc::new(MemoryLoginFailures::default()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service.into_server())
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    Rig { addr, router }
}

/// One edge's end: its link stream and the token the router issued.
struct Edge {
    client: RouterClient<Channel>,
    tx: mpsc::Sender<pb::EdgeMessage>,
    inbound: Streaming<pb::RouterMessage>,
    token: String,
}

async fn link(rig: &Rig, edge_id: &str) -> Result<Edge, tonic::Status> {
    let mut client = RouterClient::connect(rig.addr.clone()).await.unwrap();
    let (tx, rx) = mpsc::channel(16);
    let hello = pb::edge_message::Body::Hello(pb::Hello {
        edge_id: edge_id.into(),
    });
    tx.send(pb::EdgeMessage { body: Some(hello) })
        .await
        .unwrap();
    let mut inbound = client.link(ReceiverStream::new(rx)).await?.into_inner();
    let token = match next(&mut inbound).await {
        pb::router_message::Body::Welcome(w) => w.token,
        other => panic!("expected a Welcome, got {other:?}"),
    };
    Ok(Edge {
        client,
        tx,
        inbound,
        token,
    })
}

async fn next(inbound: &mut Streaming<pb::RouterMessage>) -> pb::router_message::Body {
    tokio::time::timeout(PATIENCE, inbound.message())
        .await
        .expect("the router answered in time")
        .unwrap()
        .unwrap()
        .body
        .unwrap()
}

fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert(LINK_TOKEN, token.parse().unwrap());
    request
}

fn bind(jid: &str, edge_id: &str, conn: u64) -> pb::BindRequest {
    pb::BindRequest {
        jid: jid.into(),
        edge_id: edge_id.into(),
        conn,
    }
}

async fn send_stanza(edge: &Edge, seq: u64, xml: &str) {
    let batch = pb::edge_message::Body::Stanzas(pb::StanzaBatch {
        stanzas: vec![pb::Stanza {
            seq,
            xml: xml.as_bytes().to_vec(),
            traceparent: String::new(),
            origin: seq,
        }],
    });
    edge.tx
        .send(pb::EdgeMessage { body: Some(batch) })
        .await
        .unwrap();
}

fn message(from: &str, id: &str) -> String {
    format!(
        "<message xmlns='jabber:client' from='{from}' to='bob@localhost/b' type='chat' id='{id}'><body>hi</body></message>"
    )
}

async fn sessions(rig: &Rig, bare: &str) -> Vec<String> {
    let bare = Jid::parse(bare).unwrap();
    let records = rig.router.sessions_of(&bare).await.unwrap();
    records
        .iter()
        .map(|s| format!("{}@{}#{}", s.jid, s.edge, s.conn))
        .collect()
}

#[tokio::test]
async fn a_rogue_edge_cannot_act_for_another_edges_sessions() {
    let rig = rig().await;
    let mut honest = link(&rig, "edge-a").await.unwrap();
    let mut rogue = link(&rig, "edge-r").await.unwrap();
    let t = honest.token.clone();
    for (jid, conn) in [("alice@localhost/a", 1), ("bob@localhost/b", 2)] {
        let reply = honest
            .client
            .bind(with_token(bind(jid, "edge-a", conn), &t))
            .await;
        assert_eq!(reply.unwrap().into_inner().error_condition, "");
    }

    // A second link under the honest edge's name would capture its deliveries.
    let taken = link(&rig, "edge-a").await.err().expect("refused");
    assert_eq!(taken.code(), Code::AlreadyExists);

    // No token, a guessed one, or another edge's name: refused.
    let r = rogue.token.clone();
    let no_token = rogue
        .client
        .bind(Request::new(bind("alice@localhost/x", "edge-r", 9)))
        .await;
    assert_eq!(no_token.unwrap_err().code(), Code::Unauthenticated);
    let guessed = rogue
        .client
        .bind(with_token(bind("alice@localhost/x", "edge-r", 9), "guess"))
        .await;
    assert_eq!(guessed.unwrap_err().code(), Code::Unauthenticated);
    let credentials = pb::CredentialsRequest {
        account: "alice@localhost".into(),
    };
    let harvest = rogue.client.credentials(Request::new(credentials)).await;
    assert_eq!(harvest.unwrap_err().code(), Code::Unauthenticated);
    let as_other = rogue
        .client
        .bind(with_token(bind("alice@localhost/a", "edge-a", 1), &r))
        .await;
    assert_eq!(as_other.unwrap_err().code(), Code::PermissionDenied);

    // Bare JIDs and domains not served are not sessions.
    for jid in ["alice@localhost", "mallory@evil.example/x"] {
        let refused = rogue
            .client
            .bind(with_token(bind(jid, "edge-r", 9), &r))
            .await;
        assert_eq!(refused.unwrap_err().code(), Code::InvalidArgument, "{jid}");
    }

    // Unbinding the honest edge's session (guessing its number) changes nothing.
    let unbind = pb::UnbindRequest {
        jid: "alice@localhost/a".into(),
        conn: 1,
    };
    rogue.client.unbind(with_token(unbind, &r)).await.unwrap();
    assert_eq!(
        sessions(&rig, "alice@localhost").await,
        ["alice@localhost/a@edge-a#1"]
    );

    // A stanza with a forged `from` is acknowledged but never routed…
    send_stanza(&rogue, 1, &message("alice@localhost/a", "forged")).await;
    assert!(matches!(
        next(&mut rogue.inbound).await,
        pb::router_message::Body::Acks(acks) if acks.seqs == [1]
    ));
    // …while the same stanza from the edge that bound alice is (the positive control):
    // the first thing the honest edge hears is the genuine delivery, not the forgery.
    send_stanza(&honest, 1, &message("alice@localhost/a", "genuine")).await;
    let delivery = match next(&mut honest.inbound).await {
        pb::router_message::Body::Deliveries(batch) => batch.deliveries.into_iter().next().unwrap(),
        other => panic!("expected a delivery, got {other:?}"),
    };
    let xml = String::from_utf8(delivery.xml).unwrap();
    assert!(
        xml.contains("id='genuine'") || xml.contains("id=\"genuine\""),
        "{xml}"
    );
    assert_eq!(delivery.conn, 2);
}

#[tokio::test]
async fn a_link_that_overruns_its_window_is_closed() {
    let rig = rig().await;
    let mut flood = link(&rig, "edge-f").await.unwrap();
    // Stanzas from a session nobody bound: each holds its worker a few seconds, so
    // none is acknowledged before the window is overrun.
    for seq in 0..(crate::MAX_IN_FLIGHT as u64 + 1) {
        send_stanza(&flood, seq, &message("nobody@localhost/x", "f")).await;
    }
    let ended = tokio::time::timeout(PATIENCE, async {
        loop {
            match flood.inbound.message().await {
                Ok(Some(_)) => continue,
                _ => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the router ended the link");
    assert!(
        link(&rig, "edge-f").await.is_ok(),
        "its name is free again once the link is gone"
    );
}

fn failures(account: &str, network: &str, window_ms: u64) -> pb::LoginFailuresRequest {
    pb::LoginFailuresRequest {
        account: account.into(),
        network: network.into(),
        window_ms,
    }
}

/// The login throttle's counts: one edge's failures are what every other edge reads;
/// nothing without a link's token; only served accounts and networks written as edges
/// write them.
#[tokio::test]
async fn login_failures_are_shared_by_every_link_and_checked() {
    let rig = rig().await;
    let mut a = link(&rig, "edge-a").await.unwrap();
    let mut b = link(&rig, "edge-b").await.unwrap();
    let (ta, tb) = (a.token.clone(), b.token.clone());
    let alice = |window| failures("alice@localhost", "2001:db8:1:2::/64", window);
    for n in 1..=2 {
        let reply = a
            .client
            .record_login_failure(with_token(alice(60_000), &ta))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.account.unwrap().failures, n);
    }
    let seen = b
        .client
        .login_failures(with_token(alice(0), &tb))
        .await
        .unwrap()
        .into_inner();
    let (account, network) = (seen.account.unwrap(), seen.network.unwrap());
    assert_eq!((account.failures, network.failures), (2, 2));
    assert!(account.expires_in_ms > 50_000 && account.expires_in_ms <= 60_000);
    b.client
        .clear_login_failures(with_token(alice(0), &tb))
        .await
        .unwrap();
    let cleared = a
        .client
        .login_failures(with_token(alice(0), &ta))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cleared.account.unwrap().failures, 0);

    let no_token = a
        .client
        .record_login_failure(Request::new(alice(60_000)))
        .await;
    assert_eq!(no_token.unwrap_err().code(), Code::Unauthenticated);
    for bad in [
        failures("alice@localhost/r", "192.0.2.1", 60_000),
        failures("localhost", "192.0.2.1", 60_000),
        failures("mallory@evil.example", "192.0.2.1", 60_000),
        failures("alice@localhost", "192.0.2.1/24", 60_000),
        failures("alice@localhost", "2001:db8::1", 60_000),
        failures("alice@localhost", "2001:db8:0:0:1::/64", 60_000),
        failures("alice@localhost", "2001:DB8::/64", 60_000),
        failures("alice@localhost", "::ffff:192.0.2.1/64", 60_000),
        failures("alice@localhost", "not an address", 60_000),
        failures("alice@localhost", "192.0.2.1", 0),
        failures("alice@localhost", "192.0.2.1", 86_400_001),
    ] {
        let refused = a
            .client
            .record_login_failure(with_token(bad.clone(), &ta))
            .await;
        assert_eq!(
            refused.unwrap_err().code(),
            Code::InvalidArgument,
            "{bad:?}"
        );
    }
}
