//! XEP-0114: stanzas for a component's domain go to the connection bound for it (its
//! registry record's JID is the bare domain), unchanged. A component that is not
//! connected cannot answer: a message or an IQ request gets `service-unavailable`
//! (RFC 6120 §8.3.3.19), presence is dropped, as for a resource that is not there.

use crate::effects::{Effect, Effects, Recipient};
use crate::router::Router;
use switchyard_core::{Jid, Stanza, StanzaCondition};

pub(crate) async fn deliver(router: &Router, stanza: &Stanza) -> Effects {
    let unavailable = || Effects::bounced(stanza, StanzaCondition::ServiceUnavailable);
    let Ok(domain) = Jid::parse(stanza.effective_to().domain()) else {
        return unavailable();
    };
    let sessions = router.sessions(&domain).await;
    let Some(record) = sessions.iter().find(|s| s.jid == domain) else {
        return if stanza.kind == switchyard_core::StanzaKind::Presence {
            Effects::none()
        } else {
            unavailable()
        };
    };
    let mut fx = Effects::none();
    fx.push(Effect::DeliverOr {
        to: Recipient::of(record),
        stanza: stanza.routed(),
        otherwise: unavailable(),
    });
    fx
}
