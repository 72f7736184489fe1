//! Carrying out subscription transitions: the user's side, then the contact's side, with
//! the roster pushes (§2.1.6) and presence (§3.1.5, §3.2.2, §3.3.3) each step owes.

use super::{inbound, outbound, visible_change, Deliver, Kind};
use crate::router::Router;
use std::future::Future;
use std::pin::Pin;
use switchyard_core::{ns, Element, Jid, Stanza, StanzaCondition};
use switchyard_storage::{RosterUpdate, StorageError};

impl Router {
    /// An outbound subscription stanza from a session (RFC 6121 §3.1.2, §3.1.5, §3.2.2,
    /// §3.3.2): addressed to the contact's bare JID and stamped with the user's.
    pub(crate) async fn route_subscription(&self, stanza: Stanza, kind: Kind) {
        let user = stanza.from.bare();
        let contact = stanza.effective_to().bare();
        if !self.is_local(&contact) {
            return self.bounce_remote(&stanza).await;
        }
        if contact == user || contact.local().is_none() {
            return;
        }
        if let Some(blocked) = self.outbound_block(&stanza, &contact).await {
            return self.bounce(&stanza, blocked).await;
        }
        let exists = match self.account_exists(&contact).await {
            Ok(true) => true,
            // A request to a local account that does not exist is refused where accounts
            // are not hidden (`unknown_account_messages`, see `message.rs`). Hidden, it
            // is taken like one an existing contact never answers (the user's roster shows
            // it pending), and nothing is routed: §8.5.1 lets presence to an account that
            // does not exist be silently ignored, and no answer tells whether it exists.
            Ok(false) if kind == Kind::Subscribe && self.hides_accounts() => false,
            Ok(false) if kind == Kind::Subscribe => {
                return self
                    .bounce_with(&stanza, StanzaCondition::ItemNotFound)
                    .await
            }
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = %e, "account lookup failed");
                return self
                    .bounce_with(&stanza, StanzaCondition::InternalServerError)
                    .await;
            }
        };
        let c = contact.clone();
        let edit = Box::new(move |row: Option<_>| outbound(row.as_ref(), &c, kind).0);
        let update = match self.stores.rosters.update(&user, &contact, edit).await {
            Ok(update) => update,
            Err(e) => {
                tracing::warn!(error = %e, "roster update failed");
                return self
                    .bounce_with(&stanza, StanzaCondition::InternalServerError)
                    .await;
            }
        };
        let (_, fx) = outbound(update.before.as_ref(), &contact, kind);
        if fx.unavailable_first {
            self.presence_of_resources(&user, &contact, false).await;
        }
        // Pushed before routing: a local contact's automatic answer changes the row
        // again, and its push must come last.
        self.push_if_visible(&user, &update).await;
        if fx.route && exists {
            let mut el = stanza.element;
            el.set_attr("from", user.to_string());
            el.set_attr("to", contact.to_string());
            self.inbound_subscription(el, kind, &user, &contact).await;
        }
        if fx.presence_after {
            self.presence_of_resources(&user, &contact, true).await;
        }
    }

    /// The contact's side (Appendix A.3) of a stanza from `from` to local account `to`.
    /// Boxed because an automatic `subscribed` reply is handled by the same function.
    fn inbound_subscription<'a>(
        &'a self,
        el: Element,
        kind: Kind,
        from: &'a Jid,
        to: &'a Jid,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            if self.blocks(to, from).await {
                return; // XEP-0191 §3.5: presence from a blocked entity is dropped.
            }
            let request = el.to_xml("");
            let (f, r) = (from.clone(), request.clone());
            let edit = Box::new(move |row: Option<_>| inbound(row.as_ref(), &f, kind, &r).0);
            let update = match self.stores.rosters.update(to, from, edit).await {
                Ok(update) => update,
                Err(StorageError::NotFound) => return,
                Err(e) => return tracing::warn!(error = %e, "roster update failed"),
            };
            let (_, fx) = inbound(update.before.as_ref(), from, kind, &request);
            let sessions = self.sessions(to).await;
            for s in &sessions {
                let wanted = match fx.deliver {
                    Deliver::Nobody => false,
                    Deliver::Available => s.presence.is_some(),
                    Deliver::Interested => s.interested,
                };
                if wanted {
                    self.send(s, el.clone()).await;
                }
            }
            self.push_if_visible(to, &update).await;
            if fx.unavailable_back {
                self.presence_of_resources(to, from, false).await;
            }
            if fx.auto_subscribed {
                let reply = Element::new("presence", ns::CLIENT)
                    .with_attr("from", to.to_string())
                    .with_attr("to", from.to_string())
                    .with_attr("type", Kind::Subscribed.as_str());
                self.inbound_subscription(reply, Kind::Subscribed, to, from)
                    .await;
                self.presence_of_resources(to, from, true).await;
            }
        })
    }

    async fn push_if_visible(&self, account: &Jid, update: &RosterUpdate) {
        if let Some(after) = &update.after {
            if visible_change(update.before.as_ref(), after) {
                self.push_roster(account, after).await;
            }
        }
    }
}
