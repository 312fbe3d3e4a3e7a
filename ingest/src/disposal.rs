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
mod tests {
    use super::*;
    use crate::aggregate::fixture::{Fixture, street};
    use crate::state::Outcome;
    use crate::validate::{TimeRules, validate};
    use gridwatch_model::state::{Status, Why};

    /// An incident step on `n` at `hms` (2022-10-15): subject, payload.
    fn step(
        n: &str,
        id: &str,
        inc: &str,
        action: &str,
        hms: &str,
        extra: &str,
    ) -> (String, String) {
        (
            format!("gw.ev.incident.{}", street(n)),
            format!(
                r#"{{"v":1,"kind":"incident","id":"{id}","ts":"2022-10-15T{hms}+08:00","node":"{n}","incident_id":"{inc}","action":"{action}","level":2,"category":"就医需求 medical","note":"n"{extra}}}"#
            ),
        )
    }

    fn video(n: &str, id: &str, flag: &str, action: &str, hms: &str) -> (String, String) {
        (
            format!("gw.ev.video.{}", street(n)),
            format!(
                r#"{{"v":1,"kind":"video","id":"{id}","ts":"2022-10-15T{hms}+08:00","node":"{n}","camera":"c","flag_id":"{flag}","flag":"vendor","action":"{action}","severity":3}}"#
            ),
        )
    }

    /// Applies one event; the conflict's detail, or "" when applied.
    fn apply(fx: &Fixture, live: &mut LiveState, (subject, payload): (String, String)) -> String {
        let rules = TimeRules {
            lateness_s: 86_400,
            future_s: 300,
        };
        let v = validate(&subject, payload.as_bytes(), &fx.reg, Some(fx.now), rules)
            .unwrap_or_else(|e| panic!("{payload}: {e}"));
        match live.apply(&v, &fx.topo) {
            Outcome::Applied(_) => String::new(),
            Outcome::DeadLetter(e) => {
                assert_eq!(e.reason, Reason::Conflict, "{e}");
                e.detail
            }
            Outcome::Duplicate => "duplicate".into(),
        }
    }

    #[test]
    fn incidents_step_up_the_tree_and_orders_reopen() {
        let fx = Fixture::new();
        let reg = &fx.reg;
        let mut live = LiveState::new(reg.microgrids.len());
        let (m0, m1) = (reg.microgrids[0], reg.microgrids[1]);
        let a = reg.node(m0).id.to_string();
        let path = reg.node(m0).mg.as_ref().expect("a micro-grid").path;
        let id = |i: u32| reg.node(i).id.to_string();
        let other_street = reg
            .microgrids
            .iter()
            .map(|&m| id(m))
            .find(|n| street(n) != street(&a))
            .expect("another street");
        let mut n = 0;
        let mut go = |live: &mut LiveState, action: &str, hms: &str, extra: &str| {
            n += 1;
            apply(
                &fx,
                live,
                step(&a, &format!("e{n}"), "i1", action, hms, extra),
            )
        };
        assert_eq!(go(&mut live, "reported", "09:00:00", ""), "");
        assert_eq!(
            live.incidents["i1"].owner, path[3],
            "level 2 starts at the grid"
        );
        assert_eq!(go(&mut live, "acknowledged", "09:05:00", ""), "");
        assert!(go(&mut live, "acknowledged", "09:06:00", "").contains("already acknowledged"));
        let to = |n: &str| format!(r#","to":"{n}""#);
        for bad in [other_street.clone(), a.clone(), id(path[3])] {
            let why = go(&mut live, "transferred", "09:10:00", &to(&bad));
            assert!(why.contains("can only go up"), "{bad}: {why}");
        }
        assert_eq!(
            go(&mut live, "transferred", "10:00:00", &to(&id(path[2]))),
            ""
        );
        assert_eq!(live.incidents["i1"].owner, path[2]);
        assert!(go(&mut live, "transferred", "10:01:00", &to(&id(path[3]))).contains("go up"));
        assert_eq!(go(&mut live, "transferred", "10:02:00", &to("beilun")), "");
        assert_eq!(go(&mut live, "acknowledged", "10:03:00", ""), "");
        let elsewhere = step(&id(m1), "x1", "i1", "resolved", "11:00:00", "");
        assert!(apply(&fx, &mut live, elsewhere).contains("another micro-grid"));
        assert!(go(&mut live, "resolved", "08:00:00", "").contains("before it was reported"));
        assert_eq!(go(&mut live, "resolved", "11:00:00", ""), "");
        assert!(go(&mut live, "resolved", "11:01:00", "").contains("already resolved"));
        assert_eq!(
            live.mgs[0].resolved,
            vec![(live.incidents["i1"].resolved.expect("r"), 120.0)]
        );

        // Level 3 is at the district at once, labelled.
        let (subject, payload) = step(&a, "l3", "i3", "reported", "09:00:00", "");
        let l3 = (subject, payload.replace(r#""level":2"#, r#""level":3"#));
        assert_eq!(apply(&fx, &mut live, l3), "");
        assert_eq!(live.incidents["i3"].owner, path[0]);
        assert_eq!(live.incidents["i3"].label.as_deref(), Some("medical"));

        // Orders: numbered by day, rectified once, reopened once.
        assert_eq!(
            apply(&fx, &mut live, video(&a, "v1", "f1", "raised", "09:00:00")),
            ""
        );
        assert_eq!(
            apply(&fx, &mut live, video(&a, "v2", "f2", "raised", "09:01:00")),
            ""
        );
        assert_eq!(live.flags["f1"].number, "督-20221015-0001");
        assert_eq!(live.flags["f2"].number, "督-20221015-0002");
        assert_eq!(
            apply(
                &fx,
                &mut live,
                video(&a, "v3", "f1", "rectified", "09:30:00")
            ),
            ""
        );
        assert!(
            apply(
                &fx,
                &mut live,
                video(&a, "v4", "f1", "rectified", "09:31:00")
            )
            .contains("already rectified")
        );
        assert!(
            apply(
                &fx,
                &mut live,
                video(&a, "v5", "f2", "reopened", "09:31:00")
            )
            .contains("is open")
        );
        assert_eq!(
            apply(
                &fx,
                &mut live,
                video(&a, "v6", "f1", "reopened", "10:00:00")
            ),
            ""
        );
        assert!(live.flags["f1"].reopened && live.flags["f1"].is_open());
        assert_eq!(live.flags["f1"].due, live.flags["f1"].opened + 3600);
        assert!(
            apply(&fx, &mut live, video(&a, "v7", "f1", "raised", "10:01:00"))
                .contains("already open")
        );
        assert_eq!(live.mgs[0].open_flags, 2);
    }

    /// The 6 h and 16:00 rules, a second either side of each edge.
    #[test]
    fn six_hours_and_sixteen_hundred_at_their_edges() {
        let fx = Fixture::new();
        let reg = &fx.reg;
        let mut live = LiveState::new(reg.microgrids.len());
        let mg = reg.microgrids[0];
        let a = reg.node(mg).id.to_string();
        let l1 = |p: String| p.replace(r#""level":2"#, r#""level":1"#);
        let (s, p) = step(&a, "e1", "i1", "reported", "09:00:00", "");
        fx.apply(&mut live, &[(s, l1(p))], &mut vec![false; reg.nodes.len()]);
        let evs = [
            step(&a, "e2", "i2", "reported", "09:00:00", ""),
            step(&a, "e3", "i3", "reported", "16:00:00", ""),
        ];
        fx.apply(&mut live, &evs, &mut vec![false; reg.nodes.len()]);
        let at = |hms: i64| {
            let states = fx.full(&live, fx.now - 3600 + hms);
            states[mg as usize].clone().expect("its state")
        };
        // 15:00:00 is 6 h after the report: still in time; a second on,
        // it is late and the micro-grid is red for it.
        let s = at(0);
        assert_eq!(s.incidents.transfer_overdue, 0);
        let s = at(1);
        assert_eq!(s.incidents.transfer_overdue, 1);
        assert_eq!(s.status, Status::Red);
        assert!(
            s.why.contains(&Why::TransferOverdue {
                incident_id: "i2".into()
            }),
            "{:?}",
            s.why
        );
        // 16:00:00 is the due time: not overdue yet (i3, reported at 16:00
        // sharp, is due tomorrow); a second on, i1 and i2 are.
        let s = at(3600);
        assert_eq!((s.incidents.overdue, s.incidents.due_before_16), (0, 2));
        let s = at(3601);
        assert_eq!((s.incidents.overdue, s.incidents.due_before_16), (2, 1));
        assert!(
            s.why.iter().any(
                |w| matches!(w, Why::IncidentOverdue { incident_id, .. } if incident_id == "i1")
            )
        );
        let district = fx.full(&live, fx.now + 1)
            [reg.lookup("beilun").expect("the district") as usize]
            .clone()
            .expect("its state");
        assert_eq!(
            (district.incidents.overdue, district.incidents.open),
            (2, 3)
        );
    }

    #[test]
    fn labels_by_the_first_matching_rule_and_numbers_orders_by_day() {
        let c = DisposalConfig::default();
        assert_eq!(c.label("就医需求 medical", ""), "medical");
        assert_eq!(c.label("投诉", "独居老人无人照看"), "elderly care");
        assert_eq!(
            c.label("Complaint", "someone left: BREACH"),
            "quarantine breach"
        );
        assert_eq!(c.label("设施维修 repairs", ""), "other");
        assert!(c.check().is_ok());
        // 2022-10-15 09:30 +08:00.
        assert_eq!(order_number(1_665_797_400, 1), "督-20221015-0001");
        // 23:59:59 local is the same day; 00:00 the next.
        assert_eq!(day_key(1_665_849_599), 20221015);
        assert_eq!(day_key(1_665_849_600), 20221016);
    }

    #[test]
    fn every_step_goes_to_the_history_tables_without_names_or_notes() {
        let fx = Fixture::new();
        let reg = &fx.reg;
        let mut live = LiveState::new(reg.microgrids.len());
        let m = reg.node(reg.microgrids[0]).id.to_string();
        for e in [
            step(
                &m,
                "h1",
                "i9",
                "reported",
                "09:00:00",
                r#","by":"网格员甲""#,
            ),
            step(&m, "h2", "i9", "acknowledged", "09:10:00", ""),
            step(&m, "h3", "i9", "resolved", "10:00:00", ""),
            video(&m, "h4", "F9", "raised", "09:20:00"),
            video(&m, "h5", "F9", "rectified", "09:40:00"),
        ] {
            assert_eq!(apply(&fx, &mut live, e), "");
        }
        let zone = format!(
            r#"{{"v":1,"kind":"zone","id":"h6","ts":"2022-10-15T11:00:00+08:00","node":"{m}","zone":"sealed","reason":"密接"}}"#
        );
        assert_eq!(
            apply(&fx, &mut live, (format!("gw.ev.zone.{}", street(&m)), zone)),
            ""
        );
        let dir = tempfile::tempdir().expect("temp dir");
        live.pending_from_seq = 1;
        crate::history::flush(dir.path(), reg, &fx.topo, &mut live, 6).expect("flush");
        let read = |t| crate::history::read_table(dir.path(), t, "2022-10-15").expect("read");
        let inc = read("incidents");
        use crate::history::tests::assert_columns;
        use gridwatch_model::tables;
        assert_columns(&inc, &tables::INCIDENTS);
        assert_columns(&read("orders"), &tables::ORDERS);
        assert_columns(&read("zones"), &tables::ZONES);
        let col = |df: &polars::prelude::DataFrame, c: &str| -> Vec<String> {
            df.column(c)
                .and_then(|c| c.cast(&polars::prelude::DataType::String))
                .map(|c| {
                    c.str()
                        .map(|s| s.iter().map(|v| v.unwrap_or("").to_string()).collect())
                        .unwrap_or_default()
                })
                .unwrap_or_default()
        };
        assert_eq!(
            col(&inc, "action"),
            ["reported", "acknowledged", "resolved"]
        );
        assert_eq!(col(&inc, "node"), [m.as_str(); 3]);
        let names: Vec<String> = inc
            .get_column_names()
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert!(!names.iter().any(|c| c == "by" || c == "note"), "{names:?}");
        let orders = read("orders");
        assert_eq!(col(&orders, "action"), ["raised", "rectified"]);
        assert_eq!(col(&orders, "number"), ["督-20221015-0001"; 2]);
        let zones = read("zones");
        assert_eq!(col(&zones, "zone"), ["sealed"]);
        assert!(live.pending_events.is_empty());
    }
}
