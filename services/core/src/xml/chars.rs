//! The XML 1.0 `Char` production (XML 1.0 §2.2), enforced on both sides of the wire.
//!
//! `Char ::= #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]`.
//! Input containing anything else, raw or as a character reference (§4.1, WFC: Legal
//! Character), is not well-formed (RFC 6120 §11: stream error `not-well-formed`). Output
//! never contains anything else: the serializer writes U+FFFD REPLACEMENT CHARACTER in
//! place of each disallowed character, so a string built in code (or stored before this
//! rule existed) can never make a recipient's parser fail. Surrogates cannot occur in a
//! Rust `str`, so the only excluded code points left are the C0 controls other than tab,
//! line feed and carriage return, and U+FFFE and U+FFFF.
//!
//! Names follow XML 1.0 §2.3 (`Name`) without colons (Namespaces in XML 1.0 §3, `NCName`):
//! quick-xml takes whatever stands between `<` and whitespace as a name, even nothing.

use super::framer::FramerError;
use std::borrow::Cow;

/// Whether `c` matches the XML 1.0 `Char` production.
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// XML 1.0 §2.3 `NameStartChar`, less `:`.
fn is_name_start(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}'
        | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}'
        | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}'
        | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

/// XML 1.0 §2.3 `NameChar`, less `:`.
fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// Whether `s` is an `NCName`: a name without a colon (a prefix or a local name).
pub(crate) fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(is_name_start) && chars.all(is_name_char)
}

/// What the serializer writes instead of a character XML 1.0 does not allow.
pub(crate) const REPLACEMENT: char = '\u{FFFD}';

fn not_a_char() -> FramerError {
    FramerError::NotWellFormed("character not allowed in XML".into())
}

/// Checks raw (unescaped) markup: a byte scan for the C0 controls and the UTF-8 forms of
/// U+FFFE (`EF BF BE`) and U+FFFF (`EF BF BF`), cheaper than decoding every character.
pub(crate) fn check_raw(text: &str) -> Result<(), FramerError> {
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let bad = match b {
            b'\t' | b'\n' | b'\r' => false,
            0..0x20 => true,
            0xEF => {
                bytes.get(i + 1) == Some(&0xBF) && matches!(bytes.get(i + 2), Some(0xBE | 0xBF))
            }
            _ => false,
        };
        if bad {
            return Err(not_a_char());
        }
    }
    Ok(())
}

/// Checks a value after entity and character references were replaced, and returns it
/// owned. A borrowed value had no reference, so it is part of markup that [`check_raw`]
/// already passed.
pub(crate) fn owned_checked(value: Cow<'_, str>) -> Result<String, FramerError> {
    match value {
        Cow::Borrowed(s) => Ok(s.to_owned()),
        Cow::Owned(s) if s.chars().all(is_xml_char) => Ok(s),
        Cow::Owned(_) => Err(not_a_char()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_1_0_char_production() {
        for ok in [
            '\t',
            '\n',
            '\r',
            ' ',
            '\u{D7FF}',
            '\u{E000}',
            '\u{FFFD}',
            '\u{10000}',
            '\u{10FFFF}',
        ] {
            assert!(is_xml_char(ok), "{ok:?}");
            assert!(check_raw(&ok.to_string()).is_ok(), "{ok:?}");
        }
        for bad in [
            '\0', '\u{1}', '\u{8}', '\u{B}', '\u{C}', '\u{1F}', '\u{FFFE}', '\u{FFFF}',
        ] {
            assert!(!is_xml_char(bad), "{bad:?}");
            assert!(check_raw(&format!("a{bad}b")).is_err(), "{bad:?}");
        }
        // U+EFBF.. and friends share lead bytes with the excluded ones but are allowed.
        assert!(check_raw("\u{FFBE}\u{EFBF}\u{FFFC}").is_ok());
    }

    #[test]
    fn xml_1_0_2_3_names_without_colons() {
        for ok in ["a", "_x", "message", "a-b.c9", "é", "\u{10000}x", "a\u{B7}"] {
            assert!(is_ncname(ok), "{ok:?}");
        }
        for bad in [
            "", "9a", "-a", ".a", "a:b", "a b", "a\n", "a/", "\u{B7}a", "a>",
        ] {
            assert!(!is_ncname(bad), "{bad:?}");
        }
    }
}
