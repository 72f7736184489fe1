//! XEP-0160 Best Practices for Handling Offline Messages, with XEP-0203 delay stamps.
//!
//! - §3: `normal` and `chat` messages for an account with no available resource are
//!   stored and delivered when the account next sends available presence with a
//!   non-negative priority; they are stamped with `<delay/>` from the server's domain at
//!   storage time, so the recipient sees when they were sent.
//! - Stored when there is something beyond chat states (XEP-0085 §5.5 asks servers not to
//!   store those alone), or a XEP-0334 `<store/>` hint; never with `<no-store/>`.
//! - Nothing is lost silently: a full quota (`offline_quota`) or a storage failure bounces
//!   an error to the sender.

use crate::router::Router;
use switchyard_core::{ns, time, Element, Jid, Stanza, StanzaCondition, StanzaError};
use switchyard_storage::{SessionRecord, StorageError};

const CHAT_STATES: &str = "http://jabber.org/protocol/chatstates";

fn storable(el: &Element) -> bool {
    let content = el
        .children()
        .any(|c| c.ns() != CHAT_STATES && c.ns() != ns::HINTS && !c.is("thread", ns::CLIENT));
    let wanted = content || el.child("store", ns::HINTS).is_some();
    wanted && el.child("no-store", ns::HINTS).is_none()
}

impl Router {
    pub(crate) async fn store_offline(&self, account: &Jid, stanza: Stanza) {
        if !storable(&stanza.element) {
            return;
        }
        let mut el = stanza.element.clone();
        el.push_child(
            Element::new("delay", ns::DELAY)
                .with_attr("from", account.domain())
                .with_attr("stamp", time::datetime(std::time::SystemTime::now()))
                .with_text("Offline Storage"),
        );
        let quota = switchyard_storage::OfflineQuota {
            messages: self.config.offline_quota,
            bytes: self.config.offline_quota_bytes,
        };
        let error = match self
            .stores
            .offline
            .push_within(account, &el.to_xml(""), quota)
            .await
        {
            Ok(()) => return self.catch_up(account).await,
            Err(StorageError::QuotaExceeded) => {
                StanzaError::new(StanzaCondition::ServiceUnavailable)
                    .with_text("the recipient's offline storage is full")
            }
            Err(e) => {
                tracing::warn!(error = %e, "offline storage failed");
                StanzaError::new(StanzaCondition::InternalServerError)
                    .with_text("the message could not be stored for the offline recipient")
            }
        };
        self.bounce(&stanza, error).await;
    }

    /// After a message was stored: if a resource of the account is available by now, it
    /// gets what is held at once. Its own flush, at its initial presence, may have run
    /// before this message was stored: a login racing the message, or sessions coming
    /// back after the registry lost its data (edges re-register them). The registry is
    /// read afresh, not from a cache that may predate that presence. Either this read
    /// sees the presence or that flush sees the message: the presence is recorded before
    /// its flush, and the message stored before this read.
    async fn catch_up(&self, account: &Jid) {
        self.registry.forget(account);
        let sessions = self.sessions(account).await;
        let available = sessions
            .iter()
            .filter(|s| s.priority().is_some_and(|p| p >= 0))
            .max_by_key(|s| s.priority());
        if let Some(to) = available {
            self.flush_offline(to).await;
        }
    }

    /// Delivers held messages to a resource that just became available. A message the
    /// edge can no longer take is stored again rather than dropped.
    pub(crate) async fn flush_offline(&self, to: &SessionRecord) {
        let account = to.jid.bare();
        let held = match self.stores.offline.take(&account).await {
            Ok(held) => held,
            Err(e) => return tracing::warn!(error = %e, "offline fetch failed"),
        };
        for text in held {
            let Ok(el) = Element::parse(&text) else {
                tracing::warn!(%account, "dropping an unreadable stored message");
                continue;
            };
            if self.send(to, el).await {
                switchyard_telemetry::ROUTER_OFFLINE_DELIVERED.inc();
            } else {
                let quota = usize::MAX;
                if let Err(e) = self.stores.offline.push(&account, &text, quota).await {
                    tracing::warn!(error = %e, %account, "could not re-store an offline message");
                }
            }
        }
    }
}
