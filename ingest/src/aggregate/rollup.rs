//! Roll-up: the sums of the micro-grids under every node (and per zone
//! class), the oldest patrol age and the median time to rectify. A full
//! roll-up runs with polars group-bys over one row per (micro-grid,
//! ancestor); between full ones, [`RollupCache::set`] moves the sums of a
//! micro-grid's path by its change and [`rollup_direct`] recomputes the
//! oldest age and the median of the nodes a recompute covers.

use gridwatch_model::Registry;
use polars::prelude::*;
use std::collections::HashMap;

use super::metrics::{MgMetrics, flag_open, incident_open};
use super::sums::Sums;
use crate::items::{ItemIndex, OpenItems};
use crate::state::Topology;

/// What the roll-up keeps between recomputes: every micro-grid's metrics as
/// of the last time it was computed, and which micro-grids lie under each
/// node. A partial recompute refreshes the touched micro-grids only and
/// sums the cached metrics for the nodes above them, so a batch costs what
/// it touched, not the whole district.
pub struct RollupCache {
    pub(super) metrics: Vec<MgMetrics>,
    /// Micro-grid ordinals under each registry node (itself for a
    /// micro-grid), in registry order.
    under: Vec<Vec<u32>>,
    /// The path (district … micro-grid) of each micro-grid ordinal.
    pub(super) paths: Vec<[u32; 5]>,
    /// Registry index → micro-grid ordinal.
    pub(super) mg_of: HashMap<u32, usize>,
    /// The roll-up of every node, kept current: sums move by each
    /// micro-grid's change; the oldest patrol age and the median are
    /// recomputed for the nodes a recompute covers.
    pub(super) rolled: Rolled,
    /// Set once every micro-grid's metrics have been computed.
    pub(super) filled: bool,
    /// Every open item of each micro-grid, for the items API.
    items: ItemIndex,
    /// Registry index of each micro-grid ordinal.
    mg_node: Vec<u32>,
}

impl RollupCache {
    /// A cache that keeps `items` current as micro-grids' metrics move.
    pub fn new(reg: &Registry, topo: &Topology, items: ItemIndex) -> Self {
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
            items,
            mg_node: topo.mg_node.clone(),
        }
    }

    /// Samples taken today under registry node `i`, as of the last
    /// recompute.
    pub fn samples_today(&self, i: usize) -> u64 {
        self.rolled.totals.get(i).map_or(0, |t| t.samples_today)
    }

    /// Stores a micro-grid's new metrics and moves the sums of the nodes on
    /// its path by the difference.
    pub(super) fn set(&mut self, o: usize, m: MgMetrics) {
        let old = std::mem::replace(&mut self.metrics[o], m);
        let new = &self.metrics[o];
        if (old.own.flags != new.own.flags || old.own.incidents != new.own.incidents)
            && let Some(&node) = self.mg_node.get(o)
        {
            self.items.set(
                node,
                OpenItems {
                    flags: new.own.flags.iter().map(flag_open).collect(),
                    incidents: new.own.incidents.iter().map(incident_open).collect(),
                },
            );
        }
        for &a in &self.paths[o] {
            let a = a as usize;
            let total = &mut self.rolled.totals[a];
            total.add(&new.vals);
            total.sub(&old.vals);
            let zones = &mut self.rolled.zones[a];
            zones[old.zone.index()].sub(&old.vals);
            zones[new.zone.index()].add(&new.vals);
        }
    }
}
/// The roll-up of the micro-grids under every node, indexed like the
/// registry.
pub struct Rolled {
    pub totals: Vec<Sums>,
    /// Per zone class (in [`Zone::ALL`] order).
    pub zones: Vec<[Sums; 4]>,
    /// Oldest patrol age (minutes) of the closed micro-grids under a node.
    pub oldest: Vec<Option<i64>>,
    /// Median minutes to rectify a flag, today.
    pub medians: Vec<Option<f64>>,
    /// Median minutes to resolve an incident, today.
    pub resolve_medians: Vec<Option<f64>>,
}

impl Rolled {
    fn new(nodes: usize) -> Self {
        Self {
            totals: vec![Sums::default(); nodes],
            zones: vec![[Sums::default(); 4]; nodes],
            oldest: vec![None; nodes],
            medians: vec![None; nodes],
            resolve_medians: vec![None; nodes],
        }
    }
}

fn sums_by(lf: &LazyFrame, keys: &[&str]) -> PolarsResult<HashMap<(u32, u32), Sums>> {
    let df = lf
        .clone()
        .group_by(keys.iter().map(|k| col(*k)).collect::<Vec<_>>())
        .agg(Sums::COLS.iter().map(|c| col(*c).sum()).collect::<Vec<_>>())
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
    let cols: Vec<Vec<u64>> = Sums::COLS
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
        out.insert(key, Sums::from_values(cols.iter().map(|c| c[i])));
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

/// One row per minutes figure of every micro-grid (`of` picks which), with
/// its path as `k0`…`k4`, for medians.
fn minutes_frame(
    cache: &RollupCache,
    of: impl Fn(&MgMetrics) -> &Vec<f64>,
) -> PolarsResult<LazyFrame> {
    let mut rk: [Vec<u32>; 5] = Default::default();
    let mut rmin: Vec<f64> = Vec::new();
    for (o, m) in cache.metrics.iter().enumerate() {
        for &minutes in of(m) {
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
    Ok(DataFrame::new(rn, rcols)?.lazy())
}

/// The full roll-up, with polars: one row per (micro-grid, ancestor or
/// itself), so every level rolls up in one group-by. Replaces the cache's.
pub fn rollup_polars(cache: &mut RollupCache) -> PolarsResult<()> {
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
    let vals: Vec<Vec<u64>> = metrics.iter().map(|m| m.vals.values()).collect();
    for (j, name) in Sums::COLS.iter().enumerate() {
        cols.push(Column::new(
            (*name).into(),
            vals.iter().map(|v| v[j]).collect::<Vec<u64>>(),
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

    let mut value_cols: Vec<&str> = vec!["zone", "patrol_age"];
    value_cols.extend(Sums::COLS);
    let up = by_ancestor(&lf, &value_cols)?;
    let rup = by_ancestor(&minutes_frame(cache, |m| &m.rectify_min)?, &["minutes"])?;
    let sup = by_ancestor(&minutes_frame(cache, |m| &m.resolve_min)?, &["minutes"])?;
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
    for (k, v) in f64_by(sup, "key", col("minutes").median())? {
        if let Some(m) = rolled.resolve_medians.get_mut(k as usize) {
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
pub fn rollup_direct(cache: &mut RollupCache, mask: &[bool]) {
    let (mut minutes, mut resolve) = (Vec::new(), Vec::new());
    for (i, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
        let mut oldest: Option<i64> = None;
        minutes.clear();
        resolve.clear();
        for &o in &cache.under[i] {
            let m = &cache.metrics[o as usize];
            oldest = oldest.max(m.patrol_age_min);
            minutes.extend_from_slice(&m.rectify_min);
            resolve.extend_from_slice(&m.resolve_min);
        }
        cache.rolled.oldest[i] = oldest;
        cache.rolled.medians[i] = median(&mut minutes);
        cache.rolled.resolve_medians[i] = median(&mut resolve);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_interpolates_like_polars() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0]), Some(3.0));
        assert_eq!(median(&mut [25.0, 10.0]), Some(17.5));
        assert_eq!(median(&mut [5.0, 1.0, 3.0]), Some(3.0));
    }
}
