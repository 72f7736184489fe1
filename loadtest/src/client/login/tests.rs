//! Table tests of the login machine: scripted server frames in, asserted actions out.

use super::*;
use switchyard_core::xml::StreamHeader;

fn params(mechanism: Mechanism, starttls: bool) -> Params {
    Params {
        domain: "localhost".into(),
        username: "user1".into(),
        password: "pw".into(),
        resource: "r1".into(),
        mechanism,
        starttls,
        salted: None,
        sm: false,
        resume: None,
    }
}

fn header() -> Frame {
    Frame::Open(StreamHeader {
        element: Element::new("stream", ns::STREAMS),
        content_ns: Some(ns::CLIENT.into()),
    })
}

fn stanza(xml: &str) -> Frame {
    let el = Element::parse(xml).expect("test XML parses");
    Frame::Stanza(el, xml.len())
}

fn features(inner: &str) -> Frame {
    stanza(&format!(
        "<features xmlns='{}'>{inner}</features>",
        ns::STREAMS
    ))
}

fn sent(actions: &[Action]) -> String {
    actions
        .iter()
        .map(|a| match a {
            Action::Send(s) => s.clone(),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn starttls_plain_bind_roster_presence() {
    let (mut login, first) = Login::start(params(Mechanism::Plain, true), false);
    assert!(matches!(first, Action::Send(s) if s.contains("<stream:stream to='localhost'")));
    assert!(login.handle(header()).unwrap().is_empty());
    let tls = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
    let out = login.handle(features(tls)).unwrap();
    assert!(sent(&out).contains("<starttls"));
    let proceed = stanza("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    assert_eq!(login.handle(proceed).unwrap(), vec![Action::StartTls]);
    assert!(matches!(login.tls_up(), Action::Send(_)));
    login.handle(header()).unwrap();
    let mechs = "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>";
    let auth = sent(&login.handle(features(mechs)).unwrap());
    // base64("\0user1\0pw")
    assert!(
        auth.contains("mechanism='PLAIN'>AHVzZXIxAHB3</auth>"),
        "{auth}"
    );
    let success = stanza("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    let out = login.handle(success).unwrap();
    assert_eq!(out[0], Action::RestartStream);
    login.handle(header()).unwrap();
    let bind = sent(
        &login
            .handle(features("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"))
            .unwrap(),
    );
    assert!(bind.contains("<resource>r1</resource>"), "{bind}");
    let bound = stanza("<iq xmlns='jabber:client' type='result' id='bind'/>");
    let out = sent(&login.handle(bound).unwrap());
    assert!(
        out.contains("jabber:iq:roster") && out.contains("<presence/>"),
        "{out}"
    );
    let echo = stanza("<presence xmlns='jabber:client' from='user1@localhost/r1'/>");
    assert!(login.handle(echo).unwrap().is_empty());
    let roster = stanza("<iq xmlns='jabber:client' type='result' id='roster'/>");
    assert_eq!(login.handle(roster).unwrap(), vec![Action::Ready]);
}

#[test]
fn failures_name_their_kind() {
    let cases: &[(&str, &str)] = &[
        ("<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>",
         "mechanism-not-offered:SCRAM-SHA-1"),
    ];
    for (inner, kind) in cases {
        let (mut login, _) = Login::start(params(Mechanism::ScramSha1, false), false);
        login.handle(header()).unwrap();
        assert_eq!(login.handle(features(inner)).unwrap_err(), *kind);
    }
    let (mut login, _) = Login::start(params(Mechanism::Plain, false), false);
    login.handle(header()).unwrap();
    let mechs = "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>";
    login.handle(features(mechs)).unwrap();
    let failure =
        stanza("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>");
    assert_eq!(
        login.handle(failure).unwrap_err(),
        "sasl-failure:not-authorized"
    );
    let (mut login, _) = Login::start(params(Mechanism::Plain, true), false);
    login.handle(header()).unwrap();
    assert_eq!(
        login.handle(features("")).unwrap_err(),
        "starttls-not-offered"
    );
    let error = stanza("<error xmlns='http://etherx.jabber.org/streams'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></error>");
    assert_eq!(login.handle(error).unwrap_err(), "stream-error:conflict");
    assert_eq!(
        login.handle(Frame::Close).unwrap_err(),
        "closed-during-login"
    );
}

#[test]
fn scram_checks_the_server_signature() {
    let (mut login, _) = Login::start(params(Mechanism::ScramSha256, false), false);
    login.handle(header()).unwrap();
    let mechs = "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-256</mechanism></mechanisms>";
    let auth = sent(&login.handle(features(mechs)).unwrap());
    assert!(auth.contains("mechanism='SCRAM-SHA-256'"));
    let forged = B64.encode("v=AAAA");
    let success = stanza(&format!(
        "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{forged}</success>"
    ));
    assert_eq!(
        login.handle(success).unwrap_err(),
        "sasl-bad-server-signature"
    );
}

const PLAIN_MECHS: &str =
    "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>";
const BOUND_FEATURES: &str =
    "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><sm xmlns='urn:xmpp:sm:3'/>";

/// A plaintext PLAIN login of `p` up to the features of the authenticated stream.
fn authenticated(p: Params) -> Login {
    let (mut login, _) = Login::start(p, false);
    login.handle(header()).unwrap();
    login.handle(features(PLAIN_MECHS)).unwrap();
    let success = stanza("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    assert_eq!(login.handle(success).unwrap()[0], Action::RestartStream);
    login.handle(header()).unwrap();
    login
}

fn with_sm() -> Params {
    Params {
        sm: true,
        ..params(Mechanism::Plain, false)
    }
}

#[test]
fn stream_management_is_enabled_with_the_roster_get_and_counts_from_enabled() {
    let mut login = authenticated(with_sm());
    login.handle(features(BOUND_FEATURES)).unwrap();
    let bound = stanza("<iq xmlns='jabber:client' type='result' id='bind'/>");
    let out = sent(&login.handle(bound).unwrap());
    let enable = out.find("<enable xmlns='urn:xmpp:sm:3' resume='true'/>");
    let roster = out.find("jabber:iq:roster");
    assert!(
        enable.is_some() && enable < roster,
        "enable goes first: {out}"
    );
    let enabled = stanza("<enabled xmlns='urn:xmpp:sm:3' id='SMID' resume='true' max='300'/>");
    assert!(login.handle(enabled).unwrap().is_empty());
    let echo = stanza("<presence xmlns='jabber:client' from='user1@localhost/r1'/>");
    assert!(login.handle(echo).unwrap().is_empty());
    // An ack request during login is answered with what was read since <enabled/>.
    let r = stanza("<r xmlns='urn:xmpp:sm:3'/>");
    assert_eq!(
        login.handle(r).unwrap(),
        vec![Action::Send("<a xmlns='urn:xmpp:sm:3' h='1'/>".into())]
    );
    let roster = stanza("<iq xmlns='jabber:client' type='result' id='roster'/>");
    assert_eq!(login.handle(roster).unwrap(), vec![Action::Ready]);
    let sm = login.take_sm().expect("stream management is on");
    assert_eq!(sm.id.as_deref(), Some("SMID"));
    assert_eq!(sm.max_secs, Some(300));
    assert_eq!((sm.received, sm.sent), (2, 2), "{sm:?}");
}

#[test]
fn ready_waits_for_enabled_and_a_refused_enable_is_an_error() {
    let mut login = authenticated(with_sm());
    login.handle(features(BOUND_FEATURES)).unwrap();
    login
        .handle(stanza(
            "<iq xmlns='jabber:client' type='result' id='bind'/>",
        ))
        .unwrap();
    let roster = stanza("<iq xmlns='jabber:client' type='result' id='roster'/>");
    assert!(
        login.handle(roster).unwrap().is_empty(),
        "no <enabled/> yet"
    );
    let enabled = stanza("<enabled xmlns='urn:xmpp:sm:3' id='SMID' resume='true'/>");
    assert_eq!(login.handle(enabled).unwrap(), vec![Action::Ready]);
    assert_eq!(
        login.take_sm().unwrap().received,
        0,
        "the roster came before"
    );

    let mut refused = authenticated(with_sm());
    refused.handle(features(BOUND_FEATURES)).unwrap();
    refused
        .handle(stanza(
            "<iq xmlns='jabber:client' type='result' id='bind'/>",
        ))
        .unwrap();
    let failed = stanza("<failed xmlns='urn:xmpp:sm:3'><unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>");
    assert_eq!(
        refused.handle(failed).unwrap_err(),
        "sm-enable-failed:unexpected-request"
    );
    let mut unoffered = authenticated(with_sm());
    let bind_only = features("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>");
    assert_eq!(unoffered.handle(bind_only).unwrap_err(), "sm-not-offered");
}

fn resuming(received: u32) -> Params {
    let previous = SmClient {
        id: Some("SMID".into()),
        max_secs: Some(300),
        received,
        sent: 2,
        server_handled: 0,
    };
    Params {
        resume: Some(previous),
        ..with_sm()
    }
}

#[test]
fn resume_replaces_bind_and_is_ready_at_resumed() {
    let mut login = authenticated(resuming(7));
    let out = login.handle(features(BOUND_FEATURES)).unwrap();
    assert_eq!(
        out,
        vec![Action::Send(
            "<resume xmlns='urn:xmpp:sm:3' previd='SMID' h='7'/>".into()
        )]
    );
    let resumed = stanza("<resumed xmlns='urn:xmpp:sm:3' h='2' previd='SMID'/>");
    assert_eq!(login.handle(resumed).unwrap(), vec![Action::Ready]);
    let mut sm = login.take_sm().unwrap();
    assert!(sm.server_has_all(), "{sm:?}");
    // Resent stanzas go on counting from the h the client sent.
    let resent = switchyard_core::Element::parse("<message xmlns='jabber:client'/>").unwrap();
    sm.on_element(&resent);
    assert_eq!(sm.received, 8);
}

#[test]
fn resume_failures_name_their_condition() {
    let mut login = authenticated(resuming(0));
    login.handle(features(BOUND_FEATURES)).unwrap();
    let failed = stanza("<failed xmlns='urn:xmpp:sm:3'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>");
    assert_eq!(
        login.handle(failed).unwrap_err(),
        "resume-failed:item-not-found"
    );
    let mut login = authenticated(resuming(0));
    login.handle(features(BOUND_FEATURES)).unwrap();
    let other = stanza("<resumed xmlns='urn:xmpp:sm:3' h='2' previd='OTHER'/>");
    assert_eq!(login.handle(other).unwrap_err(), "resumed-wrong-previd");
    let mut login = authenticated(resuming(0));
    login.handle(features(BOUND_FEATURES)).unwrap();
    let early = stanza("<message xmlns='jabber:client'/>");
    assert_eq!(
        login.handle(early).unwrap_err(),
        "unexpected-during-resume:message"
    );
    let mut unresumable = authenticated(Params {
        resume: Some(SmClient::default()),
        ..with_sm()
    });
    assert_eq!(
        unresumable.handle(features(BOUND_FEATURES)).unwrap_err(),
        "resume-without-sm-id"
    );
}
