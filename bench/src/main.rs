//! `gridwatch-bench`: measures Gridwatch beside its baselines in one run on
//! one machine, and writes `bench/RESULTS.md`.
//!
//! - Throughput: the raw limit — a bare async-nats pull consumer in the
//!   best of a sweep of configurations ([`raw`]), receive only, and receive
//!   and deserialize into the `model` types — against the real
//!   `gridwatch-ingest` consuming the same pre-filled stream to its end,
//!   with its time per stage and its memory at the end.
//! - Latency: publish → a WebSocket client of the backend, at several
//!   offered rates ([`live`], [`runs`]).
//! - Fan-out: thousands of WebSocket clients on the backend against a bare
//!   tokio-tungstenite broadcast server sending frames of the same size and
//!   rate; one client in each run never reads.
//!
//! - Browser: the wall and the tablet in headless Chromium ([`browser`]).
//! - Soak: seven simulated days at high speed with bad events; memory and
//!   what ingest holds at each noon ([`soak`]).
//!
//! Each figure is the median of `--reps` runs (after a warm-up for the
//! throughput runs), with the spread (min–max).

mod browser;
mod history;
mod live;
mod raw;
mod runs;
mod soak;

use anyhow::{Context, Result, bail};
use async_nats::jetstream::{self};
use clap::Parser;
use gridwatch_ingest::sim::{Pace, SimConfig};
use gridwatch_model::kv::META_KEY;
use gridwatch_model::stats::IngestStats;
use gridwatch_runtime::nats_auth::{self, Service};
use gridwatch_tests::procs::{self, Nats};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The event stream the benches read.
const STREAM: &str = "GW_EVENTS";
/// The raw limit's control stream of tiny messages.
const TINY_STREAM: &str = "RAW_TINY";
const TINY_SUBJECT: &str = "raw.tiny";

#[derive(Parser)]
#[command(about = "Gridwatch benchmarks, each beside its baseline")]
struct Args {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// Events in the pre-filled stream.
    #[arg(long, default_value_t = 2_000_000)]
    events: usize,
    /// Measured repetitions (after one warm-up).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Offered rates of the latency runs, events/s.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,50000")]
    latency_rates: Vec<f64>,
    /// Client counts of the fan-out runs.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,10000")]
    clients: Vec<usize>,
    /// Events/s offered during the fan-out runs.
    #[arg(long, default_value_t = 1000.0)]
    fanout_rate: f64,
    /// Seconds per repetition of the latency and fan-out windows.
    #[arg(long, default_value_t = 8)]
    secs: u64,
    /// Ingest configuration for the latency and fan-out runs, as
    /// `GRIDWATCH__KEY=value` (experiments; the command is in the results).
    #[arg(long = "ingest-env", value_parser = parse_env)]
    ingest_env: Vec<(String, String)>,
    /// Which parts to run (the others are left out of the results).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "throughput,latency,fanout,browser,soak,history"
    )]
    only: Vec<String>,
    /// Minutes of the browser's long run.
    #[arg(long, default_value_t = 20.0)]
    browser_minutes: f64,
    /// Speed of the simulated day during the browser run (240× for 20
    /// minutes: 80 simulated hours, across three midnights).
    #[arg(long, default_value_t = 240.0)]
    browser_speed: f64,
    /// Simulated time (HH:MM on 2022-10-15) the browser run starts at.
    #[arg(long, default_value = "05:50")]
    browser_from: chrono::NaiveTime,
    /// Simulated days the browser run may play (one after another).
    #[arg(long, default_value_t = 4)]
    browser_days: u32,
    /// Of the browser's long run, the first minutes on `/wall?perf=1`
    /// (each frame timed); the rest on the plain `/wall`, whose memory is
    /// then the product's alone.
    #[arg(long, default_value_t = 5.0)]
    browser_perf_minutes: f64,
    /// Simulated days of the soak run.
    #[arg(long, default_value_t = 7)]
    soak_days: u32,
    /// Speed of the simulated days in the soak run.
    #[arg(long, default_value_t = 2000.0)]
    soak_speed: f64,
    /// Simulated days of history for the analyst queries.
    #[arg(long, default_value_t = 30)]
    history_days: u32,
    /// Repetitions of each analyst query (after one warm-up).
    #[arg(long, default_value_t = 5)]
    history_reps: usize,
    /// A data dir for the analyst queries' history: made there and kept if
    /// it has none, else reused (made by an earlier run; ~35 minutes saved).
    #[arg(long)]
    history_dir: Option<PathBuf>,
    /// Where to write the results.
    #[arg(long, default_value = "bench/RESULTS.md")]
    out: PathBuf,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .filter(|(k, _)| k.starts_with("GRIDWATCH__"))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}` is not GRIDWATCH__KEY=value"))
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// The bare tokio-tungstenite broadcast server (the fan-out baseline).
    #[command(hide = true)]
    BaselineServer {
        #[arg(long)]
        port: u16,
    },
}

/// Median and spread of a sample.
struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

fn stat(v: &[f64]) -> Stat {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    Stat {
        median: s[s.len() / 2],
        min: s[0],
        max: s[s.len() - 1],
    }
}

/// The events stream's info, asked as ops (the simulator's user may only
/// publish).
async fn stream_info(nats: &Nats) -> Result<jetstream::stream::Info> {
    Ok(nats
        .ops()
        .await?
        .get_stream(STREAM)
        .await?
        .get_info()
        .await?)
}

/// Fills the events stream with the simulator's days from 2022-10-15, as
/// fast as it goes: `days` of them, or `limit` events. Returns the events
/// sent and the stream's last sequence.
pub(crate) async fn prefill(nats: &Nats, limit: Option<usize>, days: u32) -> Result<(u64, u64)> {
    // The simulator's own user may not make streams: ops makes it.
    nats.ops()
        .await?
        .get_or_create_stream(gridwatch_ingest::nats::events_stream(
            &gridwatch_ingest::Config::default(),
        ))
        .await?;
    let js = jetstream::new(nats.client().await?);
    let reg = gridwatch_runtime::registry::load(None)?;
    let sent = gridwatch_ingest::sim::run(
        js.clone(),
        &reg,
        SimConfig {
            seed: 20221015,
            date: chrono::NaiveDate::from_ymd_opt(2022, 10, 15),
            from: None,
            pace: Pace::Rate(1e12),
            bad_share: 0.0,
            limit,
            days,
        },
        tokio_util::sync::CancellationToken::new(),
    )
    .await?;
    let info = stream_info(nats).await?;
    eprintln!(
        "pre-filled {sent} events; the stream holds {} messages",
        info.state.messages
    );
    Ok((sent, info.state.last_sequence))
}

/// The product: gridwatch-ingest from start to the stream's end.
/// What one ingest run measured.
struct IngestRun {
    msgs_per_s: f64,
    meta: IngestStats,
    /// RSS when ready (registry loaded, states published), KiB.
    rss_ready_kib: u64,
    /// RSS and peak RSS at the end of the stream, KiB.
    rss_end_kib: (u64, u64),
    /// Bytes under the data dir (snapshot, journal, Parquet history).
    data_bytes: u64,
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

async fn ingest_consume(nats: &Nats, last: u64, rep: usize) -> Result<IngestRun> {
    let tmp = tempfile::tempdir()?;
    let work = tmp.path().to_path_buf();
    let js = nats.ops().await?;
    let bucket = format!("GW_STATE_BENCH_{rep}");
    let mut p = procs::ingest_with_env(
        nats,
        &work.join("data"),
        &work.join("logs"),
        &["--clock", "replay"],
        &[
            ("GRIDWATCH__STATE_BUCKET", bucket.as_str()),
            ("GRIDWATCH__CONSUMER", &format!("bench-ingest-{rep}")),
            ("GRIDWATCH__CHECKPOINT_MS", "1000"),
            ("RUST_LOG", "warn"),
        ],
    )?;
    let meta = |js: jetstream::Context, bucket: String| async move {
        let kv = js.get_key_value(&bucket).await.ok()?;
        let v = kv.get(META_KEY).await.ok()??;
        serde_json::from_slice::<IngestStats>(&v).ok()
    };
    // Ready: the first statistics record (registry loaded, states published).
    let deadline = Instant::now() + Duration::from_secs(300);
    let (ready, first) = loop {
        if let Some(m) = meta(js.clone(), bucket.clone()).await {
            break (Instant::now(), m);
        }
        if Instant::now() > deadline || !p.running() {
            bail!("ingest never got ready:\n{}", p.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seq0 = first.last_seq;
    let pid = p.pid().context("ingest pid")?;
    let rss_ready_kib = live::rss_kib(pid).0;
    let done = loop {
        if let Some(m) = meta(js.clone(), bucket.clone()).await
            && m.last_seq >= last
        {
            break m;
        }
        if Instant::now() > deadline + Duration::from_secs(3600) || !p.running() {
            bail!("ingest did not finish:\n{}", p.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let secs = ready.elapsed().as_secs_f64();
    let rss_end_kib = live::rss_kib(pid);
    p.terminate();
    Ok(IngestRun {
        msgs_per_s: (last - seq0) as f64 / secs,
        meta: done,
        rss_ready_kib,
        rss_end_kib,
        data_bytes: dir_bytes(&work.join("data")),
    })
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| format!("{:.0} GiB", kb as f64 / 1048576.0))
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), {mem}")
}

/// Raw consumer against ingest on one pre-filled stream; ingest memory.
async fn throughput(args: &Args, md: &mut String) -> Result<()> {
    // Ingest's user may also write the benchmark's buckets (one per rep,
    // and the warm-up's).
    let buckets = args.reps + 1;
    let nats = Nats::start_tweaked(false, "", &|s, p| {
        if s == Service::Ingest {
            for rep in 0..buckets {
                nats_auth::grant_bucket(p, &format!("GW_STATE_BENCH_{rep}"));
            }
        }
    })
    .context("starting nats-server")?;
    let (_, last) = prefill(&nats, Some(args.events), (args.events / 140_000 + 2) as u32).await?;
    // The raw limit's best configuration: each candidate once (receive
    // only), after one warm-up read of the stream.
    let url = raw::Server {
        url: nats.url(),
        nkey_file: nats.seed(Service::Ops),
    };
    let server = nats.pid();
    let info = stream_info(&nats).await?;
    let mean_bytes = info.state.bytes as f64 / info.state.messages.max(1) as f64;
    let warm = raw::Setup {
        pull: raw::Pull::Messages { batch: 2_000 },
        runtime: raw::Runtime::OwnThread,
    };
    raw::read(&url, STREAM, last, warm, false, "raw-warm", server).await?;
    let mut sweep = Vec::new();
    for (k, setup) in raw::candidates().into_iter().enumerate() {
        // A configuration that fails (messages dropped, say) is reported
        // and left out; the others still run.
        let name = format!("raw-sweep-{k}");
        match raw::read(&url, STREAM, last, setup, false, &name, server).await {
            Ok(r) => {
                eprintln!(
                    "raw sweep: {setup}: {:.0} msg/s, nats-server {:.2} cores",
                    r.msgs_per_s, r.server_cores
                );
                sweep.push((setup, Ok(r)));
            }
            Err(e) => {
                eprintln!("raw sweep: {setup}: failed: {e:#}");
                sweep.push((setup, Err(format!("{e:#}"))));
            }
        }
    }
    let best = sweep
        .iter()
        .filter_map(|(p, r)| r.as_ref().ok().map(|r| (*p, r.msgs_per_s)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(p, _)| p)
        .context("no raw configuration")?;
    // The control: the same client and configuration on tiny messages.
    let tiny_last = raw::fill_tiny(&url, TINY_STREAM, TINY_SUBJECT, last).await?;
    raw::read(
        &url,
        TINY_STREAM,
        tiny_last,
        best,
        false,
        "tiny-warm",
        server,
    )
    .await?;
    let mut tiny = Vec::new();
    for rep in 0..args.reps.max(1) {
        let r = raw::read(
            &url,
            TINY_STREAM,
            tiny_last,
            best,
            false,
            &format!("tiny-{rep}"),
            server,
        )
        .await?;
        eprintln!(
            "tiny control {rep}: {:.0} msg/s, nats-server {:.2} cores",
            r.msgs_per_s, r.server_cores
        );
        tiny.push(r);
    }
    let mut recv = Vec::new();
    let mut dec = Vec::new();
    let mut ing = Vec::new();
    let mut lastrun = None;
    for rep in 0..=args.reps {
        let r = raw::read(
            &url,
            STREAM,
            last,
            best,
            false,
            &format!("raw-recv-{rep}"),
            server,
        )
        .await?;
        let d = raw::read(
            &url,
            STREAM,
            last,
            best,
            true,
            &format!("raw-dec-{rep}"),
            server,
        )
        .await?;
        let run = ingest_consume(&nats, last, rep).await?;
        eprintln!(
            "rep {rep}{}: raw receive {:.0}, receive + decode {:.0}, ingest {:.0} msg/s",
            if rep == 0 { " (warm-up)" } else { "" },
            r.msgs_per_s,
            d.msgs_per_s,
            run.msgs_per_s
        );
        if rep > 0 {
            recv.push(r);
            dec.push(d);
            ing.push(run.msgs_per_s);
            lastrun = Some(run);
        }
    }
    let run = lastrun.context("no measured repetition (--reps 0)")?;
    let rate = |v: &[raw::Reading]| v.iter().map(|r| r.msgs_per_s).collect::<Vec<f64>>();
    let cores = |v: &[raw::Reading]| stat(&v.iter().map(|r| r.server_cores).collect::<Vec<f64>>());
    let (recv_s, dec_s, ing_s) = (stat(&rate(&recv)), stat(&rate(&dec)), stat(&ing));
    let (tiny_s, tiny_cores, recv_cores) = (stat(&rate(&tiny)), cores(&tiny), cores(&recv));
    writeln!(md, "## Consuming a pre-filled stream\n")?;
    writeln!(
        md,
        "{last} messages of simulated Beilun days from 2022-10-15 (events and replay-clock ticks), pre-filled with nats-server's default flush (consuming does not depend on it). Every consumer reads the same stream.\n"
    )?;
    writeln!(
        md,
        "The raw limit is a bare async-nats pull consumer (no acks, no per-message `info()` parse, counting only) in its best configuration of a sweep run first, once each, receive only:\n"
    )?;
    writeln!(
        md,
        "| bare consumer configuration | messages/s (one run) | nats-server CPU, cores |"
    )?;
    writeln!(md, "|---|---|---|")?;
    for (setup, r) in &sweep {
        let mark = if *setup == best { " **(best)**" } else { "" };
        match r {
            Ok(r) => writeln!(
                md,
                "| {setup}{mark} | {:.0} | {:.2} |",
                r.msgs_per_s, r.server_cores
            )?,
            Err(e) => writeln!(md, "| {setup} | failed: {e} | – |")?,
        }
    }
    writeln!(
        md,
        "\nThe stream's messages average {mean_bytes:.0} bytes as stored (JSON payload, subject and the `Nats-Msg-Id` header). In the best configuration nats-server was busy {:.2} cores (median of the receive-only reads) while the client read. The control: the same client and configuration reading {tiny_last} messages of 16 bytes without headers from a stream of their own reached {:.0} messages/s ({:.0}–{:.0}), nats-server busy {:.2} cores. That is {:.1}× the product's messages with nothing else changed: what is left of the gap to faster machines is the bytes per message, which the server and the client share this machine's 2 cores to move.\n",
        recv_cores.median,
        tiny_s.median,
        tiny_s.min,
        tiny_s.max,
        tiny_cores.median,
        tiny_s.median / recv_s.median
    )?;
    writeln!(md, "| what | messages/s | spread | ratio to raw + decode |")?;
    writeln!(md, "|---|---|---|---|")?;
    writeln!(
        md,
        "| raw limit, receive only ({best}) | {:.0} | {:.0}–{:.0} | {:.2} |",
        recv_s.median,
        recv_s.min,
        recv_s.max,
        recv_s.median / dec_s.median
    )?;
    writeln!(
        md,
        "| raw limit, receive + serde into `model` types ({best}) | {:.0} | {:.0}–{:.0} | 1.00 |",
        dec_s.median, dec_s.min, dec_s.max
    )?;
    writeln!(
        md,
        "| gridwatch-ingest (validate, apply, polars, roll-up, journal + snapshots, history, publish) | {:.0} | {:.0}–{:.0} | {:.3} |",
        ing_s.median,
        ing_s.min,
        ing_s.max,
        ing_s.median / dec_s.median
    )?;
    writeln!(md, "\nGoal: ingest ≥ 50 % of the raw limit.\n")?;
    writeln!(md, "### Ingest time per stage (last run)\n")?;
    writeln!(md, "| stage | seconds | share |")?;
    writeln!(md, "|---|---|---|")?;
    let stages = run.meta.stages.stages();
    let total: f64 = stages.iter().map(|(_, us)| *us as f64).sum();
    for (k, us) in stages {
        let us = us as f64;
        writeln!(
            md,
            "| {k} | {:.2} | {:.0} % |",
            us / 1e6,
            100.0 * us / total.max(1.0)
        )?;
    }
    writeln!(md, "\n### Ingest memory (last run)\n")?;
    writeln!(md, "| when | RSS |")?;
    writeln!(md, "|---|---|")?;
    writeln!(
        md,
        "| ready: the registry (5,396 nodes) loaded, every state published | {:.0} MiB |",
        run.rss_ready_kib as f64 / 1024.0
    )?;
    writeln!(
        md,
        "| after the stream ({} applied events; the state keeps two local days plus the allowed lateness) | {:.0} MiB (peak {:.0} MiB) |",
        run.meta.applied,
        run.rss_end_kib.0 as f64 / 1024.0,
        run.rss_end_kib.1 as f64 / 1024.0
    )?;
    writeln!(
        md,
        "\nData dir after the run (snapshot, journal, Parquet history): {:.0} MiB.\n",
        run.data_bytes as f64 / 1048576.0
    )?;
    Ok(())
}

fn q_cells(reps: &[runs::Quantiles]) -> String {
    let f = |g: fn(&runs::Quantiles) -> f64| {
        let v: Vec<f64> = reps.iter().map(g).filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return "–".to_string();
        }
        let st = stat(&v);
        format!("{:.1} ({:.1}–{:.1})", st.median, st.min, st.max)
    };
    format!("{} | {} | {}", f(|q| q.p50), f(|q| q.p95), f(|q| q.p99))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(Cmd::BaselineServer { port }) = args.cmd {
        return live::baseline_server(port).await;
    }
    // The binaries beside this one (target/release), unless told otherwise.
    if std::env::var_os("GRIDWATCH_BIN_DIR").is_none()
        && let Some(dir) = std::env::current_exe()?.parent()
    {
        procs::set_bin_dir(dir.to_path_buf());
    }
    let on = |part: &str| args.only.iter().any(|o| o == part);
    let reg = gridwatch_runtime::registry::load(None)?;
    let mut md = String::new();
    writeln!(md, "# Gridwatch benchmark results\n")?;
    writeln!(md, "- machine: {}", machine())?;
    writeln!(
        md,
        "- date: {}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    )?;
    writeln!(
        md,
        "- command: `scripts/bench.sh {}`",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    )?;
    writeln!(
        md,
        "- each figure: median of {} repetitions, spread min–max in brackets; release builds; nats-server 2.15.1\n",
        args.reps
    )?;
    writeln!(
        md,
        "Profiles, before/after figures and what bounds each goal that is missed: [ANALYSIS.md](ANALYSIS.md).\n"
    )?;

    if on("throughput") {
        throughput(&args, &mut md).await?;
    }
    if on("soak") {
        soak::soak(args.soak_days, args.soak_speed, &mut md).await?;
    }
    if on("latency") {
        writeln!(md, "## Publish → WebSocket latency\n")?;
        writeln!(
            md,
            "Testing reports at the offered rate spread over all 4,477 micro-grids, plus a probe every {} ms (one patrol in each of the 11 streets at one instant); one client subscribed to the district measures from a probe's publish to the first frame whose patrol count shows it. Fresh nats-server (default flush: the publisher cannot offer 10k events/s with `sync_interval: always` here, see DESIGN), ingest (default config, on the replay clock: the load stamps its events with its own time, 10:00 on 2022-10-15 onwards, and announces it on `gw.clock`, so what the states hold does not depend on the hour the bench runs) and backend per rate; {} windows of {} s after a 3 s warm-up.\n",
            100, args.reps, args.secs
        )?;
        writeln!(
            md,
            "| offered events/s | achieved | p50 ms | p95 ms | p99 ms | probes seen / published | ingest batch p50 / p99 ms | refresh p50 / p99 ms |"
        )?;
        writeln!(md, "|---|---|---|---|---|---|---|---|")?;
        for &rate in &args.latency_rates {
            let row = runs::latency(&reg, rate, args.reps, args.secs, &args.ingest_env).await?;
            let seen: usize = row.reps.iter().map(|q| q.samples).sum();
            eprintln!(
                "latency at {rate}: achieved {:.0}/s, {}; ingest batch p50 {:.1} p99 {:.1} ms; refresh p50 {:.1} p99 {:.1} ms; stages {:?}",
                row.achieved,
                q_cells(&row.reps),
                row.batch_ms.0,
                row.batch_ms.1,
                row.refresh_ms.0,
                row.refresh_ms.1,
                row.stages
            );
            writeln!(
                md,
                "| {:.0} | {:.0} | {} | {} / {} | {:.1} / {:.1} | {:.1} / {:.1} |",
                rate,
                row.achieved,
                q_cells(&row.reps),
                seen,
                seen + row.missing,
                row.batch_ms.0,
                row.batch_ms.1,
                row.refresh_ms.0,
                row.refresh_ms.1
            )?;
        }
        writeln!(md, "\nGoal: p99 ≤ 100 ms at 10,000 events/s.\n")?;
    }
    if on("fanout") {
        writeln!(md, "## WebSocket fan-out\n")?;
        writeln!(
            md,
            "{} events/s flow (testing reports + a probe every 100 ms); half the clients subscribe to the district, half to the 11 streets; one more client subscribes to the district and never reads. Delivery = probe publish → the client's frame showing it (product), or hand-off to the server → client (baseline: a bare tokio-tungstenite server broadcasting frames of the product's mean size at the product's frames/s per client, its own process). RSS per client = (RSS with the clients − RSS before) / clients. CPU = the server process over the window (100 % = one core). The clients run in this process on the same 2 cores (tokio-tungstenite with a 4 KiB read buffer: with the default 128 KiB, zeroing it before each read was 40 % of the clients' CPU, taken from the servers under test). The load runs on its own clock from 10:00 (see the latency section).\n",
            args.fanout_rate
        )?;
        writeln!(
            md,
            "| server | clients | p50 ms | p95 ms | p99 ms | delivered / expected | RSS per client | RSS | CPU | frames/client/s | mean frame | connect time |"
        )?;
        writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|")?;
        for &n in &args.clients {
            let p = match runs::fanout(
                &reg,
                n,
                args.fanout_rate,
                args.reps,
                args.secs,
                &args.ingest_env,
            )
            .await
            {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("fan-out {n}: {e:#}");
                    writeln!(md, "| gridwatch-backend | {n} | failed: {e} |||||||||| ")?;
                    continue;
                }
            };
            let b = match runs::fanout_baseline(n, &p, args.reps, args.secs).await {
                Ok(b) => Some(b),
                Err(e) => {
                    eprintln!("fan-out baseline {n}: {e:#}");
                    None
                }
            };
            for (name, r) in [
                ("gridwatch-backend", Some(&p)),
                ("bare broadcast", b.as_ref()),
            ] {
                let Some(r) = r else {
                    writeln!(
                        md,
                        "| {name} | {n} | failed (see the command's output) |||||||||| "
                    )?;
                    continue;
                };
                eprintln!(
                    "fan-out {name} {n}: {} | {:.1} KiB/client | cpu {:.0} %",
                    q_cells(&r.reps),
                    r.rss_per_client_kib,
                    r.cpu_pct
                );
                writeln!(
                    md,
                    "| {name} | {} | {} | {} / {} | {:.1} KiB | {:.0} MiB | {:.0} % | {:.1} | {:.0} B | {:.1} s |",
                    r.clients,
                    q_cells(&r.reps),
                    r.delivered,
                    r.expected,
                    r.rss_per_client_kib,
                    r.rss_kib as f64 / 1024.0,
                    r.cpu_pct,
                    r.frames_per_client_s,
                    r.mean_frame_bytes,
                    r.connect_s
                )?;
            }
        }
        writeln!(
            md,
            "\nGoal: 10,000 clients at ≤ 20 KB of backend memory each, p99 delivery ≤ 500 ms; the client that never reads does not delay the others.\n"
        )?;
    }
    if on("browser") {
        browser_section(&args, &reg, &mut md).await?;
    }
    if on("history") {
        let mut section = String::new();
        history::history(
            args.history_days,
            args.history_reps,
            args.history_dir.as_deref(),
            &mut section,
        )
        .await?;
        if args.only.len() == 1 {
            // Alone: the section replaces its namesake in the results
            // (the other sections stay as their runs wrote them).
            let old = std::fs::read_to_string(&args.out).unwrap_or_default();
            let note = format!(
                "_This section: `scripts/bench.sh {}` on {}._\n\n",
                std::env::args().skip(1).collect::<Vec<_>>().join(" "),
                chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
            );
            let section = section.replacen("\n\n", &format!("\n\n{note}"), 1);
            std::fs::write(&args.out, splice(&old, "## History queries", &section))?;
            eprintln!("wrote the history section of {}", args.out.display());
            return Ok(());
        }
        md.push_str(&section);
    }
    std::fs::write(&args.out, md)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// The browser figures (issue: wall and tablet), or why they failed.
async fn browser_section(
    args: &Args,
    reg: &gridwatch_model::Registry,
    md: &mut String,
) -> Result<()> {
    writeln!(md, "## In the browser\n")?;
    writeln!(
        md,
        "Headless Chromium against the release stack (ingest on the replay clock) while the simulator plays from 2022-10-15 {} at {}× for {} minutes (so {:.1} simulated hours; from 05:50 that is through the 06:00 testing peak, then on over the following days). The wall runs at 1920×1080 with all 4,477 micro-grids on the map, in two page loads: for the first {} minutes `/wall?perf=1`, where the page measures each frame itself — main-thread time from the frame's arrival until the reactive updates it queued have run and style and layout are recomputed (`frontend/src/perf.rs`; an upper bound); then the plain `/wall`, measuring nothing, for the rest. Heap after a forced GC (`--js-flags=--expose-gc`, precise memory info); the wasm memory never shrinks, so beside it the bytes of it in use (the frontend's counting allocator).\n",
        args.browser_from.format("%H:%M"),
        args.browser_speed,
        args.browser_minutes,
        args.browser_minutes * args.browser_speed / 60.0,
        args.browser_perf_minutes
    )?;
    let play = browser::Play {
        minutes: args.browser_minutes,
        speed: args.browser_speed,
        from: args.browser_from,
        days: args.browser_days,
        perf_minutes: args.browser_perf_minutes,
    };
    let f = match browser::run(reg, &play, 30).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("browser: {e:#}");
            writeln!(md, "Failed: {e:#}\n")?;
            return Ok(());
        }
    };
    writeln!(md, "### Main-thread time per frame on the wall\n")?;
    writeln!(
        md,
        "| feed | frames | mean frame | p50 ms | p95 ms | p99 ms | max ms |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|")?;
    for c in &f.feeds {
        writeln!(
            md,
            "| `{}` | {} | {:.0} B | {:.2} | {:.2} | {:.2} | {:.1} |",
            c.node, c.frames, c.mean_bytes, c.p50_ms, c.p95_ms, c.p99_ms, c.max_ms
        )?;
    }
    writeln!(md, "\n### The wall over the long run\n")?;
    writeln!(
        md,
        "| minute | page | simulated time | JS heap | wasm memory | of it in use | DOM nodes | frames measured |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|")?;
    let page = |s: &browser::Sample| if s.measuring { "`?perf=1`" } else { "`/wall`" };
    for s in &f.samples {
        writeln!(
            md,
            "| {:.1} | {} | {} | {:.2} MiB | {:.1} MiB | {:.2} MiB | {} | {} |",
            s.at_s / 60.0,
            page(s),
            s.sim
                .map(|t| t.format("%m-%d %H:%M").to_string())
                .unwrap_or_default(),
            s.heap_mib,
            s.wasm_mib,
            s.live_mib,
            s.dom_nodes,
            s.frames
        )?;
    }
    // The same hour on each simulated day: the state is alike, so growth
    // from one day to the next is what the wall keeps.
    let from_noon = |t: chrono::NaiveDateTime| {
        (t.time() - chrono::NaiveTime::from_hms_opt(12, 0, 0).unwrap_or_default()).abs()
    };
    let mut noon: Vec<(chrono::NaiveDateTime, &browser::Sample)> = Vec::new();
    for s in &f.samples {
        let Some(t) = s.sim else { continue };
        match noon.iter_mut().find(|(n, _)| n.date() == t.date()) {
            Some(n) if from_noon(t) < from_noon(n.0) => *n = (t, s),
            Some(_) => {}
            None => noon.push((t, s)),
        }
    }
    if noon.len() > 1 {
        let cells: Vec<String> = noon
            .iter()
            .map(|(t, s)| {
                format!(
                    "{} on {}: JS heap {:.2} MiB, wasm {:.1} MiB ({:.2} in use), {} DOM nodes",
                    t.format("%m-%d %H:%M"),
                    page(s),
                    s.heap_mib,
                    s.wasm_mib,
                    s.live_mib,
                    s.dom_nodes
                )
            })
            .collect();
        writeln!(
            md,
            "\nNearest noon on each simulated day — {}.",
            cells.join("; ")
        )?;
    }
    // The plain page over its run, from its second sample (the first is
    // taken as it loads).
    let plain: Vec<&browser::Sample> = f.samples.iter().filter(|s| !s.measuring).collect();
    if let (Some(a), Some(b)) = (plain.get(1), plain.last()) {
        writeln!(
            md,
            "\nThe plain `/wall` from minute {:.1} to {:.1}: JS heap {:+.2} MiB, wasm memory {:+.1} MiB (in use {:+.2} MiB), DOM nodes {:+}.",
            a.at_s / 60.0,
            b.at_s / 60.0,
            b.heap_mib - a.heap_mib,
            b.wasm_mib - a.wasm_mib,
            b.live_mib - a.live_mib,
            b.dom_nodes as i64 - a.dom_nodes as i64
        )?;
    }
    writeln!(
        md,
        "\n### The tablet's first live frame (fresh profile each)\n"
    )?;
    writeln!(
        md,
        "| network | first live frame | bytes transferred (page, wasm, CSS, API) | its snapshot frame |"
    )?;
    writeln!(md, "|---|---|---|---|")?;
    for t in &f.first {
        writeln!(
            md,
            "| {} | {:.0} ms after navigation start | {:.0} KiB | {:.1} KiB |",
            t.network,
            t.ms,
            t.transfer_bytes / 1024.0,
            t.snapshot_bytes / 1024.0
        )?;
    }
    writeln!(md)?;
    Ok(())
}

/// `doc` with the section under `heading` (to the next `## ` or the end)
/// replaced by `section`, or `section` appended.
fn splice(doc: &str, heading: &str, section: &str) -> String {
    let Some(start) = doc.find(heading) else {
        return format!("{}\n\n{section}", doc.trim_end());
    };
    let rest = &doc[start + heading.len()..];
    let end = rest
        .find("\n## ")
        .map(|i| start + heading.len() + i + 1)
        .unwrap_or(doc.len());
    format!("{}{section}{}", &doc[..start], &doc[end..])
}
