//! The conversion boundary: generated protobuf types in, domain types out (and back).
//! Stanzas cross the wire serialized, with `jabber:client` declared on the top element.

use crate::pb;
use switchyard_core::sasl::{ScramKeys, StoredCredentials};
use switchyard_core::{Element, Jid, StanzaCondition, StreamCondition};
use switchyard_storage::{FailureCount, LoginFailureCounts};
use tonic::Status;

pub(crate) fn stanza_bytes(el: &Element) -> Vec<u8> {
    el.to_xml("").into_bytes()
}

pub(crate) fn element(bytes: &[u8]) -> Result<Element, Status> {
    let text = std::str::from_utf8(bytes).map_err(|_| Status::invalid_argument("not UTF-8"))?;
    Element::parse(text).map_err(|e| Status::invalid_argument(format!("bad stanza: {e}")))
}

pub(crate) fn jid(s: &str) -> Result<Jid, Status> {
    Jid::parse(s).map_err(|e| Status::invalid_argument(format!("bad JID {s:?}: {e}")))
}

fn keys_pb(k: &ScramKeys) -> pb::ScramKeys {
    pb::ScramKeys {
        salt: k.salt.clone(),
        iterations: k.iterations,
        stored_key: k.stored_key.clone(),
        server_key: k.server_key.clone(),
    }
}

fn keys(k: Option<pb::ScramKeys>) -> Result<ScramKeys, Status> {
    let k = k.ok_or_else(|| Status::data_loss("credentials without keys"))?;
    Ok(ScramKeys {
        salt: k.salt,
        iterations: k.iterations,
        stored_key: k.stored_key,
        server_key: k.server_key,
    })
}

pub(crate) fn credentials_pb(c: &StoredCredentials) -> pb::ScramCredentials {
    pb::ScramCredentials {
        sha1: Some(keys_pb(&c.sha1)),
        sha256: Some(keys_pb(&c.sha256)),
    }
}

pub(crate) fn credentials(c: pb::ScramCredentials) -> Result<StoredCredentials, Status> {
    Ok(StoredCredentials {
        sha1: keys(c.sha1)?,
        sha256: keys(c.sha256)?,
    })
}

pub(crate) fn stanza_condition(s: &str) -> StanzaCondition {
    StanzaCondition::ALL
        .iter()
        .copied()
        .find(|c| c.as_str() == s)
        .unwrap_or(StanzaCondition::InternalServerError)
}

pub(crate) fn stream_condition(s: &str) -> StreamCondition {
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

pub(crate) fn login_failures_pb(c: LoginFailureCounts) -> pb::LoginFailuresReply {
    pb::LoginFailuresReply {
        account: Some(failure_count_pb(c.account)),
        network: Some(failure_count_pb(c.network)),
    }
}

pub(crate) fn login_failures(c: pb::LoginFailuresReply) -> LoginFailureCounts {
    LoginFailureCounts {
        account: failure_count(c.account),
        network: failure_count(c.network),
    }
}
