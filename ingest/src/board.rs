//! The testing board (`beilun/_testing`): samples per 10 minutes over the
//! local day, per street and district-wide, and the busiest sites' queues.
//!
//! The series is kept as the batches fold (exact, from the same rows as the
//! per-minute buckets) and rebuilt from the buckets at start; the sites are
//! read from each micro-grid's newest report.

use chrono::DateTime;
use gridwatch_model::state::{SiteQueue, TESTING_NODE, TestingBoard};
use gridwatch_model::time::{local_date, start_of_local_day, to_local_rfc3339};
use gridwatch_model::{Level, Registry};
use std::collections::{BTreeMap, HashMap};

use crate::state::{LiveState, Row, Topology};

/// Minutes per slot.
pub const SLOT_MIN: i64 = 10;
/// Slots in a day.
pub const SLOTS: i64 = 24 * 60 / SLOT_MIN;
/// A site's queue counts while its newest report is this recent.
pub const QUEUE_FRESH_S: i64 = 30 * 60;
/// Sites listed for the district and for each street.
pub const SITES_DISTRICT: usize = 8;
pub const SITES_STREET: usize = 5;

/// Samples per slot per street, and what the board last published.
pub struct Board {
    /// Epoch slot (minute / 10) → samples per street (registry order).
    series: BTreeMap<i64, Vec<u64>>,
    /// Street position of each micro-grid ordinal.
    street_of: Vec<usize>,
    /// Street node ids, in registry order.
    streets: Vec<String>,
    /// Community (registry index) of each micro-grid ordinal.
    community_of: Vec<u32>,
    pub board: TestingBoard,
}

impl Board {
    /// Builds the series from the live state's buckets.
    pub fn new(reg: &Registry, topo: &Topology, live: &LiveState, published_seq: u64) -> Self {
        let street_nodes: Vec<u32> = reg.node(reg.root()).children.clone();
        let streets = street_nodes
            .iter()
            .map(|&s| reg.node(s).id.to_string())
            .collect();
        let path = |o: usize| reg.node(topo.mg_node[o]).mg.as_ref().map(|m| m.path);
        let street_of = (0..topo.mg_node.len())
            .map(|o| {
                path(o)
                    .and_then(|p| street_nodes.iter().position(|&s| s == p[1]))
                    .unwrap_or(0)
            })
            .collect();
        let community_of = (0..topo.mg_node.len())
            .map(|o| path(o).map_or(0, |p| p[2]))
            .collect();
        let mut t = Board {
            series: BTreeMap::new(),
            street_of,
            streets,
            community_of,
            board: TestingBoard {
                node: TESTING_NODE.to_string(),
                seq: published_seq,
                ..Default::default()
            },
        };
        for (o, mg) in live.mgs.iter().enumerate() {
            for (&minute, b) in &mg.buckets {
                t.add(o, minute, b.samples);
            }
        }
        t
    }

    fn add(&mut self, mg: usize, minute: i64, samples: u64) {
        if samples == 0 {
            return;
        }
        let n = self.streets.len();
        let street = self.street_of.get(mg).copied().unwrap_or(0);
        let slot = self
            .series
            .entry(minute.div_euclid(SLOT_MIN))
            .or_insert_with(|| vec![0; n]);
        if let Some(v) = slot.get_mut(street) {
            *v += samples;
        }
    }

    /// Adds a batch's counting rows.
    pub fn fold(&mut self, rows: &[Row]) {
        for r in rows {
            self.add(r.mg as usize, r.minute, r.counts.samples);
        }
    }

    /// The board at `now`; `Some` (with its version moved up) when it
    /// differs from the last one.
    /// `samples_today(i)` gives the samples today under registry node `i`
    /// (the roll-up's figure), listed for the district, streets and
    /// communities.
    pub fn update(
        &mut self,
        reg: &Registry,
        live: &LiveState,
        now: i64,
        samples_today: impl Fn(usize) -> u64,
    ) -> Option<&TestingBoard> {
        let now_dt = DateTime::from_timestamp(now, 0).unwrap_or_default();
        let day = local_date(now_dt);
        let day_start = start_of_local_day(day).timestamp();
        let first = day_start.div_euclid(60 * SLOT_MIN);
        // Two days back is all a late event can reach.
        self.series = self.series.split_off(&(first - SLOTS));
        let mut series: BTreeMap<String, BTreeMap<u32, u64>> = BTreeMap::new();
        for (&slot, per_street) in self.series.range(first..first + SLOTS) {
            let k = (slot - first) as u32;
            for (i, &v) in per_street.iter().enumerate() {
                if v > 0 {
                    series
                        .entry(self.streets[i].clone())
                        .or_default()
                        .insert(k, v);
                }
            }
            let total: u64 = per_street.iter().sum();
            if total > 0 {
                series
                    .entry(reg.node(reg.root()).id.to_string())
                    .or_default()
                    .insert(k, total);
            }
        }
        let sites = self.sites(reg, live, now);
        let samples: BTreeMap<String, u64> = reg
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.level <= Level::Community)
            .map(|(i, n)| (n.id.to_string(), samples_today(i)))
            .collect();
        if series == self.board.series
            && sites == self.board.sites
            && samples == self.board.samples_today
            && self.board.day == day.to_string()
        {
            return None;
        }
        self.board.samples_today = samples;
        self.board.series = series;
        self.board.sites = sites;
        self.board.day = day.to_string();
        self.board.seq += 1;
        self.board.as_of = to_local_rfc3339(now_dt);
        Some(&self.board)
    }

    /// The busiest sites, district-wide and per street.
    fn sites(
        &self,
        reg: &Registry,
        live: &LiveState,
        now: i64,
    ) -> BTreeMap<String, Vec<SiteQueue>> {
        // (community, site) → (queue, micro-grids, street).
        let mut by_site: HashMap<(u32, &str), (u64, u32, usize)> = HashMap::new();
        for (o, mg) in live.mgs.iter().enumerate() {
            let (Some((ts, q)), Some(Some(site))) = (mg.queue, live.sites.get(o)) else {
                continue;
            };
            if ts > now || ts < now - QUEUE_FRESH_S {
                continue;
            }
            let e = by_site
                .entry((self.community_of[o], site.as_str()))
                .or_insert((0, 0, self.street_of[o]));
            e.0 += u64::from(q);
            e.1 += 1;
        }
        let mut all: Vec<(usize, SiteQueue)> = by_site
            .into_iter()
            .filter(|(_, (q, _, _))| *q > 0)
            .map(|((community, site), (queue, microgrids, street))| {
                (
                    street,
                    SiteQueue {
                        site: site.to_string(),
                        community: reg.node(community).id.to_string(),
                        community_name: reg.node(community).name.clone(),
                        queue,
                        microgrids,
                    },
                )
            })
            .collect();
        all.sort_by(|a, b| {
            b.1.queue
                .cmp(&a.1.queue)
                .then_with(|| a.1.community.cmp(&b.1.community))
                .then_with(|| a.1.site.cmp(&b.1.site))
        });
        let mut out: BTreeMap<String, Vec<SiteQueue>> = BTreeMap::new();
        let district = reg.node(reg.root()).id.to_string();
        for (street, s) in all {
            let list = out.entry(self.streets[street].clone()).or_default();
            if list.len() < SITES_STREET {
                list.push(s.clone());
            }
            let list = out.entry(district.clone()).or_default();
            if list.len() < SITES_DISTRICT {
                list.push(s);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Bucket;

    #[test]
    fn series_per_slot_and_busiest_sites() {
        let reg = gridwatch_runtime::registry::load(None).expect("built-in registry");
        let topo = Topology::new(&reg);
        let mut live = LiveState::new(reg.microgrids.len());
        let now = 1_665_813_600; // 2022-10-15 14:00 +08:00
        let day_start_min = (now - 14 * 3600) / 60;
        let row = |mg: u32, minute: i64, samples: u64| Row {
            mg,
            minute,
            counts: Bucket {
                samples,
                ..Default::default()
            },
        };
        // One micro-grid's samples already in the buckets (at start), more
        // in a batch: 06:05 and 06:07 share the 06:00 slot (36).
        live.mgs[0]
            .buckets
            .insert(day_start_min + 6 * 60 + 5, row(0, 0, 100).counts);
        let mut t = Board::new(&reg, &topo, &live, 7);
        t.fold(&[
            row(0, day_start_min + 6 * 60 + 7, 20),
            row(4000, day_start_min + 8 * 60, 5),
        ]);
        // Yesterday's samples stay out of today's series.
        t.fold(&[row(0, day_start_min - 30, 999)]);
        // Two micro-grids report queues at one site, one at another; one
        // report is too old to count.
        for (o, site, q, age) in [
            (0, "A", 30, 60),
            (1, "A", 12, 300),
            (2, "B", 50, 60),
            (3, "C", 90, 3600),
        ] {
            live.mgs[o].queue = Some((now - age, q));
            live.sites[o] = Some(site.to_string());
        }
        let b = t
            .update(&reg, &live, now, |i| i as u64)
            .expect("a first board")
            .clone();
        assert_eq!(b.seq, 8);
        assert_eq!(b.samples_today.get("beilun"), Some(&0));
        assert_eq!(b.samples_today.len(), 1 + 11 + 235);
        assert_eq!(b.day, "2022-10-15");
        let district = &b.series["beilun"];
        assert_eq!(district.get(&36), Some(&120));
        assert_eq!(district.get(&48), Some(&5));
        assert_eq!(district.values().sum::<u64>(), 125);
        let street = reg
            .node(reg.microgrids[0])
            .id
            .as_str()
            .split('/')
            .take(2)
            .collect::<Vec<_>>()
            .join("/");
        assert_eq!(b.series[&street].get(&36), Some(&120));
        let sites = &b.sites["beilun"];
        let got: Vec<(&str, u64, u32)> = sites
            .iter()
            .map(|s| (s.site.as_str(), s.queue, s.microgrids))
            .collect();
        assert_eq!(got, vec![("B", 50, 1), ("A", 42, 2)]);
        // Nothing changed: no new version.
        assert!(t.update(&reg, &live, now, |i| i as u64).is_none());
    }
}
