//! Browser figures, in a real headless Chromium against the real stack
//! (nats-server, ingest on the replay clock, backend serving the built
//! frontend) while the simulator plays the Beilun day at `speed`×:
//! - the wall (1920×1080, all 4,477 micro-grids on the map), in two phases:
//!   first `/wall?perf=1`, main-thread time per frame from the page's own
//!   measurements (see `frontend/src/perf.rs`), by feed; then the plain
//!   `/wall` (nothing measured in the page) over the following simulated
//!   days. Its JS heap (after a forced GC), wasm memory and the part of it
//!   in use, and DOM nodes are sampled through both;
//! - the tablet (`/street/daqi`, 1024×768), each time in a fresh browser
//!   profile: the first live frame (ms since navigation start), the bytes
//!   it took to get there, unthrottled and on an emulated poor Wi-Fi.

use anyhow::{Context, Result, bail};
use gridwatch_ingest::sim::{Pace, SimConfig};
use gridwatch_model::Registry;
use gridwatch_tests::procs;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

use crate::live::{Stack, pct};

/// The emulated poor Wi-Fi: round trip, download and upload bytes/s.
pub const POOR_WIFI: (u64, u64, u64) = (150, 125_000, 62_500);

/// One sample of the wall over the long run.
#[derive(Debug)]
pub struct Sample {
    /// The page sampled: `/wall?perf=1` (measuring each frame) or `/wall`.
    pub measuring: bool,
    pub at_s: f64,
    /// The deployment clock (simulated, local time), if the backend said.
    pub sim: Option<chrono::NaiveDateTime>,
    pub heap_mib: f64,
    pub wasm_mib: f64,
    /// Of the wasm memory, the bytes in use (allocated, not freed).
    pub live_mib: f64,
    pub dom_nodes: u64,
    pub frames: u64,
}

/// Main-thread time per frame of one feed.
#[derive(Debug)]
pub struct FeedCost {
    pub node: String,
    pub frames: usize,
    pub mean_bytes: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// The tablet's first live frame.
#[derive(Debug)]
pub struct FirstFrame {
    pub network: String,
    pub ms: f64,
    pub transfer_bytes: f64,
    pub snapshot_bytes: f64,
}

pub struct BrowserFigures {
    pub samples: Vec<Sample>,
    pub feeds: Vec<FeedCost>,
    pub first: Vec<FirstFrame>,
}

async fn browser(driver: &str, size: (u32, u32)) -> Result<fantoccini::Client> {
    let caps = procs::chromium_caps(
        size,
        &["--enable-precise-memory-info", "--js-flags=--expose-gc"],
    );
    fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(driver)
        .await
        .context("starting headless Chromium through chromedriver")
}

async fn until<F, Fut>(what: &str, timeout: Duration, mut f: F) -> Result<Value>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Value>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(v) = f().await
            && !v.is_null()
        {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Takes the frames measured since the last sample (so the page's buffer
/// does not count in its heap), then GCs and reads the heap.
const SAMPLE_JS: &str = "const frames = window.__gw_frames || []; window.__gw_frames = []; \
    if (window.gc) { window.gc(); } \
    return { heap: performance.memory ? performance.memory.usedJSHeapSize : 0, \
             wasm: window.__gw_memory ? window.__gw_memory.buffer.byteLength : 0, \
             live: window.__gw_heap_live ? window.__gw_heap_live() : 0, \
             dom: document.getElementsByTagName('*').length, \
             frames: frames };";

/// The tablet's first live frame in a fresh profile; `throttle` emulates
/// the poor Wi-Fi through chromedriver's network conditions.
async fn first_frame(driver: &str, port: u16, throttle: bool, session: &str) -> Result<FirstFrame> {
    let c = browser(driver, (1024, 768)).await?;
    let r = async {
        // Daqi's supervisor signed in earlier (the cookie kept): the
        // tablet's own first frame, the app's files not yet cached.
        gridwatch_tests::people::carry_session(&c, &format!("http://127.0.0.1:{port}"), session)
            .await?;
        if throttle {
            let sid = c.session_id().await?.context("a WebDriver session")?;
            let (latency, down, up) = POOR_WIFI;
            let resp = reqwest::Client::new()
                .post(format!(
                    "{driver}/session/{sid}/chromium/network_conditions"
                ))
                .json(&json!({"network_conditions": {
                    "offline": false, "latency": latency,
                    "download_throughput": down, "upload_throughput": up}}))
                .send()
                .await?;
            if !resp.status().is_success() {
                bail!("network conditions refused: {}", resp.text().await?);
            }
        }
        c.goto(&format!("http://127.0.0.1:{port}/street/daqi"))
            .await?;
        let v = until("the first live frame", Duration::from_secs(120), || async {
            Ok(c.execute(
                "const f = window.__gw_first_frame; if (!f) { return null; } \
                     const n = performance.getEntriesByType('navigation')[0]; \
                     const r = performance.getEntriesByType('resource') \
                        .reduce((s, e) => s + (e.transferSize || 0), 0); \
                     return { ms: f.ms, bytes: f.bytes, transfer: r + (n ? n.transferSize : 0) };",
                vec![],
            )
            .await?)
        })
        .await?;
        Ok(FirstFrame {
            network: if throttle {
                let (l, d, u) = POOR_WIFI;
                format!(
                    "poor Wi-Fi ({l} ms, {} kbit/s down, {} kbit/s up)",
                    d * 8 / 1000,
                    u * 8 / 1000
                )
            } else {
                "loopback".into()
            },
            ms: v["ms"].as_f64().unwrap_or(0.0),
            transfer_bytes: v["transfer"].as_f64().unwrap_or(0.0),
            snapshot_bytes: v["bytes"].as_f64().unwrap_or(0.0),
        })
    }
    .await;
    let _ = c.close().await;
    r
}

/// What the simulator plays during the wall's run.
pub struct Play {
    /// Real minutes the wall runs.
    pub minutes: f64,
    /// Simulated time over real time.
    pub speed: f64,
    /// Simulated time of day to start at, on 2022-10-15.
    pub from: chrono::NaiveTime,
    /// Days the simulator may play, one after another.
    pub days: u32,
    /// Of `minutes`, the first ones on `/wall?perf=1` (frames timed); the
    /// rest on the plain `/wall`, a fresh page load.
    pub perf_minutes: f64,
}

/// Runs the wall for `play.minutes` while the simulator plays, sampling
/// every `sample_s`; then the tablet's first frames.
pub async fn run(reg: &Registry, play: &Play, sample_s: u64) -> Result<BrowserFigures> {
    let &Play {
        minutes,
        speed,
        from,
        days,
        ..
    } = play;
    let stack = Stack::start(&[("GRIDWATCH__CLOCK".into(), "replay".into())]).await?;
    let work = tempfile::tempdir()?;
    let (_driver, driver) = procs::chromedriver(work.path())?;
    let stop = tokio_util::sync::CancellationToken::new();
    let sim = gridwatch_ingest::sim::run(
        stack.js.clone(),
        reg,
        SimConfig {
            seed: 20221015,
            date: chrono::NaiveDate::from_ymd_opt(2022, 10, 15),
            from: Some(from),
            pace: Pace::Speed(speed),
            bad_share: 0.0,
            limit: None,
            days,
        },
        stop.clone(),
    );
    // The wall signs in with its device link, the tablet as Daqi's
    // supervisor (sessions taken once, carried into each fresh browser).
    let accounts = stack.nats.accounts()?.clone();
    let wall = gridwatch_tests::Http::device_cookie(stack.port, &accounts.wall_link).await?;
    let supervisor = gridwatch_tests::Http::sign_in(
        stack.port,
        &accounts.supervisor.user,
        &accounts.supervisor.password,
    )
    .await?;
    let measure = async {
        let started = Instant::now();
        let mut samples = Vec::new();
        let mut frames = Vec::new();
        let phases = [
            (true, play.perf_minutes.min(minutes)),
            (false, minutes - play.perf_minutes.min(minutes)),
        ];
        for (measuring, mins) in phases {
            if mins > 0.0 {
                let until_s = started.elapsed().as_secs_f64() + mins * 60.0;
                let page = Phase {
                    driver: &driver,
                    port: stack.port,
                    session: &wall,
                    measuring,
                    started,
                    until_s,
                    sample_s,
                };
                frames.extend(page.run(&mut samples).await?);
            }
        }
        let feeds = feeds(&frames);
        let mut first = Vec::new();
        for throttle in [false, true] {
            first.push(first_frame(&driver, stack.port, throttle, &supervisor).await?);
        }
        anyhow::Ok(BrowserFigures {
            samples,
            feeds,
            first,
        })
    };
    let (sent, result) = tokio::join!(sim, async {
        let r = measure.await;
        stop.cancel();
        r
    });
    if let Err(e) = sent {
        eprintln!("browser: the simulator stopped: {e:#}");
    }
    result
}

/// One page load of the wall in a browser of its own (so the heap is this
/// page's alone), sampled until `until_s` after `started`.
struct Phase<'a> {
    driver: &'a str,
    port: u16,
    /// The wall's session cookie.
    session: &'a str,
    measuring: bool,
    started: Instant,
    until_s: f64,
    sample_s: u64,
}

impl Phase<'_> {
    /// Loads the page and samples it; returns the frames it measured.
    async fn run(&self, samples: &mut Vec<Sample>) -> Result<Vec<Value>> {
        let c = browser(self.driver, (1920, 1080)).await?;
        let r = self.sample(&c, samples).await;
        let _ = c.close().await;
        r
    }

    async fn sample(
        &self,
        c: &fantoccini::Client,
        samples: &mut Vec<Sample>,
    ) -> Result<Vec<Value>> {
        let query = if self.measuring { "?perf=1" } else { "" };
        let base = format!("http://127.0.0.1:{}", self.port);
        gridwatch_tests::people::carry_session(c, &base, self.session).await?;
        c.goto(&format!("http://127.0.0.1:{}/wall{query}", self.port))
            .await?;
        until(
            "the wall's first frames",
            Duration::from_secs(60),
            || async {
                Ok(
                    c.execute("return window.__gw_first_frame ? 1 : null;", vec![])
                        .await?,
                )
            },
        )
        .await?;
        let mut frames: Vec<Value> = Vec::new();
        loop {
            let mut v = c.execute(SAMPLE_JS, vec![]).await?;
            if let Value::Array(a) = v["frames"].take() {
                frames.extend(a);
            }
            let mib = |k: &str| v[k].as_f64().unwrap_or(0.0) / (1024.0 * 1024.0);
            let s = Sample {
                measuring: self.measuring,
                at_s: self.started.elapsed().as_secs_f64(),
                sim: sim_clock(self.port).await,
                heap_mib: mib("heap"),
                wasm_mib: mib("wasm"),
                live_mib: mib("live"),
                dom_nodes: v["dom"].as_u64().unwrap_or(0),
                frames: frames.len() as u64,
            };
            eprintln!("browser: {s:?}");
            samples.push(s);
            let left = self.until_s - self.started.elapsed().as_secs_f64();
            if left <= 0.0 {
                return Ok(frames);
            }
            tokio::time::sleep(Duration::from_secs_f64(left.min(self.sample_s as f64))).await;
        }
    }
}

/// Main-thread time per frame, by feed, from the page's `[node, ms, bytes]`.
fn feeds(frames: &[Value]) -> Vec<FeedCost> {
    let mut by_node: std::collections::BTreeMap<String, (Vec<f64>, f64)> = Default::default();
    for f in frames {
        let (Some(node), Some(ms)) = (f[0].as_str(), f[1].as_f64()) else {
            continue;
        };
        let e = by_node.entry(node.to_string()).or_default();
        e.0.push(ms);
        e.1 += f[2].as_f64().unwrap_or(0.0);
    }
    by_node
        .into_iter()
        .map(|(node, (mut ms, bytes))| {
            ms.sort_by(f64::total_cmp);
            FeedCost {
                frames: ms.len(),
                mean_bytes: bytes / ms.len().max(1) as f64,
                p50_ms: pct(&ms, 0.5),
                p95_ms: pct(&ms, 0.95),
                p99_ms: pct(&ms, 0.99),
                max_ms: ms.last().copied().unwrap_or(0.0),
                node,
            }
        })
        .collect()
}

/// The deployment clock as the backend reports it, in local time.
async fn sim_clock(port: u16) -> Option<chrono::NaiveDateTime> {
    let v: Option<Value> = async {
        let r = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .ok()?;
        r.json().await.ok()
    }
    .await;
    let t = v.as_ref()?["clock_now"].as_str()?;
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.naive_local())
}
