use super::*;
use crate::error::StreamCondition;

const HEADER: &str = "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

fn frames(input: &[u8], chunk: usize) -> Result<Vec<Frame>, FramerError> {
    let mut framer = Framer::new(Limits::default());
    let mut out = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        framer.push(piece);
        while let Some(frame) = framer.next_frame()? {
            if !(frame == Frame::Whitespace && out.last() == Some(&Frame::Whitespace)) {
                out.push(frame);
            }
        }
    }
    Ok(out)
}

fn error_of(body: &str) -> StreamCondition {
    let input = format!("{HEADER}{body}");
    frames(input.as_bytes(), 7)
        .expect_err("must fail")
        .condition()
}

#[test]
fn splits_header_stanzas_whitespace_and_close_at_any_chunking() {
    let input = format!(
        "{HEADER}<message to='b@localhost' id='1'><body>a &amp; b &lt; c</body></message> \n<iq type='get' id='2'><ping xmlns='urn:xmpp:ping'/></iq><presence/></stream:stream>"
    );
    for chunk in [1, 2, 3, 7, 64, 4096] {
        let got = frames(input.as_bytes(), chunk).unwrap();
        assert_eq!(got.len(), 6, "chunk {chunk}: {got:?}");
        let Frame::Open(header) = &got[0] else {
            panic!("no header")
        };
        assert!(header.element.is("stream", crate::ns::STREAMS));
        assert_eq!(header.content_ns.as_deref(), Some("jabber:client"));
        let Frame::Stanza(msg, len) = &got[1] else {
            panic!("no message")
        };
        assert_eq!(*len, input.find(" \n").unwrap() - HEADER.len());
        assert_eq!(msg.ns(), "jabber:client");
        assert_eq!(
            msg.child("body", "jabber:client").unwrap().text(),
            "a & b < c"
        );
        assert_eq!(got[2], Frame::Whitespace);
        let Frame::Stanza(iq, _) = &got[3] else {
            panic!("no iq")
        };
        assert!(iq.child("ping", "urn:xmpp:ping").is_some());
        assert_eq!(got[5], Frame::Close);
    }
}

#[test]
fn round_trips_through_the_serializer() {
    let input = format!("{HEADER}<message xml:lang='en' to='x@y'><body>&apos;hi&apos; &gt;</body><x xmlns='urn:a'><y/></x><![CDATA[<raw>]]></message>");
    let got = frames(input.as_bytes(), 5).unwrap();
    let Frame::Stanza(msg, _) = &got[1] else {
        panic!()
    };
    assert_eq!(
        msg.to_xml("jabber:client"),
        "<message xml:lang='en' to='x@y'><body>&apos;hi&apos; &gt;</body><x xmlns='urn:a'><y/></x>&lt;raw&gt;</message>"
            .replace("&apos;hi&apos;", "'hi'")
    );
}

#[test]
fn prefixed_elements_resolve_against_the_header_scope() {
    let got = frames(
        format!("{HEADER}<stream:error><x xmlns='urn:a'/></stream:error>").as_bytes(),
        3,
    )
    .unwrap();
    let Frame::Stanza(err, _) = &got[1] else {
        panic!()
    };
    assert!(err.is("error", crate::ns::STREAMS));
}

#[test]
fn rfc6120_11_restricted_xml_is_rejected() {
    assert_eq!(error_of("<!-- hi -->"), StreamCondition::RestrictedXml);
    assert_eq!(
        error_of("<message><!-- hi --></message>"),
        StreamCondition::RestrictedXml
    );
    assert_eq!(error_of("<?pi x?>"), StreamCondition::RestrictedXml);
    assert_eq!(
        error_of("<message><body>&custom;</body></message>"),
        StreamCondition::RestrictedXml
    );
    assert_eq!(
        error_of("<message><body a='&ent;'/></message>"),
        StreamCondition::RestrictedXml
    );
    let doctype = frames(b"<!DOCTYPE foo [<!ENTITY x 'y'>]><stream:stream>", 4);
    assert_eq!(
        doctype.unwrap_err().condition(),
        StreamCondition::RestrictedXml
    );
}

#[test]
fn malformed_xml_is_not_well_formed() {
    assert_eq!(
        error_of("<message><body></message></body>"),
        StreamCondition::NotWellFormed
    );
    assert_eq!(
        error_of("<message a='1' a='2'/>"),
        StreamCondition::NotWellFormed
    );
    assert_eq!(error_of("<p:message/>"), StreamCondition::NotWellFormed);
    assert_eq!(
        error_of("<message>\u{1}</message>"),
        StreamCondition::NotWellFormed
    );
    assert_eq!(error_of("</stream:other>"), StreamCondition::NotWellFormed);
}

#[test]
fn invalid_utf8_is_unsupported_encoding() {
    let mut input = HEADER.as_bytes().to_vec();
    input.extend_from_slice(b"<message><body>\xff\xfe</body></message>");
    assert_eq!(
        frames(&input, 3).unwrap_err().condition(),
        StreamCondition::UnsupportedEncoding
    );
    let latin = b"<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream>";
    assert_eq!(
        frames(latin, 9).unwrap_err().condition(),
        StreamCondition::UnsupportedEncoding
    );
}

#[test]
fn text_at_stream_level_is_bad_format() {
    assert_eq!(error_of("hello"), StreamCondition::BadFormat);
}

#[test]
fn limits_are_policy_violations_before_buffering_more() {
    let limits = Limits {
        max_stanza_bytes: 1024,
        max_depth: 4,
        max_attributes: 5,
        max_attribute_bytes: 40,
        ..Limits::default()
    };
    let run = |body: String| {
        let mut framer = Framer::new(limits);
        framer.push(HEADER.as_bytes());
        assert!(matches!(framer.next_frame(), Ok(Some(Frame::Open(_)))));
        framer.push(body.as_bytes());
        let err = framer.next_frame().unwrap_err();
        (err.condition(), framer.buffered())
    };
    // An unterminated giant stanza fails as soon as the limit is passed, not at its end.
    let (cond, _) = run(format!("<message><body>{}", "x".repeat(2000)));
    assert_eq!(cond, StreamCondition::PolicyViolation);
    let (cond, _) = run(format!("<message a='{}", "x".repeat(2000)));
    assert_eq!(cond, StreamCondition::PolicyViolation);
    assert_eq!(
        run("<a><b><c><d><e/></d></c></b></a>".into()).0,
        StreamCondition::PolicyViolation
    );
    assert_eq!(
        run("<a u='0' v='0' w='1' x='2' y='3' z='4'/>".into()).0,
        StreamCondition::PolicyViolation
    );
    assert_eq!(
        run(format!("<a w='{}'/>", "x".repeat(41))).0,
        StreamCondition::PolicyViolation
    );
}

#[test]
fn element_count_is_limited_per_stanza_while_scanning() {
    let limits = Limits {
        max_elements: 3,
        ..Limits::default()
    };
    let mut framer = Framer::new(limits);
    framer.push(format!("{HEADER}<a><b/><c/></a><a><b/><c/></a>").as_bytes());
    assert!(matches!(framer.next_frame(), Ok(Some(Frame::Open(_)))));
    // The count starts over with each stanza.
    assert!(matches!(framer.next_frame(), Ok(Some(Frame::Stanza(..)))));
    assert!(matches!(framer.next_frame(), Ok(Some(Frame::Stanza(..)))));
    // Rejected at the fourth start tag, before the stanza is complete.
    framer.push(b"<a><b/><c/><d/>");
    assert_eq!(
        framer.next_frame(),
        Err(FramerError::PolicyViolation("too many elements"))
    );
    assert_eq!(Limits::default().max_elements, 4096);
}

#[test]
fn depth_counts_the_stanza_as_one_for_empty_and_open_elements_alike() {
    let limits = Limits {
        max_depth: 3,
        ..Limits::default()
    };
    let run = |body: &str| {
        let mut framer = Framer::new(limits);
        framer.push(format!("{HEADER}{body}").as_bytes());
        let _ = framer.next_frame();
        framer.next_frame()
    };
    assert!(matches!(
        run("<a><b><c/></b></a>"),
        Ok(Some(Frame::Stanza(..)))
    ));
    assert!(matches!(
        run("<a><b><c>x</c></b></a>"),
        Ok(Some(Frame::Stanza(..)))
    ));
    assert!(run("<a><b><c><d/></c></b></a>").is_err());
}

#[test]
fn rfc6120_13_12_stanzas_are_small_until_the_peer_authenticates() {
    let limits = Limits::default();
    let stanza = format!("<message><body>{}</body></message>", "x".repeat(20 * 1024));
    let mut framer = Framer::unauthenticated(limits);
    framer.push(HEADER.as_bytes());
    assert!(matches!(framer.next_frame(), Ok(Some(Frame::Open(_)))));
    framer.push(stanza.as_bytes());
    assert_eq!(
        framer.next_frame(),
        Err(FramerError::PolicyViolation("stanza too large"))
    );
    assert!(framer.buffered() <= limits.max_stanza_bytes_before_auth + stanza.len());

    let mut framer = Framer::unauthenticated(limits);
    framer.set_authenticated();
    framer.reset_stream();
    framer.restart();
    framer.push(HEADER.as_bytes());
    framer.push(stanza.as_bytes());
    assert!(matches!(framer.next_frame(), Ok(Some(Frame::Open(_)))));
    assert!(matches!(framer.next_frame(), Ok(Some(Frame::Stanza(..)))));
    assert_eq!(limits.max_stanza_bytes_before_auth, 16 * 1024);
    // Never above the authenticated limit.
    let small = Limits {
        max_stanza_bytes: 1000,
        ..limits
    };
    assert_eq!(small.stanza_bytes(false), 1000);
}

#[test]
fn reset_stream_keeps_pipelined_bytes_and_restart_drops_them() {
    let mut framer = Framer::new(Limits::default());
    framer.push(format!("{HEADER}<a/>{HEADER}").as_bytes());
    assert!(matches!(framer.next_frame(), Ok(Some(Frame::Open(_)))));
    assert!(matches!(framer.next_frame(), Ok(Some(Frame::Stanza(..)))));
    framer.reset_stream();
    assert!(matches!(framer.next_frame(), Ok(Some(Frame::Open(_)))));
    framer.push(b"<injected/>");
    framer.restart();
    assert_eq!(framer.buffered(), 0);
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever arrives, the framer never panics and never holds more than one
        /// stanza's worth beyond the chunk it was just given.
        #[test]
        fn arbitrary_bytes_never_panic_and_stay_bounded(data in proptest::collection::vec(any::<u8>(), 0..2048), chunk in 1usize..64) {
            let limits = Limits { max_stanza_bytes: 256, ..Limits::default() };
            let mut framer = Framer::new(limits);
            framer.push(HEADER.as_bytes());
            let _ = framer.next_frame();
            'outer: for piece in data.chunks(chunk) {
                framer.push(piece);
                loop {
                    match framer.next_frame() {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => break 'outer,
                    }
                }
                prop_assert!(framer.buffered() <= 256 + chunk + 1);
            }
        }

        #[test]
        fn markup_like_input_never_panics(parts in proptest::collection::vec(prop_oneof![
            Just("<a>"), Just("</a>"), Just("<b x='1'/>"), Just("text"), Just("&amp;"), Just("<"), Just(">"),
            Just("'"), Just("<![CDATA[x]]>"), Just("</stream:stream>"), Just("<?x?>"), Just("<!--"), Just(" "),
        ], 0..64)) {
            let input = format!("{HEADER}{}", parts.concat());
            let _ = frames(input.as_bytes(), 3);
        }
    }
}
