//! The cluster's behaviour over the edge-router link (`switchyard-rpc` carries it).
//!
//! [`RemoteRouters`] is the edge's `RouterLink`: affinity ([`preferred_router`]), resend of
//! what a lost router never acknowledged, the in-flight window ([`MAX_IN_FLIGHT`]) and the
//! reconcile of the sessions an edge holds. [`EdgeLinks`] is the router's `EdgeDelivery`
//! and [`RouterService`] the router's server (link workers, resync); duplicate deliveries
//! are recognised by `dedup`, batches form in `coalesce`, and [`keep_edges_alive`] keeps edge liveness and reaps dead
//! edges.
//!
//! The link code builds and reads the generated messages (`switchyard_rpc::pb`) and turns
//! their contents into domain types through `switchyard_rpc::convert`; what this crate
//! exports is domain-typed, but for [`RouterService::into_server`], the generated tonic
//! server to mount.

mod coalesce;
mod dedup;
mod edge_side;
mod liveness;
mod router_side;

#[cfg(test)]
mod resend_tests;

pub use edge_side::{preferred_router, RemoteRouters, MAX_IN_FLIGHT};
pub use liveness::keep_edges_alive;
pub use router_side::{EdgeLinks, RouterService, MAX_MESSAGE_BYTES};
