//! Live figures: publish → WebSocket latency and WebSocket fan-out.
//!
//! A run starts its own nats-server (default flush), `gridwatch-ingest`
//! (replay clock) and `gridwatch-backend`, then offers a load of testing
//! reports (`rate` events/s, spread over every micro-grid) and, on top,
//! *probes*: every `probe_ms` one patrol round in each of the 11 streets,
//! published at one instant. Patrols are the only patrol events, so the
//! district's `patrol.patrols_today` grows by 11 per probe and each street's
//! by 1: a client that follows that number knows which probes it has seen,
//! and the delay from each probe's publish to the frame that shows it is a
//! publish → screen latency, with every stage of the real pipeline
//! (JetStream, micro-batch, polars, roll-up, checkpoint, KV, backend, WS).
//!
//! Time of day changes what the states hold (which micro-grids are overdue
//! for a patrol, how long the red lists are, so how big every frame is), so
//! the load runs on its own clock: simulated time starts at [`BENCH_START`]
//! (10:00 Beilun time, a working morning) and moves with real time; the load
//! announces it on `gw.clock` every second and stamps its events with it,
//! and ingest runs on the replay clock. Figures then do not depend on the
//! hour the bench is run at.

use anyhow::{Context, Result, anyhow, bail};
use async_nats::jetstream;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use gridwatch_model::Registry;
use gridwatch_model::event::CLOCK_SUBJECT;
use gridwatch_tests::procs::{self, Nats, Proc};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMsg;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The publish instants of the probes, in order.
pub type Probes = Arc<RwLock<Vec<Instant>>>;

/// NATS, ingest and backend for one run.
pub struct Stack {
    /// Kept to keep the server running (stopped on drop).
    pub nats: Nats,
    /// Kept to keep ingest running (stopped on drop).
    pub ingest: Proc,
    pub backend: Proc,
    pub port: u16,
    /// As `replay`: publishes events and clock ticks.
    pub js: jetstream::Context,
    /// As `ops`: reads the state bucket.
    pub admin: jetstream::Context,
    _work: tempfile::TempDir,
}

impl Stack {
    /// Starts the three; `ingest_env` overrides ingest's configuration
    /// (`GRIDWATCH__…` variables) for experiments.
    pub async fn start(ingest_env: &[(String, String)]) -> Result<Stack> {
        let nats = Nats::start_with(false)?;
        let work = tempfile::tempdir()?;
        let logs = work.path().join("logs");
        let mut env: Vec<(&str, &str)> = vec![("RUST_LOG", "warn")];
        env.extend(ingest_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let ingest = procs::ingest_with_env(
            &nats,
            &work.path().join("data"),
            &logs,
            &["--clock", "replay"],
            &env,
        )?;
        let admin = nats.ops().await?;
        let js = jetstream::new(nats.client().await?);
        // The backend needs the state bucket, which ingest creates.
        let deadline = Instant::now() + Duration::from_secs(120);
        while admin.get_key_value("GW_STATE").await.is_err() {
            if Instant::now() > deadline {
                bail!("ingest did not create its bucket");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let port = procs::free_port()?;
        let backend = procs::backend(&nats, port, &logs)?;
        if let Ok(mut t) = TOKEN.write() {
            t.clone_from(&nats.accounts()?.admin.token);
        }
        Ok(Stack {
            nats,
            ingest,
            backend,
            port,
            js,
            admin,
            _work: work,
        })
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }
}

/// One micro-grid per street (the probes' targets) and every micro-grid
/// (the load's targets), by id.
pub struct Targets {
    pub probe_mgs: Vec<String>,
    pub all_mgs: Vec<String>,
    pub streets: Vec<String>,
}

impl Targets {
    pub fn new(reg: &Registry) -> Targets {
        let mut probe_mgs = Vec::new();
        let mut streets = Vec::new();
        let mut all_mgs = Vec::new();
        for &m in &reg.microgrids {
            let info = reg.node(m);
            all_mgs.push(info.id.as_str().to_string());
            if let Some(mg) = &info.mg {
                let street = reg.node(mg.path[1]).id.as_str().to_string();
                if !streets.contains(&street) {
                    streets.push(street);
                    probe_mgs.push(info.id.as_str().to_string());
                }
            }
        }
        Targets {
            probe_mgs,
            all_mgs,
            streets,
        }
    }
}

fn street_token(node: &str) -> &str {
    node.split('/').nth(1).unwrap_or("beilun")
}

/// Where the load's simulated time starts.
pub const BENCH_START: &str = "2022-10-15T10:00:00+08:00";

/// The load's clock: [`BENCH_START`] plus the real time since `t0`.
struct BenchClock {
    start: chrono::DateTime<chrono::Utc>,
    t0: Instant,
}

impl BenchClock {
    fn new() -> Result<BenchClock> {
        let start = chrono::DateTime::parse_from_rfc3339(BENCH_START)?.to_utc();
        Ok(BenchClock {
            start,
            t0: Instant::now(),
        })
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.start + self.t0.elapsed()
    }
}

/// What to offer.
pub struct Offer {
    /// Testing reports per second.
    pub rate: f64,
    /// A probe this often.
    pub probe_ms: u64,
    /// Prefix of the event ids (unique per run).
    pub run_id: String,
}

/// The switches of a running load and the probes it published.
#[derive(Clone, Default)]
pub struct LoadCtl {
    pub probes: Probes,
    pub probing: Arc<AtomicBool>,
    pub stop: Arc<AtomicBool>,
}

/// Publishes one JSON event on `gw.ev.<kind>.<street>` and hands its ack
/// to the drain.
async fn publish_event(
    js: &jetstream::Context,
    acks: &tokio::sync::mpsc::Sender<jetstream::context::PublishAckFuture>,
    kind: &str,
    node: &str,
    ev: &Value,
) -> Result<()> {
    let f = js
        .publish(
            format!("gw.ev.{kind}.{}", street_token(node)),
            Bytes::from(ev.to_string()),
        )
        .await
        .map_err(|e| anyhow!("publishing: {e}"))?;
    acks.send(f).await.map_err(|_| anyhow!("ack drain"))
}

/// Offers `rate` testing reports per second plus a probe every `probe_ms`
/// until `stop`; probes are only sent while `probing` is set. Returns the
/// events published.
pub async fn offer_load(
    js: jetstream::Context,
    targets: Arc<Targets>,
    offer: Offer,
    ctl: LoadCtl,
) -> Result<u64> {
    let Offer {
        rate,
        probe_ms,
        run_id,
    } = offer;
    let LoadCtl {
        probes,
        probing,
        stop,
    } = ctl;
    let (ack_tx, mut ack_rx) =
        tokio::sync::mpsc::channel::<jetstream::context::PublishAckFuture>(20_000);
    let acks = tokio::spawn(async move {
        let mut failed = 0u64;
        let mut pending = futures::stream::FuturesUnordered::new();
        loop {
            tokio::select! {
                f = ack_rx.recv() => match f {
                    Some(f) => pending.push(std::future::IntoFuture::into_future(f)),
                    None => break,
                },
                Some(r) = pending.next(), if !pending.is_empty() => {
                    failed += u64::from(r.is_err());
                }
            }
        }
        while let Some(r) = pending.next().await {
            failed += u64::from(r.is_err());
        }
        failed
    });
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let start = Instant::now();
    let mut sent = 0u64;
    let mut n = 0u64;
    let mut next_probe = Instant::now();
    let clock = BenchClock::new()?;
    let mut told = i64::MIN;
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        let now = clock.now();
        let ts = gridwatch_model::time::to_local_rfc3339(now);
        // Ingest's clock moves to this second before its first event.
        if now.timestamp() > told {
            told = now.timestamp();
            let tick = json!({ "now": ts });
            let f = js
                .publish(CLOCK_SUBJECT, Bytes::from(tick.to_string()))
                .await
                .map_err(|e| anyhow!("publishing a clock tick: {e}"))?;
            ack_tx.send(f).await.map_err(|_| anyhow!("ack drain"))?;
        }
        while sent < due {
            let node = &targets.all_mgs[rng.random_range(0..targets.all_mgs.len())];
            let id = format!("{run_id}-t{sent}");
            let ev = json!({"v": 1, "kind": "testing", "id": id, "ts": ts, "node": node,
                "site": "bench", "interval_s": 60, "samples": rng.random_range(1..30),
                "queue": rng.random_range(0..40), "staff": 4});
            publish_event(&js, &ack_tx, "testing", node, &ev).await?;
            sent += 1;
        }
        if probing.load(Ordering::Relaxed) && Instant::now() >= next_probe {
            next_probe += Duration::from_millis(probe_ms);
            let k = probes.read().map_err(|_| anyhow!("poisoned"))?.len();
            let published = Instant::now();
            for node in &targets.probe_mgs {
                let ev = json!({"v": 1, "kind": "patrol", "id": format!("{run_id}-p{k}-{node}"),
                    "ts": ts, "node": node, "team": "bench", "persons": 2, "checkpoints": 1,
                    "findings": {"gatherings_dispersed": 0, "people_persuaded": 0,
                        "venues_closed": 0, "vendors_cleared": 0, "violations": 0}});
                publish_event(&js, &ack_tx, "patrol", node, &ev).await?;
                n += 1;
            }
            probes
                .write()
                .map_err(|_| anyhow!("poisoned"))?
                .push(published);
        }
    }
    drop(ack_tx);
    let failed = acks.await?;
    if failed > 0 {
        bail!("{failed} publishes were not acknowledged");
    }
    Ok(sent + n)
}

/// What one client saw.
#[derive(Default)]
pub struct Seen {
    /// (probe index, latency in ms) of each probe it saw while `recording`.
    pub latencies_ms: Vec<(usize, f64)>,
    pub frames: u64,
    pub bytes: u64,
    pub snapshots: u64,
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The API token every bench socket sends (the backend checks who is
/// asking; the baseline server ignores the header, so both get it): the
/// admin's of the newest stack (each stack has its own users).
static TOKEN: std::sync::RwLock<String> = std::sync::RwLock::new(String::new());

/// The WebSocket request to `url`, with the bench's token once a stack set it.
pub fn ws_request(url: &str) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut req = url.into_client_request()?;
    let t = TOKEN.read().map(|t| t.clone()).unwrap_or_default();
    if !t.is_empty() {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse()?);
    }
    Ok(req)
}

/// Connects and subscribes to `node`; returns once the first snapshot came,
/// with the patrol count in it.
pub async fn subscribe(url: &str, node: &str) -> Result<(Ws, u64)> {
    // A small read buffer: tungstenite zeroes the free part of it before
    // each read, and with the default 128 KiB that memset was 40 % of the
    // load generator's CPU with 10,000 clients (perf), time taken from the
    // server under test on this 2-core machine.
    let cfg = WebSocketConfig::default().read_buffer_size(4096);
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(ws_request(url)?, Some(cfg), false)
            .await
            .with_context(|| format!("connecting to {url}"))?;
    ws.send(WsMsg::text(
        json!({"type": "subscribe", "node": node}).to_string(),
    ))
    .await?;
    while let Some(m) = ws.next().await {
        if let WsMsg::Text(t) = m? {
            let v: Value = serde_json::from_str(t.as_str())?;
            if v["type"] == "snapshot" {
                let c = v["state"]["patrol"]["patrols_today"].as_u64().unwrap_or(0);
                return Ok((ws, c));
            }
        }
    }
    bail!("closed before the snapshot")
}

/// Reads frames until `stop`, matching patrol counts to probes.
pub async fn follow(
    mut ws: Ws,
    base: u64,
    per_probe: u64,
    probes: Probes,
    recording: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Seen {
    let mut seen = Seen::default();
    let mut counted = 0usize;
    loop {
        let m = tokio::select! {
            m = ws.next() => m,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if stop.load(Ordering::Relaxed) { break; }
                continue;
            }
        };
        let Some(Ok(m)) = m else { break };
        let WsMsg::Text(t) = m else { continue };
        let at = Instant::now();
        seen.frames += 1;
        seen.bytes += t.len() as u64;
        let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
            continue;
        };
        let count = match v["type"].as_str() {
            Some("delta") => v["patch"]["patrol"]["patrols_today"].as_u64(),
            Some("snapshot") => {
                seen.snapshots += 1;
                v["state"]["patrol"]["patrols_today"].as_u64()
            }
            _ => None,
        };
        let Some(c) = count else { continue };
        let upto = (c.saturating_sub(base) / per_probe) as usize;
        if upto > counted {
            let rec = recording.load(Ordering::Relaxed);
            if let Ok(p) = probes.read() {
                for (k, t) in p.iter().enumerate().take(upto).skip(counted) {
                    if rec {
                        seen.latencies_ms
                            .push((k, at.duration_since(*t).as_secs_f64() * 1000.0));
                    }
                }
            }
            counted = upto;
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    seen
}

/// Percentile (nearest rank) of a sorted sample.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Resident set and peak of a process, KiB.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time (user + system) of a process, seconds.
pub fn cpu_s(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`; utime and stime are the 14th and 15th.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // `rest` starts at field 3 (state): utime = field 14 → index 11.
    (ticks(11) + ticks(12)) / 100.0
}

/// The bare baseline: a tokio-tungstenite server (same socket buffer
/// settings as the backend) that sends every client
/// each frame its publisher connection hands it (a broadcast channel, a
/// lagging client skips frames). Runs in its own process, like the backend.
pub async fn baseline_server(port: u16) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let (tx, _) = tokio::sync::broadcast::channel::<WsMsg>(256);
    let tx = Arc::new(tx);
    loop {
        let (sock, _) = listener.accept().await?;
        let tx = tx.clone();
        tokio::spawn(async move {
            // The backend's socket settings: a 4 KiB read buffer, frames
            // written as they come.
            let cfg = WebSocketConfig::default()
                .read_buffer_size(4096)
                .write_buffer_size(0);
            let Ok(ws) = tokio_tungstenite::accept_async_with_config(sock, Some(cfg)).await else {
                return;
            };
            let (mut sink, mut stream) = ws.split();
            // The first message says who this is.
            let Some(Ok(WsMsg::Text(first))) = stream.next().await else {
                return;
            };
            if first.as_str() == "publisher" {
                while let Some(Ok(m)) = stream.next().await {
                    if m.is_text() {
                        let _ = tx.send(m);
                    }
                }
                return;
            }
            let mut rx = tx.subscribe();
            let snap = json!({"type": "snapshot", "node": "beilun", "seq": 0,
                "state": {"patrol": {"patrols_today": 0}}});
            if sink.send(WsMsg::text(snap.to_string())).await.is_err() {
                return;
            }
            loop {
                match rx.recv().await {
                    Ok(m) => {
                        if sink.send(m).await.is_err() {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                }
            }
        });
    }
}

/// Everything a latency or fan-out measurement returns.
pub struct Window {
    /// (probe index, latency ms) over every client.
    pub latencies_ms: Vec<(usize, f64)>,
    /// The probes published while recording.
    pub probes: std::ops::Range<usize>,
    pub frames_per_client_s: f64,
    pub mean_frame_bytes: f64,
}

/// Connects `n` clients (half to the district, half spread over the
/// streets), with at most `parallel` handshakes at a time. Returns each
/// client's socket, its base count and its patrols per probe.
pub async fn connect_many(
    url: &str,
    n: usize,
    streets: &[String],
    per_district: u64,
    parallel: usize,
) -> Result<Vec<(Ws, u64, u64)>> {
    let sem = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let url = url.to_string();
        let (node, per) = if i % 2 == 0 || streets.is_empty() {
            ("beilun".to_string(), per_district)
        } else {
            (streets[(i / 2) % streets.len()].clone(), 1)
        };
        let sem = sem.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.ok()?;
            for _ in 0..5 {
                match subscribe(&url, &node).await {
                    Ok((ws, base)) => return Some((ws, base, per)),
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
            None
        }));
    }
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        if let Some(c) = t.await? {
            out.push(c);
        }
    }
    if out.len() < n {
        bail!("only {} of {n} clients connected", out.len());
    }
    Ok(out)
}

/// Follows `clients` for `warm` then records for `secs`; the load runs
/// meanwhile. Returns the merged window.
pub async fn measure(
    clients: Vec<(Ws, u64, u64)>,
    probes: Probes,
    warm: Duration,
    secs: Duration,
) -> Result<Window> {
    let recording = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let n = clients.len();
    let handles: Vec<_> = clients
        .into_iter()
        .map(|(ws, base, per)| {
            tokio::spawn(follow(
                ws,
                base,
                per,
                probes.clone(),
                recording.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let count = || probes.read().map(|p| p.len()).unwrap_or(0);
    tokio::time::sleep(warm).await;
    let first = count();
    recording.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(secs).await;
    let last = count();
    // Let the window's last probes arrive before closing it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    recording.store(false, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64() + warm.as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut l = Vec::new();
    let (mut frames, mut bytes) = (0u64, 0u64);
    for h in handles {
        let s = h.await?;
        frames += s.frames;
        bytes += s.bytes;
        l.extend(s.latencies_ms);
    }
    l.retain(|(k, _)| (first..last).contains(k));
    Ok(Window {
        latencies_ms: l,
        probes: first..last,
        frames_per_client_s: frames as f64 / n.max(1) as f64 / elapsed,
        mean_frame_bytes: bytes as f64 / frames.max(1) as f64,
    })
}
