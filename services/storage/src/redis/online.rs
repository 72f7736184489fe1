//! The cluster-wide session listing: every edge's index set (`{edge:NAME}:i`, one entry
//! per session), read with SSCAN edge by edge in name order, so a page costs a few
//! round trips whatever the cluster's size and nothing is held between pages.
//!
//! The cursor is `SSCAN-cursor:edge`. SSCAN guarantees every entry present for the
//! whole scan is returned at least once; an entry may come twice (while Redis rehashes
//! the set), and entries added or removed meanwhile may or may not come.

use super::record::parse_member;
use super::RedisRegistry;
use crate::traits::{Online, OnlinePage};
use crate::StorageError;

/// SSCAN calls one page may make before it returns what it has (with a cursor), so a
/// filter that matches little cannot make one request walk the whole registry.
const SCANS_PER_PAGE: usize = 64;

impl RedisRegistry {
    pub(super) async fn online_page(
        &self,
        domain: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<OnlinePage, StorageError> {
        let mut edges = self.edge_names().await?;
        edges.sort();
        let (mut pos, mut at) = match cursor {
            None => (0u64, edges.first().cloned()),
            Some(c) => {
                let (pos, edge) = c
                    .split_once(':')
                    .and_then(|(p, e)| Some((p.parse().ok()?, e)))
                    .ok_or_else(|| StorageError::Invalid("not a session cursor".into()))?;
                (pos, Some(edge.to_owned()))
            }
        };
        let mut page = OnlinePage::default();
        for _ in 0..SCANS_PER_PAGE {
            let Some(edge) = at.clone() else { break };
            if page.sessions.len() >= limit {
                break;
            }
            let mut scan = redis::cmd("SSCAN");
            scan.arg(self.index_key(&edge))
                .arg(pos)
                .arg("COUNT")
                .arg(limit.clamp(10, 1000));
            let (next, entries): (u64, Vec<String>) = self.run(&scan).await?;
            let found = entries
                .iter()
                .filter_map(|e| parse_member(e))
                .filter(|(jid, _)| domain.is_none_or(|d| jid.domain() == d))
                .map(|(jid, conn)| Online {
                    jid,
                    edge: edge.clone(),
                    conn,
                });
            page.sessions.extend(found);
            pos = next;
            if next == 0 {
                at = edges.iter().find(|e| **e > edge).cloned();
            }
        }
        // SSCAN's COUNT is a hint: a page may come out a little over `limit`.
        page.next = at.map(|edge| format!("{pos}:{edge}"));
        Ok(page)
    }

    pub(super) async fn online_total(&self) -> Result<u64, StorageError> {
        let edges = self.edge_names().await?;
        let mut total = 0;
        for edge in edges {
            let mut count = redis::cmd("SCARD");
            count.arg(self.index_key(&edge));
            total += self.run::<u64>(&count).await?;
        }
        Ok(total)
    }

    async fn edge_names(&self) -> Result<Vec<String>, StorageError> {
        let mut members = redis::cmd("SMEMBERS");
        members.arg(self.edges_key());
        self.run(&members).await
    }
}
