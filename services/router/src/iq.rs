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

use crate::dispatch::{self, Target};
use crate::router::Router;
use switchyard_core::{Stanza, StanzaCondition};

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
        if let Some(target) = target {
            if target == Target::Other && !self.reachable_account(&stanza, &to).await {
                return;
            }
            if stanza.is_iq_request() {
                for reply in dispatch::answer(self, &stanza, target).await {
                    self.send_to(&stanza.from, reply).await;
                }
            }
            return;
        }
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
        match session {
            Some(s) if !stanza.is_iq_request() || self.shares_presence(&stanza, &s).await => {
                self.send(&s, stanza.element).await;
            }
            _ => {
                self.bounce_with(&stanza, StanzaCondition::ServiceUnavailable)
                    .await
            }
        }
    }

    /// An IQ to another account's bare JID: the account must exist and not block the
    /// sender (XEP-0191 §3.5); otherwise the sender gets `service-unavailable`.
    async fn reachable_account(&self, stanza: &Stanza, to: &switchyard_core::Jid) -> bool {
        let exists = match self.account_exists(to).await {
            Ok(exists) => exists,
            Err(e) => {
                tracing::warn!(error = %e, "account lookup failed");
                self.bounce_with(stanza, StanzaCondition::InternalServerError)
                    .await;
                return false;
            }
        };
        if !exists || self.inbound_blocked(stanza, to).await {
            self.bounce_with(stanza, StanzaCondition::ServiceUnavailable)
                .await;
            return false;
        }
        true
    }

    async fn shares_presence(
        &self,
        stanza: &Stanza,
        to: &switchyard_storage::SessionRecord,
    ) -> bool {
        let sender = stanza.from.bare();
        if sender == to.jid.bare()
            || to
                .directed
                .iter()
                .any(|d| *d == sender || *d == stanza.from)
        {
            return true;
        }
        match self.stores.rosters.item(&to.jid.bare(), &sender).await {
            Ok(item) => item.is_some_and(|i| i.subscription.has_from()),
            Err(e) => {
                tracing::warn!(error = %e, "roster lookup failed");
                false
            }
        }
    }
}
