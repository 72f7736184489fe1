//! The edge-router gRPC link's contract and transport (`proto/switchyard/v1`): the
//! generated code, the one conversion boundary to domain types, and the link's TLS. What
//! the cluster does over the link (affinity, resend, liveness …) is `switchyard-cluster`.
//!
//! # The boundary
//!
//! - [`pb`] is the generated code, and the only place its types are exported. It is public
//!   for one user, `switchyard-cluster`, whose link code sends and receives these messages
//!   and implements the generated service; nothing else names a `pb` type.
//! - [`convert`] is the one place where generated types meet the domain's (stanzas, JIDs,
//!   SCRAM salts and proofs, error conditions, login-failure counts), checking what an
//!   untrusted peer sent.
//! - [`tls`] secures the link (mutual TLS, the caller's identity, certificate reload).
//!
//! Crates other than the cluster see only domain types and [`tls`].

pub mod convert;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod tls;

/// The code generated from `proto/switchyard/v1/switchyard.proto` (build.rs): messages,
/// the `Router` client and the server trait. Public only for `switchyard-cluster`'s link
/// code; convert what it carries with [`convert`].
pub mod pb {
    #![allow(clippy::all, missing_debug_implementations, unreachable_pub)]
    tonic::include_proto!("switchyard.v1");
}
