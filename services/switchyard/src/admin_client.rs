//! A minimal HTTP/1.1 client for the admin API (`http://host:port` on a cluster-internal
//! network), so `switchyard user …` can manage a running cluster without a database
//! connection. One request per connection; bodies are JSON or text.

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The largest response read, so a wrong URL cannot make the CLI read without bound.
const MAX_RESPONSE: u64 = 16 * 1024 * 1024;

/// How long one request may take in all.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

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
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .with_context(|| format!("cannot reach the admin API at {authority}"))?;
    let body = json.map(|j| j.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.take(MAX_RESPONSE).read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("malformed HTTP status line")?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
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

/// Joins a chunked body (the admin server streams JSON that way).
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}
