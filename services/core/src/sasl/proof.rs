//! Checking a SCRAM client proof where the stored keys are (RFC 5802 §3), so that whoever
//! runs the exchange never holds them.
//!
//! The edge runs SASL but learns of an account only its salts ([`AccountSalts`]); StoredKey
//! and ServerKey would let their holder guess the password offline and pose as the server
//! in SCRAM, so they stay with the router. At the end of an exchange the edge sends the
//! AuthMessage and the ClientProof ([`ScramProof`]) and the router answers with the
//! ServerSignature, or no ([`ScramProof::check`]):
//!
//! ```text
//! ClientSignature := HMAC(StoredKey, AuthMessage)
//! ClientKey       := ClientProof XOR ClientSignature      right iff H(ClientKey) = StoredKey
//! ServerSignature := HMAC(ServerKey, AuthMessage)
//! ```
//!
//! PLAIN asks the same question: the edge derives ClientKey from the password with the
//! account's salt (the PBKDF2 work stays on the edges), signs a fresh random AuthMessage
//! with it ([`ScramProof::sign`]) and sends that proof. One check serves every mechanism.
//!
//! An account that does not exist is asked about too (the edge cannot tell, and must not
//! answer faster); the check then runs against fixed keys and answers no.
//!
//! [`AccountSalts`]: super::AccountSalts

use super::credentials::{HashAlg, StoredCredentials};
use super::ct_eq;

/// Longest AuthMessage checked. A client's two messages come in stanzas of at most
/// `limits.max_stanza_bytes_before_auth` (16 KiB by default) of base64, so a real
/// AuthMessage stays well under this; an exchange whose AuthMessage would be longer fails
/// on the edge with `malformed-request`, and the router refuses one past it as invalid.
pub const MAX_AUTH_MESSAGE_BYTES: usize = 64 * 1024;

/// A client proof for the holder of the account's keys to check.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramProof {
    pub alg: HashAlg,
    /// RFC 5802 §3 AuthMessage (for PLAIN a random one the edge made).
    pub auth_message: Vec<u8>,
    pub client_proof: Vec<u8>,
}

impl std::fmt::Debug for ScramProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramProof")
            .field("alg", &self.alg)
            .field("auth_message_bytes", &self.auth_message.len())
            .finish_non_exhaustive()
    }
}

/// Why a [`ScramProof`] from outside is refused before it is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the AuthMessage is empty or longer than {MAX_AUTH_MESSAGE_BYTES} bytes")]
    AuthMessageSize,
    #[error("the ClientProof is not as long as the hash's output")]
    ProofSize,
}

impl ScramProof {
    /// The proof a client holding `client_key` makes for `auth_message` (RFC 5802 §3).
    pub fn sign(alg: HashAlg, client_key: &[u8], auth_message: Vec<u8>) -> Self {
        let stored_key = alg.digest(client_key);
        let signature = alg.hmac(&stored_key, &[&auth_message]);
        let client_proof = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        Self {
            alg,
            auth_message,
            client_proof,
        }
    }

    /// Sizes a real exchange produces: what the router checks on input from an edge.
    pub fn validate(&self) -> Result<(), ProofError> {
        if self.auth_message.is_empty() || self.auth_message.len() > MAX_AUTH_MESSAGE_BYTES {
            return Err(ProofError::AuthMessageSize);
        }
        if self.client_proof.len() != self.alg.output_len() {
            return Err(ProofError::ProofSize);
        }
        Ok(())
    }

    /// RFC 5802 §3 against the account's keys (`None`: no such account, checked against
    /// fixed keys for the same work): the ServerSignature if the proof is right, else
    /// `None`. A proof [`ScramProof::validate`] refuses is never right.
    pub fn check(&self, stored: Option<&StoredCredentials>) -> Option<Vec<u8>> {
        let alg = self.alg;
        let none = vec![0; alg.output_len()];
        // Absent keys (an imported account's missing hash) count as no account.
        let stored = stored.filter(|c| c.keys(alg).is_usable());
        let (stored_key, server_key) = match stored.map(|c| c.keys(alg)) {
            Some(keys) => (&keys.stored_key, &keys.server_key),
            None => (&none, &none),
        };
        let signature = alg.hmac(stored_key, &[&self.auth_message]);
        let client_key: Vec<u8> = self
            .client_proof
            .iter()
            .zip(&signature)
            .map(|(p, s)| p ^ s)
            .collect();
        let right = ct_eq(&alg.digest(&client_key), stored_key);
        let valid = self.validate().is_ok();
        (right && valid && stored.is_some()).then(|| alg.hmac(server_key, &[&self.auth_message]))
    }
}
