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

use crate::dispatch::{self, Target};
use crate::router::Router;
use switchyard_core::{Jid, Stanza, StanzaCondition};
use switchyard_storage::SessionRecord;

impl Router {
    pub(crate) async fn route_iq(&self, stanza: Stanza) {
        let to = stanza.effective_to();
        if !self.is_local(&to) {
            return self.bounce_remote(&stanza).await;
        }
        if let Some(blocked) = self.outbound_block(&stanza, &to).await {
            return self.bounce(&stanza, blocked).await;
        }
        let target = if self.is_server(&to) {
            Some(Target::Server)
        } else if to == stanza.from.bare() {
            Some(Target::Own)
        } else if to.is_bare() {
            Some(Target::Other)
        } else {
            None
        };
        let Some(target) = target else {
            return self.route_iq_to_resource(stanza, to).await;
        };
        // XEP-0191 §3.5: a blocked sender's requests get `service-unavailable`.
        if target == Target::Other && self.inbound_blocked(&stanza, &to).await {
            return self
                .bounce_with(&stanza, StanzaCondition::ServiceUnavailable)
                .await;
        }
        if stanza.is_iq_request() {
            for reply in dispatch::answer(self, &stanza, target).await {
                self.send_to(&stanza.from, reply).await;
            }
        }
    }

    /// §8.5.3: an IQ for a full JID.
    async fn route_iq_to_resource(&self, stanza: Stanza, to: Jid) {
        if self.inbound_blocked(&stanza, &to).await {
            return self
                .bounce_with(&stanza, StanzaCondition::ServiceUnavailable)
                .await;
        }
        let session = self
            .sessions(&to.bare())
            .await
            .into_iter()
            .find(|s| s.jid == to);
        if !stanza.is_iq_request() {
            // A response goes to whoever asked; with no such session it is dropped.
            if let Some(s) = session {
                self.send(&s, stanza.element).await;
            }
            return;
        }
        // Asked before looking at the session, so that a connected resource, one that is
        // not and one of no account cost the same reads.
        let shared = self.shares_presence(&stanza, &to, session.as_ref()).await;
        if let Some(s) = session.filter(|_| shared) {
            if self.send(&s, stanza.element.clone()).await {
                return;
            }
        }
        self.bounce_with(&stanza, StanzaCondition::ServiceUnavailable)
            .await
    }

    /// Whether the owner of `to` lets the sender reach it: the same account, a resource
    /// that sent the sender directed presence, or a `from`/`both` subscription.
    async fn shares_presence(
        &self,
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
        let subscribed = self.shares_presence_with(&to.bare(), &sender).await;
        directed || subscribed
    }

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
