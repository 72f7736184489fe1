//! The edge's delivery guarantee against a router that goes away with stanzas it never
//! acknowledged: they are sent again through the router still up, none lost.

use crate::{preferred_router, RemoteRouters};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_core::{Element, Jid, Stanza};
use switchyard_edge::{Connections, RouterLink};
use switchyard_rpc::pb;
use switchyard_rpc::pb::router_server::{Router, RouterServer};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

/// A stand-in router: acknowledges everything, or nothing and then hangs up after
/// `hang_up_after` stanzas. Records the message ids it received.
#[derive(Debug, Clone)]
struct Fake {
    acks: bool,
    hang_up_after: usize,
    seen: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl Router for Fake {
    type LinkStream = ReceiverStream<Result<pb::RouterMessage, Status>>;

    async fn link(
        &self,
        request: Request<Streaming<pb::EdgeMessage>>,
    ) -> Result<Response<Self::LinkStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(1024);
        let welcome = pb::RouterMessage {
            body: Some(pb::router_message::Body::Welcome(pb::Welcome {
                token: "t".into(),
            })),
        };
        let _ = tx.send(Ok(welcome)).await;
        let this = self.clone();
        tokio::spawn(async move {
            let mut received = 0;
            while let Ok(Some(m)) = inbound.message().await {
                let Some(pb::edge_message::Body::Stanzas(batch)) = m.body else {
                    continue;
                };
                for s in batch.stanzas {
                    let el = switchyard_rpc::convert::element(&s.xml).unwrap();
                    this.seen
                        .lock()
                        .unwrap()
                        .push(el.attr("id").unwrap().to_owned());
                    received += 1;
                    if this.acks {
                        let ack = pb::RouterMessage {
                            body: Some(pb::router_message::Body::Acks(pb::Acks {
                                seqs: vec![s.seq],
                            })),
                        };
                        let _ = tx.send(Ok(ack)).await;
                    } else if received >= this.hang_up_after {
                        let _ = tx.send(Err(Status::unavailable("router going away"))).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn credentials(
        &self,
        _: Request<pb::CredentialsRequest>,
    ) -> Result<Response<pb::CredentialsReply>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn verify_scram(
        &self,
        _: Request<pb::VerifyScramRequest>,
    ) -> Result<Response<pb::VerifyScramReply>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn verify_token(
        &self,
        _: Request<pb::VerifyTokenRequest>,
    ) -> Result<Response<pb::VerifyTokenReply>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn issue_token(
        &self,
        _: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenReply>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn login_failures(
        &self,
        _: Request<pb::LoginFailuresRequest>,
    ) -> Result<Response<pb::LoginFailuresReply>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn record_login_failure(
        &self,
        _: Request<pb::LoginFailuresRequest>,
    ) -> Result<Response<pb::LoginFailuresReply>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn clear_login_failures(
        &self,
        _: Request<pb::LoginFailuresRequest>,
    ) -> Result<Response<pb::LoginFailuresReply>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn bind(&self, _: Request<pb::BindRequest>) -> Result<Response<pb::BindReply>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn unbind(
        &self,
        _: Request<pb::UnbindRequest>,
    ) -> Result<Response<pb::UnbindReply>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn reconcile(
        &self,
        _: Request<tonic::Streaming<pb::ReconcileChunk>>,
    ) -> Result<Response<pb::ReconcileReply>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn take_session(
        &self,
        _: Request<pb::TakeSessionRequest>,
    ) -> Result<Response<pb::TakeSessionReply>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn take_copies(
        &self,
        _: Request<pb::TakeCopiesRequest>,
    ) -> Result<Response<pb::TakeCopiesReply>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn notify_detached(
        &self,
        _: Request<pb::NotifyDetachedRequest>,
    ) -> Result<Response<pb::NotifyDetachedReply>, Status> {
        Err(Status::unimplemented("fake"))
    }
}

async fn serve(fake: Fake) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RouterServer::new(fake))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    addr
}

#[tokio::test]
async fn unacknowledged_stanzas_are_resent_through_the_remaining_router() {
    let seen = || Arc::new(Mutex::new(Vec::new()));
    let dying = Fake {
        acks: false,
        hang_up_after: 5,
        seen: seen(),
    };
    let healthy = Fake {
        acks: true,
        hang_up_after: 0,
        seen: seen(),
    };
    let addrs = vec![serve(dying.clone()).await, serve(healthy.clone()).await];
    let shutdown = CancellationToken::new();
    let edge = RemoteRouters::start(
        "edge-test".into(),
        addrs.clone(),
        Arc::new(Connections::default()),
        shutdown.clone(),
    );
    for _ in 0..250 {
        if edge.routers_up() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(edge.routers_up(), 2, "both links up");
    // A sender whose stanzas the dying router gets first.
    let sender = (0..100)
        .map(|i| Jid::parse(&format!("user{i}@localhost")).unwrap())
        .find(|j| preferred_router(j, &addrs) == Some(&addrs[0]))
        .expect("some user prefers the first router");
    let ids: Vec<String> = (0..5).map(|i| format!("m{i}")).collect();
    for id in &ids {
        let el = Element::new("message", switchyard_core::ns::CLIENT)
            .with_attr("from", format!("{sender}/r"))
            .with_attr("to", "sink@localhost")
            .with_attr("id", id.as_str());
        edge.submit(Stanza::from_element(el).unwrap(), None).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut got = healthy.seen.lock().unwrap().clone();
        got.sort();
        got.dedup();
        if got == ids {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "resent: {got:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        dying.seen.lock().unwrap().len(),
        5,
        "the first router had them all"
    );
    shutdown.cancel();
}
