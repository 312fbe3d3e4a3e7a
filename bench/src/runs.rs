//! The latency and fan-out runs, each with its baseline.

use anyhow::{Context, Result, anyhow, bail};
use futures::SinkExt;
use gridwatch_model::Registry;
use gridwatch_model::kv::{DEFAULT_BUCKET, META_KEY};
use gridwatch_model::stats::IngestStats;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message as WsMsg;

use crate::live::{self, LoadCtl, Offer, Probes, Stack, Targets, Window, pct};

/// Probes per second (each is one patrol in each street).
const PROBE_MS: u64 = 100;

/// p50, p95, p99 of one repetition, ms.
#[derive(Clone, Copy, Debug)]
pub struct Quantiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub samples: usize,
}

/// Splits a window's samples into `reps` runs of consecutive probes.
pub fn per_rep(w: &Window, reps: usize) -> Vec<Quantiles> {
    let span = w.probes.len().max(1);
    let reps = reps.max(1);
    let mut buckets: Vec<Vec<f64>> = vec![Vec::new(); reps];
    for &(k, ms) in &w.latencies_ms {
        let i = ((k - w.probes.start) * reps / span).min(reps - 1);
        buckets[i].push(ms);
    }
    buckets
        .into_iter()
        .map(|mut b| {
            b.sort_by(f64::total_cmp);
            Quantiles {
                p50: pct(&b, 0.5),
                p95: pct(&b, 0.95),
                p99: pct(&b, 0.99),
                samples: b.len(),
            }
        })
        .collect()
}

/// A latency row: offered rate and the quantiles of each repetition.
pub struct LatencyRow {
    /// Ingest's own time per batch (receive → states handed to the
    /// publisher), p50 and p99 over its last 1,024 batches, ms.
    pub batch_ms: (f64, f64),
    /// Ingest's time per refresh (every micro-grid's metrics moved on with
    /// the clock, once per `tick_ms`), p50 and p99, ms.
    pub refresh_ms: (f64, f64),
    /// Ingest's time per stage over the run, seconds.
    pub stages: Vec<(String, f64)>,
    pub achieved: f64,
    pub reps: Vec<Quantiles>,
    /// Probes published in the window that never reached the client.
    pub missing: usize,
}

struct Load {
    ctl: LoadCtl,
    started: Instant,
    task: tokio::task::JoinHandle<Result<u64>>,
}

impl Load {
    fn start(stack: &Stack, targets: &Arc<Targets>, rate: f64, run_id: &str) -> Load {
        let ctl = LoadCtl::default();
        let task = tokio::spawn(live::offer_load(
            stack.js.clone(),
            targets.clone(),
            Offer {
                rate,
                probe_ms: PROBE_MS,
                run_id: run_id.to_string(),
            },
            ctl.clone(),
        ));
        Load {
            ctl,
            started: Instant::now(),
            task,
        }
    }

    /// Stops the load; returns the events/s actually offered.
    async fn finish(self) -> Result<f64> {
        self.ctl.stop.store(true, Ordering::Relaxed);
        let n = self.task.await??;
        Ok(n as f64 / self.started.elapsed().as_secs_f64())
    }
}

/// Publish → WebSocket latency at `rate` events/s offered: one client on
/// the district, `reps` windows of `secs` each.
pub async fn latency(
    reg: &Registry,
    rate: f64,
    reps: usize,
    secs: u64,
    ingest_env: &[(String, String)],
) -> Result<LatencyRow> {
    let stack = Stack::start(ingest_env).await?;
    let targets = Arc::new(Targets::new(reg));
    let load = Load::start(&stack, &targets, rate, &format!("lat{rate}"));
    // Warm up: ingest is busy with the load before the client subscribes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (ws, base) = live::subscribe(&stack.ws_url(), "beilun").await?;
    load.ctl.probing.store(true, Ordering::Relaxed);
    let w = live::measure(
        vec![(ws, base, targets.probe_mgs.len() as u64)],
        load.ctl.probes.clone(),
        Duration::from_secs(2),
        Duration::from_secs(secs * reps as u64),
    )
    .await?;
    let meta = async {
        let kv = stack.admin.get_key_value(DEFAULT_BUCKET).await.ok()?;
        let v = kv.get(META_KEY).await.ok()??;
        serde_json::from_slice::<IngestStats>(&v).ok()
    }
    .await
    .unwrap_or_default();
    let achieved = load.finish().await?;
    let missing = w.probes.len().saturating_sub(w.latencies_ms.len());
    let stages = meta
        .stages
        .stages()
        .iter()
        .map(|(k, us)| (k.to_string(), *us as f64 / 1e6))
        .collect();
    Ok(LatencyRow {
        batch_ms: (meta.batch_latency_ms_p50, meta.batch_latency_ms_p99),
        refresh_ms: (meta.refresh_ms_p50, meta.refresh_ms_p99),
        stages,
        achieved,
        reps: per_rep(&w, reps),
        missing,
    })
}

/// One fan-out measurement (product or baseline).
pub struct FanoutRow {
    pub clients: usize,
    pub reps: Vec<Quantiles>,
    /// Probe deliveries expected (probes × clients) and made.
    pub expected: usize,
    pub delivered: usize,
    pub rss_per_client_kib: f64,
    pub rss_kib: u64,
    pub cpu_pct: f64,
    pub frames_per_client_s: f64,
    pub mean_frame_bytes: f64,
    pub connect_s: f64,
}

fn fanout_row(
    w: &Window,
    n: usize,
    reps: usize,
    rss: (u64, u64),
    cpu_pct: f64,
    connect_s: f64,
) -> FanoutRow {
    FanoutRow {
        clients: n,
        reps: per_rep(w, reps),
        expected: w.probes.len() * n,
        delivered: w.latencies_ms.len(),
        rss_per_client_kib: rss.1.saturating_sub(rss.0) as f64 / n as f64,
        rss_kib: rss.1,
        cpu_pct,
        frames_per_client_s: w.frames_per_client_s,
        mean_frame_bytes: w.mean_frame_bytes,
        connect_s,
    }
}

/// `n` clients on the backend while `rate` events/s flow, plus one client
/// that subscribes and then never reads.
pub async fn fanout(
    reg: &Registry,
    n: usize,
    rate: f64,
    reps: usize,
    secs: u64,
    ingest_env: &[(String, String)],
) -> Result<FanoutRow> {
    let stack = Stack::start(ingest_env).await?;
    let pid = stack.backend.pid().context("backend pid")?;
    let targets = Arc::new(Targets::new(reg));
    let load = Load::start(&stack, &targets, rate, &format!("fan{n}"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss0 = live::rss_kib(pid).0;
    let t = Instant::now();
    let clients = live::connect_many(
        &stack.ws_url(),
        n,
        &targets.streets,
        targets.probe_mgs.len() as u64,
        64,
    )
    .await?;
    let connect_s = t.elapsed().as_secs_f64();
    let (stalled, _) = live::subscribe(&stack.ws_url(), "beilun").await?;
    load.ctl.probing.store(true, Ordering::Relaxed);
    let cpu0 = (live::cpu_s(pid), Instant::now());
    let w = live::measure(
        clients,
        load.ctl.probes.clone(),
        Duration::from_secs(2),
        Duration::from_secs(secs * reps as u64),
    )
    .await?;
    let cpu = 100.0 * (live::cpu_s(pid) - cpu0.0) / cpu0.1.elapsed().as_secs_f64();
    let rss1 = live::rss_kib(pid).0;
    drop(stalled);
    load.finish().await?;
    Ok(fanout_row(&w, n, reps, (rss0, rss1), cpu, connect_s))
}

/// The baseline for [`fanout`]: a bare tokio-tungstenite broadcast server
/// (its own process) sending `n` clients probe frames at the product's
/// probe rate and filler frames up to the product's frames per client per
/// second, each padded to the product's mean frame size; one client stalls.
pub async fn fanout_baseline(
    n: usize,
    like: &FanoutRow,
    reps: usize,
    secs: u64,
) -> Result<FanoutRow> {
    let port = gridwatch_tests::procs::free_port()?;
    let exe = std::env::current_exe()?;
    let logs = tempfile::tempdir()?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("baseline-server")
        .arg("--port")
        .arg(port.to_string());
    let server = gridwatch_tests::procs::spawn_cmd("baseline-server", cmd, logs.path())?;
    gridwatch_tests::procs::wait_port(port, Duration::from_secs(20), "baseline server")?;
    let pid = server.pid().context("baseline pid")?;
    let url = format!("ws://127.0.0.1:{port}/");
    let (mut publisher, _) = tokio_tungstenite::connect_async(live::ws_request(&url)?).await?;
    publisher.send(WsMsg::text("publisher")).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss0 = live::rss_kib(pid).0;
    let t = Instant::now();
    let clients = live::connect_many(&url, n, &[], 11, 64).await?;
    let connect_s = t.elapsed().as_secs_f64();
    let (stalled, _) = live::subscribe(&url, "beilun").await?;
    let probes: Probes = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let pad = (like.mean_frame_bytes as usize).saturating_sub(90);
    let filler_per_s = (like.frames_per_client_s - 1000.0 / PROBE_MS as f64).max(0.0);
    let sender = {
        let probes = probes.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let mut next_probe = Instant::now();
            let mut fillers = 0u64;
            let pad = "x".repeat(pad);
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let due = (start.elapsed().as_secs_f64() * filler_per_s) as u64;
                while fillers < due {
                    let f = json!({"type": "delta", "node": "beilun", "seq": fillers,
                        "patch": {"testing": {"samples_today": fillers}}, "pad": pad});
                    publisher.send(WsMsg::text(f.to_string())).await?;
                    fillers += 1;
                }
                if Instant::now() >= next_probe {
                    next_probe += Duration::from_millis(PROBE_MS);
                    let k = probes.read().map_err(|_| anyhow!("poisoned"))?.len();
                    let f = json!({"type": "delta", "node": "beilun", "seq": k,
                        "patch": {"patrol": {"patrols_today": 11 * (k as u64 + 1)}}, "pad": pad});
                    let at = Instant::now();
                    publisher.send(WsMsg::text(f.to_string())).await?;
                    probes.write().map_err(|_| anyhow!("poisoned"))?.push(at);
                }
            }
            anyhow::Ok(())
        })
    };
    let cpu0 = (live::cpu_s(pid), Instant::now());
    let w = live::measure(
        clients,
        probes,
        Duration::from_secs(2),
        Duration::from_secs(secs * reps as u64),
    )
    .await?;
    let cpu = 100.0 * (live::cpu_s(pid) - cpu0.0) / cpu0.1.elapsed().as_secs_f64();
    let rss1 = live::rss_kib(pid).0;
    stop.store(true, Ordering::Relaxed);
    sender.await??;
    drop(stalled);
    drop(server);
    if w.latencies_ms.is_empty() {
        bail!("the baseline delivered nothing");
    }
    Ok(fanout_row(&w, n, reps, (rss0, rss1), cpu, connect_s))
}
