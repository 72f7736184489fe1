//! The Switchyard binary's library: configuration, role wiring and the CLI commands, kept
//! in a library so integration tests can start a server in-process.

pub mod admin;
pub mod admin_client;
pub mod check_dns;
pub mod config;
mod inproc;
mod link_tls;
pub mod pie;
pub mod serve;
pub mod user;
pub mod wiring;
