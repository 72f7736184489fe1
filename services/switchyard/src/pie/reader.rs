//! Reading an XEP-0227 file one `<user>` at a time: quick-xml walks the containers
//! (`<server-data>`, `<host>`) while a tee keeps the bytes of the current `<user>` only;
//! each user's bytes are then parsed into a tree under bounded [`Limits`], inside a
//! wrapper that declares the namespaces its ancestors did.

use super::{is_pie, XINCLUDE};
use anyhow::{bail, Context};
use quick_xml::events::{BytesStart, Event};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use switchyard_core::{Element, Limits};

/// The largest `<user>` read (its bytes in the file).
pub const MAX_USER_BYTES: usize = 64 * 1024 * 1024;

/// Limits for one user's tree: its bytes, and element counts a large roster, archive
/// or offline store can reach.
const USER_LIMITS: Limits = Limits {
    max_stanza_bytes: MAX_USER_BYTES + 64 * 1024,
    max_stanza_bytes_before_auth: MAX_USER_BYTES + 64 * 1024,
    max_depth: 96,
    max_elements: 4 * 1024 * 1024,
    max_attributes: 256,
    max_attribute_bytes: 64 * 1024,
};

/// What the walk found next.
#[derive(Debug)]
pub enum Found {
    /// A `<user>` of `host`.
    User { host: Option<String>, user: Element },
    /// An XInclude of `path` (resolved against the including file's directory), inside
    /// `host` when there is one.
    Include { path: PathBuf, host: Option<String> },
    /// An element the format's containers do not define here (skipped whole).
    Skipped(String),
}

/// The most bytes one event outside a `<user>` may take (a start tag, text or a comment
/// between users): quick-xml reads an event whole, so this bounds its memory.
const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Keeps the bytes consumed while capturing, up to [`MAX_USER_BYTES`] (then it only
/// notes that there were more), and refuses to read more than `budget` bytes since the
/// last [`Tee::mark`]: no event and no user can make the reader hold more.
struct Tee<R> {
    inner: R,
    capture: Vec<u8>,
    on: bool,
    overflow: bool,
    read: usize,
    budget: usize,
}

impl<R> Tee<R> {
    fn mark(&mut self, budget: usize) {
        self.read = 0;
        self.budget = budget;
    }

    fn keep(&mut self, bytes: &[u8]) {
        if self.capture.len() + bytes.len() > MAX_USER_BYTES {
            self.overflow = true;
        } else {
            self.capture.extend_from_slice(bytes);
        }
    }
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.on {
            self.keep(&buf[..n]);
        }
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Tee<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.read > self.budget {
            return Err(std::io::Error::other(format!(
                "more than {} bytes in one piece of the file (a <user> or what lies between)",
                self.budget
            )));
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, n: usize) {
        self.read += n;
        if self.on {
            // The buffer is still filled: this is the slice being consumed.
            if let Ok(buf) = self.inner.fill_buf() {
                let consumed = buf[..n.min(buf.len())].to_vec();
                self.keep(&consumed);
            }
        }
        self.inner.consume(n);
    }
}

/// One file's walk.
pub struct Walker {
    reader: quick_xml::Reader<Tee<BufReader<File>>>,
    buf: Vec<u8>,
    dir: PathBuf,
    /// Per open element: its namespace declarations (`None` prefix: the default).
    scopes: Vec<Vec<(Option<String>, String)>>,
    /// Per open element: the host it is in.
    hosts: Vec<Option<String>>,
    inherited: Option<String>,
    /// Whether the root element was seen, and whether it has ended.
    rooted: bool,
    ended: bool,
}

impl Walker {
    /// Starts on `path`; `host` is the host an including file was in.
    pub fn open(path: &Path, host: Option<String>) -> anyhow::Result<Self> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let regular = file.metadata().is_ok_and(|m| m.is_file());
        anyhow::ensure!(
            regular,
            "{} is not a regular file: an import reads its files twice (checked, then written), so copy a pipe's content to a file first",
            path.display()
        );
        let tee = Tee {
            inner: BufReader::new(file),
            capture: Vec::new(),
            on: false,
            overflow: false,
            read: 0,
            budget: MAX_EVENT_BYTES,
        };
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(Self {
            reader: quick_xml::Reader::from_reader(tee),
            buf: Vec::new(),
            dir,
            scopes: Vec::new(),
            hosts: Vec::new(),
            inherited: host,
            rooted: false,
            ended: false,
        })
    }

    fn host(&self) -> Option<String> {
        self.hosts
            .last()
            .cloned()
            .unwrap_or_else(|| self.inherited.clone())
    }

    /// The namespace of an element named `qname` with `own` declarations.
    fn namespace(&self, qname: &[u8], own: &[(Option<String>, String)]) -> String {
        let prefix = std::str::from_utf8(qname)
            .ok()
            .and_then(|q| q.split_once(':'))
            .map(|(p, _)| p.to_owned());
        own.iter()
            .chain(self.scopes.iter().rev().flatten())
            .find(|(p, _)| *p == prefix)
            .map(|(_, uri)| uri.clone())
            .unwrap_or_default()
    }

    /// The next user, include or skipped element; `None` at the end of the file.
    pub fn next(&mut self) -> anyhow::Result<Option<Found>> {
        loop {
            self.buf.clear();
            self.reader.get_mut().mark(MAX_EVENT_BYTES);
            let event = self
                .reader
                .read_event_into(&mut self.buf)
                .context("not well-formed XML")?;
            let (start, empty) = match event {
                Event::Start(e) => (e.into_owned(), false),
                Event::Empty(e) => (e.into_owned(), true),
                Event::End(_) => {
                    self.scopes.pop();
                    self.hosts.pop();
                    self.ended = self.scopes.is_empty();
                    continue;
                }
                Event::Eof if !self.scopes.is_empty() => {
                    bail!("not well-formed XML: the file ends before its root element does")
                }
                Event::Eof if !self.rooted => {
                    bail!("not an XEP-0227 file: no <server-data>, <host> or <user> in it")
                }
                Event::Eof => return Ok(None),
                Event::DocType(_) => bail!("a DTD is not accepted in an import file"),
                Event::Text(t) if self.ended && !t.iter().all(u8::is_ascii_whitespace) => {
                    bail!("not well-formed XML: text after the root element")
                }
                _ => continue,
            };
            if self.ended {
                bail!("not well-formed XML: an element after the root element");
            }
            let root = !self.rooted;
            self.rooted = true;
            let found = self.element(&start, empty, root)?;
            // A root that was whole in one event (a user, an empty element) has ended.
            self.ended = self.scopes.is_empty();
            if let Some(found) = found {
                return Ok(Some(found));
            }
        }
    }

    /// A container's child: descend into containers, capture users, report the rest.
    fn element(
        &mut self,
        start: &BytesStart<'_>,
        empty: bool,
        root: bool,
    ) -> anyhow::Result<Option<Found>> {
        let mut own = Vec::new();
        let mut attrs = Vec::new();
        for attr in start.attributes() {
            let attr = attr.context("a malformed attribute")?;
            let key = std::str::from_utf8(attr.key.as_ref())?.to_owned();
            let value = attr
                .unescape_value()
                .context("a malformed attribute")?
                .into_owned();
            match key.strip_prefix("xmlns") {
                Some("") => own.push((None, value)),
                Some(p) if p.starts_with(':') => own.push((Some(p[1..].to_owned()), value)),
                _ => attrs.push((key, value)),
            }
        }
        let ns = self.namespace(start.name().as_ref(), &own);
        let local = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
        let attr = |name: &str| {
            attrs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let container = matches!(local.as_str(), "server-data" | "host" | "user");
        if root && !(is_pie(&ns) && container) {
            bail!("not an XEP-0227 file: its root is {{{ns}}}{local}");
        }
        let found = match (is_pie(&ns), local.as_str()) {
            (true, "server-data") | (true, "host") => {
                if !empty {
                    let host = match local.as_str() {
                        "host" => attr("jid"),
                        _ => self.host(),
                    };
                    self.scopes.push(own);
                    self.hosts.push(host);
                }
                return Ok(None);
            }
            (true, "user") => Found::User {
                host: self.host(),
                user: self.capture(start, empty)?,
            },
            _ if ns == XINCLUDE && local == "include" => {
                let href = attr("href").context("an XInclude without href")?;
                if attr("parse").is_some() || attr("xpointer").is_some() {
                    bail!("XInclude of {href}: only plain includes are supported");
                }
                self.skip(empty)?;
                Found::Include {
                    path: self.dir.join(href),
                    host: self.host(),
                }
            }
            _ => {
                self.skip(empty)?;
                Found::Skipped(format!("{{{ns}}}{local}"))
            }
        };
        Ok(Some(found))
    }

    /// Skips the element just started, event by event (each within the event budget),
    /// so one of any size costs no memory.
    fn skip(&mut self, empty: bool) -> anyhow::Result<()> {
        let mut depth = usize::from(!empty);
        let mut buf = Vec::new();
        while depth > 0 {
            buf.clear();
            self.reader.get_mut().mark(MAX_EVENT_BYTES);
            match self
                .reader
                .read_event_into(&mut buf)
                .context("not well-formed XML")?
            {
                Event::Start(_) => depth += 1,
                Event::End(_) => depth -= 1,
                Event::Eof => bail!("not well-formed XML: the file ends inside an element"),
                _ => {}
            }
        }
        Ok(())
    }

    /// The whole `<user>` whose start tag was just read, as a tree.
    fn capture(&mut self, start: &BytesStart<'_>, empty: bool) -> anyhow::Result<Element> {
        let mut text = String::from("<wrap");
        for (prefix, uri) in self.scopes.iter().flatten() {
            let uri = switchyard_core::xml::escape_attr(uri);
            match prefix {
                None => text.push_str(&format!(" xmlns='{uri}'")),
                Some(p) => text.push_str(&format!(" xmlns:{p}='{uri}'")),
            }
        }
        text.push('>');
        let tag = std::str::from_utf8(start.as_ref()).context("not UTF-8")?;
        text.push('<');
        text.push_str(tag);
        if empty {
            text.push_str("/>");
        } else {
            text.push('>');
            let tee = self.reader.get_mut();
            tee.capture.clear();
            tee.on = true;
            tee.overflow = false;
            tee.mark(MAX_USER_BYTES + MAX_EVENT_BYTES);
            let mut buf = Vec::new();
            let read = self.reader.read_to_end_into(start.name(), &mut buf);
            let tee = self.reader.get_mut();
            tee.on = false;
            let body = std::mem::take(&mut tee.capture);
            read.context("not well-formed XML")?;
            if tee.overflow {
                bail!("a <user> is larger than {MAX_USER_BYTES} bytes");
            }
            text.push_str(std::str::from_utf8(&body).context("not UTF-8")?);
        }
        text.push_str("</wrap>");
        let wrap = Element::parse_with(&text, &USER_LIMITS)
            .map_err(|e| anyhow::anyhow!("a <user> that does not parse: {e}"))?;
        wrap.into_children()
            .next()
            .context("a <user> that does not parse")
    }
}
