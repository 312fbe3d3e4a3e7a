//! The fold: what the state API must show, from valid events in stream
//! order. It follows DESIGN §3–§5 directly (duplicates count once, a flag
//! or incident step that does not fit is a conflict, windows by event time
//! relative to `as_of`, "today" by local date, the latest zone designation
//! by event time wins, at most [`OPEN_PER_MICROGRID`] open items a
//! micro-grid) and shares no code with ingest.

use chrono::{DateTime, FixedOffset};
use gridwatch_model::Registry;
use gridwatch_model::limits::OPEN_PER_MICROGRID;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};

/// The events that count, in stream order.
pub struct Recount<'a> {
    reg: &'a Registry,
    as_of: DateTime<FixedOffset>,
    seen: HashSet<String>,
    events: Vec<Value>,
    /// Open flag id → (micro-grid, raised at).
    open_flags: HashMap<String, (String, DateTime<FixedOffset>)>,
    /// Incident id → (micro-grid, resolved).
    incidents: HashMap<String, (String, bool)>,
    /// Open flags and open incidents of each micro-grid.
    open_count: HashMap<String, (usize, usize)>,
    /// What became of each event: applied, duplicates, conflicts.
    pub applied: u64,
    pub duplicates: u64,
    pub conflicts: u64,
}

/// What became of one valid event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Applied,
    /// Its id was seen before.
    Duplicate,
    /// It does not fit what is open (DLQ reason `conflict`).
    Conflict,
}

fn ts(ev: &Value) -> DateTime<FixedOffset> {
    ev["ts"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        // Only decoded events are taken: their `ts` is valid RFC 3339.
        .unwrap_or_default()
}

fn local_day(t: DateTime<FixedOffset>) -> chrono::NaiveDate {
    t.with_timezone(&FixedOffset::east_opt(8 * 3600).expect("UTC+8"))
        .date_naive()
}

fn under(node: &str, prefix: &str) -> bool {
    node == prefix || node.starts_with(&format!("{prefix}/"))
}

impl<'a> Recount<'a> {
    /// An empty recount over a registry, for the clock time `as_of` (the
    /// replay clock's last tick).
    pub fn new(reg: &'a Registry, as_of: DateTime<FixedOffset>) -> Self {
        Self {
            reg,
            as_of,
            seen: HashSet::new(),
            events: Vec::new(),
            open_flags: HashMap::new(),
            incidents: HashMap::new(),
            open_count: HashMap::new(),
            applied: 0,
            duplicates: 0,
            conflicts: 0,
        }
    }

    /// Moves the clock the figures are for.
    pub fn set_as_of(&mut self, as_of: DateTime<FixedOffset>) {
        self.as_of = as_of;
    }

    /// Takes one valid event in stream order and counts what became of it.
    pub fn take(&mut self, ev: &Value) -> Verdict {
        let v = self.judge(ev);
        match v {
            Verdict::Applied => self.applied += 1,
            Verdict::Duplicate => self.duplicates += 1,
            Verdict::Conflict => self.conflicts += 1,
        }
        v
    }

    /// Takes one valid event in stream order; returns whether it counts
    /// (false for a duplicate id or a conflict).
    pub fn apply(&mut self, ev: &Value) -> bool {
        self.take(ev) == Verdict::Applied
    }

    fn judge(&mut self, ev: &Value) -> Verdict {
        let id = ev["id"].as_str().unwrap_or_default().to_string();
        if self.seen.contains(&id) {
            return Verdict::Duplicate;
        }
        let node = ev["node"].as_str().unwrap_or_default().to_string();
        match ev["kind"].as_str() {
            Some("video") => {
                let flag = ev["flag_id"].as_str().unwrap_or_default().to_string();
                match ev["action"].as_str() {
                    Some("raised") => {
                        let open = self.open_count.entry(node.clone()).or_default();
                        if self.open_flags.contains_key(&flag) || open.0 >= OPEN_PER_MICROGRID {
                            return Verdict::Conflict;
                        }
                        open.0 += 1;
                        self.open_flags.insert(flag, (node, ts(ev)));
                    }
                    _ => match self.open_flags.get(&flag) {
                        Some((on, raised)) if *on == node && ts(ev) >= *raised => {
                            self.open_flags.remove(&flag);
                            if let Some(open) = self.open_count.get_mut(&node) {
                                open.0 -= 1;
                            }
                        }
                        _ => return Verdict::Conflict,
                    },
                }
            }
            Some("incident") => {
                let inc = ev["incident_id"].as_str().unwrap_or_default().to_string();
                match ev["action"].as_str() {
                    Some("reported") => {
                        let open = self.open_count.entry(node.clone()).or_default();
                        if self.incidents.contains_key(&inc) || open.1 >= OPEN_PER_MICROGRID {
                            return Verdict::Conflict;
                        }
                        open.1 += 1;
                        self.incidents.insert(inc, (node, false));
                    }
                    Some(a) => match self.incidents.get_mut(&inc) {
                        Some((on, resolved)) if !*resolved => {
                            if a == "resolved" {
                                *resolved = true;
                                if let Some(open) = self.open_count.get_mut(on.as_str()) {
                                    open.1 -= 1;
                                }
                            }
                        }
                        _ => return Verdict::Conflict,
                    },
                    None => return Verdict::Conflict,
                }
            }
            _ => {}
        }
        self.seen.insert(id);
        self.events.push(ev.clone());
        Verdict::Applied
    }

    /// The replay clock after these events: the newest event time (the
    /// `as_of` given when there are none).
    pub fn as_of(&self) -> DateTime<FixedOffset> {
        self.events.iter().map(ts).max().unwrap_or(self.as_of)
    }

    /// The zone in force on each micro-grid id.
    pub fn zones(&self) -> HashMap<String, String> {
        let mut designations: Vec<(DateTime<FixedOffset>, String, String, String)> = self
            .events
            .iter()
            .filter(|e| e["kind"] == "zone")
            .map(|e| {
                (
                    ts(e),
                    e["id"].as_str().unwrap_or_default().to_string(),
                    e["node"].as_str().unwrap_or_default().to_string(),
                    e["zone"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        designations.sort();
        let mut out = HashMap::new();
        for &m in &self.reg.microgrids {
            let n = self.reg.node(m);
            let base = n.mg.as_ref().map(|g| g.zone.as_str()).unwrap_or("normal");
            let id = n.id.to_string();
            let z = designations
                .iter()
                .rev()
                .find(|(_, _, node, _)| under(&id, node))
                .map(|d| d.3.clone())
                .unwrap_or_else(|| base.to_string());
            out.insert(id, z);
        }
        out
    }

    /// The numbers the state API must show for `node`, as JSON shaped like
    /// the state (a subset of its fields).
    pub fn expected(&self, node: &str) -> Value {
        let as_of = self.as_of;
        let today = local_day(as_of);
        let here: Vec<&Value> = self
            .events
            .iter()
            .filter(|e| under(e["node"].as_str().unwrap_or_default(), node))
            .collect();
        let kind = |k: &'static str| here.iter().copied().filter(move |e| e["kind"] == k);
        let in_hour = |e: &&Value| {
            let t = ts(e).timestamp();
            t > as_of.timestamp() - 3600 && t <= as_of.timestamp()
        };
        let is_today = |e: &&Value| local_day(ts(e)) == today;
        let sum = |it: &mut dyn Iterator<Item = &Value>, f: &str| -> u64 {
            it.map(|e| e[f].as_u64().unwrap_or(0)).sum()
        };
        let finding = |f: &str| -> u64 {
            kind("patrol")
                .filter(is_today)
                .map(|e| e["findings"][f].as_u64().unwrap_or(0))
                .sum()
        };
        // Each micro-grid's newest report (the later in stream order of two
        // at one time), its queue counted when the report is of today.
        let mut queues: HashMap<&str, (i64, u64, bool)> = HashMap::new();
        for e in kind("testing") {
            let t = ts(e).timestamp();
            let q = e["queue"].as_u64().unwrap_or(0);
            let entry = queues
                .entry(e["node"].as_str().unwrap_or_default())
                .or_insert((t, q, is_today(&e)));
            if t >= entry.0 {
                *entry = (t, q, is_today(&e));
            }
        }
        let flags_open = self
            .open_flags
            .values()
            .filter(|(n, _)| under(n, node))
            .count() as u64;
        let open_incidents = self
            .incidents
            .values()
            .filter(|(n, resolved)| !resolved && under(n, node))
            .count() as u64;
        let zones = self.zones();
        let mut by_zone: HashMap<String, (u64, u64)> = HashMap::new();
        let mut population = 0;
        for &m in &self.reg.microgrids {
            let n = self.reg.node(m);
            if !under(n.id.as_str(), node) {
                continue;
            }
            population += n.population;
            let z = zones.get(n.id.as_str()).cloned().unwrap_or_default();
            let e = by_zone.entry(z).or_default();
            e.0 += 1;
            e.1 += n.population;
        }
        let zone = |z: &str| {
            let (m, p) = by_zone.get(z).copied().unwrap_or_default();
            json!({"microgrids": m, "population": p})
        };
        let samples_today = sum(&mut kind("testing").filter(is_today), "samples");
        json!({
            "node": node,
            "population": population,
            "zones": {"sealed": zone("sealed"), "control": zone("control"),
                      "prevention": zone("prevention"), "normal": zone("normal")},
            "patrol": {
                "patrols_1h": kind("patrol").filter(in_hour).count(),
                "persons_1h": sum(&mut kind("patrol").filter(in_hour), "persons"),
                "patrols_today": kind("patrol").filter(is_today).count(),
                "findings_today": {
                    "gatherings_dispersed": finding("gatherings_dispersed"),
                    "people_persuaded": finding("people_persuaded"),
                    "venues_closed": finding("venues_closed"),
                    "vendors_cleared": finding("vendors_cleared"),
                    "violations": finding("violations"),
                },
            },
            "testing": {
                "samples_today": samples_today,
                "queue": queues.values().filter(|v| v.2).map(|v| v.1).sum::<u64>(),
            },
            "video": {
                "flags_open": flags_open,
                "raised_today": kind("video").filter(is_today).filter(|e| e["action"] == "raised").count(),
                "rectified_today": kind("video").filter(is_today).filter(|e| e["action"] == "rectified").count(),
            },
            "incidents": {"open": open_incidents},
        })
    }
}

/// Checks that every field of `expected` has the same value in `actual`;
/// returns the differences as `path: expected ≠ actual` lines.
pub fn differences(expected: &Value, actual: &Value, path: &str) -> Vec<String> {
    match expected {
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| differences(v, &actual[k], &format!("{path}.{k}")))
            .collect(),
        _ if expected.as_f64().is_some() && actual.as_f64() == expected.as_f64() => Vec::new(),
        _ if expected == actual => Vec::new(),
        _ => vec![format!("{path}: expected {expected} ≠ actual {actual}")],
    }
}
