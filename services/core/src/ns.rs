//! XML namespace names used by the protocol core (RFC 6120 §4.8, §5–§8, and the XEPs cited).

pub const CLIENT: &str = "jabber:client";
pub const STREAMS: &str = "http://etherx.jabber.org/streams";
/// RFC 7395 §3.3: the `<open/>` and `<close/>` that frame a stream over WebSocket.
pub const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";
pub const STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
pub const STANZA_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// RFC 3921 §3 session establishment, kept as an optional no-op (RFC 6121 Appendix E).
pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
/// XEP-0440: SASL channel-binding type capability.
pub const SASL_CB: &str = "urn:xmpp:sasl-cb:0";
pub const XML: &str = "http://www.w3.org/XML/1998/namespace";
pub const XMLNS: &str = "http://www.w3.org/2000/xmlns/";
/// XEP-0199.
pub const PING: &str = "urn:xmpp:ping";
/// XEP-0030.
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// XEP-0092.
pub const VERSION: &str = "jabber:iq:version";
/// RFC 6121 §2.
pub const ROSTER: &str = "jabber:iq:roster";
/// RFC 6121 §2.6.1 stream feature.
pub const ROSTER_VER: &str = "urn:xmpp:features:rosterver";
/// RFC 6121 §3.4 stream feature.
pub const PRE_APPROVAL: &str = "urn:xmpp:features:pre-approval";
/// XEP-0191.
pub const BLOCKING: &str = "urn:xmpp:blocking";
pub const BLOCKING_ERRORS: &str = "urn:xmpp:blocking:errors";
/// XEP-0280.
pub const CARBONS: &str = "urn:xmpp:carbons:2";
/// XEP-0297.
pub const FORWARD: &str = "urn:xmpp:forward:0";
/// XEP-0334.
pub const HINTS: &str = "urn:xmpp:hints";
/// XEP-0203.
pub const DELAY: &str = "urn:xmpp:delay";
/// XEP-0054.
pub const VCARD: &str = "vcard-temp";
/// XEP-0049.
pub const PRIVATE: &str = "jabber:iq:private";
/// XEP-0357 push notifications.
pub const PUSH: &str = "urn:xmpp:push:0";
/// XEP-0060 publish-subscribe.
pub const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
/// XEP-0004 data forms.
pub const DATA_FORMS: &str = "jabber:x:data";
/// XEP-0012.
pub const LAST: &str = "jabber:iq:last";
/// XEP-0198.
pub const SM: &str = "urn:xmpp:sm:3";
/// XEP-0352.
pub const CSI: &str = "urn:xmpp:csi:0";
/// XEP-0160 disco feature.
pub const OFFLINE: &str = "msgoffline";
/// XEP-0388 Extensible SASL Profile.
pub const SASL2: &str = "urn:xmpp:sasl:2";
/// XEP-0386 Bind 2.
pub const BIND2: &str = "urn:xmpp:bind:0";
/// XEP-0484 Fast Authentication Streamlining Tokens.
pub const FAST: &str = "urn:xmpp:fast:0";
