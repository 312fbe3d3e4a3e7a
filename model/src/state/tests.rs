use super::*;

#[test]
fn cell_codes_round_trip() {
    for z in Zone::ALL {
        for s in [Status::Green, Status::Amber, Status::Red] {
            assert_eq!(parse_cell_code(&cell_code(z, s)), Some((z, s)));
        }
    }
    assert_eq!(parse_cell_code("x"), None);
}

fn sample() -> NodeState {
    NodeState {
        node: "beilun/daqi".into(),
        name: "大碶".into(),
        level: Level::Street,
        as_of: "2022-10-15T10:00:00+08:00".into(),
        seq: 3,
        microgrids: 2,
        population: 500,
        households: 200,
        staff: 12,
        zone: None,
        zones: Zones::default(),
        patrol: PatrolAgg::default(),
        testing: TestingAgg::default(),
        video: VideoAgg::default(),
        incidents: IncidentAgg::default(),
        status: Status::Green,
        reasons: vec![],
        why: vec![],
        red_microgrids: 0,
        amber_microgrids: 0,
        red_nodes: vec![],
        children: vec![],
        detail: None,
    }
}

/// A delta applied field by field gives the state a whole read gives,
/// including a field the patch removes.
#[test]
fn applying_the_touched_fields_equals_reading_the_whole() {
    let mut old = sample();
    old.zone = Some(Zone::Sealed);
    let mut new = old.clone();
    new.seq = 4;
    new.as_of = "2022-10-15T10:01:00+08:00".into();
    new.zone = None;
    new.status = Status::Red;
    new.patrol.patrols_today = 7;
    new.reasons = vec!["x".into()];
    let (a, b) = (
        serde_json::to_value(&old).expect("json"),
        serde_json::to_value(&new).expect("json"),
    );
    let patch = crate::merge_patch::diff(&a, &b).expect("they differ");
    let mut merged = a.clone();
    crate::merge_patch::apply(&mut merged, &patch);
    let mut typed = old.clone();
    typed.apply_fields(&merged, &patch).expect("applies");
    assert_eq!(typed, new);
    // Every serialized field has a setter.
    old.detail = Some(MgDetail::default());
    let full = serde_json::to_value(&old).expect("json");
    for k in full.as_object().expect("an object").keys() {
        assert!(NodeState::FIELDS.contains(&k.as_str()), "no setter for {k}");
    }
    assert!(typed.set_field("seq", &serde_json::json!("x")).is_err());
}
