//! The closed sets of RFC 6120 error conditions and their one wire rendering.
//!
//! Stream errors are §4.9 (every §4.9.3 condition); stanza errors are §8.3 (every §8.3.3
//! condition with the default error type the RFC gives it).

use crate::ns;
use crate::xml::Element;

macro_rules! conditions {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $wire:literal;)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant,)* }

        impl $name {
            /// Every condition, for exhaustive tests and metrics.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The element name on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire,)* }
            }
        }
    };
}

conditions! {
    /// RFC 6120 §4.9.3 stream error conditions.
    StreamCondition {
        BadFormat => "bad-format";
        BadNamespacePrefix => "bad-namespace-prefix";
        Conflict => "conflict";
        ConnectionTimeout => "connection-timeout";
        HostGone => "host-gone";
        HostUnknown => "host-unknown";
        ImproperAddressing => "improper-addressing";
        InternalServerError => "internal-server-error";
        InvalidFrom => "invalid-from";
        InvalidNamespace => "invalid-namespace";
        InvalidXml => "invalid-xml";
        NotAuthorized => "not-authorized";
        NotWellFormed => "not-well-formed";
        PolicyViolation => "policy-violation";
        RemoteConnectionFailed => "remote-connection-failed";
        Reset => "reset";
        ResourceConstraint => "resource-constraint";
        RestrictedXml => "restricted-xml";
        SeeOtherHost => "see-other-host";
        SystemShutdown => "system-shutdown";
        UndefinedCondition => "undefined-condition";
        UnsupportedEncoding => "unsupported-encoding";
        UnsupportedFeature => "unsupported-feature";
        UnsupportedStanzaType => "unsupported-stanza-type";
        UnsupportedVersion => "unsupported-version";
    }
}

impl StreamCondition {
    /// `<stream:error>` with an optional human-readable text (never internal detail).
    pub fn to_xml(self, text: Option<&str>) -> String {
        let mut err = Element::new("error", ns::STREAMS)
            .with_child(Element::new(self.as_str(), ns::STREAM_ERRORS));
        if let Some(text) = text {
            err.push_child(
                Element::new("text", ns::STREAM_ERRORS)
                    .with_attr("xml:lang", "en")
                    .with_text(text),
            );
        }
        // Written with the stream prefix the server declared in its header.
        err.to_xml(ns::STREAMS)
            .replacen("<error", "<stream:error", 1)
            .replacen("</error>", "</stream:error>", 1)
    }
}

conditions! {
    /// RFC 6120 §8.3.3 stanza error conditions.
    StanzaCondition {
        BadRequest => "bad-request";
        Conflict => "conflict";
        FeatureNotImplemented => "feature-not-implemented";
        Forbidden => "forbidden";
        Gone => "gone";
        InternalServerError => "internal-server-error";
        ItemNotFound => "item-not-found";
        JidMalformed => "jid-malformed";
        NotAcceptable => "not-acceptable";
        NotAllowed => "not-allowed";
        NotAuthorized => "not-authorized";
        PolicyViolation => "policy-violation";
        RecipientUnavailable => "recipient-unavailable";
        Redirect => "redirect";
        RegistrationRequired => "registration-required";
        RemoteServerNotFound => "remote-server-not-found";
        RemoteServerTimeout => "remote-server-timeout";
        ResourceConstraint => "resource-constraint";
        ServiceUnavailable => "service-unavailable";
        SubscriptionRequired => "subscription-required";
        UndefinedCondition => "undefined-condition";
        UnexpectedRequest => "unexpected-request";
    }
}

/// RFC 6120 §8.3.2 error types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    Auth,
    Cancel,
    Continue,
    Modify,
    Wait,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Cancel => "cancel",
            Self::Continue => "continue",
            Self::Modify => "modify",
            Self::Wait => "wait",
        }
    }
}

impl StanzaCondition {
    /// The error type RFC 6120 §8.3.3 gives for this condition.
    pub fn default_type(self) -> ErrorType {
        use StanzaCondition::*;
        match self {
            BadRequest | JidMalformed | NotAcceptable | PolicyViolation | Redirect => {
                ErrorType::Modify
            }
            Forbidden | NotAuthorized | RegistrationRequired | SubscriptionRequired => {
                ErrorType::Auth
            }
            RecipientUnavailable | RemoteServerTimeout | ResourceConstraint | UnexpectedRequest => {
                ErrorType::Wait
            }
            _ => ErrorType::Cancel,
        }
    }
}

/// A stanza error ready to be rendered into an error reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaError {
    pub condition: StanzaCondition,
    pub kind: ErrorType,
    pub text: Option<String>,
    /// An application-specific condition (RFC 6120 §8.3.2), e.g. XEP-0191's `<blocked/>`.
    pub app: Option<Box<Element>>,
}

impl StanzaError {
    pub fn new(condition: StanzaCondition) -> Self {
        Self {
            condition,
            kind: condition.default_type(),
            text: None,
            app: None,
        }
    }

    pub fn with_app(mut self, condition: Element) -> Self {
        self.app = Some(Box::new(condition));
        self
    }

    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// The `<error/>` child (RFC 6120 §8.3.2).
    pub fn to_element(&self, by: Option<&str>) -> Element {
        let mut err = Element::new("error", ns::CLIENT).with_attr("type", self.kind.as_str());
        if let Some(by) = by {
            err.set_attr("by", by);
        }
        err.push_child(Element::new(self.condition.as_str(), ns::STANZA_ERRORS));
        if let Some(text) = &self.text {
            err.push_child(
                Element::new("text", ns::STANZA_ERRORS)
                    .with_attr("xml:lang", "en")
                    .with_text(text.as_str()),
            );
        }
        if let Some(app) = &self.app {
            err.push_child(app.as_ref().clone());
        }
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_error_is_prefixed_and_namespaced() {
        let xml = StreamCondition::PolicyViolation.to_xml(Some("too big"));
        assert_eq!(
            xml,
            "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>too big</text></stream:error>"
        );
    }

    #[test]
    fn every_condition_has_a_distinct_name() {
        let mut names: Vec<_> = StreamCondition::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 25);
        assert_eq!(StanzaCondition::ALL.len(), 22);
    }

    #[test]
    fn stanza_error_default_types_follow_rfc6120_8_3_3() {
        assert_eq!(
            StanzaCondition::ServiceUnavailable.default_type(),
            ErrorType::Cancel
        );
        assert_eq!(
            StanzaCondition::BadRequest.default_type(),
            ErrorType::Modify
        );
        assert_eq!(
            StanzaCondition::NotAuthorized.default_type(),
            ErrorType::Auth
        );
        assert_eq!(
            StanzaCondition::RecipientUnavailable.default_type(),
            ErrorType::Wait
        );
    }
}
