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
