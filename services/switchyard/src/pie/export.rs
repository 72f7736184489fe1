//! `switchyard export`: every account of the served domains (or of one), one `<user>`
//! written at a time.

use super::{PIE, PIE_BAN, PIE_SCRAM};
use anyhow::Context;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::io::Write;
use switchyard_core::sasl::{HashAlg, StoredCredentials};
use switchyard_core::{ns, Element, Jid};
use switchyard_router::data;
use switchyard_storage::Stores;

/// What an export wrote.
#[derive(Debug, Default)]
pub struct Written {
    pub users: usize,
    /// Stored items that did not parse (left out, each logged).
    pub unreadable: usize,
}

/// Writes the accounts of `domains` to `out` as one `<server-data>` document.
pub async fn export(
    stores: &Stores,
    domains: &[String],
    out: &mut dyn Write,
) -> anyhow::Result<Written> {
    let mut accounts = stores.accounts.list().await.context("listing accounts")?;
    accounts.sort_by(|a, b| (a.domain(), a.local()).cmp(&(b.domain(), b.local())));
    let mut written = Written::default();
    writeln!(out, "<?xml version='1.0' encoding='UTF-8'?>")?;
    writeln!(out, "<server-data xmlns='{PIE}'>")?;
    for domain in domains {
        let host = Element::new("host", PIE).with_attr("jid", domain.as_str());
        let open = host.to_xml(PIE);
        // `<host jid='…'/>` opened and closed by hand, its users streamed in between.
        writeln!(out, "  {}>", open.trim_end_matches("/>"))?;
        for account in accounts.iter().filter(|a| a.domain() == domain) {
            let Some(user) = user(stores, account, &mut written.unreadable).await? else {
                continue; // removed while exporting
            };
            writeln!(out, "    {}", user.to_xml(PIE))?;
            written.users += 1;
        }
        writeln!(out, "  </host>")?;
    }
    writeln!(out, "</server-data>")?;
    out.flush()?;
    Ok(written)
}

/// One account's `<user/>`; `None` when the account is gone.
async fn user(
    stores: &Stores,
    account: &Jid,
    unreadable: &mut usize,
) -> anyhow::Result<Option<Element>> {
    let context = || format!("reading {account}");
    let Some(creds) = stores
        .accounts
        .credentials(account)
        .await
        .with_context(context)?
    else {
        return Ok(None);
    };
    let mut user = Element::new("user", PIE).with_attr("name", account.local().unwrap_or(""));
    scram(&mut user, &creds);
    let roster = stores.rosters.roster(account).await.with_context(context)?;
    let mut query = Element::new("query", ns::ROSTER);
    let mut pending = Vec::new();
    for item in &roster.items {
        if item.listed {
            query.push_child(data::roster_item(item));
        }
        if let Some(request) = &item.pending_in {
            pending.push(request.clone());
        }
    }
    user.push_child(query);
    let mut parsed = |xml: &str, what: &str| match Element::parse(xml) {
        Ok(el) => Some(el),
        Err(e) => {
            tracing::warn!(%account, error = %e, "unreadable {what} left out of the export");
            *unreadable += 1;
            None
        }
    };
    for request in &pending {
        if let Some(presence) = parsed(request, "subscription request") {
            user.push_child(presence);
        }
    }
    let documents = &stores.documents;
    if let Some(vcard) = documents
        .get(account, data::VCARD_KEY)
        .await
        .with_context(context)?
    {
        if let Some(vcard) = parsed(&vcard, "vCard") {
            user.push_child(vcard);
        }
    }
    let private = documents
        .family(account, data::PRIVATE_FAMILY)
        .await
        .with_context(context)?;
    if !private.is_empty() {
        let mut query = Element::new("query", ns::PRIVATE);
        for (_, xml) in &private {
            if let Some(el) = parsed(xml, "private XML") {
                query.push_child(el);
            }
        }
        user.push_child(query);
    }
    let held = stores.offline.held(account).await.with_context(context)?;
    if !held.is_empty() {
        let mut offline = Element::new("offline-messages", PIE);
        for xml in &held {
            if let Some(message) = parsed(xml, "offline message") {
                offline.push_child(message);
            }
        }
        user.push_child(offline);
    }
    if let Some(ban) = documents
        .get(account, data::BAN_KEY)
        .await
        .with_context(context)?
    {
        match serde_json::from_str::<data::Ban>(&ban) {
            Ok(ban) => user.push_child(
                Element::new("ban", PIE_BAN)
                    .with_attr("reason", ban.reason)
                    .with_attr("since", ban.since.to_string()),
            ),
            Err(e) => {
                tracing::warn!(%account, error = %e, "unreadable ban left out of the export");
                *unreadable += 1;
            }
        }
    }
    Ok(Some(user))
}

/// `<scram-credentials/>` for each hash the account has keys for.
fn scram(user: &mut Element, creds: &StoredCredentials) {
    for (alg, mechanism) in [
        (HashAlg::Sha1, "SCRAM-SHA-1"),
        (HashAlg::Sha256, "SCRAM-SHA-256"),
    ] {
        let keys = creds.keys(alg);
        if !keys.is_usable() {
            continue;
        }
        let field = |name: &str, value: String| Element::new(name, PIE_SCRAM).with_text(value);
        user.push_child(
            Element::new("scram-credentials", PIE_SCRAM)
                .with_attr("mechanism", mechanism)
                .with_child(field("iter-count", keys.iterations.to_string()))
                .with_child(field("salt", B64.encode(&keys.salt)))
                .with_child(field("server-key", B64.encode(&keys.server_key)))
                .with_child(field("stored-key", B64.encode(&keys.stored_key))),
        );
    }
}
