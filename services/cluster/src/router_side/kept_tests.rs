use super::lifecycle::Beat;
use super::*;

const EDGE: &str = "edge-b";
/// An ordinary report, and the messages of a full one.
const CHANGES: (bool, bool) = (false, false);
const FULL: (bool, bool) = (true, false);
const FULL_END: (bool, bool) = (true, true);

fn jid() -> Jid {
    Jid::parse("bob@example.com/phone").unwrap()
}

fn announced(conn: u64, acked: u32) -> Announced {
    Announced {
        conn,
        id: format!("sm-{conn}"),
        jid: jid(),
        max_secs: 60,
        acked,
        handled: 0,
    }
}

fn xml(seq: u32) -> Arc<str> {
    format!("<message id='m{seq}'/>").into()
}

fn seqs(slice: &Slice) -> Vec<u32> {
    slice.copies.iter().map(|(s, _)| *s).collect()
}

/// Kills the edge: its link is lost at `at`, and the registry declares it dead.
fn kill(kept: &Kept, at: Instant) -> Beat {
    kept.link(EDGE, Some(at));
    kept.dead_edge(EDGE, at)
}

fn keys(kept: &Kept) -> Vec<u64> {
    let mut conns: Vec<u64> = kept.lock().entries.keys().map(|(_, c)| *c).collect();
    conns.sort_unstable();
    conns
}

/// The client's acknowledgements free the copies they cover, and only those; a number
/// already covered, or already kept, is not kept again.
#[test]
fn acknowledgements_trim_the_copies_they_cover() {
    let kept = Kept::new(1 << 20);
    kept.progress(EDGE, vec![announced(7, 0)], &[], CHANGES);
    for seq in 1..=5 {
        kept.copy(EDGE, 7, seq, xml(seq));
    }
    kept.copy(EDGE, 7, 3, xml(3));
    assert_eq!(kept.lock().bytes, 5 * xml(1).len(), "3 is kept once");
    kept.progress(EDGE, vec![announced(7, 3)], &[], CHANGES);
    kept.copy(EDGE, 7, 2, xml(2));
    kill(&kept, Instant::now());
    let slice = kept.take(EDGE, 7).expect("resumable");
    assert_eq!(seqs(&slice), [4, 5]);
    assert!(kept.take(EDGE, 7).is_none(), "taken once");
    assert_eq!(kept.lock().bytes, 0);
}

/// Answers read out of order (two batches to one connection, answered as each chain
/// completes) keep every copy, in the session's order, across the wrap too.
#[test]
fn copies_answered_out_of_order_are_kept_in_order() {
    let kept = Kept::new(1 << 20);
    let first = u32::MAX - 2;
    kept.progress(EDGE, vec![announced(7, first - 1)], &[], CHANGES);
    for step in [1, 0, 4, 2, 3, 4] {
        let seq = first.wrapping_add(step);
        kept.copy(EDGE, 7, seq, xml(seq));
    }
    kill(&kept, Instant::now());
    let slice = kept.take(EDGE, 7).expect("resumable");
    assert_eq!(seqs(&slice), [u32::MAX - 2, u32::MAX - 1, u32::MAX, 0, 1]);
}

/// Numbers wrap at 2^32: an acknowledgement just past the wrap still trims in order.
#[test]
fn numbers_that_wrap_trim_in_order() {
    let kept = Kept::new(1 << 20);
    kept.progress(EDGE, vec![announced(7, u32::MAX - 2)], &[], CHANGES);
    for seq in [u32::MAX - 1, u32::MAX, 0, 1] {
        kept.copy(EDGE, 7, seq, xml(seq));
    }
    kept.progress(EDGE, vec![announced(7, 0)], &[], CHANGES);
    kill(&kept, Instant::now());
    assert_eq!(seqs(&kept.take(EDGE, 7).unwrap()), [1]);
}

/// Copies and counts of a session the router was never told of are not kept: no entry
/// can outlive a session whose end it would never hear of.
#[test]
fn nothing_is_kept_for_a_session_never_announced() {
    let kept = Kept::new(1 << 20);
    kept.copy(EDGE, 7, 1, xml(1));
    kept.handled(EDGE, 7, 3);
    assert!(kept.lock().entries.is_empty());
    assert_eq!(kept.lock().bytes, 0);
    kept.progress(EDGE, vec![announced(7, 0)], &[7], CHANGES);
    kept.handled(EDGE, 7, 3);
    assert!(kept.lock().entries.is_empty(), "an end in the same report");
}

/// Found by its SM-ID only for its account; alive, it is found but not declared dead
/// (the caller waits); past its `max` from the link's loss, not at all.
#[test]
fn a_session_is_found_by_its_id_only_for_its_account_and_in_time() {
    let kept = Kept::new(1 << 20);
    kept.progress(EDGE, vec![announced(7, 0)], &[], CHANGES);
    let now = Instant::now();
    let bob = jid().bare();
    let (orphan, dead) = kept.orphan("sm-7", &bob, now).expect("known");
    assert!(!dead, "its edge is alive as far as this router knows");
    assert_eq!((orphan.edge.as_str(), orphan.conn), (EDGE, 7));
    kept.link(EDGE, Some(now));
    assert!(
        !kept.orphan("sm-7", &bob, now).unwrap().1,
        "cut off, not declared dead"
    );
    let alice = Jid::parse("alice@example.com").unwrap();
    assert!(
        kept.orphan("sm-7", &alice, now).is_none(),
        "not another account's"
    );
    assert!(kept.orphan("sm-8", &bob, now).is_none());
    let beat = kept.dead_edge(EDGE, now);
    assert_eq!(beat.keep, [(jid(), 7)]);
    assert!(kept.orphan("sm-7", &bob, now).unwrap().1, "declared dead");
    let late = now + Duration::from_secs(61);
    assert!(kept.orphan("sm-7", &bob, late).is_none(), "past its max");
}

/// A router whose own beat has not yet declared the edge dead still hands its share
/// over: the registry already says the session moved (the caller checks that).
#[test]
fn a_share_is_taken_before_this_router_declares_the_edge_dead() {
    let kept = Kept::new(1 << 20);
    kept.progress(EDGE, vec![announced(7, 0)], &[], CHANGES);
    kept.copy(EDGE, 7, 1, xml(1));
    kept.handled(EDGE, 7, 4);
    let slice = kept.take(EDGE, 7).expect("a share");
    assert_eq!((seqs(&slice), slice.handled), (vec![1], 4));
}

/// The link coming back makes the session an ordinary one again.
#[test]
fn a_link_that_comes_back_ends_the_orphanhood() {
    let kept = Kept::new(1 << 20);
    kept.progress(EDGE, vec![announced(7, 0)], &[], CHANGES);
    kill(&kept, Instant::now());
    kept.link(EDGE, None);
    let (_, dead) = kept.orphan("sm-7", &jid().bare(), Instant::now()).unwrap();
    assert!(!dead);
    assert!(kept.knew(EDGE));
}

/// Past `max` the copies go out to be stored offline, once; the record stays for the
/// grace (other routers store their share), then the entry is forgotten.
#[test]
fn past_max_the_copies_expire_once_and_the_record_stays_for_the_grace() {
    let kept = Kept::new(1 << 20);
    kept.progress(EDGE, vec![announced(7, 0)], &[], CHANGES);
    kept.copy(EDGE, 7, 1, xml(1));
    let t0 = Instant::now();
    let first = kill(&kept, t0);
    assert!(first.expired.is_empty());
    let t1 = t0 + Duration::from_secs(60);
    let expired = kept.dead_edge(EDGE, t1);
    assert_eq!(expired.expired.len(), 1);
    assert_eq!(expired.expired[0].2.len(), 1, "its one copy");
    assert_eq!(expired.keep.len(), 1, "the record stays");
    let again = kept.dead_edge(EDGE, t1 + Duration::from_secs(1));
    assert!(again.expired.is_empty(), "stored once");
    assert_eq!(again.keep.len(), 1, "within the grace");
    assert!(kept.take(EDGE, 7).is_none(), "no longer resumable");
    let after_grace = kept.dead_edge(EDGE, t1 + GRACE);
    assert!(after_grace.keep.is_empty() && after_grace.expired.is_empty());
    assert_eq!(kept.lock().bytes, 0);
}

/// The bounds: exactly [`MAX_COPIES`] fit, one more spoils the session (not resumable
/// after its edge dies, its bytes freed), never another session; the router's byte
/// bound spoils the session whose copy would pass it.
#[test]
fn past_a_bound_the_session_is_spoiled_and_no_other() {
    let kept = Kept::new(1 << 30);
    kept.progress(EDGE, vec![announced(7, 0), announced(8, 0)], &[], CHANGES);
    for seq in 1..=MAX_COPIES as u32 {
        kept.copy(EDGE, 7, seq, xml(seq));
    }
    kept.copy(EDGE, 8, 1, xml(1));
    assert_eq!(
        kept.lock().entries[&(EDGE.to_owned(), 7)].copies.len(),
        MAX_COPIES
    );
    kept.copy(EDGE, 7, MAX_COPIES as u32 + 1, xml(0));
    let beat = kill(&kept, Instant::now());
    assert_eq!(beat.keep, [(jid(), 8)], "only the unspoiled session stays");
    assert_eq!(kept.lock().bytes, xml(1).len());

    let small = Kept::new(xml(1).len() * 2);
    small.progress(EDGE, vec![announced(7, 0), announced(8, 0)], &[], CHANGES);
    small.copy(EDGE, 8, 1, xml(1));
    small.copy(EDGE, 7, 1, xml(1));
    small.copy(EDGE, 7, 2, xml(2));
    assert!(
        small.take(EDGE, 7).is_none(),
        "spoiled by the router's bound"
    );
    assert_eq!(seqs(&small.take(EDGE, 8).unwrap()), [1]);
}

/// A full report forgets what it did not name once complete, whether it follows a new
/// link or a link that fell behind; an end forgets at once.
#[test]
fn a_full_report_forgets_the_sessions_it_does_not_name() {
    let kept = Kept::new(1 << 20);
    kept.progress(EDGE, vec![announced(6, 0), announced(7, 0)], &[], FULL_END);
    kept.progress(EDGE, vec![announced(8, 0)], &[], CHANGES);
    kept.copy(EDGE, 8, 1, xml(1));
    kept.progress(EDGE, vec![], &[6], CHANGES);
    assert_eq!(keys(&kept), [7, 8]);
    // The same link, fallen behind: a full report in two messages naming 8 and 9 (and
    // 10 announced meanwhile, which a link never does, but is news either way).
    kept.progress(EDGE, vec![announced(8, 0)], &[], FULL);
    kept.progress(EDGE, vec![announced(10, 0)], &[], CHANGES);
    kept.progress(EDGE, vec![announced(9, 0)], &[], FULL_END);
    assert_eq!(keys(&kept), [8, 9, 10], "7 went");
    assert_eq!(kept.lock().bytes, xml(1).len(), "8 kept its copy");
}

/// A session that moved to another edge announces its SM-ID from there: the newest
/// holds the ID and neither loses anything (live handovers, resumptions); the older one
/// stays under its own key until its end is heard.
#[test]
fn an_sm_id_announced_again_elsewhere_belongs_to_the_newest() {
    let kept = Kept::new(1 << 20);
    kept.progress(EDGE, vec![announced(7, 0)], &[], CHANGES);
    kept.copy(EDGE, 7, 1, xml(1));
    let mut moved = announced(3, 0);
    moved.id = "sm-7".into();
    kept.progress("edge-c", vec![moved], &[], CHANGES);
    let (found, _) = kept.orphan("sm-7", &jid().bare(), Instant::now()).unwrap();
    assert_eq!((found.edge.as_str(), found.conn), ("edge-c", 3));
    assert_eq!(
        seqs(&kept.take(EDGE, 7).unwrap()),
        [1],
        "the old copies kept"
    );
}

/// A connection id announced again with another session (an edge restarted under the
/// same name counts from 1 again): nothing of the old one carries over.
#[test]
fn a_connection_reused_by_another_session_starts_afresh() {
    let kept = Kept::new(1 << 20);
    kept.progress(EDGE, vec![announced(7, 0)], &[], CHANGES);
    kept.copy(EDGE, 7, 1, xml(1));
    kept.handled(EDGE, 7, 9);
    let mut other = announced(7, 0);
    other.id = "sm-new".into();
    kept.progress(EDGE, vec![other], &[], CHANGES);
    let slice = kept.take(EDGE, 7).unwrap();
    assert!(slice.copies.is_empty() && slice.handled == 0);
    assert!(kept.orphan("sm-7", &jid().bare(), Instant::now()).is_none());
    assert_eq!(kept.lock().bytes, 0);
}

/// The counts of the client's stanzas routed: the highest, wrapping.
#[test]
fn the_highest_count_handled_is_kept() {
    let kept = Kept::new(1 << 20);
    kept.progress(EDGE, vec![announced(7, 0)], &[], CHANGES);
    kept.handled(EDGE, 7, u32::MAX);
    kept.handled(EDGE, 7, 2);
    kept.handled(EDGE, 7, 1);
    assert_eq!(kept.take(EDGE, 7).unwrap().handled, 2);
}

/// An edge cannot make a session wait past [`MAX_WAIT_SECS`].
#[test]
fn an_edge_cannot_make_a_session_wait_for_ever() {
    let kept = Kept::new(1 << 20);
    let mut forever = announced(7, 0);
    forever.max_secs = u32::MAX;
    kept.progress(EDGE, vec![forever], &[], CHANGES);
    let t0 = Instant::now();
    kill(&kept, t0);
    let beat = kept.dead_edge(EDGE, t0 + Duration::from_secs(MAX_WAIT_SECS.into()));
    assert_eq!(beat.expired.len(), 1);
}

/// An edge that went away after ending its sessions is never declared dead (it left no
/// record): its entries are forgotten once no resumption could want them.
#[test]
fn entries_of_a_link_lost_for_good_are_swept() {
    let kept = Kept::new(1 << 20);
    kept.progress(EDGE, vec![announced(7, 0)], &[], CHANGES);
    kept.copy(EDGE, 7, 1, xml(1));
    let t0 = Instant::now();
    kept.link(EDGE, Some(t0));
    let wait = Duration::from_secs(60) + GRACE + FORGOTTEN_AFTER;
    kept.sweep(t0 + wait - Duration::from_secs(1));
    assert_eq!(kept.lock().entries.len(), 1, "still within any wait");
    kept.sweep(t0 + wait);
    assert!(kept.lock().entries.is_empty());
    assert_eq!(kept.lock().bytes, 0);
}

/// One edge's sessions take at most its share: exactly the cap fits, one more is not
/// kept, another edge's still is, and an end frees room.
#[test]
fn an_edge_keeps_at_most_its_share_of_sessions() {
    const CAP: usize = 3;
    let kept = Kept::with_edge_cap(1 << 20, CAP);
    let many: Vec<Announced> = (1..=CAP as u64 + 1)
        .map(|conn| announced(conn, 0))
        .collect();
    kept.progress(EDGE, many, &[], CHANGES);
    assert_eq!(keys(&kept), [1, 2, 3], "exactly the cap, and no more");
    kept.progress("edge-c", vec![announced(9, 0)], &[], CHANGES);
    assert_eq!(keys(&kept), [1, 2, 3, 9], "another edge's is kept");
    kept.progress(EDGE, Vec::new(), &[2], CHANGES);
    kept.progress(EDGE, vec![announced(4, 0)], &[], CHANGES);
    assert_eq!(keys(&kept), [1, 3, 4, 9], "an end makes room");
}
