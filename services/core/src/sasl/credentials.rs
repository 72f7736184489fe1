//! Salted SCRAM keys (RFC 5802 §3): what an account stores instead of a password.

use super::Failure;
use hmac::{Hmac, Mac};
use precis_profiles::precis_core::profile::PrecisFastInvocation;
use precis_profiles::OpaqueString;
use rand::RngCore;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Lowest iteration count accepted for new credentials (RFC 7677 §4 recommends ≥ 4096).
pub const MIN_ITERATIONS: u32 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    Sha1,
    Sha256,
}

impl HashAlg {
    pub fn hmac(self, key: &[u8], data: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[&[u8]]) -> Vec<u8> {
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .expect("HMAC takes any key length");
            for d in data {
                mac.update(d);
            }
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Self::Sha1 => run::<Hmac<Sha1>>(key, data),
            Self::Sha256 => run::<Hmac<Sha256>>(key, data),
        }
    }

    /// Bytes of the hash's output: the length of StoredKey, ServerKey and a ClientProof.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => Sha1::digest(data).to_vec(),
            Self::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Self::Sha1 => {
                pbkdf2::pbkdf2_hmac_array::<Sha1, 20>(password, salt, iterations).to_vec()
            }
            Self::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec()
            }
        }
    }
}

/// What a SCRAM server-first message shows of one hash's keys (RFC 5802 §5.1 `s=` and
/// `i=`), and all the credential lookup gives an edge: whoever asks for an account learns
/// it anyway. It proves nothing; the keys stay with the accounts (see `proof.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramSalt {
    pub salt: Vec<u8>,
    pub iterations: u32,
}

impl ScramSalt {
    /// Whether the account has keys for this hash: an account imported with SHA-1 keys
    /// only has none for SHA-256 ([`ScramKeys::absent`], iteration count 0).
    pub fn is_usable(&self) -> bool {
        self.iterations > 0
    }
}

/// An account's salts, one per hash: the answer of the credential lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSalts {
    pub sha1: ScramSalt,
    pub sha256: ScramSalt,
}

impl AccountSalts {
    pub fn get(&self, alg: HashAlg) -> &ScramSalt {
        match alg {
            HashAlg::Sha1 => &self.sha1,
            HashAlg::Sha256 => &self.sha256,
        }
    }
}

/// One hash's salted keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramKeys {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

/// Normalizes a password with the RFC 8265 OpaqueString profile (SASLprep's successor).
fn prepare(password: &str) -> Result<String, Failure> {
    OpaqueString::enforce(password)
        .map(|p| p.into_owned())
        .map_err(|_| Failure::NotAuthorized)
}

impl ScramKeys {
    pub fn derive(
        alg: HashAlg,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, Failure> {
        SaltedPassword::derive(alg, password, salt, iterations)
            .map(|s| Self::from_salted(alg, &s).0)
    }

    /// RFC 5802 §3: StoredKey and ServerKey from SaltedPassword, plus the ClientKey a SCRAM
    /// client signs with (never stored).
    pub(crate) fn from_salted(alg: HashAlg, salted: &SaltedPassword) -> (Self, Vec<u8>) {
        let client_key = alg.hmac(&salted.salted, &[b"Client Key"]);
        let keys = Self {
            salt: salted.salt.clone(),
            iterations: salted.iterations,
            stored_key: alg.digest(&client_key),
            server_key: alg.hmac(&salted.salted, &[b"Server Key"]),
        };
        (keys, client_key)
    }

    /// No keys for this hash (an account imported from a server that kept only the
    /// other one): iteration count 0, nothing else; no proof ever matches.
    pub fn absent() -> Self {
        Self {
            salt: Vec::new(),
            iterations: 0,
            stored_key: Vec::new(),
            server_key: Vec::new(),
        }
    }

    /// Whether these are real keys (not [`ScramKeys::absent`]).
    pub fn is_usable(&self) -> bool {
        self.iterations > 0
    }

    /// The part of these keys a server-first message shows.
    pub fn salt(&self) -> ScramSalt {
        ScramSalt {
            salt: self.salt.clone(),
            iterations: self.iterations,
        }
    }
}

/// RFC 5802 §3 SaltedPassword with the salt and iteration count it was made with. A
/// client may keep it between logins (RFC 5802 §5.1 allows caching it) and skip the
/// iterated hash while the server presents the same salt and count. It is as good as the
/// password to whoever holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct SaltedPassword {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub salted: Vec<u8>,
}

impl std::fmt::Debug for SaltedPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaltedPassword")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl SaltedPassword {
    /// Hi(Normalize(password), salt, i) (RFC 5802 §3), the expensive step.
    pub fn derive(
        alg: HashAlg,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, Failure> {
        Ok(Self {
            salted: alg.salted_password(prepare(password)?.as_bytes(), salt, iterations),
            salt: salt.to_vec(),
            iterations,
        })
    }
}

/// Everything stored for an account's authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredentials {
    pub sha1: ScramKeys,
    pub sha256: ScramKeys,
}

impl StoredCredentials {
    /// Derives fresh keys with random salts. Fails for a password the OpaqueString profile
    /// rejects (e.g. empty) or an iteration count below [`MIN_ITERATIONS`].
    pub fn from_password(password: &str, iterations: u32) -> Result<Self, &'static str> {
        if iterations < MIN_ITERATIONS {
            return Err("iteration count below 4096");
        }
        let salt = || {
            let mut s = vec![0u8; 16];
            rand::thread_rng().fill_bytes(&mut s);
            s
        };
        let derive = |alg| {
            ScramKeys::derive(alg, password, &salt(), iterations)
                .map_err(|_| "password is empty or not valid text")
        };
        Ok(Self {
            sha1: derive(HashAlg::Sha1)?,
            sha256: derive(HashAlg::Sha256)?,
        })
    }

    pub fn keys(&self, alg: HashAlg) -> &ScramKeys {
        match alg {
            HashAlg::Sha1 => &self.sha1,
            HashAlg::Sha256 => &self.sha256,
        }
    }

    /// What the credential lookup may hand out: the salts, never the keys.
    pub fn salts(&self) -> AccountSalts {
        AccountSalts {
            sha1: self.sha1.salt(),
            sha256: self.sha256.salt(),
        }
    }
}
