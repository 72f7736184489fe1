//! Byte-level token boundary scanner.
//!
//! It finds where markup tokens begin and end in a growing buffer without parsing them, so
//! the framer can hand each complete stanza to quick-xml exactly once. Scanning is resumable:
//! a token split across reads continues from where it stopped, so feeding a stanza one byte
//! at a time costs O(n), not O(n²). RFC 6120 §11.1 constructs (comments, processing
//! instructions, DTDs) are recognised here, before any of their content is buffered.

/// A complete token's kind; its bytes are `buf[start..end]` as returned by [`Scanner::next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// `<name ...>`; `empty` for `<name .../>`.
    Start {
        empty: bool,
    },
    End,
    /// Character data up to the next `<` or the end of the buffer (may be cut anywhere).
    Text,
    /// `<![CDATA[ ... ]]>`.
    CData,
    /// `<? ... ?>`.
    ProcessingInstruction,
    /// `<!` other than CDATA: a comment or a DTD construct, reported as soon as seen.
    Declaration,
}

#[derive(Debug, Default)]
pub(crate) struct Scanner {
    /// Offset where the current token starts.
    start: usize,
    /// How far the current token has been scanned.
    cursor: usize,
    /// The open quote character inside a tag, if any.
    quote: Option<u8>,
}

pub(crate) enum Scan {
    Token(TokenKind, usize, usize),
    /// The token starting at `start` is not complete yet; `scanned` bytes of it are seen.
    Incomplete {
        start: usize,
        scanned: usize,
    },
}

impl Scanner {
    /// Forgets all progress; offsets restart at `base`.
    pub(crate) fn reset(&mut self, base: usize) {
        *self = Self {
            start: base,
            cursor: base,
            quote: None,
        };
    }

    /// Scans the next token of `buf` starting at the scanner's position.
    pub(crate) fn next(&mut self, buf: &[u8]) -> Scan {
        let start = self.start;
        if start >= buf.len() {
            return self.incomplete();
        }
        let token = if buf[start] != b'<' {
            self.text(buf)
        } else {
            match buf.get(start + 1) {
                None => None,
                Some(b'/') => self.tag(buf).map(|end| (TokenKind::End, end)),
                Some(b'?') => self
                    .until(buf, b"?>")
                    .map(|end| (TokenKind::ProcessingInstruction, end)),
                Some(b'!') => self.bang(buf),
                Some(_) => self.tag(buf).map(|end| {
                    let empty = buf[end - 2] == b'/';
                    (TokenKind::Start { empty }, end)
                }),
            }
        };
        match token {
            Some((kind, end)) => {
                self.reset(end);
                Scan::Token(kind, start, end)
            }
            None => self.incomplete(),
        }
    }

    fn incomplete(&self) -> Scan {
        Scan::Incomplete {
            start: self.start,
            scanned: self.cursor.max(self.start) - self.start,
        }
    }

    fn text(&mut self, buf: &[u8]) -> Option<(TokenKind, usize)> {
        let from = self.cursor.max(self.start);
        let end = buf[from..]
            .iter()
            .position(|&b| b == b'<')
            .map_or(buf.len(), |i| from + i);
        Some((TokenKind::Text, end))
    }

    /// Finds the `>` closing a tag, skipping quoted attribute values.
    fn tag(&mut self, buf: &[u8]) -> Option<usize> {
        let mut i = self.cursor.max(self.start + 1);
        while i < buf.len() {
            let b = buf[i];
            match self.quote {
                Some(q) if b == q => self.quote = None,
                Some(_) => {}
                None if b == b'"' || b == b'\'' => self.quote = Some(b),
                None if b == b'>' => return Some(i + 1),
                None => {}
            }
            i += 1;
        }
        self.cursor = i;
        None
    }

    fn until(&mut self, buf: &[u8], terminator: &[u8]) -> Option<usize> {
        let from = self.cursor.max(self.start + 2);
        // Step back so a terminator split across reads is still found.
        let from = from
            .saturating_sub(terminator.len() - 1)
            .max(self.start + 2);
        match buf[from..]
            .windows(terminator.len())
            .position(|w| w == terminator)
        {
            Some(i) => Some(from + i + terminator.len()),
            None => {
                self.cursor = buf.len();
                None
            }
        }
    }

    fn bang(&mut self, buf: &[u8]) -> Option<(TokenKind, usize)> {
        const CDATA: &[u8] = b"<![CDATA[";
        let have = &buf[self.start..buf.len().min(self.start + CDATA.len())];
        if !CDATA.starts_with(have) {
            return Some((TokenKind::Declaration, self.start + have.len()));
        }
        if have.len() < CDATA.len() {
            return None;
        }
        self.until(buf, b"]]>").map(|end| (TokenKind::CData, end))
    }
}
