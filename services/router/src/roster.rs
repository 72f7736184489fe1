//! Roster management (RFC 6121 §2) with versioning (§2.6).
//!
//! - §2.1.3 get: the listed items and the current `ver`. With a `ver` the server knows
//!   (§2.6.3), an empty result and one push per row changed since, removals included —
//!   every row keeps the version of its last change, and removed items stay as unlisted
//!   tombstones so a removal can still be pushed. An unknown or newer `ver` gets the
//!   whole roster.
//! - §2.1.5 set: exactly one `<item/>` (`bad-request`), distinct groups (`bad-request`),
//!   name and groups non-empty and bounded (`not-acceptable`, §2.3.3: a `name` or a
//!   `<group/>` longer than a server-configured limit; `max_roster_name_bytes`,
//!   `max_roster_group_bytes`), and at most `max_roster_groups` groups per item (the RFC
//!   names no limit; the same `not-acceptable`, RFC 6120 §8.3.3.12). These bound a row to
//!   name + groups × group name bytes beside the contact's JID, and a roster to
//!   `max_roster_items` rows. `subscription` values other than `remove` are ignored, as
//!   are `ask` and `approved`. The item is stored as sent and pushed to every interested
//!   resource (§2.2, §2.3.2).
//! - §2.5 remove: pushes `subscription='remove'` and cancels subscriptions both ways;
//!   removing an item that is not there is `item-not-found` (§2.5.3).
//! - Policy: the account's own JID cannot be an item, and a roster holds at most
//!   `max_roster_items` rows (`not-allowed`, §2.3.3 leaves this to the server).

use crate::config::RouterConfig;
use crate::effects::{Effect, Effects};
use crate::handler::{storage_failed, Answer, Outcome};
use crate::router::Router;
use crate::subscription::Kind;
use switchyard_core::{ns, token, Element, Jid, Stanza, StanzaCondition, StanzaError};
use switchyard_storage::RosterItem;

fn error(condition: StanzaCondition, text: &str) -> StanzaError {
    StanzaError::new(condition).with_text(text)
}

/// The `<item/>` clients see for a row (§2.1.2); unlisted rows are removals.
pub fn item_element(item: &RosterItem) -> Element {
    let mut el = Element::new("item", ns::ROSTER).with_attr("jid", item.jid.to_string());
    if !item.listed {
        el.set_attr("subscription", "remove");
        return el;
    }
    el.set_attr("subscription", item.subscription.as_str());
    if let Some(name) = &item.name {
        el.set_attr("name", name.as_str());
    }
    if item.ask {
        el.set_attr("ask", "subscribe");
    }
    if item.approved {
        el.set_attr("approved", "true");
    }
    for group in &item.groups {
        el.push_child(Element::new("group", ns::ROSTER).with_text(group.as_str()));
    }
    el
}

fn query(version: u64) -> Element {
    Element::new("query", ns::ROSTER).with_attr("ver", version.to_string())
}

/// A roster push of one row to one resource (§2.1.6), carrying the row's version.
fn push(to: &Jid, item: &RosterItem) -> Element {
    Element::new("iq", ns::CLIENT)
        .with_attr("type", "set")
        .with_attr("id", format!("push-{}", token::token(12)))
        .with_attr("to", to.to_string())
        .with_child(query(item.version).with_child(item_element(item)))
}

impl Router {
    /// Every row of an account's roster; storage trouble is logged and reads as empty.
    pub(crate) async fn roster_rows(&self, account: &Jid) -> Vec<RosterItem> {
        match self.stores.rosters.roster(account).await {
            Ok(roster) => roster.items,
            Err(e) => {
                tracing::warn!(error = %e, "roster read failed");
                Vec::new()
            }
        }
    }
}

/// §2.1.6 roster push to every resource that requested the roster.
pub(crate) async fn pushes(router: &Router, account: &Jid, item: &RosterItem) -> Effects {
    let mut fx = Effects::none();
    for s in router
        .sessions(account)
        .await
        .iter()
        .filter(|s| s.interested)
    {
        fx.deliver(s, push(&s.jid, item));
    }
    fx
}

/// §2.1.5: only the owner may read or edit a roster.
fn owner_only(stanza: &Stanza) -> Result<(), StanzaError> {
    if stanza.effective_to() != stanza.from.bare() {
        return Err(StanzaError::new(StanzaCondition::Forbidden));
    }
    Ok(())
}

pub(crate) async fn get(router: &Router, stanza: &Stanza) -> Outcome {
    owner_only(stanza)?;
    let account = stanza.from.bare();
    let request = stanza.payload().expect("dispatched with a payload");
    if request.children().next().is_some() {
        return Err(StanzaError::new(StanzaCondition::BadRequest));
    }
    let roster = router
        .stores
        .rosters
        .roster(&account)
        .await
        .map_err(storage_failed("roster"))?;
    let mut before = Effects::none();
    if let Some(me) = router.session(&stanza.from).await {
        before.update(&me, Box::new(|r| r.interested = true));
    }
    let known = request
        .attr("ver")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|v| *v <= roster.version);
    if let Some(since) = known {
        let mut changed: Vec<&RosterItem> =
            roster.items.iter().filter(|i| i.version > since).collect();
        changed.sort_by_key(|i| i.version); // §2.6.3: in the order of modification
        let then = changed
            .iter()
            .map(|item| push(&stanza.from, item))
            .collect();
        return Ok(Answer {
            before,
            payload: None,
            then,
        });
    }
    let mut result = query(roster.version);
    for item in roster.items.iter().filter(|i| i.listed) {
        result.push_child(item_element(item));
    }
    Ok(Answer {
        before,
        ..Answer::with(result)
    })
}

/// §2.3.3: a name and groups within the configured limits, groups distinct and not
/// empty, and at most `max_roster_groups` of them.
pub fn check_item(
    name: Option<&str>,
    groups: &[String],
    limits: &RouterConfig,
) -> Result<(), StanzaError> {
    if name.is_some_and(|n| n.len() > limits.max_roster_name_bytes) {
        return Err(error(
            StanzaCondition::NotAcceptable,
            "the name is too long",
        ));
    }
    // Counted before the duplicate check, which is quadratic in the groups.
    if groups.len() > limits.max_roster_groups {
        return Err(error(StanzaCondition::NotAcceptable, "too many groups"));
    }
    for (at, g) in groups.iter().enumerate() {
        if g.is_empty() || g.len() > limits.max_roster_group_bytes {
            return Err(error(
                StanzaCondition::NotAcceptable,
                "a group name is empty or too long",
            ));
        }
        if groups[..at].contains(g) {
            return Err(error(StanzaCondition::BadRequest, "duplicate group"));
        }
    }
    Ok(())
}

/// A validated roster set.
struct Requested {
    jid: Jid,
    remove: bool,
    name: Option<String>,
    groups: Vec<String>,
}

fn parse_set(stanza: &Stanza, limits: &RouterConfig) -> Result<Requested, StanzaError> {
    let request = stanza.payload().expect("dispatched with a payload");
    let items: Vec<&Element> = request.children().collect();
    let [item] = items.as_slice() else {
        return Err(error(
            StanzaCondition::BadRequest,
            "a roster set carries exactly one item",
        ));
    };
    if !item.is("item", ns::ROSTER) {
        return Err(StanzaError::new(StanzaCondition::BadRequest));
    }
    let jid = item
        .attr("jid")
        .and_then(|j| Jid::parse(j).ok())
        .ok_or_else(|| StanzaError::new(StanzaCondition::JidMalformed))?;
    let name = item
        .attr("name")
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    let groups: Vec<String> = item
        .children()
        .filter(|g| g.is("group", ns::ROSTER))
        .take(limits.max_roster_groups + 1)
        .map(Element::text)
        .collect();
    check_item(name.as_deref(), &groups, limits)?;
    Ok(Requested {
        jid,
        remove: item.attr("subscription") == Some("remove"),
        name,
        groups,
    })
}

pub(crate) async fn set(router: &Router, stanza: &Stanza) -> Outcome {
    owner_only(stanza)?;
    let account = stanza.from.bare();
    let req = parse_set(stanza, &router.config)?;
    if req.jid == account {
        return Err(error(
            StanzaCondition::NotAllowed,
            "an account cannot list itself",
        ));
    }
    let rosters = &router.stores.rosters;
    if req.remove {
        return remove(router, &stanza.from, &account, &req.jid).await;
    }
    let roster = rosters
        .roster(&account)
        .await
        .map_err(storage_failed("roster"))?;
    let exists = roster.items.iter().any(|i| i.jid == req.jid);
    if !exists && roster.items.len() >= router.config.max_roster_items {
        return Err(error(StanzaCondition::NotAllowed, "the roster is full"));
    }
    let (name, groups, jid) = (req.name, req.groups, req.jid.clone());
    let edit = Box::new(move |row: Option<RosterItem>| {
        let mut row = row.unwrap_or_else(|| RosterItem::new(jid));
        row.name = name;
        row.groups = groups;
        row.listed = true;
        Some(row)
    });
    let update = rosters
        .update(&account, &req.jid, edit)
        .await
        .map_err(storage_failed("roster"))?;
    let pushed = match &update.after {
        Some(after) => pushes(router, &account, after).await,
        None => Effects::none(),
    };
    Ok(Answer::after(pushed))
}

/// §2.5.2: unsubscribe and unsubscribed as owed (from `from`, the user), then the row
/// becomes a tombstone.
pub(crate) async fn remove(router: &Router, from: &Jid, account: &Jid, contact: &Jid) -> Outcome {
    let row = router
        .stores
        .rosters
        .item(account, contact)
        .await
        .map_err(storage_failed("roster"))?;
    let Some(row) = row.filter(|r| r.listed) else {
        return Err(StanzaError::new(StanzaCondition::ItemNotFound));
    };
    let cancel = |kind: Kind| {
        let el = Element::new("presence", ns::CLIENT)
            .with_attr("from", from.to_string())
            .with_attr("to", contact.to_string())
            .with_attr("type", kind.as_str());
        Stanza::from_element(el).expect("well-formed presence")
    };
    // Routed like stanzas the user sent, before the row becomes a tombstone; the
    // tombstone's push comes after the pushes they cause.
    let mut fx = Effects::none();
    if row.subscription.has_to() || row.ask {
        fx.push(Effect::Route(cancel(Kind::Unsubscribe)));
    }
    if row.subscription.has_from() || row.pending_in.is_some() {
        fx.push(Effect::Route(cancel(Kind::Unsubscribed)));
    }
    let edit = Box::new(|row: Option<RosterItem>| {
        let mut row = row?;
        row.listed = false;
        row.approved = false;
        row.name = None;
        row.groups.clear();
        Some(row)
    });
    let update = router
        .stores
        .rosters
        .update(account, contact, edit)
        .await
        .map_err(storage_failed("roster"))?;
    if let Some(after) = &update.after {
        fx.append(pushes(router, account, after).await);
    }
    Ok(Answer::after(fx))
}
