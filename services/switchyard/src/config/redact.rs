//! Hides secrets in text that is about to be printed: `check-config` output, configuration
//! errors and any error or log line that may quote a connection string. One function,
//! [`redact`], so every place hides the same things:
//!
//! - the password of a URL's user info (`postgres://user:PASS@host/db`,
//!   `redis://:PASS@host`, `http://user:PASS@collector:4317`), also when several URLs share
//!   one token (a TOML array quoted in an error);
//! - the value of any `key=value` pair whose key names a secret (`password`, `passwd`,
//!   `pwd`, `sslpassword`, `secret`, `token`, `api_key` …): libpq's
//!   `host=db password='a b'` strings (quoted values with `\'` escapes included) and URL
//!   query parameters (`?sslmode=require&password=PASS`).
//!
//! It errs towards hiding too much: everything between `://` and the *last* `@` of a
//! whitespace-delimited token counts as user info, so a password holding a raw `@` or `/`
//! is still hidden (at worst a path or a host is hidden with it). A raw space cannot occur
//! in a URL (RFC 3986 requires `%20`), which is why tokens end at whitespace.

/// What a hidden secret is replaced with.
pub const MASK: &str = "***";

/// `text` with every password, token and secret parameter replaced by [`MASK`].
pub fn redact(text: &str) -> String {
    let userinfo_hidden: String = text
        .split_inclusive(char::is_whitespace)
        .map(redact_userinfo)
        .collect();
    redact_pairs(&userinfo_hidden)
}

/// Hides the password of every `scheme://user:password@` in one token.
fn redact_userinfo(token: &str) -> String {
    let schemes: Vec<usize> = token.match_indices("://").map(|(i, _)| i).collect();
    if schemes.is_empty() {
        return token.to_owned();
    }
    let mut out = String::with_capacity(token.len());
    out.push_str(&token[..schemes[0]]);
    for (n, &scheme) in schemes.iter().enumerate() {
        let end = schemes.get(n + 1).copied().unwrap_or(token.len());
        let url = &token[scheme..end];
        let authority = 3;
        let userinfo_end = url[authority..].rfind('@').map(|at| authority + at);
        let colon = userinfo_end.and_then(|at| url[authority..at].find(':'));
        match (colon, userinfo_end) {
            (Some(colon), Some(at)) => {
                out.push_str(&url[..authority + colon + 1]);
                out.push_str(MASK);
                out.push_str(&url[at..]);
            }
            _ => out.push_str(url),
        }
    }
    out
}

/// Whether a `key=value` key names a secret.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "pass",
        "pwd",
        "secret",
        "token",
        "apikey",
        "api_key",
        "api-key",
        "credential",
    ]
    .iter()
    .any(|s| key.contains(s))
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// Hides the values of secret `key=value` pairs (libpq strings, URL query parameters).
fn redact_pairs(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut copied, mut i) = (0, 0);
    while i < b.len() {
        if !is_key_byte(b[i]) || (i > 0 && is_key_byte(b[i - 1])) {
            i += 1;
            continue;
        }
        let key_end = (i..b.len())
            .find(|&j| !is_key_byte(b[j]))
            .unwrap_or(b.len());
        let mut v = skip_blanks(b, key_end);
        if b.get(v) != Some(&b'=') || !is_secret_key(&text[i..key_end]) {
            i = key_end;
            continue;
        }
        v = skip_blanks(b, v + 1);
        let end = value_end(b, v, in_url(text, i));
        if end > v {
            out.push_str(&text[copied..v]);
            out.push_str(MASK);
            copied = end;
        }
        i = end.max(key_end);
    }
    out.push_str(&text[copied..]);
    out
}

fn skip_blanks(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|c| *c == b' ' || *c == b'\t') {
        i += 1;
    }
    i
}

/// Whether position `at` lies in a whitespace-delimited token that is a URL.
fn in_url(text: &str, at: usize) -> bool {
    let start = text[..at]
        .rfind(|c: char| c.is_ascii_whitespace())
        .map_or(0, |ws| ws + 1);
    text[start..at].contains("://")
}

/// Where the value starting at `v` ends: a quoted value at its closing quote (backslash
/// escapes skipped), a bare one at whitespace, or in a URL also at `&`, `;` or `#`.
fn value_end(b: &[u8], v: usize, url: bool) -> usize {
    match b.get(v) {
        Some(&q @ (b'\'' | b'"')) => {
            let mut j = v + 1;
            while j < b.len() {
                match b[j] {
                    b'\\' => j += 2,
                    c if c == q => return j + 1,
                    _ => j += 1,
                }
            }
            b.len()
        }
        _ => (v..b.len())
            .find(|&j| b[j].is_ascii_whitespace() || (url && matches!(b[j], b'&' | b';' | b'#')))
            .unwrap_or(b.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn every_url_shape_loses_its_password() {
        for (given, shown) in [
            (
                "postgres://sy:hunter2@db:5432/sy",
                "postgres://sy:***@db:5432/sy",
            ),
            (
                "postgresql://sy:hunter2@db/sy?sslmode=require",
                "postgresql://sy:***@db/sy?sslmode=require",
            ),
            ("postgres://sy:p@ss/w:rd@db/sy", "postgres://sy:***@db/sy"),
            ("postgres://sy@db/sy", "postgres://sy@db/sy"),
            (
                "postgres://sy@db/sy?sslmode=require&password=hunter2&application_name=x",
                "postgres://sy@db/sy?sslmode=require&password=***&application_name=x",
            ),
            ("redis://:pw@r:6379", "redis://:***@r:6379"),
            (
                "rediss://default:pw@r:6380/0",
                "rediss://default:***@r:6380/0",
            ),
            ("redis://r2:6379", "redis://r2:6379"),
            (
                "http://otel:s3cret@collector:4317",
                "http://otel:***@collector:4317",
            ),
            ("http://collector:4317", "http://collector:4317"),
            (
                r#"["redis://:a@h1:6379", "redis://:b@h2:6379"]"#,
                r#"["redis://:***@h1:6379", "redis://:***@h2:6379"]"#,
            ),
            (
                r#"["redis://:a@h1","redis://:b@h2"]"#,
                r#"["redis://:***@h1","redis://:***@h2"]"#,
            ),
        ] {
            assert_eq!(redact(given), shown, "{given}");
        }
    }

    #[test]
    fn libpq_key_value_strings_lose_their_password() {
        for (given, shown) in [
            (
                "host=db user=sy password=hunter2 dbname=sy",
                "host=db user=sy password=*** dbname=sy",
            ),
            (
                "host=db password = 'hun ter\\'2' dbname=sy",
                "host=db password = *** dbname=sy",
            ),
            (
                "host=db sslpassword=x PASSWORD=y",
                "host=db sslpassword=*** PASSWORD=***",
            ),
            ("host=db password='unterminated", "host=db password=***"),
            ("host=db user=sy", "host=db user=sy"),
        ] {
            assert_eq!(redact(given), shown, "{given}");
        }
    }

    #[test]
    fn secrets_in_free_text_are_hidden() {
        assert_eq!(
            redact(r#"invalid type: found string "postgres://u:pw@h/db", expected usize"#),
            r#"invalid type: found string "postgres://u:***@h/db", expected usize"#
        );
        assert_eq!(
            redact("OTLP exporter for http://u:pw@otel:4317: refused; token=abc"),
            "OTLP exporter for http://u:***@otel:4317: refused; token=***"
        );
        let plain = "alice@localhost logged in from 10.0.0.1:5222; max_depth=8 é";
        assert_eq!(redact(plain), plain);
        assert_eq!(
            redact("é\u{a0}password=ü\u{a0}x http://é:ü@h"),
            "é\u{a0}password=*** http://é:***@h"
        );
    }
}
