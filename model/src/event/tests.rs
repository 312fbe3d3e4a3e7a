use super::*;

fn reason(bytes: &[u8]) -> Reason {
    match Event::parse(bytes, None) {
        Ok(e) => panic!("expected an error, parsed {e:?}"),
        Err(e) => e.reason,
    }
}

const PATROL: &str = r#"{"v":1,"kind":"patrol","id":"p1","ts":"2022-10-15T09:30:00+08:00","node":"beilun/daqi/x/g01/m01","team":"t","persons":3,"checkpoints":4,"findings":{"vendors_cleared":2},"extra":"ignored"}"#;

#[test]
fn parses_and_roundtrips_a_patrol() {
    let ev = Event::parse(PATROL.as_bytes(), Some("patrol")).expect("valid patrol");
    let EventBody::Patrol(p) = &ev.body else {
        panic!("not a patrol")
    };
    assert_eq!(p.persons, 3);
    assert_eq!(p.findings.vendors_cleared, 2);
    let again = Event::parse(&ev.to_json(), None).expect("roundtrip");
    assert_eq!(again, ev);
}

#[test]
fn classifies_bad_events() {
    assert_eq!(reason(b"{not json"), Reason::Malformed);
    assert_eq!(reason(b"[1,2]"), Reason::Malformed);
    assert_eq!(reason(b"\xff\xfe"), Reason::Malformed);
    assert_eq!(reason(br#"{"v":2,"kind":"patrol"}"#), Reason::Version);
    assert_eq!(reason(br#"{"v":"2","kind":"patrol"}"#), Reason::Version);
    assert_eq!(
        reason(
            &PATROL
                .replace(r#""persons":3"#, r#""persons":0"#)
                .into_bytes()
        ),
        Reason::Schema
    );
    assert_eq!(
        reason(
            &PATROL
                .replace(r#""persons":3"#, r#""persons":"three""#)
                .into_bytes()
        ),
        Reason::Schema
    );
    assert_eq!(
        reason(&PATROL.replace("+08:00", "").into_bytes()),
        Reason::Schema
    );
    let long_id = "x".repeat(65);
    assert_eq!(
        reason(
            &PATROL
                .replace(r#""p1""#, &format!("\"{long_id}\""))
                .into_bytes()
        ),
        Reason::Schema
    );
    let err = Event::parse(PATROL.as_bytes(), Some("video")).expect_err("kind mismatch");
    assert_eq!(err.reason, Reason::Schema);
}

/// A valid event of `kind` with every field that has a limit present.
fn full(kind: &str) -> serde_json::Value {
    let base = serde_json::json!({"v":1,"kind":kind,"id":"e1","ts":"2022-10-15T09:30:00+08:00","node":"beilun/daqi/x/g01/m01"});
    let extra = match kind {
        "patrol" => {
            serde_json::json!({"team":"t","persons":3,"checkpoints":4,"findings":{"gatherings_dispersed":1,"people_persuaded":1,"venues_closed":1,"vendors_cleared":1,"violations":1}})
        }
        "testing" => {
            serde_json::json!({"site":"s","interval_s":600,"samples":10,"queue":2,"staff":3})
        }
        "video" => {
            serde_json::json!({"camera":"c","flag_id":"f","flag":"gathering","action":"raised","severity":2,"by":"u","note":"n"})
        }
        "incident" => {
            serde_json::json!({"incident_id":"i","action":"reported","level":2,"category":"c","note":"n","by":"u","to":"beilun"})
        }
        _ => serde_json::json!({"zone":"sealed","reason":"r"}),
    };
    let mut v = base;
    for (k, x) in extra.as_object().expect("object") {
        v[k] = x.clone();
    }
    v
}

fn parse_with(kind: &str, field: &str, value: serde_json::Value) -> Result<Event, ParseError> {
    let mut v = full(kind);
    match field.strip_prefix("findings.") {
        Some(f) => v["findings"][f] = value,
        None => v[field] = value,
    }
    Event::parse(&serde_json::to_vec(&v).expect("json"), Some(kind))
}

#[test]
fn a_transfer_needs_a_target_and_a_resolution_a_note() {
    let step = |action: &str, extra: &str| {
        let s = format!(
            r#"{{"v":1,"kind":"incident","id":"e","ts":"2022-10-15T09:30:00+08:00","node":"beilun/daqi/x/g01/m01","incident_id":"i","action":"{action}"{extra}}}"#
        );
        Event::parse(s.as_bytes(), Some("incident"))
    };
    let e = step("transferred", "").expect_err("no target");
    assert!(e.detail.contains("`to`"), "{e}");
    let ok = step("transferred", r#","to":"beilun/daqi","by":"li""#).expect("a transfer");
    let EventBody::Incident(inc) = &ok.body else {
        panic!("not an incident")
    };
    assert_eq!(
        (inc.to.as_deref(), inc.by.as_str()),
        (Some("beilun/daqi"), "li")
    );
    assert_eq!(Event::parse(&ok.to_json(), None).expect("roundtrip"), ok);
    assert!(step("resolved", "").is_err());
    assert!(step("resolved", r#","note":"  ""#).is_err());
    step("resolved", r#","note":"done""#).expect("resolved with a note");
    // An old reader's event, without `by` or `to`, serializes as before.
    let old = step("acknowledged", "").expect("acknowledged");
    let json = String::from_utf8(old.to_json()).expect("utf-8");
    assert!(
        !json.contains("\"by\"") && !json.contains("\"to\""),
        "{json}"
    );
}

#[test]
fn every_number_is_accepted_at_its_limits_and_refused_past_them() {
    for r in limits::RANGES {
        let fields: Vec<String> = if r.field == "findings.*" {
            Findings::default()
                .fields()
                .iter()
                .map(|(f, _)| format!("findings.{f}"))
                .collect()
        } else {
            vec![r.field.to_string()]
        };
        for f in fields {
            for ok in [r.min, r.max] {
                parse_with(r.kind, &f, ok.into())
                    .unwrap_or_else(|e| panic!("{f} = {ok} refused: {e}"));
            }
            let mut bad = vec![r.max + 1, u64::from(u32::MAX) + 1, u64::MAX];
            if r.min > 0 {
                bad.push(r.min - 1);
            }
            for b in bad {
                let e = parse_with(r.kind, &f, b.into()).expect_err(&format!("{f} = {b}"));
                assert_eq!(e.reason, Reason::Schema, "{f} = {b}: {e}");
                assert!(e.detail.contains(&format!("`{f}`")), "{e}");
            }
            let e = parse_with(r.kind, &f, (-1).into()).expect_err("negative");
            assert_eq!(e.reason, Reason::Schema, "{f} = -1: {e}");
        }
    }
}

#[test]
fn every_text_is_accepted_at_its_limit_and_refused_past_it() {
    let kinds = ["patrol", "testing", "video", "incident", "zone"];
    for l in limits::LENGTHS {
        let kind = if l.kind == "*" { "patrol" } else { l.kind };
        assert!(kinds.contains(&kind), "{l:?}");
        // Multi-byte text: the limit is in bytes. The node is checked
        // against the registry later, any text passes here.
        let at = "界".repeat(l.max_bytes / 3) + &"x".repeat(l.max_bytes % 3);
        assert_eq!(at.len(), l.max_bytes);
        parse_with(kind, l.field, at.clone().into())
            .unwrap_or_else(|e| panic!("{} of {} bytes refused: {e}", l.field, at.len()));
        let e = parse_with(kind, l.field, format!("{at}x").into()).expect_err(l.field);
        assert_eq!(e.reason, Reason::Schema, "{}: {e}", l.field);
        assert!(e.detail.contains(&format!("`{}`", l.field)), "{e}");
    }
    // A 600 KB category is refused, not copied into states.
    let e = parse_with("incident", "category", "c".repeat(600_000).into()).expect_err("huge");
    assert_eq!(e.reason, Reason::Schema);
}
