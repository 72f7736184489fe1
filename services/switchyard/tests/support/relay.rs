//! A TCP relay in front of a server whose connections can be cut at once (both sockets
//! dropped, no stream close: a phone losing its network, a database becoming unreachable)
//! while it keeps accepting, and whose later connections go to another address (the load
//! balancer's next choice) or are closed at once (nothing to reach).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub struct Relay {
    pub addr: SocketAddr,
    cut: Arc<Mutex<CancellationToken>>,
    target: Arc<Mutex<Option<SocketAddr>>>,
}

impl Relay {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(Mutex::new(CancellationToken::new()));
        let target = Arc::new(Mutex::new(Some(target)));
        let (current, to) = (cut.clone(), target.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let cut = current.lock().unwrap().clone();
                let Some(to) = *to.lock().unwrap() else {
                    continue; // dropped: the client's connection closes at once
                };
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(to).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = cut.cancelled() => {}
                    }
                });
            }
        });
        Self { addr, cut, target }
    }

    /// Drops every connection relayed so far; later ones go to `next`, or with `None`
    /// are closed as soon as they are accepted.
    pub fn cut(&self, next: Option<SocketAddr>) {
        *self.target.lock().unwrap() = next;
        let mut cut = self.cut.lock().unwrap();
        cut.cancel();
        *cut = CancellationToken::new();
    }
}
