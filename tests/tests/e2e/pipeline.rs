//! Exact counts: duplicates, out-of-order events and dead letters, checked
//! against a recount of the raw events.

use anyhow::{Context, Result, ensure};
use gridwatch_model::{Level, Zone};
use gridwatch_tests::events::{self, Msg, at, msg, publish_all, raw, tick};
use gridwatch_tests::recount::Recount;
use gridwatch_tests::registry;
use serde_json::json;

use crate::system::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_counts_duplicates_out_of_order_and_dead_letters() -> Result<()> {
    let sys = System::start().await?;
    let reg = registry()?;
    let daqi = mgs_under(&reg, "beilun/daqi");
    let xinqi = mgs_under(&reg, "beilun/xinqi");
    let sealed = first_with_zone(&reg, Zone::Sealed);
    let grid = (0..reg.nodes.len() as u32)
        .map(|i| reg.node(i))
        .find(|n| n.level == Level::Grid && n.id.as_str().starts_with("beilun/chaiqiao/"))
        .map(|n| n.id.to_string())
        .context("a Chaiqiao grid")?;

    let good = vec![
        events::testing("t1", at(6, 10, 0), &daqi[0], 50, 30),
        events::testing("t2", at(6, 20, 0), &daqi[0], 80, 10),
        events::testing("t3", at(6, 15, 0), &daqi[0], 20, 99), // out of order: older than t2
        events::testing("t4", at(7, 0, 0), &xinqi[0], 100, 5),
        events::patrol("p3", at(8, 30, 0), &xinqi[0], 2, [0, 1, 0, 0, 0]),
        events::zone("z1", at(9, 0, 0), &grid, "sealed"),
        events::video("v2", at(9, 0, 0), &daqi[2], "F2", "gathering", "raised"),
        events::incident("i1", at(9, 5, 0), &daqi[1], "I1", "reported", 2),
        events::incident("i2", at(9, 6, 0), &xinqi[0], "I2", "reported", 1),
        events::patrol("p1", at(9, 10, 0), &daqi[0], 3, [1, 2, 0, 1, 0]),
        events::video("v1", at(9, 20, 0), &sealed, "F1", "sealed_exit", "raised"),
        events::video("v3", at(9, 30, 0), &daqi[2], "F2", "gathering", "rectified"),
        events::patrol("p2", at(9, 40, 0), &daqi[1], 2, [0, 0, 1, 0, 1]),
        events::incident("i3", at(9, 50, 0), &xinqi[0], "I2", "resolved", 1),
        events::patrol("p4", at(9, 55, 0), &sealed, 4, [0, 0, 0, 0, 0]),
        events::patrol("p5", at(8, 5, 0), &daqi[0], 2, [0, 3, 0, 0, 0]), // out of order
        events::patrol("p6", at(10, 0, 0), &daqi[2], 3, [0, 0, 0, 2, 0]),
    ];
    // The replay clock reads 10:00 from the start.
    let mut msgs: Vec<Msg> = vec![tick(at(10, 0, 0))];
    msgs.extend(good.iter().map(msg));
    // Exact duplicates that get past JetStream's dedupe (no Nats-Msg-Id),
    // and one that JetStream drops itself (same Nats-Msg-Id).
    msgs.push(raw("gw.ev.patrol.daqi", good[9].to_string().as_bytes()));
    msgs.push(raw("gw.ev.testing.daqi", good[0].to_string().as_bytes()));
    msgs.push(msg(&good[10]));
    // Every kind of bad event, after the good ones (the replay clock is then 10:00).
    let mut bad: Vec<(&str, Msg)> = vec![
        (
            "malformed",
            raw("gw.ev.patrol.daqi", b"{\"v\":1,\"kind\":\"patrol\","),
        ),
        ("malformed", raw("gw.ev.patrol.daqi", b"\xff\xfe not utf-8")),
    ];
    let mut v2 = events::patrol("bad-v", at(9, 0, 0), &daqi[0], 2, [0; 5]);
    v2["v"] = json!(2);
    bad.push(("version", msg(&v2)));
    bad.push((
        "schema",
        msg(&events::patrol("bad-s", at(9, 0, 0), &daqi[0], 0, [0; 5])),
    ));
    let mut no_node = events::testing("bad-s2", at(9, 0, 0), &daqi[0], 1, 1);
    no_node.as_object_mut().map(|o| o.remove("samples"));
    bad.push(("schema", msg(&no_node)));
    bad.push((
        "unknown_node",
        msg(&events::patrol(
            "bad-u",
            at(9, 0, 0),
            "beilun/daqi/nowhere/g01/m01",
            2,
            [0; 5],
        )),
    ));
    let mut late = events::patrol("bad-l", at(9, 0, 0), &daqi[0], 2, [0; 5]);
    late["ts"] = json!("2022-10-13T09:00:00+08:00");
    bad.push(("too_late", msg(&late)));
    bad.push((
        "future",
        msg(&events::patrol("bad-f", at(10, 30, 0), &daqi[0], 2, [0; 5])),
    ));
    bad.push((
        "conflict",
        msg(&events::video(
            "bad-c",
            at(9, 59, 0),
            &daqi[0],
            "F9",
            "other",
            "rectified",
        )),
    ));
    msgs.extend(bad.iter().map(|(_, m)| m.clone()));
    publish_all(&sys.js, &msgs).await?;
    sys.wait_all_processed().await?;

    let mut rc = Recount::new(&reg, at(10, 0, 0));
    for ev in &good {
        rc.apply(ev);
    }
    let community = grid.rsplit_once('/').map(|x| x.0).unwrap_or("beilun");
    sys.assert_exact(
        &rc,
        &[
            "beilun",
            "beilun/daqi",
            "beilun/xinqi",
            "beilun/chaiqiao",
            community,
            &grid,
            &daqi[0],
            &daqi[2],
            &sealed,
        ],
    )
    .await?;
    // The zone change moved the grid's micro-grids into the sealed class.
    let d = sys.http.state("beilun").await?;
    let baseline_sealed = reg
        .microgrids
        .iter()
        .filter(|&&m| {
            reg.node(m)
                .mg
                .as_ref()
                .is_some_and(|g| g.zone == Zone::Sealed)
        })
        .count() as u64;
    let grid_mgs = mgs_under(&reg, &grid).len() as u64;
    assert_eq!(
        d["zones"]["sealed"]["microgrids"],
        json!(baseline_sealed + grid_mgs)
    );
    // A sealed-zone exit flag is open: the micro-grid and the district are red.
    let s = sys.http.state(&sealed).await?;
    assert_eq!(s["status"], "red", "{s}");
    assert!(
        d["red_nodes"]
            .as_array()
            .is_some_and(|r| r.iter().any(|n| n["node"] == json!(sealed)))
    );
    // The wall's map agrees: the micro-grid's cell is sealed and red, and
    // the map has as many red cells as the district counts.
    let map = sys.http.state(gridwatch_model::state::MAP_NODE).await?;
    let cells = map["cells"].as_object().context("map cells")?;
    assert_eq!(cells.len(), reg.microgrids.len());
    let ordinal = reg
        .microgrids
        .iter()
        .position(|&m| reg.node(m).id.as_str() == sealed)
        .context("the sealed micro-grid's ordinal")?;
    assert_eq!(cells[&ordinal.to_string()], "sr", "{map}");
    let red_cells = cells
        .values()
        .filter(|c| c.as_str().is_some_and(|c| c.ends_with('r')));
    assert_eq!(Some(red_cells.count() as u64), d["red_microgrids"].as_u64());

    // Metrics count what happened.
    let (_, metrics) = sys.http.get("/metrics").await?;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    for line in [
        format!("gridwatch_ingest_events_applied_total {}", good.len()),
        "gridwatch_ingest_duplicates_total 2".to_string(),
        "gridwatch_ingest_dlq_total{reason=\"malformed\"} 2".to_string(),
        "gridwatch_ingest_dlq_total{reason=\"conflict\"} 1".to_string(),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "metrics lack `{line}`:\n{metrics}"
        );
    }

    // Every bad event is in GW_DLQ with its reason and its original bytes.
    let dlq = sys.admin.get_stream("GW_DLQ").await?;
    let n = dlq.get_info().await?.state.messages;
    ensure!(
        n == bad.len() as u64,
        "GW_DLQ holds {n} messages, expected {}",
        bad.len()
    );
    let mut found = Vec::new();
    for seq in 1..=n {
        let m = dlq.get_raw_message(seq).await?;
        let reason = m
            .headers
            .get("Gw-Reason")
            .map(|v| v.to_string())
            .unwrap_or_default();
        ensure!(
            m.subject.as_str() == format!("gw.dlq.{reason}"),
            "subject {} for {reason}",
            m.subject
        );
        ensure!(
            m.headers
                .get("Gw-Detail")
                .is_some_and(|d| !d.as_str().is_empty()),
            "no detail"
        );
        found.push((reason, m.payload.clone()));
    }
    for (reason, m) in &bad {
        ensure!(
            found.iter().any(|(r, p)| r == reason && *p == m.payload),
            "no `{reason}` dead letter for {:?}",
            String::from_utf8_lossy(&m.payload)
        );
    }

    // Bad HTTP requests get a 4xx with a JSON error body.
    for (path, code) in [
        ("/api/v1/state?node=beilun/nowhere", 404),
        ("/api/v1/state", 400),
        ("/api/v1/state?node=", 400),
        ("/api/v1/nothing", 404),
    ] {
        let (status, body) = sys.http.get(path).await?;
        assert_eq!(status, code, "{path}: {body}");
        assert!(
            body["error"]["code"].is_string() && body["error"]["message"].is_string(),
            "{path}: {body}"
        );
    }
    let (status, h) = sys.http.get("/api/v1/hierarchy").await?;
    assert_eq!(status, 200);
    assert_eq!(h["streets"].as_array().map(Vec::len), Some(11));
    Ok(())
}
