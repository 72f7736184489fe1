//! A rogue edge against a real router service: a gRPC client that holds a link of its
//! own (so it passes whatever the transport checks) and tries to act for another edge's
//! sessions. Everything it tries is refused; the honest edge's positive control shows
//! the same requests succeed from the right link.

use super::*;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::sasl::{HashAlg, SaltedPassword, ScramProof, StoredCredentials};
use switchyard_core::Jid;
use switchyard_router::{Router, RouterConfig, ServerInfo};
use switchyard_rpc::pb;
use switchyard_rpc::pb::router_client::RouterClient;
use switchyard_storage::{
    AccountStore, MemoryLoginFailures, MemoryRegistry, MemoryStore, SessionRegistry, Stores,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Request, Streaming};

const PATIENCE: Duration = Duration::from_secs(10);

struct Rig {
    addr: String,
    router: Arc<Router>,
    /// The stored keys of `alice@localhost` and `bob@localhost` (both password `pencil`).
    alice: StoredCredentials,
    bob: StoredCredentials,
}

async fn rig() -> Rig {
    let links = Arc::new(EdgeLinks::default());
    let registry: Arc<dyn SessionRegistry> = Arc::new(MemoryRegistry::default());
    let store = Arc::new(MemoryStore::default());
    let alice = StoredCredentials::from_password("pencil", 4096).unwrap();
    let bob = StoredCredentials::from_password("pencil", 4096).unwrap();
    for (account, creds) in [("alice@localhost", &alice), ("bob@localhost", &bob)] {
        store
            .create(&Jid::parse(account).unwrap(), creds)
            .await
            .unwrap();
    }
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
    Rig {
        addr,
        router,
        alice,
        bob,
    }
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
        presence: String::new(),
        carbons: false,
    }
}

async fn send_stanza(edge: &Edge, seq: u64, xml: &str) {
    let batch = pb::edge_message::Body::Stanzas(pb::StanzaBatch {
        stanzas: vec![pb::Stanza {
            seq,
            xml: xml.as_bytes().to_vec(),
            traceparent: String::new(),
            origin: seq,
            sm: None,
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
    let harvest = rogue
        .client
        .credentials(Request::new(credentials.clone()))
        .await;
    assert_eq!(harvest.unwrap_err().code(), Code::Unauthenticated);
    // With its own token it learns what any client learns in server-first: the salts.
    // No StoredKey or ServerKey, in any field.
    let reply = rogue
        .client
        .credentials(with_token(credentials, &r))
        .await
        .unwrap()
        .into_inner();
    let salts = reply.salts.clone().expect("alice exists");
    assert_eq!(salts.sha256.unwrap().salt, rig.alice.sha256.salt);
    let bytes = prost::Message::encode_to_vec(&reply);
    for keys in [&rig.alice.sha1, &rig.alice.sha256] {
        for key in [&keys.stored_key, &keys.server_key] {
            assert!(
                !bytes.windows(key.len()).any(|w| w == key.as_slice()),
                "key material in the credentials reply"
            );
        }
    }
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
        unacked: Vec::new(),
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

/// The in-flight window at its bound and one past it: exactly `MAX_IN_FLIGHT`
/// unacknowledged stanzas keep the link, one more ends it.
#[tokio::test]
async fn a_link_that_overruns_its_window_is_closed() {
    let rig = rig().await;
    let mut flood = link(&rig, "edge-f").await.unwrap();
    let t = flood.token.clone();
    for (jid, conn) in [("alice@localhost/a", 1), ("bob@localhost/b", 2)] {
        let reply = flood
            .client
            .bind(with_token(bind(jid, "edge-f", conn), &t))
            .await
            .unwrap();
        assert_eq!(reply.into_inner().error_condition, "");
    }
    // Alice's messages to Bob, both on this edge, which never answers the deliveries:
    // each worker waits on its first one, so nothing is acknowledged.
    let window = crate::MAX_IN_FLIGHT as u64;
    for seq in 0..window {
        send_stanza(&flood, seq, &message("alice@localhost/a", "f")).await;
    }
    let quiet = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            match flood.inbound.message().await {
                Ok(Some(m)) if matches!(m.body, Some(pb::router_message::Body::Deliveries(_))) => {}
                other => return other,
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "at the window the link stays: {quiet:?}");
    let alice = Jid::parse("alice@localhost").unwrap();
    assert_eq!(rig.router.sessions_of(&alice).await.unwrap().len(), 1);
    send_stanza(&flood, window, &message("alice@localhost/a", "f")).await;
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

/// A proof for `account` made from `password` with the salt the router hands out, over
/// a fixed AuthMessage (what an edge's exchange sends).
async fn proof_from(edge: &mut Edge, account: &str, password: &str, alg: HashAlg) -> ScramProof {
    let request = pb::CredentialsRequest {
        account: account.into(),
    };
    let reply = edge
        .client
        .credentials(with_token(request, &edge.token))
        .await
        .unwrap()
        .into_inner();
    let salts = reply.salts.expect("the account exists");
    let salt = match alg {
        HashAlg::Sha1 => salts.sha1.unwrap(),
        HashAlg::Sha256 => salts.sha256.unwrap(),
    };
    let salted = SaltedPassword::derive(alg, password, &salt.salt, salt.iterations).unwrap();
    let client_key = alg.hmac(&salted.salted, &[b"Client Key"]);
    ScramProof::sign(
        alg,
        &client_key,
        b"n=alice,r=x,r=xy,s=c2FsdA==,i=4096,c=biws,r=xy".to_vec(),
    )
}

fn verify(account: &str, proof: &ScramProof) -> pb::VerifyScramRequest {
    pb::VerifyScramRequest {
        account: account.into(),
        hash: match proof.alg {
            HashAlg::Sha1 => pb::ScramHash::Sha1,
            HashAlg::Sha256 => pb::ScramHash::Sha256,
        }
        .into(),
        auth_message: proof.auth_message.clone(),
        client_proof: proof.client_proof.clone(),
    }
}

#[tokio::test]
async fn verify_scram_answers_only_a_right_proof_for_that_account() {
    let rig = rig().await;
    let mut edge = link(&rig, "edge-a").await.unwrap();
    let t = edge.token.clone();
    for alg in [HashAlg::Sha1, HashAlg::Sha256] {
        let keys = rig.alice.keys(alg);
        let right = proof_from(&mut edge, "alice@localhost", "pencil", alg).await;
        let wrong = proof_from(&mut edge, "alice@localhost", "pen", alg).await;
        let ask = |account: &str, proof: &ScramProof| {
            let request = with_token(verify(account, proof), &t);
            let mut client = edge.client.clone();
            async move { client.verify_scram(request).await }
        };
        let reply = ask("alice@localhost", &right).await.unwrap().into_inner();
        assert_eq!(
            reply.server_signature,
            alg.hmac(&keys.server_key, &[&right.auth_message]),
            "{alg:?}: the right proof gets the ServerSignature"
        );
        // Bob has the same password, but Alice's proof is not his.
        for (account, proof, why) in [
            ("alice@localhost", &wrong, "a wrong password"),
            ("bob@localhost", &right, "a proof for another account"),
            ("ghost@localhost", &right, "an unknown account"),
        ] {
            let reply = ask(account, proof).await.unwrap().into_inner();
            assert!(reply.server_signature.is_empty(), "{alg:?}: {why}");
        }
    }
    // Without a link's token: refused before anything is looked up.
    let right = proof_from(&mut edge, "alice@localhost", "pencil", HashAlg::Sha256).await;
    let no_token = edge
        .client
        .verify_scram(Request::new(verify("alice@localhost", &right)))
        .await;
    assert_eq!(no_token.unwrap_err().code(), Code::Unauthenticated);
    assert_ne!(rig.bob.sha256.salt, rig.alice.sha256.salt);
}

#[tokio::test]
async fn verify_scram_checks_its_input_as_untrusted() {
    let rig = rig().await;
    let mut edge = link(&rig, "edge-a").await.unwrap();
    let right = proof_from(&mut edge, "alice@localhost", "pencil", HashAlg::Sha256).await;
    let good = verify("alice@localhost", &right);
    let max = switchyard_core::sasl::MAX_AUTH_MESSAGE_BYTES;
    let cases = [
        pb::VerifyScramRequest {
            auth_message: vec![b'a'; max + 1],
            ..good.clone()
        },
        pb::VerifyScramRequest {
            auth_message: Vec::new(),
            ..good.clone()
        },
        pb::VerifyScramRequest {
            client_proof: vec![0; 1024],
            ..good.clone()
        },
        pb::VerifyScramRequest {
            client_proof: right.client_proof[..20].to_vec(),
            ..good.clone()
        },
        pb::VerifyScramRequest {
            hash: pb::ScramHash::Unspecified.into(),
            ..good.clone()
        },
        pb::VerifyScramRequest {
            hash: 7,
            ..good.clone()
        },
        pb::VerifyScramRequest {
            account: "alice@localhost/phone".into(),
            ..good.clone()
        },
        pb::VerifyScramRequest {
            account: "alice@evil.example".into(),
            ..good.clone()
        },
        pb::VerifyScramRequest {
            account: "localhost".into(),
            ..good.clone()
        },
        pb::VerifyScramRequest {
            account: "@@".into(),
            ..good.clone()
        },
    ];
    for (i, request) in cases.into_iter().enumerate() {
        let refused = edge
            .client
            .verify_scram(with_token(request, &edge.token))
            .await;
        assert_eq!(
            refused.unwrap_err().code(),
            Code::InvalidArgument,
            "case {i}"
        );
    }
    // The largest AuthMessage allowed is checked (and, not being the signed one, fails).
    let largest = pb::VerifyScramRequest {
        auth_message: vec![b'a'; max],
        ..good.clone()
    };
    let reply = edge
        .client
        .verify_scram(with_token(largest, &edge.token))
        .await
        .unwrap();
    assert!(reply.into_inner().server_signature.is_empty());
    let reply = edge
        .client
        .verify_scram(with_token(good, &edge.token))
        .await
        .unwrap();
    assert!(!reply.into_inner().server_signature.is_empty());
}

fn held(sessions: &[(&str, u64)]) -> Vec<pb::ReconcileChunk> {
    let held = sessions
        .iter()
        .map(|(jid, conn)| pb::SessionRef {
            jid: (*jid).into(),
            conn: *conn,
        })
        .collect();
    vec![pb::ReconcileChunk { held }]
}

async fn reconcile(
    edge: &Edge,
    token: &str,
    chunks: Vec<pb::ReconcileChunk>,
) -> Result<u64, tonic::Status> {
    let mut client = edge.client.clone();
    let request = with_token(tokio_stream::iter(chunks), token);
    Ok(client.reconcile(request).await?.into_inner().removed)
}

/// An edge's Reconcile removes its own sessions that it does not name, and nothing of
/// another edge's, whatever it names.
#[tokio::test]
async fn reconcile_removes_only_the_calling_edges_sessions_it_no_longer_holds() {
    let rig = rig().await;
    let honest = link(&rig, "edge-a").await.unwrap();
    let other = link(&rig, "edge-o").await.unwrap();
    let rogue = link(&rig, "edge-r").await.unwrap();
    let binds = [
        (&honest, "alice@localhost/a", "edge-a", 1),
        (&honest, "bob@localhost/b", "edge-a", 2),
        (&other, "alice@localhost/x", "edge-o", 1),
    ];
    for (edge, jid, edge_id, conn) in binds {
        let request = with_token(bind(jid, edge_id, conn), &edge.token);
        let reply = edge.client.clone().bind(request).await.unwrap();
        assert_eq!(reply.into_inner().error_condition, "");
    }
    // The rogue names nothing: it has nothing to lose, and takes nothing of others.
    assert_eq!(reconcile(&rogue, &rogue.token, held(&[])).await.unwrap(), 0);
    // The honest edge still holds alice/a (and names a connection of the other edge's).
    let named = held(&[("alice@localhost/a", 1), ("alice@localhost/x", 1)]);
    assert_eq!(reconcile(&honest, &honest.token, named).await.unwrap(), 1);
    assert_eq!(
        sessions(&rig, "alice@localhost").await,
        ["alice@localhost/a@edge-a#1", "alice@localhost/x@edge-o#1"]
    );
    assert!(sessions(&rig, "bob@localhost").await.is_empty());
    // Without a link's token, or with a JID that is not one, nothing happens.
    let refused = reconcile(&honest, "forged", held(&[])).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let refused = reconcile(&other, &other.token, held(&[("not a jid@@", 1)])).await;
    assert_eq!(refused.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(sessions(&rig, "alice@localhost").await.len(), 2);

    // One at a time: a list still being streamed holds the router's place; another is
    // refused at once, and goes through once the first is done.
    let (open, chunks) = mpsc::channel::<pb::ReconcileChunk>(1);
    let mut client = rogue.client.clone();
    let first = tokio::spawn(async move {
        let request = with_token(ReceiverStream::new(chunks), &rogue.token);
        client.reconcile(request).await
    });
    open.send(held(&[]).remove(0)).await.unwrap();
    let busy = tokio::time::timeout(PATIENCE, async {
        loop {
            match reconcile(&other, &other.token, held(&[("alice@localhost/x", 1)])).await {
                Err(e) if e.code() == Code::ResourceExhausted => return,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await;
    assert!(busy.is_ok(), "a second reconcile is refused while one runs");
    drop(open);
    assert_eq!(first.await.unwrap().unwrap().into_inner().removed, 0);
    let held_x = held(&[("alice@localhost/x", 1)]);
    assert_eq!(reconcile(&other, &other.token, held_x).await.unwrap(), 0);
}

/// Parse once: a stanza the router does not change reaches the recipient's edge as the
/// bytes the sender's edge wrote (double quotes, spacing and all; the router's own
/// serializer would write neither).
#[tokio::test]
async fn an_unchanged_stanza_is_forwarded_as_the_bytes_that_came_in() {
    let rig = rig().await;
    let mut edge = link(&rig, "edge-p").await.unwrap();
    let t = edge.token.clone();
    for (jid, conn) in [("alice@localhost/a", 1), ("bob@localhost/b", 2)] {
        let reply = edge
            .client
            .bind(with_token(bind(jid, "edge-p", conn), &t))
            .await
            .unwrap();
        assert_eq!(reply.into_inner().error_condition, "");
    }
    let sent = [
        "<message xmlns=\"jabber:client\" from=\"alice@localhost/a\" to=\"bob@localhost/b\"  type=\"chat\" id=\"raw\"><body>as  sent</body></message>",
        "<presence xmlns=\"jabber:client\" from=\"alice@localhost/a\" to=\"bob@localhost/b\" ><show>away</show></presence>",
    ];
    for (seq, xml) in sent.into_iter().enumerate() {
        send_stanza(&edge, seq as u64, xml).await;
        let delivery = loop {
            match next(&mut edge.inbound).await {
                pb::router_message::Body::Deliveries(batch) => {
                    break batch.deliveries.into_iter().next().unwrap()
                }
                pb::router_message::Body::Acks(_) => continue,
                other => panic!("expected a delivery, got {other:?}"),
            }
        };
        assert_eq!(String::from_utf8(delivery.xml).unwrap(), xml);
        assert_eq!(delivery.conn, 2);
        let answer = pb::DeliveryResults {
            results: vec![pb::DeliveryResult {
                id: delivery.id,
                delivered: true,
                no_session: false,
                sm_seq: None,
            }],
        };
        let body = pb::edge_message::Body::Results(answer);
        edge.tx
            .send(pb::EdgeMessage { body: Some(body) })
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_rogue_edge_cannot_bind_bare_jids_or_have_other_edges_sessions_notified() {
    let rig = rig().await;
    let mut honest = link(&rig, "edge-a").await.unwrap();
    let mut rogue = link(&rig, "edge-r").await.unwrap();
    let (t, r) = (honest.token.clone(), rogue.token.clone());
    let bound = honest
        .client
        .bind(with_token(bind("alice@localhost/a", "edge-a", 1), &t))
        .await;
    assert_eq!(bound.unwrap().into_inner().error_condition, "");
    // A bare JID binds only as a configured component's domain (none here).
    for jid in ["alice@localhost", "localhost", "push.localhost"] {
        let refused = rogue
            .client
            .bind(with_token(bind(jid, "edge-r", 5), &r))
            .await;
        assert_eq!(refused.unwrap_err().code(), Code::InvalidArgument, "{jid}");
    }
    // XEP-0357: only the edge that bound a session asks for its notifications.
    let notify = |jid: &str| {
        pb::NotifyDetachedRequest {
        jid: jid.into(),
        stanza: b"<message xmlns='jabber:client' from='bob@localhost/b' to='alice@localhost/a'><body>x</body></message>".to_vec(),
    }
    };
    let stolen = rogue
        .client
        .notify_detached(with_token(notify("alice@localhost/a"), &r))
        .await;
    assert_eq!(stolen.unwrap_err().code(), Code::PermissionDenied);
    let own = honest
        .client
        .notify_detached(with_token(notify("alice@localhost/a"), &t))
        .await;
    assert!(own.is_ok(), "{own:?}");
    let garbage = pb::NotifyDetachedRequest {
        jid: "alice@localhost/a".into(),
        stanza: b"<message".to_vec(),
    };
    let unreadable = honest.client.notify_detached(with_token(garbage, &t)).await;
    assert_eq!(unreadable.unwrap_err().code(), Code::InvalidArgument);
}
