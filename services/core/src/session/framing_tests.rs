//! RFC 7395 framing: a session over WebSocket, every message it writes checked to be a
//! whole, namespace-well-formed element on its own (§3.3.3).

use super::tests::{cb, credentials, found, sent};
use super::*;
use crate::xml::Element;
use std::sync::Arc;

const OPEN: &str =
    "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";
const CLOSE: &str = "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>";

/// A session as the WebSocket listener makes it: TLS from the connection, no STARTTLS.
fn ws_session() -> Session {
    let config = SessionConfig {
        framing: Framing::WebSocket,
        starttls: false,
        ..SessionConfig::default()
    };
    Session::new(Arc::new(config), Some(cb()))
}

/// Feeds one message; asserts every message written back parses on its own.
fn message(s: &mut Session, xml: &str) -> Vec<Output> {
    let out = s.handle(Input::Bytes(xml.as_bytes()));
    for o in &out {
        if let Output::Send(xml) = o {
            let parsed = Element::parse(xml);
            assert!(parsed.is_ok(), "not a whole element on its own: {xml}");
        }
    }
    out
}

fn parsed(out: &[Output]) -> Vec<Element> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(xml) => Some(Element::parse(xml).unwrap()),
            _ => None,
        })
        .collect()
}

fn established() -> Session {
    let mut s = ws_session();
    message(&mut s, OPEN);
    message(&mut s, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>");
    let out = credentials(&mut s, found());
    assert!(sent(&out).contains("<success"), "{out:?}");
    // §3.3.3: the stream restarts with a new <open/> on the same connection.
    let out = message(&mut s, OPEN);
    let els = parsed(&out);
    assert!(els[0].is("open", ns::FRAMING), "{out:?}");
    assert!(els[1].is("features", ns::STREAMS) && els[1].child("bind", ns::BIND).is_some());
    let out = message(&mut s, "<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web</resource></bind></iq>");
    assert!(matches!(out.last(), Some(Output::Bind { .. })), "{out:?}");
    let out = s.handle(Input::Bound(Ok(())));
    let result = &parsed(&out)[0];
    assert!(result.is("iq", ns::CLIENT), "{out:?}");
    assert!(s.is_established());
    s
}

#[test]
fn open_is_answered_with_open_and_features_without_starttls() {
    let mut s = ws_session();
    let out = message(&mut s, OPEN);
    let els = parsed(&out);
    assert_eq!(els.len(), 2, "{out:?}");
    let open = &els[0];
    assert!(open.is("open", ns::FRAMING));
    assert_eq!(open.attr("from"), Some("localhost"));
    assert_eq!(open.attr("version"), Some("1.0"));
    assert!(open.attr("id").is_some_and(|id| !id.is_empty()));
    let features = &els[1];
    assert!(features.is("features", ns::STREAMS));
    assert!(features.child("starttls", ns::TLS).is_none(), "§3.7");
    assert!(features.child("mechanisms", ns::SASL).is_some());
    let xml = sent(&out);
    assert!(xml.contains("<stream:features xmlns:stream="), "{xml}");
    assert!(!xml.contains("<?xml"), "{xml}");
}

#[test]
fn a_whole_session_speaks_one_element_per_message() {
    let mut s = established();
    let out = message(
        &mut s,
        "<message xmlns='jabber:client' to='bob@localhost' type='chat'><body>hi</body></message>",
    );
    assert!(matches!(&out[..], [Output::Route(..)]), "{out:?}");
    // Stanzas routed to it declare jabber:client, from a tree or from the wire.
    let tree = Element::parse("<message xmlns='jabber:client' from='bob@localhost/x' to='alice@localhost/web'><body>yo</body></message>").unwrap();
    let out = s.handle(Input::Deliver(Routed::Tree(Arc::new(tree.clone()))));
    assert_eq!(parsed(&out), vec![tree.clone()]);
    let wire: Arc<str> = tree.to_xml("").into();
    let out = s.handle(Input::Deliver(Routed::Wire(wire)));
    assert_eq!(parsed(&out), vec![tree]);
    let out = message(&mut s, CLOSE);
    assert_eq!(sent(&out), CLOSE);
    assert_eq!(out.last(), Some(&Output::Close));
}

#[test]
fn stream_management_elements_declare_their_namespace() {
    let mut s = established();
    let out = message(&mut s, "<enable xmlns='urn:xmpp:sm:3' resume='true'/>");
    assert!(parsed(&out)[0].is("enabled", ns::SM), "{out:?}");
    let out = message(&mut s, "<r xmlns='urn:xmpp:sm:3'/>");
    assert_eq!(parsed(&out)[0].attr("h"), Some("0"));
}

#[test]
fn stream_errors_are_framed_for_websocket() {
    let cases = [
        (
            "<stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
            "bad-format",
        ),
        ("<?xml version='1.0'?>", "bad-format"),
        ("</stream:stream>", "bad-format"),
        ("<open xmlns='jabber:client' to='localhost' version='1.0'/>", "invalid-namespace"),
        ("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost'", "bad-format"),
        (
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' version='1.0'/>",
            "host-unknown",
        ),
        (
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost'/>",
            "unsupported-version",
        ),
        // §3.3.1: the first message must be <open/>.
        ("<message xmlns='jabber:client'/>", "not-well-formed"),
    ];
    for (input, condition) in cases {
        let mut s = ws_session();
        let out = message(&mut s, input);
        let els = parsed(&out);
        // RFC 6120 §4.9.1.2: the server opens its side before the error.
        assert!(els[0].is("open", ns::FRAMING), "{input}: {out:?}");
        let error = els.iter().find(|e| e.is("error", ns::STREAMS));
        let error = error.unwrap_or_else(|| panic!("{input}: no stream error in {out:?}"));
        assert!(
            error.child(condition, ns::STREAM_ERRORS).is_some(),
            "{input}: {out:?}"
        );
        assert!(els.last().unwrap().is("close", ns::FRAMING), "{input}");
        assert_eq!(out.last(), Some(&Output::Close), "{input}");
    }
}

#[test]
fn open_attributes_carry_over_and_declarations_do_not() {
    let inbound = Framing::inbound(
        b"  <open xmlns='urn:ietf:params:xml:ns:xmpp-framing' xmlns:x='urn:x' to='a&amp;b' x:y='z' xml:lang='de' version='1.0'/> ",
    )
    .unwrap();
    assert_eq!(
        std::str::from_utf8(&inbound).unwrap(),
        "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='a&amp;b' xml:lang='de' version='1.0'>"
    );
    assert_eq!(
        &*Framing::inbound(CLOSE.as_bytes()).unwrap(),
        b"</stream:stream>"
    );
    // Anything else is read as it is: the session's own parser and limits judge it.
    let iq = b"<iq xmlns='jabber:client' type='get' id='1'/>";
    assert!(matches!(
        Framing::inbound(iq),
        Ok(std::borrow::Cow::Borrowed(_))
    ));
    assert!(matches!(
        Framing::inbound(b"<openx/>"),
        Ok(std::borrow::Cow::Borrowed(_))
    ));
}

#[test]
fn a_websocket_session_resumes_over_tcp_and_speaks_tcp_from_then_on() {
    let mut s = established();
    message(&mut s, "<enable xmlns='urn:xmpp:sm:3' resume='true'/>");
    let previd = s.resumable().expect("resumable").id;
    let tree = Element::parse("<message xmlns='jabber:client' from='bob@localhost/x' to='alice@localhost/web' id='m1'><body>1</body></message>").unwrap();
    s.handle(Input::Deliver(Routed::Tree(Arc::new(tree))));
    s.handle(Input::PeerClosed);
    assert!(s.is_detached());
    let mut tcp = super::sm_tests::authenticated();
    let asked = tcp.handle(Input::Bytes(
        format!("<resume xmlns='urn:xmpp:sm:3' previd='{previd}' h='0'/>").as_bytes(),
    ));
    assert!(
        matches!(asked.last(), Some(Output::Resume { .. })),
        "{asked:?}"
    );
    let out = sent(&s.resume(&mut tcp, Some(0)).expect("resumed"));
    // Inside a jabber:client stream: no declaration on the resent stanza.
    assert!(out.contains("<message from='bob@localhost/x'"), "{out}");
    let out = sent(&s.handle(Input::Bytes(b"</stream:stream>")));
    assert_eq!(out, "</stream:stream>");
}
