//! XEP-0114 table tests: scripted inputs, asserted outputs.

use super::*;

const OPEN: &str = "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='push.localhost'>";

fn component() -> Component {
    let config = ComponentConfig {
        secrets: vec![("push.localhost".into(), "s3cret".into())],
        limits: Limits::default(),
    };
    Component::new(Arc::new(config))
}

fn feed(c: &mut Component, xml: &str) -> Vec<Output> {
    c.handle(Input::Bytes(xml.as_bytes()))
}

fn sent(out: &[Output]) -> String {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(s) => Some(s.as_str()),
            _ => None,
        })
        .collect()
}

/// The stream id from the server's header.
fn stream_id(header: &str) -> String {
    let at = header.find("id='").expect("an id") + 4;
    header[at..].split('\'').next().unwrap().to_owned()
}

fn handshake(id: &str, secret: &str) -> String {
    format!(
        "<handshake>{}</handshake>",
        hex(&Sha1::digest(format!("{id}{secret}")))
    )
}

fn established() -> Component {
    let mut c = component();
    let id = stream_id(&sent(&feed(&mut c, OPEN)));
    let out = feed(&mut c, &handshake(&id, "s3cret"));
    assert_eq!(
        out,
        vec![Output::Bind {
            domain: Jid::parse("push.localhost").unwrap()
        }]
    );
    let out = c.handle(Input::Bound(true));
    assert_eq!(sent(&out), "<handshake xmlns='jabber:component:accept'/>");
    assert!(c.is_established());
    c
}

fn assert_error(out: &[Output], condition: &str) {
    let xml = sent(out);
    assert!(
        xml.contains(&format!("<{condition} ")),
        "{condition}: {xml}"
    );
    assert!(xml.ends_with("</stream:stream>"), "{xml}");
    assert_eq!(out.last(), Some(&Output::Close));
}

#[test]
fn xep0114_3_1_the_header_names_a_configured_domain_in_the_component_namespace() {
    let mut c = component();
    let header = sent(&feed(&mut c, OPEN));
    assert!(
        header.contains("xmlns='jabber:component:accept'"),
        "{header}"
    );
    assert!(header.contains("from='push.localhost'"), "{header}");
    assert!(stream_id(&header).len() >= 16);
    for (open, condition) in [
        (
            OPEN.replace("push.localhost", "other.localhost"),
            "host-unknown",
        ),
        (
            OPEN.replace("jabber:component:accept", "jabber:client"),
            "invalid-namespace",
        ),
        (OPEN.replace(" to='push.localhost'", ""), "host-unknown"),
    ] {
        let mut c = component();
        assert_error(&feed(&mut c, &open), condition);
    }
}

#[test]
fn xep0114_3_2_a_wrong_handshake_or_a_stanza_before_it_is_not_authorized() {
    let mut c = component();
    let id = stream_id(&sent(&feed(&mut c, OPEN)));
    assert_error(&feed(&mut c, &handshake(&id, "wrong")), "not-authorized");
    let mut c = component();
    feed(&mut c, OPEN);
    assert_error(
        &feed(&mut c, &handshake("another-stream-id", "s3cret")),
        "not-authorized",
    );
    let mut c = component();
    feed(&mut c, OPEN);
    let out = feed(
        &mut c,
        "<message from='a@push.localhost' to='alice@localhost'/>",
    );
    assert_error(&out, "not-authorized");
}

#[test]
fn xep0114_3_3_stanzas_from_the_domain_go_in_and_stanzas_for_it_come_out_in_its_namespace() {
    let mut c = established();
    let out = feed(
        &mut c,
        "<message from='bot@push.localhost/r' to='alice@localhost' id='m1'><body>hi</body></message>",
    );
    let [Output::Route(stanza)] = &out[..] else {
        panic!("{out:?}");
    };
    assert!(stanza.element().is("message", ns::CLIENT));
    assert!(stanza.element().child("body", ns::CLIENT).is_some());
    assert_eq!(stanza.from.to_string(), "bot@push.localhost/r");
    let reply = Element::parse("<message xmlns='jabber:client' from='alice@localhost/p' to='bot@push.localhost'><body>yo</body></message>").unwrap();
    let out = c.handle(Input::Deliver(Routed::Tree(Arc::new(reply))));
    assert_eq!(
        sent(&out),
        "<message from='alice@localhost/p' to='bot@push.localhost'><body>yo</body></message>"
    );
}

#[test]
fn xep0114_3_3_a_forged_or_missing_from_and_a_missing_to_end_the_stream() {
    for (stanza, condition) in [
        (
            "<message from='bot@localhost' to='alice@localhost'/>",
            "invalid-from",
        ),
        ("<message to='alice@localhost'/>", "invalid-from"),
        ("<message from='push.localhost'/>", "improper-addressing"),
        (
            "<foo from='push.localhost' to='alice@localhost'/>",
            "unsupported-stanza-type",
        ),
    ] {
        let mut c = established();
        assert_error(&feed(&mut c, stanza), condition);
    }
}
