//! The disposal loop (DESIGN §6), applied by ingest, the single writer:
//! incidents step reported → acknowledged → transferred (up the tree) →
//! resolved, each held by a node by its tier; every raised video flag is a
//! supervision order with a readable number, due by its severity,
//! rectified and possibly reopened. A step that does not fit is a
//! `conflict` with the reason, which the tablet shows as it is.

use chrono::{DateTime, Duration};
use gridwatch_model::deadline::{OrderDue, incident_due};
use gridwatch_model::event::{
    FlagKind, Incident, IncidentAction, ParseError, Reason, Video, VideoAction,
};
use gridwatch_model::limits::OPEN_PER_MICROGRID;
use gridwatch_model::time::{local_date, to_local_rfc3339};
use serde::{Deserialize, Serialize};

use crate::state::{Bucket, LiveState, Topology};

/// A category rule: an incident of level 3 and above whose category or
/// note holds one of `keywords` (case-insensitive) gets `label`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelRule {
    pub label: String,
    pub keywords: Vec<String>,
}

/// The loop's rules (config `[disposal]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DisposalConfig {
    /// A severity-3 order is due this many minutes after it is raised.
    pub order_due_severity3_min: i64,
    /// A severity-2 order is due this many minutes after it is raised
    /// (severity 1: by 16:00, like an incident).
    pub order_due_severity2_min: i64,
    /// Category rules, the first that matches wins; none: `other`.
    pub labels: Vec<LabelRule>,
}

fn rule(label: &str, keywords: &[&str]) -> LabelRule {
    LabelRule {
        label: label.into(),
        keywords: keywords.iter().map(|k| (*k).to_string()).collect(),
    }
}

impl Default for DisposalConfig {
    fn default() -> Self {
        Self {
            order_due_severity3_min: 60,
            order_due_severity2_min: 240,
            labels: vec![
                rule(
                    "medical",
                    &["就医", "医疗", "发热", "药", "medical", "fever", "hospital"],
                ),
                rule(
                    "supplies",
                    &["物资", "生活", "买菜", "supplies", "food", "groceries"],
                ),
                rule(
                    "elderly care",
                    &["独居", "老人", "elderly", "disabled", "残疾"],
                ),
                rule(
                    "quarantine breach",
                    &[
                        "擅自",
                        "外出",
                        "聚集",
                        "外来",
                        "breach",
                        "gathering",
                        "visitor",
                    ],
                ),
            ],
        }
    }
}

impl DisposalConfig {
    /// Orders' due times by severity.
    pub fn order_due(&self) -> OrderDue {
        OrderDue {
            severity3: Duration::minutes(self.order_due_severity3_min),
            severity2: Duration::minutes(self.order_due_severity2_min),
        }
    }

    /// The label of an incident of level 3 and above.
    pub fn label(&self, category: &str, note: &str) -> String {
        let text = format!("{category} {note}").to_lowercase();
        self.labels
            .iter()
            .find(|r| r.keywords.iter().any(|k| text.contains(&k.to_lowercase())))
            .map_or_else(|| "other".to_string(), |r| r.label.clone())
    }

    /// Checks the rules make sense (at start).
    pub fn check(&self) -> Result<(), String> {
        if self.order_due_severity3_min <= 0 || self.order_due_severity2_min <= 0 {
            return Err("disposal: order due times must be positive minutes".into());
        }
        if let Some(r) = self
            .labels
            .iter()
            .find(|r| r.label.is_empty() || r.keywords.iter().any(String::is_empty))
        {
            return Err(format!(
                "disposal: label rule `{}` has an empty label or keyword",
                r.label
            ));
        }
        Ok(())
    }
}

/// A supervision order: a raised video flag until rectified (kept a while
/// after, so a supervisor can reopen it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OpenFlag {
    pub mg: u32,
    pub kind: FlagKind,
    /// When the flag was raised.
    pub raised: i64,
    pub severity: u8,
    /// `督-YYYYMMDD-NNNN`: the local day it was raised and its place that
    /// day, in stream order.
    pub number: String,
    /// When it was last opened (raised, or reopened).
    pub opened: i64,
    /// When it is due.
    pub due: i64,
    /// When it was rectified; none while open.
    pub rectified: Option<i64>,
    pub reopened: bool,
}

impl OpenFlag {
    pub fn is_open(&self) -> bool {
        self.rectified.is_none()
    }
}

/// An incident and where it stands.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IncidentRec {
    pub mg: u32,
    pub level: u8,
    pub category: String,
    pub reported: i64,
    pub last_action: IncidentAction,
    pub resolved: Option<i64>,
    /// Registry index of the node that holds it.
    pub owner: u32,
    /// When it was first transferred up.
    pub transferred: Option<i64>,
    /// When it is due (16:00 rule).
    pub due: i64,
    /// The category rules' label (level 3 and above).
    pub label: Option<String>,
}

impl IncidentRec {
    /// A level-2 incident still at its grid past the 6 h.
    pub fn transfer_overdue(&self, now: i64) -> bool {
        self.level == 2
            && self.transferred.is_none()
            && self.resolved.is_none()
            && now > self.reported + gridwatch_model::deadline::TRANSFER_WITHIN.num_seconds()
    }
}

fn conflict(detail: String) -> ParseError {
    ParseError::new(Reason::Conflict, detail)
}

fn utc(ts: i64) -> DateTime<chrono::Utc> {
    DateTime::from_timestamp(ts, 0).unwrap_or_default()
}

/// The order number for the `n`th order raised on the local day of `ts`.
pub fn order_number(ts: i64, n: u32) -> String {
    let day = to_local_rfc3339(utc(ts));
    let ymd: String = day.chars().take(10).filter(|c| *c != '-').collect();
    format!("督-{ymd}-{n:04}")
}

/// The local day of `ts` as `YYYYMMDD`.
fn day_key(ts: i64) -> u32 {
    let d = local_date(utc(ts));
    use chrono::Datelike;
    (d.year().max(0) as u32) * 10_000 + d.month() * 100 + d.day()
}

impl LiveState {
    /// Applies a video event on micro-grid ordinal `mg` at `ts`.
    pub(crate) fn apply_video(
        &mut self,
        vid: &Video,
        mg: u32,
        ts: i64,
        topo: &Topology,
        counts: &mut Bucket,
    ) -> Result<(), ParseError> {
        let id = &vid.flag_id;
        match vid.action {
            VideoAction::Raised => {
                if let Some(o) = self.flags.get(id) {
                    return Err(conflict(match o.is_open() {
                        true => format!("flag `{id}` is already open (order {})", o.number),
                        false => format!(
                            "flag `{id}` was raised before (order {}, rectified): reopen it",
                            o.number
                        ),
                    }));
                }
                let m = &mut self.mgs[mg as usize];
                if m.open_flags as usize >= OPEN_PER_MICROGRID {
                    return Err(conflict(format!(
                        "the micro-grid has {OPEN_PER_MICROGRID} flags open, the most it holds"
                    )));
                }
                m.open_flags += 1;
                let n = self.orders_per_day.entry(day_key(ts)).or_default();
                *n += 1;
                let due = topo.rules.order_due().due(utc(ts), vid.severity);
                self.flags.insert(
                    id.clone(),
                    OpenFlag {
                        mg,
                        kind: vid.flag,
                        raised: ts,
                        severity: vid.severity,
                        number: order_number(ts, *n),
                        opened: ts,
                        due: due.timestamp(),
                        rectified: None,
                        reopened: false,
                    },
                );
                counts.raised = 1;
            }
            action => {
                let Some(o) = self.flags.get_mut(id) else {
                    return Err(conflict(format!("flag `{id}` was never raised")));
                };
                if o.mg != mg {
                    return Err(conflict(format!(
                        "flag `{id}` was raised on another micro-grid"
                    )));
                }
                if ts < o.opened {
                    return Err(conflict(format!(
                        "flag `{id}` {} before it was opened",
                        action.as_str()
                    )));
                }
                let m = &mut self.mgs[mg as usize];
                if action == VideoAction::Rectified {
                    if !o.is_open() {
                        return Err(conflict(format!("order {} is already rectified", o.number)));
                    }
                    o.rectified = Some(ts);
                    m.open_flags = m.open_flags.saturating_sub(1);
                    m.rectified.push((ts, (ts - o.opened) as f64 / 60.0));
                    counts.rectified = 1;
                } else {
                    if o.is_open() {
                        return Err(conflict(format!(
                            "order {} is open: only a rectified order can be reopened",
                            o.number
                        )));
                    }
                    if m.open_flags as usize >= OPEN_PER_MICROGRID {
                        return Err(conflict(format!(
                            "the micro-grid has {OPEN_PER_MICROGRID} flags open, the most it holds"
                        )));
                    }
                    m.open_flags += 1;
                    o.rectified = None;
                    o.reopened = true;
                    o.opened = ts;
                    o.due = topo.rules.order_due().due(utc(ts), o.severity).timestamp();
                }
            }
        }
        Ok(())
    }

    /// Applies an incident step on micro-grid ordinal `mg` at `ts`; `to`
    /// is the registry index of a transfer's target.
    pub(crate) fn apply_incident(
        &mut self,
        inc: &Incident,
        mg: u32,
        ts: i64,
        to: Option<u32>,
        topo: &Topology,
        counts: &mut Bucket,
    ) -> Result<(), ParseError> {
        let id = &inc.incident_id;
        let path = topo.paths[mg as usize];
        if inc.action == IncidentAction::Reported {
            if self.incidents.contains_key(id) {
                return Err(conflict(format!("incident `{id}` was already reported")));
            }
            let m = &mut self.mgs[mg as usize];
            if m.open_incidents as usize >= OPEN_PER_MICROGRID {
                return Err(conflict(format!(
                    "the micro-grid has {OPEN_PER_MICROGRID} incidents open, the most it holds"
                )));
            }
            m.open_incidents += 1;
            // Level 1 and 2 start at the grid; 3 and above at the district
            // centre, labelled by the category rules.
            let (owner, label) = match inc.level {
                0..=2 => (path[3], None),
                _ => (path[0], Some(topo.rules.label(&inc.category, &inc.note))),
            };
            self.incidents.insert(
                id.clone(),
                IncidentRec {
                    mg,
                    level: inc.level,
                    category: inc.category.clone(),
                    reported: ts,
                    last_action: IncidentAction::Reported,
                    resolved: None,
                    owner,
                    transferred: None,
                    due: incident_due(utc(ts)).timestamp(),
                    label,
                },
            );
            counts.reported = 1;
            return Ok(());
        }
        let Some(rec) = self.incidents.get_mut(id) else {
            return Err(conflict(format!("incident `{id}` was never reported")));
        };
        if rec.mg != mg {
            return Err(conflict(format!(
                "incident `{id}` was reported on another micro-grid"
            )));
        }
        if rec.resolved.is_some() {
            return Err(conflict(format!("incident `{id}` is already resolved")));
        }
        if ts < rec.reported {
            return Err(conflict(format!(
                "incident `{id}` {} before it was reported",
                inc.action.as_str()
            )));
        }
        match inc.action {
            IncidentAction::Reported => {}
            IncidentAction::Acknowledged => {
                if rec.last_action == IncidentAction::Acknowledged {
                    return Err(conflict(format!("incident `{id}` is already acknowledged")));
                }
            }
            IncidentAction::Transferred => {
                let at = |n: u32| path.iter().position(|&p| p == n);
                let (Some(to), Some(from)) = (to, at(rec.owner)) else {
                    return Err(conflict(format!(
                        "incident `{id}` cannot be transferred: no target"
                    )));
                };
                match at(to) {
                    Some(t) if t < from => {}
                    _ => {
                        return Err(conflict(format!(
                            "incident `{id}` can only go up from the node that holds it: `{}` is not above it",
                            inc.to.as_deref().unwrap_or_default()
                        )));
                    }
                }
                rec.owner = to;
                rec.transferred.get_or_insert(ts);
            }
            IncidentAction::Resolved => {
                rec.resolved = Some(ts);
                counts.resolved = 1;
                let m = &mut self.mgs[mg as usize];
                m.open_incidents = m.open_incidents.saturating_sub(1);
                m.resolved.push((ts, (ts - rec.reported) as f64 / 60.0));
            }
        }
        rec.last_action = inc.action;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
