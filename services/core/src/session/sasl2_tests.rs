//! XEP-0388 SASL2, XEP-0386 Bind 2, XEP-0198 inline and XEP-0484 FAST, the session's
//! half: scripted inputs, asserted outputs (the driver and the router played by hand).

use super::sm_tests::{message, resumable};
use super::tests::{assert_stream_error, cb, credentials, feed, found, sent, tls_up, OPEN};
use super::*;
use crate::sasl::fast::TokenKey;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

const UA: &str = "D4565FA7-4d72-4749-b3d3-740edbf87770";
const UA_LOWER: &str = "d4565fa7-4d72-4749-b3d3-740edbf87770";
/// PLAIN for alice, password "secret".
const PLAIN_IR: &str = "AGFsaWNlAHNlY3JldA==";

/// After STARTTLS and the second header: where `<authenticate/>` is sent.
fn ready(cb: ChannelBindings) -> (Session, String) {
    let mut s = tls_up(cb);
    let features = sent(&feed(&mut s, OPEN));
    (s, features)
}

fn authenticate(mechanism: &str, initial: &str, inline: &str) -> String {
    format!(
        "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='{mechanism}'><initial-response>{initial}</initial-response><user-agent id='{UA}'><software>Test</software></user-agent>{inline}</authenticate>"
    )
}

fn token(at_secs: u64) -> crate::sasl::fast::IssuedToken {
    crate::sasl::fast::IssuedToken {
        token: "tok".into(),
        expiry: UNIX_EPOCH + Duration::from_secs(at_secs),
    }
}

#[test]
fn xep0388_2_1_offered_on_encrypted_streams_with_its_inline_features() {
    let mut plain = Session::new(Arc::new(SessionConfig::default()), None);
    let before_tls = sent(&feed(&mut plain, OPEN));
    assert!(
        !before_tls.contains("urn:xmpp:sasl:2"),
        "§5 only after TLS: {before_tls}"
    );

    let (_, features) = ready(cb());
    for part in [
        "<authentication xmlns='urn:xmpp:sasl:2'><mechanism>SCRAM-SHA-256-PLUS</mechanism>",
        "<inline><bind xmlns='urn:xmpp:bind:0'><inline><feature var='urn:xmpp:carbons:2'/><feature var='urn:xmpp:csi:0'/><feature var='urn:xmpp:sm:3'/></inline></bind>",
        "<sm xmlns='urn:xmpp:sm:3'/>",
        "<fast xmlns='urn:xmpp:fast:0'><mechanism>HT-SHA-256-EXPR</mechanism><mechanism>HT-SHA-256-ENDP</mechanism><mechanism>HT-SHA-256-NONE</mechanism></fast>",
    ] {
        assert!(features.contains(part), "{part} in {features}");
    }
    let sasl2 = &features[..features.find("</authentication>").unwrap()];
    assert!(!sasl2.contains("<mechanism>HT-SHA-256-NONE</mechanism></authentication"));
    let (_, unbound) = ready(ChannelBindings::default());
    assert!(
        unbound.contains(
            "<fast xmlns='urn:xmpp:fast:0'><mechanism>HT-SHA-256-NONE</mechanism></fast>"
        ),
        "{unbound}"
    );

    let config = SessionConfig {
        fast: false,
        ..SessionConfig::default()
    };
    let mut s = Session::new(Arc::new(config), Some(cb()));
    let off = sent(&feed(&mut s, OPEN));
    assert!(
        off.contains("urn:xmpp:sasl:2") && !off.contains("urn:xmpp:fast:0"),
        "{off}"
    );
}

#[test]
fn xep0386_password_login_binds_inline_with_carbons_csi_sm_and_a_token() {
    let (mut s, _) = ready(cb());
    let inline = "<bind xmlns='urn:xmpp:bind:0'><tag>AwesomeXMPP</tag><enable xmlns='urn:xmpp:carbons:2'/><enable xmlns='urn:xmpp:sm:3' resume='true'/><inactive xmlns='urn:xmpp:csi:0'/></bind><request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-EXPR'/>";
    feed(&mut s, &authenticate("PLAIN", PLAIN_IR, inline));
    let out = credentials(&mut s, found());
    assert!(
        sent(&out).is_empty(),
        "nothing before the inline steps: {out:?}"
    );
    assert!(out.contains(&Output::Authenticated {
        username: "alice".into(),
        mechanism: Mechanism::Plain,
    }));
    let account = Jid::parse("alice@localhost").unwrap();
    assert_eq!(
        out.last(),
        Some(&Output::IssueToken(crate::sasl::fast::TokenRequest {
            account: account.clone(),
            user_agent: UA_LOWER.into(),
            label: "Test".into(),
            mechanism: Mechanism::HtSha256Expr,
        })),
        "{out:?}"
    );
    let out = s.handle(Input::TokenIssued(Some(token(1_700_000_000))));
    let Some(Output::Bind { jid, carbons: true }) = out.last().cloned() else {
        panic!("bind with carbons: {out:?}");
    };
    let resource = jid.resource().unwrap().to_owned();
    assert!(
        resource.starts_with("AwesomeXMPP."),
        "§3.2.1 tag first: {resource}"
    );
    assert!(!resource.contains(UA_LOWER), "§3.2.1 the id is not shown");
    let out = sent(&s.handle(Input::Bound(Ok(()))));
    let want = format!(
        "<success xmlns='urn:xmpp:sasl:2'><authorization-identifier>{jid}</authorization-identifier><token xmlns='urn:xmpp:fast:0' expiry='2023-11-14T22:13:20.000Z' token='tok'/><bound xmlns='urn:xmpp:bind:0'><enabled xmlns='urn:xmpp:sm:3' id="
    );
    assert!(out.starts_with(&want), "{out}");
    assert!(
        !out.contains("<?xml") && !out.contains("<stream:stream"),
        "§2.6.1 no restart: {out}"
    );
    let features = &out[out.find("</success>").unwrap()..];
    assert!(
        features.contains("<stream:features>") && features.contains("urn:xmpp:csi:0"),
        "{out}"
    );
    for offered_again in [
        "urn:ietf:params:xml:ns:xmpp-bind",
        "<sm xmlns='urn:xmpp:sm:3'/>",
    ] {
        assert!(!features.contains(offered_again), "{offered_again}: {out}");
    }
    assert!(s.is_established());
    assert!(s.resumable().is_some(), "SM enabled with resumption");
    assert!(s.inactive.is_some(), "CSI state set inline");
}

#[test]
fn xep0386_resource_is_stable_per_client_and_random_without_an_id() {
    let bind_once = |ua: Option<&str>, tag: &str| {
        let (mut s, _) = ready(cb());
        let agent = ua
            .map(|id| format!("<user-agent id='{id}'/>"))
            .unwrap_or_default();
        feed(&mut s, &format!("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>{PLAIN_IR}</initial-response>{agent}<bind xmlns='urn:xmpp:bind:0'><tag>{tag}</tag></bind></authenticate>"));
        match credentials(&mut s, found()).last() {
            Some(Output::Bind { jid, .. }) => jid.resource().unwrap().to_owned(),
            other => panic!("{other:?}"),
        }
    };
    let one = bind_once(Some(UA), "App");
    assert_eq!(
        one,
        bind_once(Some(UA_LOWER), "App"),
        "stable for one client"
    );
    assert_ne!(
        one,
        bind_once(Some("00000000-0000-4000-8000-000000000000"), "App")
    );
    assert_ne!(
        bind_once(None, "App"),
        bind_once(None, "App"),
        "random without an id"
    );
    let longest = "x".repeat(64);
    assert!(
        bind_once(Some(UA), &longest).starts_with(&format!("{longest}.")),
        "64 kept"
    );
    let long = "x".repeat(65);
    assert!(
        !bind_once(Some(UA), &long).contains('x'),
        "an overlong tag is left out"
    );
    let invalid = bind_once(Some(UA), "bad\ttag");
    assert!(
        !invalid.contains("bad"),
        "a tag no resource may hold is left out: {invalid}"
    );
}

#[test]
fn xep0388_scram_carries_its_final_message_as_additional_data() {
    let (mut s, _) = ready(cb());
    let mut client =
        crate::sasl::ScramClient::new(crate::sasl::HashAlg::Sha256, "alice", "secret", None);
    let first = B64.encode(client.client_first());
    let out = feed(&mut s, &authenticate("SCRAM-SHA-256", &first, ""));
    assert_eq!(
        out,
        vec![Output::FetchCredentials {
            account: Jid::parse("alice@localhost").unwrap()
        }]
    );
    let out = sent(&credentials(&mut s, found()));
    let challenge = out
        .strip_prefix("<challenge xmlns='urn:xmpp:sasl:2'>")
        .and_then(|c| c.strip_suffix("</challenge>"))
        .unwrap_or_else(|| panic!("{out}"));
    let server_first = String::from_utf8(B64.decode(challenge).unwrap()).unwrap();
    let client_final = client.client_final(&server_first).unwrap();
    let out = feed(
        &mut s,
        &format!(
            "<response xmlns='urn:xmpp:sasl:2'>{}</response>",
            B64.encode(client_final)
        ),
    );
    let out = sent(&super::tests::answered(&mut s, out));
    let data = out
        .split("<additional-data>")
        .nth(1)
        .and_then(|d| d.split('<').next())
        .unwrap_or_else(|| panic!("{out}"));
    let server_final = String::from_utf8(B64.decode(data).unwrap()).unwrap();
    assert!(client.verify_server_final(&server_final), "{server_final}");
    assert!(
        out.contains("<authorization-identifier>alice@localhost</authorization-identifier>"),
        "bare, unbound: {out}"
    );
    assert!(
        out.contains("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"),
        "then RFC 6120 bind is offered: {out}"
    );
}

#[test]
fn xep0388_2_6_2_failure_has_the_condition_first_and_changes_nothing() {
    let (mut s, _) = ready(cb());
    let wrong = B64.encode("\0alice\0wrong");
    feed(
        &mut s,
        &authenticate("PLAIN", &wrong, "<bind xmlns='urn:xmpp:bind:0'/>"),
    );
    let out = credentials(&mut s, found());
    assert_eq!(
        sent(&out),
        "<failure xmlns='urn:xmpp:sasl:2'><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></failure>"
    );
    assert!(
        !out.iter().any(|o| matches!(o, Output::Bind { .. })),
        "no inline request runs"
    );
    feed(&mut s, &authenticate("PLAIN", PLAIN_IR, ""));
    let out = sent(&credentials(&mut s, found()));
    assert!(
        out.starts_with("<success xmlns='urn:xmpp:sasl:2'>"),
        "another attempt may follow: {out}"
    );
    // §6.8: once succeeded, another <authenticate/> ends the stream.
    assert_stream_error(
        &feed(&mut s, &authenticate("PLAIN", PLAIN_IR, "")),
        "policy-violation",
    );
}

#[test]
fn xep0388_requests_that_cannot_be_served_fail_cleanly() {
    let cases = [
        (authenticate("DIGEST-MD5", "", ""), "invalid-mechanism"),
        (authenticate("HT-SHA-256-UNIQ", "", ""), "invalid-mechanism"),
        (authenticate("PLAIN", PLAIN_IR, "<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-UNIQ'/>"), "invalid-mechanism"),
        (authenticate("PLAIN", "!!", ""), "incorrect-encoding"),
        ("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><user-agent id='not-a-uuid'/></authenticate>".to_owned(), "malformed-request"),
    ];
    for (request, condition) in cases {
        let (mut s, _) = ready(cb());
        let out = sent(&feed(&mut s, &request));
        let want = format!("<failure xmlns='urn:xmpp:sasl:2'><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></failure>");
        assert_eq!(out, want, "{request}");
        assert!(!s.is_closed());
    }
    // A token mechanism is no RFC 6120 mechanism.
    let (mut s, _) = ready(cb());
    let out = sent(&feed(
        &mut s,
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='HT-SHA-256-NONE'>AA==</auth>",
    ));
    assert!(out.contains("<invalid-mechanism/>"), "{out}");
    // §2.4: anything but a response or an abort during the exchange ends the stream.
    let (mut s, _) = ready(cb());
    feed(
        &mut s,
        "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'/>",
    );
    assert_stream_error(
        &feed(&mut s, "<message xmlns='jabber:client'/>"),
        "not-authorized",
    );
    let (mut s, _) = ready(cb());
    feed(
        &mut s,
        "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'/>",
    );
    let out = sent(&feed(&mut s, "<abort xmlns='urn:xmpp:sasl:2'/>"));
    assert!(
        out.contains("<aborted xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"),
        "{out}"
    );
}

/// HT §3.1: `authcid NUL HMAC(token, "Initiator" || cb-data)`.
fn ht_initial(token: &str, cb: &[u8]) -> String {
    let mut msg = b"alice\0".to_vec();
    msg.extend(TokenKey::of(token).initiator(cb));
    B64.encode(msg)
}

#[test]
fn xep0484_a_token_is_checked_outside_with_the_connections_binding() {
    let bindings = cb();
    for (mechanism, data) in [
        ("HT-SHA-256-NONE", Vec::new()),
        (
            "HT-SHA-256-ENDP",
            bindings.tls_server_end_point.clone().unwrap(),
        ),
        ("HT-SHA-256-EXPR", bindings.tls_exporter.clone().unwrap()),
    ] {
        let (mut s, _) = ready(bindings.clone());
        let out = feed(
            &mut s,
            &authenticate(
                mechanism,
                &ht_initial("tok", &data),
                "<fast xmlns='urn:xmpp:fast:0'/>",
            ),
        );
        let Some(Output::VerifyToken(check)) = out.last() else {
            panic!("{out:?}");
        };
        assert_eq!(check.user_agent, UA_LOWER);
        assert_eq!(check.mechanism.name(), mechanism);
        assert_eq!(check.cb_data, data);
        assert!(TokenKey::of("tok").matches(&check.hashed, &check.cb_data));
        assert!(!check.invalidate);
        // Right and due for rotation: a new token for the same mechanism.
        let out = s.handle(Input::TokenVerified {
            verification: Verification::Accepted(b"responder".to_vec()),
            rotate: true,
        });
        assert!(
            matches!(out.last(), Some(Output::IssueToken(r)) if r.mechanism.name() == mechanism),
            "{out:?}"
        );
        let out = sent(&s.handle(Input::TokenIssued(Some(token(0)))));
        let want = format!(
            "<success xmlns='urn:xmpp:sasl:2'><additional-data>{}</additional-data><authorization-identifier>alice@localhost</authorization-identifier><token xmlns='urn:xmpp:fast:0' expiry='1970-01-01T00:00:00.000Z' token='tok'/></success>",
            B64.encode("responder")
        );
        assert!(out.starts_with(&want), "{out}");
    }
}

#[test]
fn xep0484_wrong_tokens_unknown_clients_and_sign_outs() {
    // Wrong: not-authorized, and the client may log in with its password next.
    let (mut s, _) = ready(cb());
    feed(
        &mut s,
        &authenticate("HT-SHA-256-NONE", &ht_initial("tok", b""), ""),
    );
    let out = sent(&s.handle(Input::TokenVerified {
        verification: Verification::Rejected,
        rotate: false,
    }));
    assert!(
        out.contains("<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"),
        "{out}"
    );
    feed(&mut s, &authenticate("PLAIN", PLAIN_IR, ""));
    assert!(sent(&credentials(&mut s, found())).starts_with("<success"));

    // No user-agent id: no token can have been issued to it; nothing is asked.
    let (mut s, _) = ready(cb());
    let request = format!("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-NONE'><initial-response>{}</initial-response></authenticate>", ht_initial("tok", b""));
    let out = feed(&mut s, &request);
    assert!(
        !out.iter().any(|o| matches!(o, Output::VerifyToken(_))),
        "{out:?}"
    );
    assert!(sent(&out).contains("<not-authorized"), "{out:?}");

    // A password login asking for a token without an id gets none, and no error.
    let (mut s, _) = ready(cb());
    let request = format!("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>{PLAIN_IR}</initial-response><request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/></authenticate>");
    feed(&mut s, &request);
    let out = credentials(&mut s, found());
    assert!(
        !out.iter().any(|o| matches!(o, Output::IssueToken(_))),
        "{out:?}"
    );
    assert!(sent(&out).starts_with("<success"));

    // §3.6: signing out authenticates, and gets no new token even when one is due.
    let (mut s, _) = ready(cb());
    let out = feed(
        &mut s,
        &authenticate(
            "HT-SHA-256-NONE",
            &ht_initial("tok", b""),
            "<fast xmlns='urn:xmpp:fast:0' invalidate='true'/>",
        ),
    );
    assert!(
        matches!(out.last(), Some(Output::VerifyToken(c)) if c.invalidate),
        "{out:?}"
    );
    let out = s.handle(Input::TokenVerified {
        verification: Verification::Accepted(vec![1]),
        rotate: true,
    });
    assert!(
        !out.iter().any(|o| matches!(o, Output::IssueToken(_))),
        "{out:?}"
    );
    assert!(sent(&out).starts_with("<success"));
}

#[test]
fn xep0198_inline_resumption_failed_then_bound() {
    let (mut s, _) = ready(cb());
    let inline =
        "<resume xmlns='urn:xmpp:sm:3' previd='gone' h='3'/><bind xmlns='urn:xmpp:bind:0'/>";
    feed(&mut s, &authenticate("PLAIN", PLAIN_IR, inline));
    let out = credentials(&mut s, found());
    assert!(
        matches!(out.last(), Some(Output::Resume { previd, h: Some(3), .. }) if previd == "gone"),
        "{out:?}"
    );
    let out = s.handle(Input::ResumeFailed(ResumeRefused::NotFound));
    assert!(
        matches!(out.last(), Some(Output::Bind { .. })),
        "the bind goes ahead: {out:?}"
    );
    let out = sent(&s.handle(Input::Bound(Ok(()))));
    let failed = out.find("<failed xmlns='urn:xmpp:sm:3'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>");
    let bound = out.find("<bound xmlns='urn:xmpp:bind:0'/>");
    assert!(failed.is_some() && failed < bound, "{out}");
}

#[test]
fn xep0198_inline_resumption_answers_inside_success_then_resends() {
    let (mut old, id) = resumable();
    old.handle(Input::Deliver(message(1)));
    old.handle(Input::PeerClosed);
    let (mut newer, _) = ready(cb());
    let inline = format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='0'/><bind xmlns='urn:xmpp:bind:0'/>"
    );
    feed(&mut newer, &authenticate("PLAIN", PLAIN_IR, &inline));
    let out = credentials(&mut newer, found());
    assert!(matches!(out.last(), Some(Output::Resume { .. })), "{out:?}");
    let out = sent(&old.resume(&mut newer, Some(0)).expect("resumed"));
    let want = format!("<success xmlns='urn:xmpp:sasl:2'><authorization-identifier>alice@localhost/phone</authorization-identifier><resumed xmlns='urn:xmpp:sm:3' h='0' previd='{id}'/></success><stream:features>");
    assert!(out.starts_with(&want), "{out}");
    let resent = out
        .find("id='m1'")
        .expect("the unacknowledged message again");
    assert!(
        resent > out.find("</stream:features>").unwrap(),
        "after success: {out}"
    );
    assert!(
        !out.contains("urn:xmpp:bind:0"),
        "the bind is ignored: {out}"
    );
    assert!(old.is_established());
}

#[test]
fn xep0198_a_malformed_inline_resume_fails_alone_and_the_bind_goes_ahead() {
    for resume in ["h='x' previd='a'", "h='1'", "previd=''"] {
        let (mut s, _) = ready(cb());
        let inline =
            format!("<resume xmlns='urn:xmpp:sm:3' {resume}/><bind xmlns='urn:xmpp:bind:0'/>");
        feed(&mut s, &authenticate("PLAIN", PLAIN_IR, &inline));
        let out = credentials(&mut s, found());
        assert!(
            matches!(out.last(), Some(Output::Bind { .. })),
            "{resume}: {out:?}"
        );
        let out = sent(&s.handle(Input::Bound(Ok(()))));
        assert!(
            out.contains("<failed xmlns='urn:xmpp:sm:3'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed><bound"),
            "{resume}: {out}"
        );
    }
}

#[test]
fn xep0386_a_failed_bind_leaves_the_stream_unauthenticated_and_its_limits_small() {
    let (mut s, _) = ready(cb());
    feed(
        &mut s,
        &authenticate("PLAIN", PLAIN_IR, "<bind xmlns='urn:xmpp:bind:0'/>"),
    );
    credentials(&mut s, found());
    let out = sent(&s.handle(Input::Bound(Err(StanzaCondition::ResourceConstraint))));
    assert!(out.contains("<temporary-auth-failure"), "{out}");
    // RFC 6120 §13.12: past the pre-authentication limit (16 KiB by default) again.
    let big = format!("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>{}</initial-response></authenticate>", "A".repeat(20_000));
    assert_stream_error(&feed(&mut s, &big), "policy-violation");
}
