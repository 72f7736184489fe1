//! An XEP-0114 component's side of the handshake, for tests.

use super::Client;
use sha1::{Digest, Sha1};
use std::net::SocketAddr;
use switchyard_core::xml::Frame;

pub const ACCEPT: &str = "jabber:component:accept";

/// Opens a component stream for `domain` and proves `secret`; the server's answer to the
/// handshake (its element, or the stream error's condition).
pub async fn component(
    addr: SocketAddr,
    domain: &str,
    secret: &str,
) -> (Client, Result<(), String>) {
    let mut c = Client::connect(addr).await;
    c.send(&format!("<stream:stream xmlns='{ACCEPT}' xmlns:stream='http://etherx.jabber.org/streams' to='{domain}'>")).await;
    let Some(Frame::Open(header)) = c.frame().await else {
        panic!("a stream header");
    };
    let id = header.element.attr("id").expect("a stream id").to_owned();
    let digest: String = Sha1::digest(format!("{id}{secret}"))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    c.send(&format!("<handshake>{digest}</handshake>")).await;
    let answer = c.element().await;
    if answer.is("handshake", ACCEPT) {
        (c, Ok(()))
    } else {
        let condition = answer.children().next().map(|e| e.name().to_owned());
        (c, Err(condition.unwrap_or_default()))
    }
}
