//! The exact live state: what every applied event changed, per micro-grid,
//! plus the ids seen (dedupe), open flags, incidents and zone designations.
//! It is the unit of checkpointing: the state and the stream sequence it
//! covers are saved together.
//!
//! Counting parts of events (patrols, samples, flags raised …) are not added
//! here but returned as [`Row`]s; the batch aggregates them with polars into
//! per-minute buckets ([`crate::aggregate::fold_batch`]).

use chrono::{DateTime, Datelike};
use gridwatch_model::event::{EventBody, Findings, ParseError, Reason};
use gridwatch_model::{Registry, Zone};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

use crate::disposal::DisposalConfig;
pub use crate::disposal::{IncidentRec, OpenFlag};
use crate::validate::Valid;

/// Per-minute counts of one micro-grid; also one row of Parquet history.
/// Sums of fields with a limit ([`gridwatch_model::limits`]) in `u64`,
/// added saturating: no count from the network can overflow or panic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub patrols: u64,
    pub persons: u64,
    pub findings: Findings,
    pub samples: u64,
    pub reports: u64,
    pub raised: u64,
    pub rectified: u64,
    pub reported: u64,
    pub resolved: u64,
}

impl Bucket {
    /// Field-wise sum.
    pub fn add(&mut self, o: &Bucket) {
        self.patrols = self.patrols.saturating_add(o.patrols);
        self.persons = self.persons.saturating_add(o.persons);
        self.findings.add(&o.findings);
        self.samples = self.samples.saturating_add(o.samples);
        self.reports = self.reports.saturating_add(o.reports);
        self.raised = self.raised.saturating_add(o.raised);
        self.rectified = self.rectified.saturating_add(o.rectified);
        self.reported = self.reported.saturating_add(o.reported);
        self.resolved = self.resolved.saturating_add(o.resolved);
    }
}

/// The counting part of one applied event.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    /// Micro-grid ordinal.
    pub mg: u32,
    /// Epoch minute of the event time.
    pub minute: i64,
    pub counts: Bucket,
}

/// State of one micro-grid.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Mg {
    /// Epoch minute → counts; pruned to the last two local days.
    pub buckets: BTreeMap<i64, Bucket>,
    /// (event time, persons) of patrols in the last 2 h, for exact windows.
    pub recent_patrols: Vec<(i64, u32)>,
    /// (event time, samples) of testing reports in the last 10 min.
    pub recent_samples: Vec<(i64, u32)>,
    /// Newest patrol event time.
    pub last_patrol: Option<i64>,
    /// Newest testing report: (event time, queue).
    pub queue: Option<(i64, u32)>,
    /// (rectified at, minutes open) of flags rectified recently.
    pub rectified: Vec<(i64, f64)>,
    /// Flags open on it now.
    pub open_flags: u32,
    /// Incidents open on it now.
    pub open_incidents: u32,
    /// (resolved at, minutes from the report) of incidents resolved
    /// recently.
    pub resolved: Vec<(i64, f64)>,
}

/// A zone designation on a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Designation {
    pub ts: i64,
    pub zone: Zone,
    pub event_id: String,
    pub reason: String,
}

/// A dead letter not yet stored, as a snapshot keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDead {
    pub seq: u64,
    pub subject: String,
    pub reason: Reason,
    pub detail: String,
    pub payload: Vec<u8>,
}

/// Counters exported as metrics.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Counters {
    pub applied: u64,
    pub duplicates: u64,
    pub redelivered: u64,
    pub dlq: BTreeMap<String, u64>,
}

/// What became of one message.
#[derive(Debug)]
pub enum Outcome {
    /// Applied; its counting part, if any.
    Applied(Option<Row>),
    /// Its id was seen before: counted once.
    Duplicate,
    /// Rejected: goes to the DLQ.
    DeadLetter(ParseError),
}

/// Maps registry nodes to micro-grid ordinals and back, with the paths
/// the disposal loop moves incidents along and its rules.
#[derive(Clone, Debug)]
pub struct Topology {
    /// Registry index of each micro-grid ordinal.
    pub mg_node: Vec<u32>,
    /// Micro-grid ordinal of each registry index (`u32::MAX` for others).
    pub ordinal: Vec<u32>,
    /// The path (district … micro-grid) of each micro-grid ordinal.
    pub paths: Vec<[u32; 5]>,
    pub rules: DisposalConfig,
}

impl Topology {
    /// Builds the maps for a registry, with the default loop rules.
    pub fn new(reg: &Registry) -> Self {
        let mut ordinal = vec![u32::MAX; reg.nodes.len()];
        for (o, &n) in reg.microgrids.iter().enumerate() {
            ordinal[n as usize] = o as u32;
        }
        Self {
            mg_node: reg.microgrids.clone(),
            ordinal,
            paths: reg
                .microgrids
                .iter()
                .map(|&i| reg.node(i).mg.as_ref().map(|m| m.path).unwrap_or_default())
                .collect(),
            rules: DisposalConfig::default(),
        }
    }

    /// The same maps with these loop rules.
    pub fn with_rules(mut self, rules: DisposalConfig) -> Self {
        self.rules = rules;
        self
    }
}

/// The live state.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LiveState {
    /// The last stream sequence applied (or dead-lettered).
    pub last_seq: u64,
    /// Newest applied event time.
    pub watermark: Option<i64>,
    /// The replay clock: the newest tick seen on `gw.clock`.
    pub replay_now: Option<i64>,
    /// Event id → event time, for dedupe within the allowed lateness.
    pub seen: HashMap<String, i64>,
    pub mgs: Vec<Mg>,
    /// Supervision orders by flag id: open ones, and rectified ones for a
    /// while (a reopen needs them).
    pub flags: HashMap<String, OpenFlag>,
    pub incidents: HashMap<String, IncidentRec>,
    /// Local day (`YYYYMMDD`) → orders numbered that day.
    pub orders_per_day: BTreeMap<u32, u32>,
    /// Registry index → the designation in force on that node (the
    /// history of designations is the stream's `gw.ev.zone.>` itself).
    pub zones: HashMap<u32, Designation>,
    /// Registry index → its designations by (time, id), for as long as an
    /// event can arrive late and the newest before that: the zone a
    /// history row's micro-grid was in at its minute.
    pub zone_log: HashMap<u32, Vec<Designation>>,
    /// Incident, order and zone events applied and not yet written to
    /// the history's event tables (with the per-minute rows' parts).
    pub pending_events: crate::history::EventRows,
    pub counters: Counters,
    /// Per-minute deltas not yet written to Parquet: (ordinal, minute).
    pub pending_history: BTreeMap<(u32, i64), Bucket>,
    /// First stream sequence the pending history covers.
    pub pending_from_seq: u64,
    /// Dead letters handed to the publisher and not yet settled, in order:
    /// a snapshot carries them, and a restart sends them again.
    pub unsettled_dead: std::collections::VecDeque<PendingDead>,
    /// The testing site of each micro-grid's newest testing report (by
    /// ordinal). Saved after the state in the checkpoint, so checkpoints
    /// written before it existed still load.
    #[serde(skip)]
    pub sites: Vec<Option<String>>,
}

impl LiveState {
    /// An empty state for a registry with `microgrids` micro-grids.
    pub fn new(microgrids: usize) -> Self {
        Self {
            mgs: vec![Mg::default(); microgrids],
            sites: vec![None; microgrids],
            ..Default::default()
        }
    }

    /// Counts a dead-lettered message.
    pub fn count_dlq(&mut self, reason: Reason) {
        *self
            .counters
            .dlq
            .entry(reason.as_str().to_string())
            .or_default() += 1;
    }

    /// Applies one validated event in stream order.
    pub fn apply(&mut self, v: &Valid, topo: &Topology) -> Outcome {
        if self.seen.contains_key(&v.event.id) {
            self.counters.duplicates += 1;
            return Outcome::Duplicate;
        }
        let ts = v.ts;
        let mg = topo.ordinal[v.node as usize];
        let mut counts = Bucket::default();
        match &v.event.body {
            EventBody::Patrol(p) => {
                counts.patrols = 1;
                counts.persons = u64::from(p.persons);
                counts.findings = p.findings;
                let m = &mut self.mgs[mg as usize];
                m.recent_patrols.push((ts, p.persons));
                m.last_patrol = Some(m.last_patrol.map_or(ts, |l| l.max(ts)));
            }
            EventBody::Testing(t) => {
                counts.samples = u64::from(t.samples);
                counts.reports = 1;
                let m = &mut self.mgs[mg as usize];
                m.recent_samples.push((ts, t.samples));
                if m.queue.is_none_or(|(qts, _)| ts >= qts) {
                    m.queue = Some((ts, t.queue));
                    if let Some(site) = self.sites.get_mut(mg as usize) {
                        *site = Some(t.site.clone());
                    }
                }
            }
            EventBody::Video(vid) => {
                if let Err(e) = self.apply_video(vid, mg, ts, topo, &mut counts) {
                    return Outcome::DeadLetter(e);
                }
                if let Some(f) = self.flags.get(&vid.flag_id) {
                    self.pending_events.orders.push(crate::history::OrderRow {
                        ts,
                        mg,
                        flag_id: vid.flag_id.clone(),
                        number: f.number.clone(),
                        kind: f.kind,
                        severity: f.severity,
                        action: vid.action,
                        due: f.due,
                    });
                }
            }
            EventBody::Incident(inc) => {
                if let Err(e) = self.apply_incident(inc, mg, ts, v.to, topo, &mut counts) {
                    return Outcome::DeadLetter(e);
                }
                if let Some(r) = self.incidents.get(&inc.incident_id) {
                    self.pending_events
                        .incidents
                        .push(crate::history::IncidentRow {
                            ts,
                            mg,
                            incident_id: inc.incident_id.clone(),
                            action: inc.action,
                            level: r.level,
                            category: r.category.clone(),
                            label: r.label.clone(),
                            owner: r.owner,
                            due: r.due,
                        });
                }
            }
            EventBody::Zone(z) => {
                let d = Designation {
                    ts,
                    zone: z.zone,
                    event_id: v.event.id.clone(),
                    reason: z.reason.clone(),
                };
                let newer = self
                    .zones
                    .get(&v.node)
                    .is_none_or(|cur| (d.ts, &d.event_id) > (cur.ts, &cur.event_id));
                let log = self.zone_log.entry(v.node).or_default();
                let at = log.partition_point(|x| (x.ts, &x.event_id) < (d.ts, &d.event_id));
                log.insert(at, d.clone());
                self.pending_events.zones.push(crate::history::ZoneRow {
                    ts,
                    node: v.node,
                    zone: d.zone,
                    reason: d.reason.clone(),
                    event_id: d.event_id.clone(),
                });
                if newer {
                    self.zones.insert(v.node, d);
                }
            }
        }
        self.seen.insert(v.event.id.clone(), ts);
        self.watermark = Some(self.watermark.map_or(ts, |w| w.max(ts)));
        self.counters.applied += 1;
        let row = (v.event.kind() != gridwatch_model::event::EventKind::Zone).then_some(Row {
            mg,
            minute: ts.div_euclid(60),
            counts,
        });
        Outcome::Applied(row)
    }

    /// The zone in force on a micro-grid and since when: the newest
    /// designation (by event time) on it or an ancestor, else the registry's.
    pub fn zone_of(&self, reg: &Registry, node: u32) -> (Zone, Option<i64>) {
        let Some(mg) = &reg.node(node).mg else {
            return (Zone::Normal, None);
        };
        match self.designation_of(reg, node) {
            Some((_, d)) => (d.zone, Some(d.ts)),
            None => (mg.zone, None),
        }
    }

    /// The zone micro-grid `node` was in at `ts`: the newest designation
    /// at or before it on the micro-grid or an ancestor, else the
    /// registry's.
    pub fn zone_at(&self, reg: &Registry, node: u32, ts: i64) -> Zone {
        let Some(mg) = &reg.node(node).mg else {
            return Zone::Normal;
        };
        let mut best: Option<&Designation> = None;
        for a in mg.path {
            let Some(log) = self.zone_log.get(&a) else {
                continue;
            };
            let k = log.partition_point(|d| d.ts <= ts);
            if let Some(d) = k.checked_sub(1).map(|i| &log[i])
                && best.is_none_or(|b| (d.ts, &d.event_id) > (b.ts, &b.event_id))
            {
                best = Some(d);
            }
        }
        best.map_or(mg.zone, |d| d.zone)
    }

    /// The designation in force on a micro-grid and the node it was made
    /// on: the newest on its path (none: the registered zone holds).
    pub fn designation_of(&self, reg: &Registry, node: u32) -> Option<(u32, &Designation)> {
        let mg = reg.node(node).mg.as_ref()?;
        let mut best: Option<(u32, &Designation)> = None;
        for a in mg.path {
            if let Some(d) = self.zones.get(&a)
                && best.is_none_or(|(_, b)| (d.ts, &d.event_id) > (b.ts, &b.event_id))
            {
                best = Some((a, d));
            }
        }
        best
    }

    /// Drops what no window or "today" can need any more: ids and buckets
    /// older than the allowed lateness plus two local days, and incidents
    /// resolved and orders rectified longer ago than the allowed lateness
    /// (an event about one is refused as a conflict before and after:
    /// "already resolved" or "never reported"; an order can be reopened
    /// that long). Open ones stay until closed.
    pub fn prune(&mut self, now: i64, lateness_s: i64) {
        let closed_before = now - lateness_s;
        self.incidents
            .retain(|_, inc| inc.resolved.is_none_or(|r| r >= closed_before));
        self.flags
            .retain(|_, o| o.rectified.is_none_or(|r| r >= closed_before));
        let keep_from = now - lateness_s.max(2 * 86400) - 3600;
        self.seen.retain(|_, ts| *ts >= keep_from);
        let min_from = keep_from.div_euclid(60);
        for m in &mut self.mgs {
            while m
                .buckets
                .first_key_value()
                .is_some_and(|(k, _)| *k < min_from)
            {
                m.buckets.pop_first();
            }
            m.recent_patrols.retain(|(t, _)| *t > now - 2 * 3600);
            m.recent_samples.retain(|(t, _)| *t > now - 600);
            m.rectified.retain(|(t, _)| *t >= keep_from);
            m.resolved.retain(|(t, _)| *t >= keep_from);
        }
        // A designation log keeps what an accepted event can fall in: from
        // the newest before `keep_from` on.
        for log in self.zone_log.values_mut() {
            let k = log.partition_point(|d| d.ts < keep_from);
            if k > 1 {
                log.drain(..k - 1);
            }
        }
        // Numbering of a day stays while an event of that day is accepted.
        if let Some(d) = DateTime::from_timestamp(keep_from, 0) {
            let d = gridwatch_model::time::local_date(d);
            let key = d.year().max(0) as u32 * 10_000 + d.month() * 100 + d.day();
            self.orders_per_day = self.orders_per_day.split_off(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_add_without_overflow() {
        let mut b = Bucket {
            samples: u64::MAX - 1,
            ..Default::default()
        };
        b.add(&Bucket {
            samples: 10,
            ..Default::default()
        });
        assert_eq!(b.samples, u64::MAX);
    }

    #[test]
    fn prune_drops_incidents_resolved_past_the_lateness_and_keeps_open_ones() {
        let mut s = LiveState::new(1);
        let rec = |resolved| IncidentRec {
            mg: 0,
            level: 2,
            category: "c".into(),
            reported: 0,
            last_action: gridwatch_model::event::IncidentAction::Reported,
            resolved,
            owner: 0,
            transferred: None,
            due: 0,
            label: None,
        };
        let now = 10 * 86_400;
        s.incidents.insert("open".into(), rec(None));
        s.incidents.insert("old".into(), rec(Some(now - 86_401)));
        s.incidents.insert("recent".into(), rec(Some(now - 3_600)));
        s.prune(now, 86_400);
        let mut kept: Vec<&str> = s.incidents.keys().map(String::as_str).collect();
        kept.sort_unstable();
        assert_eq!(kept, ["open", "recent"]);
    }
}
