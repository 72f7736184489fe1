//! Message delivery (RFC 6121 §8.5, Table 1 of §8.5.4; RFC 6120 §10.3.1 for the server).
//!
//! Where Table 1 leaves "silently ignore or return an error" (S/E), the choice is
//! `unknown_account_messages` ([`UnknownAccountMessages`]). By default (`Ignore`) a
//! `normal` or `chat` message that reaches no one is answered as one stored offline for an
//! existing account is: with silence (and the sender's carbons). Silence is the only
//! answer that hides whether an account exists, since an existing account's offline
//! storage answers nothing either; so no answer to a message tells a sender whether an
//! account exists, whether a resource is connected, or whether the recipient blocks it
//! (XEP-0191 §3.5 only RECOMMENDS an error, "so the user appears offline"). With
//! `ServiceUnavailable` those cells are `service-unavailable`. `headline` and `error` are
//! never answered; `groupchat` to no resource is always an error (§8.5.2.1.1,
//! §8.5.2.2.1), as a room needs the bounce to drop an occupant that left: it tells
//! whether a given full JID is connected, never whether an account exists.
//!
//! | to                               | normal / chat                          | groupchat | headline         | error  |
//! |----------------------------------|----------------------------------------|-----------|------------------|--------|
//! | no such account                  | ignore (config: error)                 | error     | ignore           | ignore |
//! | blocked by the recipient         | ignore (config: error)                 | error     | ignore           | ignore |
//! | bare, no non-negative resource   | offline (XEP-0160)                     | error     | ignore           | ignore |
//! | bare, non-negative resources     | highest priority (config: all)         | error     | all non-negative | ignore |
//! | full, connected resource         | that resource, any priority            | same      | same             | same   |
//! | full, no such resource           | as bare (config: normal is an error)   | error     | ignore           | ignore |
//!
//! For `normal` to a resource that is not connected §8.5.3.2.1 offers silence or an
//! error; handling it as if sent to the bare JID (as Prosody does for every type) is
//! silent as well, and keeps the message instead of dropping it.
//!
//! One answer still differs for an existing account: a full offline store bounces
//! `service-unavailable` (XEP-0160, nothing is lost silently), which a sender can only
//! reach by filling the account's quota.
//!
//! XEP-0280 carbons are added around every delivery (see [`crate::carbons`]).
//!
//! No session found is only believed once the registry is settled: after Redis lost its
//! data the edges re-register their sessions, and a message meant for one of them waits
//! for that rather than going to offline storage (see [`crate::rebuild`]).
//!
//! A `chat` or `normal` message never overtakes messages held offline for the account:
//! while some are pending, it is stored behind them and the flush delivers it (see
//! [`crate::offline`]). That holds for a full JID too, though §8.5.3.1 would deliver to
//! a connected resource at once: a client that binds and then sends its initial presence
//! would otherwise get a sender's newer messages before the older held ones, which its
//! initial presence flushes. Such a message goes with the flush, to the resource the
//! flush serves (the one that just logged in, in that case).
//!
//! A session can end between the registry lookup and the delivery. Its edge then says so,
//! and the message goes on by the "no such resource" row, never dropped. An edge answers a
//! delivery only once the stanza is written to the client's socket, so a stanza queued
//! for a connection that ended before writing it takes the same row.

use crate::config::{BareDelivery, UnknownAccountMessages};
use crate::effects::{Effect, Effects, Recipient, Tried};
use crate::router::Router;
use switchyard_core::{Stanza, StanzaCondition};
use switchyard_storage::{SessionRecord, Sessions};

/// RFC 6121 §5.2.2: a missing or unknown type is `normal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MessageType {
    Normal,
    Chat,
    Groupchat,
    Headline,
    Error,
}

impl MessageType {
    pub(crate) fn of(stanza: &Stanza) -> Self {
        match stanza.type_attr() {
            Some("chat") => Self::Chat,
            Some("groupchat") => Self::Groupchat,
            Some("headline") => Self::Headline,
            Some("error") => Self::Error,
            _ => Self::Normal,
        }
    }
}

/// The sessions that receive a message sent to a bare JID (§8.5.2.1.1): never a
/// resource with negative priority or one that is not available.
pub(crate) fn bare_targets(
    sessions: &[SessionRecord],
    kind: MessageType,
    policy: BareDelivery,
) -> Vec<&SessionRecord> {
    let eligible = sessions
        .iter()
        .filter(|s| s.priority().is_some_and(|p| p >= 0));
    match (kind, policy) {
        (MessageType::Headline, _) | (_, BareDelivery::AllNonNegative) => eligible.collect(),
        _ => {
            let top = eligible.clone().filter_map(SessionRecord::priority).max();
            eligible.filter(|s| s.priority() == top).collect()
        }
    }
}

/// The message row: the sender's side (its block list), then the recipient's.
pub(crate) async fn route(router: &Router, stanza: &Stanza) -> Effects {
    let to = stanza.effective_to();
    if let Some(blocked) = router.outbound_block(stanza, &to).await {
        return Effects::refused(stanza, blocked);
    }
    recipient_side(router, stanza, Tried::default()).await
}

/// Named hook of the executor: no session took the message, whose earlier attempts
/// `tried` records; it goes on by Table 1 without those sessions.
pub(crate) async fn undelivered(router: &Router, stanza: &Stanza, tried: Tried) -> Effects {
    recipient_side(router, stanza, tried).await
}

/// The recipient's side of Table 1, without the sessions that already failed to take it.
async fn recipient_side(router: &Router, stanza: &Stanza, tried: Tried) -> Effects {
    let to = stanza.effective_to();
    let kind = MessageType::of(stanza);
    let found = router.lookup(&to.bare()).await;
    // The registry's list as it is, unless an earlier try found some of it gone.
    let sessions: Sessions = if tried.gone.is_empty() {
        found.sessions
    } else {
        let left = found
            .sessions
            .iter()
            .filter(|s| !tried.gone.contains(&s.jid));
        Sessions::new(left.cloned().collect())
    };
    if router.inbound_blocked(stanza, &to).await {
        return refuse(router, stanza, kind).await;
    }
    if crate::offline::behind_held(stanza, kind, found.pending) {
        // Stored behind what is held, so it cannot overtake it, whatever JID it names
        // (see `crate::offline`): a resource that just bound gets it in its flush.
        return to_bare(router, stanza, kind, &[], tried).await;
    }
    if let Some(s) = sessions.iter().find(|s| s.jid == to) {
        return deliver(stanza, &[s], &sessions, tried);
    }
    // From here on, as for a resource that is not connected (§8.5.3.2), whether it never
    // was or was gone by the time the message was handed over.
    let as_bare = to.is_bare()
        || kind == MessageType::Chat
        || (router.hides_accounts() && kind == MessageType::Normal);
    if !as_bare {
        return refuse(router, stanza, kind).await;
    }
    match kind {
        MessageType::Error => Effects::none(),
        MessageType::Groupchat => Effects::bounced(stanza, StanzaCondition::ServiceUnavailable),
        MessageType::Normal | MessageType::Chat | MessageType::Headline => {
            to_bare(router, stanza, kind, &sessions, tried).await
        }
    }
}

/// The message to `to`, chosen among the recipient's `sessions` (which also give its
/// received carbons).
fn deliver(
    stanza: &Stanza,
    to: &[&SessionRecord],
    sessions: &[SessionRecord],
    tried: Tried,
) -> Effects {
    let to: Vec<Recipient> = to.iter().map(|s| Recipient::of(s)).collect();
    let mut fx = Effects::none();
    fx.push(Effect::Message {
        stanza: stanza.clone(),
        carbons: crate::carbons::received_by(stanza, sessions, &to),
        to,
        tried,
    });
    fx
}

/// §8.5.2: the resources chosen among `sessions`, or offline storage when none is
/// available. "No session" is believed only once the registry is settled.
async fn to_bare(
    router: &Router,
    stanza: &Stanza,
    kind: MessageType,
    sessions: &[SessionRecord],
    mut tried: Tried,
) -> Effects {
    let targets = bare_targets(sessions, kind, router.config.bare_delivery);
    if !targets.is_empty() {
        return deliver(stanza, &targets, sessions, tried);
    }
    if kind == MessageType::Headline {
        return Effects::none(); // §8.5.2.2.1: ignored when no resource can take it.
    }
    let to = stanza.effective_to().bare();
    match router.account_exists(&to).await {
        Ok(true) if !tried.looked_again && router.registry_settled().await => {
            // Read from a registry being rebuilt: its sessions may be back by now.
            router.registry.forget(&to);
            tried.looked_again = true;
            Box::pin(recipient_side(router, stanza, tried)).await
        }
        Ok(true) => {
            let mut fx = crate::carbons::sent_copies(router, stanza).await;
            fx.push(Effect::StoreOffline {
                account: to,
                stanza: stanza.clone(),
            });
            fx
        }
        Ok(false) => refuse(router, stanza, kind).await,
        Err(e) => {
            tracing::warn!(error = %e, "account lookup failed");
            Effects::bounced(stanza, StanzaCondition::InternalServerError)
        }
    }
}

impl Router {
    /// Whether messages answer as if every account existed and were offline.
    pub(crate) fn hides_accounts(&self) -> bool {
        self.config.unknown_account_messages == UnknownAccountMessages::Ignore
    }
}

/// The S/E cells of Table 1 (see the module doc). Ignoring a message still gives the
/// sender's other resources their carbon, as a message stored offline does.
async fn refuse(router: &Router, stanza: &Stanza, kind: MessageType) -> Effects {
    match kind {
        MessageType::Headline | MessageType::Error => Effects::none(),
        MessageType::Normal | MessageType::Chat if router.hides_accounts() => {
            crate::carbons::sent_copies(router, stanza).await
        }
        MessageType::Normal | MessageType::Chat | MessageType::Groupchat => {
            Effects::bounced(stanza, StanzaCondition::ServiceUnavailable)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::Jid;
    use switchyard_storage::Presence;

    fn session(resource: &str, priority: Option<i8>) -> SessionRecord {
        let jid = Jid::parse(&format!("u@localhost/{resource}")).unwrap();
        let mut s = SessionRecord::bound(jid, "e", 1);
        s.presence = priority.map(|priority| Presence {
            priority,
            stanza: String::new(),
        });
        s
    }

    fn resources(targets: Vec<&SessionRecord>) -> Vec<&str> {
        targets.iter().filter_map(|s| s.jid.resource()).collect()
    }

    #[test]
    fn rfc6121_8_5_2_1_1_highest_priority_ties_and_negative_never() {
        let all = [
            session("a", Some(5)),
            session("b", Some(5)),
            session("c", Some(1)),
            session("neg", Some(-1)),
            session("unavailable", None),
        ];
        let pick = |kind, policy| resources(bare_targets(&all, kind, policy));
        assert_eq!(
            pick(MessageType::Chat, BareDelivery::HighestPriority),
            ["a", "b"]
        );
        assert_eq!(
            pick(MessageType::Normal, BareDelivery::AllNonNegative),
            ["a", "b", "c"]
        );
        assert_eq!(
            pick(MessageType::Headline, BareDelivery::HighestPriority),
            ["a", "b", "c"],
            "§8.5.2.1.1: headlines go to all non-negative resources"
        );
        let negative_only = [session("neg", Some(-1)), session("idle", None)];
        assert!(bare_targets(
            &negative_only,
            MessageType::Chat,
            BareDelivery::AllNonNegative
        )
        .is_empty());
    }
}
