//! What an account that does not exist looks like during SASL, so that probing cannot tell
//! it from a real one.
//!
//! - SCRAM: the server-first message for an unknown account carries a salt and an
//!   iteration count like a real account's, and the exchange fails only at the end, as
//!   for a wrong password. The salt is `HMAC(secret, "salt", hash, domain, username)`:
//!   the same for one account on every edge and across restarts as long as the secret is
//!   (`auth.decoy_secret`), different between accounts, domains and hashes (as real
//!   accounts' random salts are), and unpredictable without the secret. A salt that
//!   changed between two questions would tell an unknown account from a real one.
//! - PLAIN: the offered password is hashed with the decoy salt and the same iteration
//!   count as real ones (the PBKDF2 step is what costs time), so the answer takes as long
//!   as for a real account with a wrong password.
//!
//! Both then ask the router to check the proof, as for a real account (see `proof.rs`),
//! and the router answers no: there are no decoy keys, so no password matches.

use super::credentials::{HashAlg, ScramSalt};
use std::sync::Arc;

/// Bytes of a generated secret.
pub const DECOY_SECRET_BYTES: usize = 32;

/// The server's decoy policy: a secret shared by every edge and the iteration count of
/// real credentials; [`Decoy::in_domain`] binds it to a stream's domain.
#[derive(Clone)]
pub struct Decoy {
    secret: Arc<[u8]>,
    iterations: u32,
    /// The stream's domain, hashed with the username: the same local part on two domains
    /// gets two salts, as two real accounts would.
    domain: Arc<str>,
}

impl std::fmt::Debug for Decoy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoy")
            .field("iterations", &self.iterations)
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

impl Decoy {
    /// A decoy from a persistent secret (any length; at least 16 bytes of entropy).
    pub fn new(secret: &[u8], iterations: u32) -> Self {
        Self {
            secret: secret.into(),
            iterations,
            domain: "".into(),
        }
    }

    /// A decoy with a random secret, for tests: its salts change with every process,
    /// which a server must not allow (see the module doc).
    pub fn random(iterations: u32) -> Self {
        Self::new(&rand::random::<[u8; DECOY_SECRET_BYTES]>(), iterations)
    }

    /// The same decoy for accounts of `domain`.
    pub fn in_domain(&self, domain: &str) -> Self {
        Self {
            domain: domain.into(),
            ..self.clone()
        }
    }

    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// A salt and iteration count that look real for `username`, who has no account,
    /// under hash `alg`.
    pub fn salt(&self, alg: HashAlg, username: &str) -> ScramSalt {
        let hash: &[u8] = match alg {
            HashAlg::Sha1 => b"SHA-1",
            HashAlg::Sha256 => b"SHA-256",
        };
        // NUL-separated and the username last: no two inputs run together the same way.
        let mac = |label: &[u8]| {
            alg.hmac(
                &self.secret,
                &[
                    label,
                    b"\0",
                    hash,
                    b"\0",
                    self.domain.as_bytes(),
                    b"\0",
                    username.as_bytes(),
                ],
            )
        };
        ScramSalt {
            salt: mac(b"salt")[..16].to_vec(),
            iterations: self.iterations,
        }
    }
}
