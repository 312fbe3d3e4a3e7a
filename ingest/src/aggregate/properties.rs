//! Properties of the roll-up over random event sequences: every additive
//! figure of a node is the sum of its children's, and a node's totals are
//! the sums over its zone classes — whatever mix of patrols, testing
//! reports, flags, incidents (conflicting ones included) and zone
//! designations on any level came in.

use gridwatch_model::NodeState;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::fixture::{Fixture, street};
use super::fold_batch;
use crate::state::{LiveState, Outcome};
use crate::validate::{TimeRules, validate};

/// One random event: (kind, micro-grid pick, minute of the day, a number,
/// an item pick, a zone pick, a level for designations).
type Pick = (u8, usize, u32, u32, u8, u8, u8);

fn event(fx: &Fixture, mgs: &[u32], k: usize, p: Pick) -> (String, Value) {
    let (kind, mg, minute, n, item, zone, level) = p;
    let id = fx.reg.node(mgs[mg % mgs.len()]).id.to_string();
    let ts = format!(
        "2022-10-15T{:02}:{:02}:00+08:00",
        6 + minute / 60 % 10,
        minute % 60
    );
    let base = json!({"v": 1, "id": format!("e{k}"), "ts": ts, "node": id});
    let (kind, body) = match kind % 6 {
        0 => (
            "patrol",
            json!({"team": "t", "persons": 1 + n % 5, "findings": {"vendors_cleared": n % 3, "violations": n % 2}}),
        ),
        1 => (
            "testing",
            json!({"site": "s", "interval_s": 600, "samples": n % 200, "queue": n % 30}),
        ),
        2 => {
            let flag = ["gathering", "sealed_exit"][usize::from(item % 2)];
            let action = ["raised", "rectified"][usize::from(n % 3 == 0)];
            (
                "video",
                json!({"camera": "c", "flag_id": format!("f{}", item % 8), "flag": flag, "action": action, "severity": 1 + item % 3}),
            )
        }
        3 => {
            let action = ["reported", "acknowledged", "resolved"][(n % 3) as usize];
            (
                "incident",
                json!({"incident_id": format!("i{}", item % 6), "action": action, "level": 1 + item % 4, "category": "c", "note": "n"}),
            )
        }
        _ => {
            // A designation on the micro-grid or one of its ancestors.
            let path = fx
                .reg
                .node(mgs[mg % mgs.len()])
                .mg
                .as_ref()
                .map(|m| m.path)
                .unwrap_or_default();
            let on = fx.reg.node(path[1 + usize::from(level % 4)]).id.to_string();
            let mut b = base.clone();
            b["node"] = json!(on);
            let z = ["sealed", "control", "prevention", "normal"][usize::from(zone % 4)];
            let mut v = b;
            v["kind"] = json!("zone");
            v["zone"] = json!(z);
            return (format!("gw.ev.zone.{}", street(&on)), v);
        }
    };
    let mut v = base;
    v["kind"] = json!(kind);
    for (k, x) in body.as_object().into_iter().flatten() {
        v[k] = x.clone();
    }
    (format!("gw.ev.{kind}.{}", street(&id)), v)
}

/// The additive figures of a state, by name.
fn additive(s: &NodeState) -> Vec<(&'static str, u64)> {
    let f = &s.patrol.findings_today;
    let mut v = vec![
        ("microgrids", u64::from(s.microgrids)),
        ("population", s.population),
        ("households", s.households),
        ("staff", s.staff),
        ("patrols_1h", s.patrol.patrols_1h),
        ("persons_1h", s.patrol.persons_1h),
        ("patrols_today", s.patrol.patrols_today),
        ("findings", f.total()),
        ("samples_today", s.testing.samples_today),
        ("samples_10min", s.testing.samples_10min),
        ("queue", s.testing.queue),
        ("flags_open", s.video.flags_open),
        ("raised_today", s.video.raised_today),
        ("rectified_today", s.video.rectified_today),
        ("incidents_open", s.incidents.open),
        ("reported_today", s.incidents.reported_today),
        ("resolved_today", s.incidents.resolved_today),
        ("red", u64::from(s.red_microgrids)),
        ("amber", u64::from(s.amber_microgrids)),
    ];
    for (l, n) in s.incidents.open_by_level.iter().enumerate() {
        v.push((["open_l1", "open_l2", "open_l3", "open_l4"][l], *n));
    }
    v
}

proptest! {
    // Each case recomputes every node of the district with polars.
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn parents_sum_their_children_and_zone_classes_sum_to_the_total(
        picks in prop::collection::vec(any::<Pick>(), 1..120)
    ) {
        let fx = Fixture::new();
        // Micro-grids in three streets, several per grid, so events overlap.
        let mgs: Vec<u32> = fx.reg.microgrids.iter().copied().step_by(97).take(40).collect();
        let mut live = LiveState::new(fx.reg.microgrids.len());
        let rules = TimeRules { lateness_s: 86400, future_s: 300 };
        let mut rows = Vec::new();
        for (k, p) in picks.into_iter().enumerate() {
            let (subject, v) = event(&fx, &mgs, k, p);
            let bytes = serde_json::to_vec(&v).expect("json");
            let valid = validate(&subject, &bytes, &fx.reg, Some(fx.now), rules)
                .map_err(|e| TestCaseError::fail(format!("{e}: {v}")))?;
            // Conflicts (a flag raised twice, an incident never reported)
            // are refused, as ingest refuses them.
            if let Outcome::Applied(r) = live.apply(&valid, &fx.topo) {
                rows.extend(r);
            }
        }
        fold_batch(&mut live, &rows).expect("fold");
        let states = fx.full(&live, fx.now);
        let by_id: std::collections::HashMap<&str, &NodeState> =
            states.iter().flatten().map(|s| (s.node.as_str(), s)).collect();
        for s in states.iter().flatten() {
            if !s.children.is_empty() {
                let kids: Vec<&NodeState> = s
                    .children
                    .iter()
                    .map(|c| by_id.get(c.node.as_str()).copied().expect("a child's state"))
                    .collect();
                for (i, (name, total)) in additive(s).into_iter().enumerate() {
                    let sum: u64 = kids.iter().map(|k| additive(k)[i].1).sum();
                    prop_assert_eq!(total, sum, "{} at {}", name, s.node);
                }
            }
            let z = &s.zones;
            let classes = [&z.sealed, &z.control, &z.prevention, &z.normal];
            let sum = |f: fn(&gridwatch_model::state::ZoneAgg) -> u64| classes.iter().map(|c| f(c)).sum::<u64>();
            prop_assert_eq!(u64::from(s.microgrids), sum(|c| u64::from(c.microgrids)), "microgrids by zone at {}", s.node);
            prop_assert_eq!(s.population, sum(|c| c.population), "population by zone at {}", s.node);
            prop_assert_eq!(s.households, sum(|c| c.households), "households by zone at {}", s.node);
            prop_assert_eq!(s.staff, sum(|c| c.staff), "staff by zone at {}", s.node);
            prop_assert_eq!(s.testing.samples_today, sum(|c| c.samples_today), "samples by zone at {}", s.node);
            prop_assert_eq!(s.video.flags_open, sum(|c| c.flags_open), "flags by zone at {}", s.node);
            prop_assert_eq!(u64::from(s.red_microgrids), sum(|c| u64::from(c.red)), "red by zone at {}", s.node);
            prop_assert_eq!(u64::from(s.amber_microgrids), sum(|c| u64::from(c.amber)), "amber by zone at {}", s.node);
        }
    }
}
