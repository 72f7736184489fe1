//! The gRPC link between edges and routers (`proto/switchyard/v1`).
//!
//! Generated code stays in `pb`, private to this crate; `convert` is the one place where
//! its types meet the domain's. [`RemoteRouters`] is the edge's `RouterLink`,
//! [`EdgeLinks`] the router's `EdgeDelivery`, [`RouterService`] the router's server;
//! [`tls`] secures the link (mutual TLS, the caller's identity, certificate reload).

mod convert;
mod dedup;
mod edge_side;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod liveness;
mod router_side;
pub mod tls;

mod pb {
    #![allow(clippy::all, missing_debug_implementations, unreachable_pub)]
    tonic::include_proto!("switchyard.v1");
}

#[cfg(test)]
mod resend_tests;

pub use edge_side::{preferred_router, RemoteRouters, MAX_IN_FLIGHT};
pub use liveness::keep_edges_alive;
pub use router_side::{EdgeLinks, RouterService, MAX_MESSAGE_BYTES};
