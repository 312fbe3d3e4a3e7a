//! Aggregation with polars.
//!
//! - [`fold_batch`]: the counting rows of one micro-batch, grouped by
//!   (micro-grid, minute) and summed, then added to the per-minute buckets
//!   and the pending Parquet history.
//! - [`compute_states`]: per-micro-grid metrics at the clock's "now"
//!   (windows, today, open flags and incidents, zone, status with reasons),
//!   rolled up with polars group-bys to grid, community, street and district,
//!   and per zone class at every level.

use chrono::DateTime;
use gridwatch_model::event::{FlagKind, IncidentAction};
use gridwatch_model::state::{
    ChildSummary, FlagOpen, IncidentAgg, IncidentOpen, MgDetail, PatrolAgg, RED_LIST_LIMIT,
    RedNode, Status, TestingAgg, VideoAgg, Why, ZoneAgg, Zones,
};
use gridwatch_model::time::{local_date, start_of_local_day, to_local_rfc3339};
use gridwatch_model::{Level, NodeState, Registry, Zone};
use polars::prelude::*;
use std::collections::HashMap;

use crate::config::StatusConfig;
use crate::state::{Bucket, LiveState, Row, Topology};

/// Names of the count columns of a [`Bucket`], in [`bucket_values`] order.
pub const COUNT_COLS: [&str; 13] = [
    "patrols",
    "persons",
    "gatherings_dispersed",
    "people_persuaded",
    "venues_closed",
    "vendors_cleared",
    "violations",
    "samples",
    "reports",
    "raised",
    "rectified",
    "reported",
    "resolved",
];

/// A bucket's counts in [`COUNT_COLS`] order.
pub fn bucket_values(b: &Bucket) -> [u64; 13] {
    [
        b.patrols,
        b.persons,
        b.findings.gatherings_dispersed,
        b.findings.people_persuaded,
        b.findings.venues_closed,
        b.findings.vendors_cleared,
        b.findings.violations,
        b.samples,
        b.reports,
        b.raised,
        b.rectified,
        b.reported,
        b.resolved,
    ]
    .map(u64::from)
}

fn bucket_from(v: &[u64]) -> Bucket {
    let c = |i: usize| u32::try_from(v[i]).unwrap_or(u32::MAX);
    let mut b = Bucket {
        patrols: c(0),
        persons: c(1),
        samples: c(7),
        reports: c(8),
        raised: c(9),
        rectified: c(10),
        reported: c(11),
        resolved: c(12),
        ..Default::default()
    };
    b.findings.gatherings_dispersed = c(2);
    b.findings.people_persuaded = c(3);
    b.findings.venues_closed = c(4);
    b.findings.vendors_cleared = c(5);
    b.findings.violations = c(6);
    b
}

/// A frame of (mg, minute, counts…) rows.
pub fn rows_frame(rows: &[Row]) -> PolarsResult<DataFrame> {
    let mut cols: Vec<Column> = Vec::with_capacity(2 + COUNT_COLS.len());
    cols.push(Column::new(
        "mg".into(),
        rows.iter().map(|r| r.mg).collect::<Vec<u32>>(),
    ));
    cols.push(Column::new(
        "minute".into(),
        rows.iter().map(|r| r.minute).collect::<Vec<i64>>(),
    ));
    let values: Vec<[u64; 13]> = rows.iter().map(|r| bucket_values(&r.counts)).collect();
    for (i, name) in COUNT_COLS.iter().enumerate() {
        cols.push(Column::new(
            (*name).into(),
            values.iter().map(|v| v[i]).collect::<Vec<u64>>(),
        ));
    }
    DataFrame::new(rows.len(), cols)
}

/// Groups a batch's rows by (micro-grid, minute) and sums them.
pub fn group_rows(rows: &[Row]) -> PolarsResult<Vec<Row>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let df = rows_frame(rows)?
        .lazy()
        .group_by([col("mg"), col("minute")])
        .agg(COUNT_COLS.map(|c| col(c).sum()))
        .collect()?;
    let mg = df.column("mg")?.u32()?;
    let minute = df.column("minute")?.i64()?;
    let counts: Vec<&UInt64Chunked> = COUNT_COLS
        .iter()
        .map(|c| df.column(c).and_then(|s| s.u64()))
        .collect::<PolarsResult<_>>()?;
    let mut out = Vec::with_capacity(df.height());
    let mut v = [0u64; 13];
    for i in 0..df.height() {
        for (j, c) in counts.iter().enumerate() {
            v[j] = c.get(i).unwrap_or(0);
        }
        if let (Some(mg), Some(minute)) = (mg.get(i), minute.get(i)) {
            out.push(Row {
                mg,
                minute,
                counts: bucket_from(&v),
            });
        }
    }
    Ok(out)
}

/// Aggregates a batch's rows and adds them to the live state's buckets and
/// pending history. Returns how many (micro-grid, minute) groups changed.
pub fn fold_batch(state: &mut LiveState, rows: &[Row]) -> PolarsResult<usize> {
    let grouped = group_rows(rows)?;
    for r in &grouped {
        state.mgs[r.mg as usize]
            .buckets
            .entry(r.minute)
            .or_default()
            .add(&r.counts);
        state
            .pending_history
            .entry((r.mg, r.minute))
            .or_default()
            .add(&r.counts);
    }
    Ok(grouped.len())
}

/// The roll-up's value columns: what each micro-grid contributes to the
/// sums of every node above it (and of itself).
const COLS: [&str; NCOLS] = [
    "microgrids",
    "population",
    "households",
    "staff",
    "patrols_1h",
    "persons_1h",
    "patrols_today",
    "closed",
    "closed_patrolled_2h",
    "patrolled_2h",
    "f0",
    "f1",
    "f2",
    "f3",
    "f4",
    "samples_today",
    "samples_10min",
    "queue",
    "flags_open",
    "raised_today",
    "rectified_today",
    "red",
    "amber",
    "open_l1",
    "open_l2",
    "open_l3",
    "open_l4",
    "reported_today",
    "resolved_today",
];
const NCOLS: usize = 29;

/// Indices into [`COLS`].
mod c {
    pub const MICROGRIDS: usize = 0;
    pub const POPULATION: usize = 1;
    pub const HOUSEHOLDS: usize = 2;
    pub const STAFF: usize = 3;
    pub const PATROLS_1H: usize = 4;
    pub const PERSONS_1H: usize = 5;
    pub const PATROLS_TODAY: usize = 6;
    pub const CLOSED: usize = 7;
    pub const CLOSED_PATROLLED_2H: usize = 8;
    pub const PATROLLED_2H: usize = 9;
    pub const F0: usize = 10;
    pub const SAMPLES_TODAY: usize = 15;
    pub const SAMPLES_10MIN: usize = 16;
    pub const QUEUE: usize = 17;
    pub const FLAGS_OPEN: usize = 18;
    pub const RAISED_TODAY: usize = 19;
    pub const RECTIFIED_TODAY: usize = 20;
    pub const RED: usize = 21;
    pub const AMBER: usize = 22;
    pub const OPEN_L1: usize = 23;
    pub const REPORTED_TODAY: usize = 27;
    pub const RESOLVED_TODAY: usize = 28;
}

type Sums = [u64; NCOLS];

/// Metrics of one micro-grid at "now".
#[derive(Clone, Debug, Default, PartialEq)]
struct MgMetrics {
    zone: Zone,
    /// Its contribution to every sum, in [`COLS`] order.
    vals: Sums,
    /// Minutes since the last patrol (sealed and control only).
    patrol_age_min: Option<i64>,
    /// Open sealed-zone exit flags.
    exit_flags: usize,
    /// Minutes each flag rectified today was open.
    rectify_min: Vec<f64>,
    status: Status,
    why: Vec<Why>,
    /// What only the micro-grid's own state shows.
    own: Own,
}

/// A micro-grid's designation, last patrol and open flags and incidents,
/// with times as Unix seconds (formatted only for the states built).
#[derive(Clone, Debug, Default, PartialEq)]
struct Own {
    /// (node it was made on, when, why).
    designation: Option<(u32, i64, String)>,
    last_patrol: Option<i64>,
    /// Open flags, oldest first.
    flags: Vec<OwnFlag>,
    /// Open incidents, oldest first.
    incidents: Vec<OwnIncident>,
}

/// (id, kind, severity, raised).
type OwnFlag = (String, FlagKind, u8, i64);
/// (id, level, category, reported, last action).
type OwnIncident = (String, u8, String, i64, IncidentAction);

impl Own {
    fn detail(&self, reg: &Registry) -> MgDetail {
        let t = |ts: i64| to_local_rfc3339(DateTime::from_timestamp(ts, 0).unwrap_or_default());
        MgDetail {
            zone_since: self.designation.as_ref().map(|d| t(d.1)),
            zone_reason: self.designation.as_ref().map(|d| d.2.clone()),
            zone_by: self
                .designation
                .as_ref()
                .map(|d| reg.node(d.0).id.to_string()),
            last_patrol: self.last_patrol.map(t),
            open_flags: self
                .flags
                .iter()
                .map(|(id, kind, severity, raised)| FlagOpen {
                    flag_id: id.clone(),
                    kind: *kind,
                    severity: *severity,
                    raised: t(*raised),
                })
                .collect(),
            open_incidents: self
                .incidents
                .iter()
                .map(|(id, level, category, reported, last)| IncidentOpen {
                    incident_id: id.clone(),
                    level: *level,
                    category: category.clone(),
                    reported: t(*reported),
                    last_action: *last,
                })
                .collect(),
        }
    }
}

/// What the roll-up keeps between recomputes: every micro-grid's metrics as
/// of the last time it was computed, and which micro-grids lie under each
/// node. A partial recompute refreshes the touched micro-grids only and
/// sums the cached metrics for the nodes above them, so a batch costs what
/// it touched, not the whole district.
pub struct RollupCache {
    metrics: Vec<MgMetrics>,
    /// Micro-grid ordinals under each registry node (itself for a
    /// micro-grid), in registry order.
    under: Vec<Vec<u32>>,
    /// The path (district … micro-grid) of each micro-grid ordinal.
    paths: Vec<[u32; 5]>,
    /// Registry index → micro-grid ordinal.
    mg_of: HashMap<u32, usize>,
    /// The roll-up of every node, kept current: sums move by each
    /// micro-grid's change; the oldest patrol age and the median are
    /// recomputed for the nodes a recompute covers.
    rolled: Rolled,
    /// Set once every micro-grid's metrics have been computed.
    filled: bool,
}

impl RollupCache {
    pub fn new(reg: &Registry, topo: &Topology) -> Self {
        let paths: Vec<[u32; 5]> = topo
            .mg_node
            .iter()
            .map(|&i| reg.node(i).mg.as_ref().map(|m| m.path).unwrap_or_default())
            .collect();
        let mut under = vec![Vec::new(); reg.nodes.len()];
        for (o, path) in paths.iter().enumerate() {
            for &a in path {
                under[a as usize].push(o as u32);
            }
        }
        Self {
            metrics: vec![MgMetrics::default(); topo.mg_node.len()],
            under,
            paths,
            mg_of: topo
                .mg_node
                .iter()
                .enumerate()
                .map(|(o, &i)| (i, o))
                .collect(),
            rolled: Rolled::new(reg.nodes.len()),
            filled: false,
        }
    }

    /// Samples taken today under registry node `i`, as of the last
    /// recompute.
    pub fn samples_today(&self, i: usize) -> u64 {
        self.rolled.totals.get(i).map_or(0, |t| t[c::SAMPLES_TODAY])
    }

    /// Stores a micro-grid's new metrics and moves the sums of the nodes on
    /// its path by the difference.
    fn set(&mut self, o: usize, m: MgMetrics) {
        let old = std::mem::replace(&mut self.metrics[o], m);
        let new = &self.metrics[o];
        for &a in &self.paths[o] {
            let a = a as usize;
            let total = &mut self.rolled.totals[a];
            for ((t, n), o) in total.iter_mut().zip(&new.vals).zip(&old.vals) {
                *t = *t + n - o;
            }
            let zones = &mut self.rolled.zones[a];
            for (z, o) in zones[old.zone.index()].iter_mut().zip(&old.vals) {
                *z -= o;
            }
            for (z, n) in zones[new.zone.index()].iter_mut().zip(&new.vals) {
                *z += n;
            }
        }
    }
}

fn hm(ts: i64) -> String {
    DateTime::from_timestamp(ts, 0)
        .map(|t| to_local_rfc3339(t)[11..16].to_string())
        .unwrap_or_default()
}

/// Computes the metrics of the micro-grids `ords` (ordinals) at `now` into
/// the cache; returns those whose metrics moved.
fn mg_metrics(
    reg: &Registry,
    topo: &Topology,
    state: &LiveState,
    now: i64,
    cfg: &StatusConfig,
    cache: &mut RollupCache,
    ords: &[u32],
) -> Vec<u32> {
    let mut moved = Vec::new();
    let now_dt = DateTime::from_timestamp(now, 0).unwrap_or_default();
    let day_start = start_of_local_day(local_date(now_dt)).timestamp();
    let (today_from, today_to) = (day_start.div_euclid(60), (day_start + 86400).div_euclid(60));
    let mut sealed_exits: HashMap<u32, Vec<i64>> = HashMap::new();
    let mut flags_open = vec![0u64; topo.mg_node.len()];
    let mut flags_of: HashMap<u32, Vec<OwnFlag>> = HashMap::new();
    for (id, f) in &state.flags {
        flags_open[f.mg as usize] += 1;
        if f.kind == FlagKind::SealedExit {
            sealed_exits.entry(f.mg).or_default().push(f.raised);
        }
        flags_of
            .entry(f.mg)
            .or_default()
            .push((id.clone(), f.kind, f.severity, f.raised));
    }
    for v in sealed_exits.values_mut() {
        v.sort_unstable();
    }
    let mut open_by_level = vec![[0u64; 4]; topo.mg_node.len()];
    let mut incidents_of: HashMap<u32, Vec<OwnIncident>> = HashMap::new();
    for (id, inc) in &state.incidents {
        if inc.resolved.is_none() {
            let l = usize::from(inc.level.clamp(1, 4)) - 1;
            open_by_level[inc.mg as usize][l] += 1;
            incidents_of.entry(inc.mg).or_default().push((
                id.clone(),
                inc.level,
                inc.category.clone(),
                inc.reported,
                inc.last_action,
            ));
        }
    }
    for &o in ords {
        let o = o as usize;
        let mg = &state.mgs[o];
        let info = reg.node(topo.mg_node[o]);
        let (zone, since) = state.zone_of(reg, topo.mg_node[o]);
        let mut v: Sums = [0; NCOLS];
        v[c::MICROGRIDS] = 1;
        v[c::POPULATION] = info.population;
        v[c::HOUSEHOLDS] = info.households;
        v[c::STAFF] = u64::from(zone.staff_per_microgrid());
        v[c::FLAGS_OPEN] = flags_open[o];
        v[c::OPEN_L1..c::OPEN_L1 + 4].copy_from_slice(&open_by_level[o]);
        let mut patrolled_2h = false;
        for &(ts, persons) in &mg.recent_patrols {
            if ts > now - 3600 && ts <= now {
                v[c::PATROLS_1H] += 1;
                v[c::PERSONS_1H] += u64::from(persons);
            }
            // A patrol stamped a little ahead of the clock (a device's
            // clock, or between two replay ticks) has happened: it was
            // received. It covers the micro-grid now.
            patrolled_2h |= ts > now - 7200;
        }
        v[c::CLOSED] = u64::from(zone.is_closed());
        v[c::PATROLLED_2H] = u64::from(patrolled_2h);
        v[c::CLOSED_PATROLLED_2H] = u64::from(zone.is_closed() && patrolled_2h);
        for &(ts, samples) in &mg.recent_samples {
            if ts > now - 600 && ts <= now {
                v[c::SAMPLES_10MIN] += u64::from(samples);
            }
        }
        for (_, b) in mg.buckets.range(today_from..today_to) {
            v[c::PATROLS_TODAY] += u64::from(b.patrols);
            v[c::F0] += u64::from(b.findings.gatherings_dispersed);
            v[c::F0 + 1] += u64::from(b.findings.people_persuaded);
            v[c::F0 + 2] += u64::from(b.findings.venues_closed);
            v[c::F0 + 3] += u64::from(b.findings.vendors_cleared);
            v[c::F0 + 4] += u64::from(b.findings.violations);
            v[c::SAMPLES_TODAY] += u64::from(b.samples);
            v[c::RAISED_TODAY] += u64::from(b.raised);
            v[c::RECTIFIED_TODAY] += u64::from(b.rectified);
            v[c::REPORTED_TODAY] += u64::from(b.reported);
            v[c::RESOLVED_TODAY] += u64::from(b.resolved);
        }
        if let Some((qts, q)) = mg.queue
            && qts >= day_start
            && qts <= now
        {
            v[c::QUEUE] = u64::from(q);
        }
        let rectify_min = mg
            .rectified
            .iter()
            .filter(|(ts, _)| *ts >= day_start && *ts <= now)
            .map(|&(_, minutes)| minutes)
            .collect();
        // Status and reasons.
        let mut red = Vec::new();
        let mut amber = Vec::new();
        let exits = sealed_exits.get(&(o as u32)).map_or(&[][..], Vec::as_slice);
        for r in exits {
            red.push(Why::ExitFlagOpen { since: hm(*r) });
        }
        let mut patrol_age_min = None;
        if zone.is_closed() {
            // Ahead of the clock counts as now (see above): filtering it out
            // instead read as "never patrolled today" and turned the
            // micro-grid red with its age since midnight until the clock
            // caught up.
            let last = mg.last_patrol.map(|t| t.min(now));
            let reference = last.into_iter().chain(since).fold(day_start, i64::max);
            let age = (now - reference).max(0) / 60;
            patrol_age_min = Some(last.map_or(age, |l| (now - l).max(0) / 60));
            let why = Why::Unpatrolled { zone, minutes: age };
            if age >= cfg.unpatrolled_red_min {
                red.push(why);
            } else if age >= cfg.unpatrolled_amber_min {
                amber.push(why);
            }
        }
        let other_flags = flags_open[o] - exits.len() as u64;
        if other_flags > 0 {
            amber.push(Why::FlagsOpen { count: other_flags });
        }
        let serious: u64 = open_by_level[o][2] + open_by_level[o][3];
        if serious > 0 {
            amber.push(Why::SeriousIncidents { count: serious });
        }
        let (status, why) = if !red.is_empty() {
            (Status::Red, red)
        } else if !amber.is_empty() {
            (Status::Amber, amber)
        } else {
            (Status::Green, Vec::new())
        };
        v[c::RED] = u64::from(status == Status::Red);
        v[c::AMBER] = u64::from(status == Status::Amber);
        let mut flags = flags_of.remove(&(o as u32)).unwrap_or_default();
        flags.sort_by(|a, b| (a.3, &a.0).cmp(&(b.3, &b.0)));
        let mut incidents = incidents_of.remove(&(o as u32)).unwrap_or_default();
        incidents.sort_by(|a, b| (a.3, &a.0).cmp(&(b.3, &b.0)));
        let own = Own {
            designation: state
                .designation_of(reg, topo.mg_node[o])
                .map(|(by, d)| (by, d.ts, d.reason.clone())),
            last_patrol: mg.last_patrol,
            flags,
            incidents,
        };
        let m = MgMetrics {
            zone,
            vals: v,
            patrol_age_min,
            exit_flags: exits.len(),
            rectify_min,
            status,
            why,
            own,
        };
        if cache.metrics[o] != m {
            cache.set(o, m);
            moved.push(o as u32);
        }
    }
    moved
}

/// The roll-up of the micro-grids under every node, indexed like the
/// registry.
struct Rolled {
    totals: Vec<Sums>,
    /// Per zone class (in [`Zone::ALL`] order).
    zones: Vec<[Sums; 4]>,
    /// Oldest patrol age (minutes) of the closed micro-grids under a node.
    oldest: Vec<Option<i64>>,
    /// Median minutes to rectify a flag, today.
    medians: Vec<Option<f64>>,
}

impl Rolled {
    fn new(nodes: usize) -> Self {
        Self {
            totals: vec![[0; NCOLS]; nodes],
            zones: vec![[[0; NCOLS]; 4]; nodes],
            oldest: vec![None; nodes],
            medians: vec![None; nodes],
        }
    }
}

fn sums_by(lf: &LazyFrame, keys: &[&str]) -> PolarsResult<HashMap<(u32, u32), Sums>> {
    let df = lf
        .clone()
        .group_by(keys.iter().map(|k| col(*k)).collect::<Vec<_>>())
        .agg(COLS.iter().map(|c| col(*c).sum()).collect::<Vec<_>>())
        .collect()?;
    // Whole columns out at once (per-row `get` looks up the chunk each time).
    let key = |k: &str| -> PolarsResult<Vec<u32>> {
        Ok(df
            .column(k)?
            .u32()?
            .iter()
            .map(|v| v.unwrap_or(0))
            .collect())
    };
    let k0 = key(keys[0])?;
    let k1 = keys.get(1).map(|k| key(k)).transpose()?;
    let cols: Vec<Vec<u64>> = COLS
        .iter()
        .map(|c| {
            df.column(c)
                .and_then(|s| s.u64())
                .map(|a| a.iter().map(|v| v.unwrap_or(0)).collect())
        })
        .collect::<PolarsResult<_>>()?;
    let mut out = HashMap::with_capacity(df.height());
    for i in 0..df.height() {
        let key = (k0[i], k1.as_ref().map_or(0, |k| k[i]));
        out.insert(key, std::array::from_fn(|j| cols[j][i]));
    }
    Ok(out)
}

/// `lf` (columns `k0`…`k4` = the path of each micro-grid) with each row
/// repeated once per level, keyed by that level's node as `key`.
fn by_ancestor(lf: &LazyFrame, cols: &[&str]) -> PolarsResult<LazyFrame> {
    let parts: Vec<LazyFrame> = (0..5)
        .map(|d| {
            let mut sel = vec![col(format!("k{d}")).alias("key")];
            sel.extend(cols.iter().map(|c| col(*c)));
            lf.clone().select(sel)
        })
        .collect();
    concat(parts, UnionArgs::default())
}

fn f64_by(lf: LazyFrame, key: &str, value: Expr) -> PolarsResult<HashMap<u32, f64>> {
    let df = lf.group_by([col(key)]).agg([value.alias("v")]).collect()?;
    let k = df.column(key)?.u32()?;
    let v = df.column("v")?.cast(&DataType::Float64)?;
    let v = v.f64()?;
    let out = k
        .iter()
        .zip(v.iter())
        .filter_map(|(k, v)| Some((k?, v?)))
        .collect();
    Ok(out)
}

/// The full roll-up, with polars: one row per (micro-grid, ancestor or
/// itself), so every level rolls up in one group-by. Replaces the cache's.
fn rollup_polars(cache: &mut RollupCache) -> PolarsResult<()> {
    let metrics = &cache.metrics;
    let n = metrics.len();
    let mut cols: Vec<Column> = Vec::new();
    for d in 0..5 {
        cols.push(Column::new(
            format!("k{d}").into(),
            cache.paths.iter().map(|p| p[d]).collect::<Vec<u32>>(),
        ));
    }
    cols.push(Column::new(
        "zone".into(),
        metrics
            .iter()
            .map(|m| m.zone.index() as u32)
            .collect::<Vec<u32>>(),
    ));
    for (j, name) in COLS.iter().enumerate() {
        cols.push(Column::new(
            (*name).into(),
            metrics.iter().map(|m| m.vals[j]).collect::<Vec<u64>>(),
        ));
    }
    cols.push(Column::new(
        "patrol_age".into(),
        metrics
            .iter()
            .map(|m| m.patrol_age_min)
            .collect::<Vec<Option<i64>>>(),
    ));
    let lf = DataFrame::new(n, cols)?.lazy();

    // Minutes to rectify of the flags rectified today, for medians.
    let mut rk: [Vec<u32>; 5] = Default::default();
    let mut rmin: Vec<f64> = Vec::new();
    for (o, m) in metrics.iter().enumerate() {
        for &minutes in &m.rectify_min {
            for (d, k) in rk.iter_mut().enumerate() {
                k.push(cache.paths[o][d]);
            }
            rmin.push(minutes);
        }
    }
    let mut rcols: Vec<Column> = rk
        .into_iter()
        .enumerate()
        .map(|(d, v)| Column::new(format!("k{d}").into(), v))
        .collect();
    let rn = rmin.len();
    rcols.push(Column::new("minutes".into(), rmin));
    let rlf = DataFrame::new(rn, rcols)?.lazy();

    let mut value_cols: Vec<&str> = vec!["zone", "patrol_age"];
    value_cols.extend(COLS);
    let up = by_ancestor(&lf, &value_cols)?;
    let rup = by_ancestor(&rlf, &["minutes"])?;
    let mut rolled = Rolled::new(cache.rolled.totals.len());
    for ((k, _), v) in sums_by(&up, &["key"])? {
        if let Some(t) = rolled.totals.get_mut(k as usize) {
            *t = v;
        }
    }
    for ((k, z), v) in sums_by(&up, &["key", "zone"])? {
        if let Some(t) = rolled.zones.get_mut(k as usize) {
            t[(z as usize).min(3)] = v;
        }
    }
    for (k, v) in f64_by(up, "key", col("patrol_age").max())? {
        if let Some(o) = rolled.oldest.get_mut(k as usize) {
            *o = Some(v as i64);
        }
    }
    for (k, v) in f64_by(rup, "key", col("minutes").median())? {
        if let Some(m) = rolled.medians.get_mut(k as usize) {
            *m = Some(v);
        }
    }
    cache.rolled = rolled;
    Ok(())
}

/// The median as polars computes it (linear interpolation).
fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable_by(f64::total_cmp);
    let idx = (v.len() - 1) as f64 * 0.5;
    let (lo, hi) = (v[idx as usize], v[idx.ceil() as usize]);
    Some(if lo == hi {
        lo
    } else {
        (idx - idx.floor()) * (hi - lo) + lo
    })
}

/// Recomputes the oldest patrol age and the median time to rectify of the
/// nodes marked in `mask` from the cached micro-grid metrics (their sums are
/// kept current by [`RollupCache::set`]): the figures [`rollup_polars`]
/// gives them.
fn rollup_direct(cache: &mut RollupCache, mask: &[bool]) {
    let mut minutes = Vec::new();
    for (i, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
        let mut oldest: Option<i64> = None;
        minutes.clear();
        for &o in &cache.under[i] {
            let m = &cache.metrics[o as usize];
            oldest = oldest.max(m.patrol_age_min);
            minutes.extend_from_slice(&m.rectify_min);
        }
        cache.rolled.oldest[i] = oldest;
        cache.rolled.medians[i] = median(&mut minutes);
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        // Rounded to 4 decimals so the value is stable on the wire.
        ((a as f64 / b as f64) * 10_000.0).round() / 10_000.0
    }
}

fn zone_agg(v: &Sums) -> ZoneAgg {
    ZoneAgg {
        microgrids: v[c::MICROGRIDS] as u32,
        population: v[c::POPULATION],
        households: v[c::HOUSEHOLDS],
        staff: v[c::STAFF],
        patrolled_2h: v[c::PATROLLED_2H] as u32,
        coverage_2h: ratio(v[c::PATROLLED_2H], v[c::MICROGRIDS]),
        samples_today: v[c::SAMPLES_TODAY],
        completion_today: ratio(v[c::SAMPLES_TODAY], v[c::POPULATION]),
        flags_open: v[c::FLAGS_OPEN],
        red: v[c::RED] as u32,
        amber: v[c::AMBER] as u32,
    }
}

/// Which nodes a recompute covers.
#[derive(Clone, Copy, Debug)]
pub enum Scope<'a> {
    /// Every micro-grid's metrics and every node, rolled up with polars.
    Full,
    /// Every micro-grid's metrics (time has moved windows and ages); the
    /// nodes above the micro-grids whose metrics moved, and those marked,
    /// summed from the cache.
    Refresh(&'a [bool]),
    /// The marked micro-grids' metrics; the marked nodes (a micro-grid's
    /// ancestors must be marked with it) summed from the cache.
    Touched(&'a [bool]),
}

/// Computes the state of the nodes (indexed like the registry) at `now`
/// that `scope` covers; the others are `None`.
///
/// Between full recomputes the cache holds every micro-grid's metrics as of
/// the last time it was computed: `Touched` refreshes the touched ones only,
/// `Refresh` all of them but builds only the nodes whose figures moved. A
/// node's state depends on nothing but the metrics of the micro-grids under
/// it, so both give the figures a `Full` recompute gives at the same `now`
/// (the unit tests compare them). `seq` is left at 0 for the publisher.
pub fn compute_states(
    reg: &Registry,
    topo: &Topology,
    state: &LiveState,
    now: i64,
    cfg: &StatusConfig,
    cache: &mut RollupCache,
    scope: Scope,
) -> PolarsResult<Vec<Option<NodeState>>> {
    let scope = if cache.filled { scope } else { Scope::Full };
    let all: Vec<u32> = (0..topo.mg_node.len() as u32).collect();
    let mask = match scope {
        Scope::Full => {
            mg_metrics(reg, topo, state, now, cfg, cache, &all);
            cache.filled = true;
            rollup_polars(cache)?;
            None
        }
        Scope::Refresh(marked) => {
            let moved = mg_metrics(reg, topo, state, now, cfg, cache, &all);
            let mut mask = marked.to_vec();
            mask.resize(reg.nodes.len(), false);
            for o in moved {
                for &a in &cache.paths[o as usize] {
                    mask[a as usize] = true;
                }
            }
            rollup_direct(cache, &mask);
            Some(mask)
        }
        Scope::Touched(marked) => {
            let touched: Vec<u32> = topo
                .mg_node
                .iter()
                .enumerate()
                .filter(|(_, n)| marked.get(**n as usize).copied().unwrap_or(false))
                .map(|(o, _)| o as u32)
                .collect();
            mg_metrics(reg, topo, state, now, cfg, cache, &touched);
            let mut mask = marked.to_vec();
            mask.resize(reg.nodes.len(), false);
            rollup_direct(cache, &mask);
            Some(mask)
        }
    };
    let wanted = |i: u32| {
        mask.as_ref()
            .is_none_or(|m| m.get(i as usize).copied().unwrap_or(false))
    };
    let metrics = &cache.metrics;
    let rolled = &cache.rolled;

    // Red lists: the most urgent red micro-grids under every node — open
    // sealed-zone exits first, then the longest unpatrolled, then registry
    // order.
    let mut reds: Vec<usize> = (0..metrics.len())
        .filter(|&o| metrics[o].status == Status::Red)
        .collect();
    reds.sort_by_key(|&o| {
        let m = &metrics[o];
        (
            std::cmp::Reverse(m.exit_flags),
            std::cmp::Reverse(m.patrol_age_min),
            o,
        )
    });
    let mut red_lists: HashMap<u32, Vec<RedNode>> = HashMap::new();
    for o in reds {
        let m = &metrics[o];
        let info = reg.node(topo.mg_node[o]);
        let red = RedNode {
            node: info.id.to_string(),
            name: info.name.clone(),
            zone: m.zone,
            why: m.why.clone(),
        };
        for &a in cache.paths[o].iter().filter(|&&a| wanted(a)) {
            let list = red_lists.entry(a).or_default();
            if list.len() < RED_LIST_LIMIT {
                list.push(red.clone());
            }
        }
    }

    let now_dt = DateTime::from_timestamp(now, 0).unwrap_or_default();
    let as_of = to_local_rfc3339(now_dt);
    let mut states: Vec<Option<NodeState>> = Vec::with_capacity(reg.nodes.len());
    for (i, info) in reg.nodes.iter().enumerate() {
        let i = i as u32;
        if !wanted(i) {
            states.push(None);
            continue;
        }
        let g = &rolled.totals[i as usize];
        let mut zones = Zones::default();
        for z in Zone::ALL {
            let v = &rolled.zones[i as usize][z.index()];
            if v[c::MICROGRIDS] > 0 {
                *zones.get_mut(z) = zone_agg(v);
            }
        }
        let red_nodes = red_lists.remove(&i).unwrap_or_default();
        let mg = cache.mg_of.get(&i).map(|&o| &metrics[o]);
        let (status, why) = match mg {
            Some(m) => (m.status, m.why.clone()),
            None => rollup_status(g[c::RED], g[c::AMBER], &red_nodes),
        };
        let reasons = why.iter().map(Why::to_string).collect();
        let samples_10 = g[c::SAMPLES_10MIN];
        let population = g[c::POPULATION];
        let samples_today = g[c::SAMPLES_TODAY];
        let eta_min = (samples_10 > 0).then(|| {
            let left = population.saturating_sub(samples_today);
            (left * 10).div_ceil(samples_10)
        });
        let open = &g[c::OPEN_L1..c::OPEN_L1 + 4];
        let f = &g[c::F0..c::F0 + 5];
        let children = if info.level == Level::Microgrid {
            Vec::new()
        } else {
            info.children
                .iter()
                .map(|&ch| {
                    let t = &rolled.totals[ch as usize];
                    let status = match cache.mg_of.get(&ch) {
                        Some(&o) => metrics[o].status,
                        None if t[c::RED] > 0 => Status::Red,
                        None if t[c::AMBER] > 0 => Status::Amber,
                        None => Status::Green,
                    };
                    let child = reg.node(ch);
                    ChildSummary {
                        node: child.id.to_string(),
                        name: child.name.clone(),
                        name_en: child.name_en.clone(),
                        status,
                        population: t[c::POPULATION],
                        microgrids: t[c::MICROGRIDS] as u32,
                        red: t[c::RED] as u32,
                        amber: t[c::AMBER] as u32,
                    }
                })
                .collect()
        };
        states.push(Some(NodeState {
            node: info.id.to_string(),
            name: info.name.clone(),
            level: info.level,
            as_of: as_of.clone(),
            seq: 0,
            microgrids: g[c::MICROGRIDS] as u32,
            population,
            households: g[c::HOUSEHOLDS],
            staff: g[c::STAFF],
            zone: mg.map(|m| m.zone),
            zones,
            patrol: PatrolAgg {
                patrols_1h: g[c::PATROLS_1H],
                persons_1h: g[c::PERSONS_1H],
                patrols_today: g[c::PATROLS_TODAY],
                coverage_2h: ratio(g[c::CLOSED_PATROLLED_2H], g[c::CLOSED]),
                oldest_last_patrol_min: rolled.oldest[i as usize],
                findings_today: gridwatch_model::event::Findings {
                    gatherings_dispersed: f[0] as u32,
                    people_persuaded: f[1] as u32,
                    venues_closed: f[2] as u32,
                    vendors_cleared: f[3] as u32,
                    violations: f[4] as u32,
                },
            },
            testing: TestingAgg {
                samples_today,
                completion_today: ratio(samples_today, population),
                samples_10min: samples_10,
                queue: g[c::QUEUE],
                eta_min,
            },
            video: VideoAgg {
                flags_open: g[c::FLAGS_OPEN],
                raised_today: g[c::RAISED_TODAY],
                rectified_today: g[c::RECTIFIED_TODAY],
                median_rectify_min: rolled.medians[i as usize].map(|m| (m * 10.0).round() / 10.0),
            },
            incidents: IncidentAgg {
                open: open.iter().sum(),
                open_by_level: [open[0], open[1], open[2], open[3]],
                reported_today: g[c::REPORTED_TODAY],
                resolved_today: g[c::RESOLVED_TODAY],
            },
            status,
            reasons,
            why,
            red_microgrids: g[c::RED] as u32,
            amber_microgrids: g[c::AMBER] as u32,
            red_nodes,
            children,
            detail: mg.map(|m| m.own.detail(reg)),
        }));
    }
    Ok(states)
}

/// Status of a node above the micro-grids: the worst below it, with the
/// first red micro-grids' reasons.
fn rollup_status(red: u64, amber: u64, red_nodes: &[RedNode]) -> (Status, Vec<Why>) {
    const SHOWN: usize = 5;
    if red > 0 {
        let mut why: Vec<Why> = red_nodes
            .iter()
            .flat_map(|r| {
                r.why.iter().map(move |w| Why::At {
                    node: r.node.clone(),
                    name: r.name.clone(),
                    why: Box::new(w.clone()),
                })
            })
            .take(SHOWN)
            .collect();
        let listed = red_nodes.iter().take(SHOWN).count() as u64;
        if red > listed.min(why.len() as u64) && red > 1 {
            why.push(Why::RedInAll { count: red });
        }
        (Status::Red, why)
    } else if amber > 0 {
        (Status::Amber, vec![Why::AmberBelow { count: amber }])
    } else {
        (Status::Green, Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{TimeRules, validate};

    /// A partial recompute (only the nodes events touched, summed from the
    /// cache) yields exactly the states a full polars recompute gives them.
    #[test]
    fn partial_recompute_matches_full() {
        let fx = Fixture::new();
        let (reg, topo, now, cfg) = (&fx.reg, &fx.topo, fx.now, &fx.cfg);
        let mut state = LiveState::new(reg.microgrids.len());
        let id = |k: usize| reg.node(reg.microgrids[k]).id.as_str().to_string();
        let video = |n: &str, id: &str, flag: &str, kind: &str, action: &str, ts: &str| {
            (
                format!("gw.ev.video.{}", street(n)),
                format!(
                    r#"{{"v":1,"kind":"video","id":"{id}","ts":"2022-10-15T{ts}:00+08:00","node":"{n}","camera":"c","flag_id":"{flag}","flag":"{kind}","action":"{action}","severity":3}}"#
                ),
            )
        };
        let (a, b, d) = (id(42), id(4000), id(43));
        let before = [
            patrol(&d, "p0", "15:00"),
            video(&d, "v0", "f0", "gathering", "raised", "15:00"),
            video(&d, "v0r", "f0", "gathering", "rectified", "15:10"),
        ];
        let after = [
            patrol(&a, "p1", "15:50"),
            video(&b, "v1", "f1", "sealed_exit", "raised", "15:55"),
            video(&a, "v2", "f2", "gathering", "raised", "15:20"),
            video(&a, "v2r", "f2", "gathering", "rectified", "15:45"),
        ];
        let mut ignored = vec![false; reg.nodes.len()];
        fx.apply(&mut state, &before, &mut ignored);
        // The cache as of before the batch, as the processor keeps it.
        let mut cache = RollupCache::new(reg, topo);
        compute_states(reg, topo, &state, now, cfg, &mut cache, Scope::Full).expect("first");
        let mut mask = vec![false; reg.nodes.len()];
        fx.apply(&mut state, &after, &mut mask);
        let part = compute_states(
            reg,
            topo,
            &state,
            now,
            cfg,
            &mut cache,
            Scope::Touched(&mask),
        )
        .expect("partial");
        let mut fresh = RollupCache::new(reg, topo);
        let full =
            compute_states(reg, topo, &state, now, cfg, &mut fresh, Scope::Full).expect("full");
        let mut compared = 0;
        for (i, m) in mask.iter().enumerate() {
            if *m {
                assert_eq!(part[i], full[i], "node {}", reg.nodes[i].id);
                compared += 1;
            } else {
                assert!(part[i].is_none());
            }
        }
        assert_eq!(compared, 9, "two micro-grid paths sharing the district");
        let district = full[0].as_ref().expect("district state");
        assert_eq!(district.patrol.patrols_today, 2);
        assert_eq!(district.video.flags_open, 1);
        assert_eq!(district.video.median_rectify_min, Some(17.5));
        // The sealed-exit flag turned its micro-grid red, on top of the
        // closed micro-grids nobody patrolled today.
        let red = full[reg.microgrids[4000] as usize].as_ref();
        assert_eq!(red.map(|s| s.status), Some(Status::Red));
        let before = red_in_empty_state(reg, topo, now, cfg);
        assert_eq!(district.red_microgrids, before + 1);

        // 75 minutes on, with nothing new: a refresh builds exactly the
        // nodes whose figures moved (windows, ages), as a full one has them.
        let later = now + 75 * 60;
        let none = vec![false; reg.nodes.len()];
        let refreshed = compute_states(
            reg,
            topo,
            &state,
            later,
            cfg,
            &mut cache,
            Scope::Refresh(&none),
        )
        .expect("refresh");
        let mut fresh = RollupCache::new(reg, topo);
        let full_later =
            compute_states(reg, topo, &state, later, cfg, &mut fresh, Scope::Full).expect("full");
        let mut built = 0;
        for i in 0..reg.nodes.len() {
            let id = &reg.nodes[i].id;
            let later = full_later[i].as_ref().expect("full covers every node");
            match &refreshed[i] {
                Some(r) => {
                    assert_eq!(r, later, "node {id}");
                    built += 1;
                }
                None => {
                    let mut before = full[i].clone().expect("full covers every node");
                    before.as_of = later.as_of.clone();
                    assert_eq!(&before, later, "node {id} moved but was not rebuilt");
                }
            }
        }
        assert!(built > 0, "the patrol left the 1 h window: its path moved");
        assert!(built < reg.nodes.len(), "untouched nodes are not rebuilt");
    }

    /// The built-in registry at 16:00 on 2022-10-15, default status rules.
    struct Fixture {
        reg: Registry,
        topo: Topology,
        now: i64,
        cfg: StatusConfig,
    }

    impl Fixture {
        fn new() -> Fixture {
            let reg = crate::load_registry(None).expect("built-in registry");
            let topo = Topology::new(&reg);
            Fixture {
                reg,
                topo,
                now: 1_665_820_800, // 2022-10-15 16:00 +08:00
                cfg: StatusConfig::default(),
            }
        }

        /// Validates and applies `evs` as ingest does, folds them in, and
        /// marks their micro-grids' paths in `mask`.
        fn apply(&self, state: &mut LiveState, evs: &[(String, String)], mask: &mut [bool]) {
            let rules = TimeRules {
                lateness_s: 86400,
                future_s: 300,
            };
            let mut rows = Vec::new();
            for (subject, payload) in evs {
                let v = validate(
                    subject,
                    payload.as_bytes(),
                    &self.reg,
                    Some(self.now),
                    rules,
                )
                .expect("a valid event");
                for &a in &self
                    .reg
                    .node(v.node)
                    .mg
                    .as_ref()
                    .expect("a micro-grid")
                    .path
                {
                    mask[a as usize] = true;
                }
                match state.apply(&v, &self.topo) {
                    crate::state::Outcome::Applied(r) => rows.extend(r),
                    other => panic!("not applied: {other:?}"),
                }
            }
            fold_batch(state, &rows).expect("fold");
        }
    }

    /// The street of a node id.
    fn street(n: &str) -> String {
        n.split('/').nth(1).unwrap_or("").to_string()
    }

    /// A patrol of `n` at `ts` (`HH:MM` on 2022-10-15): subject, payload.
    fn patrol(n: &str, id: &str, ts: &str) -> (String, String) {
        (
            format!("gw.ev.patrol.{}", street(n)),
            format!(
                r#"{{"v":1,"kind":"patrol","id":"{id}","ts":"2022-10-15T{ts}:00+08:00","node":"{n}","team":"t","persons":2,"checkpoints":1,"findings":{{"gatherings_dispersed":1,"people_persuaded":0,"venues_closed":0,"vendors_cleared":0,"violations":0}}}}"#
            ),
        )
    }

    /// A patrol stamped ahead of the clock (between two replay ticks, or a
    /// device clock a little fast) has happened — it was received: its
    /// closed micro-grid is patrolled now. (Read as "not yet", it left the
    /// micro-grid unpatrolled since midnight and red until the clock caught
    /// up: spurious reds on the wall's ticker.)
    #[test]
    fn a_patrol_ahead_of_the_clock_counts_as_patrolled_now() {
        let fx = Fixture::new();
        let (reg, topo, now, cfg) = (&fx.reg, &fx.topo, fx.now, &fx.cfg);
        let mut state = LiveState::new(reg.microgrids.len());
        let mg = *reg
            .microgrids
            .iter()
            .find(|&&m| state.zone_of(reg, m).0.is_closed())
            .expect("a sealed or control micro-grid");
        let node = reg.node(mg).id.as_str().to_string();
        let evs = [patrol(&node, "p1", "13:00"), patrol(&node, "p2", "16:02")];
        fx.apply(&mut state, &evs, &mut vec![false; reg.nodes.len()]);
        let mut cache = RollupCache::new(reg, topo);
        let states =
            compute_states(reg, topo, &state, now, cfg, &mut cache, Scope::Full).expect("full");
        let s = states[mg as usize].as_ref().expect("its state");
        assert_eq!(s.status, Status::Green, "{:?}", s.why);
        assert_eq!(s.patrol.coverage_2h, 1.0);
        assert_eq!(s.patrol.oldest_last_patrol_min, Some(0));
        // The windowed counts stay by the clock (the patrol ahead of it is
        // not in the last hour's yet); the day's count has both.
        assert_eq!(s.patrol.patrols_1h, 0);
        assert_eq!(s.patrol.patrols_today, 2);
    }

    /// Red micro-grids of an empty state at `now`.
    fn red_in_empty_state(reg: &Registry, topo: &Topology, now: i64, cfg: &StatusConfig) -> u32 {
        let state = LiveState::new(reg.microgrids.len());
        let mut cache = RollupCache::new(reg, topo);
        let states =
            compute_states(reg, topo, &state, now, cfg, &mut cache, Scope::Full).expect("full");
        states[0].as_ref().map_or(0, |s| s.red_microgrids)
    }

    #[test]
    fn median_interpolates_like_polars() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0]), Some(3.0));
        assert_eq!(median(&mut [25.0, 10.0]), Some(17.5));
        assert_eq!(median(&mut [5.0, 1.0, 3.0]), Some(3.0));
    }
}
