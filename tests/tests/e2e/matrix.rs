//! The fault matrix: during a sped-up replay of a simulated Beilun morning
//! with bad events mixed in (`gridwatch-sim --bad-share 0.05`), one fault
//! at a time; afterwards `gridwatch-recount` — the independent recount —
//! must find the district, every street and sampled micro-grids equal to
//! the live states, ingest's counts of applied events, duplicates and dead
//! letters equal to its own, and every refused message in GW_DLQ once.
//! The faults: ingest killed -9 at five random points, SIGSTOPped past
//! its ack wait, nats-server killed -9 and restarted, the data dir's disk
//! full for a while, a corrupt snapshot at start, and the backend killed
//! under 1,000 WebSocket clients (which must resynchronise).

use anyhow::{Context, Result, ensure};
use futures::{SinkExt, StreamExt};
use gridwatch_model::merge_patch;
use gridwatch_model::ws::ServerMsg;
use gridwatch_tests::procs::{self, Proc};
use gridwatch_tests::wait_for;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

use crate::system::*;

/// A replay under way: the system and the simulator feeding it.
struct Replay {
    sys: System,
    sim: Proc,
}

impl Replay {
    /// The system, then `limit` simulated messages at `rate` per second.
    async fn start(limit: usize, rate: u32) -> Result<Replay> {
        let sys = System::start().await?;
        let sim = procs::sim(
            &sys.nats,
            &sys.work.logs(),
            &[
                "--date",
                "2022-10-15",
                "--rate",
                &rate.to_string(),
                "--bad-share",
                "0.05",
                "--limit",
                &limit.to_string(),
            ],
            &[],
        )?;
        Ok(Replay { sys, sim })
    }

    /// Waits for the simulator to finish and ingest to catch up, then runs
    /// the recount: it must find everything equal.
    async fn finish(&mut self, fault: &str) -> Result<()> {
        let start = Instant::now();
        while self.sim.running() {
            ensure!(
                start.elapsed() < WAIT,
                "{fault}: the simulator did not finish:\n{}",
                self.sim.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.sys
            .wait_all_processed()
            .await
            .with_context(|| format!("after {fault}"))?;
        let (code, out) = procs::recount(&self.sys.nats, &["--sample", "30"])?;
        ensure!(
            code == 0,
            "{fault}: the recount differs (exit {code}):\n{out}"
        );
        eprintln!(
            "{fault}: {}",
            out.lines()
                .find(|l| l.contains("dead letters expected"))
                .unwrap_or("")
        );
        Ok(())
    }

    /// Waits until ingest has processed `seq`.
    async fn past(&self, seq: u64) -> Result<()> {
        self.sys.http.wait_processed(seq, WAIT).await
    }
}

fn signal(p: &Proc, sig: &str) -> Result<()> {
    let pid = p.pid().context("the process is not running")?;
    let ok = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()?
        .success();
    ensure!(ok, "kill {sig} {pid} failed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_killed_at_five_random_points() -> Result<()> {
    let seed: u64 = std::env::var("GRIDWATCH_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("kill points from seed {seed} (GRIDWATCH_FAULT_SEED to repeat)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut r = Replay::start(40_000, 4_000).await?;
    for k in 0..5 {
        // Somewhere in the next stretch of the replay.
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1_800))).await;
        r.sys.ingest.kill_hard();
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..500))).await;
        r.sys.restart_ingest()?;
        eprintln!("kill {k} done");
    }
    r.finish("ingest killed -9 five times").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_stopped_past_the_ack_wait_then_continued() -> Result<()> {
    let mut r = Replay::start(30_000, 5_000).await?;
    // Ingest with a 2 s ack wait, so that a 5 s stop outlasts it and
    // JetStream redelivers what was in flight.
    r.sys.ingest.terminate();
    r.sys.ingest = procs::ingest_with_env(
        &r.sys.nats,
        &r.sys.work.dir.path().join("data"),
        &r.sys.work.logs(),
        &["--clock", "replay"],
        &[
            ("GRIDWATCH__ACK_WAIT_S", "2"),
            ("GRIDWATCH__CHECKPOINT_MS", "200"),
            ("GRIDWATCH__SNAPSHOT_S", "1"),
        ],
    )?;
    r.past(3_000).await?;
    signal(&r.sys.ingest, "-STOP")?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    signal(&r.sys.ingest, "-CONT")?;
    r.finish("ingest SIGSTOPped for 5 s (ack wait 2 s)").await?;
    let (_, m) = r.sys.http.get("/metrics").await?;
    eprintln!(
        "redelivered: {}",
        m.as_str()
            .and_then(|m| m
                .lines()
                .find(|l| l.starts_with("gridwatch_ingest_redelivered_total")))
            .unwrap_or("?")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_killed_then_restarted() -> Result<()> {
    let mut r = Replay::start(30_000, 4_000).await?;
    r.past(4_000).await?;
    // kill -9, then the same port and store (sync_interval: always).
    r.sys.nats.kill();
    tokio::time::sleep(Duration::from_millis(800)).await;
    r.sys.nats.restart()?;
    r.finish("nats-server killed -9 and restarted").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_full_for_a_while() -> Result<()> {
    let mut r = Replay::start(30_000, 3_000).await?;
    // Ingest again, its data dir on a small disk of its own.
    r.sys.ingest.terminate();
    let data = r.sys.work.dir.path().join("data");
    let _ = std::fs::remove_dir_all(&data);
    let disk = crate::files::SmallDisk::mount(&data, 64)?;
    r.sys.restart_ingest()?;
    r.past(4_000).await?;
    let filler = disk.fill()?;
    wait_for("ingest to report it cannot write", WAIT, || async {
        let (s, h) = r.sys.http.get("/healthz").await.ok()?;
        (s == 503 && h["ingest_write_error"].is_string()).then_some(())
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    std::fs::remove_file(&filler)?;
    r.finish("the data dir's disk full for a while").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_snapshot_at_start() -> Result<()> {
    let mut r = Replay::start(30_000, 4_000).await?;
    r.past(8_000).await?;
    r.sys.ingest.terminate();
    let ckpt = r.sys.work.dir.path().join("data/checkpoint.bin");
    let mut bytes = std::fs::read(&ckpt).context("the snapshot")?;
    let at = bytes.len() / 2;
    bytes[at] ^= 0xa5;
    std::fs::write(&ckpt, &bytes)?;
    r.sys.restart_ingest()?;
    r.finish("a corrupt snapshot at start").await?;
    let (_, h) = r.sys.http.get("/healthz").await?;
    ensure!(h["checkpoints_set_aside"] == 1, "{h}");
    Ok(())
}

/// One WebSocket client following `node`: it applies snapshots and deltas,
/// and on a lost connection reconnects and resumes from its last `seq`.
struct Follower {
    node: String,
    state: Mutex<(u64, Value)>,
    reconnects: AtomicU64,
}

async fn follow(
    port: u16,
    token: String,
    f: Arc<Follower>,
    stop: tokio_util::sync::CancellationToken,
) {
    let url = format!("ws://127.0.0.1:{port}/ws");
    while !stop.is_cancelled() {
        let Ok(req) = gridwatch_tests::ws_request(&url, &token, &[]) else {
            return;
        };
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(req).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let seq = f.state.lock().await.0;
        let mut sub = json!({"type": "subscribe", "node": f.node});
        if seq > 0 {
            sub["resume_from"] = seq.into();
        }
        if ws
            .send(tokio_tungstenite::tungstenite::Message::text(
                sub.to_string(),
            ))
            .await
            .is_err()
        {
            continue;
        }
        loop {
            let msg = tokio::select! {
                _ = stop.cancelled() => return,
                m = ws.next() => m,
            };
            let Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) = msg else {
                match msg {
                    Some(Ok(_)) => continue,
                    _ => break,
                }
            };
            let Ok(m) = serde_json::from_str::<ServerMsg>(t.as_str()) else {
                continue;
            };
            let mut st = f.state.lock().await;
            match m {
                ServerMsg::Snapshot { seq, state, .. } => *st = (seq, state),
                ServerMsg::Delta {
                    from, seq, patch, ..
                } if from == st.0 => {
                    merge_patch::apply(&mut st.1, &patch);
                    st.0 = seq;
                }
                _ => {}
            }
        }
        f.reconnects.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_restarted_with_a_thousand_clients() -> Result<()> {
    let mut r = Replay::start(30_000, 3_000).await?;
    let port = r.sys.port;
    let nodes = ["beilun", "beilun/daqi", "beilun/xinqi", "beilun/xiaogang"];
    let stop = tokio_util::sync::CancellationToken::new();
    let followers: Vec<Arc<Follower>> = (0..1_000)
        .map(|k| {
            Arc::new(Follower {
                node: nodes[k % nodes.len()].to_string(),
                state: Mutex::new((0, Value::Null)),
                reconnects: AtomicU64::new(0),
            })
        })
        .collect();
    let tasks: Vec<_> = followers
        .iter()
        .map(|f| tokio::spawn(follow(port, r.sys.token(), f.clone(), stop.clone())))
        .collect();
    wait_for("every client's first snapshot", WAIT, || async {
        for f in &followers {
            if f.state.lock().await.0 == 0 {
                return None;
            }
        }
        Some(())
    })
    .await?;
    r.past(5_000).await?;
    // The backend goes (kill -9) and comes back on the same port.
    r.sys.backend.kill_hard();
    tokio::time::sleep(Duration::from_millis(500)).await;
    r.sys.backend = procs::backend(&r.sys.nats, port, &r.sys.work.logs())?;
    r.finish("backend killed -9 and restarted under 1,000 clients")
        .await?;
    // Every client is back and holds exactly what the state API serves.
    for node in nodes {
        let want = r.sys.http.state(node).await?;
        let seq = want["seq"].as_u64().unwrap_or(0);
        wait_for(
            &format!("every client of {node} at seq {seq}"),
            WAIT,
            || async {
                for f in followers.iter().filter(|f| f.node == node) {
                    let st = f.state.lock().await;
                    if st.0 < seq {
                        return None;
                    }
                }
                Some(())
            },
        )
        .await?;
        for f in followers.iter().filter(|f| f.node == node) {
            let st = f.state.lock().await;
            ensure!(
                st.1 == want || st.0 > seq,
                "a client of {node} holds another state at seq {}",
                st.0
            );
        }
    }
    let lost = followers
        .iter()
        .filter(|f| f.reconnects.load(Ordering::Relaxed) == 0)
        .count();
    ensure!(lost == 0, "{lost} clients never saw the backend go");
    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}
