//! XEP-0198 stream management, the session's half: scripted inputs, asserted outputs.

use super::tests::{
    assert_stream_error, cb, credentials, established, feed, found, sent, tls_up, OPEN,
};
use super::*;
use crate::xml::Element;
use std::sync::Arc;

const SM: &str = "xmlns='urn:xmpp:sm:3'";

pub(super) fn message(n: usize) -> Routed {
    let el = Element::parse(&format!(
        "<message xmlns='jabber:client' from='romeo@localhost/a' to='alice@localhost/phone' id='m{n}'><body>{n}</body></message>"
    ))
    .expect("xml");
    Routed::Tree(Arc::new(el))
}

fn deliver(s: &mut Session, n: usize) -> String {
    sent(&s.handle(Input::Deliver(message(n))))
}

/// Authenticated (PLAIN as alice), not bound: where `<resume/>` is sent.
pub(super) fn authenticated() -> Session {
    let mut s = tls_up(cb());
    feed(&mut s, OPEN);
    feed(&mut s, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>");
    credentials(&mut s, found());
    feed(&mut s, OPEN);
    s
}

/// Established with resumption enabled; its SM-ID.
pub(super) fn resumable() -> (Session, String) {
    let mut s = established();
    let out = sent(&feed(&mut s, &format!("<enable {SM} resume='true'/>")));
    let id = s.resumable().expect("resumable").id;
    assert!(out.contains(&format!("id='{id}'")), "{out}");
    (s, id)
}

#[test]
fn xep0198_feature_is_offered_once_authenticated() {
    let mut s = tls_up(cb());
    let before = sent(&feed(&mut s, OPEN));
    let sasl2 = before
        .find("<authentication")
        .zip(before.find("</authentication>"));
    let (from, to) = sasl2.expect("SASL2 offered");
    let top_level = format!("{}{}", &before[..from], &before[to..]);
    assert!(
        !top_level.contains("urn:xmpp:sm:3"),
        "only inside SASL2: {before}"
    );
    feed(&mut s, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>");
    credentials(&mut s, found());
    let after = sent(&feed(&mut s, OPEN));
    assert!(after.contains(&format!("<sm {SM}/>")), "{after}");
}

#[test]
fn xep0198_3_enable_before_bind_fails_and_binding_still_works() {
    let mut s = authenticated();
    let out = sent(&feed(&mut s, &format!("<enable {SM}/>")));
    assert!(out.starts_with(&format!("<failed {SM}>")), "{out}");
    assert!(
        out.contains("<unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"),
        "{out}"
    );
    feed(
        &mut s,
        "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
    );
    s.handle(Input::Bound(Ok(())));
    assert!(s.is_established());
}

#[test]
fn xep0198_3_enable_without_and_with_resumption_and_twice() {
    let mut s = established();
    assert_eq!(
        sent(&feed(&mut s, &format!("<enable {SM}/>"))),
        format!("<enabled {SM}/>")
    );
    assert!(s.resumable().is_none());
    let again = sent(&feed(&mut s, &format!("<enable {SM} resume='true'/>")));
    assert!(again.contains("<unexpected-request"), "{again}");

    // The client's max is taken when below the policy's, the policy's otherwise.
    for (asked, offered) in [("60", 60), ("100000", 300), ("0", 300), ("x", 300)] {
        let mut s = established();
        let out = sent(&feed(
            &mut s,
            &format!("<enable {SM} resume='1' max='{asked}'/>"),
        ));
        let r = s.resumable().expect("resumable");
        assert_eq!(r.max_secs, offered);
        assert!(
            out.contains(&format!("max='{offered}'")) && out.contains("resume='true'"),
            "{out}"
        );
        assert!(r.id.len() >= 20, "an SM-ID hard to guess");
    }
    // Policy without resumption: acks only.
    let config = SessionConfig {
        sm: SmPolicy {
            resume_max_secs: 0,
            ..SmPolicy::default()
        },
        ..SessionConfig::default()
    };
    let mut s = established_with(config);
    assert_eq!(
        sent(&feed(&mut s, &format!("<enable {SM} resume='true'/>"))),
        format!("<enabled {SM}/>")
    );
}

fn established_with(config: SessionConfig) -> Session {
    let mut s = Session::new(Arc::new(config), Some(cb()));
    feed(&mut s, OPEN);
    feed(&mut s, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>");
    credentials(&mut s, found());
    feed(&mut s, OPEN);
    feed(&mut s, "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>phone</resource></bind></iq>");
    s.handle(Input::Bound(Ok(())));
    assert!(s.is_established());
    s
}

#[test]
fn xep0198_4_acks_before_enable_are_stream_errors() {
    for nonza in [
        "<r xmlns='urn:xmpp:sm:3'/>",
        "<a xmlns='urn:xmpp:sm:3' h='0'/>",
    ] {
        let mut s = established();
        assert_stream_error(&feed(&mut s, nonza), "unsupported-stanza-type");
    }
}

#[test]
fn xep0198_4_the_client_stanzas_handled_are_counted() {
    let mut s = established();
    feed(&mut s, &format!("<enable {SM}/>"));
    let out = feed(
        &mut s,
        "<message to='romeo@localhost' type='chat'><body>1</body></message>\
         <presence/>\
         <iq type='get' id='bad'/>\
         <r xmlns='urn:xmpp:sm:3'/>",
    );
    // Two routed, one answered with an error: three handled, nonzas not counted.
    let routed = out
        .iter()
        .filter(|o| matches!(o, Output::Route(..)))
        .count();
    assert_eq!(routed, 2);
    let xml = sent(&out);
    assert!(xml.contains("type='error'"), "{xml}");
    assert!(xml.ends_with(&format!("<a {SM} h='3'/>")), "{xml}");
    // A driver tells the `<a/>` from every other write the session made (it must not
    // overtake the routing it counts), and from nothing else.
    let writes: Vec<&String> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send(xml) => Some(xml),
            _ => None,
        })
        .collect();
    let acks: Vec<bool> = writes.iter().map(|w| super::is_ack(w)).collect();
    assert_eq!(acks.iter().filter(|a| **a).count(), 1, "{writes:?}");
    assert_eq!(acks.last(), Some(&true), "{writes:?}");
    for other in [
        "<r xmlns='urn:xmpp:sm:3'/>",
        "<enabled xmlns='urn:xmpp:sm:3'/>",
    ] {
        assert!(!super::is_ack(other));
    }
}

#[test]
fn xep0198_4_server_asks_every_n_stanzas_and_acks_trim_the_queue() {
    let mut s = established();
    feed(&mut s, &format!("<enable {SM}/>"));
    for n in 1..5 {
        assert!(
            !deliver(&mut s, n).contains("<r "),
            "no request before the fifth"
        );
    }
    assert!(deliver(&mut s, 5).ends_with(&format!("<r {SM}/>")));
    feed(&mut s, &format!("<a {SM} h='3'/>"));
    let left: Vec<String> = s.take_unacked().iter().map(Routed::to_client_xml).collect();
    assert_eq!(left.len(), 2);
    assert!(left[0].contains("id='m4'") && left[1].contains("id='m5'"));
}

#[test]
fn xep0198_4_an_ack_for_more_than_was_sent_ends_the_stream() {
    let mut s = established();
    feed(&mut s, &format!("<enable {SM}/>"));
    deliver(&mut s, 1);
    let out = feed(&mut s, &format!("<a {SM} h='2'/>"));
    assert_stream_error(&out, "undefined-condition");
    assert!(sent(&out).contains(&format!(
        "<handled-count-too-high {SM} h='2' send-count='1'/>"
    )));
}

#[test]
fn xep0198_4_counters_wrap_at_two_to_the_32() {
    let mut s = established();
    feed(&mut s, &format!("<enable {SM}/>"));
    {
        let sm = s.sm.as_mut().expect("enabled");
        sm.handled = u32::MAX;
        sm.sent = u32::MAX - 1;
        sm.acked = u32::MAX - 1;
    }
    deliver(&mut s, 1);
    deliver(&mut s, 2);
    deliver(&mut s, 3);
    // Sent: MAX, 0, 1. Acknowledging up to 0 leaves one.
    feed(&mut s, &format!("<a {SM} h='0'/>"));
    assert_eq!(s.take_unacked().len(), 1);
    let out = sent(&feed(&mut s, "<presence/><r xmlns='urn:xmpp:sm:3'/>"));
    assert!(out.ends_with(&format!("<a {SM} h='0'/>")), "{out}");
}

#[test]
fn xep0198_5_a_broken_connection_detaches_and_the_session_queues() {
    let (mut s, _) = resumable();
    deliver(&mut s, 1);
    let out = s.handle(Input::PeerClosed);
    assert_eq!(out, vec![Output::Close]);
    assert!(s.is_detached() && !s.is_closed());
    assert_eq!(deliver(&mut s, 2), "", "nothing written while detached");
    assert_eq!(s.take_unacked().len(), 2);
}

#[test]
fn xep0198_5_a_clean_close_or_a_stream_error_ends_the_session() {
    let (mut s, _) = resumable();
    feed(&mut s, "</stream:stream>");
    assert!(s.is_closed());
    let (mut s, _) = resumable();
    s.handle(Input::Terminate(StreamCondition::Conflict));
    assert!(s.is_closed());
    // Non-resumable stream management: a broken connection ends it.
    let mut s = established();
    feed(&mut s, &format!("<enable {SM}/>"));
    s.handle(Input::PeerClosed);
    assert!(s.is_closed());
}

#[test]
fn xep0198_5_resumption_resends_what_the_client_did_not_handle_in_order() {
    let (mut s, id) = resumable();
    feed(
        &mut s,
        "<presence/><message to='romeo@localhost'><body>x</body></message>",
    );
    for n in 1..=3 {
        deliver(&mut s, n);
    }
    s.handle(Input::PeerClosed);
    deliver(&mut s, 4);

    let mut newer = authenticated();
    let out = feed(&mut newer, &format!("<resume {SM} previd='{id}' h='1'/>"));
    assert_eq!(
        out.last(),
        Some(&Output::Resume {
            previd: id.clone(),
            h: Some(1),
            account: "alice@localhost".parse().expect("jid"),
        })
    );
    let out = sent(&s.resume(&mut newer, Some(1)).expect("resumed"));
    assert!(
        out.starts_with(&format!("<resumed {SM} h='2' previd='{id}'/>")),
        "{out}"
    );
    let order: Vec<usize> = (2..=4)
        .map(|n| out.find(&format!("id='m{n}'")).expect("resent"))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{out}");
    assert!(!out.contains("id='m1'"), "{out}");
    assert!(s.is_established() && newer.is_closed());
    // The stream goes on: the resumed session reads from the new stream.
    let more = s.handle(Input::Bytes(
        b"<message to='romeo@localhost'><body>y</body></message>",
    ));
    assert!(matches!(more.first(), Some(Output::Route(..))));
}

#[test]
fn xep0198_5_an_impossible_h_is_refused_and_changes_nothing() {
    let (mut s, _) = resumable();
    deliver(&mut s, 1);
    s.handle(Input::PeerClosed);
    let mut newer = authenticated();
    feed(
        &mut newer,
        "<resume xmlns='urn:xmpp:sm:3' previd='x' h='2'/>",
    );
    let why = s.resume(&mut newer, Some(2)).expect_err("refused");
    assert_eq!(why, ResumeRefused::HandledTooHigh { h: 2, sent: 1 });
    assert!(s.is_detached() && !newer.is_closed());
    // The new stream is told why, with the count the server did send.
    let out = sent(&newer.handle(Input::ResumeFailed(why)));
    assert!(out.starts_with(&format!("<failed {SM}>")), "{out}");
    assert!(
        out.contains("<undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"),
        "{out}"
    );
    // The child inherits the namespace of <failed/>.
    assert!(
        out.contains("<handled-count-too-high h='2' send-count='1'/>"),
        "{out}"
    );
    assert_eq!(s.take_unacked().len(), 1);
}

#[test]
fn xep0198_5_an_unknown_session_fails_and_the_client_may_bind() {
    let mut s = authenticated();
    let out = feed(&mut s, &format!("<resume {SM} previd='nope' h='0'/>"));
    assert!(matches!(out.last(), Some(Output::Resume { .. })));
    assert!(!s.wants_bytes(), "nothing read while the driver looks");
    let out = sent(&s.handle(Input::ResumeFailed(ResumeRefused::NotFound)));
    assert!(
        out.contains("<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"),
        "{out}"
    );
    feed(
        &mut s,
        "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
    );
    s.handle(Input::Bound(Ok(())));
    assert!(s.is_established());

    // Malformed: no previd, a non-numeric h; and after binding, resume is unexpected.
    for bad in [
        format!("<resume {SM}/>"),
        format!("<resume {SM} previd='x' h='-1'/>"),
    ] {
        let mut s = authenticated();
        assert!(sent(&feed(&mut s, &bad)).contains("<bad-request"), "{bad}");
    }
    let mut s = established();
    assert!(
        sent(&feed(&mut s, &format!("<resume {SM} previd='x'/>"))).contains("<unexpected-request")
    );
}

#[test]
fn xep0198_the_unacknowledged_queue_is_bounded() {
    let config = SessionConfig {
        sm: SmPolicy {
            max_unacked: 3,
            ..SmPolicy::default()
        },
        ..SessionConfig::default()
    };
    let mut s = established_with(config.clone());
    feed(&mut s, &format!("<enable {SM} resume='true'/>"));
    for n in 1..=3 {
        deliver(&mut s, n);
    }
    let out = s.handle(Input::Deliver(message(4)));
    assert_stream_error(&out, "policy-violation");
    assert_eq!(s.take_unacked().len(), 4, "everything held goes back");

    let mut s = established_with(config);
    feed(&mut s, &format!("<enable {SM} resume='true'/>"));
    s.handle(Input::PeerClosed);
    for n in 1..=3 {
        deliver(&mut s, n);
    }
    assert!(s.is_detached());
    deliver(&mut s, 4);
    assert!(s.is_closed(), "a detached session past its bound ends");
    assert_eq!(s.take_unacked().len(), 4);
}

#[test]
fn xep0199_keepalive_pings_without_sm_and_asks_for_an_ack_with_it() {
    let mut s = established();
    let ping = sent(&s.keepalive());
    assert!(
        ping.contains("<ping xmlns='urn:xmpp:ping'/>") && ping.contains("id='sy-keepalive'"),
        "{ping}"
    );
    let answer = feed(
        &mut s,
        "<iq type='result' id='sy-keepalive' to='localhost'/>",
    );
    assert!(
        answer.is_empty(),
        "the answer to our own ping goes no further: {answer:?}"
    );
    feed(&mut s, &format!("<enable {SM}/>"));
    assert_eq!(sent(&s.keepalive()), format!("<r {SM}/>"));
}

#[test]
fn xep0198_5_a_session_moves_between_edges_as_its_state() {
    let (mut old, id) = resumable();
    for n in 1..=3 {
        deliver(&mut old, n);
    }
    old.handle(Input::PeerClosed);
    let state = old.export().expect("a resumable session exports");
    assert!(
        old.is_closed() && old.take_unacked().is_empty(),
        "nothing left behind"
    );
    assert_eq!(old.export(), None);
    assert!(state.is_consistent());

    let mut newer = authenticated();
    feed(&mut newer, &format!("<resume {SM} previd='{id}' h='1'/>"));
    let out = sent(&newer.adopt(state, Some(1)).expect("adopted"));
    assert!(
        out.starts_with(&format!("<resumed {SM} h='0' previd='{id}'/>")),
        "{out}"
    );
    assert!(out.contains("id='m2'") && out.contains("id='m3'") && !out.contains("id='m1'"));
    assert!(newer.is_established());
    assert_eq!(
        newer.jid().map(ToString::to_string).as_deref(),
        Some("alice@localhost/phone")
    );
    assert_eq!(newer.resumable().map(|r| r.id), Some(id));
}

#[test]
fn xep0198_5_a_moved_state_is_refused_for_another_account_or_an_impossible_h() {
    let (mut old, id) = resumable();
    deliver(&mut old, 1);
    let state = old.export().expect("exported");

    let mut too_high = authenticated();
    feed(
        &mut too_high,
        &format!("<resume {SM} previd='{id}' h='2'/>"),
    );
    let (back, why) = too_high
        .adopt(state.clone(), Some(2))
        .expect_err("h past what was sent");
    assert_eq!(*back, state, "the state comes back whole, for its stanzas");
    assert_eq!(why, ResumeRefused::HandledTooHigh { h: 2, sent: 1 });

    let mut other = authenticated();
    let mut foreign = state.clone();
    foreign.jid = "bob@localhost/phone".parse().expect("jid");
    feed(&mut other, &format!("<resume {SM} previd='{id}'/>"));
    assert!(
        other.adopt(foreign, None).is_err(),
        "another account's session"
    );

    let mut not_asked = established();
    assert!(
        not_asked.adopt(state, None).is_err(),
        "a stream that did not ask to resume"
    );
}

#[test]
fn xep0198_a_quiet_stream_owes_an_ack_request_for_what_it_sent() {
    let mut s = established();
    assert!(!s.owes_ack(), "no stream management");
    feed(&mut s, &format!("<enable {SM}/>"));
    assert!(!s.owes_ack(), "nothing sent");
    deliver(&mut s, 1);
    assert!(s.owes_ack());
    assert_eq!(sent(&s.ask_for_ack()), format!("<r {SM}/>"));
    assert!(!s.owes_ack(), "asked already");
    assert_eq!(sent(&s.ask_for_ack()), "", "not twice");
    for n in 2..=5 {
        deliver(&mut s, n);
    }
    assert!(s.owes_ack(), "four sent since the request");
    // The fifth since the request brings its own: nothing more owed.
    deliver(&mut s, 6);
    assert!(!s.owes_ack());
    deliver(&mut s, 7);
    feed(&mut s, &format!("<a {SM} h='7'/>"));
    assert!(!s.owes_ack(), "everything acknowledged");
}
