//! Named hooks: where one feature follows another. The executor runs them after the
//! effect that triggers them is done, so the features involved never call each other.
//! A feature that follows a delivered message (an archive) or a resource becoming
//! available (PEP's last items) adds a line here.

use crate::effects::{Effect, Effects, Recipient};
use crate::router::Router;
use switchyard_core::{Jid, Stanza};
use switchyard_storage::{RosterItem, SessionRecord};

/// A message was handed to at least one of its recipients: XEP-0280 carbons, received
/// copies to `carbons` (chosen with the recipients).
pub(crate) async fn message_delivered(
    router: &Router,
    stanza: &Stanza,
    carbons: Vec<Recipient>,
) -> Effects {
    crate::carbons::copies(router, stanza, carbons).await
}

/// A message was stored offline for `account` (no session took it): XEP-0357 push
/// notifications to its registered devices.
pub(crate) async fn message_stored(router: &Router, account: &Jid, stanza: &Stanza) -> Effects {
    crate::push::notify(router, account, stanza).await
}

/// A resource sent initial presence (RFC 6121 §4.2): its contacts' presence (probes
/// answered locally, §4.3), its siblings' presence, held messages (XEP-0160), then
/// pending subscription requests (§3.1.3), in that order.
pub(crate) async fn became_available(
    router: &Router,
    me: &SessionRecord,
    own: &[SessionRecord],
    roster: &[RosterItem],
    priority: i8,
) -> Effects {
    let mut fx = crate::presence::probes(router, me, roster).await;
    fx.append(crate::presence::siblings(me, own));
    if priority >= 0 {
        fx.push(Effect::FlushOffline(Recipient::of(me)));
    }
    fx.append(crate::subscription::pending_requests(me, roster));
    fx
}
