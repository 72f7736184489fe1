//! XEP-0198 sessions that outlive their edge: what a router keeps of the resumable
//! sessions on its edges (the design is the README's "Resuming a session whose edge
//! died").
//!
//! - Each edge tells every router, about once a second (`SmProgress`), its resumable
//!   sessions that are new or whose client acknowledged more, and those that ended.
//! - Each delivery this router made to such a session is answered with the number the
//!   session gave it; the router keeps the stanza's bytes under it until the client's
//!   acknowledgement (heard in the next `SmProgress`) covers it. Nothing is written to
//!   storage per message.
//! - Each stanza from such a session carries the number of the client's stanzas handled
//!   with it; once routed, the router remembers the highest.
//! - When the edge's link is lost, its sessions' entries wait up to their `max` from
//!   then: the liveness beat keeps their registry records when it removes the dead
//!   edge's others, so contacts see nothing. A client that resumes on another edge takes
//!   every router's entry ([`Kept::take`]); if none does in time, each router stores its
//!   copies offline, and the records go [`GRACE`] later (every router has stored its
//!   share by then), with the unavailable presence.
//!
//! Bounds: a session keeps at most [`MAX_COPIES`] copies, and the router at most
//! `max_bytes` of them all; a session that would pass either loses its copies and is
//! no longer resumable after its edge's death (counted), never the other sessions.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchyard_core::Jid;
use switchyard_telemetry as metrics;

/// Copies one session may keep: far above any edge's `max_unacked`.
pub(super) const MAX_COPIES: usize = 16_384;
/// Sessions kept, all edges together: an edge announcing more is not believed.
pub(super) const MAX_SESSIONS: usize = 4_000_000;
/// How long an expired entry's record stays after the entry stored its copies, so that
/// every router stores its share while the record still says the session was resumable.
pub(super) const GRACE: Duration = Duration::from_secs(10);

/// A session's entry key: its edge and that edge's connection id.
type Key = (String, u64);

/// What an edge says of one resumable session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Announced {
    pub conn: u64,
    pub id: String,
    pub jid: Jid,
    pub max_secs: u32,
    pub acked: u32,
    pub handled: u32,
}

/// A resumable session whose edge's link is lost, found by its SM-ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Orphan {
    pub edge: String,
    pub conn: u64,
    pub jid: Jid,
    pub id: String,
    pub max_secs: u32,
    pub acked: u32,
}

/// One router's share of a session whose edge died.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Slice {
    /// Not acknowledged when last heard, by number, in order.
    pub copies: Vec<(u32, Arc<str>)>,
    /// The client's stanzas routed here (highest count), or announced.
    pub handled: Option<u32>,
}

#[derive(Debug, Default)]
struct Entry {
    known: Option<Announced>,
    handled: Option<u32>,
    copies: VecDeque<(u32, Arc<str>)>,
    bytes: usize,
    /// Copies were dropped (a bound): not resumable after the edge's death.
    spoiled: bool,
    /// When the edge's link was lost.
    lost_at: Option<Instant>,
    /// The registry declared the edge dead (no router heard from it in its TTL).
    dead: bool,
    /// The link (its instance number) on which the edge last spoke of it.
    heard_on: u64,
    /// When its copies were stored offline (no resumption in time).
    expired_at: Option<Instant>,
}

impl Entry {
    /// Drops what `acked` covers (32-bit numbers, wrapping).
    fn trim(&mut self, acked: u32) {
        while let Some((seq, xml)) = self.copies.front() {
            if after(*seq, acked) {
                break;
            }
            self.bytes -= xml.len();
            self.copies.pop_front();
        }
    }

    fn resumable(&self) -> bool {
        self.known.is_some() && !self.spoiled
    }
}

/// Whether number `a` comes after `b` (XEP-0198 counters wrap at 2^32).
pub(crate) fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// The higher of two counts, wrapping.
pub(crate) fn later(a: u32, b: u32) -> u32 {
    if after(b, a) {
        b
    } else {
        a
    }
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<Key, Entry>,
    by_id: HashMap<String, Key>,
    bytes: usize,
}

impl Table {
    /// Whether `key` has an entry or one more fits.
    fn has_room(&self, key: &Key) -> bool {
        self.entries.len() < MAX_SESSIONS || self.entries.contains_key(key)
    }

    fn remove(&mut self, key: &Key) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.bytes -= entry.bytes;
        if let Some(known) = &entry.known {
            if self.by_id.get(&known.id) == Some(key) {
                self.by_id.remove(&known.id);
            }
        }
        Some(entry)
    }

    fn spoil(&mut self, key: &Key) {
        if let Some(entry) = self.entries.get_mut(key) {
            self.bytes -= entry.bytes;
            entry.bytes = 0;
            entry.copies.clear();
            if !entry.spoiled {
                entry.spoiled = true;
                metrics::ROUTER_SM_COPIES_DROPPED.inc();
            }
        }
    }
}

/// The router's entries for every edge's resumable sessions (see the module doc).
#[derive(Debug)]
pub(super) struct Kept {
    table: Mutex<Table>,
    max_bytes: usize,
}

impl Kept {
    pub(super) fn new(max_bytes: usize) -> Self {
        Self {
            table: Mutex::new(Table::default()),
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        super::links::lock(&self.table)
    }

    /// An edge's `SmProgress` on link `instance`: sessions announced or acknowledged,
    /// sessions ended; `complete` ends a full report (the edge's other sessions go).
    pub(super) fn progress(
        &self,
        (edge, instance): (&str, u64),
        sessions: Vec<Announced>,
        ended: &[u64],
        complete: bool,
    ) {
        let mut table = self.lock();
        for conn in ended {
            table.remove(&(edge.to_owned(), *conn));
        }
        for s in sessions {
            let key = (edge.to_owned(), s.conn);
            if !table.has_room(&key) {
                continue;
            }
            let entry = table.entries.entry(key.clone()).or_default();
            entry.heard_on = instance;
            let before = entry.bytes;
            entry.trim(s.acked);
            entry.handled = Some(entry.handled.map_or(s.handled, |h| later(h, s.handled)));
            let (freed, id) = (before - entry.bytes, s.id.clone());
            if entry.known.is_none() {
                metrics::ROUTER_SM_SESSIONS_KEPT.inc();
            }
            entry.known = Some(s);
            table.bytes -= freed;
            if let Some(old) = table.by_id.insert(id, key.clone()) {
                if old != key {
                    // Another session claimed the same SM-ID: neither can be trusted.
                    table.spoil(&old);
                    table.spoil(&key);
                }
            }
        }
        if complete {
            let unheard: Vec<Key> = table
                .entries
                .iter()
                .filter(|((e, _), entry)| e == edge && entry.heard_on != instance)
                .map(|(key, _)| key.clone())
                .collect();
            for key in unheard {
                table.remove(&key);
            }
        }
        metrics::ROUTER_SM_COPY_BYTES.set(table.bytes as i64);
    }

    /// The session on `edge`'s connection `conn` took `xml` as number `seq` (answered
    /// on link `instance`).
    pub(super) fn copy(&self, (edge, instance): (&str, u64), conn: u64, seq: u32, xml: Arc<str>) {
        let mut table = self.lock();
        let key = (edge.to_owned(), conn);
        let over_router = table.bytes + xml.len() > self.max_bytes;
        if !table.has_room(&key) {
            return;
        }
        let entry = table.entries.entry(key.clone()).or_default();
        entry.heard_on = instance;
        if entry.spoiled || entry.lost_at.is_some() {
            return;
        }
        let stale = entry.known.as_ref().is_some_and(|k| !after(seq, k.acked))
            || entry
                .copies
                .back()
                .is_some_and(|(last, _)| !after(seq, *last));
        if stale {
            return;
        }
        if over_router || entry.copies.len() >= MAX_COPIES {
            table.spoil(&key);
            return;
        }
        let bytes = xml.len();
        entry.bytes += bytes;
        entry.copies.push_back((seq, xml));
        table.bytes += bytes;
    }

    /// A stanza from the session on `edge`'s connection `conn` (sent on link
    /// `instance`) was routed: its client's stanzas handled so far.
    pub(super) fn handled(&self, (edge, instance): (&str, u64), conn: u64, count: u32) {
        let mut table = self.lock();
        let key = (edge.to_owned(), conn);
        if table.has_room(&key) {
            let entry = table.entries.entry(key).or_default();
            entry.heard_on = instance;
            entry.handled = Some(entry.handled.map_or(count, |h| later(h, count)));
        }
    }

    /// `edge`'s link is lost (`Some`, when) or up again (`None`).
    pub(super) fn link(&self, edge: &str, lost_at: Option<Instant>) {
        let mut table = self.lock();
        for ((e, _), entry) in &mut table.entries {
            if e == edge && entry.expired_at.is_none() {
                entry.lost_at = lost_at;
                entry.dead = false;
            }
        }
    }

    /// The resumable session `previd` of `account`, if its edge's link is lost and its
    /// time is not up; with whether the registry declared the edge dead yet (until then
    /// it may only be cut off from this router).
    pub(super) fn orphan(
        &self,
        previd: &str,
        account: &Jid,
        now: Instant,
    ) -> Option<(Orphan, bool)> {
        let table = self.lock();
        let key = table.by_id.get(previd)?;
        let entry = table.entries.get(key)?;
        let known = entry.known.as_ref()?;
        let lost_at = entry.lost_at?;
        let in_time = now < lost_at + Duration::from_secs(known.max_secs.into());
        let fit = in_time && entry.resumable() && entry.expired_at.is_none();
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

    /// The full JID of the session on `edge`'s connection `conn`, if announced.
    pub(super) fn jid_of(&self, edge: &str, conn: u64) -> Option<Jid> {
        let table = self.lock();
        let entry = table.entries.get(&(edge.to_owned(), conn))?;
        entry.known.as_ref().map(|k| k.jid.clone())
    }

    /// Takes this router's share of `edge`'s session on `conn` (its client resumed on
    /// another edge); `None` when there is none (or its copies were stored already).
    pub(super) fn take(&self, edge: &str, conn: u64) -> Option<Slice> {
        let mut table = self.lock();
        let key = (edge.to_owned(), conn);
        let entry = table.entries.get(&key)?;
        if !entry.dead || entry.expired_at.is_some() || !entry.resumable() {
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
    pub(super) fn dead_edge(&self, edge: &str, now: Instant) -> Beat {
        let mut table = self.lock();
        let mut beat = Beat::default();
        let mut forget = Vec::new();
        let mut freed = 0;
        for (key, entry) in table.entries.iter_mut().filter(|((e, _), _)| e == edge) {
            let lost_at = *entry.lost_at.get_or_insert(now);
            entry.dead = true;
            let Some(known) = entry.known.as_ref().filter(|_| !entry.spoiled) else {
                forget.push(key.clone());
                continue;
            };
            let jid = known.jid.clone();
            match entry.expired_at {
                Some(at) if now >= at + GRACE => forget.push(key.clone()),
                Some(_) => beat.keep.push((jid, key.1)),
                None if now >= lost_at + Duration::from_secs(known.max_secs.into()) => {
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
        metrics::ROUTER_SM_COPY_BYTES.set(table.bytes as i64);
        beat
    }
}

/// What the liveness beat does with a dead edge's sessions (see [`Kept::dead_edge`]).
#[derive(Debug, Default)]
pub(super) struct Beat {
    /// Records to keep.
    pub keep: Vec<(Jid, u64)>,
    /// Sessions whose time ran out, with their copies, to store offline.
    pub expired: Vec<(Jid, u64, Vec<Arc<str>>)>,
}

#[cfg(test)]
#[path = "kept_tests.rs"]
mod tests;
