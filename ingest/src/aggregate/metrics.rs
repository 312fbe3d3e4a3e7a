//! Per-micro-grid metrics at the clock's "now": the windows (1 h, 2 h,
//! 10 min), today's counts, open flags and incidents, the zone and its
//! status with reasons, and what only the micro-grid's own state shows.

use chrono::DateTime;
use gridwatch_model::deadline::{TRANSFER_WITHIN, incident_due};
use gridwatch_model::event::{FlagKind, IncidentAction};
use gridwatch_model::state::{FlagOpen, IncidentOpen, MgDetail, Status, Why};
use gridwatch_model::time::{local_date, start_of_local_day, to_local_rfc3339};
use gridwatch_model::{Registry, Zone};
use std::collections::HashMap;

use super::rollup::RollupCache;
use super::status::{MgSigns, mg_status};
use super::sums::Sums;
use crate::config::StatusConfig;
use crate::state::{LiveState, Topology};

/// Metrics of one micro-grid at "now".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MgMetrics {
    pub zone: Zone,
    /// Its contribution to every sum.
    pub vals: Sums,
    /// Minutes since the last patrol (sealed and control only).
    pub patrol_age_min: Option<i64>,
    /// Open sealed-zone exit flags.
    pub exit_flags: usize,
    /// Minutes each flag rectified today was open.
    pub rectify_min: Vec<f64>,
    /// Minutes from report to resolution of each incident resolved today.
    pub resolve_min: Vec<f64>,
    pub status: Status,
    pub why: Vec<Why>,
    /// What only the micro-grid's own state shows.
    pub own: Own,
}

/// A micro-grid's designation, last patrol and open flags and incidents,
/// with times as Unix seconds (formatted only for the states built).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Own {
    /// (node it was made on, when, why).
    pub designation: Option<(u32, i64, String)>,
    pub last_patrol: Option<i64>,
    /// Open flags, the most urgent first ([`flag_urgency`]).
    pub flags: Vec<OwnFlag>,
    /// Open incidents, the most urgent first ([`incident_urgency`]).
    pub incidents: Vec<OwnIncident>,
}

/// An open flag (a supervision order), times as Unix seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct OwnFlag {
    pub id: String,
    pub kind: FlagKind,
    pub severity: u8,
    pub raised: i64,
    pub number: String,
    pub due: i64,
    pub reopened: bool,
}

/// An open incident, times as Unix seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct OwnIncident {
    pub id: String,
    pub level: u8,
    pub category: String,
    pub reported: i64,
    pub last: IncidentAction,
    /// The node id that holds it.
    pub owner: String,
    pub due: i64,
    pub transfer_due: Option<i64>,
    pub label: Option<String>,
}

/// Flags, the most urgent first: sealed-zone exits, then by severity
/// (highest first), then the oldest, then by id.
pub fn flag_urgency(f: &OwnFlag) -> impl Ord + '_ {
    (
        f.kind != FlagKind::SealedExit,
        std::cmp::Reverse(f.severity),
        f.raised,
        &f.id,
    )
}

/// Incidents, the most urgent first: by level (highest first), then the
/// oldest, then by id.
pub fn incident_urgency(i: &OwnIncident) -> impl Ord + '_ {
    (std::cmp::Reverse(i.level), i.reported, &i.id)
}

fn t(ts: i64) -> String {
    to_local_rfc3339(DateTime::from_timestamp(ts, 0).unwrap_or_default())
}

/// A flag as states and the items API show it.
pub fn flag_open(f: &OwnFlag) -> FlagOpen {
    FlagOpen {
        flag_id: f.id.clone(),
        kind: f.kind,
        severity: f.severity,
        raised: t(f.raised),
        number: f.number.clone(),
        due: t(f.due),
        reopened: f.reopened,
    }
}

/// An incident as states and the items API show it.
pub fn incident_open(i: &OwnIncident) -> IncidentOpen {
    IncidentOpen {
        incident_id: i.id.clone(),
        level: i.level,
        category: i.category.clone(),
        reported: t(i.reported),
        last_action: i.last,
        owner: i.owner.clone(),
        due: t(i.due),
        transfer_due: i.transfer_due.map(t),
        label: i.label.clone(),
    }
}

impl Own {
    /// The micro-grid's detail as its state carries it: at most `items`
    /// flags and `items` incidents, the most urgent (the state's counts
    /// have them all; the items API pages through the rest).
    pub fn detail(&self, reg: &Registry, items: usize) -> MgDetail {
        MgDetail {
            zone_since: self.designation.as_ref().map(|d| t(d.1)),
            zone_reason: self.designation.as_ref().map(|d| d.2.clone()),
            zone_by: self
                .designation
                .as_ref()
                .map(|d| reg.node(d.0).id.to_string()),
            last_patrol: self.last_patrol.map(t),
            open_flags: self.flags.iter().take(items).map(flag_open).collect(),
            open_incidents: self
                .incidents
                .iter()
                .take(items)
                .map(incident_open)
                .collect(),
        }
    }
}

/// Late items a micro-grid's reasons name; more are counted in one.
pub const LATE_LISTED: usize = 3;

/// The deadline figures of one micro-grid at "now".
#[derive(Clone, Debug, Default)]
struct Late {
    incidents_overdue: u64,
    transfer_overdue: u64,
    due_before_16: u64,
    orders_overdue: u64,
    /// Red: incidents overdue, level-2 ones not gone up in time.
    red: Vec<Why>,
    /// Amber: orders overdue.
    amber: Vec<Why>,
}

/// Open flags and incidents of every micro-grid, gathered in one pass over
/// the live state's maps.
struct Open {
    flags: Vec<u64>,
    /// Raised times of open sealed-zone exit flags, oldest first.
    sealed_exits: HashMap<u32, Vec<i64>>,
    flags_of: HashMap<u32, Vec<OwnFlag>>,
    by_level: Vec<[u64; 4]>,
    incidents_of: HashMap<u32, Vec<OwnIncident>>,
    late: HashMap<u32, Late>,
}

impl Open {
    fn gather(reg: &Registry, live: &LiveState, microgrids: usize, now: i64) -> Open {
        let mut open = Open {
            flags: vec![0; microgrids],
            sealed_exits: HashMap::new(),
            flags_of: HashMap::new(),
            by_level: vec![[0; 4]; microgrids],
            incidents_of: HashMap::new(),
            late: HashMap::new(),
        };
        let hm = |ts: i64| t(ts).get(11..16).unwrap_or_default().to_string();
        for (id, f) in live.flags.iter().filter(|(_, f)| f.is_open()) {
            open.flags[f.mg as usize] += 1;
            if f.kind == FlagKind::SealedExit {
                open.sealed_exits.entry(f.mg).or_default().push(f.raised);
            }
            if overdue(f.due, now) {
                let late = open.late.entry(f.mg).or_default();
                late.orders_overdue += 1;
                late.amber.push(Why::OrderOverdue {
                    number: f.number.clone(),
                    due: hm(f.due),
                });
            }
            open.flags_of.entry(f.mg).or_default().push(OwnFlag {
                id: id.clone(),
                kind: f.kind,
                severity: f.severity,
                raised: f.raised,
                number: f.number.clone(),
                due: f.due,
                reopened: f.reopened,
            });
        }
        for v in open.sealed_exits.values_mut() {
            v.sort_unstable();
        }
        // Due at or before the coming 16:00 (at 16:00:00 sharp, that one).
        let next_due =
            incident_due(DateTime::from_timestamp(now - 1, 0).unwrap_or_default()).timestamp();
        for (id, inc) in live.incidents.iter().filter(|(_, i)| i.resolved.is_none()) {
            let l = usize::from(inc.level.clamp(1, 4)) - 1;
            open.by_level[inc.mg as usize][l] += 1;
            let owner = reg.node(inc.owner).id.to_string();
            let late = open.late.entry(inc.mg).or_default();
            if overdue(inc.due, now) {
                late.incidents_overdue += 1;
                late.red.push(Why::IncidentOverdue {
                    incident_id: id.clone(),
                    owner: owner.clone(),
                    due: hm(inc.due),
                });
            } else if inc.due <= next_due {
                late.due_before_16 += 1;
            }
            if inc.transfer_overdue(now) {
                late.transfer_overdue += 1;
                late.red.push(Why::TransferOverdue {
                    incident_id: id.clone(),
                });
            }
            let waiting = inc.level == 2 && inc.transferred.is_none();
            open.incidents_of
                .entry(inc.mg)
                .or_default()
                .push(OwnIncident {
                    id: id.clone(),
                    level: inc.level,
                    category: inc.category.clone(),
                    reported: inc.reported,
                    last: inc.last_action,
                    owner,
                    due: inc.due,
                    transfer_due: waiting.then(|| inc.reported + TRANSFER_WITHIN.num_seconds()),
                    label: inc.label.clone(),
                });
        }
        // In a stable order (the map's is not), and bounded: a few by
        // name, the rest counted, so a state stays small however many are
        // late (the counts have them all).
        for late in open.late.values_mut() {
            for whys in [&mut late.red, &mut late.amber] {
                whys.sort_by_key(|w| w.to_string());
                if whys.len() > LATE_LISTED {
                    let more = (whys.len() - LATE_LISTED) as u64;
                    whys.truncate(LATE_LISTED);
                    whys.push(Why::MoreOverdue { count: more });
                }
            }
        }
        open
    }
}

fn overdue(due: i64, now: i64) -> bool {
    now > due
}

/// Computes the metrics of the micro-grids `ords` (ordinals) at `now` into
/// the cache; returns those whose metrics moved.
pub fn mg_metrics(
    reg: &Registry,
    topo: &Topology,
    live: &LiveState,
    now: i64,
    cfg: &StatusConfig,
    cache: &mut RollupCache,
    ords: &[u32],
) -> Vec<u32> {
    let mut moved = Vec::new();
    let now_dt = DateTime::from_timestamp(now, 0).unwrap_or_default();
    let day_start = start_of_local_day(local_date(now_dt)).timestamp();
    let (today_from, today_to) = (day_start.div_euclid(60), (day_start + 86400).div_euclid(60));
    let mut open = Open::gather(reg, live, topo.mg_node.len(), now);
    for &o in ords {
        let o = o as usize;
        let mg = &live.mgs[o];
        let info = reg.node(topo.mg_node[o]);
        let (zone, since) = live.zone_of(reg, topo.mg_node[o]);
        let mut v = Sums {
            microgrids: 1,
            population: info.population,
            households: info.households,
            staff: u64::from(zone.staff_per_microgrid()),
            flags_open: open.flags[o],
            ..Sums::default()
        };
        v.set_open_by_level(open.by_level[o]);
        let mut patrolled_2h = false;
        for &(ts, persons) in &mg.recent_patrols {
            if ts > now - 3600 && ts <= now {
                v.patrols_1h += 1;
                v.persons_1h += u64::from(persons);
            }
            // A patrol stamped a little ahead of the clock (a device's
            // clock, or between two replay ticks) has happened: it was
            // received. It covers the micro-grid now.
            patrolled_2h |= ts > now - 7200;
        }
        v.closed = u64::from(zone.is_closed());
        v.patrolled_2h = u64::from(patrolled_2h);
        v.closed_patrolled_2h = u64::from(zone.is_closed() && patrolled_2h);
        for &(ts, samples) in &mg.recent_samples {
            if ts > now - 600 && ts <= now {
                v.samples_10min += u64::from(samples);
            }
        }
        for (_, b) in mg.buckets.range(today_from..today_to) {
            v.patrols_today += b.patrols;
            v.gatherings_dispersed += b.findings.gatherings_dispersed;
            v.people_persuaded += b.findings.people_persuaded;
            v.venues_closed += b.findings.venues_closed;
            v.vendors_cleared += b.findings.vendors_cleared;
            v.violations += b.findings.violations;
            v.samples_today += b.samples;
            v.raised_today += b.raised;
            v.rectified_today += b.rectified;
            v.reported_today += b.reported;
            v.resolved_today += b.resolved;
        }
        // The newest report's queue, when it is of today — also when it
        // is stamped a little ahead of the clock: it was received, and it
        // is the queue the site reported last.
        if let Some((qts, q)) = mg.queue
            && qts >= day_start
            && qts < day_start + 86400
        {
            v.queue = u64::from(q);
        }
        let rectify_min = mg
            .rectified
            .iter()
            .filter(|(ts, _)| *ts >= day_start && *ts <= now)
            .map(|&(_, minutes)| minutes)
            .collect();
        let exits = open
            .sealed_exits
            .get(&(o as u32))
            .map_or(&[][..], Vec::as_slice);
        let by_level = open.by_level[o];
        let late = open.late.remove(&(o as u32)).unwrap_or_default();
        v.incidents_overdue = late.incidents_overdue;
        v.transfer_overdue = late.transfer_overdue;
        v.due_before_16 = late.due_before_16;
        v.orders_overdue = late.orders_overdue;
        let resolve_min = mg
            .resolved
            .iter()
            .filter(|(ts, _)| *ts >= day_start && *ts <= now)
            .map(|&(_, minutes)| minutes)
            .collect();
        let judged = mg_status(
            &MgSigns {
                zone,
                zone_since: since,
                last_patrol: mg.last_patrol,
                exit_flags_raised: exits,
                flags_open: open.flags[o],
                serious_incidents: by_level[2] + by_level[3],
                late_red: &late.red,
                late_amber: &late.amber,
            },
            now,
            day_start,
            cfg,
        );
        v.red = u64::from(judged.status == Status::Red);
        v.amber = u64::from(judged.status == Status::Amber);
        let mut flags = open.flags_of.remove(&(o as u32)).unwrap_or_default();
        flags.sort_by(|a, b| flag_urgency(a).cmp(&flag_urgency(b)));
        let mut incidents = open.incidents_of.remove(&(o as u32)).unwrap_or_default();
        incidents.sort_by(|a, b| incident_urgency(a).cmp(&incident_urgency(b)));
        let own = Own {
            designation: live
                .designation_of(reg, topo.mg_node[o])
                .map(|(by, d)| (by, d.ts, d.reason.clone())),
            last_patrol: mg.last_patrol,
            flags,
            incidents,
        };
        let m = MgMetrics {
            zone,
            vals: v,
            patrol_age_min: judged.patrol_age_min,
            exit_flags: exits.len(),
            rectify_min,
            resolve_min,
            status: judged.status,
            why: judged.why,
            own,
        };
        if cache.metrics[o] != m {
            cache.set(o, m);
            moved.push(o as u32);
        }
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Fixture, patrol};
    use crate::state::LiveState;
    use gridwatch_model::state::Status;

    /// A patrol stamped ahead of the clock (between two replay ticks, or a
    /// device clock a little fast) has happened — it was received: its
    /// closed micro-grid is patrolled now. (Read as "not yet", it left the
    /// micro-grid unpatrolled since midnight and red until the clock caught
    /// up: spurious reds on the wall's ticker.)
    #[test]
    fn a_patrol_ahead_of_the_clock_counts_as_patrolled_now() {
        let fx = Fixture::new();
        let (reg, now) = (&fx.reg, fx.now);
        let mut live = LiveState::new(reg.microgrids.len());
        let mg = *reg
            .microgrids
            .iter()
            .find(|&&m| live.zone_of(reg, m).0.is_closed())
            .expect("a sealed or control micro-grid");
        let node = reg.node(mg).id.as_str().to_string();
        let evs = [patrol(&node, "p1", "13:00"), patrol(&node, "p2", "16:02")];
        fx.apply(&mut live, &evs, &mut vec![false; reg.nodes.len()]);
        let states = fx.full(&live, now);
        let s = states[mg as usize].as_ref().expect("its live");
        assert_eq!(s.status, Status::Green, "{:?}", s.why);
        assert_eq!(s.patrol.coverage_2h, 1.0);
        assert_eq!(s.patrol.oldest_last_patrol_min, Some(0));
        // The windowed counts stay by the clock (the patrol ahead of it is
        // not in the last hour's yet); the day's count has both.
        assert_eq!(s.patrol.patrols_1h, 0);
        assert_eq!(s.patrol.patrols_today, 2);
    }
}
