//! The fuzz targets' properties (services/core/fuzz), run by `cargo test` on random and
//! markup-shaped input: `Element::parse` and `Jid::parse` never panic, and what they accept
//! prints back to text that parses to the same result (within the size estimate, and
//! passing the check an edge makes of forwarded bytes).

use proptest::prelude::*;
use switchyard_core::xml::{Element, Limits};
use switchyard_core::Jid;

/// The element fuzz target's body.
fn element_round_trips(text: &str) -> Result<(), TestCaseError> {
    let small = Limits {
        max_stanza_bytes: 2048,
        max_depth: 8,
        max_elements: 64,
        max_attributes: 4,
        max_attribute_bytes: 64,
        ..Limits::default()
    };
    let _ = Element::parse_with(text, &small);
    let Ok(element) = Element::parse(text) else {
        return Ok(());
    };
    let written = element.to_xml("");
    // Queues bound bytes by the estimate; an edge writes forwarded bytes it checked.
    prop_assert!(element.estimated_bytes() >= written.len(), "{:?}", written);
    let checked = switchyard_core::xml::one_element(&written, &Limits::INTERNAL);
    prop_assert!(checked.is_ok(), "{:?} for {:?}", checked, written);
    let again = Element::parse(&written);
    prop_assert!(again.is_ok(), "{:?} from {:?}", again, written);
    prop_assert_eq!(again.unwrap().to_xml(""), written);
    Ok(())
}

/// The JID fuzz target's body. When the printed form parses it must be the same address;
/// that it always parses is not asserted: `a@b/x\u{387}` is accepted, normalized to
/// `x\u{B7}`, which OpaqueString then rejects (see the fuzz target).
fn jid_round_trips(text: &str) -> Result<(), TestCaseError> {
    let Ok(jid) = Jid::parse(text) else {
        return Ok(());
    };
    prop_assert!(jid.bare().is_bare());
    let printed = jid.to_string();
    prop_assert_eq!(Jid::parse(&printed), Ok(jid), "{:?}", printed);
    Ok(())
}

fn markup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("<a>"),
        Just("</a>"),
        Just("<b x='1' p:y='2'/>"),
        Just("<p:c xmlns:p='urn:p'>"),
        Just("</p:c>"),
        Just("<d xmlns='urn:d'>"),
        Just("</d>"),
        Just("<e xmlns=''/>"),
        Just("text"),
        Just("&amp;&#x10000;&#1;&#xFFFE;"),
        Just("<![CDATA[<&]]>"),
        Just("\u{FFFF}"),
        Just(" xmlns:p='urn:q' "),
        Just("<"),
        Just(">"),
        Just("'"),
        Just("<!--"),
        Just("<?x?>"),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn element_parse_never_panics_and_its_output_is_a_fixpoint(text in prop_oneof![markup(), ".{0,200}"]) {
        element_round_trips(&text)?;
        element_round_trips(&format!("<m xmlns:p='urn:p'>{text}</m>"))?;
    }

    #[test]
    fn jid_parse_never_panics_and_prints_what_it_parses(
        text in prop_oneof![
            ".{0,80}",
            "([A-Za-zÀ-ÿ0-9.\u{130}\u{212A}\u{FB01}\u{1D400}]{0,8}@)?[a-zA-Z0-9.\u{130}\u{212A}-]{0,12}(/.{0,12})?",
        ]
    ) {
        jid_round_trips(&text)?;
    }
}
