//! Feeds arbitrary text to `Element::parse` (stanzas from the cluster link and storage):
//! it must never panic, and whatever it accepts must serialize to XML that parses again
//! and serializes the same (the serializer's output is a fixpoint).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::xml::{Element, Limits};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Small limits too, so that each limit is reached by short inputs.
    let small = Limits { max_stanza_bytes: 2048, max_depth: 8, max_elements: 64, max_attributes: 4, max_attribute_bytes: 64, ..Limits::default() };
    let _ = Element::parse_with(text, &small);
    let Ok(element) = Element::parse(text) else {
        return;
    };
    let written = element.to_xml("");
    let again = Element::parse(&written).expect("our own output parses");
    assert_eq!(again.to_xml(""), written);
});
