//! XEP-0012 Last Activity.
//!
//! - §5: to the server, `seconds` is the uptime.
//! - §3: to an account's bare JID, answered for the account: `seconds='0'` while it has
//!   an available resource, otherwise the time since its last resource went unavailable
//!   with that presence's status; never logged out is `item-not-found`. Only the owner
//!   and contacts with a `from` or `both` subscription may ask; others get `forbidden`.
//!   The time is recorded when the last available resource goes away.

use crate::handler::{storage_failed, Answer, Outcome};
use crate::router::Router;
use std::time::{SystemTime, UNIX_EPOCH};
use switchyard_core::{ns, Element, Jid, Stanza, StanzaCondition, StanzaError};

const KEY: &str = "last";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn query(seconds: u64, status: String) -> Element {
    Element::new("query", ns::LAST)
        .with_attr("seconds", seconds.to_string())
        .with_text(status)
}

impl Router {
    /// Keeps when the account went offline and the status it left with.
    pub(crate) async fn record_last_activity(&self, account: &Jid, unavailable: &Element) {
        let status = unavailable
            .child("status", ns::CLIENT)
            .map(Element::text)
            .unwrap_or_default();
        let doc = query(now(), status).to_xml("");
        if let Err(e) = self.stores.documents.put(account, KEY, Some(&doc)).await {
            tracing::warn!(error = %e, "last activity not recorded");
        }
    }
}

pub(crate) async fn get(router: &Router, stanza: &Stanza) -> Outcome {
    let to = stanza.effective_to();
    if router.is_server(&to) {
        return Ok(Answer::with(query(
            router.started.elapsed().as_secs(),
            String::new(),
        )));
    }
    let asker = stanza.from.bare();
    if asker != to {
        let item = router
            .stores
            .rosters
            .item(&to, &asker)
            .await
            .map_err(storage_failed("last activity"))?;
        if !item.is_some_and(|i| i.subscription.has_from()) {
            return Err(StanzaError::new(StanzaCondition::Forbidden));
        }
    }
    if router
        .sessions(&to)
        .await
        .iter()
        .any(|s| s.presence.is_some())
    {
        return Ok(Answer::with(query(0, String::new())));
    }
    let stored = router
        .stores
        .documents
        .get(&to, KEY)
        .await
        .map_err(storage_failed("last activity"))?;
    let record = stored.and_then(|s| Element::parse(&s).ok());
    let Some(record) = record else {
        return Err(StanzaError::new(StanzaCondition::ItemNotFound));
    };
    let at: u64 = record
        .attr("seconds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(Answer::with(query(now().saturating_sub(at), record.text())))
}
