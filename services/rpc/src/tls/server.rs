//! The router's side: TLS accept off the accept loop, and the caller's identity in every
//! request.
//!
//! Handlers read who called from the request extensions:
//!
//! ```ignore
//! let edge: Option<&PeerIdentity> = request.extensions().get::<PeerIdentity>();
//! let addr: Option<SocketAddr> = request.remote_addr();
//! ```
//!
//! With cluster TLS on, every request has a [`PeerIdentity`]: the handshake requires a
//! client certificate chained to the cluster CA, and a certificate without a DNS name is
//! refused right after it. It is absent only when `cluster.tls = false` (development).

use super::ClusterTls;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::codegen::http;
use tonic::codegen::Service;
use tonic::server::NamedService;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Handshakes in progress at once; connections past it are closed at once (edges retry).
const MAX_HANDSHAKES: usize = 256;
/// A handshake that takes longer is abandoned.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who is calling: the first DNS name (subjectAltName) of the client certificate the
/// router verified. In request extensions with cluster TLS on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerIdentity(pub String);

impl std::fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What tonic learns about a link connection ([`Connected`]); [`with_peer`] splits it into
/// the request extensions handlers read.
#[derive(Debug, Clone)]
pub struct LinkConnectInfo {
    pub tcp: TcpConnectInfo,
    /// `None` only on a plaintext (development) listener.
    pub identity: Option<PeerIdentity>,
}

#[derive(Debug)]
enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// One accepted link connection: TLS established (or plaintext in development).
#[derive(Debug)]
pub struct LinkStream {
    io: Io,
    info: LinkConnectInfo,
}

impl Connected for LinkStream {
    type ConnectInfo = LinkConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

macro_rules! delegate {
    ($self:ident, $io:ident => $e:expr) => {
        match &mut $self.get_mut().io {
            Io::Plain($io) => $e,
            Io::Tls($io) => $e,
        }
    };
}

impl AsyncRead for LinkStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, io => Pin::new(io).poll_read(cx, buf))
    }
}

impl AsyncWrite for LinkStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, io => Pin::new(io).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, io => Pin::new(io).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(io) => io.is_write_vectored(),
            Io::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, io => Pin::new(io).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, io => Pin::new(io).poll_shutdown(cx))
    }
}

/// The identity a verified certificate names: its first DNS subjectAltName.
pub(crate) fn identity_of(cert: &rustls_pki_types::CertificateDer<'_>) -> Option<PeerIdentity> {
    let cert = webpki::EndEntityCert::try_from(cert).ok()?;
    let name = cert.valid_dns_names().next()?;
    Some(PeerIdentity(name.to_owned()))
}

async fn establish(tcp: TcpStream, tls: Option<Arc<ClusterTls>>) -> io::Result<LinkStream> {
    let tcp_info = TcpConnectInfo {
        local_addr: tcp.local_addr().ok(),
        remote_addr: tcp.peer_addr().ok(),
    };
    let Some(tls) = tls else {
        return Ok(LinkStream {
            io: Io::Plain(tcp),
            info: LinkConnectInfo {
                tcp: tcp_info,
                identity: None,
            },
        });
    };
    let stream = tokio_rustls::TlsAcceptor::from(tls.server_config())
        .accept(tcp)
        .await?;
    let identity = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(identity_of)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the client certificate names no DNS subjectAltName",
            )
        })?;
    Ok(LinkStream {
        io: Io::Tls(Box::new(stream)),
        info: LinkConnectInfo {
            tcp: tcp_info,
            identity: Some(identity),
        },
    })
}

/// The router's link connections for `Server::serve_with_incoming_shutdown`: accepted from
/// `listener` until `shutdown`, each through a TLS handshake with `tls` (plaintext when
/// `None`). Handshakes run in tasks of their own, at most [`MAX_HANDSHAKES`] at once and
/// each within [`HANDSHAKE_TIMEOUT`]; a failed one is logged and never reaches tonic.
pub fn incoming(
    listener: TcpListener,
    tls: Option<Arc<ClusterTls>>,
    shutdown: CancellationToken,
) -> ReceiverStream<io::Result<LinkStream>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = shutdown.cancelled() => return,
                () = tx.closed() => return,
            };
            let (tcp, remote) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, most likely: let some close.
                    tracing::warn!(error = %e, "cluster link: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                tracing::warn!(%remote, "cluster link: too many handshakes in progress, closed");
                continue;
            };
            let (tx, tls) = (tx.clone(), tls.clone());
            tokio::spawn(async move {
                let result = tokio::time::timeout(HANDSHAKE_TIMEOUT, establish(tcp, tls)).await;
                drop(permit);
                match result {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => log_refused(remote, &e.to_string()),
                    Err(_) => log_refused(remote, "handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

fn log_refused(remote: SocketAddr, why: &str) {
    tracing::warn!(%remote, error = why, "cluster link: connection refused (TLS)");
}

/// Wraps the router's gRPC service so that each request carries, besides the
/// [`LinkConnectInfo`] tonic puts there, its parts on their own: the [`PeerIdentity`]
/// and the `TcpConnectInfo` behind `request.remote_addr()`.
pub fn with_peer<S>(service: S) -> WithPeer<S> {
    WithPeer(service)
}

/// See [`with_peer`].
#[derive(Debug, Clone)]
pub struct WithPeer<S>(S);

impl<S, B> Service<http::Request<B>> for WithPeer<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if let Some(info) = request.extensions().get::<LinkConnectInfo>().cloned() {
            request.extensions_mut().insert(info.tcp);
            if let Some(identity) = info.identity {
                request.extensions_mut().insert(identity);
            }
        }
        self.0.call(request)
    }
}

impl<S: NamedService> NamedService for WithPeer<S> {
    const NAME: &'static str = S::NAME;
}
