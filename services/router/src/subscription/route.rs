//! Subscription transitions as effects: the user's side, then the contact's side, with
//! the roster pushes (§2.1.6) and presence (§3.1.5, §3.2.2, §3.3.3) each step owes. The
//! roster rows change as the transitions are decided (each an atomic edit whose before
//! and after decide what is owed); the stanzas owed are effects.

use super::{inbound, outbound, visible_change, Deliver, Kind};
use crate::effects::Effects;
use crate::presence::of_resources;
use crate::router::Router;
use std::future::Future;
use std::pin::Pin;
use switchyard_core::{ns, Element, Jid, Stanza, StanzaCondition};
use switchyard_storage::{RosterItem, RosterUpdate, SessionRecord, StorageError};

/// The row for subscription stanzas from a session (RFC 6121 §3.1.2, §3.1.5, §3.2.2,
/// §3.3.2): addressed to the contact's bare JID and stamped with the user's.
pub(crate) async fn route(router: &Router, stanza: &Stanza) -> Effects {
    let Some(kind) = stanza.type_attr().and_then(Kind::parse) else {
        return Effects::bounced(stanza, StanzaCondition::BadRequest);
    };
    let user = stanza.from.bare();
    let contact = stanza.effective_to().bare();
    if contact == user || contact.local().is_none() {
        return Effects::none();
    }
    if let Some(blocked) = router.outbound_block(stanza, &contact).await {
        return Effects::refused(stanza, blocked);
    }
    let exists = match router.account_exists(&contact).await {
        Ok(true) => true,
        // A request to a local account that does not exist is refused where accounts
        // are not hidden (`unknown_account_messages`, see `message.rs`). Hidden, it
        // is taken like one an existing contact never answers (the user's roster shows
        // it pending), and nothing is routed: §8.5.1 lets presence to an account that
        // does not exist be silently ignored, and no answer tells whether it exists.
        Ok(false) if kind == Kind::Subscribe && router.hides_accounts() => false,
        Ok(false) if kind == Kind::Subscribe => {
            return Effects::bounced(stanza, StanzaCondition::ItemNotFound)
        }
        Ok(false) => return Effects::none(),
        Err(e) => {
            tracing::warn!(error = %e, "account lookup failed");
            return Effects::bounced(stanza, StanzaCondition::InternalServerError);
        }
    };
    let c = contact.clone();
    let edit = Box::new(move |row: Option<_>| outbound(row.as_ref(), &c, kind).0);
    let update = match router.stores.rosters.update(&user, &contact, edit).await {
        Ok(update) => update,
        Err(e) => {
            tracing::warn!(error = %e, "roster update failed");
            return Effects::bounced(stanza, StanzaCondition::InternalServerError);
        }
    };
    let (_, outcome) = outbound(update.before.as_ref(), &contact, kind);
    let mut fx = Effects::none();
    if outcome.unavailable_first {
        fx.append(of_resources(router, &user, &contact, false).await);
    }
    // Pushed before routing: a local contact's automatic answer changes the row
    // again, and its push must come last.
    fx.append(pushes_if_visible(router, &user, &update).await);
    if outcome.route && exists {
        let mut el = stanza.element().clone();
        el.set_attr("from", user.to_string());
        el.set_attr("to", contact.to_string());
        fx.append(inbound_side(router, el, kind, &user, &contact).await);
    }
    if outcome.presence_after {
        fx.append(of_resources(router, &user, &contact, true).await);
    }
    fx
}

/// §3.1.3: subscription requests still pending, for a resource that became available.
pub(crate) fn pending_requests(me: &SessionRecord, roster: &[RosterItem]) -> Effects {
    let mut fx = Effects::none();
    for pending in roster.iter().filter_map(|i| i.pending_in.as_deref()) {
        if let Ok(el) = Element::parse(pending) {
            fx.deliver(me, el);
        }
    }
    fx
}

/// The contact's side (Appendix A.3) of a stanza from `from` to local account `to`.
/// Boxed because an automatic `subscribed` reply is handled by the same function.
fn inbound_side<'a>(
    router: &'a Router,
    el: Element,
    kind: Kind,
    from: &'a Jid,
    to: &'a Jid,
) -> Pin<Box<dyn Future<Output = Effects> + Send + 'a>> {
    Box::pin(async move {
        let mut fx = Effects::none();
        if router.blocks(to, from).await {
            return fx; // XEP-0191 §3.5: presence from a blocked entity is dropped.
        }
        let request = el.to_xml("");
        let (f, r) = (from.clone(), request.clone());
        let edit = Box::new(move |row: Option<_>| inbound(row.as_ref(), &f, kind, &r).0);
        let update = match router.stores.rosters.update(to, from, edit).await {
            Ok(update) => update,
            Err(StorageError::NotFound) => return fx,
            Err(e) => {
                tracing::warn!(error = %e, "roster update failed");
                return fx;
            }
        };
        let (_, outcome) = inbound(update.before.as_ref(), from, kind, &request);
        // Read afresh: a contact's initial presence handled by another router at this
        // moment reads the roster after recording itself, so one of the two sees the
        // other, and the request is delivered now or replayed by that presence (§3.1.3).
        for s in router.fresh_sessions(to).await.iter() {
            let wanted = match outcome.deliver {
                Deliver::Nobody => false,
                Deliver::Available => s.presence.is_some(),
                Deliver::Interested => s.interested,
            };
            if wanted {
                fx.deliver(s, el.clone());
            }
        }
        fx.append(pushes_if_visible(router, to, &update).await);
        if outcome.unavailable_back {
            fx.append(of_resources(router, to, from, false).await);
        }
        if outcome.auto_subscribed {
            let reply = Element::new("presence", ns::CLIENT)
                .with_attr("from", to.to_string())
                .with_attr("to", from.to_string())
                .with_attr("type", Kind::Subscribed.as_str());
            fx.append(inbound_side(router, reply, Kind::Subscribed, to, from).await);
            fx.append(of_resources(router, to, from, true).await);
        }
        fx
    })
}

async fn pushes_if_visible(router: &Router, account: &Jid, update: &RosterUpdate) -> Effects {
    match &update.after {
        Some(after) if visible_change(update.before.as_ref(), after) => {
            crate::roster::pushes(router, account, after).await
        }
        _ => Effects::none(),
    }
}
