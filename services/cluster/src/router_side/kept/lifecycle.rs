//! The dead-edge half of [`Kept`]: a resuming client's session found by its SM-ID, each
//! router's share taken by the edge it came back to, and, past `max`, the copies handed
//! out for offline storage and the entries forgotten.

use super::{Kept, Key, Orphan, Slice, FORGOTTEN_AFTER, GRACE};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_core::Jid;
use switchyard_telemetry as metrics;

/// What the liveness beat does with a dead edge's sessions (see [`Kept::dead_edge`]).
#[derive(Debug, Default)]
pub(in crate::router_side) struct Beat {
    /// Records to keep.
    pub keep: Vec<(Jid, u64)>,
    /// Sessions whose time ran out, with their copies, to store offline.
    pub expired: Vec<(Jid, u64, Vec<Arc<str>>)>,
}

impl Kept {
    /// The resumable session `previd` of `account`, unless its edge's link was lost
    /// longer ago than its `max`; with whether the registry declared its edge dead (until
    /// then the edge may be alive, or only cut off from this router).
    pub(in crate::router_side) fn orphan(
        &self,
        previd: &str,
        account: &Jid,
        now: Instant,
    ) -> Option<(Orphan, bool)> {
        let table = self.lock();
        let key = table.by_id.get(previd)?;
        let entry = table.entries.get(key)?;
        let known = &entry.known;
        let in_time = entry
            .lost_at
            .is_none_or(|at| now < at + Duration::from_secs(known.max_secs.into()));
        let fit = in_time && !entry.spoiled && entry.expired_at.is_none();
        let orphan = Orphan {
            edge: key.0.clone(),
            conn: key.1,
            jid: known.jid.clone(),
            id: known.id.clone(),
            max_secs: known.max_secs,
            acked: known.acked,
        };
        (fit && known.jid.bare() == *account).then_some((orphan, entry.dead))
    }

    /// Takes this router's share of `edge`'s session on `conn` (its client resumed on
    /// another edge, which the registry now says); `None` when there is none, or its
    /// copies were stored already.
    pub(in crate::router_side) fn take(&self, edge: &str, conn: u64) -> Option<Slice> {
        let mut table = self.lock();
        let key = (edge.to_owned(), conn);
        let entry = table.entries.get(&key)?;
        if entry.expired_at.is_some() || entry.spoiled {
            return None;
        }
        let entry = table.remove(&key)?;
        metrics::ROUTER_SM_COPY_BYTES.set(table.bytes as i64);
        Some(Slice {
            copies: entry.copies.into(),
            handled: entry.handled,
        })
    }

    /// The liveness beat for dead `edge`: the sessions whose records stay (resumable,
    /// in time or within [`GRACE`] of expiring), and those whose time just ran out, each
    /// with its copies to store offline. Entries past their grace, and the ones that
    /// could not be resumed, are forgotten.
    pub(in crate::router_side) fn dead_edge(&self, edge: &str, now: Instant) -> Beat {
        let mut table = self.lock();
        let mut beat = Beat::default();
        let mut forget = Vec::new();
        let mut freed = 0;
        for (key, entry) in table.entries.iter_mut().filter(|((e, _), _)| e == edge) {
            let lost_at = *entry.lost_at.get_or_insert(now);
            entry.dead = true;
            let jid = entry.known.jid.clone();
            let max = Duration::from_secs(entry.known.max_secs.into());
            match entry.expired_at {
                _ if entry.spoiled => forget.push(key.clone()),
                Some(at) if now >= at + GRACE => forget.push(key.clone()),
                Some(_) => beat.keep.push((jid, key.1)),
                None if now >= lost_at + max => {
                    entry.expired_at = Some(now);
                    freed += std::mem::take(&mut entry.bytes);
                    let copies = entry.copies.drain(..).map(|(_, xml)| xml).collect();
                    beat.keep.push((jid.clone(), key.1));
                    beat.expired.push((jid, key.1, copies));
                }
                None => beat.keep.push((jid, key.1)),
            }
        }
        table.bytes -= freed;
        for key in forget {
            table.remove(&key);
        }
        if beat.keep.is_empty() {
            table.reports.remove(edge);
        }
        metrics::ROUTER_SM_COPY_BYTES.set(table.bytes as i64);
        beat
    }

    /// Forgets a dead edge reaped whole (nothing of it was kept).
    pub(in crate::router_side) fn forget_edge(&self, edge: &str) {
        let mut table = self.lock();
        table.linked.remove(edge);
        table.reports.remove(edge);
        table.lost.remove(edge);
    }

    /// Forgets the entries of links lost longer ago than they could be of use (see
    /// [`FORGOTTEN_AFTER`]). Looks only at edges lost that long ago: on most beats, at
    /// nothing.
    pub(in crate::router_side) fn sweep(&self, now: Instant) {
        let mut table = self.lock();
        let due: Vec<String> = table
            .lost
            .iter()
            .filter(|(_, at)| now >= **at + GRACE + FORGOTTEN_AFTER)
            .map(|(edge, _)| edge.clone())
            .collect();
        if due.is_empty() {
            return;
        }
        let stale: Vec<Key> = table
            .entries
            .iter()
            .filter(|((edge, _), e)| {
                let max = Duration::from_secs(e.known.max_secs.into());
                due.contains(edge)
                    && e.lost_at
                        .is_some_and(|at| now >= at + max + GRACE + FORGOTTEN_AFTER)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            table.remove(&key);
        }
        for edge in due {
            if !table.entries.keys().any(|(e, _)| *e == edge) {
                table.lost.remove(&edge);
            }
        }
        metrics::ROUTER_SM_COPY_BYTES.set(table.bytes as i64);
    }
}
