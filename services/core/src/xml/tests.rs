//! Element parsing and serialization: limits, characters, namespaces.

use super::*;
use crate::ns;

const HEADER: &str = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' xmlns:foo='urn:foo'>";
const PLAIN_HEADER: &str =
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/// The stanzas a framer yields for `body` after `header`.
fn framed(header: &str, body: &str) -> Result<Vec<Element>, FramerError> {
    let mut framer = Framer::new(Limits::default());
    framer.push(header.as_bytes());
    framer.push(body.as_bytes());
    let mut out = Vec::new();
    while let Some(frame) = framer.next_frame()? {
        if let Frame::Stanza(el, _) = frame {
            out.push(el);
        }
    }
    Ok(out)
}

fn nested(depth: usize) -> String {
    format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth))
}

#[test]
fn stored_stanza_round_trips() {
    let el = Element::new("message", ns::CLIENT)
        .with_attr("to", "a@b")
        .with_child(Element::new("body", ns::CLIENT).with_text("<&'\">"))
        .with_child(Element::new("x", "urn:x").with_attr("v", "1'2"));
    let text = el.to_xml("");
    assert_eq!(Element::parse(&text).unwrap(), el);
    assert!(Element::parse("<a><!-- c --></a>").is_err());
}

#[test]
fn parse_bounds_depth_so_a_deep_stanza_cannot_overflow_the_stack() {
    // Before the limit this parsed, and dropping the tree overflowed the stack.
    let err = Element::parse(&nested(50_000)).unwrap_err();
    assert_eq!(
        err,
        FramerError::PolicyViolation("elements nested too deeply")
    );
    assert!(Element::parse(&nested(Limits::INTERNAL.max_depth)).is_ok());
    assert!(Element::parse(&nested(Limits::INTERNAL.max_depth + 1)).is_err());
}

#[test]
fn parse_with_enforces_bytes_elements_depth_and_attributes() {
    let limits = Limits {
        max_stanza_bytes: 100,
        max_depth: 3,
        max_elements: 4,
        max_attributes: 2,
        ..Limits::default()
    };
    let policy = |text: &str| match Element::parse_with(text, &limits) {
        Err(FramerError::PolicyViolation(why)) => why,
        other => panic!("{text}: {other:?}"),
    };
    assert_eq!(
        policy(&format!("<a>{}</a>", "x".repeat(100))),
        "stanza too large"
    );
    assert_eq!(policy("<a><b/><b/><b/><b/></a>"), "too many elements");
    assert_eq!(policy(&nested(4)), "elements nested too deeply");
    assert_eq!(policy("<a x='' y='' z=''/>"), "too many attributes");
    assert!(Element::parse_with("<a x='' y=''><b/><b/><c><d/></c></a>", &limits).is_err());
    assert!(Element::parse_with("<a x='' y=''><b/><c><d/></c></a>", &limits).is_ok());
}

#[test]
fn parse_accepts_what_a_client_may_send_wrapped_by_the_server() {
    let client = Limits::default();
    // The deepest stanza a client may send, inside a carbon (three more levels).
    let inner = format!("<message>{}</message>", nested(client.max_depth - 1));
    let carbon = format!("<message><received xmlns='{}'><forwarded xmlns='{}'>{inner}</forwarded></received></message>", ns::CARBONS, ns::FORWARD);
    assert!(Element::parse(&carbon).is_ok());
    // The most elements and bytes a client may send, re-serialized with growth.
    let many = format!("<m>{}</m>", "<b/>".repeat(client.max_elements - 1));
    assert!(Element::parse(&many).is_ok());
    let big = Element::new("m", "").with_text("&".repeat(client.max_stanza_bytes));
    assert!(Element::parse(&big.to_xml("")).is_ok());
    // The longest attribute values, all quotes (six bytes each when written), and the most
    // attributes, each in a prefix declared on the stream header (a declaration each when
    // written; the header's other attribute is xmlns:stream).
    let header = (0..client.max_attributes - 1)
        .map(|i| format!(" xmlns:p{i}='urn:{i}'"))
        .collect::<String>();
    let attrs = (0..client.max_attributes - 1)
        .map(|i| format!(" p{i}:a=''"))
        .collect::<String>();
    let quotes = "'".repeat(client.max_attribute_bytes);
    let stanza = format!("<message q=\"{quotes}\"{attrs}/>");
    let header = format!(
        "<stream:stream xmlns='jabber:client' xmlns:stream='{}'{header}>",
        ns::STREAMS
    );
    let parsed = framed(&header, &stanza).unwrap().remove(0);
    let again = Element::parse(&parsed.to_xml("")).unwrap();
    assert_eq!(again.attr("q"), Some(quotes.as_str()));
}

#[test]
fn parse_takes_exactly_one_element() {
    assert!(Element::parse("  <a/>\n").is_ok());
    assert!(Element::parse("<a/><b/>").is_err());
    assert!(Element::parse("<a/>text").is_err());
    assert!(Element::parse("").is_err());
}

#[test]
fn xml_1_0_2_2_characters_outside_char_are_not_well_formed_on_input() {
    for bad in [
        "<body>&#x1;</body>",
        "<body>&#1;</body>",
        "<body>&#xFFFE;</body>",
        "<body>&#xFFFF;</body>",
        "<body a='&#x1b;'/>",
        "<body>\u{FFFE}</body>",
        "<body a='\u{FFFF}'/>",
        "<body>\u{7}</body>",
        "<body><![CDATA[\u{1}]]></body>",
    ] {
        let err = Element::parse(bad).unwrap_err();
        assert!(
            matches!(err, FramerError::NotWellFormed(_)),
            "{bad}: {err:?}"
        );
        let err = framed(PLAIN_HEADER, &format!("<message>{bad}</message>")).unwrap_err();
        assert_eq!(
            err.condition(),
            crate::StreamCondition::NotWellFormed,
            "{bad}"
        );
    }
    let ok =
        Element::parse("<body a='&#9;&#xD7FF;'>&#xA;&#xE000;&#x10FFFF;\u{FFFD}</body>").unwrap();
    assert_eq!(ok.text(), "\n\u{E000}\u{10FFFF}\u{FFFD}");
}

#[test]
fn the_serializer_writes_disallowed_characters_as_replacement_characters() {
    let el = Element::new("body", ns::CLIENT)
        .with_attr("a", "x\u{1}\u{FFFF}")
        .with_text("a\u{0}b\u{FFFE}c\u{1F}\t");
    let xml = el.to_xml(ns::CLIENT);
    assert_eq!(
        xml,
        "<body a='x\u{FFFD}\u{FFFD}'>a\u{FFFD}b\u{FFFD}c\u{FFFD}\t</body>"
    );
    assert!(framed(PLAIN_HEADER, &xml).is_ok());
    assert_eq!(escape_text("\u{8}"), "\u{FFFD}");
    assert_eq!(escape_attr("\u{FFFF}'"), "\u{FFFD}&apos;");
}

#[test]
fn prefixes_from_the_senders_stream_header_are_declared_on_output() {
    let stanza =
        "<message foo:bar='x' to='a@b'><foo:x foo:y='1'><z/></foo:x><c foo:d='2'/></message>";
    let parsed = framed(HEADER, stanza).unwrap().remove(0);
    let written = parsed.to_xml(ns::CLIENT);
    // A fresh parser with only the standard stream scope must accept it.
    let again = framed(PLAIN_HEADER, &written).unwrap().remove(0);
    assert_eq!(again.attr("foo:bar"), Some("x"));
    let x = again
        .child("x", "urn:foo")
        .expect("prefixed element keeps its namespace");
    assert_eq!(x.attr("foo:y"), Some("1"));
    assert!(x.child("z", ns::CLIENT).is_some());
    // Each element on its own too, and a declaration in force is not repeated.
    let c = parsed.child("c", ns::CLIENT).unwrap();
    assert_eq!(
        Element::parse(&c.to_xml("")).unwrap().attr("foo:d"),
        Some("2")
    );
    assert_eq!(
        written.matches("xmlns:foo='urn:foo'").count(),
        1,
        "{written}"
    );
}

#[test]
fn declarations_in_the_stanza_are_kept_and_not_repeated() {
    let stanza = "<message xmlns:p='urn:p'><x p:a='1'><y p:b='2'/></x></message>";
    let parsed = framed(PLAIN_HEADER, stanza).unwrap().remove(0);
    let written = parsed.to_xml(ns::CLIENT);
    assert_eq!(written, stanza);
    let y = parsed.children().next().unwrap().children().next().unwrap();
    assert_eq!(
        y.to_xml(""),
        "<y xmlns='jabber:client' xmlns:p='urn:p' p:b='2'/>"
    );
    // A prefix rebound inside is declared again where it changes.
    let rebound = "<m xmlns:p='urn:1' p:a='1'><n xmlns:p='urn:2' p:a='2'/></m>";
    assert_eq!(Element::parse(rebound).unwrap().to_xml(""), rebound);
}

#[test]
fn attributes_built_in_code_are_never_written_unbound() {
    let el = Element::new("m", "")
        .with_attr("xmlns", "urn:ignored")
        .with_attr("q:unbound", "1")
        .with_attr("xml:lang", "en")
        .with_child(
            Element::new("n", "")
                .with_attr("xmlns:r", "urn:r")
                .with_attr("r:ok", "2"),
        );
    let xml = el.to_xml("");
    assert_eq!(xml, "<m xml:lang='en'><n xmlns:r='urn:r' r:ok='2'/></m>");
    assert!(Element::parse(&xml).is_ok());
}

#[test]
fn namespaces_in_xml_constraints_are_checked() {
    for bad in [
        "<a xmlns:p='' p:x='1'/>",
        "<a xmlns:xml='urn:other'/>",
        "<a xmlns:xmlns='urn:x'/>",
        // Neither reserved namespace may be the default one (other parsers refuse it,
        // so a forwarded stanza would end its recipient's stream).
        "<a xmlns='http://www.w3.org/XML/1998/namespace'/>",
        "<a><b xmlns='http://www.w3.org/2000/xmlns/'/></a>",
        "<a xmlns:p='urn:x' xmlns:q='urn:x' p:k='1' q:k='2'/>",
        "<a p:k='1'/>",
        "<p:a/>",
        "<a :k='1'/>",
        "<a b:c:d='1' xmlns:b='urn:b'/>",
    ] {
        let err = Element::parse(bad).unwrap_err();
        assert!(
            matches!(err, FramerError::NotWellFormed(_)),
            "{bad}: {err:?}"
        );
    }
}

#[test]
fn xml_1_0_2_3_names_are_checked() {
    // quick-xml takes anything up to whitespace as a name, even nothing (found by fuzzing:
    // `<\n/>` came back out as `</>`).
    for bad in [
        "\t<\n\n/>",
        "<1a/>",
        "<a 1b='x'/>",
        "<\u{B7}a/>",
        "<-a/>",
        "<a =''/>",
    ] {
        let err = Element::parse(bad).unwrap_err();
        assert!(
            matches!(err, FramerError::NotWellFormed(_)),
            "{bad:?}: {err:?}"
        );
    }
    assert!(Element::parse("<a\u{B7}b x-y.z='1'/>").is_ok());
}

#[test]
fn children_share_their_parents_namespace() {
    let long = format!("urn:{}", "x".repeat(1000));
    let el = Element::parse(&format!("<m xmlns='{long}'><a/><a/></m>")).unwrap();
    let ptrs: Vec<*const u8> = std::iter::once(&el)
        .chain(el.children())
        .map(|e| e.ns().as_ptr())
        .collect();
    assert!(
        ptrs.windows(2).all(|w| w[0] == w[1]),
        "namespace copied per element"
    );
}

/// A prefix bound once to a long namespace and used by thousands of children: each child
/// is written with its own declaration, so the stanza would go out hundreds of times
/// larger than it came in (found by a black-box test: 28 KB in, 16 MB out). Refused
/// once the declarations it implies pass the stanza limit; ordinary payloads pass.
#[test]
fn declarations_a_stanza_implies_are_bounded_like_the_stanza() {
    let long = format!("urn:{}", "u".repeat(4000));
    let children = "<q:a/>".repeat(100);
    let hostile = format!("<message xmlns='jabber:client'><p:x xmlns:p='urn:s' xmlns:q='{long}'>{children}</p:x></message>");
    assert!(hostile.len() < 10_000);
    let err = Element::parse_with(&hostile, &Limits::default()).unwrap_err();
    assert!(matches!(err, FramerError::PolicyViolation(_)), "{err:?}");
    let framed_err = framed(PLAIN_HEADER, &hostile).unwrap_err();
    assert!(
        matches!(framed_err, FramerError::PolicyViolation(_)),
        "{framed_err:?}"
    );
    // The same shape with a short namespace, and a usual multi-namespace message, pass.
    let fine = hostile.replace(&long, "urn:q");
    let el = Element::parse_with(&fine, &Limits::default()).unwrap();
    assert!(el.to_xml(ns::CLIENT).len() < 4 * fine.len());
    let usual = "<message xmlns='jabber:client'><body>hi</body><active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/></message>";
    assert!(Element::parse_with(usual, &Limits::default()).is_ok());
}

/// Whitespace a parser would normalize is written as references, so the recipient reads
/// what was sent: CR anywhere, tab and LF in attribute values (XML 1.0 §2.11, §3.3.3).
#[test]
fn whitespace_a_parser_normalizes_survives_a_round_trip() {
    let el = Element::new("body", ns::CLIENT)
        .with_attr("a", "\t\n\r")
        .with_text("\r\nx\ty");
    let written = el.to_xml(ns::CLIENT);
    assert!(!written.contains('\r'), "{written:?}");
    assert!(
        written.starts_with("<body a='&#9;&#10;&#13;'>"),
        "{written:?}"
    );
    assert_eq!(Element::parse(&el.to_xml("")).unwrap(), el);
}
