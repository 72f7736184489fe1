//! `switchyard import FILE`: each `<user>` of a served host becomes an account with its
//! roster, vCard, private XML, offline messages and ban, written straight to the stores.
//!
//! The file is read twice. The first pass parses it whole and writes nothing, so a file
//! that is broken anywhere changes nothing. The second pass writes, one user at a time:
//! a user is checked whole before anything of it is written ([`super::user`]); items that
//! break a rule or a limit (those a client's own requests are held to) are left out and
//! named, and a user that cannot be imported at all is named with the reason.

use super::reader::{Found, Walker};
use super::user::{parse, same_message_key, Parsed};
use anyhow::{bail, Context};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use switchyard_core::{Element, Jid};
use switchyard_router::data;
use switchyard_router::RouterConfig;
use switchyard_storage::{DocumentQuota, RosterItem, StorageError, Stores};

/// Files opened through XInclude, one inside another, at most.
const MAX_INCLUDE_DEPTH: usize = 8;

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The served domains and the per-account limits (the router's own).
    pub limits: RouterConfig,
    /// The largest vCard kept (a client could not store a larger one).
    pub max_vcard_bytes: usize,
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
    pub bans: usize,
    /// Accounts created with SCRAM-SHA-1 keys only.
    pub sha1_only: usize,
    /// Users not imported, with why (one line each).
    pub refused: Vec<String>,
    /// Items of imported users left out, with why.
    pub left_out: Vec<String>,
    /// What was imported but wants the operator's attention.
    pub warnings: Vec<String>,
    /// What the format carried that Switchyard does not keep, by element.
    pub skipped: BTreeMap<String, usize>,
}

impl std::fmt::Display for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "imported {} account(s), merged into {} existing; {} roster item(s), {} vCard(s), {} private XML document(s), {} offline message(s), {} ban(s)",
            self.accounts, self.merged, self.roster_items, self.vcards, self.private, self.offline, self.bans
        )?;
        for why in &self.refused {
            writeln!(f, "not imported: {why}")?;
        }
        for why in &self.left_out {
            writeln!(f, "left out: {why}")?;
        }
        for what in &self.warnings {
            writeln!(f, "note: {what}")?;
        }
        for (what, n) in &self.skipped {
            writeln!(f, "skipped (not kept by Switchyard): {n} × {what}")?;
        }
        if self.sha1_only > 0 {
            writeln!(
                f,
                "note: {} account(s) have SCRAM-SHA-1 keys only: they log in with SCRAM-SHA-1 or PLAIN; leave SCRAM-SHA-256 out of auth.mechanisms until their passwords are set again",
                self.sha1_only
            )?;
        }
        Ok(())
    }
}

/// The users of a file and of the files it includes, in order.
struct Users {
    walkers: Vec<Walker>,
    /// Elements the containers hold that the format does not define.
    skipped: BTreeMap<String, usize>,
}

impl Users {
    fn open(path: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            walkers: vec![Walker::open(path, None)?],
            skipped: BTreeMap::new(),
        })
    }

    /// The next user and its host; `None` after the last.
    fn next(&mut self) -> anyhow::Result<Option<(String, Element)>> {
        while let Some(walker) = self.walkers.last_mut() {
            let Some(found) = walker.next()? else {
                self.walkers.pop();
                continue;
            };
            match found {
                Found::User { host, user } => {
                    return Ok(Some((host.context("a <user> outside any <host>")?, user)));
                }
                Found::Include { path, host } => {
                    if self.walkers.len() >= MAX_INCLUDE_DEPTH {
                        bail!(
                            "XIncludes nested deeper than {MAX_INCLUDE_DEPTH} at {}",
                            path.display()
                        );
                    }
                    self.walkers.push(Walker::open(&path, host)?);
                }
                Found::Skipped(what) => *self.skipped.entry(what).or_default() += 1,
            }
        }
        Ok(None)
    }
}

/// Imports `path` (and what it includes) into `stores`.
pub async fn import(
    stores: &Stores,
    path: &Path,
    options: &ImportOptions,
) -> anyhow::Result<Imported> {
    // Pass 1: the whole file parses; nothing is written.
    let mut users = Users::open(path)?;
    while users.next().context("nothing was imported")?.is_some() {}
    // Pass 2: write.
    let mut done = Imported::default();
    let mut users = Users::open(path)?;
    let mut written: HashSet<Jid> = HashSet::new();
    while let Some((host, user)) = users.next()? {
        let parsed = match parse(&host, &user, options) {
            Ok(p) => p,
            Err(why) => {
                let name = user.attr("name").unwrap_or("?");
                done.refused.push(format!("{name}@{host}: {why}"));
                continue;
            }
        };
        if !written.insert(parsed.account.clone()) {
            let why = "appears more than once in the file; only its first copy was imported";
            done.refused.push(format!("{}: {why}", parsed.account));
            continue;
        }
        let account = parsed.account.clone();
        if let Err(e) = write(stores, parsed, options, &mut done).await {
            bail!(
                "writing {account} failed, after {} account(s) imported and {} merged: {e:#}",
                done.accounts,
                done.merged
            );
        }
    }
    for (what, n) in users.skipped {
        *done.skipped.entry(what).or_default() += n;
    }
    Ok(done)
}

/// Writes one checked user.
async fn write(
    stores: &Stores,
    user: Parsed,
    options: &ImportOptions,
    done: &mut Imported,
) -> anyhow::Result<()> {
    let account = user.account;
    let created = match &user.creds {
        Some(creds) => match stores.accounts.create(&account, creds).await {
            Ok(()) => true,
            Err(StorageError::AlreadyExists) => false,
            Err(e) => return Err(e.into()),
        },
        None => false,
    };
    let exists = created || stores.accounts.credentials(&account).await?.is_some();
    match (created, exists, options.merge) {
        (true, _, _) => done.accounts += 1,
        (false, true, true) => done.merged += 1,
        (false, true, false) => {
            let why = "the account exists (import with --merge to add its data)";
            done.refused.push(format!("{account}: {why}"));
            return Ok(());
        }
        (false, false, _) => {
            let why = user
                .no_creds
                .unwrap_or("no credentials (neither SCRAM keys nor a password)".into());
            done.refused.push(format!("{account}: {why}"));
            return Ok(());
        }
    }
    if created && user.sha1_only {
        done.sha1_only += 1;
    }
    let tag = |what: String| format!("{account}: {what}");
    done.left_out.extend(user.notes.into_iter().map(tag));
    done.warnings.extend(user.warnings.into_iter().map(tag));
    for (what, n) in user.skipped {
        *done.skipped.entry(what).or_default() += n;
    }
    let limits = &options.limits;
    let roster = stores.rosters.roster(&account).await?;
    let mut listed: HashSet<Jid> = roster
        .items
        .iter()
        .filter(|i| i.listed)
        .map(|i| i.jid.clone())
        .collect();
    for row in user.roster {
        if !listed.contains(&row.jid) && listed.len() >= limits.max_roster_items {
            let max = limits.max_roster_items;
            done.left_out.push(format!(
                "{account}: roster item {} (at most {max} items)",
                row.jid
            ));
            continue;
        }
        listed.insert(row.jid.clone());
        let contact = row.jid.clone();
        let edit = Box::new(move |old: Option<RosterItem>| {
            let pending_in = old.and_then(|o| o.pending_in);
            Some(RosterItem { pending_in, ..row })
        });
        stores.rosters.update(&account, &contact, edit).await?;
        done.roster_items += 1;
    }
    for (contact, request) in user.pending {
        let key = contact.clone();
        let edit = Box::new(move |old: Option<RosterItem>| {
            let mut row = old.unwrap_or_else(|| RosterItem::new(contact));
            row.pending_in = Some(request);
            Some(row)
        });
        stores.rosters.update(&account, &key, edit).await?;
    }
    if let Some(vcard) = user.vcard {
        stores
            .documents
            .put(&account, data::VCARD_KEY, Some(&vcard))
            .await?;
        done.vcards += 1;
    }
    let quota = DocumentQuota {
        keys: limits.private_quota_namespaces,
        bytes: limits.private_quota_bytes,
    };
    for (key, xml) in user.private {
        match stores
            .documents
            .put_within(&account, data::PRIVATE_FAMILY, &key, &xml, quota)
            .await
        {
            Ok(()) => done.private += 1,
            Err(StorageError::QuotaExceeded) => done.left_out.push(format!(
                "{account}: private XML {key} (private storage is full)"
            )),
            Err(e) => return Err(e.into()),
        }
    }
    let held = stores.offline.held(&account).await?;
    let (mut count, mut bytes) = (held.len(), held.iter().map(String::len).sum::<usize>());
    let held: HashSet<String> = held.iter().map(|m| same_message_key(m)).collect();
    for message in user.offline {
        if held.contains(&same_message_key(&message)) {
            continue; // merged before: it is there already
        }
        if count >= limits.offline_quota || bytes + message.len() > limits.offline_quota_bytes {
            done.left_out.push(format!(
                "{account}: an offline message (the offline quota is full)"
            ));
            continue;
        }
        stores.offline.push(&account, &message, usize::MAX).await?;
        (count, bytes) = (count + 1, bytes + message.len());
        done.offline += 1;
    }
    if let Some(ban) = user.ban {
        let text = serde_json::to_string(&ban).expect("plain data serializes");
        stores
            .documents
            .put(&account, data::BAN_KEY, Some(&text))
            .await?;
        done.bans += 1;
    }
    Ok(())
}
