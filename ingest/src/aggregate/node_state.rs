//! NodeState assembly: which nodes a recompute covers ([`Scope`]), and the
//! state of each covered node built from the rolled-up figures, the red
//! lists and, for a micro-grid, its own metrics.

use chrono::DateTime;
use gridwatch_model::state::{
    ChildSummary, IncidentAgg, PatrolAgg, RED_LIST_LIMIT, RedNode, Status, TestingAgg, VideoAgg,
    Why, ZoneAgg, Zones,
};
use gridwatch_model::time::to_local_rfc3339;
use gridwatch_model::{Level, NodeState, Registry, Zone};
use polars::prelude::PolarsResult;
use std::collections::HashMap;

use super::metrics::mg_metrics;
use super::rollup::{RollupCache, rollup_direct, rollup_polars};
use super::status::rollup_status;
use super::sums::Sums;
use crate::config::StatusConfig;
use crate::state::{LiveState, Topology};

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
        microgrids: v.microgrids as u32,
        population: v.population,
        households: v.households,
        staff: v.staff,
        patrolled_2h: v.patrolled_2h as u32,
        coverage_2h: ratio(v.patrolled_2h, v.microgrids),
        samples_today: v.samples_today,
        completion_today: ratio(v.samples_today, v.population),
        flags_open: v.flags_open,
        incidents_open: v.open_by_level().iter().sum(),
        red: v.red as u32,
        amber: v.amber as u32,
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
    live: &LiveState,
    now: i64,
    cfg: &StatusConfig,
    cache: &mut RollupCache,
    scope: Scope,
) -> PolarsResult<Vec<Option<NodeState>>> {
    let scope = if cache.filled { scope } else { Scope::Full };
    let all: Vec<u32> = (0..topo.mg_node.len() as u32).collect();
    let mask = match scope {
        Scope::Full => {
            mg_metrics(reg, topo, live, now, cfg, cache, &all);
            cache.filled = true;
            rollup_polars(cache)?;
            None
        }
        Scope::Refresh(marked) => {
            let moved = mg_metrics(reg, topo, live, now, cfg, cache, &all);
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
            mg_metrics(reg, topo, live, now, cfg, cache, &touched);
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
            if v.microgrids > 0 {
                *zones.get_mut(z) = zone_agg(v);
            }
        }
        let red_nodes = red_lists.remove(&i).unwrap_or_default();
        let mg = cache.mg_of.get(&i).map(|&o| &metrics[o]);
        let (status, why) = match mg {
            Some(m) => (m.status, m.why.clone()),
            None => rollup_status(g.red, g.amber, &red_nodes),
        };
        let reasons = why.iter().map(Why::to_string).collect();
        let samples_10 = g.samples_10min;
        let population = g.population;
        let samples_today = g.samples_today;
        let eta_min = (samples_10 > 0).then(|| {
            let left = population.saturating_sub(samples_today);
            (left * 10).div_ceil(samples_10)
        });
        let open = g.open_by_level();
        let children = if info.level == Level::Microgrid {
            Vec::new()
        } else {
            info.children
                .iter()
                .map(|&ch| {
                    let t = &rolled.totals[ch as usize];
                    let status = match cache.mg_of.get(&ch) {
                        Some(&o) => metrics[o].status,
                        None if t.red > 0 => Status::Red,
                        None if t.amber > 0 => Status::Amber,
                        None => Status::Green,
                    };
                    let child = reg.node(ch);
                    ChildSummary {
                        node: child.id.to_string(),
                        name: child.name.clone(),
                        name_en: child.name_en.clone(),
                        status,
                        population: t.population,
                        microgrids: t.microgrids as u32,
                        red: t.red as u32,
                        amber: t.amber as u32,
                        incidents_open: t.open_by_level().iter().sum(),
                        incidents_overdue: t.incidents_overdue,
                        orders_open: t.flags_open,
                        orders_overdue: t.orders_overdue,
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
            microgrids: g.microgrids as u32,
            population,
            households: g.households,
            staff: g.staff,
            zone: mg.map(|m| m.zone),
            zones,
            patrol: PatrolAgg {
                patrols_1h: g.patrols_1h,
                persons_1h: g.persons_1h,
                patrols_today: g.patrols_today,
                coverage_2h: ratio(g.closed_patrolled_2h, g.closed),
                oldest_last_patrol_min: rolled.oldest[i as usize],
                findings_today: gridwatch_model::event::Findings {
                    gatherings_dispersed: g.gatherings_dispersed,
                    people_persuaded: g.people_persuaded,
                    venues_closed: g.venues_closed,
                    vendors_cleared: g.vendors_cleared,
                    violations: g.violations,
                },
            },
            testing: TestingAgg {
                samples_today,
                completion_today: ratio(samples_today, population),
                samples_10min: samples_10,
                queue: g.queue,
                eta_min,
            },
            video: VideoAgg {
                flags_open: g.flags_open,
                raised_today: g.raised_today,
                rectified_today: g.rectified_today,
                median_rectify_min: rolled.medians[i as usize].map(|m| (m * 10.0).round() / 10.0),
                overdue: g.orders_overdue,
            },
            incidents: IncidentAgg {
                open: open.iter().sum(),
                open_by_level: open,
                reported_today: g.reported_today,
                resolved_today: g.resolved_today,
                overdue: g.incidents_overdue,
                transfer_overdue: g.transfer_overdue,
                due_before_16: g.due_before_16,
                median_resolve_min: rolled.resolve_medians[i as usize]
                    .map(|m| (m * 10.0).round() / 10.0),
            },
            status,
            reasons,
            why,
            red_microgrids: g.red as u32,
            amber_microgrids: g.amber as u32,
            red_nodes,
            children,
            detail: mg.map(|m| m.own.detail(reg, cfg.detail_items)),
        }));
    }
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::fixture::{Fixture, patrol, street};

    /// A partial recompute (only the nodes events touched, summed from the
    /// cache) yields exactly the states a full polars recompute gives them.
    #[test]
    fn partial_recompute_matches_full() {
        let fx = Fixture::new();
        let (reg, topo, now, cfg) = (&fx.reg, &fx.topo, fx.now, &fx.cfg);
        let mut live = LiveState::new(reg.microgrids.len());
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
        fx.apply(&mut live, &before, &mut ignored);
        // The cache as of before the batch, as the processor keeps it.
        let mut cache = RollupCache::new(reg, topo, Default::default());
        compute_states(reg, topo, &live, now, cfg, &mut cache, Scope::Full).expect("first");
        let mut mask = vec![false; reg.nodes.len()];
        fx.apply(&mut live, &after, &mut mask);
        let part = compute_states(
            reg,
            topo,
            &live,
            now,
            cfg,
            &mut cache,
            Scope::Touched(&mask),
        )
        .expect("partial");
        let full = fx.full(&live, now);
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
        let district = full[0].as_ref().expect("district live");
        assert_eq!(district.patrol.patrols_today, 2);
        assert_eq!(district.video.flags_open, 1);
        assert_eq!(district.video.median_rectify_min, Some(17.5));
        // The sealed-exit flag turned its micro-grid red, on top of the
        // closed micro-grids nobody patrolled today.
        let red = full[reg.microgrids[4000] as usize].as_ref();
        assert_eq!(red.map(|s| s.status), Some(Status::Red));
        let before = red_in_empty_state(&fx, now);
        assert_eq!(district.red_microgrids, before + 1);

        // 75 minutes on, with nothing new: a refresh builds exactly the
        // nodes whose figures moved (windows, ages), as a full one has them.
        let later = now + 75 * 60;
        let none = vec![false; reg.nodes.len()];
        let refreshed = compute_states(
            reg,
            topo,
            &live,
            later,
            cfg,
            &mut cache,
            Scope::Refresh(&none),
        )
        .expect("refresh");
        let full_later = fx.full(&live, later);
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

    /// Red micro-grids of an empty state at `now`.
    fn red_in_empty_state(fx: &Fixture, now: i64) -> u32 {
        let live = LiveState::new(fx.reg.microgrids.len());
        fx.full(&live, now)[0]
            .as_ref()
            .map_or(0, |s| s.red_microgrids)
    }
}
