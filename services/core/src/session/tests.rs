//! Table tests of the session: scripted inputs in, outputs asserted.

use super::*;
use crate::sasl::{Failure, StoredCredentials};
use crate::xml::Element;
use std::sync::Arc;

pub(super) const OPEN: &str = "<stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

pub(super) fn session() -> Session {
    Session::new(Arc::new(SessionConfig::default()), None)
}

pub(super) fn sent(outs: &[Output]) -> String {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send(s) => Some(s.as_str()),
            _ => None,
        })
        .collect()
}

pub(super) fn feed(s: &mut Session, xml: &str) -> Vec<Output> {
    s.handle(Input::Bytes(xml.as_bytes()))
}

pub(super) fn cb() -> ChannelBindings {
    ChannelBindings {
        tls_exporter: Some(vec![1; 32]),
        tls_server_end_point: Some(vec![2; 32]),
    }
}

/// The accounts' stored keys, which only the tests' stand-in for the router sees.
fn stored() -> &'static StoredCredentials {
    static STORED: std::sync::OnceLock<StoredCredentials> = std::sync::OnceLock::new();
    STORED.get_or_init(|| StoredCredentials::from_password("secret", 4096).unwrap())
}

pub(super) fn found() -> Lookup {
    Lookup::Found(stored().salts())
}

/// Plays the driver and the router for a proof check the outputs end with: the check
/// against [`stored`], and the session's outputs after it.
pub(super) fn answered(s: &mut Session, mut out: Vec<Output>) -> Vec<Output> {
    if let Some(Output::VerifyProof { proof, .. }) = out.last() {
        let verification = match proof.check(Some(stored())) {
            Some(signature) => Verification::Accepted(signature),
            None => Verification::Rejected,
        };
        out.pop();
        out.extend(s.handle(Input::Verified(verification)));
    }
    out
}

/// The lookup's answer, and the proof check that follows it.
pub(super) fn credentials(s: &mut Session, lookup: Lookup) -> Vec<Output> {
    let out = s.handle(Input::Credentials(lookup));
    answered(s, out)
}

/// A session that has negotiated STARTTLS with these channel bindings.
pub(super) fn tls_up(cb: ChannelBindings) -> Session {
    let mut s = session();
    feed(&mut s, OPEN);
    feed(
        &mut s,
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    );
    s.handle(Input::TlsEstablished(cb));
    s
}

/// Drives a session through STARTTLS, PLAIN and bind; returns it established.
pub(super) fn established() -> Session {
    let mut s = tls_up(cb());
    feed(&mut s, OPEN);
    feed(&mut s, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>");
    credentials(&mut s, found());
    feed(&mut s, OPEN);
    feed(&mut s, "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>phone</resource></bind></iq>");
    s.handle(Input::Bound(Ok(())));
    assert!(s.is_established());
    s
}

/// Asserts the outputs end the stream with `condition`.
pub(super) fn assert_stream_error(outs: &[Output], condition: &str) {
    let xml = sent(outs);
    assert!(
        xml.contains(&format!(
            "<{condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        )),
        "{xml}"
    );
    assert!(xml.ends_with("</stream:stream>"), "{xml}");
    assert_eq!(outs.last(), Some(&Output::Close));
}

#[test]
fn happy_path_starttls_plain_bind_route() {
    let mut s = session();
    let out = feed(&mut s, &format!("<?xml version='1.0'?>{OPEN}"));
    let xml = sent(&out);
    assert!(
        xml.starts_with("<?xml version='1.0'?><stream:stream xmlns='jabber:client'"),
        "{xml}"
    );
    assert!(xml.contains("<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>"), "{xml}");
    assert!(!xml.contains("mechanisms"), "no SASL before TLS: {xml}");

    let out = feed(
        &mut s,
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    );
    assert_eq!(
        out,
        vec![
            Output::Send("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>".into()),
            Output::StartTls
        ]
    );
    assert!(!s.wants_bytes());

    assert!(s.handle(Input::TlsEstablished(cb())).is_empty());
    let xml = sent(&feed(&mut s, OPEN));
    for m in [
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-256",
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-1",
        "PLAIN",
    ] {
        assert!(
            xml.contains(&format!("<mechanism>{m}</mechanism>")),
            "{m}: {xml}"
        );
    }
    assert!(xml.contains(
        "<channel-binding type='tls-exporter'/><channel-binding type='tls-server-end-point'/>"
    ));

    let out = feed(&mut s, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AEFsaWNlAHNlY3JldA==</auth>");
    assert_eq!(
        out,
        vec![Output::FetchCredentials {
            account: Jid::parse("alice@localhost").unwrap()
        }]
    );
    let out = s.handle(Input::Credentials(found()));
    let [Output::VerifyProof { account, .. }] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(account, &Jid::parse("alice@localhost").unwrap());
    assert!(!s.wants_bytes(), "no reading while the proof is checked");
    let out = answered(&mut s, out);
    assert_eq!(
        out[0],
        Output::Send("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>".into())
    );
    assert_eq!(
        out[1],
        Output::Authenticated {
            username: "alice".into(),
            mechanism: Mechanism::Plain
        }
    );

    let xml = sent(&feed(&mut s, OPEN));
    assert!(xml.contains("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>"), "{xml}");
    let out = feed(&mut s, "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>phone</resource></bind></iq>");
    assert_eq!(
        out,
        vec![Output::Bind {
            jid: Jid::parse("alice@localhost/phone").unwrap(),
            carbons: false,
        }]
    );
    let out = s.handle(Input::Bound(Ok(())));
    assert_eq!(sent(&out), "<iq id='b' type='result'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/phone</jid></bind></iq>");

    let out = feed(
        &mut s,
        "<message to='bob@localhost/x' type='chat'><body>hi</body></message>",
    );
    let [Output::Route(stanza, _)] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(stanza.element().attr("from"), Some("alice@localhost/phone"));
    assert_eq!(stanza.to, Some(Jid::parse("bob@localhost/x").unwrap()));
}

#[test]
fn rfc6120_5_4_3_3_bytes_after_starttls_are_discarded() {
    let mut s = session();
    feed(&mut s, OPEN);
    let out = feed(
        &mut s,
        &format!("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>{OPEN}<auth/>"),
    );
    assert_eq!(out.len(), 2);
    s.handle(Input::TlsEstablished(cb()));
    assert!(
        s.handle(Input::Bytes(b"")).is_empty(),
        "injected plaintext must not be processed"
    );
}

#[test]
fn rfc6120_6_4_6_pipelined_bytes_after_sasl_success_are_kept() {
    let mut s = tls_up(cb());
    feed(&mut s, OPEN);
    feed(&mut s, &format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>{OPEN}"));
    let out = credentials(&mut s, found());
    assert!(sent(&out).contains("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"));
}

#[test]
fn rfc6120_7_pipelined_stanza_waits_for_the_bind_result() {
    let mut s = tls_up(cb());
    feed(&mut s, OPEN);
    feed(&mut s, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>");
    credentials(&mut s, found());
    let out = feed(&mut s, &format!("{OPEN}<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq><presence/>"));
    let Some(Output::Bind { jid, .. }) = out.last() else {
        panic!("{out:?}")
    };
    assert!(
        jid.resource().is_some_and(|r| r.starts_with("sy-")),
        "server-generated resource"
    );
    let out = s.handle(Input::Bound(Ok(())));
    assert!(matches!(out.last(), Some(Output::Route(p, _)) if p.element().name() == "presence"));
}

#[test]
fn rfc6120_7_7_bind_error_is_returned_and_session_can_retry() {
    let mut s = session();
    for step in [OPEN, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"] {
        feed(&mut s, step);
    }
    s.handle(Input::TlsEstablished(cb()));
    feed(&mut s, OPEN);
    feed(&mut s, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>");
    credentials(&mut s, found());
    feed(&mut s, OPEN);
    feed(
        &mut s,
        "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
    );
    let xml = sent(&s.handle(Input::Bound(Err(StanzaCondition::ResourceConstraint))));
    assert!(
        xml.contains("type='error'") && xml.contains("<resource-constraint"),
        "{xml}"
    );
    assert!(!s.is_established());
}

#[test]
fn rfc6120_6_4_sasl_before_tls_is_encryption_required() {
    let mut s = session();
    feed(&mut s, OPEN);
    let xml = sent(&feed(
        &mut s,
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>",
    ));
    assert_eq!(
        xml,
        "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><encryption-required/></failure>"
    );
}

#[test]
fn rfc6120_6_4_sasl_failures() {
    let mut s = tls_up(ChannelBindings::default());
    let xml = sent(&feed(&mut s, OPEN));
    assert!(
        !xml.contains("-PLUS"),
        "no -PLUS without channel-binding data: {xml}"
    );
    let xml = sent(&feed(
        &mut s,
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-OAUTH'/>",
    ));
    assert!(xml.contains("<invalid-mechanism/>"), "{xml}");
    let xml = sent(&feed(
        &mut s,
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>!!</auth>",
    ));
    assert!(xml.contains("<incorrect-encoding/>"), "{xml}");
    feed(
        &mut s,
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHdyb25n</auth>",
    );
    let out = credentials(&mut s, found());
    assert!(sent(&out).contains("<not-authorized/>"));
    assert!(out.contains(&Output::AuthFailed {
        mechanism: Mechanism::Plain,
        failure: Failure::NotAuthorized
    }));
    // The third failure on this connection ends the stream.
    assert_stream_error(&out, "policy-violation");
}

#[test]
fn rfc6120_6_5_storage_down_is_temporary_auth_failure() {
    let mut s = tls_up(cb());
    feed(&mut s, OPEN);
    feed(&mut s, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>");
    let xml = sent(&credentials(&mut s, Lookup::Unavailable));
    assert!(xml.contains("<temporary-auth-failure/>"), "{xml}");
}

/// SCRAM through the session: the salts in the challenge, the proof out to be checked,
/// and the answer deciding (the ServerSignature goes to the client as `v=`).
#[test]
fn rfc6120_6_scram_proof_is_checked_outside_and_the_answer_decides() {
    use crate::sasl::{HashAlg, ScramClient};
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let start = |password: &str| {
        let mut s = tls_up(ChannelBindings::default());
        feed(&mut s, OPEN);
        let mut client = ScramClient::new(HashAlg::Sha256, "alice", password, None);
        let first = b64.encode(client.client_first());
        feed(&mut s, &format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>{first}</auth>"));
        let out = s.handle(Input::Credentials(found()));
        let challenge = sent(&out);
        let data = challenge
            .strip_prefix("<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>")
            .and_then(|c| c.strip_suffix("</challenge>"))
            .unwrap();
        let server_first = String::from_utf8(b64.decode(data).unwrap()).unwrap();
        let fin = b64.encode(client.client_final(&server_first).unwrap());
        let out = feed(
            &mut s,
            &format!("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{fin}</response>"),
        );
        let [Output::VerifyProof { account, proof }] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(account, &Jid::parse("alice@localhost").unwrap());
        assert_eq!(proof.alg, HashAlg::Sha256);
        (s, client, out)
    };

    let (mut s, client, out) = start("secret");
    let xml = sent(&answered(&mut s, out));
    let v = xml
        .strip_prefix("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>")
        .and_then(|x| x.strip_suffix("</success>"))
        .unwrap();
    let v = String::from_utf8(b64.decode(v).unwrap()).unwrap();
    assert!(client.verify_server_final(&v), "{v}");

    let (mut s, _, out) = start("wrong");
    let out = answered(&mut s, out);
    assert!(sent(&out).contains("<not-authorized/>"));
    assert!(out.contains(&Output::AuthFailed {
        mechanism: Mechanism::ScramSha256,
        failure: Failure::NotAuthorized
    }));

    let (mut s, _, _) = start("secret");
    let xml = sent(&s.handle(Input::Verified(Verification::Unavailable)));
    assert!(xml.contains("<temporary-auth-failure/>"), "{xml}");
}

#[test]
fn rfc6120_4_9_stream_header_errors() {
    let cases = [
        ("<stream:stream to='localhost' version='1.0' xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>", "invalid-namespace"),
        ("<stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='urn:wrong'>", "invalid-namespace"),
        ("<stream:stream to='example.org' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>", "host-unknown"),
        ("<stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>", "unsupported-version"),
        ("<stream:stream to='localhost' version='0.9' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>", "unsupported-version"),
        ("<!-- x -->", "restricted-xml"),
        ("<a/>", "not-well-formed"),
    ];
    for (input, condition) in cases {
        let mut s = session();
        let out = feed(&mut s, input);
        // §4.9.1.2: the server opens its own stream before the error.
        assert!(
            sent(&out).starts_with("<?xml version='1.0'?><stream:stream"),
            "{input}"
        );
        assert_stream_error(&out, condition);
        assert!(s.is_closed());
        assert!(
            s.handle(Input::Bytes(b"<more/>")).is_empty(),
            "closed sessions ignore input"
        );
    }
}

#[test]
fn rfc6120_established_stream_errors() {
    let cases = [
        (OPEN, "unsupported-stanza-type"),
        ("<foo xmlns='jabber:client'/>", "unsupported-stanza-type"),
        ("<message xmlns='urn:other'/>", "unsupported-stanza-type"),
        (
            "<message from='mallory@localhost/x'><body>x</body></message>",
            "invalid-from",
        ),
        ("<message><!-- c --></message>", "restricted-xml"),
        ("<message></foo>", "not-well-formed"),
        ("x", "bad-format"),
    ];
    for (input, condition) in cases {
        let mut s = established();
        assert_stream_error(&feed(&mut s, input), condition);
    }
}

#[test]
fn rfc6120_6_stanzas_before_auth_are_not_authorized() {
    let mut s = session();
    feed(&mut s, OPEN);
    assert_stream_error(
        &feed(&mut s, "<message to='a@localhost'/>"),
        "not-authorized",
    );
}

#[test]
fn rfc6120_13_12_stanzas_before_auth_are_held_to_the_smaller_limit() {
    let big = "A".repeat(SessionConfig::default().limits.max_stanza_bytes_before_auth);
    let mut s = tls_up(cb());
    feed(&mut s, OPEN);
    let auth =
        format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{big}</auth>");
    assert_stream_error(&feed(&mut s, &auth), "policy-violation");

    let mut s = established();
    let out = feed(
        &mut s,
        &format!("<message to='bob@localhost'><body>{big}</body></message>"),
    );
    assert!(matches!(&out[..], [Output::Route(..)]), "{out:?}");
}

#[test]
fn rfc6120_8_1_2_1_from_is_stamped_and_bare_from_accepted() {
    let mut s = established();
    let out = feed(&mut s, "<presence from='alice@localhost'/>");
    let [Output::Route(p, _)] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(p.element().attr("from"), Some("alice@localhost/phone"));
}

#[test]
fn rfc6120_8_stanza_level_errors() {
    let mut s = established();
    let xml = sent(&feed(
        &mut s,
        "<message to='a@b@c' id='m1'><body>x</body></message>",
    ));
    assert!(
        xml.contains("type='error'") && xml.contains("<jid-malformed"),
        "{xml}"
    );
    let xml = sent(&feed(
        &mut s,
        "<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
    ));
    assert!(xml.contains("<bad-request"), "IQ without id: {xml}");
    let xml = sent(&feed(&mut s, "<iq type='get' id='2'/>"));
    assert!(
        xml.contains("<bad-request"),
        "IQ get without payload: {xml}"
    );
    let xml = sent(&feed(&mut s, "<iq type='bogus' id='3'><x xmlns='y'/></iq>"));
    assert!(xml.contains("<bad-request"), "IQ with unknown type: {xml}");
    // No error in answer to an error (no bounce loops).
    assert!(feed(&mut s, "<message type='error' to='a@b@c'/>").is_empty());
    assert!(!s.is_closed());
}

#[test]
fn rfc6120_4_4_close_and_terminate() {
    let mut s = established();
    let out = feed(&mut s, "</stream:stream>");
    assert_eq!(
        out,
        vec![Output::Send("</stream:stream>".into()), Output::Close]
    );
    let mut s = established();
    assert_stream_error(
        &s.handle(Input::Terminate(StreamCondition::Conflict)),
        "conflict",
    );
    let mut s = established();
    assert_eq!(s.handle(Input::PeerClosed), vec![Output::Close]);
}

#[test]
fn delivered_stanzas_are_written_only_when_established() {
    let mut s = session();
    assert!(s
        .handle(Input::Deliver(Element::new("message", ns::CLIENT).into()))
        .is_empty());
    let mut s = established();
    let out = s.handle(Input::Deliver(
        Element::new("message", ns::CLIENT)
            .with_attr("to", "alice@localhost/phone")
            .into(),
    ));
    assert_eq!(sent(&out), "<message to='alice@localhost/phone'/>");
}

fn presence(from: &str, show: &str) -> Element {
    Element::new("presence", ns::CLIENT)
        .with_attr("from", from)
        .with_child(Element::new("show", ns::CLIENT).with_text(show))
}

#[test]
fn xep0352_inactive_holds_latest_presence_per_sender_until_a_message() {
    let mut s = established();
    assert!(
        feed(&mut s, "<inactive xmlns='urn:xmpp:csi:0'/>").is_empty(),
        "§4.2: no reply"
    );
    for (from, show) in [("a@x/1", "away"), ("b@x/1", "xa"), ("a@x/1", "dnd")] {
        assert!(s
            .handle(Input::Deliver(presence(from, show).into()))
            .is_empty());
    }
    let message = Element::new("message", ns::CLIENT).with_attr("from", "c@x/1");
    let out = sent(&s.handle(Input::Deliver(message.into())));
    assert_eq!(
        out,
        "<presence from='a@x/1'><show>dnd</show></presence>\
         <presence from='b@x/1'><show>xa</show></presence>\
         <message from='c@x/1'/>",
        "latest per sender, in first-seen order, before the message"
    );
    // Still inactive: presence is held again; <active/> flushes it (§5.1).
    assert!(s
        .handle(Input::Deliver(presence("a@x/1", "chat").into()))
        .is_empty());
    let out = sent(&feed(&mut s, "<active xmlns='urn:xmpp:csi:0'/>"));
    assert_eq!(out, "<presence from='a@x/1'><show>chat</show></presence>");
    let out = sent(&s.handle(Input::Deliver(presence("a@x/1", "away").into())));
    assert!(out.contains("away"), "active again: delivered at once");
}

/// A stanza as a router forwards it across a link: its bytes, unparsed.
fn wire(el: &Element) -> Routed {
    Routed::Wire(el.to_xml("").into())
}

#[test]
fn forwarded_bytes_are_written_as_they_came_and_held_like_trees() {
    let mut s = established();
    let message = Element::new("message", ns::CLIENT).with_attr("from", "c@x/1");
    let out = sent(&s.handle(Input::Deliver(wire(&message))));
    assert_eq!(out, "<message xmlns='jabber:client' from='c@x/1'/>");
    feed(&mut s, "<inactive xmlns='urn:xmpp:csi:0'/>");
    assert!(s
        .handle(Input::Deliver(wire(&presence("a@x/1", "away"))))
        .is_empty());
    assert!(s
        .handle(Input::Deliver(presence("a@x/1", "dnd").into()))
        .is_empty());
    assert!(s
        .handle(Input::Deliver(wire(&presence("b@x/1", "xa"))))
        .is_empty());
    let out = sent(&feed(&mut s, "<active xmlns='urn:xmpp:csi:0'/>"));
    assert_eq!(
        out,
        "<presence from='a@x/1'><show>dnd</show></presence>\
         <presence xmlns='jabber:client' from='b@x/1'><show>xa</show></presence>",
        "one slot per sender whichever form each came in"
    );
}

#[test]
fn xep0352_holding_is_bounded() {
    let mut s = established();
    feed(&mut s, "<inactive xmlns='urn:xmpp:csi:0'/>");
    let mut written = 0;
    for i in 0..=super::csi::MAX_HELD {
        let out = s.handle(Input::Deliver(
            presence(&format!("u{i}@x/r"), "away").into(),
        ));
        written += out.len();
    }
    assert_eq!(
        written,
        super::csi::MAX_HELD + 1,
        "past the bound everything is flushed"
    );
}

#[test]
fn xep0352_unknown_csi_element_is_a_stream_error() {
    let mut s = established();
    let out = feed(&mut s, "<sleepy xmlns='urn:xmpp:csi:0'/>");
    assert_stream_error(&out, "unsupported-stanza-type");
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    fn input() -> impl Strategy<Value = u8> {
        0u8..14
    }

    proptest! {
        /// No input sequence panics, and every path ends closed after shutdown.
        #[test]
        fn any_sequence_then_shutdown_ends_closed(steps in proptest::collection::vec(input(), 0..40)) {
            let chunks = [
                OPEN, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
                "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>",
                "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
                "<message to='bob@localhost'><body>x</body></message>", "</stream:stream>", "<<<", " ",
            ];
            let mut s = session();
            for step in steps {
                let _ = match step {
                    0..=7 => s.handle(Input::Bytes(chunks[step as usize].as_bytes())),
                    8 => s.handle(Input::TlsEstablished(cb())),
                    9 => s.handle(Input::Credentials(found())),
                    10 => s.handle(Input::Bound(Ok(()))),
                    11 => s.handle(Input::Credentials(Lookup::NotFound)),
                    12 => s.handle(Input::Verified(Verification::Rejected)),
                    _ => s.handle(Input::Verified(Verification::Accepted(vec![1; 32]))),
                };
            }
            let was_closed = s.is_closed();
            let out = s.handle(Input::Terminate(StreamCondition::SystemShutdown));
            prop_assert!(s.is_closed());
            prop_assert!(was_closed || out.last() == Some(&Output::Close));
        }
    }
}

#[test]
fn rfc6121_appendix_e_the_legacy_session_request_after_bind_gets_a_result() {
    for to in ["", " to='localhost'"] {
        let mut s = established();
        let out = feed(
            &mut s,
            &format!("<iq type='set' id='s1'{to}><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>"),
        );
        assert!(
            !out.iter().any(|o| matches!(o, Output::Route(..))),
            "{out:?}"
        );
        let xml = sent(&out);
        assert!(
            xml.contains("type='result'") && xml.contains("id='s1'"),
            "{xml}"
        );
    }
    // To someone else it is just an IQ, routed like any other.
    let mut s = established();
    let out = feed(
        &mut s,
        "<iq type='set' id='s2' to='bob@localhost/x'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
    );
    assert!(matches!(&out[..], [Output::Route(..)]), "{out:?}");
}

/// PLAIN with a name that is no account's (not a valid localpart) is refused without a
/// hash: with a decoy that would take minutes to hash, the answer still comes at once.
#[test]
fn plain_with_a_malformed_username_is_refused_without_hashing() {
    let config = SessionConfig {
        decoy: crate::sasl::Decoy::random(500_000_000),
        ..SessionConfig::default()
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut s = Session::new(Arc::new(config), None);
        feed(&mut s, OPEN);
        feed(
            &mut s,
            "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
        );
        s.handle(Input::TlsEstablished(cb()));
        feed(&mut s, OPEN);
        // "\0bad@name\0secret": an '@' is not allowed in a localpart.
        let out = feed(&mut s, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGJhZEBuYW1lAHNlY3JldA==</auth>");
        let _ = tx.send(sent(&out));
    });
    let xml = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("answered at once, not after hashing with the decoy");
    assert!(xml.contains("<not-authorized/>"), "{xml}");
}
