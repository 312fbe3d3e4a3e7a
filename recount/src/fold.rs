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
    /// Flag id → its supervision order.
    orders: HashMap<String, Order>,
    /// Incident id → where it stands.
    incidents: HashMap<String, Inc>,
    /// Open flags and open incidents of each micro-grid.
    open_count: HashMap<String, (usize, usize)>,
    /// What became of each event: applied, duplicates, conflicts.
    pub applied: u64,
    pub duplicates: u64,
    pub conflicts: u64,
}

/// A supervision order as the rules describe it.
struct Order {
    node: String,
    /// Raised, or reopened last.
    opened: DateTime<FixedOffset>,
    severity: u8,
    open: bool,
}

/// An incident as the rules describe it.
struct Inc {
    node: String,
    level: u8,
    reported: DateTime<FixedOffset>,
    /// The node id that holds it.
    owner: String,
    acknowledged: bool,
    transferred: bool,
    resolved: bool,
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
            orders: HashMap::new(),
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
        let ok = match ev["kind"].as_str() {
            Some("video") => self.video(ev, node),
            Some("incident") => self.incident(ev, node),
            _ => true,
        };
        if !ok {
            return Verdict::Conflict;
        }
        self.seen.insert(id);
        self.events.push(ev.clone());
        Verdict::Applied
    }

    /// Whether a video event fits its order (and takes it if so).
    fn video(&mut self, ev: &Value, node: String) -> bool {
        let flag = ev["flag_id"].as_str().unwrap_or_default().to_string();
        let t = ts(ev);
        let count = self.open_count.entry(node.clone()).or_default();
        match (ev["action"].as_str(), self.orders.get_mut(&flag)) {
            (Some("raised"), None) if count.0 < OPEN_PER_MICROGRID => {
                count.0 += 1;
                let severity = ev["severity"].as_u64().unwrap_or(1) as u8;
                self.orders.insert(
                    flag,
                    Order {
                        node,
                        opened: t,
                        severity,
                        open: true,
                    },
                );
                true
            }
            (Some("rectified"), Some(o)) if o.node == node && t >= o.opened && o.open => {
                o.open = false;
                count.0 -= 1;
                true
            }
            (Some("reopened"), Some(o))
                if o.node == node && t >= o.opened && !o.open && count.0 < OPEN_PER_MICROGRID =>
            {
                o.open = true;
                o.opened = t;
                count.0 += 1;
                true
            }
            _ => false,
        }
    }

    /// Whether an incident step fits where the incident stands (and takes
    /// it if so): reported once; then acknowledged (not twice in a row),
    /// transferred strictly up from its holder, resolved once.
    fn incident(&mut self, ev: &Value, node: String) -> bool {
        let id = ev["incident_id"].as_str().unwrap_or_default().to_string();
        let t = ts(ev);
        let count = self.open_count.entry(node.clone()).or_default();
        let action = ev["action"].as_str().unwrap_or_default();
        if action == "reported" {
            if self.incidents.contains_key(&id) || count.1 >= OPEN_PER_MICROGRID {
                return false;
            }
            count.1 += 1;
            let level = ev["level"].as_u64().unwrap_or(1) as u8;
            // beilun/<street>/<community>/<grid>/<micro-grid>
            let owner = match level {
                0..=2 => node
                    .rsplit_once('/')
                    .map_or(node.clone(), |(g, _)| g.to_string()),
                _ => "beilun".to_string(),
            };
            self.incidents.insert(
                id,
                Inc {
                    node,
                    level,
                    reported: t,
                    owner,
                    acknowledged: false,
                    transferred: false,
                    resolved: false,
                },
            );
            return true;
        }
        let Some(inc) = self.incidents.get_mut(&id) else {
            return false;
        };
        if inc.node != node || inc.resolved || t < inc.reported {
            return false;
        }
        match action {
            "acknowledged" if !inc.acknowledged => inc.acknowledged = true,
            "transferred" => {
                let to = ev["to"].as_str().unwrap_or_default();
                if to == inc.owner || !under(&inc.owner, to) {
                    return false;
                }
                inc.owner = to.to_string();
                inc.transferred = true;
                inc.acknowledged = false;
            }
            "resolved" => {
                inc.resolved = true;
                count.1 -= 1;
            }
            _ => return false,
        }
        true
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
        let utc = |t: DateTime<FixedOffset>| t.with_timezone(&chrono::Utc);
        let now = utc(as_of);
        let orders: Vec<&Order> = self
            .orders
            .values()
            .filter(|o| o.open && under(&o.node, node))
            .collect();
        let flags_open = orders.len() as u64;
        let order_due = gridwatch_model::deadline::OrderDue::default();
        let orders_overdue = orders
            .iter()
            .filter(|o| now > order_due.due(utc(o.opened), o.severity))
            .count();
        let open: Vec<&Inc> = self
            .incidents
            .values()
            .filter(|i| !i.resolved && under(&i.node, node))
            .collect();
        let open_incidents = open.len() as u64;
        let mut by_level = [0u64; 4];
        for i in &open {
            by_level[usize::from(i.level.clamp(1, 4)) - 1] += 1;
        }
        let due = |i: &Inc| gridwatch_model::deadline::incident_due(utc(i.reported));
        // The coming 16:00 (at 16:00:00 sharp, that one).
        let next_16 = gridwatch_model::deadline::incident_due(now - chrono::Duration::seconds(1));
        let overdue = open.iter().filter(|i| now > due(i)).count();
        let due_before_16 = open
            .iter()
            .filter(|i| now <= due(i) && due(i) <= next_16)
            .count();
        let transfer_overdue = open
            .iter()
            .filter(|i| {
                i.level == 2
                    && !i.transferred
                    && now > gridwatch_model::deadline::transfer_due(utc(i.reported))
            })
            .count();
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
                "overdue": orders_overdue,
            },
            "incidents": {
                "open": open_incidents,
                "open_by_level": by_level,
                "overdue": overdue,
                "due_before_16": due_before_16,
                "transfer_overdue": transfer_overdue,
                "reported_today": kind("incident").filter(is_today).filter(|e| e["action"] == "reported").count(),
                "resolved_today": kind("incident").filter(is_today).filter(|e| e["action"] == "resolved").count(),
            },
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
