//! Limits: no single node, event or publish can freeze the pipeline. A
//! micro-grid with ten thousand flags raised keeps a small state (its
//! count exact up to the most one micro-grid holds, the rest refused), the
//! full list pages through the items API, and every other node keeps
//! flowing; a state the server refuses is set aside and counted, and a
//! dead letter too large for its headers is cut to fit, not lost.

use anyhow::{Result, ensure};
use async_nats::jetstream;
use futures::StreamExt;
use gridwatch_model::limits::OPEN_PER_MICROGRID;
use gridwatch_model::stats::IngestStats;
use gridwatch_runtime::nats_auth::Service;
use gridwatch_tests::events::{self, at, msg, publish_all, raw, tick};
use gridwatch_tests::procs::Nats;
use gridwatch_tests::{registry, wait_for};
use serde_json::Value;
use std::time::Duration;

use crate::system::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_flags_on_one_micro_grid_freeze_nothing() -> Result<()> {
    let sys = System::start().await?;
    let reg = registry()?;
    let (a, b) = (
        reg.node(reg.microgrids[0]).id.to_string(),
        reg.node(reg.microgrids[1]).id.to_string(),
    );
    let mut msgs = vec![tick(at(12, 0, 0))];
    for k in 0..10_000 {
        let t = at(9, 0, 0) + chrono::Duration::milliseconds(k * 200);
        msgs.push(msg(&events::video(
            &format!("v{k}"),
            t,
            &a,
            &format!("flag-{k:05}"),
            "gathering",
            "raised",
        )));
    }
    // Another micro-grid's patrol, after all of them.
    msgs.push(msg(&events::patrol("p-after", at(11, 0, 0), &b, 2, [0; 5])));
    publish_all(&sys.js, &msgs).await?;
    sys.wait_all_processed().await?;
    let sa = sys.http.state(&a).await?;
    let size = serde_json::to_vec(&sa)?.len();
    ensure!(size < 64 << 10, "the micro-grid's state is {size} bytes");
    ensure!(
        sa["video"]["flags_open"] == OPEN_PER_MICROGRID as u64,
        "flags open: {}",
        sa["video"]["flags_open"]
    );
    let listed = sa["detail"]["open_flags"].as_array().map_or(0, Vec::len);
    ensure!(listed == 10, "the state lists {listed} flags");
    let sb = sys.http.state(&b).await?;
    ensure!(sb["patrol"]["patrols_today"] == 1, "{}", sb["patrol"]);
    // The rest were refused as conflicts, each in the DLQ.
    let (_, metrics) = sys.http.get("/metrics").await?;
    let refused = 10_000 - OPEN_PER_MICROGRID;
    let line = format!("gridwatch_ingest_dlq_total{{reason=\"conflict\"}} {refused}");
    ensure!(
        metrics.as_str().is_some_and(|m| m.contains(&line)),
        "no `{line}` in /metrics"
    );
    // The items API pages through all of them, the oldest first (one
    // severity, one kind).
    let mut ids = Vec::new();
    let mut offset = 0;
    loop {
        let (s, page) = sys
            .http
            .get(&format!(
                "/api/v1/items?node={a}&kind=flags&offset={offset}&limit=500"
            ))
            .await?;
        ensure!(s == 200, "items: HTTP {s}: {page}");
        ensure!(
            page["total"] == OPEN_PER_MICROGRID as u64,
            "{}",
            page["total"]
        );
        let Some(flags) = page["flags"].as_array().filter(|f| !f.is_empty()) else {
            break;
        };
        offset += flags.len();
        ids.extend(
            flags
                .iter()
                .filter_map(|f| f["flag_id"].as_str().map(String::from)),
        );
    }
    let expected: Vec<String> = (0..OPEN_PER_MICROGRID)
        .map(|k| format!("flag-{k:05}"))
        .collect();
    ensure!(
        ids == expected,
        "the pages hold {} flags, not the first {OPEN_PER_MICROGRID} in order",
        ids.len()
    );
    // Bad queries: a 4xx with a JSON error.
    for (q, want) in [
        (format!("node={a}&kind=flags&limit=501"), 400),
        (format!("node={a}&kind=flags&limit=0"), 400),
        (format!("node={a}&kind=nothing"), 400),
        ("node=beilun&kind=flags".to_string(), 400),
        ("node=beilun/nowhere&kind=flags".to_string(), 404),
    ] {
        let (s, body) = sys.http.get(&format!("/api/v1/items?{q}")).await?;
        ensure!(s == want, "{q}: HTTP {s}, expected {want}: {body}");
        ensure!(body["error"]["message"].is_string(), "{q}: {body}");
    }
    Ok(())
}

/// The state bucket's `meta.ingest`, read straight from NATS.
async fn ingest_stats(js: &jetstream::Context) -> Option<IngestStats> {
    let kv = js.get_key_value("GW_STATE").await.ok()?;
    let v = kv.get("meta.ingest").await.ok()??;
    serde_json::from_slice(&v).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_server_refuses_is_set_aside_and_the_rest_flow() -> Result<()> {
    // A server that carries at most 4 KiB a message: the district's state
    // (every street, zone class and red micro-grid) is larger, a
    // micro-grid's is not.
    let nats = Nats::start_configured(true, "max_payload: 4096")?;
    let work = gridwatch_tests::procs::Workdir::new()?;
    let js = jetstream::new(nats.client().await?);
    let admin = nats.ops().await?;
    events::ensure_stream(&admin).await?;
    let mut ingest = gridwatch_tests::procs::ingest(
        &nats,
        &work.dir.path().join("data"),
        &work.logs(),
        &["--clock", "replay"],
    )?;
    let reg = registry()?;
    let mg = reg.node(reg.microgrids[5]).id.to_string();
    // A malformed event of 4,000 bytes: with its dead-letter headers it is
    // over the limit.
    let big = format!("{{\"v\":1,\"kind\":\"patrol\",{}", "x".repeat(3_970));
    let last = publish_all(
        &js,
        &[
            tick(at(12, 0, 0)),
            raw("gw.ev.patrol.daqi", big.as_bytes()),
            msg(&events::patrol("p1", at(11, 0, 0), &mg, 3, [0; 5])),
        ],
    )
    .await?;
    // The publisher counts what it refuses and cuts as it goes; the
    // statistics a second later say so.
    wait_for(
        "ingest to process everything, refuse a state and cut a dead letter",
        WAIT,
        || async {
            let s = ingest_stats(&admin).await?;
            (s.last_seq >= last && s.states_refused > 0 && s.dead_truncated == 1).then_some(s)
        },
    )
    .await?;
    // The micro-grid's state went out.
    let kv = admin.get_key_value("GW_STATE").await?;
    let state: Value = serde_json::from_slice(
        &kv.get(format!("node.{mg}"))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no state for {mg}"))?,
    )?;
    ensure!(state["patrol"]["patrols_today"] == 1, "{}", state["patrol"]);
    // The dead letter is in GW_DLQ, cut to fit, saying how long it was.
    let dlq = admin.get_stream("GW_DLQ").await?;
    let c = dlq
        .create_consumer(jetstream::consumer::pull::Config::default())
        .await?;
    let mut msgs = c
        .fetch()
        .max_messages(10)
        .expires(Duration::from_secs(2))
        .messages()
        .await?;
    let m = msgs
        .next()
        .await
        .ok_or_else(|| anyhow::anyhow!("no dead letter"))?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let h = m.headers.clone().unwrap_or_default();
    ensure!(
        h.get("Gw-Payload-Bytes").map(|v| v.as_str()) == Some(big.len().to_string().as_str()),
        "headers: {h:?}"
    );
    ensure!(
        big.as_bytes().starts_with(&m.payload),
        "not a prefix of the original"
    );
    // And ingest still stops on SIGTERM within its bound.
    ensure!(
        ingest.terminate_within(Duration::from_secs(12)).is_some(),
        "ingest did not stop:\n{}",
        ingest.log_tail()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_the_server_does_not_permit_is_given_up_and_the_rest_flow() -> Result<()> {
    // Ingest's user may not write the district's state: the server drops
    // the put and nothing comes back (no ack, while connected).
    let denied = "$KV.GW_STATE.node.beilun";
    let nats = Nats::start_tweaked(true, "", &|s, p| {
        if s == Service::Ingest {
            p.publish_deny.push(denied.into());
        }
    })?;
    let work = gridwatch_tests::procs::Workdir::new()?;
    let js = jetstream::new(nats.client().await?);
    let admin = nats.ops().await?;
    events::ensure_stream(&admin).await?;
    let mut ingest = gridwatch_tests::procs::ingest(
        &nats,
        &work.dir.path().join("data"),
        &work.logs(),
        &["--clock", "replay"],
    )?;
    let reg = registry()?;
    let mg = reg.node(reg.microgrids[7]).id.to_string();
    let mut msgs = vec![tick(at(12, 0, 0))];
    for k in 0..20 {
        msgs.push(msg(&events::patrol(
            &format!("p{k}"),
            at(11, 0, k),
            &mg,
            2,
            [0; 5],
        )));
    }
    let last = publish_all(&js, &msgs).await?;
    // The put is given up after its tries (about a minute with the
    // backoff), counted, and the district's subject quarantined; the
    // micro-grid's state and the statistics flow.
    wait_for(
        "the denied state to be given up",
        Duration::from_secs(150),
        || async {
            let s = ingest_stats(&admin).await?;
            (s.last_seq >= last && s.states_refused > 0).then_some(())
        },
    )
    .await?;
    let kv = admin.get_key_value("GW_STATE").await?;
    let state: Value = serde_json::from_slice(
        &kv.get(format!("node.{mg}"))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no state for {mg}"))?,
    )?;
    ensure!(
        state["patrol"]["patrols_today"] == 20,
        "{}",
        state["patrol"]
    );
    ensure!(
        kv.get("node.beilun").await?.is_none(),
        "the denied state was written"
    );
    let log = std::fs::read_to_string(&ingest.log).unwrap_or_default();
    ensure!(log.contains("publish refused; set aside"), "{log}");
    ensure!(
        ingest.terminate_within(Duration::from_secs(12)).is_some(),
        "ingest did not stop:\n{}",
        ingest.log_tail()
    );
    Ok(())
}
