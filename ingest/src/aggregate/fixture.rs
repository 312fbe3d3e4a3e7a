//! Fixtures shared by the aggregate tests: the built-in registry at 16:00
//! on 2022-10-15 with the default status rules, and events applied as
//! ingest applies them.

use gridwatch_model::Registry;

use gridwatch_model::NodeState;

use super::{RollupCache, Scope, compute_states, fold_batch};
use crate::config::StatusConfig;
use crate::state::{LiveState, Topology};
use crate::validate::{TimeRules, validate};

/// The built-in registry at 16:00 on 2022-10-15, default status rules.
pub struct Fixture {
    pub reg: Registry,
    pub topo: Topology,
    pub now: i64,
    pub cfg: StatusConfig,
}

impl Fixture {
    pub fn new() -> Fixture {
        let reg = gridwatch_runtime::registry::load(None).expect("built-in registry");
        let topo = Topology::new(&reg);
        Fixture {
            reg,
            topo,
            now: 1_665_820_800, // 2022-10-15 16:00 +08:00
            cfg: StatusConfig::default(),
        }
    }

    /// Every node's state at `now`, by a full recompute from a fresh cache.
    pub fn full(&self, live: &LiveState, now: i64) -> Vec<Option<NodeState>> {
        let mut cache = RollupCache::new(&self.reg, &self.topo, Default::default());
        compute_states(
            &self.reg,
            &self.topo,
            live,
            now,
            &self.cfg,
            &mut cache,
            Scope::Full,
        )
        .expect("a full recompute")
    }

    /// Validates and applies `evs` as ingest does, folds them in, and
    /// marks their micro-grids' paths in `mask`.
    pub fn apply(&self, live: &mut LiveState, evs: &[(String, String)], mask: &mut [bool]) {
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
            match live.apply(&v, &self.topo) {
                crate::state::Outcome::Applied(r) => rows.extend(r),
                other => panic!("not applied: {other:?}"),
            }
        }
        fold_batch(live, &rows).expect("fold");
    }
}

/// The street of a node id.
pub fn street(n: &str) -> String {
    n.split('/').nth(1).unwrap_or("").to_string()
}

/// A patrol of `n` at `ts` (`HH:MM` on 2022-10-15): subject, payload.
pub fn patrol(n: &str, id: &str, ts: &str) -> (String, String) {
    (
        format!("gw.ev.patrol.{}", street(n)),
        format!(
            r#"{{"v":1,"kind":"patrol","id":"{id}","ts":"2022-10-15T{ts}:00+08:00","node":"{n}","team":"t","persons":2,"checkpoints":1,"findings":{{"gatherings_dispersed":1,"people_persuaded":0,"venues_closed":0,"vendors_cleared":0,"violations":0}}}}"#
        ),
    )
}
