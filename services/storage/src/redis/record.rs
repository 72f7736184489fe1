//! The stored form of a session record: JSON in the account's hash, under the resource.
//! The full JID is the key and field, so it is not repeated inside. A record changes in
//! place by compare-and-swap on that text ([`RedisRegistry::swap`]).

use super::{resource, RedisRegistry};
use crate::traits::SessionRecord;
use crate::{Presence, StorageError};
use serde::{Deserialize, Serialize};
use switchyard_core::Jid;

#[derive(Serialize, Deserialize)]
struct Stored {
    edge: String,
    conn: u64,
    priority: Option<i8>,
    presence: Option<String>,
    carbons: bool,
    interested: bool,
    directed: Vec<String>,
}

impl Stored {
    fn of(r: &SessionRecord) -> Self {
        Self {
            edge: r.edge.clone(),
            conn: r.conn,
            priority: r.presence.as_ref().map(|p| p.priority),
            presence: r.presence.as_ref().map(|p| p.stanza.clone()),
            carbons: r.carbons,
            interested: r.interested,
            directed: r.directed.iter().map(Jid::to_string).collect(),
        }
    }

    fn record(self, jid: Jid) -> SessionRecord {
        let presence = match (self.priority, self.presence) {
            (Some(priority), Some(stanza)) => Some(Presence { priority, stanza }),
            _ => None,
        };
        SessionRecord {
            jid,
            edge: self.edge,
            conn: self.conn,
            presence,
            carbons: self.carbons,
            interested: self.interested,
            directed: self
                .directed
                .iter()
                .filter_map(|d| Jid::parse(d).ok())
                .collect(),
        }
    }
}

pub(super) fn decode(jid: Jid, json: &str) -> Result<SessionRecord, StorageError> {
    let stored: Stored = serde_json::from_str(json).map_err(super::unavailable)?;
    Ok(stored.record(jid))
}

pub(super) fn encode(r: &SessionRecord) -> String {
    serde_json::to_string(&Stored::of(r)).expect("plain data serializes")
}

/// An edge index entry: `full JID \n connection id`.
pub(super) fn member(jid: &Jid, conn: u64) -> String {
    format!("{jid}\n{conn}")
}

/// The session an index entry names; `None` for an entry that is not one.
pub(super) fn parse_member(entry: &str) -> Option<(Jid, u64)> {
    let (jid, conn) = entry.split_once('\n')?;
    Some((Jid::parse(jid).ok()?, conn.parse().ok()?))
}

impl RedisRegistry {
    /// The stored record of `jid` under `key`, with its exact text (what a swap compares).
    pub(super) async fn stored(
        &self,
        key: &str,
        jid: &Jid,
    ) -> Result<Option<(String, SessionRecord)>, StorageError> {
        let mut get = redis::cmd("HGET");
        get.arg(key).arg(resource(jid));
        let Some(json) = self.run::<Option<String>>(&get).await? else {
            return Ok(None);
        };
        let record = decode(jid.clone(), &json)?;
        Ok(Some((json, record)))
    }

    /// Writes `record` in place of `json`, announcing it, if nothing changed it meanwhile.
    pub(super) async fn swap(
        &self,
        key: &str,
        jid: &Jid,
        json: &str,
        record: &SessionRecord,
    ) -> Result<bool, StorageError> {
        let (channel, bare_text) = (self.changes_channel(), jid.bare().to_string());
        let args = [resource(jid), json, &encode(record), &channel, &bare_text];
        let swapped: i64 = self.script(&self.swap_script, key, &args).await?;
        Ok(swapped == 1)
    }
}
