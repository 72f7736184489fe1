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
//! - Sessions are known from their first report on (about a second after `<enable/>`);
//!   copies and counts for a session the router does not know are not kept, so an
//!   entry never outlives its session's end unannounced. A full report (after a link
//!   opens, or when a link fell behind) makes the router forget the edge's sessions it
//!   did not name. An SM-ID announced again under another connection (the session moved
//!   to another edge) belongs to the newest; the older entry stays under its own key
//!   until its end is heard or its edge's death runs its course.
//!
//! Bounds: a session keeps at most [`MAX_COPIES`] copies, and the router at most
//! `max_bytes` of them all; the session whose copy would pass either loses its copies and
//! is no longer resumable after its edge's death (counted; it is the session that got
//! the stanza, not necessarily the one holding the most). At most [`MAX_SESSIONS`]
//! entries, [`MAX_SESSIONS_PER_EDGE`] of one edge, and a session waits at most
//! [`MAX_WAIT_SECS`] whatever its edge says.
//! The dead-edge half (finding, taking, expiring) is in [`lifecycle`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchyard_core::Jid;
use switchyard_telemetry as metrics;

mod lifecycle;

/// Copies one session may keep: far above any edge's `max_unacked`.
pub(super) const MAX_COPIES: usize = 16_384;
/// Sessions kept, all edges together: an edge announcing more is not believed.
pub(super) const MAX_SESSIONS: usize = 4_000_000;
/// Sessions kept for one edge: a quarter of all, so one edge that lies (or a bug in one)
/// cannot take the room every other edge's sessions need. An edge holds far fewer (at
/// about 10 KiB each, a million sessions is 10 GiB).
pub(super) const MAX_SESSIONS_PER_EDGE: usize = MAX_SESSIONS / 4;
/// The longest `max` believed: an edge's `stream_management.resume_max_secs` is far less.
pub(super) const MAX_WAIT_SECS: u32 = 86_400;
/// How long an expired entry's record stays after the entry stored its copies, so that
/// every router stores its share while the record still says the session was resumable.
pub(super) const GRACE: Duration = Duration::from_secs(10);
/// How long after the longest wait an entry of a lost link is forgotten when its edge is
/// never declared dead (it ended its sessions and went away: no record is left).
pub(super) const FORGOTTEN_AFTER: Duration = Duration::from_secs(300);

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

/// A resumable session found by its SM-ID.
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
    /// The client's stanzas handled, the highest count heard.
    pub handled: u32,
}

#[derive(Debug)]
struct Entry {
    known: Announced,
    handled: u32,
    copies: VecDeque<(u32, Arc<str>)>,
    bytes: usize,
    /// Copies were dropped (a bound): not resumable after the edge's death.
    spoiled: bool,
    /// When the edge's link was lost.
    lost_at: Option<Instant>,
    /// The registry declared the edge dead (no router heard from it in its TTL).
    dead: bool,
    /// When its copies were stored offline (no resumption in time).
    expired_at: Option<Instant>,
    /// The edge's full report that last named it.
    heard_in: u64,
}

impl Entry {
    fn new(known: Announced, heard_in: u64) -> Self {
        Self {
            handled: known.handled,
            known,
            copies: VecDeque::new(),
            bytes: 0,
            spoiled: false,
            lost_at: None,
            dead: false,
            expired_at: None,
            heard_in,
        }
    }

    /// Drops what `acked` covers (32-bit numbers, wrapping); the bytes freed.
    fn trim(&mut self, acked: u32) -> usize {
        let before = self.bytes;
        while let Some((seq, xml)) = self.copies.front() {
            if after(*seq, acked) {
                break;
            }
            self.bytes -= xml.len();
            self.copies.pop_front();
        }
        before - self.bytes
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

/// An edge's full reports: how many began, and whether one is under way.
#[derive(Debug, Default)]
struct Reports {
    full: u64,
    in_full: bool,
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<Key, Entry>,
    by_id: HashMap<String, Key>,
    bytes: usize,
    reports: HashMap<String, Reports>,
    /// Edges this router held a link with: it knows their resumable sessions.
    linked: HashSet<String>,
    /// Edges whose link is lost, since when: the sweep looks only at these.
    lost: HashMap<String, Instant>,
    /// Entries by edge (see [`MAX_SESSIONS_PER_EDGE`]).
    per_edge: HashMap<String, usize>,
}

impl Table {
    /// Whether another entry of `edge` fits, at most `per_edge` of it.
    fn room_for(&self, edge: &str, per_edge: usize) -> bool {
        self.entries.len() < MAX_SESSIONS
            && self.per_edge.get(edge).copied().unwrap_or(0) < per_edge
    }

    fn insert(&mut self, key: Key, entry: Entry) {
        *self.per_edge.entry(key.0.clone()).or_default() += 1;
        self.entries.insert(key, entry);
    }

    fn remove(&mut self, key: &Key) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        if let Some(count) = self.per_edge.get_mut(&key.0) {
            *count -= 1;
            if *count == 0 {
                self.per_edge.remove(&key.0);
            }
        }
        self.bytes -= entry.bytes;
        if self.by_id.get(&entry.known.id) == Some(key) {
            self.by_id.remove(&entry.known.id);
        }
        Some(entry)
    }

    fn spoil(&mut self, key: &Key) {
        if let Some(entry) = self.entries.get_mut(key) {
            self.bytes -= std::mem::take(&mut entry.bytes);
            entry.copies.clear();
            if !entry.spoiled {
                entry.spoiled = true;
                metrics::ROUTER_SM_COPIES_DROPPED.inc();
            }
        }
    }

    fn edge_keys(&self, edge: &str, keep: impl Fn(&Entry) -> bool) -> Vec<Key> {
        self.entries
            .iter()
            .filter(|((e, _), entry)| e == edge && keep(entry))
            .map(|(key, _)| key.clone())
            .collect()
    }
}

/// The router's entries for every edge's resumable sessions (see the module doc).
#[derive(Debug)]
pub(super) struct Kept {
    table: Mutex<Table>,
    max_bytes: usize,
    /// [`MAX_SESSIONS_PER_EDGE`], lower in tests.
    max_per_edge: usize,
}

impl Kept {
    pub(super) fn new(max_bytes: usize) -> Self {
        Self::with_edge_cap(max_bytes, MAX_SESSIONS_PER_EDGE)
    }

    pub(super) fn with_edge_cap(max_bytes: usize, max_per_edge: usize) -> Self {
        Self {
            table: Mutex::new(Table::default()),
            max_bytes,
            max_per_edge,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        super::links::lock(&self.table)
    }

    /// An edge's `SmProgress`: sessions announced or acknowledged, sessions ended. `full`
    /// marks the messages of a full report, `complete` its last (the edge's sessions it
    /// did not name go).
    pub(super) fn progress(
        &self,
        edge: &str,
        sessions: Vec<Announced>,
        ended: &[u64],
        (full, complete): (bool, bool),
    ) {
        let mut table = self.lock();
        let reports = table.reports.entry(edge.to_owned()).or_default();
        if full && !reports.in_full {
            reports.full += 1;
            reports.in_full = true;
        }
        let report = reports.full;
        for mut s in sessions {
            s.max_secs = s.max_secs.min(MAX_WAIT_SECS);
            let key = (edge.to_owned(), s.conn);
            // Another session under a connection id seen before (an edge restarted under
            // the same name counts from 1 again): nothing of the old one carries over.
            let other = table
                .entries
                .get(&key)
                .is_some_and(|e| e.known.id != s.id || e.known.jid != s.jid);
            if other {
                table.remove(&key);
            }
            let room = table.room_for(edge, self.max_per_edge);
            if room || table.entries.contains_key(&key) {
                table.by_id.insert(s.id.clone(), key.clone());
            }
            match table.entries.get_mut(&key) {
                Some(entry) => {
                    let freed = entry.trim(s.acked);
                    entry.handled = later(entry.handled, s.handled);
                    entry.known = s;
                    entry.heard_in = report;
                    table.bytes -= freed;
                }
                None if room => {
                    metrics::ROUTER_SM_SESSIONS_KEPT.inc();
                    table.insert(key, Entry::new(s, report));
                }
                None => {}
            }
        }
        // After the sessions: an end in the same report wins.
        for conn in ended {
            table.remove(&(edge.to_owned(), *conn));
        }
        if complete {
            for key in table.edge_keys(edge, |e| e.heard_in != report) {
                table.remove(&key);
            }
            if let Some(reports) = table.reports.get_mut(edge) {
                reports.in_full = false;
            }
        }
        metrics::ROUTER_SM_COPY_BYTES.set(table.bytes as i64);
    }

    /// The session on `edge`'s connection `conn` took `xml` as number `seq`. Answers
    /// can come out of order (the edge answers each batch of deliveries as its own chain
    /// completes), so a copy goes in its place by number; one already acknowledged, or
    /// already kept, is not kept.
    pub(super) fn copy(&self, edge: &str, conn: u64, seq: u32, xml: Arc<str>) {
        let mut table = self.lock();
        let key = (edge.to_owned(), conn);
        let over_router = table.bytes + xml.len() > self.max_bytes;
        let Some(entry) = table.entries.get_mut(&key) else {
            return;
        };
        if entry.spoiled || entry.lost_at.is_some() || !after(seq, entry.known.acked) {
            return;
        }
        // Searched from the back: in order, it goes last.
        let at = entry
            .copies
            .iter()
            .rposition(|(kept, _)| after(seq, *kept))
            .map_or(0, |before| before + 1);
        if entry.copies.get(at).is_some_and(|(kept, _)| *kept == seq) {
            return;
        }
        if over_router || entry.copies.len() >= MAX_COPIES {
            table.spoil(&key);
            return;
        }
        let bytes = xml.len();
        entry.bytes += bytes;
        entry.copies.insert(at, (seq, xml));
        table.bytes += bytes;
    }

    /// A stanza from the session on `edge`'s connection `conn` was routed: its client's
    /// stanzas handled so far.
    pub(super) fn handled(&self, edge: &str, conn: u64, count: u32) {
        let mut table = self.lock();
        if let Some(entry) = table.entries.get_mut(&(edge.to_owned(), conn)) {
            entry.handled = later(entry.handled, count);
        }
    }

    /// `edge`'s link is lost (`Some`, when) or up again (`None`).
    pub(super) fn link(&self, edge: &str, lost_at: Option<Instant>) {
        let mut table = self.lock();
        match lost_at {
            None => {
                table.linked.insert(edge.to_owned());
                table.lost.remove(edge);
            }
            Some(at) => {
                table.lost.insert(edge.to_owned(), at);
            }
        }
        for ((e, _), entry) in &mut table.entries {
            if e == edge && entry.expired_at.is_none() {
                entry.lost_at = lost_at;
                entry.dead = false;
            }
        }
    }

    /// Whether this router held a link with `edge` (so knows its resumable sessions).
    pub(super) fn knew(&self, edge: &str) -> bool {
        self.lock().linked.contains(edge)
    }

    /// The full JID of the session on `edge`'s connection `conn`, if announced.
    pub(super) fn jid_of(&self, edge: &str, conn: u64) -> Option<Jid> {
        let table = self.lock();
        let entry = table.entries.get(&(edge.to_owned(), conn))?;
        Some(entry.known.jid.clone())
    }
}

#[cfg(test)]
#[path = "kept_tests.rs"]
mod tests;
