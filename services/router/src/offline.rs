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
//!
//! # Held and live messages in one order
//!
//! A sender's messages reach the recipient in the order sent, whether they were held or
//! live, and a message stored while its recipient logs in reaches that session. Two
//! pieces of per-account state in the session registry make it so:
//!
//! - The offline-pending count. Storing is: append to the offline store, *then* count
//!   ([`SessionRegistry::add_pending`]). A message reads the count together with the
//!   recipient's sessions ([`SessionRegistry::lookup`], cached with them, so a steady
//!   conversation pays nothing for it). While the count is not zero, a `chat` or `normal`
//!   message that would be stored is stored behind the held ones, for the flush to
//!   deliver, instead of overtaking them live: to the bare JID, and to a full JID as well
//!   (see `message.rs`: a resource that bound but has not yet sent the initial presence
//!   that flushes would otherwise get newer messages first). Messages that are never
//!   stored (headlines, chat states alone, `<no-store/>`) are still delivered live: they
//!   have no place in the queue.
//! - The flush lock: one flusher per account at a time, whatever triggered it (initial
//!   presence, the catch-up after a store, a session restored after a registry rebuild).
//!   The holder loops: read the count `c`; take everything held and deliver it in order,
//!   each batch awaited (an edge answers once the stanzas are written); clear the count
//!   if it still equals `c` (one atomic compare-and-delete). If it changed, something was
//!   counted meanwhile: another round. A flusher that finds the lock taken just returns:
//!   the holder will see the count change and take what was added.
//!
//! Why a live message that reads "nothing pending" comes after every stored one: a
//! message is appended before it is counted; only the lock holder clears the count, so
//! between the holder's read of `c` and a successful clear the count did not move, and
//! every message counted before the clear was counted before that read; the read
//! precedes the take. So everything counted before the clear was taken, and written to
//! the client, before the count was cleared. A sender's stanzas are routed one at a time
//! by one router, which reads its own registry writes (the cache drops the account's
//! entry on them), so its next message either sees the count and queues behind, or sees
//! it cleared after its stored message was written.
//!
//! What remains:
//! - A flusher that crashes holds the lock until [`FLUSH_LOCK_TTL`] and leaves the count
//!   set: messages keep queueing, and the first store or login after the TTL flushes
//!   them all in order. A long flush renews its lock every [`RENEW_EVERY`] messages; one
//!   that still outlives it (an edge stalled for the whole TTL) may overlap the next
//!   flusher.
//! - After [`FLUSH_ROUNDS`] rounds (senders kept adding) the holder lets go with the count
//!   set: the next message stored starts a new flush.
//! - A message the session no longer takes is stored again with the rest of its round,
//!   in order, and counted; they wait for the next store or login (the session they were
//!   for is gone). They are appended, so anything stored since their take comes first:
//!   putting them back in front would need a store operation for it.
//! - The count lives in the registry: if Redis loses its data, held messages still come
//!   at the next flush, but live ones may overtake them until then. The same holds for a
//!   message whose counting failed (logged).
//! - Another router's cache hears of a count through pub/sub, a little later: in that
//!   window only another sender's live message can overtake a held one.

use crate::effects::{Effects, Recipient};
use crate::message::MessageType;
use crate::router::Router;
use std::time::Duration;
use switchyard_core::{
    ns, time, Element, Jid, Limits, Routed, Stanza, StanzaCondition, StanzaError,
};
use switchyard_storage::StorageError;

const CHAT_STATES: &str = "http://jabber.org/protocol/chatstates";

/// How long a flush lock lasts unless its holder renews it: how long a crashed flusher
/// delays the next flush.
const FLUSH_LOCK_TTL: Duration = Duration::from_secs(30);
/// Rounds one flusher makes while senders keep adding, before it leaves the rest to the
/// next trigger.
const FLUSH_ROUNDS: usize = 16;
/// Messages delivered between two renewals of the flush lock.
const RENEW_EVERY: usize = 64;

fn storable(el: &Element) -> bool {
    let content = el
        .children()
        .any(|c| c.ns() != CHAT_STATES && c.ns() != ns::HINTS && !c.is("thread", ns::CLIENT));
    let wanted = content || el.child("store", ns::HINTS).is_some();
    wanted && el.child("no-store", ns::HINTS).is_none()
}

/// Whether a message routed as to the bare JID must be stored behind the held ones
/// instead of delivered live: something is pending, and the message is one that would
/// be stored (see the module doc).
pub(crate) fn behind_held(stanza: &Stanza, kind: MessageType, pending: u64) -> bool {
    pending > 0
        && matches!(kind, MessageType::Normal | MessageType::Chat)
        && storable(stanza.element())
}

impl Router {
    pub(crate) async fn store_offline(&self, account: &Jid, stanza: Stanza) {
        if !storable(stanza.element()) {
            return;
        }
        let mut el = stanza.element().clone();
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
            Ok(()) => {
                switchyard_telemetry::ROUTER_OFFLINE_STORED.inc();
                self.count_pending(account).await;
                let pushed = crate::hooks::message_stored(self, account, &stanza).await;
                Box::pin(self.apply(pushed)).await;
                return self.catch_up(account).await;
            }
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
        let mut fx = Effects::none();
        fx.bounce(&stanza, error);
        self.apply(fx).await;
    }

    /// Counts messages just stored, so that live ones queue behind them.
    async fn count_pending(&self, account: &Jid) {
        if let Err(e) = self.registry.add_pending(account).await {
            tracing::warn!(error = %e, %account, "could not count a stored message; later live messages may overtake it");
        }
    }

    /// After a message was stored: if a resource of the account is available by now, it
    /// gets what is held at once. Its own flush, at its initial presence, may have run
    /// before this message was stored: a login racing the message, or sessions coming
    /// back after the registry lost its data (edges re-register them). The registry is
    /// read afresh, not from a cache that may predate that presence. Either this read
    /// sees the presence or that flush sees the message: the presence is recorded before
    /// its flush, and the message stored before this read. A flush still running takes
    /// the message itself (the count changed under it).
    async fn catch_up(&self, account: &Jid) {
        let sessions = self.fresh_sessions(account).await;
        let available = sessions
            .iter()
            .filter(|s| s.priority().is_some_and(|p| p >= 0))
            .max_by_key(|s| s.priority());
        if let Some(to) = available {
            self.flush_offline(&Recipient::of(to)).await;
        }
    }

    /// Delivers held messages to an available resource, in order, as the one flusher of
    /// the account (see the module doc); returns at once if another flusher runs.
    pub(crate) async fn flush_offline(&self, to: &Recipient) {
        // A session whose edge is out of reach (dead, say, and its session kept for a
        // resumption elsewhere, XEP-0198) would fail the whole flush, and what it took
        // would go back behind what was stored meanwhile. It stays put, in order, for
        // the session's next flush.
        if !self.edges.reachable(&to.edge) {
            return;
        }
        let account = to.jid.bare();
        let holder = switchyard_core::token::token(16);
        match self
            .registry
            .lock_flush(&account, &holder, FLUSH_LOCK_TTL)
            .await
        {
            Ok(true) => {}
            Ok(false) => return, // the holder sees the count change
            Err(e) => {
                tracing::warn!(error = %e, %account, "no flush lock; flushing without it");
            }
        }
        self.flush_rounds(to, &account, &holder).await;
        if let Err(e) = self.registry.unlock_flush(&account, &holder).await {
            tracing::warn!(error = %e, %account, "flush lock not released; it expires");
        }
    }

    async fn flush_rounds(&self, to: &Recipient, account: &Jid, holder: &str) {
        for _ in 0..FLUSH_ROUNDS {
            let seen = self.registry.pending(account).await;
            let held = match self.stores.offline.take(account).await {
                Ok(held) => held,
                Err(e) => return tracing::warn!(error = %e, "offline fetch failed"),
            };
            if !self.deliver_held(to, account, holder, held).await {
                return;
            }
            let cleared = match seen {
                Ok(seen) => self.registry.clear_pending(account, seen).await,
                Err(e) => Err(e),
            };
            match cleared {
                Ok(true) => return,
                Ok(false) => {} // counted meanwhile: take again
                Err(e) => {
                    return tracing::warn!(error = %e, %account, "offline count unreadable; it stays for the next flush")
                }
            }
        }
        tracing::info!(%account, "offline flush still busy after its rounds; the next store goes on");
    }

    /// Delivers one round in order, [`RENEW_EVERY`] messages to a batch; `false` when the
    /// session stopped taking them, and the first it did not take and the rest of the
    /// round were stored again (and counted).
    async fn deliver_held(
        &self,
        to: &Recipient,
        account: &Jid,
        holder: &str,
        held: Vec<String>,
    ) -> bool {
        let mut held = held.into_iter().peekable();
        while held.peek().is_some() {
            let (mut texts, mut run) = (Vec::new(), Vec::new());
            for text in held.by_ref().take(RENEW_EVERY) {
                // Checked as an edge checks forwarded bytes, and sent as stored.
                match switchyard_core::xml::one_element(&text, &Limits::INTERNAL) {
                    Ok(()) => {
                        run.push((to.clone(), Routed::Wire(text.as_str().into())));
                        texts.push(text);
                    }
                    Err(_) => tracing::warn!(%account, "dropping an unreadable stored message"),
                }
            }
            let taken = self.deliver_all(run).await;
            let written = taken.iter().take_while(|t| **t).count();
            switchyard_telemetry::ROUTER_OFFLINE_DELIVERED.inc_by(written as u64);
            if written < taken.len() {
                let rest = texts.into_iter().skip(written);
                self.store_again(account, rest.chain(held)).await;
                return false;
            }
            if held.peek().is_some() {
                self.renew_flush_lock(account, holder).await;
            }
        }
        true
    }

    /// Messages a session did not take, stored again in order and counted.
    async fn store_again(&self, account: &Jid, texts: impl Iterator<Item = String>) {
        for text in texts {
            let quota = usize::MAX;
            if let Err(e) = self.stores.offline.push(account, &text, quota).await {
                tracing::warn!(error = %e, %account, "could not re-store an offline message");
            }
        }
        self.count_pending(account).await;
    }

    async fn renew_flush_lock(&self, account: &Jid, holder: &str) {
        match self
            .registry
            .lock_flush(account, holder, FLUSH_LOCK_TTL)
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(%account, "flush lock lost to another flusher"),
            Err(e) => tracing::warn!(error = %e, %account, "flush lock not renewed"),
        }
    }
}
