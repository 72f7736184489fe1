//! XEP-0388 SASL2 with Bind 2 and XEP-0484 FAST from the client's side, for the tests: a
//! password login that asks for a token, and a token login (HT, written from the draft's
//! §3.1 and §3.3 with the core's HMAC, checked against the server's answer).

use super::Client;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::net::SocketAddr;
use switchyard_core::sasl::fast::TokenKey;
use switchyard_core::sasl::HashAlg;
use switchyard_core::xml::Element;

pub const SASL2: &str = "urn:xmpp:sasl:2";
pub const FAST: &str = "urn:xmpp:fast:0";
pub const UA: &str = "9f3c2a10-5b6d-4e7f-8a9b-0c1d2e3f4a5b";

/// STARTTLS done at `addr`: the client and the stream features it was offered.
pub async fn secured(addr: SocketAddr, cert: Vec<u8>) -> (Client, Element) {
    let mut c = Client::connect(addr).await;
    c.open().await;
    c.starttls(cert).await;
    let features = c.open().await;
    (c, features)
}

/// RFC 5929 tls-server-end-point of a certificate signed with SHA-256: its hash.
pub fn end_point(cert_der: &[u8]) -> Vec<u8> {
    HashAlg::Sha256.digest(cert_der)
}

/// PLAIN over SASL2 for `user` (password "secret") with `inline` requests; the server's
/// answer (`<success/>` or `<failure/>`).
pub async fn password_login(c: &mut Client, user: &str, ua: &str, inline: &str) -> Element {
    let initial = B64.encode(format!("\0{user}\0secret"));
    c.send(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='PLAIN'><initial-response>{initial}</initial-response><user-agent id='{ua}'><software>Switchyard tests</software><device>loopback</device></user-agent>{inline}</authenticate>"
    ))
    .await;
    c.element().await
}

/// An HT token login for `user`: the answer, checked when it is a success (the
/// responder message must be HMAC(token, "Responder" || cb-data), HT §3.3).
pub async fn token_login(
    c: &mut Client,
    user: &str,
    ua: &str,
    (mechanism, token, cb): (&str, &str, &[u8]),
    inline: &str,
) -> Element {
    let mut msg = format!("{user}\0").into_bytes();
    msg.extend(TokenKey::of(token).initiator(cb));
    c.send(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='{mechanism}'><initial-response>{}</initial-response><user-agent id='{ua}'/><fast xmlns='{FAST}'/>{inline}</authenticate>",
        B64.encode(msg)
    ))
    .await;
    let answer = c.element().await;
    if answer.name() == "success" {
        let data = answer
            .child("additional-data", SASL2)
            .map(|d| d.text())
            .expect("HT §3.3: the responder message");
        let want = TokenKey::of(token).responder(cb);
        assert_eq!(
            B64.decode(data).unwrap(),
            want,
            "the server knows the token"
        );
    }
    answer
}

/// The token in a `<success/>`.
pub fn token_of(success: &Element) -> Option<String> {
    success
        .child("token", FAST)
        .and_then(|t| t.attr("token"))
        .map(str::to_owned)
}

/// The authorization identifier of a `<success/>`.
pub fn authorized(success: &Element) -> String {
    success
        .child("authorization-identifier", SASL2)
        .map(|a| a.text())
        .unwrap_or_default()
}
