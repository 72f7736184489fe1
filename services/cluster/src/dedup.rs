//! Deliveries an edge wrote recently, by the stanza they were made for: a router that
//! delivered a stanza and died before acknowledging it makes its sender's edge resend it
//! through another router, which delivers it again. The recipient edge recognises the
//! second delivery by the stanza's origin (sending edge, its per-edge number, the
//! delivery's index among those made for it, and the connection) and answers it as
//! delivered without writing it twice (DESIGN.md: router loss loses and duplicates
//! nothing).
//!
//! The window is bounded in entries: [`WINDOW`] deliveries, about 3 MiB; at 25,000
//! deliveries a second that is five seconds, longer than a dead router's link takes to
//! be noticed and its stanzas resent.

use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

/// Deliveries remembered.
pub(crate) const WINDOW: usize = 131_072;

/// What identifies one delivery across routers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    /// A hash of the sending edge's name (names are long; a collision would need the
    /// same number, index and connection too).
    edge: u64,
    seq: u64,
    index: u32,
    conn: u64,
}

impl Origin {
    /// `None` for a delivery not made for a stanza (nothing to recognise it by).
    pub(crate) fn of(edge: &str, seq: u64, index: u32, conn: u64) -> Option<Self> {
        if edge.is_empty() {
            return None;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        edge.hash(&mut h);
        Some(Self {
            edge: h.finish(),
            seq,
            index,
            conn,
        })
    }
}

#[derive(Debug, Default)]
pub(crate) struct Recent {
    state: Mutex<(HashSet<Origin>, VecDeque<Origin>)>,
}

impl Recent {
    fn lock(&self) -> std::sync::MutexGuard<'_, (HashSet<Origin>, VecDeque<Origin>)> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes a delivery once: `write` runs unless a delivery with the same origin was
    /// written already, in which case it counts as written (with nothing more known of
    /// it). `Some` once written.
    pub(crate) async fn once<T: Default>(
        &self,
        origin: Option<Origin>,
        write: impl std::future::Future<Output = Option<T>>,
    ) -> Option<T> {
        if origin.is_some_and(|o| self.seen(&o)) {
            switchyard_telemetry::EDGE_DUPLICATES_SUPPRESSED.inc();
            return Some(T::default());
        }
        let written = write.await;
        if let Some(origin) = origin.filter(|_| written.is_some()) {
            self.written(origin);
        }
        written
    }

    fn seen(&self, origin: &Origin) -> bool {
        self.lock().0.contains(origin)
    }

    /// Remembers a delivery that was written, forgetting the oldest past the window.
    fn written(&self, origin: Origin) {
        let mut state = self.lock();
        let (set, order) = &mut *state;
        if set.insert(origin) {
            order.push_back(origin);
            if order.len() > WINDOW {
                if let Some(oldest) = order.pop_front() {
                    set.remove(&oldest);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_exactly_the_window_and_forgets_the_oldest_first() {
        let recent = Recent::default();
        let origin = |seq| Origin::of("edge-a", seq, 0, 7).unwrap();
        for seq in 0..WINDOW as u64 {
            recent.written(origin(seq));
        }
        assert!(recent.seen(&origin(0)), "the window holds exactly WINDOW");
        recent.written(origin(WINDOW as u64));
        assert!(!recent.seen(&origin(0)), "one past it: the oldest goes");
        assert!(recent.seen(&origin(1)) && recent.seen(&origin(WINDOW as u64)));
        assert_eq!(recent.lock().1.len(), WINDOW);
    }

    #[tokio::test]
    async fn a_delivery_made_again_is_written_once_and_answered_as_written() {
        let recent = Recent::default();
        let writes = std::sync::atomic::AtomicUsize::new(0);
        // A write's answer: `Some(n)` when written (n: what the session numbered it).
        let write = |answer: Option<u32>| {
            let writes = &writes;
            async move {
                writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                answer
            }
        };
        let origin = Origin::of("edge-a", 9, 0, 7);
        assert_eq!(
            recent.once(origin, write(None)).await,
            None,
            "not written: not remembered"
        );
        assert_eq!(recent.once(origin, write(Some(5))).await, Some(5));
        assert_eq!(
            recent.once(origin, write(Some(6))).await,
            Some(0),
            "made again: answered as written, with nothing more known"
        );
        assert_eq!(
            writes.load(std::sync::atomic::Ordering::Relaxed),
            2,
            "but written once"
        );
        assert_eq!(recent.once(None, write(Some(1))).await, Some(1));
        assert_eq!(recent.once(None, write(Some(2))).await, Some(2));
        assert_eq!(
            writes.load(std::sync::atomic::Ordering::Relaxed),
            4,
            "no origin: always written"
        );
    }

    #[test]
    fn every_part_of_the_origin_counts() {
        let recent = Recent::default();
        recent.written(Origin::of("edge-a", 5, 0, 7).unwrap());
        assert!(recent.seen(&Origin::of("edge-a", 5, 0, 7).unwrap()));
        for other in [
            ("edge-b", 5, 0, 7),
            ("edge-a", 6, 0, 7),
            ("edge-a", 5, 1, 7),
            ("edge-a", 5, 0, 8),
        ] {
            let (e, s, i, c) = other;
            assert!(!recent.seen(&Origin::of(e, s, i, c).unwrap()), "{other:?}");
        }
        assert!(Origin::of("", 5, 0, 7).is_none(), "no stanza, no origin");
    }
}
