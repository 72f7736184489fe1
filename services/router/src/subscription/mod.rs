//! Presence subscriptions (RFC 6121 §3 and the state tables of Appendix A), with
//! pre-approval (§3.4).
//!
//! The transitions are pure functions of the roster row ([`outbound`], [`inbound`]); the
//! router applies them through one atomic roster edit and carries out the effects they
//! name. States map onto a row as: `subscription` (None/To/From/Both), `ask` (Pending
//! Out), `pending_in` (Pending In, the stored request), `approved` (pre-approval).
//!
//! Choices where the RFC leaves room:
//! - A `subscribe` or `unsubscribe` is always routed, even when the state does not change
//!   (§3.1.2, §3.3.2).
//! - Inbound `subscribe` while pre-approved is answered with `subscribed` at once and
//!   not delivered (§3.4.2's MUST, over Appendix A's MAY). The pre-approval is consumed.
//! - A duplicate inbound `subscribe` while one is pending is not delivered again (§3.1.3:
//!   at most one request per requester).
//! - Unavailable presence is sent before an outbound `unsubscribed` only when the contact
//!   was actually subscribed (§3.2.2), so resource names do not leak to strangers.

mod route;

pub(crate) use route::{pending_requests, route};

use switchyard_storage::{RosterItem, Subscription};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
}

impl Kind {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "subscribe" => Self::Subscribe,
            "subscribed" => Self::Subscribed,
            "unsubscribe" => Self::Unsubscribe,
            "unsubscribed" => Self::Unsubscribed,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Subscribe => "subscribe",
            Self::Subscribed => "subscribed",
            Self::Unsubscribe => "unsubscribe",
            Self::Unsubscribed => "unsubscribed",
        }
    }
}

/// What the user's server does for a stanza the user sends (Appendix A.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Outbound {
    /// Route the stanza to the contact.
    pub route: bool,
    /// §3.2.2: first send unavailable from each of the user's available resources.
    pub unavailable_first: bool,
    /// §3.1.5: after routing, send the user's presence from each available resource.
    pub presence_after: bool,
}

/// Who receives an inbound stanza on the contact's side (Appendix A.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deliver {
    Nobody,
    /// `subscribe`: available resources, and stored for redelivery (§3.1.3).
    Available,
    /// `subscribed`, `unsubscribe`, `unsubscribed`: resources that requested the roster.
    Interested,
}

/// What the contact's server does for a stanza it receives (Appendix A.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Inbound {
    pub deliver: Deliver,
    /// §3.1.3, §3.4.2: answer `subscribed` on the contact's behalf.
    pub auto_subscribed: bool,
    /// §3.3.3 step 3: send unavailable from each of the contact's available resources.
    pub unavailable_back: bool,
}

fn or_new(row: Option<&RosterItem>, contact: &switchyard_core::Jid) -> RosterItem {
    row.cloned()
        .unwrap_or_else(|| RosterItem::new(contact.clone()))
}

/// The new row (if it changes) and effects for a stanza the user sends to `contact`.
pub(crate) fn outbound(
    row: Option<&RosterItem>,
    contact: &switchyard_core::Jid,
    kind: Kind,
) -> (Option<RosterItem>, Outbound) {
    let old = or_new(row, contact);
    let mut new = old.clone();
    let (to, from) = (old.subscription.has_to(), old.subscription.has_from());
    let mut fx = Outbound::default();
    match kind {
        Kind::Subscribe => {
            fx.route = true;
            if !to {
                new.ask = true;
                new.listed = true;
            }
        }
        Kind::Unsubscribe => {
            fx.route = true;
            new.subscription = Subscription::with(false, from);
            new.ask = false;
        }
        Kind::Subscribed if old.pending_in.is_some() => {
            new.subscription = Subscription::with(to, true);
            new.pending_in = None;
            new.listed = true;
            fx.route = true;
            fx.presence_after = true;
        }
        Kind::Subscribed if !from => {
            new.approved = true;
            new.listed = true;
        }
        Kind::Subscribed => {}
        Kind::Unsubscribed if from || old.pending_in.is_some() => {
            fx.route = true;
            fx.unavailable_first = from;
            new.subscription = Subscription::with(to, false);
            new.pending_in = None;
            new.approved = false;
        }
        Kind::Unsubscribed => new.approved = false,
    }
    (changed(row, new), fx)
}

/// The new row (if it changes) and effects when `contact` sends `kind` to the user;
/// `request` is the serialized `subscribe` to keep while it is pending.
pub(crate) fn inbound(
    row: Option<&RosterItem>,
    contact: &switchyard_core::Jid,
    kind: Kind,
    request: &str,
) -> (Option<RosterItem>, Inbound) {
    let old = or_new(row, contact);
    let mut new = old.clone();
    let (to, from) = (old.subscription.has_to(), old.subscription.has_from());
    let mut fx = Inbound {
        deliver: Deliver::Nobody,
        auto_subscribed: false,
        unavailable_back: false,
    };
    match kind {
        Kind::Subscribe if from => fx.auto_subscribed = true,
        Kind::Subscribe if old.approved => {
            new.subscription = Subscription::with(to, true);
            new.approved = false;
            fx.auto_subscribed = true;
        }
        Kind::Subscribe if old.pending_in.is_none() => {
            new.pending_in = Some(request.to_owned());
            fx.deliver = Deliver::Available;
        }
        Kind::Subscribe => {}
        Kind::Unsubscribe if from || old.pending_in.is_some() => {
            new.subscription = Subscription::with(to, false);
            new.pending_in = None;
            fx.deliver = Deliver::Interested;
            fx.unavailable_back = from;
        }
        Kind::Subscribed if old.ask => {
            new.subscription = Subscription::with(true, from);
            new.ask = false;
            fx.deliver = Deliver::Interested;
        }
        Kind::Unsubscribed if to || old.ask => {
            new.subscription = Subscription::with(false, from);
            new.ask = false;
            fx.deliver = Deliver::Interested;
        }
        Kind::Unsubscribe | Kind::Subscribed | Kind::Unsubscribed => {}
    }
    (changed(row, new), fx)
}

/// `Some(new)` when the row differs from what is stored (a missing row counts as a fresh
/// unlisted one, which is never written).
fn changed(row: Option<&RosterItem>, new: RosterItem) -> Option<RosterItem> {
    let unchanged = match row {
        Some(old) => *old == new,
        None => new == RosterItem::new(new.jid.clone()),
    };
    (!unchanged).then_some(new)
}

/// A roster push is owed when what clients see of the row changed (RFC 6121 §2.1.6).
pub(crate) fn visible_change(before: Option<&RosterItem>, after: &RosterItem) -> bool {
    let view = |r: &RosterItem| {
        (
            r.listed,
            r.subscription,
            r.ask,
            r.approved,
            r.name.clone(),
            r.groups.clone(),
        )
    };
    let was_listed = before.is_some_and(|b| b.listed);
    (was_listed || after.listed) && before.map(view) != Some(view(after))
}

#[cfg(test)]
mod tests;
