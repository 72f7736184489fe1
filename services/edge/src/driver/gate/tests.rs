use super::*;

fn send(text: &str) -> Output {
    Output::Send(text.to_owned())
}

fn sends(outputs: &[Output]) -> Vec<&str> {
    outputs
        .iter()
        .map(|o| match o {
            Output::Send(text) => text.as_str(),
            Output::Close => "close",
            _ => "other",
        })
        .collect()
}

/// A stanza marked to wait, and what is written after it, go only once it is confirmed;
/// what came before it, and outputs that are not writes, go at once.
#[test]
fn a_marked_stanza_and_the_writes_behind_it_wait_for_its_confirmation() {
    let now = Instant::now();
    let mut gate = Gate::default();
    gate.mark(1, 7);
    let out = gate.pass(
        vec![send("a"), send("m7"), Output::StartTls, send("b")],
        now,
        false,
    );
    assert_eq!(sends(&out), ["a", "other"]);
    assert_eq!(gate.deadline(), Some(now + PATIENCE));
    assert!(
        gate.pass(vec![send("c")], now, false).is_empty(),
        "behind the wait"
    );
    gate.confirm(7);
    assert_eq!(sends(&gate.pass(Vec::new(), now, false)), ["m7", "b", "c"]);
    assert!(gate.is_empty() && gate.deadline().is_none());
}

/// Confirmations from two routers come in any order; writes keep the session's order.
#[test]
fn a_later_confirmation_waits_for_the_earlier_one() {
    let now = Instant::now();
    let mut gate = Gate::default();
    gate.mark(0, 1);
    gate.mark(1, 2);
    assert!(gate
        .pass(vec![send("m1"), send("m2")], now, false)
        .is_empty());
    gate.confirm(2);
    assert!(
        gate.pass(Vec::new(), now, false).is_empty(),
        "m1 still waits"
    );
    gate.confirm(1);
    assert_eq!(sends(&gate.pass(Vec::new(), now, false)), ["m1", "m2"]);
    assert!(gate.is_empty());
}

/// A confirmation can come in the same batch of commands as its delivery, before the
/// delivery's outputs reach the gate.
#[test]
fn a_confirmation_before_the_outputs_pass_counts() {
    let now = Instant::now();
    let mut gate = Gate::default();
    gate.mark(0, 5);
    gate.confirm(5);
    assert_eq!(sends(&gate.pass(vec![send("m5")], now, false)), ["m5"]);
    assert!(gate.is_empty());
}

/// A router that never confirms holds a stanza for the patience and no longer; the write
/// is counted as unconfirmed.
#[test]
fn an_unconfirmed_stanza_is_written_after_the_patience() {
    let now = Instant::now();
    let mut gate = Gate::default();
    gate.mark(0, 9);
    assert!(gate
        .pass(vec![send("m9"), send("x")], now, false)
        .is_empty());
    let just_before = now + PATIENCE - Duration::from_millis(1);
    assert!(gate.pass(Vec::new(), just_before, false).is_empty());
    let before = metrics::EDGE_SM_UNCONFIRMED.get();
    assert_eq!(
        sends(&gate.pass(Vec::new(), now + PATIENCE, false)),
        ["m9", "x"]
    );
    assert!(metrics::EDGE_SM_UNCONFIRMED.get() > before);
    assert!(gate.is_empty());
    // Its confirmation arriving late releases nothing that waits after it.
    gate.mark(0, 10);
    assert!(gate
        .pass(vec![send("m10")], now + PATIENCE, false)
        .is_empty());
    gate.confirm(9);
    assert!(gate.pass(Vec::new(), now + PATIENCE, false).is_empty());
}

/// A close writes what waits first: the stream's end follows every write before it.
#[test]
fn a_close_writes_what_waits_before_it() {
    let now = Instant::now();
    let mut gate = Gate::default();
    gate.mark(0, 3);
    let out = gate.pass(
        vec![send("m3"), send("</stream:stream>"), Output::Close],
        now,
        false,
    );
    assert_eq!(sends(&out), ["m3", "</stream:stream>", "close"]);
    assert!(gate.is_empty());
}

/// A close that detaches the session writes nothing that waits (it is all in the queue
/// a resumption resends) and keeps the numbers, for the resumption to wait on.
#[test]
fn a_close_that_detaches_writes_nothing_that_waits() {
    let now = Instant::now();
    let mut gate = Gate::default();
    gate.mark(1, 3);
    let lost = vec![send("a"), send("m3"), send("r"), Output::Close];
    assert_eq!(sends(&gate.pass(lost, now, true)), ["a", "close"]);
    assert!(gate.deadline().is_none(), "nothing queued");
    assert_eq!(gate.marks, [(0, 3)], "kept for the resumption");
    gate.confirm(3);
    assert!(gate.is_empty());
}

/// Behind a stanza already waiting, the same: the numbers of both are kept, the writes go.
#[test]
fn a_close_that_detaches_keeps_every_number_waiting() {
    let now = Instant::now();
    let mut gate = Gate::default();
    gate.mark(0, 2);
    assert!(gate.pass(vec![send("m2")], now, false).is_empty());
    gate.mark(1, 3);
    let lost = vec![send("a"), send("m3"), Output::Close];
    assert_eq!(sends(&gate.pass(lost, now, true)), ["close"]);
    assert_eq!(gate.marks, [(0, 2), (0, 3)]);
}

/// A number confirmed before the stream was lost, though still marked, does not make
/// the resumption wait.
#[test]
fn a_mark_confirmed_before_the_stream_was_lost_is_not_waited_for() {
    let now = Instant::now();
    let mut gate = Gate::default();
    gate.mark(0, 4);
    assert!(gate.pass(vec![send("m4")], now, false).is_empty());
    gate.mark(0, 5);
    gate.confirm(5);
    gate.detach();
    assert_eq!(gate.marks, [(0, 4)]);
}

/// Numbers wrap at 2^32; numbers outside those waiting (made up, or long written) are
/// not remembered, so a lying router cannot grow the gate.
#[test]
fn numbers_wrap_and_numbers_not_waiting_are_ignored() {
    let now = Instant::now();
    let mut gate = Gate::default();
    gate.mark(0, u32::MAX);
    gate.mark(1, 0);
    assert!(gate
        .pass(vec![send("max"), send("zero")], now, false)
        .is_empty());
    for bogus in [1, 2, 1_000, u32::MAX - 1, u32::MAX / 2] {
        gate.confirm(bogus);
    }
    assert!(gate.confirmed.is_empty(), "{:?}", gate.confirmed);
    gate.confirm(0);
    assert!(gate.pass(Vec::new(), now, false).is_empty());
    gate.confirm(u32::MAX);
    assert_eq!(sends(&gate.pass(Vec::new(), now, false)), ["max", "zero"]);
    assert!(gate.is_empty());
    gate.confirm(4);
    assert!(gate.confirmed.is_empty(), "nothing waits: nothing is taken");
}

/// A stream lost while stanzas wait: the writes go (the resend queue holds them), the
/// numbers stay; what is delivered while detached is numbered too; the resumed stream's
/// first words wait until every one of them is confirmed.
#[test]
fn a_resumption_waits_for_what_was_unconfirmed_when_the_stream_was_lost() {
    let now = Instant::now();
    let mut gate = Gate::default();
    gate.mark(0, 1);
    gate.mark(1, 2);
    gate.mark(2, 3);
    assert!(gate
        .pass(vec![send("m1"), send("m2"), send("m3")], now, false)
        .is_empty());
    gate.confirm(2);
    gate.detach();
    assert_eq!(gate.marks, [(0, 1), (0, 3)], "2 was confirmed");
    gate.mark(0, 4); // delivered while detached
    gate.confirm(3);
    gate.confirm(77); // never marked: nothing
    assert_eq!(gate.marks, [(0, 1), (0, 4)]);
    let resumed = vec![
        send("resumed"),
        send("m1"),
        send("m2"),
        send("m3"),
        send("m4"),
    ];
    assert!(
        gate.pass(resumed, now, false).is_empty(),
        "1 and 4 still unconfirmed"
    );
    gate.confirm(4);
    assert!(gate.pass(Vec::new(), now, false).is_empty());
    gate.confirm(1);
    let out = gate.pass(Vec::new(), now, false);
    assert_eq!(sends(&out), ["resumed", "m1", "m2", "m3", "m4"]);
    assert!(gate.is_empty());
}

/// Everything confirmed while detached leaves nothing to wait for: the gate is empty.
#[test]
fn confirmations_while_detached_empty_the_gate() {
    let now = Instant::now();
    let mut gate = Gate::default();
    gate.mark(0, 8);
    assert!(gate.pass(vec![send("m8")], now, false).is_empty());
    gate.detach();
    gate.mark(0, 9);
    gate.confirm(9);
    gate.confirm(8);
    assert!(gate.is_empty());
    assert_eq!(
        sends(&gate.pass(vec![send("resumed")], now, false)),
        ["resumed"]
    );
}
