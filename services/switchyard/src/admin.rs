//! The admin HTTP listener of every role (`admin.listen`, default port 9400):
//!
//! - `GET /metrics`: Prometheus text (`switchyard_*` and process metrics);
//! - `GET /healthz`: 200 while the process runs;
//! - `GET /readyz`: 200 when this process should get traffic — not draining, and an edge
//!   has a router link up, a router reaches its registry and database; 503 otherwise;
//! - `/api/v1/…` (processes that run the router, with `admin.token` set; `Authorization:
//!   Bearer TOKEN`): users (list, create, delete, change password), a user's sessions,
//!   kicking a session, node stats. Passwords are turned into SCRAM keys here and never
//!   stored or logged.

use crate::config::Config;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use axum::{Json, Router as Http};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use switchyard_cluster::RemoteRouters;
use switchyard_core::sasl::StoredCredentials;
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
        .route("/api/v1/users", get(list_users).post(create_user))
        .route("/api/v1/users/{jid}", delete(delete_user))
        .route("/api/v1/users/{jid}/password", put(set_password))
        .route("/api/v1/users/{jid}/sessions", get(user_sessions))
        .route(
            "/api/v1/users/{jid}/fast-tokens",
            get(fast_tokens).delete(revoke_fast_tokens),
        )
        .route(
            "/api/v1/users/{jid}/fast-tokens/{client}",
            delete(revoke_fast_client),
        )
        .route("/api/v1/sessions/{jid}", delete(kick))
        .route("/api/v1/stats", get(stats))
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
            other => Self(StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
        }
    }
}

/// The API handles, once the bearer token checks out.
fn authorized(admin: &Admin, headers: &HeaderMap) -> Result<Api, ApiError> {
    let Some(api) = &admin.api else {
        return Err(not_found("the admin API is not enabled here"));
    };
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(token) if constant_time_eq(token.as_bytes(), api.token.as_bytes()) => Ok(api.clone()),
        _ => Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "bad or missing bearer token".into(),
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

#[derive(Deserialize)]
struct NewUser {
    jid: String,
    password: String,
}

#[derive(Deserialize)]
struct Password {
    password: String,
}

fn credentials(api: &Api, password: &str) -> Result<StoredCredentials, ApiError> {
    crate::user::check_password(password, api.min_password_chars).map_err(bad_request)?;
    StoredCredentials::from_password(password, api.scram_iterations).map_err(bad_request)
}

async fn list_users(State(admin): State<Admin>, headers: HeaderMap) -> ApiResult {
    let api = authorized(&admin, &headers)?;
    let jids = api.accounts.list().await?;
    Ok(Json(jids.iter().map(Jid::to_string).collect::<Vec<_>>()).into_response())
}

async fn create_user(
    State(admin): State<Admin>,
    headers: HeaderMap,
    Json(user): Json<NewUser>,
) -> ApiResult {
    let api = authorized(&admin, &headers)?;
    let jid = account(&api, &user.jid)?;
    let creds = credentials(&api, &user.password)?;
    api.accounts.create(&jid, &creds).await?;
    tracing::info!(%jid, "account created through the admin API");
    Ok((StatusCode::CREATED, jid.to_string()).into_response())
}

async fn delete_user(
    State(admin): State<Admin>,
    headers: HeaderMap,
    Path(jid): Path<String>,
) -> ApiResult {
    let api = authorized(&admin, &headers)?;
    let jid = account(&api, &jid)?;
    if !api.accounts.remove(&jid).await? {
        return Err(not_found("no such account"));
    }
    // An account that is gone has no sessions: each one ends now (a session would
    // otherwise go on until it logs out, with an account that no longer exists).
    for session in api.router.sessions_of(&jid).await?.iter() {
        api.router.kick(&session.jid).await?;
    }
    tracing::info!(%jid, "account deleted through the admin API; its sessions ended");
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn set_password(
    State(admin): State<Admin>,
    headers: HeaderMap,
    Path(jid): Path<String>,
    Json(body): Json<Password>,
) -> ApiResult {
    let api = authorized(&admin, &headers)?;
    let jid = account(&api, &jid)?;
    let creds = credentials(&api, &body.password)?;
    let tokens = api.router.fast_tokens();
    crate::user::change_password(&*api.accounts, &tokens, &jid, &creds).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// XEP-0484: the clients holding FAST tokens for the account (no secret shown).
async fn fast_tokens(
    State(admin): State<Admin>,
    headers: HeaderMap,
    Path(jid): Path<String>,
) -> ApiResult {
    let api = authorized(&admin, &headers)?;
    let jid = account(&api, &jid)?;
    let clients = api.router.fast_tokens().list(&jid).await?;
    let at = |secs: u64| {
        switchyard_core::time::datetime(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
        )
    };
    let view: Vec<serde_json::Value> = clients
        .iter()
        .map(|c| {
            serde_json::json!({
                "client": c.user_agent,
                "label": c.label,
                "mechanism": c.mechanism,
                "issued": at(c.issued),
                "expires": at(c.expires),
            })
        })
        .collect();
    Ok(Json(view).into_response())
}

/// Revokes every FAST token of the account: its clients log in with the password next.
async fn revoke_fast_tokens(
    State(admin): State<Admin>,
    headers: HeaderMap,
    Path(jid): Path<String>,
) -> ApiResult {
    let api = authorized(&admin, &headers)?;
    let jid = account(&api, &jid)?;
    let revoked = api.router.fast_tokens().revoke(&jid, None).await?;
    tracing::info!(%jid, revoked, "FAST tokens revoked through the admin API");
    Ok(Json(serde_json::json!({ "revoked": revoked })).into_response())
}

/// Revokes one client's FAST tokens (the client as `GET …/fast-tokens` names it).
async fn revoke_fast_client(
    State(admin): State<Admin>,
    headers: HeaderMap,
    Path((jid, client)): Path<(String, String)>,
) -> ApiResult {
    let api = authorized(&admin, &headers)?;
    let jid = account(&api, &jid)?;
    match api.router.fast_tokens().revoke(&jid, Some(&client)).await? {
        0 => Err(not_found("no tokens for this client")),
        _ => {
            tracing::info!(%jid, %client, "FAST tokens of one client revoked through the admin API");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
    }
}

async fn user_sessions(
    State(admin): State<Admin>,
    headers: HeaderMap,
    Path(jid): Path<String>,
) -> ApiResult {
    let api = authorized(&admin, &headers)?;
    let jid = account(&api, &jid)?;
    let sessions = api.router.sessions_of(&jid).await?;
    let view: Vec<serde_json::Value> = sessions
        .iter()
        .map(|s| {
            serde_json::json!({
                "jid": s.jid.to_string(),
                "edge": s.edge,
                "conn": s.conn,
                "available": s.presence.is_some(),
                "priority": s.priority(),
            })
        })
        .collect();
    Ok(Json(view).into_response())
}

async fn kick(
    State(admin): State<Admin>,
    headers: HeaderMap,
    Path(jid): Path<String>,
) -> ApiResult {
    let api = authorized(&admin, &headers)?;
    let jid = Jid::parse(&jid).map_err(bad_request)?;
    match api.router.kick(&jid).await? {
        true => Ok(StatusCode::NO_CONTENT.into_response()),
        false => Err(not_found("no such session")),
    }
}

async fn stats(State(admin): State<Admin>, headers: HeaderMap) -> ApiResult {
    authorized(&admin, &headers)?;
    let routed: u64 = ["message", "presence", "iq"]
        .iter()
        .map(|k| {
            switchyard_telemetry::ROUTER_STANZAS
                .with_label_values(&[k])
                .get()
        })
        .sum();
    Ok(Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "edge_sessions": switchyard_telemetry::EDGE_SESSIONS.get(),
        "edge_links": switchyard_telemetry::ROUTER_EDGE_LINKS.get(),
        "router_links_up": switchyard_telemetry::EDGE_ROUTER_LINKS.get(),
        "stanzas_routed": routed,
        "draining": admin.draining.is_cancelled(),
    }))
    .into_response())
}
