//! Every open flag and incident of each micro-grid, the most urgent first,
//! kept beside the roll-up and served a page at a time on
//! [`ITEMS_SUBJECT`]: a micro-grid's state lists only the few most urgent
//! (`status.detail_items`), so its size is bounded however many are open.
//!
//! The processor writes the lists of a micro-grid whenever its metrics
//! move; the service task reads them under a short read lock.

use futures::StreamExt;
use gridwatch_model::Registry;
use gridwatch_model::api::{
    ITEMS_PAGE_MAX, ITEMS_SUBJECT, ItemKind, ItemsPage, ItemsQuery, OPEN_LIST_MAX, OPEN_SUBJECT,
    OUTCOME_SUBJECT, OpenIncident, OpenList, OpenOrder, OpenQuery, Outcome, OutcomeQuery,
};
use gridwatch_model::auth::in_scope;
use gridwatch_model::state::{FlagOpen, IncidentOpen};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use tokio_util::sync::CancellationToken;

use crate::error::IngestError;

/// The open items of one micro-grid, the most urgent first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpenItems {
    pub flags: Vec<FlagOpen>,
    pub incidents: Vec<IncidentOpen>,
}

/// How many outcomes of actions ingest recalls: far more than tablets send
/// in the minutes a retry can come.
pub const OUTCOMES_KEPT: usize = 20_000;

/// The outcomes of the newest actions (incident and video events sent with
/// a `Nats-Msg-Id`), oldest dropped first.
#[derive(Debug, Default)]
struct Outcomes {
    by_id: HashMap<String, Outcome>,
    order: VecDeque<String>,
}

/// Registry index of a micro-grid → its open items (absent: none open),
/// and what became of the newest actions.
#[derive(Clone, Debug, Default)]
pub struct ItemIndex {
    items: Arc<RwLock<HashMap<u32, Arc<OpenItems>>>>,
    outcomes: Arc<Mutex<Outcomes>>,
}

impl ItemIndex {
    /// Records what became of the action with event id `id`; the first
    /// word stays (a duplicate later does not change it).
    pub fn record(&self, id: &str, outcome: Outcome) {
        let mut o = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        if o.by_id.contains_key(id) {
            return;
        }
        if o.order.len() >= OUTCOMES_KEPT
            && let Some(old) = o.order.pop_front()
        {
            o.by_id.remove(&old);
        }
        o.order.push_back(id.to_string());
        o.by_id.insert(id.to_string(), outcome);
    }

    /// What became of the action `id`.
    pub fn outcome(&self, id: &str) -> Outcome {
        let o = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        o.by_id.get(id).cloned().unwrap_or(Outcome::Unknown)
    }

    /// Sets the items of micro-grid `node` (registry index).
    pub fn set(&self, node: u32, items: OpenItems) {
        // A poisoned lock only means a reader panicked: the map is whole.
        let mut map = self.items.write().unwrap_or_else(|p| p.into_inner());
        if items.flags.is_empty() && items.incidents.is_empty() {
            map.remove(&node);
        } else {
            map.insert(node, Arc::new(items));
        }
    }

    /// The items of micro-grid `node`.
    pub fn get(&self, node: u32) -> Arc<OpenItems> {
        let map = self.items.read().unwrap_or_else(|p| p.into_inner());
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
    let mut items = index.get(i);
    if let Some(id) = &q.id {
        items = Arc::new(OpenItems {
            flags: items
                .flags
                .iter()
                .filter(|f| &f.flag_id == id)
                .cloned()
                .collect(),
            incidents: items
                .incidents
                .iter()
                .filter(|f| &f.incident_id == id)
                .cloned()
                .collect(),
        });
    }
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

/// Answers an [`OpenQuery`] (its JSON): every open item under the node,
/// the soonest due first.
pub fn open_under(reg: &Registry, index: &ItemIndex, query: &[u8]) -> OpenList {
    let q: OpenQuery = match serde_json::from_slice(query) {
        Ok(q) => q,
        Err(e) => {
            return OpenList {
                error: Some(format!("not an open-items query: {e}")),
                ..Default::default()
            };
        }
    };
    let mut out = OpenList {
        node: q.node.clone(),
        ..Default::default()
    };
    if q.limit == 0 || q.limit > OPEN_LIST_MAX {
        out.error = Some(format!("limit must be 1–{OPEN_LIST_MAX}"));
        return out;
    }
    if reg.lookup(&q.node).is_none() {
        out.error = Some(format!("unknown node `{}`", q.node));
        return out;
    }
    let map = index.items.read().unwrap_or_else(|p| p.into_inner());
    for (&i, items) in map.iter() {
        let node = reg.node(i).id.as_str();
        if !in_scope(&q.node, node) {
            continue;
        }
        out.incidents
            .extend(items.incidents.iter().map(|inc| OpenIncident {
                node: node.to_string(),
                incident: inc.clone(),
            }));
        out.orders.extend(items.flags.iter().map(|f| OpenOrder {
            node: node.to_string(),
            order: f.clone(),
        }));
    }
    drop(map);
    out.incidents_total = out.incidents.len() as u64;
    out.orders_total = out.orders.len() as u64;
    // RFC 3339 at one offset sorts as time.
    out.incidents.sort_by(|a, b| {
        (
            &a.incident.due,
            &a.incident.reported,
            &a.incident.incident_id,
        )
            .cmp(&(
                &b.incident.due,
                &b.incident.reported,
                &b.incident.incident_id,
            ))
    });
    out.orders.sort_by(|a, b| {
        (&a.order.due, &a.order.raised, &a.order.flag_id).cmp(&(
            &b.order.due,
            &b.order.raised,
            &b.order.flag_id,
        ))
    });
    out.incidents.truncate(q.limit);
    out.orders.truncate(q.limit);
    out
}

/// Answers queries on [`ITEMS_SUBJECT`], [`OPEN_SUBJECT`] and
/// [`OUTCOME_SUBJECT`] until `stop`.
pub async fn serve(
    client: async_nats::Client,
    reg: Arc<Registry>,
    index: ItemIndex,
    stop: CancellationToken,
) -> Result<(), IngestError> {
    let items = client
        .queue_subscribe(ITEMS_SUBJECT, "gridwatch-ingest".into())
        .await
        .map_err(IngestError::nats)?;
    let outcomes = client
        .queue_subscribe(OUTCOME_SUBJECT, "gridwatch-ingest".into())
        .await
        .map_err(IngestError::nats)?;
    let open = client
        .queue_subscribe(OPEN_SUBJECT, "gridwatch-ingest".into())
        .await
        .map_err(IngestError::nats)?;
    let mut both = futures::stream::select(futures::stream::select(items, outcomes), open);
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            m = both.next() => match m {
                Some(m) => m,
                None => return Ok(()),
            },
        };
        let Some(reply) = msg.reply else { continue };
        let bytes = if msg.subject.as_str() == OUTCOME_SUBJECT {
            let outcome = match serde_json::from_slice::<OutcomeQuery>(&msg.payload) {
                Ok(q) => index.outcome(&q.id),
                Err(e) => Outcome::Rejected {
                    reason: "bad_query".into(),
                    detail: format!("not an outcome query: {e}"),
                },
            };
            serde_json::to_vec(&outcome)
        } else if msg.subject.as_str() == OPEN_SUBJECT {
            serde_json::to_vec(&open_under(&reg, &index, &msg.payload))
        } else {
            serde_json::to_vec(&answer(&reg, &index, &msg.payload))
        };
        let bytes = match bytes {
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
            number: format!("督-20221015-{id}"),
            due: "2022-10-15T10:00:00+08:00".into(),
            reopened: false,
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
                    owner: "beilun".into(),
                    due: "2022-10-15T16:00:00+08:00".into(),
                    transfer_due: None,
                    label: Some("medical".into()),
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
        // One item by id.
        let q = format!(r#"{{"node":"{node}","kind":"flags","limit":5,"id":"f0042"}}"#);
        let one = answer(&reg, &index, q.as_bytes());
        assert_eq!((one.total, one.flags[0].flag_id.as_str()), (1, "f0042"));
        assert!(ask("flags", 0, ITEMS_PAGE_MAX + 1).error.is_some());
        assert!(ask("flags", 0, 0).error.is_some());
        assert!(ask("flags", usize::MAX, 10).flags.is_empty());
        let district = r#"{"node":"beilun","kind":"flags","limit":5}"#;
        assert!(answer(&reg, &index, district.as_bytes()).error.is_some());
        assert!(answer(&reg, &index, b"{").error.is_some());
        // Outcomes: the first word stays, the oldest go first.
        index.record("a", Outcome::Applied);
        index.record("a", Outcome::Unknown);
        assert_eq!(index.outcome("a"), Outcome::Applied);
        for k in 0..OUTCOMES_KEPT {
            index.record(&format!("x{k}"), Outcome::Applied);
        }
        assert_eq!(index.outcome("a"), Outcome::Unknown);
        assert_eq!(index.outcome("x1"), Outcome::Applied);
        // Everything open under the district, the soonest due first.
        let all = open_under(&reg, &index, br#"{"node":"beilun","limit":3}"#);
        assert_eq!((all.orders_total, all.orders.len()), (1234, 3));
        assert_eq!(all.incidents[0].node, node);
        let street = node.split('/').take(2).collect::<Vec<_>>().join("/");
        let q = format!(r#"{{"node":"{street}","limit":500}}"#);
        assert_eq!(open_under(&reg, &index, q.as_bytes()).orders.len(), 500);
        let other = reg
            .nodes
            .iter()
            .map(|n| n.id.as_str())
            .find(|n| n.split('/').count() == 2 && !node.starts_with(&format!("{n}/")))
            .expect("another street");
        let q = format!(r#"{{"node":"{other}","limit":5}}"#);
        assert_eq!(open_under(&reg, &index, q.as_bytes()).orders_total, 0);
        assert!(
            open_under(&reg, &index, br#"{"node":"beilun","limit":0}"#)
                .error
                .is_some()
        );
        // Closing the last one removes the micro-grid from the index.
        index.set(mg, OpenItems::default());
        assert_eq!(ask("flags", 0, 10).total, 0);
    }
}
