//! XEP-0227 (Portable Import/Export Format for XMPP-IM Servers, v1.1): `switchyard export`
//! and `switchyard import`, so accounts move between Switchyard, Prosody and ejabberd.
//!
//! What moves, per account (`<user name='LOCAL'>` under `<host jid='DOMAIN'>`):
//!
//! - credentials as SCRAM keys, never a password (`<scram-credentials
//!   xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1|SCRAM-SHA-256'>` with
//!   `iter-count`, and base64 `salt`, `server-key`, `stored-key`). An import with only one
//!   hash's keys (Prosody keeps SHA-1 only) stores the other as absent: that mechanism
//!   then fails as for an unknown account until the password is set again. A plaintext
//!   `password` attribute (the XEP's older form) is turned into keys on import;
//! - the roster (`jabber:iq:roster`), with pending inbound requests as `<presence
//!   type='subscribe'/>` beside it (as Prosody writes them);
//! - the vCard (`vcard-temp`) and private XML (`jabber:iq:private`, XEP-0049);
//! - offline messages (`<offline-messages>`, oldest first, with their XEP-0203 delay);
//! - a ban, in Switchyard's own namespace (`urn:x-switchyard:ban:0`; others skip it).
//!
//! Both directions stream: the export writes one `<user>` at a time, the import reads
//! one `<user>` at a time (at most [`reader::MAX_USER_BYTES`] each), so neither holds the
//! file. The import checks the whole file before it writes anything (it reads it twice)
//! and each user before any of it is written ([`user`]). It follows XInclude `<include href='relative'/>` (§ Use of XInclude),
//! accepts the XEP's older namespace, skips what Switchyard does not keep (message
//! archives, PEP) and says so, and leaves existing accounts alone unless asked to merge.
//! Block lists are not part of the format and do not move.

mod export;
mod import;
mod reader;
mod user;

pub use export::export;
pub use import::{import, ImportOptions, Imported};

/// Writes an export to `path`, or to standard output for `-`. The file holds every
/// account's keys (XEP-0227 §9): it is written as a new file of mode 0600 beside `path`
/// and renamed over it, so an existing file's mode and a symbolic link at `path` give no
/// one else a way to read it.
pub async fn export_to(
    stores: &switchyard_storage::Stores,
    domains: &[String],
    path: &std::path::Path,
) -> anyhow::Result<export::Written> {
    use anyhow::Context;
    use std::os::unix::fs::OpenOptionsExt;
    if path.as_os_str() == "-" {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        return export(stores, domains, &mut out).await;
    }
    let name = path.file_name().context("the export file needs a name")?;
    let mut temporary = name.to_os_string();
    temporary.push(format!(".{}.partial", std::process::id()));
    let temporary = path.with_file_name(temporary);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| format!("cannot create {}", temporary.display()))?;
    let written = export(stores, domains, &mut std::io::BufWriter::new(file)).await;
    let renamed = written.is_ok().then(|| std::fs::rename(&temporary, path));
    if !matches!(renamed, Some(Ok(()))) {
        let _ = std::fs::remove_file(&temporary);
    }
    if let Some(Err(e)) = renamed {
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    written
}

/// The format's namespace (v1.0 and later).
const PIE: &str = "urn:xmpp:pie:0";
/// The namespace of drafts before 1.0, still written by some servers.
const PIE_OLD: &str = "http://www.xmpp.org/extensions/xep-0227.html#ns";
/// SCRAM credentials (v1.1).
const PIE_SCRAM: &str = "urn:xmpp:pie:0#scram";
/// An account's ban: Switchyard's own extension (the format lets an exporter add
/// elements in other namespaces; other servers skip it).
const PIE_BAN: &str = "urn:x-switchyard:ban:0";
/// XInclude, for files split per host or user.
const XINCLUDE: &str = "http://www.w3.org/2001/XInclude";

fn is_pie(ns: &str) -> bool {
    ns == PIE || ns == PIE_OLD
}
