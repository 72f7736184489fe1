//! XMPP addresses (RFC 7622).
//!
//! Parsing splits at the first `@` before the first `/` and at the first `/` (§3.1) and
//! enforces each part: the localpart with the PRECIS UsernameCaseMapped profile (§3.3), the
//! resourcepart with OpaqueString (§3.4), and the domainpart lower-cased with a trailing dot
//! removed (§3.2; IDNA2008 for non-ASCII labels is applied as Unicode lower-casing, which is
//! what matching against our own configured domains needs). Every part is 1..=1023 bytes.

use precis_profiles::precis_core::profile::PrecisFastInvocation;
use precis_profiles::{OpaqueString, UsernameCaseMapped};
use std::fmt;

const MAX_PART_BYTES: usize = 1023;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JidError {
    #[error("empty domainpart")]
    EmptyDomain,
    #[error("invalid domainpart")]
    InvalidDomain,
    #[error("invalid localpart")]
    InvalidLocal,
    #[error("invalid resourcepart")]
    InvalidResource,
}

/// A normalized JID: `[localpart@]domainpart[/resourcepart]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Jid {
    local: Option<String>,
    domain: String,
    resource: Option<String>,
}

impl Jid {
    pub fn parse(s: &str) -> Result<Self, JidError> {
        let (bare, resource) = match s.split_once('/') {
            Some((bare, res)) => (bare, Some(res)),
            None => (s, None),
        };
        let (local, domain) = match bare.split_once('@') {
            Some((local, domain)) => (Some(local), domain),
            None => (None, bare),
        };
        let domain = normalize_domain(domain)?;
        let local = local.map(normalize_local).transpose()?;
        let resource = resource.map(normalize_resource).transpose()?;
        Ok(Self {
            local,
            domain,
            resource,
        })
    }

    /// `local@domain` from already-trusted parts (an authenticated account).
    pub fn bare_from(local: &str, domain: &str) -> Result<Self, JidError> {
        Ok(Self {
            local: Some(normalize_local(local)?),
            domain: normalize_domain(domain)?,
            resource: None,
        })
    }

    pub fn with_resource(&self, resource: &str) -> Result<Self, JidError> {
        Ok(Self {
            resource: Some(normalize_resource(resource)?),
            ..self.clone()
        })
    }

    pub fn local(&self) -> Option<&str> {
        self.local.as_deref()
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }

    pub fn is_bare(&self) -> bool {
        self.resource.is_none()
    }

    pub fn bare(&self) -> Self {
        Self {
            resource: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(local) = &self.local {
            write!(f, "{local}@")?;
        }
        f.write_str(&self.domain)?;
        if let Some(res) = &self.resource {
            write!(f, "/{res}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Jid {
    type Err = JidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn check_len(s: &str, err: JidError) -> Result<(), JidError> {
    if s.is_empty() || s.len() > MAX_PART_BYTES {
        return Err(err);
    }
    Ok(())
}

/// RFC 7622 §3.3: UsernameCaseMapped, plus the characters §3.3.1 excludes.
///
/// Printable ASCII without space (U+0021..U+007E) is all PVALID in the IdentifierClass
/// (RFC 8264 §9.11, ASCII7), is unchanged by width mapping and NFC, and has no
/// right-to-left characters, so for it the profile reduces to lower-casing. That covers
/// nearly every address on the hot path; anything else takes the full profile.
pub fn normalize_local(s: &str) -> Result<String, JidError> {
    check_len(s, JidError::InvalidLocal)?;
    let out = if s.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        std::borrow::Cow::Owned(s.to_ascii_lowercase())
    } else {
        stable(s, |s| UsernameCaseMapped::enforce(s).ok()).ok_or(JidError::InvalidLocal)?
    };
    if out.contains(['"', '&', '\'', '/', ':', '<', '>', '@']) {
        return Err(JidError::InvalidLocal);
    }
    check_len(&out, JidError::InvalidLocal)?;
    Ok(out.into_owned())
}

fn normalize_domain(s: &str) -> Result<String, JidError> {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() {
        return Err(JidError::EmptyDomain);
    }
    check_len(s, JidError::InvalidDomain)?;
    let bad = |c: char| {
        c.is_whitespace() || c.is_control() || matches!(c, '@' | '/' | '<' | '>' | '"' | '\'' | '&')
    };
    if s.chars().any(bad) || s.split('.').any(str::is_empty) {
        return Err(JidError::InvalidDomain);
    }
    Ok(s.to_lowercase())
}

/// RFC 7622 §3.4: OpaqueString. Printable ASCII with space (U+0020..U+007E) is PVALID in
/// the FreeformClass and unchanged by every OpaqueString rule, so it is returned as is.
fn normalize_resource(s: &str) -> Result<String, JidError> {
    check_len(s, JidError::InvalidResource)?;
    if s.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Ok(s.to_owned());
    }
    let out = stable(s, |s| OpaqueString::enforce(s).ok()).ok_or(JidError::InvalidResource)?;
    check_len(&out, JidError::InvalidResource)?;
    Ok(out.into_owned())
}

/// Enforces a PRECIS profile and accepts the result only if enforcing it again changes
/// nothing (RFC 8264 §7: a string that does not stabilize is rejected). Otherwise an
/// address could be accepted once and refused when read back from its printed form
/// (`x\u{387}` becomes `x\u{B7}`, which the profile then refuses).
fn stable<'a>(
    s: &'a str,
    enforce: impl Fn(&str) -> Option<std::borrow::Cow<'_, str>>,
) -> Option<std::borrow::Cow<'a, str>> {
    let once = enforce(s)?.into_owned();
    let twice = enforce(&once)?;
    (twice == once.as_str()).then_some(std::borrow::Cow::Owned(once))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalizes_rfc7622_parts() {
        let jid = Jid::parse("Juliet@Example.COM./Balcony Room").unwrap();
        assert_eq!(jid.local(), Some("juliet"));
        assert_eq!(jid.domain(), "example.com");
        assert_eq!(jid.resource(), Some("Balcony Room"));
        assert_eq!(jid.to_string(), "juliet@example.com/Balcony Room");
        assert_eq!(jid.bare().to_string(), "juliet@example.com");
    }

    /// The ASCII fast paths must agree with the full PRECIS profiles, character by
    /// character and on mixed strings.
    #[test]
    fn ascii_fast_paths_match_the_precis_profiles() {
        let full_local = |s: &str| {
            UsernameCaseMapped::enforce(s)
                .ok()
                .map(|o| o.into_owned())
                .filter(|o| !o.contains(['"', '&', '\'', '/', ':', '<', '>', '@']))
        };
        let full_resource = |s: &str| OpaqueString::enforce(s).ok().map(|o| o.into_owned());
        let mut samples: Vec<String> = (0u8..0x80).map(|b| format!("a{}Z", b as char)).collect();
        samples.extend(
            [
                "Juliet",
                "user.42-x_y",
                "Balcony Room",
                " lead",
                "trail ",
                "A~!",
            ]
            .map(String::from),
        );
        for s in &samples {
            assert_eq!(normalize_local(s).ok(), full_local(s), "localpart {s:?}");
            assert_eq!(
                normalize_resource(s).ok(),
                full_resource(s),
                "resourcepart {s:?}"
            );
        }
    }

    #[test]
    fn rfc8264_7_a_part_that_does_not_stabilize_is_refused() {
        // Found by the `jid` fuzz target: U+0387 maps to U+00B7, which the profile refuses.
        assert_eq!(Jid::parse("a@b/x\u{387}"), Err(JidError::InvalidResource));
        for s in ["a@b/caf\u{e9}", "\u{e9}l\u{e8}ve@b/r", "a@b/\u{1F600}"] {
            let jid = Jid::parse(s).unwrap();
            assert_eq!(Jid::parse(&jid.to_string()), Ok(jid.clone()), "{s}");
        }
    }

    #[test]
    fn resource_may_contain_at_and_slash() {
        let jid = Jid::parse("a@b/c@d/e").unwrap();
        assert_eq!(jid.resource(), Some("c@d/e"));
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "@example.com",
            "a@",
            "a@example.com/",
            "a b@example.com",
            "a@exa mple.com",
            "a@.com",
            "a@b..c",
        ] {
            assert!(Jid::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let long = "a".repeat(1024);
        assert_eq!(
            Jid::parse(&format!("{long}@x")),
            Err(JidError::InvalidLocal)
        );
    }
}
