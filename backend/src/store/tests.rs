use super::*;
use serde_json::json;

fn js(v: Value) -> bytes::Bytes {
    bytes::Bytes::from(v.to_string())
}

/// The next update is a delta from `from` to `seq` carrying `patch`.
fn expect_delta(rx: &mut broadcast::Receiver<Update>, (from, seq): (u64, u64), patch: Value) {
    match rx.try_recv() {
        Ok(Update::Delta {
            from: f,
            seq: s,
            frame,
        }) => {
            assert_eq!((f, s), (from, seq));
            let v: Value = serde_json::from_str(frame.as_str()).expect("json");
            assert_eq!(v["patch"], patch);
        }
        other => panic!("expected a delta {from} → {seq}, got {other:?}"),
    }
}

#[test]
fn newer_versions_become_deltas_and_older_ones_reset() {
    let store = Store::new(["a"].into_iter(), 8, Duration::ZERO);
    let (mut rx, c) = store.subscribe("a", None).expect("known node");
    assert!(matches!(c, CatchUp::Nothing));
    assert!(store.apply("a", js(json!({"seq": 1, "x": 1}))));
    assert!(matches!(rx.try_recv(), Ok(Update::Reset)));
    assert!(store.apply("a", js(json!({"seq": 2, "x": 2}))));
    expect_delta(&mut rx, (1, 2), json!({"seq": 2, "x": 2}));
    // Resume from 1: one delta; from 0: not in history → snapshot.
    match store.subscribe("a", Some(1)).map(|x| x.1) {
        Some(CatchUp::Deltas(f, 2)) => assert_eq!(f.len(), 1),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store.subscribe("a", Some(0)).map(|x| x.1),
        Some(CatchUp::Snapshot(..))
    ));
    // Same state again: ignored. Versions 3–8 never seen (the watch
    // fell behind): one delta from 2 to 9.
    assert!(!store.apply("a", js(json!({"seq": 2, "x": 2}))));
    assert!(store.apply("a", js(json!({"seq": 9, "x": 3}))));
    expect_delta(&mut rx, (2, 9), json!({"seq": 9, "x": 3}));
    // Not newer but different (ingest restarted from an older
    // checkpoint): reset.
    assert!(store.apply("a", js(json!({"seq": 4, "x": 5}))));
    assert!(matches!(rx.try_recv(), Ok(Update::Reset)));
}

#[test]
fn snapshot_frames_are_shared_and_follow_a_restarted_ingest() {
    let store = Store::new(["a", "b"].into_iter(), 8, Duration::ZERO);
    store.apply("a", js(json!({"seq": 3, "x": "before"})));
    let (_rx, c) = store.subscribe("a", None).expect("known node");
    let CatchUp::Snapshot(3, first) = c else {
        panic!("expected a snapshot of 3, got {c:?}");
    };
    // A second subscriber gets the very same bytes.
    let (_rx2, c2) = store.subscribe("a", None).expect("known node");
    let CatchUp::Snapshot(3, second) = c2 else {
        panic!("{c2:?}");
    };
    assert_eq!(first.as_str().as_ptr(), second.as_str().as_ptr());
    // A restarted ingest says seq 3 again with other content: the
    // cached frame must not outlive it.
    store.apply("a", js(json!({"seq": 3, "x": "after"})));
    let (_, f) = store.snapshot_frame("a").expect("a state");
    let v: Value = serde_json::from_str(f.as_str()).expect("json");
    assert_eq!(v["state"]["x"], "after");
}

#[test]
fn heartbeats_go_to_followed_nodes_only() {
    let store = Store::new(["a", "b"].into_iter(), 8, Duration::ZERO);
    store.apply("a", js(json!({"seq": 1})));
    store.apply("b", js(json!({"seq": 7})));
    let (mut rx, _) = store.subscribe("b", None).expect("known node");
    store.heartbeat("2022-10-15T09:00:00+08:00");
    match rx.try_recv() {
        Ok(Update::Heartbeat { seq, frame }) => {
            assert_eq!(seq, 7);
            let v: Value = serde_json::from_str(frame.as_str()).expect("json");
            assert_eq!(v["type"], "heartbeat");
            assert_eq!(v["node"], "b");
            assert_eq!(v["as_of"], "2022-10-15T09:00:00+08:00");
        }
        other => panic!("expected a heartbeat, got {other:?}"),
    }
    // Nobody follows `a`: it has no channel at all.
    let nodes = store.nodes.read().expect("lock");
    assert!(nodes["a"].tx.is_none());
}

#[test]
fn paced_versions_fold_into_one_delta() {
    let store = Store::new(["a"].into_iter(), 8, Duration::from_secs(3600));
    store.client_count(1);
    let (mut rx, _) = store.subscribe("a", None).expect("known node");
    store.apply("a", js(json!({"seq": 1, "x": 1, "y": 1})));
    assert!(matches!(rx.try_recv(), Ok(Update::Reset)));
    // The first delta goes out at once; the next two wait for the pace.
    store.apply("a", js(json!({"seq": 2, "x": 2, "y": 1})));
    assert!(matches!(
        rx.try_recv(),
        Ok(Update::Delta {
            from: 1,
            seq: 2,
            ..
        })
    ));
    store.apply("a", js(json!({"seq": 3, "x": 3, "y": 2})));
    store.apply("a", js(json!({"seq": 4, "x": 3, "y": 1})));
    assert!(rx.try_recv().is_err(), "paced");
    // Snapshots give what followers know, so the next delta applies.
    assert_eq!(store.snapshot("a").map(|s| s.seq), Some(2));
    store.flush_due();
    assert!(rx.try_recv().is_err(), "still paced");
    store.client_count(-1);
    store.flush_due();
    // y went 1 → 2 → 1: unchanged over the folded versions.
    expect_delta(&mut rx, (2, 4), json!({"seq": 4, "x": 3}));
    // Resuming from 1 replays both deltas, from 2 the folded one.
    match store.subscribe("a", Some(1)).map(|x| x.1) {
        Some(CatchUp::Deltas(f, 4)) => assert_eq!(f.len(), 2),
        other => panic!("{other:?}"),
    }
    match store.subscribe("a", Some(2)).map(|x| x.1) {
        Some(CatchUp::Deltas(f, 4)) => assert_eq!(f.len(), 1),
        other => panic!("{other:?}"),
    }
}
