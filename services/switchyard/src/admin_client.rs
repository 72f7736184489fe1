//! The admin API's client (`http://host:port` on a cluster-internal network), so
//! `switchyard user …` can manage a running cluster without a database connection.
//! hyper-util's HTTP/1.1 client over plain TCP (no TLS stack: the admin API has none);
//! one request per connection; bodies are JSON or text.

use anyhow::{anyhow, Context};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The largest response read, so a wrong URL cannot make the CLI read without bound.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// How long one request may take in all.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// `switchyard health`: asks this host's admin listener (`admin.listen`, an unspecified
/// address meaning loopback) for `/healthz` or `/readyz`; an error unless it answers 200.
pub async fn health(config: &crate::config::Config, ready: bool) -> anyhow::Result<()> {
    let mut addr: std::net::SocketAddr = config
        .admin
        .listen
        .parse()
        .with_context(|| format!("admin.listen {:?} is not an address", config.admin.listen))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let path = if ready { "/readyz" } else { "/healthz" };
    let base = format!("http://{addr}");
    let (status, body) =
        tokio::time::timeout(HEALTH_TIMEOUT, exchange(&base, "GET", path, "", None))
            .await
            .with_context(|| format!("{base}{path} did not answer in time"))??;
    anyhow::ensure!(
        status == 200,
        "{base}{path} answered {status}: {}",
        body.trim()
    );
    println!("{base}{path}: {}", body.trim());
    Ok(())
}

/// A health check answers fast or not at all.
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Sends one request and returns the status code and body.
pub async fn request(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    json: Option<&serde_json::Value>,
) -> anyhow::Result<(u16, String)> {
    tokio::time::timeout(TIMEOUT, exchange(base, method, path, token, json))
        .await
        .with_context(|| format!("the admin API at {base} did not answer in time"))?
}

async fn exchange(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    json: Option<&serde_json::Value>,
) -> anyhow::Result<(u16, String)> {
    let authority = base
        .strip_prefix("http://")
        .context("the admin URL must start with http://")?
        .trim_end_matches('/');
    let body = json.map(|j| j.to_string()).unwrap_or_default();
    let request = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{authority}{path}"))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .with_context(|| format!("not a valid admin API request: {method} {base}{path}"))?;
    // No idle connections kept: the CLI sends one request and exits.
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http();
    let response = client.request(request).await.map_err(|e| {
        let reason = if e.is_connect() {
            format!("cannot reach the admin API at {authority}")
        } else {
            format!("the admin API at {authority} failed to answer")
        };
        anyhow!(e).context(reason)
    })?;
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| anyhow!("reading the admin API's answer: {e}"))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Percent-encodes a path segment (a JID may carry `/`, spaces or anything else).
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
