//! One realistic Beilun day (DESIGN §2, §3), deterministic for a seed and a
//! date: patrol rounds (around the clock in sealed and control zones, every
//! few hours by day in prevention zones), the mass-testing morning with its
//! 06:00 peak, video flags raised and later rectified, incidents through the
//! report → handle → resolve loop, and zone changes.

use bytes::Bytes;
use chrono::{DateTime, NaiveDate};
use gridwatch_model::event::{
    EventBody, Findings, FlagKind, Incident, IncidentAction, Patrol, Testing, Video, VideoAction,
    ZoneChange,
};
use gridwatch_model::time::{local_offset, start_of_local_day};
use gridwatch_model::{Event, Level, Registry, Zone};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Outgoing;

const H: i64 = 3600;
const M: i64 = 60;

struct Gen {
    day_start: i64,
    tag: String,
    n: u64,
    out: Vec<(i64, u64, Event)>,
}

impl Gen {
    fn push(&mut self, ts: i64, node: &str, body: EventBody) {
        let letter = &body.kind().as_str()[..1];
        self.n += 1;
        let ts_dt = DateTime::from_timestamp(ts, 0)
            .unwrap_or_default()
            .with_timezone(&local_offset());
        let ev = Event {
            v: 1,
            id: format!("{letter}-{}-{:07}", self.tag, self.n),
            ts: ts_dt,
            node: node.to_string(),
            body,
        };
        self.out.push((ts, self.n, ev));
    }
}

fn findings(rng: &mut ChaCha8Rng, closed: bool) -> Findings {
    let mut f = Findings::default();
    let mut maybe = |p: f64, hi: u32| {
        if rng.random_bool(p) {
            u64::from(rng.random_range(1..=hi))
        } else {
            0
        }
    };
    if closed {
        f.people_persuaded = maybe(0.15, 2);
        f.violations = maybe(0.02, 1);
    } else {
        f.gatherings_dispersed = maybe(0.05, 2);
        f.people_persuaded = maybe(0.25, 6);
        f.venues_closed = maybe(0.01, 1);
        f.vendors_cleared = maybe(0.06, 3);
        f.violations = maybe(0.01, 1);
    }
    f
}

/// The day's events for `seed` and local `date`, sorted by event time, as
/// messages ready to publish.
pub fn generate(reg: &Registry, seed: u64, date: NaiveDate) -> Vec<Outgoing> {
    let day_start = start_of_local_day(date).timestamp();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (day_start as u64).rotate_left(17));
    let mut g = Gen {
        day_start,
        tag: date.format("%Y%m%d").to_string(),
        n: 0,
        out: Vec::new(),
    };
    let d0 = g.day_start;

    // Zone changes: a new case seals a control micro-grid at 10:15; a grid
    // in another street becomes a control area at 13:30.
    let mut closed_extra: Vec<(u32, i64, Zone)> = Vec::new();
    let control: Vec<u32> = reg
        .microgrids
        .iter()
        .copied()
        .filter(|&m| {
            reg.node(m)
                .mg
                .as_ref()
                .is_some_and(|i| i.zone == Zone::Control)
        })
        .collect();
    if !control.is_empty() {
        let m = control[rng.random_range(0..control.len())];
        closed_extra.push((m, d0 + 10 * H + 15 * M, Zone::Sealed));
        let id = reg.node(m).id.to_string();
        g.push(
            d0 + 10 * H + 15 * M,
            &id,
            EventBody::Zone(ZoneChange {
                zone: Zone::Sealed,
                reason: "新增阳性病例 new positive case".into(),
            }),
        );
    }
    let grids: Vec<u32> = (0..reg.nodes.len() as u32)
        .filter(|&i| reg.node(i).level == Level::Grid)
        .collect();
    if !grids.is_empty() {
        let gi = grids[rng.random_range(0..grids.len())];
        let id = reg.node(gi).id.to_string();
        g.push(
            d0 + 13 * H + 30 * M,
            &id,
            EventBody::Zone(ZoneChange {
                zone: Zone::Control,
                reason: "密接人员居住地 close contacts' residence".into(),
            }),
        );
        for m in reg.microgrids_under(gi) {
            closed_extra.push((m, d0 + 13 * H + 30 * M, Zone::Control));
        }
    }

    for &m in &reg.microgrids {
        let info = reg.node(m);
        let Some(mg) = &info.mg else { continue };
        let id = info.id.to_string();
        let became_closed = closed_extra
            .iter()
            .find(|(x, _, _)| *x == m)
            .map(|(_, t, _)| *t);
        let closed_from = if mg.zone.is_closed() {
            Some(d0)
        } else {
            became_closed
        };
        let team = format!(
            "{}-team",
            info.id.as_str().rsplit('/').nth(1).unwrap_or("g")
        );

        // Patrols.
        let mut t = d0 + rng.random_range(0..40 * M);
        while t < d0 + 24 * H {
            let closed = closed_from.is_some_and(|c| t >= c);
            let daytime = t >= d0 + 7 * H && t < d0 + 22 * H;
            if closed || daytime {
                g.push(
                    t,
                    &id,
                    EventBody::Patrol(Patrol {
                        team: team.clone(),
                        persons: if closed {
                            rng.random_range(2..=4)
                        } else {
                            rng.random_range(2..=3)
                        },
                        checkpoints: rng.random_range(3..=10),
                        findings: findings(&mut rng, closed),
                    }),
                );
            }
            t += if closed {
                rng.random_range(30 * M..=50 * M)
            } else if daytime {
                rng.random_range(2 * H..=4 * H)
            } else {
                rng.random_range(30 * M..=60 * M)
            };
        }

        // Mass testing: reports every 10 minutes, 06:00–11:00, peaking
        // around 06:45 (door-to-door in sealed and control zones).
        let pop = info.population as f64;
        let share = if mg.zone.is_closed() {
            1.0
        } else {
            rng.random_range(0.86..0.97)
        };
        let target = (pop * share).round() as u64;
        let slots: Vec<i64> = (0..30).map(|k| d0 + 6 * H + k * 10 * M).collect();
        let w: Vec<f64> = slots
            .iter()
            .map(|&s| {
                let x = (s - (d0 + 6 * H + 45 * M)) as f64 / H as f64;
                (-(x * x) / 2.0).exp() * rng.random_range(0.8..1.2)
            })
            .collect();
        let wsum: f64 = w.iter().sum();
        let mut done = 0u64;
        let site = if mg.zone.is_closed() {
            "上门采样 door-to-door".to_string()
        } else {
            format!("{}核酸采样点", reg.node(mg.path[2]).name)
        };
        for (k, &slot) in slots.iter().enumerate() {
            let samples = if k + 1 == slots.len() {
                target - done
            } else {
                ((w[k] / wsum) * target as f64).round() as u64
            };
            let samples = samples.min(target - done);
            done += samples;
            let ts = slot + 10 * M - rng.random_range(0..90);
            let rate_now = w[k] / wsum * target as f64;
            g.push(
                ts,
                &id,
                EventBody::Testing(Testing {
                    site: site.clone(),
                    interval_s: 600,
                    samples: samples as u32,
                    queue: (rate_now * rng.random_range(0.2..0.9)).round() as u32,
                    staff: if mg.zone.is_closed() {
                        2
                    } else {
                        rng.random_range(3..=6)
                    },
                }),
            );
            if done >= target {
                break;
            }
        }
    }

    // Video flags: about one per 15 micro-grids a day.
    let n_flags = reg.microgrids.len() / 15;
    for k in 0..n_flags {
        let m = reg.microgrids[rng.random_range(0..reg.microgrids.len())];
        let info = reg.node(m);
        let Some(mg) = &info.mg else { continue };
        let id = info.id.to_string();
        let closed = mg.zone.is_closed();
        let flag = match (closed, rng.random_range(0..100)) {
            (true, 0..=14) if mg.zone == Zone::Sealed => FlagKind::SealedExit,
            (true, 0..=49) => FlagKind::DoorBreach,
            (_, 0..=29) => FlagKind::Gathering,
            (_, 30..=54) => FlagKind::Vendor,
            (_, 55..=84) => FlagKind::NoMask,
            _ => FlagKind::Other,
        };
        let raised = d0 + rng.random_range(7 * H..22 * H);
        let flag_id = format!("F{}-{k:05}", g.tag);
        let camera = format!(
            "CAM-{}-{:03}",
            info.id.street_token().unwrap_or("x"),
            rng.random_range(1..400)
        );
        let severity = match flag {
            FlagKind::SealedExit | FlagKind::DoorBreach => 3,
            FlagKind::Gathering => 2,
            _ => 1,
        };
        let video = |action, note: &str| {
            EventBody::Video(Video {
                camera: camera.clone(),
                flag_id: flag_id.clone(),
                flag,
                action,
                severity,
                by: String::new(),
                note: note.to_string(),
            })
        };
        g.push(raised, &id, video(VideoAction::Raised, ""));
        // Most orders are rectified within their time (severity 3: 1 h,
        // 2: 4 h), a few late, a few not that day; one in 25 is reopened
        // after the re-inspection and rectified again.
        if rng.random_bool(0.95) {
            let within = match severity {
                3 => 50 * M,
                2 => 3 * H,
                _ => 4 * H,
            };
            let late = rng.random_bool(0.06);
            let fix = raised
                + if late {
                    rng.random_range(within..=within + 2 * H)
                } else {
                    rng.random_range(5 * M..=within)
                };
            g.push(
                fix,
                &id,
                video(VideoAction::Rectified, "已整改 rectified on site"),
            );
            if rng.random_bool(0.04) {
                let again = fix + rng.random_range(20 * M..=60 * M);
                g.push(
                    again,
                    &id,
                    video(VideoAction::Reopened, "复查未通过 failed re-inspection"),
                );
                let fixed = again + rng.random_range(10 * M..=40 * M);
                g.push(fixed, &id, video(VideoAction::Rectified, "复查通过 passed"));
            }
        }
    }

    // Incidents: the grid report → shunt disposal loop.
    const CATEGORIES: [&str; 6] = [
        "生活物资 supplies",
        "就医需求 medical",
        "人员聚集 gathering",
        "投诉 complaint",
        "外来人员 visitor",
        "设施维修 repairs",
    ];
    for k in 0..(reg.microgrids.len() / 50) {
        let m = reg.microgrids[rng.random_range(0..reg.microgrids.len())];
        let info = reg.node(m);
        let id = info.id.to_string();
        let path = info.mg.as_ref().map(|g| g.path).unwrap_or_default();
        let level = match rng.random_range(0..100) {
            0..=59 => 1,
            60..=89 => 2,
            90..=97 => 3,
            _ => 4,
        };
        let incident_id = format!("I{}-{k:04}", g.tag);
        let category = CATEGORIES[rng.random_range(0..CATEGORIES.len())].to_string();
        let member = format!("网格员{:03}", rng.random_range(1..200));
        let inc = |action, note: &str, to: Option<String>| {
            EventBody::Incident(Incident {
                incident_id: incident_id.clone(),
                action,
                level,
                category: category.clone(),
                note: note.to_string(),
                by: member.clone(),
                to,
            })
        };
        // Reported by day; due by 16:00 (the next day's after 16:00).
        let reported = d0 + rng.random_range(7 * H..20 * H);
        let due = gridwatch_model::deadline::incident_due(
            DateTime::from_timestamp(reported, 0).unwrap_or_default(),
        )
        .timestamp();
        g.push(
            reported,
            &id,
            inc(
                IncidentAction::Reported,
                "网格员上报 reported by the grid member",
                None,
            ),
        );
        let ack = reported + rng.random_range(5 * M..=20 * M);
        g.push(ack, &id, inc(IncidentAction::Acknowledged, "", None));
        let mut last = ack;
        // Level 2 goes up to the community or the street within 6 h (a
        // few too late); level 3 and above are at the district already.
        if level == 2 {
            let late = rng.random_bool(0.05);
            last = reported
                + if late {
                    rng.random_range(6 * H + M..=8 * H)
                } else {
                    rng.random_range(H..=5 * H)
                };
            let to = path[rng.random_range(1..=2)];
            g.push(
                last,
                &id,
                inc(
                    IncidentAction::Transferred,
                    "上报处置 transferred up",
                    Some(reg.node(to).id.to_string()),
                ),
            );
        }
        // Most are resolved before they are due, a few late, a few stay.
        if rng.random_bool(0.95) {
            let late = rng.random_bool(0.08);
            let done = if late || due - last <= 31 * M {
                due + rng.random_range(10 * M..=3 * H)
            } else {
                last + rng.random_range(30 * M..=(due - last - M).min(4 * H))
            };
            g.push(
                done,
                &id,
                inc(IncidentAction::Resolved, "已处置 handled", None),
            );
        }
    }

    let mut events = g.out;
    events.sort_by_key(|(ts, n, _)| (*ts, *n));
    events
        .into_iter()
        .filter(|(ts, _, _)| *ts < d0 + 24 * H)
        .map(|(ts, _, ev)| {
            let street = ev.node.split('/').nth(1).unwrap_or("beilun").to_string();
            Outgoing {
                at: ts,
                subject: format!("gw.ev.{}.{street}", ev.kind()),
                msg_id: ev.id.clone(),
                payload: Bytes::from(ev.to_json()),
            }
        })
        .collect()
}
