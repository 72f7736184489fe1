//! XEP-0191 Blocking Command (`urn:xmpp:blocking`).
//!
//! - §3.1–§3.4: get the list; block and unblock (an empty unblock clears the list); every
//!   change is pushed to all of the user's connected resources. Blocking a contact that
//!   receives the user's presence first sends it unavailable from each available
//!   resource; unblocking sends current presence back.
//! - §3.5: nothing from a blocked entity is delivered — messages and IQ requests get
//!   `service-unavailable` (the same answer as for an unknown account, so the block is
//!   not revealed), presence is dropped.
//! - §3.6: stanzas the user sends to a blocked entity are refused with `not-acceptable`
//!   and `<blocked xmlns='urn:xmpp:blocking:errors'/>`.
//! - A list holds at most [`MAX_BLOCKED`] entries; more is `resource-constraint`.
//! - Items match like XEP-0016 §2.1: a full JID matches itself, a bare JID its resources,
//!   `domain/resource` that resource name on any account of the domain, and a domain
//!   everything on it.

use crate::effects::Effects;
use crate::handler::{storage_failed, Answer, Outcome};
use crate::router::Router;
use switchyard_core::{ns, Element, Jid, Stanza, StanzaCondition, StanzaError};

/// Entries one block list may hold (a policy limit; more is `resource-constraint`).
const MAX_BLOCKED: usize = 1000;

/// Whether block-list item `item` covers `entity`.
pub(crate) fn matches(item: &Jid, entity: &Jid) -> bool {
    match (item.local(), item.resource()) {
        (Some(_), Some(_)) => item == entity,
        (Some(_), None) => *item == entity.bare(),
        (None, Some(r)) => item.domain() == entity.domain() && entity.resource() == Some(r),
        (None, None) => item.domain() == entity.domain(),
    }
}

fn items(jids: &[Jid]) -> impl Iterator<Item = Element> + '_ {
    jids.iter()
        .map(|j| Element::new("item", ns::BLOCKING).with_attr("jid", j.to_string()))
}

impl Router {
    /// Whether local `account` blocks `entity`; storage trouble reads as not blocked.
    pub(crate) async fn blocks(&self, account: &Jid, entity: &Jid) -> bool {
        match self.stores.blocks.blocked(account).await {
            Ok(list) => list.iter().any(|item| matches(item, entity)),
            Err(e) => {
                tracing::warn!(error = %e, "block list read failed");
                false
            }
        }
    }

    /// §3.6: the sender blocks the recipient.
    pub(crate) async fn outbound_block(&self, stanza: &Stanza, to: &Jid) -> Option<StanzaError> {
        if !self.blocks(&stanza.from.bare(), to).await {
            return None;
        }
        Some(
            StanzaError::new(StanzaCondition::NotAcceptable)
                .with_app(Element::new("blocked", ns::BLOCKING_ERRORS)),
        )
    }

    /// §3.5: the local recipient blocks the sender.
    pub(crate) async fn inbound_blocked(&self, stanza: &Stanza, to: &Jid) -> bool {
        to.local().is_some() && self.blocks(&to.bare(), &stanza.from).await
    }
}

/// §3.3, §3.4: the change pushed to every connected resource of the account.
async fn pushes(router: &Router, account: &Jid, change: Element) -> Effects {
    let mut fx = Effects::none();
    for s in router.sessions(account).await.iter() {
        let push = Element::new("iq", ns::CLIENT)
            .with_attr("type", "set")
            .with_attr("id", format!("block-{}", switchyard_core::token::token(12)))
            .with_attr("to", s.jid.to_string())
            .with_child(change.clone());
        fx.deliver(s, push);
    }
    fx
}

/// Presence owed to subscribers among `jids` when their block status changes.
async fn presence_for_change(
    router: &Router,
    account: &Jid,
    jids: &[Jid],
    available: bool,
) -> Effects {
    let mut fx = Effects::none();
    for item in router.roster_rows(account).await {
        let subscriber = item.listed && item.subscription.has_from();
        if subscriber && jids.iter().any(|j| matches(j, &item.jid)) {
            fx.append(crate::presence::of_resources(router, account, &item.jid, available).await);
        }
    }
    fx
}

pub(crate) async fn list(router: &Router, stanza: &Stanza) -> Outcome {
    let jids = router
        .stores
        .blocks
        .blocked(&stanza.from.bare())
        .await
        .map_err(storage_failed("block list"))?;
    let mut list = Element::new("blocklist", ns::BLOCKING);
    for item in items(&jids) {
        list.push_child(item);
    }
    Ok(Answer::with(list))
}

pub(crate) async fn change(router: &Router, stanza: &Stanza) -> Outcome {
    let request = stanza.payload().expect("dispatched with a payload");
    let block = match request.name() {
        "block" => true,
        "unblock" => false,
        _ => return Err(StanzaError::new(StanzaCondition::BadRequest)),
    };
    let mut jids = Vec::new();
    for item in request.children() {
        let jid = item.attr("jid").and_then(|j| Jid::parse(j).ok());
        jids.push(jid.ok_or_else(|| StanzaError::new(StanzaCondition::JidMalformed))?);
    }
    let account = stanza.from.bare();
    let store = &router.stores.blocks;
    let mut pushed = Element::new(request.name(), ns::BLOCKING);
    let mut fx = Effects::none();
    if block {
        if jids.is_empty() {
            return Err(StanzaError::new(StanzaCondition::BadRequest));
        }
        let held = store
            .blocked(&account)
            .await
            .map_err(storage_failed("block list"))?;
        if held.len() + jids.len() > MAX_BLOCKED {
            let full = StanzaError::new(StanzaCondition::ResourceConstraint)
                .with_text("the block list is full");
            return Err(full);
        }
        // Decided before the block is stored: once it is, the presence would be refused.
        fx.append(presence_for_change(router, &account, &jids, false).await);
        store
            .block(&account, &jids)
            .await
            .map_err(storage_failed("block list"))?;
    } else {
        let before = store
            .blocked(&account)
            .await
            .map_err(storage_failed("block list"))?;
        store
            .unblock(&account, &jids)
            .await
            .map_err(storage_failed("block list"))?;
        let freed = if jids.is_empty() {
            before
        } else {
            jids.clone()
        };
        fx.append(presence_for_change(router, &account, &freed, true).await);
    }
    for item in items(&jids) {
        pushed.push_child(item);
    }
    fx.append(pushes(router, &account, pushed).await);
    Ok(Answer::after(fx))
}

#[cfg(test)]
mod tests {
    use super::matches;
    use switchyard_core::Jid;

    #[test]
    fn xep0016_matching_order() {
        let j = |s| Jid::parse(s).unwrap();
        let entity = j("romeo@example.net/orchard");
        assert!(matches(&j("romeo@example.net/orchard"), &entity));
        assert!(!matches(&j("romeo@example.net/balcony"), &entity));
        assert!(matches(&j("romeo@example.net"), &entity));
        assert!(matches(&j("romeo@example.net"), &j("romeo@example.net")));
        assert!(matches(&j("example.net/orchard"), &entity));
        assert!(matches(&j("example.net"), &entity));
        assert!(!matches(&j("example.org"), &entity));
        assert!(!matches(&j("juliet@example.net"), &entity));
    }
}
