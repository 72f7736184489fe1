//! Sessions and messages: an account's sessions, the cluster-wide listing (paged, by
//! domain, from the session registry), kicking a session or every session of an
//! account, a message from the server to one user, an announcement to everyone online
//! (in one domain or all), and stats.

use super::{
    account, bad_request, existing, not_found, served_domain, xml_text, ApiResult, Authed,
};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use switchyard_core::{ns, Element, Jid};

/// Sessions per page of the listing when the request names no `limit`, and the most.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// An account's sessions; its existence is not required, so sessions that outlived
/// their account (removed without the admin API) can still be seen and ended.
pub(super) async fn of_user(Authed(api): Authed, Path(jid): Path<String>) -> ApiResult {
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

/// Ends every session of the account (it may log in again at once; a ban stops that).
pub(super) async fn kick_user(Authed(api): Authed, Path(jid): Path<String>) -> ApiResult {
    let jid = account(&api, &jid)?;
    let ended = api.router.kick_account(&jid).await?;
    tracing::info!(%jid, ended, "sessions of an account kicked by an administrator");
    Ok(Json(serde_json::json!({ "sessions_ended": ended })).into_response())
}

#[derive(Deserialize)]
pub(super) struct Page {
    domain: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/v1/sessions?domain=&limit=&cursor=`: one page of the sessions bound anywhere
/// in the cluster; `next` is the cursor of the following page, `null` after the last.
pub(super) async fn online(Authed(api): Authed, Query(page): Query<Page>) -> ApiResult {
    let limit = page.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(bad_request(format!("limit is 1 to {MAX_PAGE}")));
    }
    let domain = page.domain.map(|d| served_domain(&api, &d)).transpose()?;
    let found = api
        .router
        .online(domain.as_deref(), page.cursor.as_deref(), limit)
        .await?;
    let sessions: Vec<serde_json::Value> = found
        .sessions
        .iter()
        .map(|s| serde_json::json!({ "jid": s.jid.to_string(), "edge": s.edge, "conn": s.conn }))
        .collect();
    Ok(Json(serde_json::json!({ "sessions": sessions, "next": found.next })).into_response())
}

/// `DELETE /api/v1/sessions/{full JID}`: the JID as it is (a `/` in the resource needs
/// no escaping; percent-encoding works too).
pub(super) async fn kick(Authed(api): Authed, Path(jid): Path<String>) -> ApiResult {
    let jid = Jid::parse(&jid).map_err(bad_request)?;
    if jid.is_bare() {
        return Err(bad_request(
            "a session is a full JID; DELETE /api/v1/users/{jid}/sessions ends all of an account's",
        ));
    }
    match api.router.kick(&jid).await? {
        true => Ok(StatusCode::NO_CONTENT.into_response()),
        false => Err(not_found("no such session")),
    }
}

#[derive(Deserialize)]
pub(super) struct Message {
    to: String,
    body: String,
    subject: Option<String>,
    /// `normal` (the default) or `chat`.
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// `POST /api/v1/messages`: a message from the user's domain to one user (a bare JID:
/// delivered, or stored offline; a full JID: that session).
pub(super) async fn message(Authed(api): Authed, Json(m): Json<Message>) -> ApiResult {
    let to = Jid::parse(&m.to).map_err(bad_request)?;
    existing(&api, &to.bare().to_string()).await?;
    let kind = m.kind.as_deref().unwrap_or("normal");
    if !matches!(kind, "normal" | "chat") {
        return Err(bad_request("type is normal or chat"));
    }
    xml_text("body", &m.body)?;
    let mut el = Element::new("message", ns::CLIENT)
        .with_attr("type", kind)
        .with_attr("from", to.domain())
        .with_attr("to", to.to_string())
        .with_attr("id", switchyard_core::token::token(12));
    if let Some(subject) = &m.subject {
        xml_text("subject", subject)?;
        el.push_child(Element::new("subject", ns::CLIENT).with_text(subject.as_str()));
    }
    el.push_child(Element::new("body", ns::CLIENT).with_text(m.body.as_str()));
    api.router.send_from_server(el).await?;
    tracing::info!(%to, "message sent through the admin API");
    Ok(StatusCode::ACCEPTED.into_response())
}

#[derive(Deserialize)]
pub(super) struct Announcement {
    /// One served domain; every one when absent.
    domain: Option<String>,
    subject: Option<String>,
    body: String,
}

/// `POST /api/v1/announcements`: a headline to every session online (in `domain`).
pub(super) async fn announce(Authed(api): Authed, Json(a): Json<Announcement>) -> ApiResult {
    xml_text("body", &a.body)?;
    if let Some(subject) = &a.subject {
        xml_text("subject", subject)?;
    }
    let domain = a.domain.map(|d| served_domain(&api, &d)).transpose()?;
    let sent = api
        .router
        .announce(domain.as_deref(), a.subject.as_deref(), &a.body)
        .await?;
    Ok(Json(serde_json::json!({ "sent": sent })).into_response())
}

pub(super) async fn stats(State(admin): State<super::Admin>, Authed(api): Authed) -> ApiResult {
    let routed = switchyard_telemetry::ROUTER_STANZAS_BY_KIND.total();
    Ok(Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "sessions_online": api.router.online_count().await?,
        "edge_sessions": switchyard_telemetry::EDGE_SESSIONS.get(),
        "edge_links": switchyard_telemetry::ROUTER_EDGE_LINKS.get(),
        "router_links_up": switchyard_telemetry::EDGE_ROUTER_LINKS.get(),
        "stanzas_routed": routed,
        "draining": admin.draining.is_cancelled(),
    }))
    .into_response())
}
