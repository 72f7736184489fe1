//! Sans-IO XMPP protocol core for Switchyard.
//!
//! Everything in this crate is a plain function of its inputs: no sockets, no timers, no
//! storage. Drivers in `switchyard-edge` feed bytes and events in and carry out the returned
//! outputs, which is what keeps this code table-testable and fuzzable.

pub mod component;
pub mod error;
pub mod jid;
pub mod ns;
pub mod routed;
pub mod sasl;
pub mod session;
pub mod stanza;
pub mod time;
pub mod token;
pub mod xml;

pub use error::{StanzaCondition, StanzaError, StreamCondition};
pub use jid::{Jid, JidError};
pub use routed::Routed;
pub use stanza::{Stanza, StanzaKind};
pub use xml::{Element, Frame, Framer, FramerError, Limits, Node};
