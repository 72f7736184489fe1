//! SCRAM server side (RFC 5802 §5–§7) with channel binding (RFC 5802 §6, RFC 9266).
//!
//! GS2 flag rules (RFC 5802 §6): a `-PLUS` mechanism requires `p=<type>` with a type this
//! connection offers; a plain mechanism accepts `n`, and accepts `y` only when the server
//! did not offer a `-PLUS` mechanism (otherwise `y` reveals a downgrade and fails).
//!
//! The server side here holds no keys: it checks the channel binding and the nonce of the
//! client-final message and hands the proof on to be checked where the keys are
//! (`proof.rs`).

use super::credentials::{HashAlg, ScramSalt};
use super::proof::{ScramProof, MAX_AUTH_MESSAGE_BYTES};
use super::{ct_eq, ChannelBindings, Failure};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

/// The parsed client-first-message.
#[derive(Debug, Clone)]
pub(crate) struct ClientFirst {
    /// The GS2 header exactly as sent, needed to verify `c=` in the final message.
    pub gs2_header: String,
    /// Channel-binding type the client chose (`p=`), if any.
    pub cb_type: Option<String>,
    pub authzid: Option<String>,
    pub username: String,
    pub nonce: String,
    pub bare: String,
}

/// Decodes a `saslname` (RFC 5802 §5.1: `=2C` is `,`, `=3D` is `=`).
fn saslname(s: &str) -> Result<String, Failure> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3).ok_or(Failure::MalformedRequest)?;
        out.push(match code {
            "2C" => ',',
            "3D" => '=',
            _ => return Err(Failure::MalformedRequest),
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

pub(crate) fn parse_client_first(
    msg: &[u8],
    plus: bool,
    offered_plus: bool,
    cb: &ChannelBindings,
) -> Result<ClientFirst, Failure> {
    let msg = std::str::from_utf8(msg).map_err(|_| Failure::MalformedRequest)?;
    let mut parts = msg.splitn(3, ',');
    let flag = parts.next().ok_or(Failure::MalformedRequest)?;
    let authz = parts.next().ok_or(Failure::MalformedRequest)?;
    let bare = parts.next().ok_or(Failure::MalformedRequest)?;
    let cb_type = match (flag, plus) {
        ("n", false) => None,
        ("y", false) if !offered_plus => None,
        (flag, true) if flag.starts_with("p=") => {
            let name = &flag[2..];
            cb.get(name).ok_or(Failure::NotAuthorized)?;
            Some(name.to_owned())
        }
        _ => return Err(Failure::NotAuthorized),
    };
    let authzid = match authz {
        "" => None,
        a => Some(saslname(
            a.strip_prefix("a=").ok_or(Failure::MalformedRequest)?,
        )?),
    };
    let mut fields = bare.split(',');
    let username = fields
        .next()
        .and_then(|f| f.strip_prefix("n="))
        .ok_or(Failure::MalformedRequest)?;
    let nonce = fields
        .next()
        .and_then(|f| f.strip_prefix("r="))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b','))
        .ok_or(Failure::MalformedRequest)?;
    Ok(ClientFirst {
        gs2_header: format!("{flag},{authz},"),
        cb_type,
        authzid,
        username: saslname(username)?,
        nonce: nonce.to_owned(),
        bare: bare.to_owned(),
    })
}

/// Server state between the server-first and client-final messages.
#[derive(Debug, Clone)]
pub(crate) struct ServerFirst {
    pub message: String,
    pub nonce: String,
}

pub(crate) fn server_first(
    client: &ClientFirst,
    salt: &ScramSalt,
    server_nonce: &str,
) -> ServerFirst {
    let nonce = format!("{}{}", client.nonce, server_nonce);
    let message = format!(
        "r={nonce},s={},i={}",
        B64.encode(&salt.salt),
        salt.iterations
    );
    ServerFirst { message, nonce }
}

/// Checks the client-final-message's channel binding and nonce; returns the proof for the
/// holder of the keys to check.
pub(crate) fn client_final(
    msg: &[u8],
    alg: HashAlg,
    client: &ClientFirst,
    server: &ServerFirst,
    cb: &ChannelBindings,
) -> Result<ScramProof, Failure> {
    let msg = std::str::from_utf8(msg).map_err(|_| Failure::MalformedRequest)?;
    let (without_proof, proof) = msg.rsplit_once(",p=").ok_or(Failure::MalformedRequest)?;
    let mut fields = without_proof.split(',');
    let c = fields
        .next()
        .and_then(|f| f.strip_prefix("c="))
        .ok_or(Failure::MalformedRequest)?;
    let r = fields
        .next()
        .and_then(|f| f.strip_prefix("r="))
        .ok_or(Failure::MalformedRequest)?;
    let mut expected_c = client.gs2_header.as_bytes().to_vec();
    if let Some(name) = &client.cb_type {
        expected_c.extend_from_slice(cb.get(name).ok_or(Failure::NotAuthorized)?);
    }
    let c = B64.decode(c).map_err(|_| Failure::IncorrectEncoding)?;
    if !ct_eq(&c, &expected_c) || r != server.nonce {
        return Err(Failure::NotAuthorized);
    }
    let client_proof = B64.decode(proof).map_err(|_| Failure::IncorrectEncoding)?;
    if client_proof.len() != alg.output_len() {
        return Err(Failure::NotAuthorized);
    }
    let auth_message = format!("{},{},{}", client.bare, server.message, without_proof);
    if auth_message.len() > MAX_AUTH_MESSAGE_BYTES {
        return Err(Failure::MalformedRequest);
    }
    Ok(ScramProof {
        alg,
        auth_message: auth_message.into_bytes(),
        client_proof,
    })
}
