//! XEP-0198: what the routers must hear of this edge's resumable sessions so that a
//! session outlives the edge (the README's "Resuming a session whose edge died"): each
//! one's SM-ID, full JID and `max` once, then its client's acknowledgements, and its end.
//! The routers keep a copy of every stanza they delivered to such a session until the
//! client acknowledges it, so these reports are what frees the copies.
//!
//! Sessions write here on `<enable/>`, whenever their counts move (an `<a/>` from the
//! client, or a stanza it sent) and at their end: a lock and a map entry each, no I/O. Each router link reads what changed since it
//! last read, about once a second ([`Progress::since`]): a link that opens reads
//! everything (a full report: the router forgets what it does not name). Ends are
//! remembered for [`ENDED_KEPT`] of them; a link that fell further behind reads
//! everything again.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use switchyard_core::Jid;

/// Ends remembered for links that have not read them yet.
const ENDED_KEPT: usize = 65_536;

/// One resumable session as the routers hear of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    pub conn: u64,
    pub id: String,
    pub jid: String,
    pub max_secs: u32,
    /// The client's last `h`.
    pub acked: u32,
    /// The client's stanzas handled.
    pub handled: u32,
}

/// What a link has not heard yet: changed sessions and ended ones.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub sessions: Vec<Reported>,
    pub ended: Vec<u64>,
    /// Every session held: the router forgets the others.
    pub full: bool,
}

impl Report {
    /// Nothing to send (a full report always goes, if only to say there is nothing).
    pub fn is_empty(&self) -> bool {
        !self.full && self.sessions.is_empty() && self.ended.is_empty()
    }
}

#[derive(Debug, Default)]
struct Table {
    version: u64,
    sessions: HashMap<u64, (u64, Reported)>,
    /// `(version, conn)` of sessions that ended, oldest first.
    ended: VecDeque<(u64, u64)>,
    /// The newest version of an end no longer remembered.
    forgotten: u64,
}

/// The resumable sessions of this edge, versioned for the links (see the module doc).
#[derive(Debug, Default)]
pub struct Progress {
    table: Mutex<Table>,
}

impl Progress {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Session `conn` became resumable (or resumed here from another edge).
    pub fn enabled(&self, conn: u64, id: &str, jid: &Jid, max_secs: u32, counts: (u32, u32)) {
        let mut table = self.lock();
        table.version += 1;
        let version = table.version;
        let (acked, handled) = counts;
        let reported = Reported {
            conn,
            id: id.to_owned(),
            jid: jid.to_string(),
            max_secs,
            acked,
            handled,
        };
        table.sessions.insert(conn, (version, reported));
    }

    /// Session `conn`'s counts moved: its client acknowledged up to `acked`, `handled` of
    /// its stanzas are.
    pub fn acked(&self, conn: u64, acked: u32, handled: u32) {
        let mut table = self.lock();
        table.version += 1;
        let version = table.version;
        if let Some((v, s)) = table.sessions.get_mut(&conn) {
            *v = version;
            s.acked = acked;
            s.handled = handled;
        }
    }

    /// Session `conn` ended here (or moved to another edge).
    pub fn ended(&self, conn: u64) {
        let mut table = self.lock();
        if table.sessions.remove(&conn).is_none() {
            return;
        }
        table.version += 1;
        let version = table.version;
        table.ended.push_back((version, conn));
        if table.ended.len() > ENDED_KEPT {
            if let Some((v, _)) = table.ended.pop_front() {
                table.forgotten = v;
            }
        }
    }

    /// What a link that read up to version `seen` (0: never) has not heard, and the
    /// version to pass next time.
    pub fn since(&self, seen: u64) -> (Report, u64) {
        let table = self.lock();
        // Behind the remembered ends: everything, as for a link that just opened.
        let seen = if seen < table.forgotten { 0 } else { seen };
        let sessions = table
            .sessions
            .values()
            .filter(|(v, _)| *v > seen)
            .map(|(_, s)| s.clone())
            .collect();
        let full = seen == 0;
        let ended = match full {
            true => Vec::new(),
            false => table
                .ended
                .iter()
                .filter(|(v, _)| *v > seen)
                .map(|(_, conn)| *conn)
                .collect(),
        };
        let report = Report {
            sessions,
            ended,
            full,
        };
        (report, table.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(n: u64) -> Jid {
        Jid::parse(&format!("u{n}@example.com/r")).unwrap()
    }

    #[test]
    fn a_new_link_hears_everything_and_then_only_changes() {
        let p = Progress::default();
        p.enabled(1, "a", &jid(1), 300, (0, 0));
        p.enabled(2, "b", &jid(2), 300, (0, 0));
        let (all, v) = p.since(0);
        assert_eq!(all.sessions.len(), 2);
        assert!(
            all.full && all.ended.is_empty(),
            "a new link hears a full report"
        );
        assert!(p.since(v).0.is_empty(), "nothing changed");
        p.acked(1, 7, 3);
        p.ended(2);
        let (changes, v2) = p.since(v);
        assert_eq!(changes.sessions.len(), 1);
        assert_eq!(
            (changes.sessions[0].acked, changes.sessions[0].handled),
            (7, 3)
        );
        assert_eq!(changes.ended, [2]);
        assert!(p.since(v2).0.is_empty());
        let (fresh, _) = p.since(0);
        assert_eq!(fresh.sessions.len(), 1, "the ended one is not listed");
    }

    #[test]
    fn an_ack_or_end_of_an_unknown_session_is_nothing() {
        let p = Progress::default();
        p.acked(9, 1, 1);
        p.ended(9);
        let (report, _) = p.since(0);
        assert!(report.sessions.is_empty() && report.ended.is_empty());
        assert!(
            report.full && !report.is_empty(),
            "an empty full report still goes"
        );
    }

    /// Exactly the ends remembered still reach a link that is behind; one more end and
    /// the link reads everything again instead (and forgets on its own what is gone).
    #[test]
    fn a_link_further_behind_than_the_ends_remembered_reads_everything() {
        let p = Progress::default();
        p.enabled(0, "keep", &jid(0), 300, (0, 0));
        let (_, seen) = p.since(0);
        let total = ENDED_KEPT as u64;
        for conn in 1..=total {
            p.enabled(conn, "x", &jid(conn), 300, (0, 0));
            p.ended(conn);
        }
        let (behind, _) = p.since(seen);
        assert_eq!(behind.ended.len(), ENDED_KEPT, "every end still remembered");
        p.enabled(total + 1, "y", &jid(total + 1), 300, (0, 0));
        p.ended(total + 1);
        let (again, _) = p.since(seen);
        assert!(
            again.full && again.ended.is_empty(),
            "too far behind: a full report"
        );
        assert_eq!(again.sessions.len(), 1, "the session still held");
        assert_eq!(again.sessions[0].id, "keep");
    }
}
