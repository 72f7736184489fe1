//! SASL authentication (RFC 6120 §6) with the mechanisms SCRAM-SHA-256(-PLUS),
//! SCRAM-SHA-1(-PLUS) (RFC 5802, RFC 7677) and PLAIN (RFC 4616).
//!
//! The server only ever stores salted SCRAM keys ([`StoredCredentials`]), and the exchange
//! never sees them: it gets an account's salts ([`AccountSalts`]) and has its proof checked
//! where the keys are ([`ScramProof`], `proof.rs`). PLAIN is checked by deriving a proof
//! from the offered password. Channel binding supports
//! `tls-exporter` (RFC 9266, TLS 1.3 only) and `tls-server-end-point` (RFC 5929).

mod client;
mod credentials;
mod decoy;
mod exchange;
pub mod fast;
mod proof;
mod scram;

pub use client::ScramClient;
pub use credentials::{
    AccountSalts, HashAlg, SaltedPassword, ScramKeys, ScramSalt, StoredCredentials, MIN_ITERATIONS,
};
pub use decoy::{Decoy, DECOY_SECRET_BYTES};
pub use exchange::{Exchange, Step};
pub use proof::{ProofError, ScramProof, MAX_AUTH_MESSAGE_BYTES};

/// Channel-binding data of the TLS connection the exchange runs over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelBindings {
    /// RFC 9266 keying material; only present for TLS 1.3.
    pub tls_exporter: Option<Vec<u8>>,
    /// RFC 5929 §4: hash of the server certificate.
    pub tls_server_end_point: Option<Vec<u8>>,
}

impl ChannelBindings {
    pub fn any(&self) -> bool {
        self.tls_exporter.is_some() || self.tls_server_end_point.is_some()
    }

    /// Data for a binding type by its IANA name.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        match name {
            "tls-exporter" => self.tls_exporter.as_deref(),
            "tls-server-end-point" => self.tls_server_end_point.as_deref(),
            _ => None,
        }
    }

    /// Type names available, for XEP-0440 advertisement.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        [
            ("tls-exporter", self.tls_exporter.is_some()),
            ("tls-server-end-point", self.tls_server_end_point.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
    }
}

/// The mechanisms the server implements, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    ScramSha256Plus,
    ScramSha256,
    ScramSha1Plus,
    ScramSha1,
    Plain,
    /// XEP-0484 FAST token mechanisms (HT, see `fast.rs`), offered only inside SASL2.
    HtSha256None,
    HtSha256Endp,
    HtSha256Expr,
}

impl Mechanism {
    pub const ALL: [Mechanism; 5] = [
        Self::ScramSha256Plus,
        Self::ScramSha256,
        Self::ScramSha1Plus,
        Self::ScramSha1,
        Self::Plain,
    ];

    /// The token mechanisms, channel-bound first.
    pub const FAST: [Mechanism; 3] = [Self::HtSha256Expr, Self::HtSha256Endp, Self::HtSha256None];

    pub fn name(self) -> &'static str {
        match self {
            Self::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha1Plus => "SCRAM-SHA-1-PLUS",
            Self::ScramSha1 => "SCRAM-SHA-1",
            Self::Plain => "PLAIN",
            Self::HtSha256None => "HT-SHA-256-NONE",
            Self::HtSha256Endp => "HT-SHA-256-ENDP",
            Self::HtSha256Expr => "HT-SHA-256-EXPR",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .chain(Self::FAST)
            .find(|m| m.name() == name)
    }

    /// Whether the mechanism needs channel-binding data.
    pub fn is_plus(self) -> bool {
        matches!(
            self,
            Self::ScramSha256Plus | Self::ScramSha1Plus | Self::HtSha256Endp | Self::HtSha256Expr
        )
    }

    /// Whether this is a FAST token mechanism.
    pub fn is_token(self) -> bool {
        Self::FAST.contains(&self)
    }

    /// The SCRAM hash, `None` for PLAIN.
    pub fn hash(self) -> Option<HashAlg> {
        match self {
            Self::ScramSha256Plus | Self::ScramSha256 => Some(HashAlg::Sha256),
            Self::ScramSha1Plus | Self::ScramSha1 => Some(HashAlg::Sha1),
            Self::Plain | Self::HtSha256None | Self::HtSha256Endp | Self::HtSha256Expr => None,
        }
    }
}

/// RFC 6120 §6.5 SASL failure conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    Aborted,
    /// §6.5.1: the account is disabled (an administrator's ban).
    AccountDisabled,
    EncryptionRequired,
    IncorrectEncoding,
    InvalidAuthzid,
    InvalidMechanism,
    MalformedRequest,
    MechanismTooWeak,
    NotAuthorized,
    /// XEP-0484 §4.2: a token the server no longer trusts.
    CredentialsExpired,
    TemporaryAuthFailure,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aborted => "aborted",
            Self::AccountDisabled => "account-disabled",
            Self::EncryptionRequired => "encryption-required",
            Self::IncorrectEncoding => "incorrect-encoding",
            Self::InvalidAuthzid => "invalid-authzid",
            Self::InvalidMechanism => "invalid-mechanism",
            Self::MalformedRequest => "malformed-request",
            Self::MechanismTooWeak => "mechanism-too-weak",
            Self::NotAuthorized => "not-authorized",
            Self::CredentialsExpired => "credentials-expired",
            Self::TemporaryAuthFailure => "temporary-auth-failure",
        }
    }
}

/// Constant-time equality for secrets.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
