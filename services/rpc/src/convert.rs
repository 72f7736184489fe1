//! The conversion boundary: generated protobuf types in, domain types out (and back).
//! Stanzas cross the wire serialized, with `jabber:client` declared on the top element.

use crate::pb;
use switchyard_core::sasl::fast::{client_label, user_agent_id, TokenCheck, TokenRequest};
use switchyard_core::sasl::{
    AccountSalts, HashAlg, Mechanism, ScramProof, ScramSalt, StoredCredentials,
};
use switchyard_core::session::SmState;
use switchyard_core::{Element, Jid, Limits, Routed, Stanza, StanzaCondition, StreamCondition};
use switchyard_model::{FailureCount, LoginFailureCounts};
use tonic::Status;

pub fn stanza_bytes(el: &Element) -> Vec<u8> {
    el.to_xml("").into_bytes()
}

pub fn element(bytes: &[u8]) -> Result<Element, Status> {
    let text = std::str::from_utf8(bytes).map_err(|_| Status::invalid_argument("not UTF-8"))?;
    Element::parse(text).map_err(|e| Status::invalid_argument(format!("bad stanza: {e}")))
}

/// A stanza an edge sent up a link: parsed within the element limits, with a `from`;
/// its bytes are kept, to be forwarded as they are.
pub fn stanza(bytes: Vec<u8>) -> Option<Stanza> {
    String::from_utf8(bytes).ok().and_then(Stanza::from_wire)
}

/// A delivery's stanza as an edge takes it: the bytes a router wrote (one element it
/// parsed or serialized itself), checked to be one element and nothing else, and a
/// stanza, without a tree built.
pub fn routed(xml: Vec<u8>) -> Result<Routed, Status> {
    let xml = String::from_utf8(xml).map_err(|_| Status::invalid_argument("not UTF-8"))?;
    switchyard_core::xml::one_element(&xml, &Limits::INTERNAL)
        .map_err(|e| Status::invalid_argument(format!("bad delivery: {e}")))?;
    let routed = Routed::Wire(xml.into());
    match routed.name() {
        "message" | "presence" | "iq" => Ok(routed),
        _ => Err(Status::invalid_argument("a delivery that is not a stanza")),
    }
}

pub fn jid(s: &str) -> Result<Jid, Status> {
    Jid::parse(s).map_err(|e| Status::invalid_argument(format!("bad JID {s:?}: {e}")))
}

fn salt_pb(s: &ScramSalt) -> pb::ScramSalt {
    pb::ScramSalt {
        salt: s.salt.clone(),
        iterations: s.iterations,
    }
}

fn salt(s: Option<pb::ScramSalt>) -> Result<ScramSalt, Status> {
    let s = s.ok_or_else(|| Status::data_loss("salts without a hash's salt"))?;
    Ok(ScramSalt {
        salt: s.salt,
        iterations: s.iterations,
    })
}

/// What a credential lookup answers: the salts of the stored keys, never the keys.
pub fn salts_pb(c: &StoredCredentials) -> pb::ScramSalts {
    let salts = c.salts();
    pb::ScramSalts {
        sha1: Some(salt_pb(&salts.sha1)),
        sha256: Some(salt_pb(&salts.sha256)),
    }
}

pub fn salts(s: pb::ScramSalts) -> Result<AccountSalts, Status> {
    Ok(AccountSalts {
        sha1: salt(s.sha1)?,
        sha256: salt(s.sha256)?,
    })
}

fn scram_hash_pb(alg: HashAlg) -> pb::ScramHash {
    match alg {
        HashAlg::Sha1 => pb::ScramHash::Sha1,
        HashAlg::Sha256 => pb::ScramHash::Sha256,
    }
}

pub fn verify_request(account: &Jid, proof: &ScramProof) -> pb::VerifyScramRequest {
    pb::VerifyScramRequest {
        account: account.to_string(),
        hash: scram_hash_pb(proof.alg).into(),
        auth_message: proof.auth_message.clone(),
        client_proof: proof.client_proof.clone(),
    }
}

pub fn verify_token_request(check: &TokenCheck) -> pb::VerifyTokenRequest {
    pb::VerifyTokenRequest {
        account: check.account.to_string(),
        user_agent: check.user_agent.clone(),
        mechanism: check.mechanism.name().to_owned(),
        hashed: check.hashed.clone(),
        cb_data: check.cb_data.clone(),
        invalidate: check.invalidate,
    }
}

/// A token check from an edge, checked as untrusted: a token mechanism, a user-agent id
/// of the form a session accepts, the sizes HT makes. The account is checked by the
/// caller.
pub fn token_check(r: pb::VerifyTokenRequest) -> Result<TokenCheck, Status> {
    let mechanism = token_mechanism(&r.mechanism)?;
    user_agent(&r.user_agent)?;
    if r.hashed.len() != 32 || r.cb_data.len() > 64 {
        return Err(Status::invalid_argument(
            "an HT-SHA-256 hashed token is 32 bytes, channel-binding data at most 64",
        ));
    }
    Ok(TokenCheck {
        account: jid(&r.account)?,
        user_agent: r.user_agent,
        mechanism,
        hashed: r.hashed,
        cb_data: r.cb_data,
        invalidate: r.invalidate,
    })
}

pub fn issue_token_request(request: &TokenRequest) -> pb::IssueTokenRequest {
    pb::IssueTokenRequest {
        account: request.account.to_string(),
        user_agent: request.user_agent.clone(),
        mechanism: request.mechanism.name().to_owned(),
        label: request.label.clone(),
    }
}

/// A token request from an edge, checked as untrusted: as `token_check`, and a label
/// as a session makes them. The account is checked by the caller.
pub fn token_request(r: pb::IssueTokenRequest) -> Result<TokenRequest, Status> {
    let mechanism = token_mechanism(&r.mechanism)?;
    user_agent(&r.user_agent)?;
    if client_label(Some(&r.label), None) != r.label {
        return Err(Status::invalid_argument(
            "a client label is at most 64 characters, no control characters",
        ));
    }
    Ok(TokenRequest {
        account: jid(&r.account)?,
        user_agent: r.user_agent,
        label: r.label,
        mechanism,
    })
}

pub fn token_mechanism(name: &str) -> Result<Mechanism, Status> {
    Mechanism::from_name(name)
        .filter(|m| m.is_token())
        .ok_or_else(|| Status::invalid_argument("not a FAST token mechanism"))
}

/// A user-agent id as sessions pass them on: a UUID, lower case.
pub fn user_agent(id: &str) -> Result<(), Status> {
    (user_agent_id(id).as_deref() == Some(id))
        .then_some(())
        .ok_or_else(|| Status::invalid_argument("a user-agent id is a lower-case UUID"))
}

/// A proof from an edge, checked as untrusted: a known hash and the sizes a real
/// exchange makes ([`ScramProof::validate`]). The account is checked by the caller.
pub fn proof(r: pb::VerifyScramRequest) -> Result<ScramProof, Status> {
    let alg = match pb::ScramHash::try_from(r.hash) {
        Ok(pb::ScramHash::Sha1) => HashAlg::Sha1,
        Ok(pb::ScramHash::Sha256) => HashAlg::Sha256,
        Ok(pb::ScramHash::Unspecified) | Err(_) => {
            return Err(Status::invalid_argument("unknown SCRAM hash"))
        }
    };
    let proof = ScramProof {
        alg,
        auth_message: r.auth_message,
        client_proof: r.client_proof,
    };
    proof
        .validate()
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    Ok(proof)
}

pub fn stanza_condition(s: &str) -> StanzaCondition {
    StanzaCondition::ALL
        .iter()
        .copied()
        .find(|c| c.as_str() == s)
        .unwrap_or(StanzaCondition::InternalServerError)
}

pub fn stream_condition(s: &str) -> StreamCondition {
    StreamCondition::ALL
        .iter()
        .copied()
        .find(|c| c.as_str() == s)
        .unwrap_or(StreamCondition::InternalServerError)
}

fn failure_count_pb(c: FailureCount) -> pb::FailureCount {
    pb::FailureCount {
        failures: c.failures,
        expires_in_ms: u64::try_from(c.expires_in.as_millis()).unwrap_or(u64::MAX),
    }
}

fn failure_count(c: Option<pb::FailureCount>) -> FailureCount {
    let c = c.unwrap_or_default();
    FailureCount {
        failures: c.failures,
        expires_in: std::time::Duration::from_millis(c.expires_in_ms),
    }
}

pub fn login_failures_pb(c: LoginFailureCounts) -> pb::LoginFailuresReply {
    pb::LoginFailuresReply {
        account: Some(failure_count_pb(c.account)),
        network: Some(failure_count_pb(c.network)),
    }
}

pub fn login_failures(c: pb::LoginFailuresReply) -> LoginFailureCounts {
    LoginFailureCounts {
        account: failure_count(c.account),
        network: failure_count(c.network),
    }
}

/// A resumable session's state for the wire (XEP-0198, moving between edges).
pub fn sm_state_pb(state: &SmState) -> pb::SmState {
    pb::SmState {
        jid: state.jid.to_string(),
        id: state.id.clone(),
        max_secs: state.max_secs,
        handled: state.handled,
        sent: state.sent,
        acked: state.acked,
        unacked: state
            .unacked
            .iter()
            .map(|r| r.to_wire_xml().as_bytes().to_vec())
            .collect(),
    }
}

/// A resumable session's state from the wire: every stanza checked as a delivery is,
/// and the counts checked against the queue.
pub fn sm_state(state: pb::SmState) -> Result<SmState, Status> {
    let unacked: Result<Vec<Routed>, Status> = state.unacked.into_iter().map(routed).collect();
    let state = SmState {
        jid: jid(&state.jid)?,
        id: state.id,
        max_secs: state.max_secs,
        handled: state.handled,
        sent: state.sent,
        acked: state.acked,
        unacked: unacked?,
    };
    if !state.is_consistent() {
        return Err(Status::invalid_argument(
            "a session state whose counts disagree",
        ));
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_stanza_keeps_the_bytes_it_came_in() {
        let xml = "<message xmlns='jabber:client' from='a@b/c' to='d@b'  id='x'><body>hi</body></message>";
        let read = stanza(xml.as_bytes().to_vec()).unwrap();
        assert_eq!(&*read.routed().to_wire_xml(), xml, "forwarded as it came");
        assert_eq!(read.routed().to_element().unwrap(), *read.element());
        assert!(
            stanza(b"<message xmlns='jabber:client'><body>no from</body></message>".to_vec())
                .is_none()
        );
        assert!(stanza(b"<message xmlns='jabber:client' from='a@b/c'>".to_vec()).is_none());
        assert!(stanza(vec![0xff, 0xfe]).is_none());
    }

    #[test]
    fn an_edge_takes_only_stanzas_from_a_router() {
        let ok = routed(b"<presence xmlns='jabber:client' from='a@b/c'/>".to_vec());
        assert_eq!(ok.unwrap().presence_from(), Some("a@b/c"));
        let message = routed(b"<message xmlns='jabber:client' from='a@b/c'/>".to_vec());
        assert_eq!(message.unwrap().presence_from(), None);
        for bad in [
            &b"<stream:stream>"[..],
            b"</stream:stream><message/>",
            b"<message/></stream:stream>",
            b"<message/><success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
            b"<message xmlns='jabber:client'",
            b"<message>",
            b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
            b"hello",
            b"",
            &[0x3c, 0xff, 0x3e],
        ] {
            assert!(routed(bad.to_vec()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_moved_session_state_round_trips_and_is_checked() {
        let message = Element::parse(
            "<message xmlns='jabber:client' to='a@localhost/r' id='1'><body>x</body></message>",
        )
        .expect("xml");
        let state = SmState {
            jid: Jid::parse("a@localhost/r").expect("jid"),
            id: "sm-id".into(),
            max_secs: 300,
            handled: 7,
            sent: 1,
            acked: u32::MAX,
            unacked: vec![
                Routed::Tree(message.into()),
                Routed::Wire("<presence xmlns='jabber:client'/>".into()),
            ],
        };
        let back = sm_state(sm_state_pb(&state)).expect("round trip");
        assert_eq!(back.unacked.len(), 2);
        assert_eq!((back.handled, back.sent, back.acked), (7, 1, u32::MAX));

        let mut short = sm_state_pb(&state);
        short.unacked.pop();
        assert!(
            sm_state(short).is_err(),
            "counts that disagree with the queue"
        );
        let mut bad = sm_state_pb(&state);
        bad.unacked[0] = b"<message/></stream:stream>".to_vec();
        assert!(sm_state(bad).is_err(), "a stanza that is not one element");
        let mut bare = sm_state_pb(&state);
        bare.jid = "a@localhost".into();
        assert!(sm_state(bare).is_err(), "a session is a full JID");
    }
}
