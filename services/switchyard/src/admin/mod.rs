//! The admin HTTP listener of every role (`admin.listen`, default port 9400):
//!
//! - `GET /metrics`: Prometheus text (`switchyard_*` and process metrics);
//! - `GET /healthz`: 200 while the process runs;
//! - `GET /readyz`: 200 when this process should get traffic — not draining, and an edge
//!   has a router link up, a router reaches its registry and database; 503 otherwise;
//! - `/api/v1/…` (processes that run the router, with `admin.token` set; `Authorization:
//!   Bearer TOKEN`): the daily tasks of ejabberd's API. Accounts ([`users`]: list, create,
//!   show, delete, password, ban), what they hold ([`user_data`]: roster, offline
//!   messages, FAST tokens), sessions and messages ([`sessions`]: the cluster-wide
//!   listing, kicks, a message to a user, announcements, stats). `GET /api/v1/openapi.json`
//!   describes all of it (OpenAPI 3.1) and needs no token. Passwords are turned into SCRAM
//!   keys here and never stored or logged. A JID in a path is one segment
//!   (percent-encoded) except at the end of `/api/v1/sessions/…`, where a full JID may
//!   be given as it is, its resource's `/` included.

mod sessions;
mod user_data;
mod users;

use crate::config::Config;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router as Http;
use std::sync::Arc;
use std::time::Duration;
use switchyard_cluster::RemoteRouters;
use switchyard_core::Jid;
use switchyard_router::Router;
use switchyard_storage::{AccountStore, SessionRegistry, StorageError};
use tokio_util::sync::CancellationToken;

/// What decides readiness, per role.
#[derive(Debug, Clone)]
pub enum Readiness {
    /// All roles in one process: ready unless draining.
    Local,
    Edge(Arc<RemoteRouters>),
    Router {
        registry: Arc<dyn SessionRegistry>,
        accounts: Arc<dyn AccountStore>,
    },
}

/// The router-side handles the admin API needs.
#[derive(Clone)]
pub struct Api {
    pub router: Arc<Router>,
    pub accounts: Arc<dyn AccountStore>,
    pub token: String,
    pub scram_iterations: u32,
    /// `auth.min_password_chars`.
    pub min_password_chars: usize,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Admin {
    readiness: Readiness,
    draining: CancellationToken,
    api: Option<Api>,
}

/// Serves the admin endpoints until `shutdown`; returns the bound address.
pub async fn serve(
    config: &Config,
    readiness: Readiness,
    api: Option<Api>,
    draining: CancellationToken,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<std::net::SocketAddr>> {
    if config.admin.listen.is_empty() {
        return Ok(None);
    }
    let listener = crate::serve::listen(&config.admin.listen).await?;
    let addr = listener.local_addr()?;
    println!("switchyard: listening admin {addr}");
    if let Some(api) = &api {
        tokio::spawn(count_online(api.router.clone(), shutdown.clone()));
    }
    let api = api.filter(|a| !a.token.is_empty());
    let state = Admin {
        readiness,
        draining,
        api,
    };
    let app = Http::new()
        .route("/metrics", get(|| async { switchyard_telemetry::render() }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/users", get(users::list).post(users::create))
        .route(
            "/api/v1/users/{jid}",
            get(users::show).delete(users::remove),
        )
        .route("/api/v1/users/{jid}/password", put(users::set_password))
        .route(
            "/api/v1/users/{jid}/ban",
            put(users::ban).delete(users::unban),
        )
        .route(
            "/api/v1/users/{jid}/sessions",
            get(sessions::of_user).delete(sessions::kick_user),
        )
        .route("/api/v1/users/{jid}/roster", get(user_data::roster))
        .route(
            "/api/v1/users/{jid}/roster/{contact}",
            put(user_data::roster_set).delete(user_data::roster_remove),
        )
        .route(
            "/api/v1/users/{jid}/offline",
            get(user_data::offline).delete(user_data::offline_purge),
        )
        .route(
            "/api/v1/users/{jid}/fast-tokens",
            get(user_data::fast_tokens).delete(user_data::revoke_fast_tokens),
        )
        .route(
            "/api/v1/users/{jid}/fast-tokens/{client}",
            delete(user_data::revoke_fast_client),
        )
        .route("/api/v1/sessions", get(sessions::online))
        .route("/api/v1/sessions/{*jid}", delete(sessions::kick))
        .route("/api/v1/messages", post(sessions::message))
        .route("/api/v1/announcements", post(sessions::announce))
        .route("/api/v1/stats", get(sessions::stats))
        .fallback(|| async { not_found("no such endpoint (GET /api/v1/openapi.json lists them)") })
        .method_not_allowed_fallback(|| async {
            ApiError(
                StatusCode::METHOD_NOT_ALLOWED,
                "this endpoint does not take that method".into(),
            )
        })
        .with_state(state);
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "admin listener failed");
        }
    });
    Ok(Some(addr))
}

/// How often the cluster-wide session count is read.
const COUNT_ONLINE_EVERY: Duration = Duration::from_secs(15);

/// Keeps `switchyard_cluster_sessions_online` current; a failed read keeps the last
/// value (readiness reports the registry's trouble).
async fn count_online(router: Arc<Router>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(COUNT_ONLINE_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        match router.online_count().await {
            Ok(n) => {
                switchyard_telemetry::CLUSTER_SESSIONS.set(i64::try_from(n).unwrap_or(i64::MAX))
            }
            Err(e) => tracing::debug!(error = %e, "cluster session count unreadable"),
        }
    }
}

async fn ready(State(admin): State<Admin>) -> Response {
    if admin.draining.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response();
    }
    let verdict = match &admin.readiness {
        Readiness::Local => Ok(()),
        Readiness::Edge(routers) => match routers.routers_up() {
            0 => Err("no router link is up".to_owned()),
            _ => Ok(()),
        },
        Readiness::Router { registry, accounts } => {
            let probe = async {
                registry.epoch().await?;
                let nobody = Jid::parse("readiness-probe@invalid").expect("static JID");
                accounts.credentials(&nobody).await?;
                Ok::<(), StorageError>(())
            };
            match tokio::time::timeout(Duration::from_secs(2), probe).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("storage did not answer in time".to_owned()),
            }
        }
    };
    match verdict {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}

/// An API failure: a status and a plain-text reason.
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn bad_request(what: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, what.to_string())
}

fn not_found(what: &str) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, what.to_owned())
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => not_found("no such account"),
            StorageError::AlreadyExists => Self(StatusCode::CONFLICT, "already exists".into()),
            StorageError::Invalid(why) => bad_request(why),
            other => Self(StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
        }
    }
}

/// The API handles, once the bearer token checks out: every `/api/v1` handler but the
/// OpenAPI document takes this first.
struct Authed(Api);

impl axum::extract::FromRequestParts<Admin> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        admin: &Admin,
    ) -> Result<Self, ApiError> {
        let Some(api) = &admin.api else {
            return Err(not_found("the admin API is not enabled here"));
        };
        let presented = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            // RFC 9110 §11.1: the scheme's name is case-insensitive.
            .and_then(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer").then_some(token));
        match presented {
            Some(token) if constant_time_eq(token.as_bytes(), api.token.as_bytes()) => {
                Ok(Self(api.clone()))
            }
            _ => Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "bad or missing bearer token".into(),
            )),
        }
    }
}

/// Seconds since the Unix epoch as an RFC 3339 time (XEP-0082).
fn timestamp(secs: u64) -> String {
    let at = std::time::UNIX_EPOCH.checked_add(Duration::from_secs(secs));
    // A time no system clock can hold (only a hand-made import could store one).
    at.map_or_else(
        || format!("{secs} s after 1970"),
        switchyard_core::time::datetime,
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The longest text (a message body, a roster name) taken (bytes).
const MAX_TEXT_BYTES: usize = 64 * 1024;

/// Text an XML document can carry (XML 1.0 §2.2 `Char`), within the size bound.
fn xml_text(what: &str, value: &str) -> Result<(), ApiError> {
    let xml_char = |c: char| {
        matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && !matches!(c, '\u{FFFE}' | '\u{FFFF}'))
    };
    if value.len() > MAX_TEXT_BYTES {
        return Err(bad_request(format!(
            "the {what} is longer than {MAX_TEXT_BYTES} bytes"
        )));
    }
    if !value.chars().all(xml_char) {
        return Err(bad_request(format!(
            "the {what} holds a character XML cannot carry"
        )));
    }
    Ok(())
}

/// A served domain named as a request gives it (`example.org`), as the registry and the
/// router compare it.
fn served_domain(api: &Api, domain: &str) -> Result<String, ApiError> {
    match Jid::parse(domain) {
        Ok(d) if d.local().is_none() && d.is_bare() && api.router.is_local(&d) => {
            Ok(d.domain().to_owned())
        }
        _ => Err(bad_request(format!(
            "{domain} is not a domain this server serves"
        ))),
    }
}

/// [`account`], and it must exist (404 otherwise).
async fn existing(api: &Api, jid: &str) -> Result<Jid, ApiError> {
    let jid = account(api, jid)?;
    match api.accounts.credentials(&jid).await? {
        Some(_) => Ok(jid),
        None => Err(not_found("no such account")),
    }
}

/// An account of a domain this server serves.
fn account(api: &Api, jid: &str) -> Result<Jid, ApiError> {
    let jid = Jid::parse(jid).map_err(bad_request)?;
    if jid.local().is_none() || !jid.is_bare() {
        return Err(bad_request("expected user@domain"));
    }
    if !api.router.is_local(&jid) {
        return Err(bad_request(format!(
            "{} is not a domain this server serves",
            jid.domain()
        )));
    }
    Ok(jid)
}

/// The API's OpenAPI 3.1 description.
const OPENAPI: &str = include_str!("openapi.json");

async fn openapi(State(admin): State<Admin>) -> Response {
    match admin.api {
        Some(_) => ([("content-type", "application/json")], OPENAPI).into_response(),
        None => not_found("the admin API is not enabled here").into_response(),
    }
}

/// A stanza-level refusal (the router's answer to an edit) as an HTTP status.
impl From<switchyard_core::StanzaError> for ApiError {
    fn from(e: switchyard_core::StanzaError) -> Self {
        use switchyard_core::StanzaCondition as C;
        let status = match e.condition {
            C::ItemNotFound => StatusCode::NOT_FOUND,
            C::Forbidden => StatusCode::FORBIDDEN,
            C::InternalServerError => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        let text = e.text.unwrap_or_else(|| e.condition.as_str().to_owned());
        Self(status, text)
    }
}
