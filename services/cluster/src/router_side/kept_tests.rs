use super::*;

const EDGE: &str = "edge-b";
const LINK: (&str, u64) = (EDGE, 1);

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

/// The client's acknowledgements free the copies they cover, and only those; a number
/// already covered, or out of order, is not kept.
#[test]
fn acknowledgements_trim_the_copies_they_cover() {
    let kept = Kept::new(1 << 20);
    kept.progress(LINK, vec![announced(7, 0)], &[], false);
    for seq in 1..=5 {
        kept.copy(LINK, 7, seq, xml(seq));
    }
    kept.copy(LINK, 7, 3, xml(3));
    kept.progress(LINK, vec![announced(7, 3)], &[], false);
    kept.copy(LINK, 7, 2, xml(2));
    kill(&kept, Instant::now());
    let slice = kept.take(EDGE, 7).expect("resumable");
    assert_eq!(seqs(&slice), [4, 5]);
    assert!(kept.take(EDGE, 7).is_none(), "taken once");
}

/// Numbers wrap at 2^32: an acknowledgement just past the wrap still trims in order.
#[test]
fn numbers_that_wrap_trim_in_order() {
    let kept = Kept::new(1 << 20);
    kept.progress(LINK, vec![announced(7, u32::MAX - 2)], &[], false);
    for seq in [u32::MAX - 1, u32::MAX, 0, 1] {
        kept.copy(LINK, 7, seq, xml(seq));
    }
    kept.progress(LINK, vec![announced(7, 0)], &[], false);
    kill(&kept, Instant::now());
    assert_eq!(seqs(&kept.take(EDGE, 7).unwrap()), [1]);
}

/// A session found by its SM-ID only when it is the account's, its edge's link is lost,
/// and its time is not up; taken only once the registry declared the edge dead.
#[test]
fn an_orphan_is_found_by_its_id_only_for_its_account_and_in_time() {
    let kept = Kept::new(1 << 20);
    kept.progress(LINK, vec![announced(7, 0)], &[], false);
    let now = Instant::now();
    let bob = jid().bare();
    assert!(
        kept.orphan("sm-7", &bob, now).is_none(),
        "its edge is alive"
    );
    kept.link(EDGE, Some(now));
    let (orphan, dead) = kept.orphan("sm-7", &bob, now).expect("lost");
    assert!(!dead, "cut off, not yet declared dead");
    assert_eq!((orphan.edge.as_str(), orphan.conn), (EDGE, 7));
    assert!(
        kept.take(EDGE, 7).is_none(),
        "not before the registry says so"
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

/// The link coming back makes the session an ordinary one again.
#[test]
fn a_link_that_comes_back_ends_the_orphanhood() {
    let kept = Kept::new(1 << 20);
    kept.progress(LINK, vec![announced(7, 0)], &[], false);
    kill(&kept, Instant::now());
    kept.link(EDGE, None);
    assert!(kept.orphan("sm-7", &jid().bare(), Instant::now()).is_none());
    assert!(kept.take(EDGE, 7).is_none());
}

/// Past `max` the copies go out to be stored offline, once; the record stays for the
/// grace (other routers store their share), then the entry is forgotten.
#[test]
fn past_max_the_copies_expire_once_and_the_record_stays_for_the_grace() {
    let kept = Kept::new(1 << 20);
    kept.progress(LINK, vec![announced(7, 0)], &[], false);
    kept.copy(LINK, 7, 1, xml(1));
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
/// bound likewise.
#[test]
fn past_a_bound_the_session_is_spoiled_and_no_other() {
    let kept = Kept::new(1 << 30);
    kept.progress(LINK, vec![announced(7, 0), announced(8, 0)], &[], false);
    for seq in 1..=MAX_COPIES as u32 {
        kept.copy(LINK, 7, seq, xml(seq));
    }
    kept.copy(LINK, 8, 1, xml(1));
    assert_eq!(
        kept.lock().entries[&(EDGE.to_owned(), 7)].copies.len(),
        MAX_COPIES
    );
    kept.copy(LINK, 7, MAX_COPIES as u32 + 1, xml(0));
    let beat = kill(&kept, Instant::now());
    assert_eq!(beat.keep, [(jid(), 8)], "only the unspoiled session stays");
    assert_eq!(kept.lock().bytes, xml(1).len());

    let small = Kept::new(xml(1).len() * 2);
    small.progress(LINK, vec![announced(7, 0), announced(8, 0)], &[], false);
    small.copy(LINK, 8, 1, xml(1));
    small.copy(LINK, 7, 1, xml(1));
    small.copy(LINK, 7, 2, xml(2));
    kill(&small, Instant::now());
    assert!(
        small.take(EDGE, 7).is_none(),
        "spoiled by the router's bound"
    );
    assert_eq!(seqs(&small.take(EDGE, 8).unwrap()), [1]);
}

/// A complete full report forgets what it did not name; an end forgets at once.
#[test]
fn a_full_report_forgets_the_sessions_it_does_not_name() {
    let kept = Kept::new(1 << 20);
    kept.progress(LINK, vec![announced(7, 0), announced(8, 0)], &[], false);
    kept.copy(LINK, 8, 1, xml(1));
    kept.progress(LINK, vec![], &[7], false);
    let relinked = (EDGE, 2);
    kept.progress(relinked, vec![announced(9, 0)], &[], true);
    let beat = kill(&kept, Instant::now());
    assert_eq!(beat.keep, [(jid(), 9)]);
    assert_eq!(kept.lock().bytes, 0, "session 8's copy went with it");
}

/// The counts of the client's stanzas routed: the highest, wrapping.
#[test]
fn the_highest_count_handled_is_kept() {
    let kept = Kept::new(1 << 20);
    kept.progress(LINK, vec![announced(7, 0)], &[], false);
    kept.handled(LINK, 7, u32::MAX);
    kept.handled(LINK, 7, 2);
    kept.handled(LINK, 7, 1);
    kill(&kept, Instant::now());
    assert_eq!(kept.take(EDGE, 7).unwrap().handled, Some(2));
}

/// Two sessions announcing one SM-ID: neither is trusted.
#[test]
fn an_sm_id_claimed_twice_spoils_both() {
    let kept = Kept::new(1 << 20);
    let mut twin = announced(8, 0);
    twin.id = "sm-7".into();
    kept.progress(LINK, vec![announced(7, 0), twin], &[], false);
    let beat = kill(&kept, Instant::now());
    assert!(beat.keep.is_empty());
}
