//! The edge's side: a tonic channel whose connector does TCP, then TLS with this process's
//! client certificate, verifying the router's certificate against the cluster CA and
//! `cluster.tls_server_name`.
//!
//! How links are secured is process-wide: `serve` calls [`set_link_security`] once, before
//! the edge starts, and [`connect_lazy`] (used by `RemoteRouters` for each router address)
//! follows it. Each new connection takes the current configuration, so a reloaded
//! certificate is used from the next reconnection on.

use super::ClusterTls;
use crate::pb;
use crate::pb::router_client::RouterClient;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use tokio::net::TcpStream;
use tonic::codegen::http::Uri;
use tonic::codegen::Service;
use tonic::transport::{Channel, Endpoint};

/// How this process's links to routers are secured.
#[derive(Debug, Clone)]
pub enum LinkSecurity {
    /// Mutual TLS with the cluster certificates (the default).
    Tls(Arc<ClusterTls>),
    /// h2c: `cluster.tls = false`, for development only.
    Plaintext,
}

static LINK_SECURITY: RwLock<Option<LinkSecurity>> = RwLock::new(None);

/// Sets how [`connect_lazy`] connects, for the whole process.
pub fn set_link_security(security: LinkSecurity) {
    *LINK_SECURITY
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(security);
}

/// The channel to one router: TLS as set by [`set_link_security`]. Unset (unit tests that
/// start a `RemoteRouters` against a plaintext stand-in router), it is plaintext.
pub fn connect_lazy(endpoint: &Endpoint) -> Channel {
    let security = LINK_SECURITY
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    match security {
        Some(LinkSecurity::Tls(tls)) => endpoint.connect_with_connector_lazy(Connector {
            config: Source::Store(tls),
        }),
        Some(LinkSecurity::Plaintext) => endpoint.connect_lazy(),
        None => {
            tracing::warn!("link security was never set: connecting in plaintext");
            endpoint.connect_lazy()
        }
    }
}

/// A channel over TLS with a fixed client configuration: what tests (and tools) use to
/// connect as something other than this process.
pub fn tls_channel(
    endpoint: &Endpoint,
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
) -> Channel {
    endpoint.connect_with_connector_lazy(Connector {
        config: Source::Fixed(config, server_name),
    })
}

/// One unary call on a router (the credentials of an account that does not exist), the
/// least a client can ask: `Ok` when the router answered. A connectivity check, and what
/// the rogue-edge tests try without the right certificate.
pub async fn probe(channel: Channel) -> Result<(), tonic::Status> {
    let request = pb::CredentialsRequest {
        account: "probe@invalid".into(),
    };
    RouterClient::new(channel).credentials(request).await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub(super) enum Source {
    /// The process's own certificates, as currently loaded.
    Store(Arc<ClusterTls>),
    Fixed(Arc<ClientConfig>, ServerName<'static>),
}

#[derive(Debug, Clone)]
pub(super) struct Connector {
    pub(super) config: Source,
}

type Connecting = Pin<
    Box<
        dyn Future<Output = io::Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>> + Send,
    >,
>;

impl Service<Uri> for Connector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let (config, name) = match &self.config {
            Source::Store(tls) => (tls.client_config(), tls.server_name().clone()),
            Source::Fixed(config, name) => (config.clone(), name.clone()),
        };
        Box::pin(async move {
            // The endpoint's address: an IP from discovery (IPv6 in brackets) and a port.
            let host = uri.host().unwrap_or_default();
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = uri.port_u16().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("no port in {uri}"))
            })?;
            let tcp = TcpStream::connect((host, port)).await?;
            tcp.set_nodelay(true)?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(tls))
        })
    }
}
