use super::*;
use crate::aggregate::fixture::{Fixture, street};
use crate::state::Outcome;
use crate::validate::{TimeRules, validate};
use gridwatch_model::state::{Status, Why};

/// An incident step on `n` at `hms` (2022-10-15): subject, payload.
fn step(n: &str, id: &str, inc: &str, action: &str, hms: &str, extra: &str) -> (String, String) {
    (
        format!("gw.ev.incident.{}", street(n)),
        format!(
            r#"{{"v":1,"kind":"incident","id":"{id}","ts":"2022-10-15T{hms}+08:00","node":"{n}","incident_id":"{inc}","action":"{action}","level":2,"category":"就医需求 medical","note":"n"{extra}}}"#
        ),
    )
}

fn video(n: &str, id: &str, flag: &str, action: &str, hms: &str) -> (String, String) {
    (
        format!("gw.ev.video.{}", street(n)),
        format!(
            r#"{{"v":1,"kind":"video","id":"{id}","ts":"2022-10-15T{hms}+08:00","node":"{n}","camera":"c","flag_id":"{flag}","flag":"vendor","action":"{action}","severity":3}}"#
        ),
    )
}

/// Applies one event; the conflict's detail, or "" when applied.
fn apply(fx: &Fixture, live: &mut LiveState, (subject, payload): (String, String)) -> String {
    let rules = TimeRules {
        lateness_s: 86_400,
        future_s: 300,
    };
    let v = validate(&subject, payload.as_bytes(), &fx.reg, Some(fx.now), rules)
        .unwrap_or_else(|e| panic!("{payload}: {e}"));
    match live.apply(&v, &fx.topo) {
        Outcome::Applied(_) => String::new(),
        Outcome::DeadLetter(e) => {
            assert_eq!(e.reason, Reason::Conflict, "{e}");
            e.detail
        }
        Outcome::Duplicate => "duplicate".into(),
    }
}

#[test]
fn incidents_step_up_the_tree_and_orders_reopen() {
    let fx = Fixture::new();
    let reg = &fx.reg;
    let mut live = LiveState::new(reg.microgrids.len());
    let (m0, m1) = (reg.microgrids[0], reg.microgrids[1]);
    let a = reg.node(m0).id.to_string();
    let path = reg.node(m0).mg.as_ref().expect("a micro-grid").path;
    let id = |i: u32| reg.node(i).id.to_string();
    let other_street = reg
        .microgrids
        .iter()
        .map(|&m| id(m))
        .find(|n| street(n) != street(&a))
        .expect("another street");
    let mut n = 0;
    let mut go = |live: &mut LiveState, action: &str, hms: &str, extra: &str| {
        n += 1;
        apply(
            &fx,
            live,
            step(&a, &format!("e{n}"), "i1", action, hms, extra),
        )
    };
    assert_eq!(go(&mut live, "reported", "09:00:00", ""), "");
    assert_eq!(
        live.incidents["i1"].owner, path[3],
        "level 2 starts at the grid"
    );
    assert_eq!(go(&mut live, "acknowledged", "09:05:00", ""), "");
    assert!(go(&mut live, "acknowledged", "09:06:00", "").contains("already acknowledged"));
    let to = |n: &str| format!(r#","to":"{n}""#);
    for bad in [other_street.clone(), a.clone(), id(path[3])] {
        let why = go(&mut live, "transferred", "09:10:00", &to(&bad));
        assert!(why.contains("can only go up"), "{bad}: {why}");
    }
    assert_eq!(
        go(&mut live, "transferred", "10:00:00", &to(&id(path[2]))),
        ""
    );
    assert_eq!(live.incidents["i1"].owner, path[2]);
    assert!(go(&mut live, "transferred", "10:01:00", &to(&id(path[3]))).contains("go up"));
    assert_eq!(go(&mut live, "transferred", "10:02:00", &to("beilun")), "");
    assert_eq!(go(&mut live, "acknowledged", "10:03:00", ""), "");
    let elsewhere = step(&id(m1), "x1", "i1", "resolved", "11:00:00", "");
    assert!(apply(&fx, &mut live, elsewhere).contains("another micro-grid"));
    assert!(go(&mut live, "resolved", "08:00:00", "").contains("before it was reported"));
    assert_eq!(go(&mut live, "resolved", "11:00:00", ""), "");
    assert!(go(&mut live, "resolved", "11:01:00", "").contains("already resolved"));
    assert_eq!(
        live.mgs[0].resolved,
        vec![(live.incidents["i1"].resolved.expect("r"), 120.0)]
    );

    // Level 3 is at the district at once, labelled.
    let (subject, payload) = step(&a, "l3", "i3", "reported", "09:00:00", "");
    let l3 = (subject, payload.replace(r#""level":2"#, r#""level":3"#));
    assert_eq!(apply(&fx, &mut live, l3), "");
    assert_eq!(live.incidents["i3"].owner, path[0]);
    assert_eq!(live.incidents["i3"].label.as_deref(), Some("medical"));

    // Orders: numbered by day, rectified once, reopened once.
    assert_eq!(
        apply(&fx, &mut live, video(&a, "v1", "f1", "raised", "09:00:00")),
        ""
    );
    assert_eq!(
        apply(&fx, &mut live, video(&a, "v2", "f2", "raised", "09:01:00")),
        ""
    );
    assert_eq!(live.flags["f1"].number, "督-20221015-0001");
    assert_eq!(live.flags["f2"].number, "督-20221015-0002");
    assert_eq!(
        apply(
            &fx,
            &mut live,
            video(&a, "v3", "f1", "rectified", "09:30:00")
        ),
        ""
    );
    assert!(
        apply(
            &fx,
            &mut live,
            video(&a, "v4", "f1", "rectified", "09:31:00")
        )
        .contains("already rectified")
    );
    assert!(
        apply(
            &fx,
            &mut live,
            video(&a, "v5", "f2", "reopened", "09:31:00")
        )
        .contains("is open")
    );
    assert_eq!(
        apply(
            &fx,
            &mut live,
            video(&a, "v6", "f1", "reopened", "10:00:00")
        ),
        ""
    );
    assert!(live.flags["f1"].reopened && live.flags["f1"].is_open());
    assert_eq!(live.flags["f1"].due, live.flags["f1"].opened + 3600);
    assert!(
        apply(&fx, &mut live, video(&a, "v7", "f1", "raised", "10:01:00")).contains("already open")
    );
    assert_eq!(live.mgs[0].open_flags, 2);
}

/// The 6 h and 16:00 rules, a second either side of each edge.
#[test]
fn six_hours_and_sixteen_hundred_at_their_edges() {
    let fx = Fixture::new();
    let reg = &fx.reg;
    let mut live = LiveState::new(reg.microgrids.len());
    let mg = reg.microgrids[0];
    let a = reg.node(mg).id.to_string();
    let l1 = |p: String| p.replace(r#""level":2"#, r#""level":1"#);
    let (s, p) = step(&a, "e1", "i1", "reported", "09:00:00", "");
    fx.apply(&mut live, &[(s, l1(p))], &mut vec![false; reg.nodes.len()]);
    let evs = [
        step(&a, "e2", "i2", "reported", "09:00:00", ""),
        step(&a, "e3", "i3", "reported", "16:00:00", ""),
    ];
    fx.apply(&mut live, &evs, &mut vec![false; reg.nodes.len()]);
    let at = |hms: i64| {
        let states = fx.full(&live, fx.now - 3600 + hms);
        states[mg as usize].clone().expect("its state")
    };
    // 15:00:00 is 6 h after the report: still in time; a second on,
    // it is late and the micro-grid is red for it.
    let s = at(0);
    assert_eq!(s.incidents.transfer_overdue, 0);
    let s = at(1);
    assert_eq!(s.incidents.transfer_overdue, 1);
    assert_eq!(s.status, Status::Red);
    assert!(
        s.why.contains(&Why::TransferOverdue {
            incident_id: "i2".into()
        }),
        "{:?}",
        s.why
    );
    // 16:00:00 is the due time: not overdue yet (i3, reported at 16:00
    // sharp, is due tomorrow); a second on, i1 and i2 are.
    let s = at(3600);
    assert_eq!((s.incidents.overdue, s.incidents.due_before_16), (0, 2));
    let s = at(3601);
    assert_eq!((s.incidents.overdue, s.incidents.due_before_16), (2, 1));
    assert!(
        s.why
            .iter()
            .any(|w| matches!(w, Why::IncidentOverdue { incident_id, .. } if incident_id == "i1"))
    );
    let district = fx.full(&live, fx.now + 1)[reg.lookup("beilun").expect("the district") as usize]
        .clone()
        .expect("its state");
    assert_eq!(
        (district.incidents.overdue, district.incidents.open),
        (2, 3)
    );
}

#[test]
fn labels_by_the_first_matching_rule_and_numbers_orders_by_day() {
    let c = DisposalConfig::default();
    assert_eq!(c.label("就医需求 medical", ""), "medical");
    assert_eq!(c.label("投诉", "独居老人无人照看"), "elderly care");
    assert_eq!(
        c.label("Complaint", "someone left: BREACH"),
        "quarantine breach"
    );
    assert_eq!(c.label("设施维修 repairs", ""), "other");
    assert!(c.check().is_ok());
    // 2022-10-15 09:30 +08:00.
    assert_eq!(order_number(1_665_797_400, 1), "督-20221015-0001");
    // 23:59:59 local is the same day; 00:00 the next.
    assert_eq!(day_key(1_665_849_599), 20221015);
    assert_eq!(day_key(1_665_849_600), 20221016);
}

#[test]
fn every_step_goes_to_the_history_tables_without_names_or_notes() {
    let fx = Fixture::new();
    let reg = &fx.reg;
    let mut live = LiveState::new(reg.microgrids.len());
    let m = reg.node(reg.microgrids[0]).id.to_string();
    for e in [
        step(
            &m,
            "h1",
            "i9",
            "reported",
            "09:00:00",
            r#","by":"网格员甲""#,
        ),
        step(&m, "h2", "i9", "acknowledged", "09:10:00", ""),
        step(&m, "h3", "i9", "resolved", "10:00:00", ""),
        video(&m, "h4", "F9", "raised", "09:20:00"),
        video(&m, "h5", "F9", "rectified", "09:40:00"),
    ] {
        assert_eq!(apply(&fx, &mut live, e), "");
    }
    let zone = format!(
        r#"{{"v":1,"kind":"zone","id":"h6","ts":"2022-10-15T11:00:00+08:00","node":"{m}","zone":"sealed","reason":"密接"}}"#
    );
    assert_eq!(
        apply(&fx, &mut live, (format!("gw.ev.zone.{}", street(&m)), zone)),
        ""
    );
    let dir = tempfile::tempdir().expect("temp dir");
    live.pending_from_seq = 1;
    crate::history::flush(dir.path(), reg, &fx.topo, &mut live, 6).expect("flush");
    let read = |t| crate::history::read_table(dir.path(), t, "2022-10-15").expect("read");
    let inc = read("incidents");
    use crate::history::tests::assert_columns;
    use gridwatch_model::tables;
    assert_columns(&inc, &tables::INCIDENTS);
    assert_columns(&read("orders"), &tables::ORDERS);
    assert_columns(&read("zones"), &tables::ZONES);
    let col = |df: &polars::prelude::DataFrame, c: &str| -> Vec<String> {
        df.column(c)
            .and_then(|c| c.cast(&polars::prelude::DataType::String))
            .map(|c| {
                c.str()
                    .map(|s| s.iter().map(|v| v.unwrap_or("").to_string()).collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        col(&inc, "action"),
        ["reported", "acknowledged", "resolved"]
    );
    assert_eq!(col(&inc, "node"), [m.as_str(); 3]);
    let names: Vec<String> = inc
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert!(!names.iter().any(|c| c == "by" || c == "note"), "{names:?}");
    let orders = read("orders");
    assert_eq!(col(&orders, "action"), ["raised", "rectified"]);
    assert_eq!(col(&orders, "number"), ["督-20221015-0001"; 2]);
    let zones = read("zones");
    assert_eq!(col(&zones, "zone"), ["sealed"]);
    assert!(live.pending_events.is_empty());
}
