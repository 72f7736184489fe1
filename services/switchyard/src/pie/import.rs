//! `switchyard import FILE`: each `<user>` of a served host becomes an account with its
//! roster, vCard, private XML and offline messages, written straight to the stores.

use super::reader::{Found, Walker};
use super::{is_pie, PIE_SCRAM};
use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::collections::BTreeMap;
use std::path::Path;
use switchyard_core::sasl::{HashAlg, ScramKeys, StoredCredentials};
use switchyard_core::{ns, Element, Jid};
use switchyard_router::data;
use switchyard_storage::{RosterItem, Stores, Subscription};

/// Files opened through XInclude, one inside another, at most.
const MAX_INCLUDE_DEPTH: usize = 8;

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The served domains: users of other hosts are skipped.
    pub domains: Vec<String>,
    /// PBKDF2 iterations for keys derived from a plaintext `password` attribute.
    pub scram_iterations: u32,
    /// Add the data of users whose account exists already (their credentials stay).
    pub merge: bool,
}

/// What an import did, printed at the end.
#[derive(Debug, Default)]
pub struct Imported {
    pub accounts: usize,
    pub merged: usize,
    pub roster_items: usize,
    pub vcards: usize,
    pub private: usize,
    pub offline: usize,
    /// Users not imported, with why (one line each).
    pub refused: Vec<String>,
    /// What the format carried that Switchyard does not keep, by element.
    pub skipped: BTreeMap<String, usize>,
}

impl std::fmt::Display for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "imported {} account(s), merged into {} existing; {} roster item(s), {} vCard(s), {} private XML document(s), {} offline message(s)",
            self.accounts, self.merged, self.roster_items, self.vcards, self.private, self.offline
        )?;
        for why in &self.refused {
            writeln!(f, "not imported: {why}")?;
        }
        for (what, n) in &self.skipped {
            writeln!(f, "skipped (not kept by Switchyard): {n} × {what}")?;
        }
        Ok(())
    }
}

/// Imports `path` (and what it includes) into `stores`.
pub async fn import(
    stores: &Stores,
    path: &Path,
    options: &ImportOptions,
) -> anyhow::Result<Imported> {
    let mut done = Imported::default();
    let mut walkers = vec![Walker::open(path, None)?];
    while let Some(walker) = walkers.last_mut() {
        let Some(found) = walker.next()? else {
            walkers.pop();
            continue;
        };
        match found {
            Found::User { host, user } => {
                let Some(host) = host else {
                    bail!("a <user> outside any <host>");
                };
                if let Err(why) = one_user(stores, &host, &user, options, &mut done).await {
                    done.refused.push(format!(
                        "{}@{host}: {why:#}",
                        user.attr("name").unwrap_or("?")
                    ));
                }
            }
            Found::Include { path, host } => {
                if walkers.len() >= MAX_INCLUDE_DEPTH {
                    bail!(
                        "XIncludes nested deeper than {MAX_INCLUDE_DEPTH} at {}",
                        path.display()
                    );
                }
                walkers.push(Walker::open(&path, host)?);
            }
            Found::Skipped(what) => *done.skipped.entry(what).or_default() += 1,
        }
    }
    Ok(done)
}

async fn one_user(
    stores: &Stores,
    host: &str,
    user: &Element,
    options: &ImportOptions,
    done: &mut Imported,
) -> anyhow::Result<()> {
    let name = user.attr("name").context("a <user> without a name")?;
    let account = Jid::parse(&format!("{name}@{host}")).context("not a valid JID")?;
    if !options.domains.iter().any(|d| d == account.domain()) {
        bail!("{} is not a served domain", account.domain());
    }
    let account = account.bare();
    match stores
        .accounts
        .create(&account, &credentials(user, options)?)
        .await
    {
        Ok(()) => done.accounts += 1,
        Err(switchyard_storage::StorageError::AlreadyExists) if options.merge => done.merged += 1,
        Err(switchyard_storage::StorageError::AlreadyExists) => {
            bail!("the account exists (import with --merge to add its data)")
        }
        Err(e) => return Err(e.into()),
    }
    for child in user.children() {
        match (child.name(), child.ns()) {
            ("scram-credentials", PIE_SCRAM) => {}
            ("query", ns::ROSTER) => {
                for item in child.children().filter(|i| i.is("item", ns::ROSTER)) {
                    roster_item(stores, &account, item).await?;
                    done.roster_items += 1;
                }
            }
            ("presence", n) if n == ns::CLIENT || n.is_empty() || is_pie(n) => {
                pending_request(stores, &account, child).await?;
            }
            ("vCard", ns::VCARD) => {
                let xml = child.to_xml("");
                stores
                    .documents
                    .put(&account, data::VCARD_KEY, Some(&xml))
                    .await?;
                done.vcards += 1;
            }
            ("query", ns::PRIVATE) => {
                for stored in child.children() {
                    let xml = stored.to_xml("");
                    let key = data::private_key(stored);
                    stores.documents.put(&account, &key, Some(&xml)).await?;
                    done.private += 1;
                }
            }
            ("offline-messages", n) if is_pie(n) => {
                for message in child.children().filter(|m| m.is("message", ns::CLIENT)) {
                    // Accepted by the server it comes from: kept whatever the quota.
                    stores
                        .offline
                        .push(&account, &message.to_xml(""), usize::MAX)
                        .await?;
                    done.offline += 1;
                }
            }
            (name, n) => {
                let items = child.children().count().max(1);
                *done.skipped.entry(format!("{{{n}}}{name}")).or_default() += items;
            }
        }
    }
    Ok(())
}

/// The account's keys: SCRAM keys as given (a hash not given is absent), or derived
/// from a plaintext `password` attribute.
fn credentials(user: &Element, options: &ImportOptions) -> anyhow::Result<StoredCredentials> {
    let mut sha1 = ScramKeys::absent();
    let mut sha256 = ScramKeys::absent();
    for scram in user
        .children()
        .filter(|c| c.is("scram-credentials", PIE_SCRAM))
    {
        let (alg, slot) = match scram.attr("mechanism") {
            Some("SCRAM-SHA-1") => (HashAlg::Sha1, &mut sha1),
            Some("SCRAM-SHA-256") => (HashAlg::Sha256, &mut sha256),
            _ => continue, // a hash Switchyard does not use (SHA-512): its keys cannot help
        };
        *slot = scram_keys(scram, alg)?;
    }
    if sha1.is_usable() || sha256.is_usable() {
        return Ok(StoredCredentials { sha1, sha256 });
    }
    match user.attr("password") {
        Some(password) => StoredCredentials::from_password(password, options.scram_iterations)
            .map_err(|e| anyhow::anyhow!("the password: {e}")),
        None => bail!("no credentials (neither SCRAM keys nor a password)"),
    }
}

fn scram_keys(scram: &Element, alg: HashAlg) -> anyhow::Result<ScramKeys> {
    let field = |name: &str| {
        scram
            .child(name, PIE_SCRAM)
            .map(|f| f.text().trim().to_owned())
            .with_context(|| format!("scram-credentials without {name}"))
    };
    let bytes = |name: &str| {
        B64.decode(field(name)?)
            .with_context(|| format!("scram-credentials {name} is not base64"))
    };
    let iterations: u32 = field("iter-count")?
        .parse()
        .context("scram-credentials iter-count is not a number")?;
    let keys = ScramKeys {
        salt: bytes("salt")?,
        iterations,
        stored_key: bytes("stored-key")?,
        server_key: bytes("server-key")?,
    };
    let size = alg.output_len();
    if iterations == 0
        || keys.salt.is_empty()
        || keys.stored_key.len() != size
        || keys.server_key.len() != size
    {
        bail!("scram-credentials with a zero iteration count, an empty salt or keys of the wrong size");
    }
    Ok(keys)
}

/// A roster row as listed (RFC 6121 §2.1.2 attributes; `remove` rows are not rows).
async fn roster_item(stores: &Stores, account: &Jid, item: &Element) -> anyhow::Result<()> {
    let contact = item
        .attr("jid")
        .and_then(|j| Jid::parse(j).ok())
        .filter(|j| j.is_bare() && *j != *account)
        .with_context(|| format!("a roster item with jid {:?}", item.attr("jid")))?;
    let subscription = match item.attr("subscription") {
        None => Subscription::None,
        Some(s) => Subscription::parse(s).with_context(|| format!("roster subscription {s:?}"))?,
    };
    let name = item
        .attr("name")
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    let mut groups: Vec<String> = Vec::new();
    for group in item
        .children()
        .filter(|g| g.is("group", ns::ROSTER))
        .map(Element::text)
    {
        if !group.is_empty() && !groups.contains(&group) {
            groups.push(group);
        }
    }
    let ask = item.attr("ask") == Some("subscribe");
    let approved = matches!(item.attr("approved"), Some("true" | "1"));
    let edit = Box::new(move |row: Option<RosterItem>| {
        let mut row = row.unwrap_or_else(|| RosterItem::new(contact));
        row.name = name;
        row.groups = groups;
        row.subscription = subscription;
        row.ask = ask;
        row.approved = approved;
        row.listed = true;
        Some(row)
    });
    let contact = item
        .attr("jid")
        .and_then(|j| Jid::parse(j).ok())
        .expect("checked above");
    stores.rosters.update(account, &contact, edit).await?;
    Ok(())
}

/// A pending inbound subscription request (`<presence type='subscribe' from='…'/>`):
/// kept on the contact's row, redelivered at the next login (RFC 6121 §3.1.3).
async fn pending_request(stores: &Stores, account: &Jid, presence: &Element) -> anyhow::Result<()> {
    let from = presence
        .attr("from")
        .and_then(|j| Jid::parse(j).ok())
        .map(|j| j.bare())
        .filter(|j| j != account);
    let (Some(from), Some("subscribe")) = (from, presence.attr("type")) else {
        return Ok(()); // nothing Switchyard keeps
    };
    // Ours is kept as it was stored; another server's (Prosody's is in its own
    // namespace, without `to`) is written as a client stanza to the account.
    let request = match presence.ns() {
        ns::CLIENT => presence.to_xml(""),
        _ => Element::new("presence", ns::CLIENT)
            .with_attr("from", from.to_string())
            .with_attr("to", account.to_string())
            .with_attr("type", "subscribe")
            .to_xml(""),
    };
    let edit = Box::new(move |row: Option<RosterItem>| {
        let mut row = row.unwrap_or_else(|| RosterItem::new(from.clone()));
        row.pending_in = Some(request.clone());
        Some(row)
    });
    let contact = presence
        .attr("from")
        .and_then(|j| Jid::parse(j).ok())
        .expect("parsed above")
        .bare();
    stores.rosters.update(account, &contact, edit).await?;
    Ok(())
}
