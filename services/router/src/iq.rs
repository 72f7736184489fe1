//! IQ routing (RFC 6120 §8.2.3, §10.3; RFC 6121 §8.5).
//!
//! - To the server, to no one (the sender's own account, RFC 6120 §10.3.3) or to a bare
//!   JID: answered by the server through the dispatch table, never delivered to a
//!   resource (RFC 6121 §8.5.2.1.3); results and errors to these addresses are dropped.
//! - To a full JID: delivered to that connected resource (§8.5.3.1); a request for a
//!   resource that is not connected, or for an account that does not exist, gets
//!   `service-unavailable` (§8.5.3.2.3, §8.5.1).
//! - §8.5.3.1 recommends refusing get/set to a full JID whose owner shares no presence
//!   with the sender: allowed are the same account, a contact the owner has a `from` or
//!   `both` subscription with, and an entity the resource sent directed presence to.
//!
//! No answer tells a sender that shares no presence with an account whether it exists,
//! or whether one of its resources is connected (directory harvesting, presence leaks):
//!
//! - A request for another account's bare JID is answered by the handler whether or not
//!   the account exists, and every handler serving that target answers an account that
//!   does not exist as it answers one that shares nothing with the sender: stores read
//!   nothing for an unknown account, and handlers decide from stored data and
//!   authorization, never from existence. So ping, disco#info and disco#items are
//!   `service-unavailable` (the §8.5.1 answer), a roster request `forbidden` (§2.3.3),
//!   last activity whatever XEP-0012 answers an unauthorised asker, and a vCard, public by
//!   XEP-0054, `item-not-found` when none is stored (§3.3 asks for the same error for no
//!   vCard and no account). Only an account's published vCard shows that it exists.
//! - A request for a full JID the sender may not reach is `service-unavailable` whether
//!   the resource is connected, not connected, or of no account (XEP-0199 §10 asks the
//!   server and a reticent client to answer alike), with the same storage reads in
//!   every case, so the answer's timing does not differ either.

use crate::effects::{Effect, Effects, Recipient};
use crate::handler::Outcome;
use crate::router::Router;
use std::future::Future;
use switchyard_core::{Jid, Stanza, StanzaCondition};
use switchyard_storage::SessionRecord;

/// An IQ to the server, to no one or to a bare JID: refused when either side blocks the
/// other (XEP-0191 §3.5, §3.6), else answered with `handler`'s outcome: a result, what
/// must precede and follow it, or an error. Nothing answers a response, or a request
/// without a payload (the edge refuses those).
pub(crate) async fn answer(
    router: &Router,
    stanza: &Stanza,
    handler: impl Future<Output = Outcome>,
) -> Effects {
    let to = stanza.effective_to();
    if let Some(blocked) = router.outbound_block(stanza, &to).await {
        return Effects::refused(stanza, blocked);
    }
    let other = !router.is_server(&to) && to != stanza.from.bare();
    if other && router.inbound_blocked(stanza, &to).await {
        return Effects::bounced(stanza, StanzaCondition::ServiceUnavailable);
    }
    if !stanza.is_iq_request() || stanza.payload().is_none() {
        return Effects::none();
    }
    match handler.await {
        Ok(answer) => {
            let mut fx = answer.before;
            fx.deliver_to(&stanza.from, stanza.result(answer.payload));
            for then in answer.then {
                fx.deliver_to(&stanza.from, then);
            }
            fx
        }
        Err(e) => Effects::refused(stanza, e),
    }
}

/// §8.5.3: an IQ for a full JID.
pub(crate) async fn to_resource(router: &Router, stanza: &Stanza) -> Effects {
    let to = stanza.effective_to();
    if let Some(blocked) = router.outbound_block(stanza, &to).await {
        return Effects::refused(stanza, blocked);
    }
    if router.inbound_blocked(stanza, &to).await {
        return Effects::bounced(stanza, StanzaCondition::ServiceUnavailable);
    }
    let session = router.session(&to).await;
    let mut fx = Effects::none();
    if !stanza.is_iq_request() {
        // A response goes to whoever asked; with no such session it is dropped.
        if let Some(s) = session {
            fx.deliver(&s, stanza.routed());
        }
        return fx;
    }
    // Asked before looking at the session, so that a connected resource, one that is
    // not and one of no account cost the same reads.
    let shared = shares_presence(router, stanza, &to, session.as_ref()).await;
    let refused = Effects::bounced(stanza, StanzaCondition::ServiceUnavailable);
    match session.filter(|_| shared) {
        // One that is gone by the time it is handed over is answered as one not connected.
        Some(s) => fx.push(Effect::DeliverOr {
            to: Recipient::of(&s),
            stanza: stanza.routed(),
            otherwise: refused,
        }),
        None => fx = refused,
    }
    fx
}

/// Whether the owner of `to` lets the sender reach it: the same account, a resource
/// that sent the sender directed presence, or a `from`/`both` subscription.
async fn shares_presence(
    router: &Router,
    stanza: &Stanza,
    to: &Jid,
    session: Option<&SessionRecord>,
) -> bool {
    let sender = stanza.from.bare();
    if sender == to.bare() {
        return true;
    }
    let directed =
        session.is_some_and(|s| s.directed.iter().any(|d| *d == sender || *d == stanza.from));
    let subscribed = router.shares_presence_with(&to.bare(), &sender).await;
    directed || subscribed
}

impl Router {
    /// Whether local `account` shares its presence with `asker` (a `from` or `both`
    /// subscription, RFC 6121 §3): what it takes to learn anything about the account
    /// beyond its public vCard. An account that does not exist shares nothing; storage
    /// trouble is logged and reads as nothing shared.
    pub(crate) async fn shares_presence_with(&self, account: &Jid, asker: &Jid) -> bool {
        if account == &asker.bare() {
            return true;
        }
        match self.stores.rosters.item(account, &asker.bare()).await {
            Ok(item) => item.is_some_and(|i| i.subscription.has_from()),
            Err(e) => {
                tracing::warn!(error = %e, "roster lookup failed");
                false
            }
        }
    }
}
