//! Properties of the model's parsers and of the merge patch, over
//! arbitrary input: the event decoder never panics and always says why
//! it refuses; the WebSocket client-message parser never panics; applying
//! `diff(a, b)` to `a` gives `b`.

use gridwatch_model::event::{Event, Reason};
use gridwatch_model::merge_patch::{apply, diff};
use gridwatch_model::ws::ClientMsg;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// JSON values; `nulls` says whether object members may be null (a merge
/// patch cannot say "set to null", so the target of a diff has none).
fn json_value(nulls: bool) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e9f64..1e9).prop_map(|f| json!(f)),
        "[a-z界]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 40, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-e]{1,2}", inner, 0..5).prop_map(move |m| {
                let mut o = Map::new();
                for (k, v) in m {
                    if nulls || !v.is_null() {
                        o.insert(k, v);
                    }
                }
                Value::Object(o)
            }),
        ]
    })
}

/// Event-shaped objects: the envelope's and the bodies' field names with
/// values of any type, some fields left out.
fn event_like() -> impl Strategy<Value = Value> {
    let fields = [
        "v",
        "kind",
        "id",
        "ts",
        "node",
        "team",
        "persons",
        "checkpoints",
        "findings",
        "site",
        "interval_s",
        "samples",
        "queue",
        "staff",
        "camera",
        "flag_id",
        "flag",
        "action",
        "severity",
        "incident_id",
        "level",
        "category",
        "note",
        "zone",
        "reason",
    ];
    let value = prop_oneof![
        Just(json!(1)),
        Just(json!("patrol")),
        Just(json!("testing")),
        Just(json!("video")),
        Just(json!("incident")),
        Just(json!("zone")),
        Just(json!("2022-10-15T09:00:00+08:00")),
        Just(json!("raised")),
        Just(json!("reported")),
        Just(json!("sealed")),
        any::<u64>().prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        json_value(true),
    ];
    prop::collection::vec(prop::option::of(value), fields.len()).prop_map(move |vals| {
        let mut o = Map::new();
        for (f, v) in fields.iter().zip(vals) {
            if let Some(v) = v {
                o.insert((*f).to_string(), v);
            }
        }
        Value::Object(o)
    })
}

fn classified(bytes: &[u8]) -> Result<(), TestCaseError> {
    match Event::parse(bytes, None) {
        Ok(ev) => {
            // What parses survives a round trip.
            let again = Event::parse(&ev.to_json(), Some(ev.kind().as_str()));
            prop_assert_eq!(again.as_ref().ok(), Some(&ev));
        }
        Err(e) => {
            prop_assert!(Reason::ALL.contains(&e.reason));
            prop_assert!(!e.detail.is_empty());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_event_decoder_classifies_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        classified(&bytes)?;
    }

    #[test]
    fn the_event_decoder_classifies_event_shaped_objects(v in event_like()) {
        classified(&serde_json::to_vec(&v).expect("json"))?;
    }

    #[test]
    fn the_websocket_client_parser_never_panics(s in "\\PC{0,200}", v in json_value(true)) {
        let _ = serde_json::from_str::<ClientMsg>(&s);
        let _ = serde_json::from_str::<ClientMsg>(&v.to_string());
        let sub = format!(r#"{{"type":"subscribe","node":{},"resume_from":{}}}"#, v, v);
        let _ = serde_json::from_str::<ClientMsg>(&sub);
    }

    #[test]
    fn applying_the_diff_of_a_to_b_gives_b(a in json_value(true), b in json_value(false)) {
        let mut patched = a.clone();
        match diff(&a, &b) {
            Some(p) => apply(&mut patched, &p),
            None => prop_assert_eq!(&a, &b),
        }
        prop_assert_eq!(patched, b);
    }
}
