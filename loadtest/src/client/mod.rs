//! The simulated XMPP client: the sans-IO login machine, its socket driver and TLS set-up.

mod conn;
mod ledger;
mod login;
mod scram_cache;
pub mod sm;
mod tls;

pub use conn::{next_frame, stream_end, write, Connector, Session, Stream};
pub use ledger::{Ledger, Tally};
pub use login::stream_header;
pub use sm::SmClient;
