//! Accounts: list, create (only in a served domain), show, delete (its sessions end),
//! change the password (its FAST tokens are revoked), ban and unban.

use super::{account, bad_request, existing, not_found, ApiError, ApiResult, Authed};
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use switchyard_core::sasl::StoredCredentials;
use switchyard_core::Jid;

#[derive(Deserialize)]
pub(super) struct NewUser {
    jid: String,
    password: String,
}

#[derive(Deserialize)]
pub(super) struct Password {
    password: String,
}

#[derive(Deserialize)]
pub(super) struct BanRequest {
    #[serde(default)]
    reason: String,
}

/// The longest ban reason kept.
const MAX_REASON_BYTES: usize = 1024;

/// The SCRAM keys of a new password, derived off the async runtime (two PBKDF2 runs of
/// `scram_iterations` each).
async fn credentials(api: &super::Api, password: String) -> Result<StoredCredentials, ApiError> {
    crate::user::check_password(&password, api.min_password_chars).map_err(bad_request)?;
    let iterations = api.scram_iterations;
    tokio::task::spawn_blocking(move || StoredCredentials::from_password(&password, iterations))
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?
        .map_err(bad_request)
}

pub(super) async fn list(Authed(api): Authed) -> ApiResult {
    let jids = api.accounts.list().await?;
    Ok(Json(jids.iter().map(Jid::to_string).collect::<Vec<_>>()).into_response())
}

pub(super) async fn create(Authed(api): Authed, Json(user): Json<NewUser>) -> ApiResult {
    let jid = account(&api, &user.jid)?;
    let creds = credentials(&api, user.password).await?;
    api.accounts.create(&jid, &creds).await?;
    tracing::info!(%jid, "account created through the admin API");
    Ok((StatusCode::CREATED, jid.to_string()).into_response())
}

/// Whether the account exists (404 if not), and what an operator checks first: a ban,
/// its sessions, its offline messages.
pub(super) async fn show(Authed(api): Authed, Path(jid): Path<String>) -> ApiResult {
    let jid = existing(&api, &jid).await?;
    let ban = api.router.ban_of(&jid).await?;
    let sessions = api.router.sessions_of(&jid).await?.len();
    let (offline, offline_bytes) = api.router.offline_held(&jid).await?;
    Ok(Json(serde_json::json!({
        "jid": jid.to_string(),
        "banned": ban.map(|b| serde_json::json!({
            "reason": b.reason,
            "since": super::timestamp(b.since),
        })),
        "sessions": sessions,
        "offline_messages": offline,
        "offline_bytes": offline_bytes,
    }))
    .into_response())
}

pub(super) async fn remove(Authed(api): Authed, Path(jid): Path<String>) -> ApiResult {
    let jid = account(&api, &jid)?;
    if !api.accounts.remove(&jid).await? {
        return Err(not_found("no such account"));
    }
    // An account that is gone has no sessions: each one ends now (a session would
    // otherwise go on until it logs out, with an account that no longer exists).
    api.router.kick_account(&jid).await?;
    tracing::info!(%jid, "account deleted through the admin API; its sessions ended");
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn set_password(
    Authed(api): Authed,
    Path(jid): Path<String>,
    Json(body): Json<Password>,
) -> ApiResult {
    let jid = account(&api, &jid)?;
    let creds = credentials(&api, body.password).await?;
    let tokens = api.router.fast_tokens();
    crate::user::change_password(&*api.accounts, &tokens, &jid, &creds).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Bans an existing account (see `switchyard_router::admin`): its sessions end now and
/// it cannot bind again until unbanned.
pub(super) async fn ban(
    Authed(api): Authed,
    Path(jid): Path<String>,
    Json(body): Json<BanRequest>,
) -> ApiResult {
    let jid = account(&api, &jid)?;
    super::xml_text("reason", &body.reason)?;
    if body.reason.len() > MAX_REASON_BYTES {
        return Err(bad_request(format!(
            "the reason is longer than {MAX_REASON_BYTES} bytes"
        )));
    }
    existing(&api, &jid.to_string()).await?;
    let ended = api.router.ban(&jid, &body.reason).await?;
    Ok(Json(serde_json::json!({ "sessions_ended": ended })).into_response())
}

pub(super) async fn unban(Authed(api): Authed, Path(jid): Path<String>) -> ApiResult {
    let jid = account(&api, &jid)?;
    match api.router.unban(&jid).await? {
        true => Ok(StatusCode::NO_CONTENT.into_response()),
        false => Err(not_found("the account is not banned")),
    }
}
