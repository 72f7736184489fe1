//! What an account holds: its roster (RFC 6121 §2, edited as the user would be, pushes
//! included), its offline messages (XEP-0160: count, purge) and its XEP-0484 FAST
//! tokens (list, revoke).

use super::{bad_request, existing, not_found, xml_text, ApiResult, Authed};
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use switchyard_core::Jid;
use switchyard_router::admin::RosterEntry;
use switchyard_storage::Subscription;

#[derive(Deserialize)]
pub(super) struct RosterBody {
    name: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    subscription: Option<String>,
}

pub(super) async fn roster(Authed(api): Authed, Path(jid): Path<String>) -> ApiResult {
    let jid = existing(&api, &jid).await?;
    let items = api.router.roster_of(&jid).await?;
    let view: Vec<serde_json::Value> = items
        .iter()
        .map(|i| {
            serde_json::json!({
                "jid": i.jid.to_string(),
                "name": i.name,
                "groups": i.groups,
                "subscription": i.subscription.as_str(),
                "ask": i.ask,
            })
        })
        .collect();
    Ok(Json(view).into_response())
}

fn contact(jid: &str) -> Result<Jid, super::ApiError> {
    let contact = Jid::parse(jid).map_err(bad_request)?;
    if !contact.is_bare() {
        return Err(bad_request("a roster contact is a bare JID"));
    }
    Ok(contact)
}

pub(super) async fn roster_set(
    Authed(api): Authed,
    Path((jid, who)): Path<(String, String)>,
    Json(body): Json<RosterBody>,
) -> ApiResult {
    let jid = existing(&api, &jid).await?;
    for text in body.name.iter().chain(&body.groups) {
        xml_text("roster name or group", text)?;
    }
    let subscription = match body.subscription.as_deref() {
        None => None,
        Some(s) => Some(
            Subscription::parse(s)
                .ok_or_else(|| bad_request("subscription is one of none, to, from, both"))?,
        ),
    };
    let entry = RosterEntry {
        contact: contact(&who)?,
        name: body.name.filter(|n| !n.is_empty()),
        groups: body.groups,
        subscription,
    };
    api.router.roster_set(&jid, entry).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn roster_remove(
    Authed(api): Authed,
    Path((jid, who)): Path<(String, String)>,
) -> ApiResult {
    let jid = existing(&api, &jid).await?;
    api.router.roster_remove(&jid, &contact(&who)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn offline(Authed(api): Authed, Path(jid): Path<String>) -> ApiResult {
    let jid = existing(&api, &jid).await?;
    let (messages, bytes) = api.router.offline_held(&jid).await?;
    Ok(Json(serde_json::json!({ "messages": messages, "bytes": bytes })).into_response())
}

pub(super) async fn offline_purge(Authed(api): Authed, Path(jid): Path<String>) -> ApiResult {
    let jid = existing(&api, &jid).await?;
    let purged = api.router.offline_purge(&jid).await?;
    Ok(Json(serde_json::json!({ "purged": purged })).into_response())
}

/// XEP-0484: the clients holding FAST tokens for the account (no secret shown).
pub(super) async fn fast_tokens(Authed(api): Authed, Path(jid): Path<String>) -> ApiResult {
    let jid = existing(&api, &jid).await?;
    let clients = api.router.fast_tokens().list(&jid).await?;
    let view: Vec<serde_json::Value> = clients
        .iter()
        .map(|c| {
            serde_json::json!({
                "client": c.user_agent,
                "label": c.label,
                "mechanism": c.mechanism,
                "issued": super::timestamp(c.issued),
                "expires": super::timestamp(c.expires),
            })
        })
        .collect();
    Ok(Json(view).into_response())
}

/// Revokes every FAST token of the account: its clients log in with the password next.
pub(super) async fn revoke_fast_tokens(Authed(api): Authed, Path(jid): Path<String>) -> ApiResult {
    let jid = existing(&api, &jid).await?;
    let revoked = api.router.fast_tokens().revoke(&jid, None).await?;
    tracing::info!(%jid, revoked, "FAST tokens revoked through the admin API");
    Ok(Json(serde_json::json!({ "revoked": revoked })).into_response())
}

/// Revokes one client's FAST tokens (the client as `GET …/fast-tokens` names it).
pub(super) async fn revoke_fast_client(
    Authed(api): Authed,
    Path((jid, client)): Path<(String, String)>,
) -> ApiResult {
    let jid = existing(&api, &jid).await?;
    match api.router.fast_tokens().revoke(&jid, Some(&client)).await? {
        0 => Err(not_found("no tokens for this client")),
        _ => {
            tracing::info!(%jid, %client, "FAST tokens of one client revoked through the admin API");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
    }
}
