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
use gridwatch_model::event::FlagKind;
use gridwatch_model::state::{
    ChildSummary, IncidentAgg, PatrolAgg, RED_LIST_LIMIT, RedNode, Status, TestingAgg, VideoAgg,
    ZoneAgg, Zones,
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

/// Metrics of one micro-grid at "now".
#[derive(Clone, Debug, Default)]
struct MgMetrics {
    zone: Zone,
    staff: u64,
    patrols_1h: u64,
    persons_1h: u64,
    patrols_today: u64,
    patrolled_2h: bool,
    /// Minutes since the last patrol (sealed and control only).
    patrol_age_min: Option<i64>,
    findings: [u64; 5],
    samples_today: u64,
    samples_10min: u64,
    queue: u64,
    flags_open: u64,
    raised_today: u64,
    rectified_today: u64,
    open_by_level: [u64; 4],
    reported_today: u64,
    resolved_today: u64,
    status: Status,
    reasons: Vec<String>,
}

/// The polars columns the roll-up sums, read from [`MgMetrics`].
const SUM_COLS: [&str; 22] = [
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
];
const SUM_COLS2: [&str; 7] = [
    "amber",
    "open_l1",
    "open_l2",
    "open_l3",
    "open_l4",
    "reported_today",
    "resolved_today",
];

fn hm(ts: i64) -> String {
    DateTime::from_timestamp(ts, 0)
        .map(|t| to_local_rfc3339(t)[11..16].to_string())
        .unwrap_or_default()
}

/// Per-micro-grid metrics at `now`.
fn mg_metrics(
    reg: &Registry,
    topo: &Topology,
    state: &LiveState,
    now: i64,
    cfg: &StatusConfig,
) -> Vec<MgMetrics> {
    let now_dt = DateTime::from_timestamp(now, 0).unwrap_or_default();
    let day_start = start_of_local_day(local_date(now_dt)).timestamp();
    let (today_from, today_to) = (day_start.div_euclid(60), (day_start + 86400).div_euclid(60));
    let mut out: Vec<MgMetrics> = Vec::with_capacity(topo.mg_node.len());
    let mut sealed_exits: HashMap<u32, Vec<i64>> = HashMap::new();
    let mut flags_open = vec![0u64; topo.mg_node.len()];
    for f in state.flags.values() {
        flags_open[f.mg as usize] += 1;
        if f.kind == FlagKind::SealedExit {
            sealed_exits.entry(f.mg).or_default().push(f.raised);
        }
    }
    let mut open_by_level = vec![[0u64; 4]; topo.mg_node.len()];
    for inc in state.incidents.values() {
        if inc.resolved.is_none() {
            let l = usize::from(inc.level.clamp(1, 4)) - 1;
            open_by_level[inc.mg as usize][l] += 1;
        }
    }
    for (o, &n) in topo.mg_node.iter().enumerate() {
        let mg = &state.mgs[o];
        let info = reg.node(n);
        let (zone, since) = state.zone_of(reg, n);
        let mut m = MgMetrics {
            zone,
            staff: u64::from(zone.staff_per_microgrid()),
            flags_open: flags_open[o],
            open_by_level: open_by_level[o],
            ..Default::default()
        };
        for &(ts, persons) in &mg.recent_patrols {
            if ts > now - 3600 && ts <= now {
                m.patrols_1h += 1;
                m.persons_1h += u64::from(persons);
            }
            if ts > now - 7200 && ts <= now {
                m.patrolled_2h = true;
            }
        }
        for &(ts, samples) in &mg.recent_samples {
            if ts > now - 600 && ts <= now {
                m.samples_10min += u64::from(samples);
            }
        }
        for (_, b) in mg.buckets.range(today_from..today_to) {
            m.patrols_today += u64::from(b.patrols);
            m.findings[0] += u64::from(b.findings.gatherings_dispersed);
            m.findings[1] += u64::from(b.findings.people_persuaded);
            m.findings[2] += u64::from(b.findings.venues_closed);
            m.findings[3] += u64::from(b.findings.vendors_cleared);
            m.findings[4] += u64::from(b.findings.violations);
            m.samples_today += u64::from(b.samples);
            m.raised_today += u64::from(b.raised);
            m.rectified_today += u64::from(b.rectified);
            m.reported_today += u64::from(b.reported);
            m.resolved_today += u64::from(b.resolved);
        }
        if let Some((qts, q)) = mg.queue
            && qts >= day_start
            && qts <= now
        {
            m.queue = u64::from(q);
        }
        // Status and reasons.
        let mut red = Vec::new();
        let mut amber = Vec::new();
        if let Some(raised) = sealed_exits.get(&(o as u32)) {
            for r in raised {
                red.push(format!("sealed-zone exit flag open since {}", hm(*r)));
            }
        }
        if zone.is_closed() {
            let last = mg.last_patrol.filter(|&t| t <= now);
            let reference = last.into_iter().chain(since).fold(day_start, i64::max);
            let age = (now - reference).max(0) / 60;
            m.patrol_age_min = Some(last.map_or(age, |l| (now - l).max(0) / 60));
            if age >= cfg.unpatrolled_red_min {
                red.push(format!("{zone} micro-grid unpatrolled for {age} min"));
            } else if age >= cfg.unpatrolled_amber_min {
                amber.push(format!("{zone} micro-grid unpatrolled for {age} min"));
            }
        }
        let other_flags =
            m.flags_open - sealed_exits.get(&(o as u32)).map_or(0, |v| v.len() as u64);
        if other_flags > 0 {
            amber.push(format!("{other_flags} video flag(s) open"));
        }
        let serious: u64 = m.open_by_level[2] + m.open_by_level[3];
        if serious > 0 {
            amber.push(format!("{serious} level-3+ incident(s) open"));
        }
        let _ = info;
        (m.status, m.reasons) = if !red.is_empty() {
            (Status::Red, red)
        } else if !amber.is_empty() {
            (Status::Amber, amber)
        } else {
            (Status::Green, Vec::new())
        };
        out.push(m);
    }
    out
}

/// Sums of [`SUM_COLS`] and [`SUM_COLS2`] per group key.
type Sums = HashMap<(u32, u32), Vec<u64>>;

fn sums_by(lf: &LazyFrame, keys: &[&str]) -> PolarsResult<Sums> {
    let all: Vec<&str> = SUM_COLS.iter().chain(SUM_COLS2.iter()).copied().collect();
    let df = lf
        .clone()
        .group_by(keys.iter().map(|k| col(*k)).collect::<Vec<_>>())
        .agg(all.iter().map(|c| col(*c).sum()).collect::<Vec<_>>())
        .collect()?;
    // Whole columns out at once (per-row `get` looks up the chunk each time).
    let k0: Vec<u32> = df
        .column(keys[0])?
        .u32()?
        .iter()
        .map(|v| v.unwrap_or(0))
        .collect();
    let k1: Option<Vec<u32>> = match keys.get(1) {
        Some(k) => Some(
            df.column(k)?
                .u32()?
                .iter()
                .map(|v| v.unwrap_or(0))
                .collect(),
        ),
        None => None,
    };
    let cols: Vec<Vec<u64>> = all
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
        out.insert(key, cols.iter().map(|c| c[i]).collect());
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

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        // Rounded to 4 decimals so the value is stable on the wire.
        ((a as f64 / b as f64) * 10_000.0).round() / 10_000.0
    }
}

fn col_idx(name: &str) -> usize {
    SUM_COLS
        .iter()
        .chain(SUM_COLS2.iter())
        .position(|c| *c == name)
        .expect("column names are constants of this module")
}

fn zone_agg(v: &[u64]) -> ZoneAgg {
    let g = |n: &str| v[col_idx(n)];
    ZoneAgg {
        microgrids: g("microgrids") as u32,
        population: g("population"),
        households: g("households"),
        staff: g("staff"),
        patrolled_2h: g("patrolled_2h") as u32,
        coverage_2h: ratio(g("patrolled_2h"), g("microgrids")),
        samples_today: g("samples_today"),
        completion_today: ratio(g("samples_today"), g("population")),
        flags_open: g("flags_open"),
        red: g("red") as u32,
        amber: g("amber") as u32,
    }
}

/// Computes the state of the nodes (indexed like the registry) at `now`:
/// every node, or only those marked in `only` (the others are `None`).
/// `seq` is left at 0 for the publisher to set.
pub fn compute_states(
    reg: &Registry,
    topo: &Topology,
    state: &LiveState,
    now: i64,
    cfg: &StatusConfig,
    only: Option<&[bool]>,
) -> PolarsResult<Vec<Option<NodeState>>> {
    let wanted = |i: u32| only.is_none_or(|m| m.get(i as usize).copied().unwrap_or(false));
    let metrics = mg_metrics(reg, topo, state, now, cfg);
    let n = metrics.len();
    let paths: Vec<[u32; 5]> = topo
        .mg_node
        .iter()
        .map(|&i| reg.node(i).mg.as_ref().map(|m| m.path).unwrap_or_default())
        .collect();
    let mut cols: Vec<Column> = Vec::new();
    for d in 0..5 {
        cols.push(Column::new(
            format!("k{d}").into(),
            paths.iter().map(|p| p[d]).collect::<Vec<u32>>(),
        ));
    }
    cols.push(Column::new(
        "zone".into(),
        metrics
            .iter()
            .map(|m| m.zone.index() as u32)
            .collect::<Vec<u32>>(),
    ));
    let node = |o: usize| reg.node(topo.mg_node[o]);
    let value = |m: &MgMetrics, o: usize, name: &str| -> u64 {
        match name {
            "microgrids" => 1,
            "population" => node(o).population,
            "households" => node(o).households,
            "staff" => m.staff,
            "patrols_1h" => m.patrols_1h,
            "persons_1h" => m.persons_1h,
            "patrols_today" => m.patrols_today,
            "closed" => u64::from(m.zone.is_closed()),
            "closed_patrolled_2h" => u64::from(m.zone.is_closed() && m.patrolled_2h),
            "patrolled_2h" => u64::from(m.patrolled_2h),
            "f0" => m.findings[0],
            "f1" => m.findings[1],
            "f2" => m.findings[2],
            "f3" => m.findings[3],
            "f4" => m.findings[4],
            "samples_today" => m.samples_today,
            "samples_10min" => m.samples_10min,
            "queue" => m.queue,
            "flags_open" => m.flags_open,
            "raised_today" => m.raised_today,
            "rectified_today" => m.rectified_today,
            "red" => u64::from(m.status == Status::Red),
            "amber" => u64::from(m.status == Status::Amber),
            "open_l1" => m.open_by_level[0],
            "open_l2" => m.open_by_level[1],
            "open_l3" => m.open_by_level[2],
            "open_l4" => m.open_by_level[3],
            "reported_today" => m.reported_today,
            "resolved_today" => m.resolved_today,
            _ => 0,
        }
    };
    for name in SUM_COLS.iter().chain(SUM_COLS2.iter()) {
        cols.push(Column::new(
            (*name).into(),
            (0..n)
                .map(|o| value(&metrics[o], o, name))
                .collect::<Vec<u64>>(),
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

    // Rectification times of flags rectified today, for medians.
    let now_dt = DateTime::from_timestamp(now, 0).unwrap_or_default();
    let day_start = start_of_local_day(local_date(now_dt)).timestamp();
    let mut rk: [Vec<u32>; 5] = Default::default();
    let mut rmin: Vec<f64> = Vec::new();
    for (o, mg) in state.mgs.iter().enumerate() {
        for &(ts, minutes) in &mg.rectified {
            if ts >= day_start && ts <= now {
                for (d, k) in rk.iter_mut().enumerate() {
                    k.push(paths[o][d]);
                }
                rmin.push(minutes);
            }
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

    // One row per (micro-grid, ancestor or itself): every level rolls up in
    // one group-by instead of one per level.
    let mut value_cols: Vec<&str> = vec!["zone", "patrol_age"];
    value_cols.extend(SUM_COLS.iter().chain(SUM_COLS2.iter()));
    let up = by_ancestor(&lf, &value_cols)?;
    let rup = by_ancestor(&rlf, &["minutes"])?;
    let totals: HashMap<u32, Vec<u64>> = sums_by(&up, &["key"])?
        .into_iter()
        .map(|((k, _), v)| (k, v))
        .collect();
    let by_zone = sums_by(&up, &["key", "zone"])?;
    let oldest = f64_by(up, "key", col("patrol_age").max())?;
    let medians = f64_by(rup, "key", col("minutes").median())?;

    // Red lists: red micro-grids under every node, in registry order.
    let mut red_lists: HashMap<u32, Vec<RedNode>> = HashMap::new();
    for (o, m) in metrics.iter().enumerate() {
        if m.status != Status::Red {
            continue;
        }
        let info = node(o);
        let red = RedNode {
            node: info.id.to_string(),
            name: info.name.clone(),
            zone: m.zone,
            reasons: m.reasons.clone(),
        };
        for &a in paths[o].iter().filter(|&&a| wanted(a)) {
            let list = red_lists.entry(a).or_default();
            if list.len() < RED_LIST_LIMIT {
                list.push(red.clone());
            }
        }
    }
    let mg_of: HashMap<u32, usize> = topo
        .mg_node
        .iter()
        .enumerate()
        .map(|(o, &i)| (i, o))
        .collect();

    let as_of = to_local_rfc3339(now_dt);
    let empty = vec![0u64; SUM_COLS.len() + SUM_COLS2.len()];
    let mut states: Vec<Option<NodeState>> = Vec::with_capacity(reg.nodes.len());
    for (i, info) in reg.nodes.iter().enumerate() {
        let i = i as u32;
        if !wanted(i) {
            states.push(None);
            continue;
        }
        let t = totals.get(&i).unwrap_or(&empty);
        let g = |name: &str| t[col_idx(name)];
        let mut zones = Zones::default();
        for z in Zone::ALL {
            if let Some(v) = by_zone.get(&(i, z.index() as u32)) {
                *zones.get_mut(z) = zone_agg(v);
            }
        }
        let red_nodes = red_lists.remove(&i).unwrap_or_default();
        let (status, reasons) = match mg_of.get(&i) {
            Some(&o) => (metrics[o].status, metrics[o].reasons.clone()),
            None => rollup_status(g("red"), g("amber"), &red_nodes),
        };
        let samples_10 = g("samples_10min");
        let population = g("population");
        let samples_today = g("samples_today");
        let eta_min = (samples_10 > 0).then(|| {
            let left = population.saturating_sub(samples_today);
            (left * 10).div_ceil(samples_10)
        });
        states.push(Some(NodeState {
            node: info.id.to_string(),
            name: info.name.clone(),
            level: info.level,
            as_of: as_of.clone(),
            seq: 0,
            microgrids: g("microgrids") as u32,
            population,
            households: g("households"),
            staff: g("staff"),
            zone: mg_of.get(&i).map(|&o| metrics[o].zone),
            zones,
            patrol: PatrolAgg {
                patrols_1h: g("patrols_1h"),
                persons_1h: g("persons_1h"),
                patrols_today: g("patrols_today"),
                coverage_2h: ratio(g("closed_patrolled_2h"), g("closed")),
                oldest_last_patrol_min: oldest.get(&i).map(|v| *v as i64),
                findings_today: gridwatch_model::event::Findings {
                    gatherings_dispersed: g("f0") as u32,
                    people_persuaded: g("f1") as u32,
                    venues_closed: g("f2") as u32,
                    vendors_cleared: g("f3") as u32,
                    violations: g("f4") as u32,
                },
            },
            testing: TestingAgg {
                samples_today,
                completion_today: ratio(samples_today, population),
                samples_10min: samples_10,
                queue: g("queue"),
                eta_min,
            },
            video: VideoAgg {
                flags_open: g("flags_open"),
                raised_today: g("raised_today"),
                rectified_today: g("rectified_today"),
                median_rectify_min: medians.get(&i).map(|m| (m * 10.0).round() / 10.0),
            },
            incidents: IncidentAgg {
                open: g("open_l1") + g("open_l2") + g("open_l3") + g("open_l4"),
                open_by_level: [g("open_l1"), g("open_l2"), g("open_l3"), g("open_l4")],
                reported_today: g("reported_today"),
                resolved_today: g("resolved_today"),
            },
            status,
            reasons,
            red_microgrids: g("red") as u32,
            amber_microgrids: g("amber") as u32,
            red_nodes,
            children: Vec::new(),
        }));
    }
    // Children summaries, from the roll-up (a child's own state may not
    // have been built).
    for (i, info) in reg.nodes.iter().enumerate() {
        if info.level == Level::Microgrid {
            continue;
        }
        let Some(s) = states[i].as_mut() else {
            continue;
        };
        s.children = info
            .children
            .iter()
            .map(|&c| {
                let t = totals.get(&c).unwrap_or(&empty);
                let g = |name: &str| t[col_idx(name)];
                let status = match mg_of.get(&c) {
                    Some(&o) => metrics[o].status,
                    None if g("red") > 0 => Status::Red,
                    None if g("amber") > 0 => Status::Amber,
                    None => Status::Green,
                };
                let child = reg.node(c);
                ChildSummary {
                    node: child.id.to_string(),
                    name: child.name.clone(),
                    status,
                    population: g("population"),
                    microgrids: g("microgrids") as u32,
                    red: g("red") as u32,
                }
            })
            .collect();
    }
    Ok(states)
}

/// Status of a node above the micro-grids: the worst below it, with the
/// first red micro-grids' reasons.
fn rollup_status(red: u64, amber: u64, red_nodes: &[RedNode]) -> (Status, Vec<String>) {
    const SHOWN: usize = 5;
    if red > 0 {
        let mut reasons: Vec<String> = red_nodes
            .iter()
            .flat_map(|r| {
                r.reasons
                    .iter()
                    .map(move |why| format!("{why} at {}", r.node))
            })
            .take(SHOWN)
            .collect();
        let listed = red_nodes.iter().take(SHOWN).count() as u64;
        if red > listed.min(reasons.len() as u64) && red > 1 {
            reasons.push(format!("{red} red micro-grids in all"));
        }
        (Status::Red, reasons)
    } else if amber > 0 {
        (Status::Amber, vec![format!("{amber} amber micro-grid(s)")])
    } else {
        (Status::Green, Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{TimeRules, validate};

    /// A partial recompute (only the nodes an event touched) yields exactly
    /// the states a full recompute gives those nodes.
    #[test]
    fn partial_recompute_matches_full() {
        let reg = crate::load_registry(None).expect("built-in registry");
        let topo = Topology::new(&reg);
        let mut state = LiveState::new(reg.microgrids.len());
        let now = 1_665_820_800; // 2022-10-15 16:00 +08:00
        let mg = reg.node(reg.microgrids[42]).id.as_str().to_string();
        let other = reg.node(reg.microgrids[4000]).id.as_str().to_string();
        let street = |n: &str| n.split('/').nth(1).unwrap_or("").to_string();
        let evs = [
            (
                format!("gw.ev.patrol.{}", street(&mg)),
                format!(
                    r#"{{"v":1,"kind":"patrol","id":"p1","ts":"2022-10-15T15:50:00+08:00","node":"{mg}","team":"t","persons":2,"checkpoints":1,"findings":{{"gatherings_dispersed":1,"people_persuaded":0,"venues_closed":0,"vendors_cleared":0,"violations":0}}}}"#
                ),
            ),
            (
                format!("gw.ev.video.{}", street(&other)),
                format!(
                    r#"{{"v":1,"kind":"video","id":"v1","ts":"2022-10-15T15:55:00+08:00","node":"{other}","camera":"c","flag_id":"f1","flag":"sealed_exit","action":"raised","severity":3}}"#
                ),
            ),
        ];
        let rules = TimeRules {
            lateness_s: 86400,
            future_s: 300,
        };
        let mut rows = Vec::new();
        let mut mask = vec![false; reg.nodes.len()];
        for (subject, payload) in &evs {
            let v = validate(subject, payload.as_bytes(), &reg, Some(now), rules)
                .expect("a valid event");
            for &a in &reg.node(v.node).mg.as_ref().expect("a micro-grid").path {
                mask[a as usize] = true;
            }
            match state.apply(&v, &topo) {
                crate::state::Outcome::Applied(r) => rows.extend(r),
                other => panic!("not applied: {other:?}"),
            }
        }
        fold_batch(&mut state, &rows).expect("fold");
        let cfg = StatusConfig::default();
        let full = compute_states(&reg, &topo, &state, now, &cfg, None).expect("full");
        let part = compute_states(&reg, &topo, &state, now, &cfg, Some(&mask)).expect("partial");
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
        assert_eq!(district.patrol.patrols_today, 1);
        assert_eq!(district.video.flags_open, 1);
    }
}
