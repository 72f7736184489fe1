//! XEP-0484 FAST tokens and the HT SASL mechanisms that present them
//! (draft-schmaus-kitten-sasl-ht-09, the revision XEP-0484 and its implementations use).
//!
//! - HT §3.1: the initiator message is `authcid NUL HMAC(token, "Initiator" || cb-data)`,
//!   §3.3 the responder's `HMAC(token, "Responder" || cb-data)`; the HMAC key is the
//!   token string's UTF-8 octets, cb-data the raw channel-binding data (no GS2 header):
//!   empty for `-NONE`, RFC 5929 `tls-server-end-point` for `-ENDP`, RFC 9266
//!   `tls-exporter` for `-EXPR`. `-UNIQ` (tls-unique) is not offered: TLS 1.3 has none.
//! - Storage: a token is never stored, only the SHA-256 of it ([`TokenKey`]). Tokens are
//!   [`TOKEN_CHARS`] characters, longer than HMAC-SHA-256's 64-byte block, and RFC 2104 §2
//!   keys HMAC with a key that long by its hash: the stored hash is exactly the HMAC key
//!   the mechanism needs, so the server can check a token without keeping it. (Whoever
//!   reads the hash can still compute the HMAC, as with any HT key: the store is guarded
//!   like the SCRAM keys beside it.)
//! - HT §5: tokens come from the operating system's CSPRNG, 512 bits.

use super::credentials::HashAlg;
use super::{ct_eq, ChannelBindings, Failure, Mechanism};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Random bytes in a token.
const TOKEN_BYTES: usize = 64;
/// Characters of a token as the client sees it (base64url of [`TOKEN_BYTES`]).
pub const TOKEN_CHARS: usize = TOKEN_BYTES.div_ceil(3) * 4 - 2;
/// HT §3.1: an authcid up to 255 octets must be accepted; no longer one is.
const MAX_AUTHCID: usize = 255;

/// What the server keeps of a token: its SHA-256, which is also its HMAC key.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenKey(pub [u8; 32]);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// A new random token and the key to keep of it.
    pub fn generate() -> (String, Self) {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let token = B64URL.encode(bytes);
        let key = Self::of(&token);
        (token, key)
    }

    /// The key of a token string. Only tokens longer than the HMAC block are ever issued.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// HT §3.1: the hashed token the client must present.
    pub fn initiator(&self, cb_data: &[u8]) -> Vec<u8> {
        HashAlg::Sha256.hmac(&self.0, &[b"Initiator", cb_data])
    }

    /// HT §3.3: the server's final message.
    pub fn responder(&self, cb_data: &[u8]) -> Vec<u8> {
        HashAlg::Sha256.hmac(&self.0, &[b"Responder", cb_data])
    }

    /// Whether `presented` is this token's initiator message (constant time, XEP-0484 §6).
    pub fn matches(&self, presented: &[u8], cb_data: &[u8]) -> bool {
        ct_eq(&self.initiator(cb_data), presented)
    }
}

/// A token issued to a client (XEP-0484 §3.3): the string it presents and when it
/// stops being accepted.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: String,
    pub expiry: std::time::SystemTime,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

/// Characters of a client's label kept (XEP-0388 `<software/>` and `<device/>`).
pub const MAX_LABEL_CHARS: usize = 64;

/// A token to issue (XEP-0484 §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub account: crate::Jid,
    /// The client (XEP-0388 user-agent id) it is for.
    pub user_agent: String,
    /// What the client calls itself (`software on device`), for operators listing and
    /// revoking tokens; at most [`MAX_LABEL_CHARS`], no control characters.
    pub label: String,
    pub mechanism: Mechanism,
}

/// A client's label from its XEP-0388 `<software/>` and `<device/>`: control characters
/// dropped, at most [`MAX_LABEL_CHARS`].
pub fn client_label(software: Option<&str>, device: Option<&str>) -> String {
    let text = match (software.map(str::trim), device.map(str::trim)) {
        (Some(s), Some(d)) if !s.is_empty() && !d.is_empty() => format!("{s} on {d}"),
        (Some(s), _) if !s.is_empty() => s.to_owned(),
        (_, Some(d)) => d.to_owned(),
        _ => String::new(),
    };
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_LABEL_CHARS)
        .collect()
}

/// A token presented, for the holder of the account's tokens to check.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenCheck {
    pub account: crate::Jid,
    /// The client (XEP-0388 user-agent id) the token must have been issued to.
    pub user_agent: String,
    /// The mechanism it must have been issued for (XEP-0484 §3.4).
    pub mechanism: Mechanism,
    /// The HT initiator message's hashed token.
    pub hashed: Vec<u8>,
    pub cb_data: Vec<u8>,
    /// XEP-0484 §3.6: the client signs this token out.
    pub invalidate: bool,
}

impl std::fmt::Debug for TokenCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCheck")
            .field("account", &self.account)
            .field("user_agent", &self.user_agent)
            .field("mechanism", &self.mechanism)
            .field("invalidate", &self.invalidate)
            .finish_non_exhaustive()
    }
}

/// The holder's answer to a [`TokenCheck`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenVerdict {
    /// The HT responder message when the token is right; `None` when it is not.
    pub responder: Option<Vec<u8>>,
    /// The token is right and due for rotation (XEP-0484 §3.5).
    pub rotate: bool,
}

/// An HT initiator message, parsed (HT §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initiator {
    pub username: String,
    pub hashed: Vec<u8>,
}

impl Initiator {
    pub fn parse(msg: &[u8]) -> Result<Self, Failure> {
        let nul = msg
            .iter()
            .position(|&b| b == 0)
            .ok_or(Failure::MalformedRequest)?;
        let (authcid, hashed) = (&msg[..nul], &msg[nul + 1..]);
        if authcid.is_empty() || authcid.len() > MAX_AUTHCID || hashed.len() != 32 {
            return Err(Failure::MalformedRequest);
        }
        let username = std::str::from_utf8(authcid)
            .map_err(|_| Failure::MalformedRequest)?
            .to_owned();
        Ok(Self {
            username,
            hashed: hashed.to_vec(),
        })
    }
}

/// A client's XEP-0388 user-agent id, which must be a UUID: its text form (RFC 9562
/// §4), lower-cased; `None` for anything else.
pub fn user_agent_id(id: &str) -> Option<String> {
    let groups: Vec<&str> = id.split('-').collect();
    let lengths = groups.iter().map(|g| g.len()).collect::<Vec<_>>();
    let hex = groups
        .iter()
        .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
    (lengths == [8, 4, 4, 4, 12] && hex).then(|| id.to_ascii_lowercase())
}

/// The channel-binding data an HT mechanism hashes on this connection; `None` when the
/// connection has no binding of its kind (or the mechanism is no HT one).
pub fn cb_data(mechanism: Mechanism, cb: &ChannelBindings) -> Option<Vec<u8>> {
    match mechanism {
        Mechanism::HtSha256None => Some(Vec::new()),
        Mechanism::HtSha256Endp => cb.tls_server_end_point.clone(),
        Mechanism::HtSha256Expr => cb.tls_exporter.clone(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_hash_is_the_hmac_key_of_the_token() {
        let (token, key) = TokenKey::generate();
        assert_eq!(token.len(), TOKEN_CHARS);
        assert!(
            token.len() > 64,
            "RFC 2104 hashes only keys longer than the block"
        );
        for cb in [&b""[..], b"binding"] {
            let direct = HashAlg::Sha256.hmac(token.as_bytes(), &[b"Initiator", cb]);
            assert_eq!(key.initiator(cb), direct);
            assert!(key.matches(&direct, cb));
            let responder = HashAlg::Sha256.hmac(token.as_bytes(), &[b"Responder", cb]);
            assert_eq!(key.responder(cb), responder);
        }
        assert!(
            !key.matches(&key.initiator(b"x"), b""),
            "bound to the cb data"
        );
        assert!(!TokenKey::generate().1.matches(&key.initiator(b""), b""));
    }

    #[test]
    fn initiator_messages_parse_to_the_letter() {
        let mut msg = b"juliet\0".to_vec();
        msg.extend([7u8; 32]);
        let parsed = Initiator::parse(&msg).unwrap();
        assert_eq!(parsed.username, "juliet");
        assert_eq!(parsed.hashed, vec![7u8; 32]);
        let long = [vec![b'a'; 255], vec![0], vec![1; 32]].concat();
        assert!(Initiator::parse(&long).is_ok(), "255 octets are accepted");
        for bad in [
            [vec![b'a'; 256], vec![0], vec![1; 32]].concat(),
            [b"juliet".to_vec(), vec![1; 32]].concat(),
            [vec![0], vec![1; 32]].concat(),
            [b"juliet\0".to_vec(), vec![1; 31]].concat(),
            [b"juliet\0".to_vec(), vec![1; 33]].concat(),
            [vec![0xff, 0], vec![1; 32]].concat(),
        ] {
            assert_eq!(Initiator::parse(&bad), Err(Failure::MalformedRequest));
        }
    }

    #[test]
    fn client_labels_are_bounded_and_printable() {
        assert_eq!(client_label(Some("Dino"), Some("laptop")), "Dino on laptop");
        assert_eq!(client_label(None, Some(" phone ")), "phone");
        assert_eq!(client_label(Some("a\tb\nc"), None), "abc");
        let exact = "x".repeat(MAX_LABEL_CHARS);
        assert_eq!(client_label(Some(&exact), None), exact);
        let over = "y".repeat(MAX_LABEL_CHARS + 1);
        assert_eq!(
            client_label(Some(&over), None).chars().count(),
            MAX_LABEL_CHARS
        );
        assert_eq!(client_label(None, None), "");
    }

    #[test]
    fn each_mechanism_hashes_its_own_binding() {
        let cb = ChannelBindings {
            tls_exporter: Some(b"exp".to_vec()),
            tls_server_end_point: Some(b"endp".to_vec()),
        };
        assert_eq!(cb_data(Mechanism::HtSha256None, &cb), Some(Vec::new()));
        assert_eq!(
            cb_data(Mechanism::HtSha256Endp, &cb),
            Some(b"endp".to_vec())
        );
        assert_eq!(cb_data(Mechanism::HtSha256Expr, &cb), Some(b"exp".to_vec()));
        let none = ChannelBindings::default();
        assert_eq!(cb_data(Mechanism::HtSha256Expr, &none), None);
        assert_eq!(cb_data(Mechanism::ScramSha256, &cb), None);
    }
}
