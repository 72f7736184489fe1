//! One `<user>` read and checked, nothing written: the account and its keys, and each
//! item held to the rules and limits a client's own requests are (RFC 6121 §2.3.3 for
//! roster items, XEP-0049 for private XML, XEP-0160 for offline messages). An item that
//! fails is left out with a note; a user whose account or keys are wrong is refused.

use super::import::ImportOptions;
use super::{is_pie, PIE_BAN, PIE_SCRAM};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::collections::{BTreeMap, HashSet};
use switchyard_core::sasl::{HashAlg, ScramKeys, StoredCredentials, MIN_ITERATIONS};
use switchyard_core::{ns, Element, Jid};
use switchyard_router::data::{self, Ban};
use switchyard_storage::{RosterItem, Subscription};

/// The highest SCRAM iteration count taken: each login of the account costs this many
/// HMACs (Prosody uses 10,000; ejabberd 4,096), and a file must not be able to make one
/// login cost seconds of CPU.
pub const MAX_ITERATIONS: u32 = 100_000;

/// The longest SCRAM salt taken: every login attempt for the account, authenticated or
/// not, is sent it (Switchyard's are 16 bytes, Prosody's 36).
const MAX_SALT_BYTES: usize = 128;

/// A user ready to be written.
#[derive(Debug)]
pub struct Parsed {
    pub account: Jid,
    pub creds: Option<StoredCredentials>,
    /// Why there are no credentials, when the file had some Switchyard cannot use.
    pub no_creds: Option<String>,
    pub sha1_only: bool,
    pub roster: Vec<RosterItem>,
    /// Pending inbound subscription requests: contact, stored stanza.
    pub pending: Vec<(Jid, String)>,
    pub vcard: Option<String>,
    /// Private XML: document key, element.
    pub private: Vec<(String, String)>,
    pub offline: Vec<String>,
    pub ban: Option<Ban>,
    /// Items left out, with why.
    pub notes: Vec<String>,
    /// Things imported that the operator should know about.
    pub warnings: Vec<String>,
    /// Elements the format carried that Switchyard does not keep.
    pub skipped: BTreeMap<String, usize>,
}

/// Reads one user of `host`; `Err` says why it cannot be imported at all.
pub fn parse(host: &str, user: &Element, options: &ImportOptions) -> Result<Parsed, String> {
    let account = account(host, user, options)?;
    let mut parsed = Parsed {
        account,
        creds: None,
        no_creds: None,
        sha1_only: false,
        roster: Vec::new(),
        pending: Vec::new(),
        vcard: None,
        private: Vec::new(),
        offline: Vec::new(),
        ban: None,
        notes: Vec::new(),
        warnings: Vec::new(),
        skipped: BTreeMap::new(),
    };
    credentials(user, options, &mut parsed)?;
    let mut contacts = HashSet::new();
    for child in user.children() {
        match (child.name(), child.ns()) {
            ("scram-credentials", PIE_SCRAM) => {}
            ("query", ns::ROSTER) => {
                for item in child.children().filter(|i| i.is("item", ns::ROSTER)) {
                    match roster_item(&parsed.account, item, options) {
                        Ok(row) if contacts.insert(row.jid.clone()) => parsed.roster.push(row),
                        Ok(row) => parsed
                            .notes
                            .push(format!("roster item {} (listed twice)", row.jid)),
                        Err(why) => parsed.notes.push(why),
                    }
                }
            }
            ("presence", n) if n == ns::CLIENT || n.is_empty() || is_pie(n) => {
                match pending_request(&parsed.account, child) {
                    Some(request) => parsed.pending.push(request),
                    None => parsed
                        .notes
                        .push("a presence that is not a subscription request".into()),
                }
            }
            ("vCard", ns::VCARD) => {
                let xml = child.to_xml("");
                if parsed.vcard.is_some() {
                    parsed.notes.push("a second vCard".into());
                } else if xml.len() > options.max_vcard_bytes {
                    let max = options.max_vcard_bytes;
                    parsed
                        .notes
                        .push(format!("the vCard ({} bytes; at most {max})", xml.len()));
                } else {
                    parsed.vcard = Some(xml);
                }
            }
            ("query", ns::PRIVATE) => private(child, &mut parsed),
            ("offline-messages", n) if is_pie(n) => offline(child, &mut parsed),
            ("ban", PIE_BAN) => match ban(child) {
                _ if parsed.ban.is_some() => parsed.notes.push("a second ban".into()),
                Ok(b) => parsed.ban = Some(b),
                Err(why) => parsed.notes.push(why),
            },
            (name, n) => {
                let items = child.children().count().max(1);
                *parsed.skipped.entry(format!("{{{n}}}{name}")).or_default() += items;
            }
        }
    }
    Ok(parsed)
}

/// The longest ban reason kept (as the admin API).
const MAX_REASON_BYTES: usize = 1024;

/// The latest ban time taken: the end of year 9999 (RFC 3339 has four-digit years).
const MAX_SINCE: u64 = 253_402_300_799;

/// A ban as the admin API would have made it: a reason of at most 1024 bytes, a time
/// since the Unix epoch an RFC 3339 date can show.
fn ban(el: &Element) -> Result<Ban, String> {
    let reason = el.attr("reason").unwrap_or("").to_owned();
    if reason.len() > MAX_REASON_BYTES {
        return Err(format!(
            "the ban (its reason is over {MAX_REASON_BYTES} bytes)"
        ));
    }
    let since = el.attr("since").unwrap_or("");
    let since = since
        .parse::<u64>()
        .ok()
        .filter(|s| *s <= MAX_SINCE)
        .ok_or_else(|| {
            format!("the ban (since {since:?} is not seconds since 1970 up to year 9999)")
        })?;
    Ok(Ban { reason, since })
}

/// `name@host`, a bare JID of a served domain.
fn account(host: &str, user: &Element, options: &ImportOptions) -> Result<Jid, String> {
    let host = Jid::parse(host)
        .ok()
        .filter(|h| h.local().is_none() && h.is_bare())
        .ok_or_else(|| format!("the host {host:?} is not a domain"))?;
    let name = user.attr("name").ok_or("a <user> without a name")?;
    if name.is_empty() || name.contains(['@', '/']) {
        return Err(format!("the name {name:?} is not a localpart"));
    }
    let account = Jid::parse(&format!("{name}@{}", host.domain()))
        .map_err(|e| format!("the name {name:?} is not a localpart: {e}"))?;
    if !options.limits.domains.iter().any(|d| d == account.domain()) {
        return Err(format!("{} is not a served domain", account.domain()));
    }
    Ok(account)
}

/// SCRAM keys as given (a hash not given is absent), or keys derived from a plaintext
/// `password` attribute. Wrong keys refuse the user; none at all is left to the writer
/// (fine when merging into an existing account).
fn credentials(user: &Element, options: &ImportOptions, parsed: &mut Parsed) -> Result<(), String> {
    let mut sha1 = ScramKeys::absent();
    let mut sha256 = ScramKeys::absent();
    let mut others = Vec::new();
    for scram in user
        .children()
        .filter(|c| c.is("scram-credentials", PIE_SCRAM))
    {
        let mechanism = scram.attr("mechanism").unwrap_or("");
        let (alg, slot) = match mechanism {
            "SCRAM-SHA-1" => (HashAlg::Sha1, &mut sha1),
            "SCRAM-SHA-256" => (HashAlg::Sha256, &mut sha256),
            other => {
                others.push(other.to_owned());
                continue;
            }
        };
        if slot.is_usable() {
            parsed.notes.push(format!("a second {mechanism} key set"));
            continue;
        }
        *slot = scram_keys(scram, alg)?;
        if slot.iterations < MIN_ITERATIONS {
            parsed.warnings.push(format!(
                "its {mechanism} keys have {} iterations, below {MIN_ITERATIONS}: imported, but set a new password",
                slot.iterations
            ));
        }
    }
    if sha1.is_usable() || sha256.is_usable() {
        parsed.sha1_only = !sha256.is_usable();
        parsed.creds = Some(StoredCredentials { sha1, sha256 });
        return Ok(());
    }
    if let Some(password) = user.attr("password") {
        let creds = StoredCredentials::from_password(password, options.scram_iterations)
            .map_err(|e| format!("the password: {e}"))?;
        parsed.creds = Some(creds);
        return Ok(());
    }
    if !others.is_empty() {
        parsed.no_creds = Some(format!(
            "only {} keys, which Switchyard does not use (SCRAM-SHA-1, SCRAM-SHA-256): create the account with a new password, then import with --merge",
            others.join(", ")
        ));
    }
    Ok(())
}

fn scram_keys(scram: &Element, alg: HashAlg) -> Result<ScramKeys, String> {
    let field = |name: &str| {
        scram
            .child(name, PIE_SCRAM)
            .map(|f| f.text().trim().to_owned())
            .ok_or_else(|| format!("scram-credentials without {name}"))
    };
    let bytes = |name: &str| {
        B64.decode(field(name)?)
            .map_err(|_| format!("scram-credentials {name} is not base64"))
    };
    let iterations: u32 = field("iter-count")?
        .parse()
        .map_err(|_| "scram-credentials iter-count is not a number".to_owned())?;
    if !(1..=MAX_ITERATIONS).contains(&iterations) {
        return Err(format!(
            "scram-credentials iter-count {iterations} is not 1 to {MAX_ITERATIONS} (each login would cost that many HMACs)"
        ));
    }
    let keys = ScramKeys {
        salt: bytes("salt")?,
        iterations,
        stored_key: bytes("stored-key")?,
        server_key: bytes("server-key")?,
    };
    let size = alg.output_len();
    let salt_ok = (1..=MAX_SALT_BYTES).contains(&keys.salt.len());
    if !salt_ok || keys.stored_key.len() != size || keys.server_key.len() != size {
        return Err(format!(
            "scram-credentials with a salt not of 1 to {MAX_SALT_BYTES} bytes or keys that are not {size} bytes"
        ));
    }
    Ok(keys)
}

/// A roster row as listed (RFC 6121 §2.1.2), within the limits of §2.3.3.
fn roster_item(
    account: &Jid,
    item: &Element,
    options: &ImportOptions,
) -> Result<RosterItem, String> {
    let given = item.attr("jid").unwrap_or("");
    let refuse = |why: &str| format!("roster item {given:?} ({why})");
    let contact = Jid::parse(given).map_err(|_| refuse("not a JID"))?;
    if !contact.is_bare() || contact == *account {
        return Err(refuse("not another account's bare JID"));
    }
    let subscription = match item.attr("subscription") {
        None => Subscription::None,
        Some(s) => Subscription::parse(s)
            .ok_or_else(|| refuse("its subscription is not none, to, from or both"))?,
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
    data::check_roster_item(name.as_deref(), &groups, &options.limits)
        .map_err(|e| refuse(e.text.as_deref().unwrap_or(e.condition.as_str())))?;
    let mut row = RosterItem::new(contact);
    row.name = name;
    row.groups = groups;
    row.subscription = subscription;
    row.ask = item.attr("ask") == Some("subscribe");
    row.approved = matches!(item.attr("approved"), Some("true" | "1"));
    row.listed = true;
    Ok(row)
}

/// A pending inbound subscription request (`<presence type='subscribe' from='…'/>`),
/// kept on the contact's row and redelivered at the next login (RFC 6121 §3.1.3). Ours
/// is kept as it was stored; another server's (Prosody's is in its own namespace,
/// without `to`) is written as a client stanza to the account.
fn pending_request(account: &Jid, presence: &Element) -> Option<(Jid, String)> {
    if presence.attr("type") != Some("subscribe") {
        return None;
    }
    let from = presence
        .attr("from")
        .and_then(|j| Jid::parse(j).ok())?
        .bare();
    if from == *account {
        return None;
    }
    let request = match presence.ns() {
        ns::CLIENT => presence.to_xml(""),
        _ => Element::new("presence", ns::CLIENT)
            .with_attr("from", from.to_string())
            .with_attr("to", account.to_string())
            .with_attr("type", "subscribe")
            .to_xml(""),
    };
    Some((from, request))
}

/// XEP-0049 documents: only namespaces a client could store, each once.
fn private(query: &Element, parsed: &mut Parsed) {
    let mut keys = HashSet::new();
    for stored in query.children() {
        let key = data::private_key(stored);
        if !data::private_storable(stored) {
            parsed.notes.push(format!(
                "private XML in {} (a namespace the protocol uses)",
                stored.ns()
            ));
        } else if !keys.insert(key.clone()) {
            parsed
                .notes
                .push(format!("a second private XML document in {}", stored.ns()));
        } else {
            parsed.private.push((key, stored.to_xml("")));
        }
    }
}

/// XEP-0160 messages, oldest first: `jabber:client` messages of a type that is stored
/// (normal or chat; RFC 6121 §8.5.2 stores no headline, groupchat or error), from a
/// valid JID, to this account. One without an XEP-0203 delay gets one (stored now, by
/// this domain), so clients do not show it as live.
fn offline(list: &Element, parsed: &mut Parsed) {
    for message in list.children() {
        let why = if !message.is("message", ns::CLIENT) {
            Some(format!(
                "it is a {{{}}}{}, not a jabber:client message",
                message.ns(),
                message.name()
            ))
        } else if !matches!(message.attr("type"), None | Some("normal" | "chat")) {
            Some("only normal and chat messages are stored".to_owned())
        } else if message.attr("from").is_none_or(|f| Jid::parse(f).is_err()) {
            Some("no valid from".to_owned())
        } else if !message
            .attr("to")
            .map(Jid::parse)
            .is_none_or(|to| to.is_ok_and(|to| to.bare() == parsed.account))
        {
            Some("it is to another address".to_owned())
        } else {
            None
        };
        if let Some(why) = why {
            let id = message.attr("id").unwrap_or("");
            parsed
                .notes
                .push(format!("an offline message (id {id:?}): {why}"));
            continue;
        }
        let mut message = message.clone();
        if message.attr("to").is_none() {
            message.set_attr("to", parsed.account.to_string());
        }
        if message.child("delay", ns::DELAY).is_none() {
            let stamp = switchyard_core::time::datetime(std::time::SystemTime::now());
            message.push_child(
                Element::new("delay", ns::DELAY)
                    .with_attr("from", parsed.account.domain())
                    .with_attr("stamp", stamp)
                    .with_text("Offline Storage"),
            );
        }
        parsed.offline.push(message.to_xml(""));
    }
}

/// What makes two offline messages the same one for `--merge`: the message without its
/// XEP-0203 delay (an import stamps one on a message that had none).
pub fn same_message_key(xml: &str) -> String {
    let Ok(message) = Element::parse(xml) else {
        return xml.to_owned();
    };
    let mut key = Element::new(message.name(), message.ns());
    for (name, value) in message.attrs() {
        key.set_attr(name, value);
    }
    for child in message.children().filter(|c| !c.is("delay", ns::DELAY)) {
        key.push_child(child.clone());
    }
    key.to_xml("")
}
