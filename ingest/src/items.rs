//! Every open flag and incident of each micro-grid, the most urgent first,
//! kept beside the roll-up and served a page at a time on
//! [`ITEMS_SUBJECT`]: a micro-grid's state lists only the few most urgent
//! (`status.detail_items`), so its size is bounded however many are open.
//!
//! The processor writes the lists of a micro-grid whenever its metrics
//! move; the service task reads them under a short read lock.

use futures::StreamExt;
use gridwatch_model::Registry;
use gridwatch_model::api::{ITEMS_PAGE_MAX, ITEMS_SUBJECT, ItemKind, ItemsPage, ItemsQuery};
use gridwatch_model::state::{FlagOpen, IncidentOpen};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio_util::sync::CancellationToken;

use crate::error::IngestError;

/// The open items of one micro-grid, the most urgent first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpenItems {
    pub flags: Vec<FlagOpen>,
    pub incidents: Vec<IncidentOpen>,
}

/// Registry index of a micro-grid → its open items (absent: none open).
#[derive(Clone, Debug, Default)]
pub struct ItemIndex(Arc<RwLock<HashMap<u32, Arc<OpenItems>>>>);

impl ItemIndex {
    /// Sets the items of micro-grid `node` (registry index).
    pub fn set(&self, node: u32, items: OpenItems) {
        // A poisoned lock only means a reader panicked: the map is whole.
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        if items.flags.is_empty() && items.incidents.is_empty() {
            map.remove(&node);
        } else {
            map.insert(node, Arc::new(items));
        }
    }

    /// The items of micro-grid `node`.
    pub fn get(&self, node: u32) -> Arc<OpenItems> {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        map.get(&node).cloned().unwrap_or_default()
    }
}

/// Answers one query (its JSON); a bad query gets a page with `error`.
pub fn answer(reg: &Registry, index: &ItemIndex, query: &[u8]) -> ItemsPage {
    let refuse = |node: String, e: String| ItemsPage {
        node,
        error: Some(e),
        ..Default::default()
    };
    let q: ItemsQuery = match serde_json::from_slice(query) {
        Ok(q) => q,
        Err(e) => return refuse(String::new(), format!("not an items query: {e}")),
    };
    if q.limit == 0 || q.limit > ITEMS_PAGE_MAX {
        return refuse(q.node, format!("limit must be 1–{ITEMS_PAGE_MAX}"));
    }
    let Some(i) = reg.lookup(&q.node) else {
        return refuse(q.node.clone(), format!("unknown node `{}`", q.node));
    };
    if reg.node(i).mg.is_none() {
        return refuse(q.node, "only a micro-grid has items".into());
    }
    let items = index.get(i);
    let page = |n: usize| q.offset.min(n)..q.offset.saturating_add(q.limit).min(n);
    let mut out = ItemsPage {
        node: q.node,
        offset: q.offset,
        ..Default::default()
    };
    match q.kind {
        ItemKind::Flags => {
            out.total = items.flags.len() as u64;
            out.flags = items.flags[page(items.flags.len())].to_vec();
        }
        ItemKind::Incidents => {
            out.total = items.incidents.len() as u64;
            out.incidents = items.incidents[page(items.incidents.len())].to_vec();
        }
    }
    out
}

/// Answers queries on [`ITEMS_SUBJECT`] until `stop`.
pub async fn serve(
    client: async_nats::Client,
    reg: Arc<Registry>,
    index: ItemIndex,
    stop: CancellationToken,
) -> Result<(), IngestError> {
    let mut sub = client
        .queue_subscribe(ITEMS_SUBJECT, "gridwatch-ingest".into())
        .await
        .map_err(IngestError::nats)?;
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            m = sub.next() => match m {
                Some(m) => m,
                None => return Ok(()),
            },
        };
        let Some(reply) = msg.reply else { continue };
        let page = answer(&reg, &index, &msg.payload);
        let bytes = match serde_json::to_vec(&page) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "serializing an items page");
                continue;
            }
        };
        if let Err(e) = client.publish(reply, bytes.into()).await {
            tracing::warn!(error = %e, "answering an items query");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridwatch_model::event::{FlagKind, IncidentAction};

    fn flag(id: &str) -> FlagOpen {
        FlagOpen {
            flag_id: id.into(),
            kind: FlagKind::Gathering,
            severity: 1,
            raised: "2022-10-15T09:00:00+08:00".into(),
        }
    }

    #[test]
    fn pages_through_every_item_and_refuses_bad_queries() {
        let reg = gridwatch_runtime::registry::load(None).expect("registry");
        let index = ItemIndex::default();
        let mg = reg.microgrids[0];
        let node = reg.node(mg).id.to_string();
        let flags: Vec<FlagOpen> = (0..1234).map(|k| flag(&format!("f{k:04}"))).collect();
        index.set(
            mg,
            OpenItems {
                flags: flags.clone(),
                incidents: vec![IncidentOpen {
                    incident_id: "i1".into(),
                    level: 3,
                    category: "c".into(),
                    reported: "2022-10-15T09:00:00+08:00".into(),
                    last_action: IncidentAction::Reported,
                }],
            },
        );
        let ask = |kind: &str, offset: usize, limit: usize| {
            let q =
                format!(r#"{{"node":"{node}","kind":"{kind}","offset":{offset},"limit":{limit}}}"#);
            answer(&reg, &index, q.as_bytes())
        };
        let mut got = Vec::new();
        let mut offset = 0;
        loop {
            let p = ask("flags", offset, ITEMS_PAGE_MAX);
            assert_eq!((p.total, p.error.as_deref()), (1234, None));
            if p.flags.is_empty() {
                break;
            }
            offset += p.flags.len();
            got.extend(p.flags);
        }
        assert_eq!(got, flags);
        assert_eq!(ask("incidents", 0, 10).incidents.len(), 1);
        assert!(ask("flags", 0, ITEMS_PAGE_MAX + 1).error.is_some());
        assert!(ask("flags", 0, 0).error.is_some());
        assert!(ask("flags", usize::MAX, 10).flags.is_empty());
        let district = r#"{"node":"beilun","kind":"flags","limit":5}"#;
        assert!(answer(&reg, &index, district.as_bytes()).error.is_some());
        assert!(answer(&reg, &index, b"{").error.is_some());
        // Closing the last one removes the micro-grid from the index.
        index.set(mg, OpenItems::default());
        assert_eq!(ask("flags", 0, 10).total, 0);
    }
}
