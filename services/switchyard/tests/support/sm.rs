//! XEP-0198 from the client's side, for the tests: a client that counts the stanzas it
//! is sent (its `h`), answers ack requests, and resumes.

use super::Client;
use std::net::SocketAddr;
use switchyard_core::xml::Element;

pub const SM: &str = "urn:xmpp:sm:3";

pub fn is_stanza(e: &Element) -> bool {
    matches!(e.name(), "message" | "presence" | "iq") && e.ns() == "jabber:client"
}

/// A client's side of stream management: counts the stanzas it was sent (its `h`) and
/// answers the server's ack requests when told to.
pub struct Counted {
    pub client: Client,
    pub h: u32,
    pub answer_requests: bool,
}

impl Counted {
    /// Enables stream management (with resumption when `resume`); the SM-ID.
    pub async fn enable(client: Client, resume: bool) -> (Self, Option<String>) {
        let mut c = Self {
            client,
            h: 0,
            answer_requests: true,
        };
        let attr = if resume { " resume='true'" } else { "" };
        c.client
            .send(&format!("<enable xmlns='{SM}'{attr}/>"))
            .await;
        let enabled = c.client.element().await;
        assert!(enabled.is("enabled", SM), "{enabled:?}");
        (c, enabled.attr("id").map(str::to_owned))
    }

    /// The next stanza, counting it; ack requests on the way are answered (or not).
    pub async fn stanza(&mut self) -> Element {
        loop {
            let e = self.client.element().await;
            if is_stanza(&e) {
                self.h = self.h.wrapping_add(1);
                return e;
            }
            if e.is("r", SM) && self.answer_requests {
                let h = self.h;
                self.client
                    .send(&format!("<a xmlns='{SM}' h='{h}'/>"))
                    .await;
            }
        }
    }

    pub async fn until(&mut self, wanted: impl Fn(&Element) -> bool) -> (Element, Vec<Element>) {
        let mut before = Vec::new();
        for _ in 0..50 {
            let e = self.stanza().await;
            if wanted(&e) {
                return (e, before);
            }
            before.push(e);
        }
        panic!("nothing wanted among {before:#?}");
    }

    /// Connects to `addr` as `user` and asks to resume `id` with `h`; the client, its
    /// next element being `<resumed/>` or `<failed/>`.
    pub async fn resume(addr: SocketAddr, cert: Vec<u8>, user: &str, id: &str, h: u32) -> Client {
        let mut c = Client::authenticated_at(addr, cert, user, "SCRAM-SHA-256").await;
        let features = c.open().await;
        assert!(features.child("sm", SM).is_some(), "{features:?}");
        c.send(&format!("<resume xmlns='{SM}' previd='{id}' h='{h}'/>"))
            .await;
        c
    }

    /// [`Counted::resume`], checking that `<resumed/>` comes within `within`; the
    /// counted client (from `h` on, answering ack requests) and the `<resumed/>`.
    pub async fn resumed_within(
        (addr, cert): (SocketAddr, Vec<u8>),
        user: &str,
        id: &str,
        h: u32,
        within: std::time::Duration,
    ) -> (Self, Element) {
        let mut client = Self::resume(addr, cert, user, id, h).await;
        let resumed = client.element_within(within).await;
        assert!(resumed.is("resumed", SM), "{resumed:?}");
        let counted = Self {
            client,
            h,
            answer_requests: true,
        };
        (counted, resumed)
    }
}
