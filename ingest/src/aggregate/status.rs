//! Status rules: when a micro-grid is red, amber or green and why, and the
//! status of a node above the micro-grids (the worst below it).
//!
//! A micro-grid is red with an open sealed-zone exit flag, or when a closed
//! (sealed or control) micro-grid has gone unpatrolled for
//! `unpatrolled_red_min`; amber when unpatrolled for `unpatrolled_amber_min`,
//! with other open flags, or with open incidents of level 3 and above.

use chrono::DateTime;
use gridwatch_model::Zone;
use gridwatch_model::state::{RedNode, Status, Why};
use gridwatch_model::time::to_local_rfc3339;

use crate::config::StatusConfig;

/// What a micro-grid's status is judged on.
#[derive(Clone, Copy, Debug)]
pub struct MgSigns<'a> {
    pub zone: Zone,
    /// When its zone was designated, if it was.
    pub zone_since: Option<i64>,
    pub last_patrol: Option<i64>,
    /// Raised times of its open sealed-zone exit flags, oldest first.
    pub exit_flags_raised: &'a [i64],
    /// Every open flag, exits included.
    pub flags_open: u64,
    /// Open incidents of level 3 and above.
    pub serious_incidents: u64,
    /// Deadlines missed that make it red: incidents overdue, level-2 ones
    /// not transferred in time.
    pub late_red: &'a [Why],
    /// ... and amber: supervision orders overdue.
    pub late_amber: &'a [Why],
}

/// A micro-grid's status, its reasons and its patrol age.
#[derive(Clone, Debug, PartialEq)]
pub struct Judged {
    pub status: Status,
    pub why: Vec<Why>,
    /// Minutes since the last patrol (sealed and control only).
    pub patrol_age_min: Option<i64>,
}

/// `HH:MM` local of a Unix time.
fn hm(ts: i64) -> String {
    DateTime::from_timestamp(ts, 0)
        .map(|t| to_local_rfc3339(t)[11..16].to_string())
        .unwrap_or_default()
}

/// Judges one micro-grid at `now` (`day_start`: local midnight before it).
pub fn mg_status(s: &MgSigns, now: i64, day_start: i64, cfg: &StatusConfig) -> Judged {
    let mut red = Vec::new();
    let mut amber = Vec::new();
    for r in s.exit_flags_raised {
        red.push(Why::ExitFlagOpen { since: hm(*r) });
    }
    red.extend_from_slice(s.late_red);
    let mut patrol_age_min = None;
    if s.zone.is_closed() {
        // A patrol ahead of the clock counts as now: filtering it out
        // instead read as "never patrolled today" and turned the micro-grid
        // red with its age since midnight until the clock caught up.
        let last = s.last_patrol.map(|t| t.min(now));
        let reference = last
            .into_iter()
            .chain(s.zone_since)
            .fold(day_start, i64::max);
        let age = (now - reference).max(0) / 60;
        patrol_age_min = Some(last.map_or(age, |l| (now - l).max(0) / 60));
        let why = Why::Unpatrolled {
            zone: s.zone,
            minutes: age,
        };
        if age >= cfg.unpatrolled_red_min {
            red.push(why);
        } else if age >= cfg.unpatrolled_amber_min {
            amber.push(why);
        }
    }
    let other_flags = s
        .flags_open
        .saturating_sub(s.exit_flags_raised.len() as u64);
    if other_flags > 0 {
        amber.push(Why::FlagsOpen { count: other_flags });
    }
    if s.serious_incidents > 0 {
        amber.push(Why::SeriousIncidents {
            count: s.serious_incidents,
        });
    }
    amber.extend_from_slice(s.late_amber);
    let (status, why) = if !red.is_empty() {
        (Status::Red, red)
    } else if !amber.is_empty() {
        (Status::Amber, amber)
    } else {
        (Status::Green, Vec::new())
    };
    Judged {
        status,
        why,
        patrol_age_min,
    }
}

/// Status of a node above the micro-grids: the worst below it, with the
/// first red micro-grids' reasons.
pub fn rollup_status(red: u64, amber: u64, red_nodes: &[RedNode]) -> (Status, Vec<Why>) {
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

    const NOON: i64 = 1_665_806_400; // 2022-10-15 12:00 +08:00
    const MIDNIGHT: i64 = NOON - 12 * 3600;

    fn signs(zone: Zone) -> MgSigns<'static> {
        MgSigns {
            zone,
            zone_since: None,
            last_patrol: None,
            exit_flags_raised: &[],
            flags_open: 0,
            serious_incidents: 0,
            late_red: &[],
            late_amber: &[],
        }
    }

    #[test]
    fn an_open_exit_is_red_before_anything_else() {
        let cfg = StatusConfig::default();
        let raised = [NOON - 600];
        let s = MgSigns {
            last_patrol: Some(NOON - 60),
            exit_flags_raised: &raised,
            flags_open: 3,
            ..signs(Zone::Sealed)
        };
        let j = mg_status(&s, NOON, MIDNIGHT, &cfg);
        assert_eq!(j.status, Status::Red);
        assert_eq!(
            j.why,
            vec![Why::ExitFlagOpen {
                since: "11:50".into()
            }]
        );
        assert_eq!(j.patrol_age_min, Some(1));
    }

    #[test]
    fn unpatrolled_closed_micro_grids_go_amber_then_red() {
        let cfg = StatusConfig::default();
        let at = |minutes: i64| {
            let s = MgSigns {
                last_patrol: Some(NOON - minutes * 60),
                ..signs(Zone::Control)
            };
            mg_status(&s, NOON, MIDNIGHT, &cfg).status
        };
        assert_eq!(at(cfg.unpatrolled_amber_min - 1), Status::Green);
        assert_eq!(at(cfg.unpatrolled_amber_min), Status::Amber);
        assert_eq!(at(cfg.unpatrolled_red_min), Status::Red);
        // Prevention micro-grids have no patrol rule.
        let open = mg_status(&signs(Zone::Prevention), NOON, MIDNIGHT, &cfg);
        assert_eq!((open.status, open.patrol_age_min), (Status::Green, None));
    }

    #[test]
    fn a_node_above_lists_its_red_and_counts_the_rest() {
        let red = |n: &str| RedNode {
            node: n.into(),
            name: n.into(),
            zone: Zone::Sealed,
            why: vec![Why::ExitFlagOpen {
                since: "10:00".into(),
            }],
        };
        let (status, why) = rollup_status(7, 2, &[red("a"), red("b")]);
        assert_eq!(status, Status::Red);
        assert_eq!(why.len(), 3);
        assert_eq!(why[2], Why::RedInAll { count: 7 });
        assert_eq!(
            rollup_status(0, 2, &[]),
            (Status::Amber, vec![Why::AmberBelow { count: 2 }])
        );
        assert_eq!(rollup_status(0, 0, &[]), (Status::Green, vec![]));
    }
}
