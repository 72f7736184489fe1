//! What goes into a session ([`Input`]) and what it asks of its driver ([`Output`]),
//! with the answers to its credential lookups and proof checks.

use super::{ResumeRefused, StanzaCondition, StreamCondition};
use crate::jid::Jid;
use crate::routed::Routed;
use crate::sasl::fast::{IssuedToken, TokenCheck, TokenRequest};
use crate::sasl::{AccountSalts, ChannelBindings, Failure, Mechanism, ScramProof};
use crate::stanza::Stanza;

/// The result of a credential lookup requested with [`Output::FetchCredentials`]: the
/// account's salts, never its keys.
#[derive(Debug, Clone)]
pub enum Lookup {
    Found(AccountSalts),
    NotFound,
    /// Too many recent failures for this address or account.
    Throttled,
    /// Storage could not answer (RFC 6120 §6.5.12 temporary-auth-failure).
    Unavailable,
}

/// The answer to [`Output::VerifyProof`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The proof is right; the ServerSignature for SCRAM's server-final message.
    Accepted(Vec<u8>),
    /// A wrong proof, or no such account.
    Rejected,
    /// The keys' holder could not answer (RFC 6120 §6.5.12 temporary-auth-failure).
    Unavailable,
}

#[derive(Debug)]
pub enum Input<'a> {
    Bytes(&'a [u8]),
    TlsEstablished(ChannelBindings),
    Credentials(Lookup),
    Verified(Verification),
    /// Outcome of [`Output::VerifyToken`]; `rotate`: the token is due for rotation
    /// (XEP-0484 §3.5).
    TokenVerified {
        verification: Verification,
        rotate: bool,
    },
    /// Outcome of [`Output::IssueToken`] (`None`: no token could be issued).
    TokenIssued(Option<IssuedToken>),
    /// Outcome of [`Output::Bind`]; an error is returned to the client as this condition.
    Bound(Result<(), StanzaCondition>),
    /// A stanza routed to this session.
    Deliver(Routed),
    /// The session named by [`Output::Resume`] cannot be resumed (XEP-0198 §5).
    ResumeFailed(ResumeRefused),
    /// The server ends the session (conflict, shutdown, timeout, slow consumer …).
    Terminate(StreamCondition),
    /// The transport reached end of file or failed.
    PeerClosed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Send(String),
    /// Flush what was sent, then run the TLS handshake and report `TlsEstablished`.
    StartTls,
    /// Look up the stored credentials of this bare JID and report `Credentials`.
    FetchCredentials {
        account: Jid,
    },
    /// Have this proof checked against the account's stored keys and report `Verified`.
    VerifyProof {
        account: Jid,
        proof: ScramProof,
    },
    /// XEP-0484: check this token against the tokens issued to the client and report
    /// `TokenVerified` (the HT responder message if it is right).
    VerifyToken(TokenCheck),
    /// XEP-0484 §3.3: issue this token, and report `TokenIssued`.
    IssueToken(TokenRequest),
    Authenticated {
        username: String,
        mechanism: Mechanism,
    },
    AuthFailed {
        mechanism: Mechanism,
        failure: Failure,
    },
    /// Register this full JID (a conflicting older session is replaced, RFC 6120 §7.7.2.2).
    /// `carbons`: XEP-0280 carbons enabled from the start (XEP-0386 inline).
    Bind {
        jid: Jid,
        carbons: bool,
    },
    /// A stanza from the client for the router; for a resumable session (XEP-0198), with
    /// the number of the client's stanzas handled, this one included.
    Route(Stanza, Option<u32>),
    /// Find the session with this SM-ID, if it is `account`'s, and have it take over this
    /// connection ([`Session::resume`]); else report `ResumeFailed` (XEP-0198 §5).
    Resume {
        previd: String,
        h: Option<u32>,
        account: Jid,
    },
    /// The stream is being ended with this error (for metrics; the error itself is
    /// already in a `Send`).
    StreamError(StreamCondition),
    /// Flush and close the transport; no more input will be accepted.
    Close,
}
