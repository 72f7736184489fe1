//! XEP-0352 Client State Indication.
//!
//! - §4.2: `<inactive/>` and `<active/>` are top-level nonzas on a bound stream, with no
//!   reply; every stream starts active (§5). Anything else in the namespace is
//!   `unsupported-stanza-type`.
//! - §3.2 (what the server does while inactive): presence is held, only the latest per
//!   sender kept, in the order senders first appeared; any other stanza (a message, an
//!   IQ) first flushes what is held, so nothing is reordered against it. Becoming active
//!   flushes too, before the next input is processed (§5.1).
//! - Holding is bounded: past [`MAX_HELD`] senders everything held is flushed.

use super::Session;
use crate::error::StreamCondition;
use crate::routed::Routed;
use crate::xml::Element;

pub(super) const MAX_HELD: usize = 1024;

/// Held presence: `(sender, latest presence)`.
#[derive(Debug, Default)]
pub(super) struct Held(Vec<(String, Routed)>);

impl Session {
    pub(super) fn on_csi(&mut self, el: &Element) {
        match el.name() {
            "inactive" => {
                self.inactive.get_or_insert_with(Held::default);
            }
            "active" => {
                self.flush_held();
                self.inactive = None;
            }
            _ => self.stream_error(StreamCondition::UnsupportedStanzaType, None),
        }
    }

    /// Writes a routed stanza, or holds it while inactive.
    pub(super) fn deliver(&mut self, stanza: Routed) {
        if let Some(held) = &mut self.inactive {
            if let Some(from) = stanza.presence_from() {
                match held.0.iter_mut().find(|(f, _)| f == from) {
                    Some(slot) => slot.1 = stanza,
                    None => held.0.push((from.to_owned(), stanza)),
                }
                if held.0.len() > MAX_HELD {
                    self.flush_held();
                }
                return;
            }
            self.flush_held();
        }
        self.send_stanza(stanza);
    }

    pub(super) fn flush_held(&mut self) {
        let held = self.inactive.as_mut().map(|h| std::mem::take(&mut h.0));
        for (_, presence) in held.unwrap_or_default() {
            self.send_stanza(presence);
        }
    }
}
