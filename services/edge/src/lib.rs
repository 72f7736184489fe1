//! The edge: accepts client connections (STARTTLS on 5222, direct TLS on 5223 per
//! XEP-0368, WebSocket on 5443 per RFC 7395), runs one [`switchyard_core::session::Session`] per connection and talks to
//! routers through the [`RouterLink`] trait.

mod admission;
mod bosh;
mod component;
mod connections;
mod driver;
mod link;
mod listener;
mod mailbox;
mod progress;
mod proxy;
mod resume;
mod throttle;
mod tls;
mod websocket;

pub use connections::{BoundSession, Connections, Written};
pub use link::{RouterLink, SmCount};
pub use listener::{serve, Drain, EdgeConfig, Listener, ListenerKind};
pub use mailbox::MailboxLimits;
pub use progress::{Progress, Report, Reported};
pub use throttle::ThrottlePolicy;
pub use tls::{check as check_tls, not_after, publish_expiry, TlsError, TlsStore};
pub use websocket::WebSocketPolicy;
