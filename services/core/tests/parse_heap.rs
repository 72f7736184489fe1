//! Heap taken by parsing, counted by a counting global allocator: the tree a stanza parses
//! into must cost a small multiple of the stanza's bytes, whatever its shape (DESIGN: bad
//! input never takes memory out of proportion). Before namespace names were shared, one
//! 4 KiB `xmlns` around 64,000 `<a/>` (260 KB) took 268 MB.
//!
//! The counter is process-wide, so this file is its own test binary with one test that
//! runs each check in turn: nothing else allocates while a parse is measured.

use cap::Cap;
use proptest::prelude::*;
use std::alloc::System;
use switchyard_core::xml::{Frame, Framer, Limits};
use switchyard_core::Element;

#[global_allocator]
static HEAP: Cap<System> = Cap::new(System, usize::MAX);

/// The worst ratio of retained heap to input bytes any stanza shape reaches: a text node or
/// an element costs one child slot (88 bytes) however few bytes it took (`<a/>x` is 5).
const MAX_RATIO: usize = 40;

/// Bytes the parsed tree holds while alive.
fn retained<T>(parse: impl FnOnce() -> T) -> (T, usize) {
    let before = HEAP.allocated();
    let tree = parse();
    let after = HEAP.allocated();
    (tree, after.saturating_sub(before))
}

fn hostile() -> String {
    let ns = format!("urn:{}", "x".repeat(4092));
    format!("<message xmlns='{ns}'>{}</message>", "<a/>".repeat(64_000))
}

#[test]
fn parsed_trees_take_heap_in_proportion_to_their_input() {
    a_long_namespace_around_many_elements_is_not_copied_per_element();
    the_framer_refuses_the_hostile_stanza_before_building_it();
    a_chat_message_takes_a_few_times_its_size();
    any_stanza_shape_stays_within_a_small_multiple_of_its_size();
    the_densest_shapes_stay_within_the_ratio();
}

/// The shapes that cost the most heap per input byte, at a size where vectors have grown.
fn the_densest_shapes_stay_within_the_ratio() {
    for piece in [
        "<a/>",
        "<a/>x",
        "<a b=''/>",
        "<a b='' c='' d='' e='' f='' g=''/>",
        "<a>x</a>",
    ] {
        let input = format!("<m>{}</m>", piece.repeat(3000));
        let (_tree, heap) = retained(|| Element::parse(&input).unwrap());
        assert!(
            heap <= MAX_RATIO * input.len(),
            "{piece}: {heap} bytes for {}",
            input.len()
        );
    }
}

fn a_long_namespace_around_many_elements_is_not_copied_per_element() {
    let input = hostile();
    let (tree, heap) = retained(|| Element::parse(&input).expect("within internal limits"));
    eprintln!("{} input bytes → {heap} heap bytes", input.len());
    assert_eq!(tree.children().count(), 64_000);
    assert!(heap <= 24 * input.len(), "{heap} bytes for {}", input.len());
}

fn the_framer_refuses_the_hostile_stanza_before_building_it() {
    let header =
        "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
    for framer in [
        Framer::new(Limits::default()),
        Framer::unauthenticated(Limits::default()),
    ] {
        let mut framer = framer;
        framer.push(header.as_bytes());
        assert!(matches!(framer.next_frame(), Ok(Some(Frame::Open(_)))));
        let input = hostile();
        let (result, heap) = retained(|| {
            framer.push(input.as_bytes());
            framer.next_frame().map(|_| ())
        });
        assert!(result.is_err());
        // The pushed bytes themselves, nothing more.
        assert!(heap <= input.len() + 4096, "{heap}");
    }
}

fn a_chat_message_takes_a_few_times_its_size() {
    let input = "<message xmlns='jabber:client' to='juliet@example.com/balcony' from='romeo@example.net/orchard' type='chat' id='ktx72v49' xml:lang='en'><body>Art thou not Romeo, and a Montague?</body><thread>e0ffe42b28561960c6b12b944a092794b9683a38</thread><active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/></message>";
    let (_tree, heap) = retained(|| Element::parse(input).unwrap());
    eprintln!(
        "chat message: {} input bytes → {heap} heap bytes",
        input.len()
    );
    assert!(heap <= 4 * input.len(), "{heap} bytes for {}", input.len());
}

/// One piece of a stanza's content, the densest markup of each kind.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("<a/>".to_owned()),
        Just("x".to_owned()),
        Just("<a b=''/>".to_owned()),
        Just("<a>x</a>".to_owned()),
        Just("<p:a/>".to_owned()),
        Just("<a p:b=''/>".to_owned()),
        Just("&#x10000;".to_owned()),
        "[a-z]{1,3}".prop_map(|n| format!("<{n} xmlns='urn:{n}'><{n}/></{n}>")),
        "[a-z ]{0,40}".prop_map(|t| format!("<b>{t}</b>")),
    ]
}

/// Whatever its shape, a stanza's tree takes at most `MAX_RATIO` times its bytes.
fn any_stanza_shape_stays_within_a_small_multiple_of_its_size() {
    let stanza = (
        proptest::collection::vec(piece(), 1..2000),
        0usize..4000,
        0usize..30,
    )
        .prop_map(|(pieces, long_ns, nested)| {
            let ns = format!("urn:{}", "n".repeat(long_ns));
            let open = "<c>".repeat(nested);
            let close = "</c>".repeat(nested);
            format!(
                "<message xmlns='{ns}' xmlns:p='{ns}p'>{open}{}{close}</message>",
                pieces.concat()
            )
        });
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(64));
    let outcome = runner.run(&stanza, |input| {
        let (tree, heap) = retained(|| Element::parse(&input));
        prop_assert!(tree.is_ok(), "{:?}", tree);
        prop_assert!(
            heap <= MAX_RATIO * input.len(),
            "{} bytes for {}",
            heap,
            input.len()
        );
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}
