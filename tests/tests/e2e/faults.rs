//! Faults: ingest killed mid-stream and NATS restarted while events flow
//! lose and double nothing.

use anyhow::{Result, bail, ensure};
use futures::{SinkExt, StreamExt};
use gridwatch_tests::events::{at, ensure_stream, msg, publish_all, tick};
use gridwatch_tests::procs::{self, Nats, Workdir, free_port};
use gridwatch_tests::recount::Recount;
use gridwatch_tests::{registry, wait_for};
use serde_json::json;
use std::time::{Duration, Instant};

use crate::system::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_killed_mid_stream_resumes_exactly() -> Result<()> {
    let mut sys = System::start().await?;
    let reg = registry()?;
    let evs = volume(&reg, 7, 40_000, "k");
    let (first, second) = evs.split_at(20_000);
    publish_all(&sys.js, &[tick(at(11, 0, 0))]).await?;
    publish_all(&sys.js, &raw_msgs(first)).await?;
    // Kill while it is working through the first half.
    sys.http.wait_processed(2_000, WAIT).await?;
    sys.ingest.kill_hard();
    // The rest arrives while ingest is down.
    publish_all(&sys.js, &raw_msgs(second)).await?;
    sys.restart_ingest()?;
    // And once more, from a snapshot plus journal of the restarted run.
    sys.http.wait_processed(30_000, WAIT).await?;
    sys.ingest.kill_hard();
    sys.restart_ingest()?;
    sys.wait_all_processed().await?;
    let mut rc = Recount::new(&reg, at(11, 0, 0));
    for e in &evs {
        rc.apply(e);
    }
    sys.assert_exact(
        &rc,
        &["beilun", "beilun/daqi", "beilun/xinqi", "beilun/guoju"],
    )
    .await?;
    // A clean restart changes nothing either. The restarted ingest
    // republishes every state one version up: wait for that.
    let before = sys.http.state("beilun").await?["seq"].as_u64().unwrap_or(0);
    sys.ingest.terminate();
    sys.restart_ingest()?;
    wait_for("the restarted ingest to republish", WAIT, || async {
        let seq = sys.http.state("beilun").await.ok()?["seq"].as_u64()?;
        (seq > before).then_some(())
    })
    .await?;
    sys.wait_all_processed().await?;
    sys.assert_exact(&rc, &["beilun", "beilun/daqi"]).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restart_while_events_flow_loses_and_doubles_nothing() -> Result<()> {
    let mut sys = System::start().await?;
    let reg = registry()?;
    let evs = volume(&reg, 11, 6_000, "n");
    publish_all(&sys.js, &[tick(at(11, 0, 0))]).await?;
    let js = sys.js.clone();
    let to_send = evs.clone();
    // A publisher that retries each event (same Nats-Msg-Id) until stored.
    let publisher = tokio::spawn(async move {
        let mut sent = 0usize;
        for e in &to_send {
            let m = msg(e);
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let mut h = async_nats::HeaderMap::new();
                h.insert("Nats-Msg-Id", m.msg_id.clone().unwrap_or_default().as_str());
                let r = match js
                    .publish_with_headers(m.subject.clone(), h, m.payload.clone())
                    .await
                {
                    Ok(f) => f.await.map(|_| ()).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match r {
                    Ok(()) => break,
                    Err(e) if Instant::now() > deadline => bail!("publish kept failing: {e}"),
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
            sent += 1;
            if sent.is_multiple_of(200) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(sent)
    });
    sys.http.wait_processed(1_500, WAIT).await?;
    sys.nats.restart()?;
    let sent = publisher.await??;
    assert_eq!(sent, evs.len());
    let _ = &sys.client;
    sys.wait_all_processed().await?;
    let mut rc = Recount::new(&reg, at(11, 0, 0));
    for e in &evs {
        rc.apply(e);
    }
    sys.assert_exact(&rc, &["beilun", "beilun/daqi", "beilun/chunxiao"])
        .await?;
    Ok(())
}

/// With NATS gone, so that every publish keeps failing, each service still
/// exits within its `shutdown_s` of SIGTERM: ingest (whose publisher was
/// retrying), the backend (with a WebSocket client attached) and the
/// simulator (mid-stream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_exits_within_its_bound_when_nats_is_gone() -> Result<()> {
    const SHUTDOWN_S: u64 = 2;
    let bound = [("GRIDWATCH__SHUTDOWN_S", "2")];
    let mut nats = Nats::start()?;
    let work = Workdir::new()?;
    ensure_stream(&nats.ops().await?).await?;
    let mut ingest = procs::ingest_with_env(
        &nats,
        &work.dir.path().join("data"),
        &work.logs(),
        &["--clock", "replay"],
        &[
            ("GRIDWATCH__SHUTDOWN_S", "2"),
            ("GRIDWATCH__TICK_MS", "100"),
        ],
    )?;
    let port = free_port()?;
    let mut backend = procs::backend_with_env(&nats, port, &work.logs(), &bound)?;
    let token = nats.accounts()?.admin.token.clone();
    let http = gridwatch_tests::Http::with_token(port, &token);
    wait_for("the district state", WAIT, || async {
        http.state("beilun").await.ok()
    })
    .await?;
    let mut sim = procs::sim(
        &nats,
        &work.logs(),
        &["--date", "2022-10-15", "--rate", "500"],
        &bound,
    )?;
    wait_for("simulated events applied", WAIT, || async {
        let (_, h) = http.get("/healthz").await.ok()?;
        (h["last_seq"].as_u64()? > 200).then_some(())
    })
    .await?;
    let req = gridwatch_tests::ws_request(&format!("ws://127.0.0.1:{port}/ws"), &token, &[])?;
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    let sub = json!({"type": "subscribe", "node": "beilun"}).to_string();
    ws.send(tokio_tungstenite::tungstenite::Message::text(sub))
        .await?;
    let first = tokio::time::timeout(WAIT, ws.next()).await?;
    ensure!(
        matches!(first, Some(Ok(_))),
        "no snapshot on the socket: {first:?}"
    );
    // NATS goes; states keep moving with the clock, so ingest's publisher
    // and the simulator are retrying when the signal comes.
    nats.kill();
    wait_for("the backend to see NATS gone", WAIT, || async {
        let (status, _) = http.get("/healthz").await.ok()?;
        (status == 503).then_some(())
    })
    .await?;
    // Generous against a loaded machine; without the bound these never
    // exit at all.
    let within = Duration::from_secs(SHUTDOWN_S + 8);
    for (name, p) in [
        ("ingest", &mut ingest),
        ("backend", &mut backend),
        ("sim", &mut sim),
    ] {
        let log = p.log.clone();
        let took = p.terminate_within(within);
        ensure!(
            took.is_some(),
            "{name} did not exit within {within:?} of SIGTERM; log {}:\n{}",
            log.display(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    drop(ws);
    Ok(())
}
