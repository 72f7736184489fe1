//! RFC 6121 Appendix A, cell by cell: every state against every stanza, both directions.

use super::*;
use switchyard_core::Jid;

fn contact() -> Jid {
    Jid::parse("contact@example.net").unwrap()
}

/// A row in the Appendix A notation (`+A` marks a pre-approval); `None` is no row.
fn row(state: &str) -> Option<RosterItem> {
    if state == "None" {
        return None;
    }
    let mut item = RosterItem::new(contact());
    let mut parts = state.split('+');
    item.subscription = Subscription::parse(&parts.next().unwrap().to_lowercase()).unwrap();
    item.listed = true;
    for flag in parts {
        match flag {
            "PO" => item.ask = true,
            "PI" => item.pending_in = Some("<presence type='subscribe'/>".into()),
            "A" => item.approved = true,
            other => panic!("unknown flag {other}"),
        }
    }
    if state == "None+PI" {
        item.listed = false; // a pending request alone is not a roster item
    }
    Some(item)
}

fn state(item: Option<&RosterItem>) -> String {
    let Some(item) = item else {
        return "None".into();
    };
    let mut s = match item.subscription {
        Subscription::None => "None",
        Subscription::To => "To",
        Subscription::From => "From",
        Subscription::Both => "Both",
    }
    .to_owned();
    for (on, flag) in [
        (item.ask, "+PO"),
        (item.pending_in.is_some(), "+PI"),
        (item.approved, "+A"),
    ] {
        if on {
            s.push_str(flag);
        }
    }
    s
}

const KINDS: [Kind; 4] = [
    Kind::Subscribe,
    Kind::Unsubscribe,
    Kind::Subscribed,
    Kind::Unsubscribed,
];

/// `(state, [(new state, routed) for subscribe, unsubscribe, subscribed, unsubscribed])`.
const OUTBOUND: &[(&str, [(&str, bool); 4])] = &[
    (
        "None",
        [
            ("None+PO", true),
            ("None", true),
            ("None+A", false),
            ("None", false),
        ],
    ),
    (
        "None+PO",
        [
            ("None+PO", true),
            ("None", true),
            ("None+PO+A", false),
            ("None+PO", false),
        ],
    ),
    (
        "None+PI",
        [
            ("None+PO+PI", true),
            ("None+PI", true),
            ("From", true),
            ("None", true),
        ],
    ),
    (
        "None+PO+PI",
        [
            ("None+PO+PI", true),
            ("None+PI", true),
            ("From+PO", true),
            ("None+PO", true),
        ],
    ),
    (
        "To",
        [("To", true), ("None", true), ("To+A", false), ("To", false)],
    ),
    (
        "To+PI",
        [
            ("To+PI", true),
            ("None+PI", true),
            ("Both", true),
            ("To", true),
        ],
    ),
    (
        "From",
        [
            ("From+PO", true),
            ("From", true),
            ("From", false),
            ("None", true),
        ],
    ),
    (
        "From+PO",
        [
            ("From+PO", true),
            ("From", true),
            ("From+PO", false),
            ("None+PO", true),
        ],
    ),
    (
        "Both",
        [
            ("Both", true),
            ("From", true),
            ("Both", false),
            ("To", true),
        ],
    ),
    // §3.4: an outbound `unsubscribed` withdraws a pre-approval without routing.
    (
        "None+A",
        [
            ("None+PO+A", true),
            ("None+A", true),
            ("None+A", false),
            ("None", false),
        ],
    ),
];

#[test]
fn appendix_a_2_outbound_every_state_and_stanza() {
    for (from, cells) in OUTBOUND {
        for (kind, (expected, routed)) in KINDS.iter().zip(cells) {
            let before = row(from);
            let (after, fx) = outbound(before.as_ref(), &contact(), *kind);
            let after = after.or(before);
            assert_eq!(
                state(after.as_ref()),
                *expected,
                "{from} + outbound {kind:?}"
            );
            assert_eq!(fx.route, *routed, "{from} + outbound {kind:?} routing");
        }
    }
}

#[test]
fn rfc6121_3_2_2_unavailable_precedes_cancellation_only_for_subscribers() {
    for (from, expected) in [
        ("From", true),
        ("Both", true),
        ("From+PO", true),
        ("None+PI", false),
    ] {
        let (_, fx) = outbound(row(from).as_ref(), &contact(), Kind::Unsubscribed);
        assert_eq!(fx.unavailable_first, expected, "{from}");
    }
    let (_, fx) = outbound(row("None+PI").as_ref(), &contact(), Kind::Subscribed);
    assert!(
        fx.presence_after,
        "§3.1.5: approval is followed by presence"
    );
}

/// `(state, [(new state, delivered) for subscribe, unsubscribe, subscribed, unsubscribed])`.
const INBOUND: &[(&str, [(&str, bool); 4])] = &[
    (
        "None",
        [
            ("None+PI", true),
            ("None", false),
            ("None", false),
            ("None", false),
        ],
    ),
    (
        "None+PO",
        [
            ("None+PO+PI", true),
            ("None+PO", false),
            ("To", true),
            ("None", true),
        ],
    ),
    (
        "None+PI",
        [
            ("None+PI", false),
            ("None", true),
            ("None+PI", false),
            ("None+PI", false),
        ],
    ),
    (
        "None+PO+PI",
        [
            ("None+PO+PI", false),
            ("None+PO", true),
            ("To+PI", true),
            ("None+PI", true),
        ],
    ),
    (
        "To",
        [
            ("To+PI", true),
            ("To", false),
            ("To", false),
            ("None", true),
        ],
    ),
    (
        "To+PI",
        [
            ("To+PI", false),
            ("To", true),
            ("To+PI", false),
            ("None+PI", true),
        ],
    ),
    (
        "From",
        [
            ("From", false),
            ("None", true),
            ("From", false),
            ("From", false),
        ],
    ),
    (
        "From+PO",
        [
            ("From+PO", false),
            ("None+PO", true),
            ("Both", true),
            ("From", true),
        ],
    ),
    (
        "Both",
        [
            ("Both", false),
            ("To", true),
            ("Both", false),
            ("From", true),
        ],
    ),
];

#[test]
fn appendix_a_3_inbound_every_state_and_stanza() {
    for (from, cells) in INBOUND {
        for (kind, (expected, delivered)) in KINDS.iter().zip(cells) {
            let before = row(from);
            let (after, fx) = inbound(before.as_ref(), &contact(), *kind, "<presence/>");
            let after = after.or(before);
            assert_eq!(
                state(after.as_ref()),
                *expected,
                "{from} + inbound {kind:?}"
            );
            assert_eq!(
                fx.deliver != Deliver::Nobody,
                *delivered,
                "{from} + inbound {kind:?}"
            );
        }
    }
}

#[test]
fn rfc6121_3_1_3_subscribers_get_an_automatic_subscribed() {
    for from in ["From", "From+PO", "Both"] {
        let (_, fx) = inbound(
            row(from).as_ref(),
            &contact(),
            Kind::Subscribe,
            "<presence/>",
        );
        assert!(
            fx.auto_subscribed && fx.deliver == Deliver::Nobody,
            "{from}"
        );
    }
}

#[test]
fn rfc6121_3_4_2_preapproved_request_is_approved_not_delivered() {
    let (after, fx) = inbound(
        row("None+A").as_ref(),
        &contact(),
        Kind::Subscribe,
        "<presence/>",
    );
    assert_eq!(state(after.as_ref()), "From");
    assert!(fx.auto_subscribed);
    assert_eq!(fx.deliver, Deliver::Nobody);
}

#[test]
fn rfc6121_3_3_3_unsubscribe_from_a_subscriber_sends_unavailable_back() {
    let (_, fx) = inbound(
        row("Both").as_ref(),
        &contact(),
        Kind::Unsubscribe,
        "<presence/>",
    );
    assert!(fx.unavailable_back);
    let (_, fx) = inbound(
        row("None+PI").as_ref(),
        &contact(),
        Kind::Unsubscribe,
        "<presence/>",
    );
    assert!(!fx.unavailable_back);
}

#[test]
fn roster_pushes_follow_visible_changes_only() {
    let pending = row("None+PI").unwrap();
    let mut pending_changed = pending.clone();
    pending_changed.pending_in = Some("<presence type='subscribe' id='2'/>".into());
    assert!(
        !visible_change(Some(&pending), &pending_changed),
        "hidden bookkeeping"
    );
    let (after, _) = outbound(row("None").as_ref(), &contact(), Kind::Subscribe);
    assert!(
        visible_change(None, &after.unwrap()),
        "a new item is pushed"
    );
}
