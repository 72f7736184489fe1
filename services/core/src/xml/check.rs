//! Checks serialized bytes that are written to a stream without being parsed (a stanza a
//! router forwards): one element and nothing else, by a byte scan, with no tree built.
//!
//! What it proves, so that no bytes a peer sends can end or corrupt the stream they are
//! written into: exactly one root element, every tag named by a QName and every start
//! tag closed by an end tag of the same name, nesting within [`Limits::max_depth`], no
//! text outside the root, no comment, processing instruction, DTD or CDATA section
//! (RFC 6120 §11.1; our serializer writes none), no `]]>` (XML 1.0 §2.4; our serializer
//! escapes every `>`), only characters XML 1.0 allows, and every `&` one of the five
//! predefined entities or a character reference to an allowed character. Attribute
//! syntax and namespace bindings inside tags are not checked.

use super::chars::{check_raw, is_ncname, is_xml_char};
use super::scan::{Scan, Scanner, TokenKind};
use super::{FramerError, Limits};

fn bad(what: &str) -> FramerError {
    FramerError::NotWellFormed(what.into())
}

/// The name a start or end tag begins with, if it is a QName (`name` or `prefix:name`).
fn tag_name(tag: &str, skip: usize) -> Result<&str, FramerError> {
    let rest = &tag[skip..];
    let end = rest
        .find(|c: char| c.is_ascii_whitespace() || matches!(c, '/' | '>'))
        .unwrap_or(rest.len());
    let name = &rest[..end];
    let qname = match name.split_once(':') {
        Some((prefix, local)) => is_ncname(prefix) && is_ncname(local),
        None => is_ncname(name),
    };
    qname
        .then_some(name)
        .ok_or_else(|| bad("a tag without a name"))
}

/// Whether every `&` in `text` starts a predefined entity or a character reference to a
/// character XML allows.
fn references_ok(text: &str) -> bool {
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        rest = &rest[at + 1..];
        let Some(end) = rest.find(';') else {
            return false;
        };
        let name = &rest[..end];
        let ok = match name.strip_prefix('#') {
            None => matches!(name, "amp" | "lt" | "gt" | "apos" | "quot"),
            Some(num) => {
                let code = match num.strip_prefix('x') {
                    Some(hex) => u32::from_str_radix(hex, 16),
                    None => num.parse(),
                };
                code.ok().and_then(char::from_u32).is_some_and(is_xml_char)
            }
        };
        if !ok {
            return false;
        }
        rest = &rest[end + 1..];
    }
    true
}

/// Checks that `text` is one element and nothing else (see the module doc).
pub fn one_element(text: &str, limits: &Limits) -> Result<(), FramerError> {
    check_raw(text)?;
    if text.contains("]]>") {
        return Err(bad("]]> outside a CDATA section"));
    }
    if !references_ok(text) {
        return Err(bad("an undefined entity or a bad character reference"));
    }
    let buf = text.as_bytes();
    let mut scanner = Scanner::default();
    let mut open: Vec<&str> = Vec::new();
    let mut closed = false;
    loop {
        let (kind, start, end) = match scanner.next(buf) {
            Scan::Token(kind, start, end) => (kind, start, end),
            Scan::Incomplete { start, .. } if closed && start == buf.len() => return Ok(()),
            Scan::Incomplete { .. } => return Err(bad("not one whole element")),
        };
        if closed {
            return Err(bad("something after the element"));
        }
        // Token bounds fall on ASCII markup (`<`, `>`), so on character boundaries.
        let tag = &text[start..end];
        match kind {
            TokenKind::Start { empty } => {
                if open.is_empty() && start != 0 {
                    return Err(bad("something before the element"));
                }
                let name = tag_name(tag, 1)?;
                if empty {
                    closed = open.is_empty();
                } else {
                    open.push(name);
                    if open.len() > limits.max_depth {
                        return Err(FramerError::PolicyViolation("element depth"));
                    }
                }
            }
            TokenKind::End => {
                if open.pop() != Some(tag_name(tag, 2)?) {
                    return Err(bad("an end tag that does not match"));
                }
                closed = open.is_empty();
            }
            TokenKind::Text if !open.is_empty() => {}
            TokenKind::Text => return Err(bad("text outside the element")),
            TokenKind::CData | TokenKind::ProcessingInstruction | TokenKind::Declaration => {
                return Err(FramerError::RestrictedXml)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ns;
    use crate::xml::Element;

    fn check(text: &str) -> Result<(), FramerError> {
        one_element(text, &Limits::INTERNAL)
    }

    #[test]
    fn what_the_serializer_writes_passes() {
        let el = Element::new("message", ns::CLIENT)
            .with_attr("from", "a'b\"c&d<e>@x/r\t\n")
            .with_child(Element::new("body", ns::CLIENT).with_text("1 < 2 & 3 > 2 \r ]]>"))
            .with_child(Element::new("x", "urn:x").with_attr("xml:lang", "en"))
            .with_child(Element::new("empty", "urn:e"));
        let xml = el.to_xml("");
        assert_eq!(check(&xml), Ok(()), "{xml}");
        assert_eq!(
            check("<iq xmlns='jabber:client' type='get' id='1'/>"),
            Ok(())
        );
        assert_eq!(
            check("<presence><x><x/></x>&#x1F600;&#65;</presence>"),
            Ok(())
        );
    }

    #[test]
    fn anything_that_could_break_the_stream_is_refused() {
        for text in [
            "<message/></stream:stream>",
            "</stream:stream><message/>",
            "<message/><success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
            "<message>",
            "<message><body></message>",
            "<message><body>hi</message></body>",
            "<message></presence>",
            "<message/>trailing",
            "<message/> ",
            " <message/>",
            "text<message/>",
            "<message><!-- comment --></message>",
            "<message><?pi x?></message>",
            "<!DOCTYPE x><message/>",
            "<message><![CDATA[x]]></message>",
            "<message>&bogus;</message>",
            "<message>&amp</message>",
            "<message a='&#0;'/>",
            "<message>&#xD800;</message>",
            "<message>\u{1}</message>",
            "<message a='>'",
            "<message><></></message>",
            "<message><1x/></message>",
            "<message><a:b:c/></message>",
            "<message>]]></message>",
            "",
            "message",
        ] {
            assert!(check(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let depth = Limits::INTERNAL.max_depth;
        let at = |n: usize| format!("{}{}", "<a>".repeat(n), "</a>".repeat(n));
        assert_eq!(check(&at(depth)), Ok(()));
        assert!(check(&at(depth + 1)).is_err());
    }
}
