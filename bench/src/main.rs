//! `gridwatch-bench`: measures Gridwatch beside its baselines in one run on
//! one machine, and writes `bench/RESULTS.md`.
//!
//! Measured so far:
//! - raw limit: a bare async-nats JetStream pull consumer that only
//!   deserializes the events (into the `model` types), reading a pre-filled
//!   stream of simulated Beilun events;
//! - ingest: the real `gridwatch-ingest` consuming the same stream to its end
//!   (validated, applied, folded with polars, rolled up, checkpointed,
//!   history written, states published), with its time per stage.
//!
//! Each figure is the median of `--reps` runs after a warm-up, with the
//! spread (min–max). The stream is pre-filled with nats-server's default
//! flush; consuming does not depend on it.

use anyhow::{Context, Result, bail};
use async_nats::jetstream::{self, consumer};
use clap::Parser;
use futures::StreamExt;
use gridwatch_ingest::sim::{Pace, SimConfig};
use gridwatch_model::Event;
use gridwatch_model::event::{CLOCK_SUBJECT, ClockTick};
use gridwatch_tests::procs::{self, Nats};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Gridwatch benchmarks, each beside its baseline")]
struct Args {
    /// Events in the pre-filled stream.
    #[arg(long, default_value_t = 2_000_000)]
    events: usize,
    /// Measured repetitions (after one warm-up).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Where to write the results.
    #[arg(long, default_value = "bench/RESULTS.md")]
    out: PathBuf,
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

async fn prefill(nats: &Nats, n: usize) -> Result<u64> {
    let client = async_nats::connect(nats.url()).await?;
    let js = jetstream::new(client);
    let cfg = gridwatch_ingest::Config::default();
    js.get_or_create_stream(gridwatch_ingest::nats::events_stream(&cfg))
        .await?;
    let reg = gridwatch_ingest::load_registry(None)?;
    let days = (n / 140_000 + 2) as u32;
    let sent = gridwatch_ingest::sim::run(
        js.clone(),
        &reg,
        SimConfig {
            seed: 20221015,
            date: chrono::NaiveDate::from_ymd_opt(2022, 10, 15),
            from: None,
            pace: Pace::Rate(1e12),
            bad_share: 0.0,
            limit: Some(n),
            days,
        },
        tokio_util::sync::CancellationToken::new(),
    )
    .await?;
    let info = js.get_stream("GW_EVENTS").await?.get_info().await?;
    eprintln!(
        "pre-filled {sent} events; the stream holds {} messages",
        info.state.messages
    );
    Ok(info.state.last_sequence)
}

/// The raw limit: pull and deserialize every message, nothing else.
async fn raw_consume(nats: &Nats, last: u64, rep: usize) -> Result<f64> {
    let client = async_nats::connect(nats.url()).await?;
    let js = jetstream::new(client);
    let stream = js.get_stream("GW_EVENTS").await?;
    let c = stream
        .create_consumer(consumer::pull::Config {
            name: Some(format!("raw-{rep}")),
            ack_policy: consumer::AckPolicy::None,
            ..Default::default()
        })
        .await?;
    let start = Instant::now();
    let mut msgs = c.stream().max_messages_per_batch(2000).messages().await?;
    let mut events = 0u64;
    while let Some(m) = msgs.next().await {
        let m = m.map_err(|e| anyhow::anyhow!("{e}"))?;
        if m.subject.as_str() == CLOCK_SUBJECT {
            let _: ClockTick = serde_json::from_slice(&m.payload)?;
        } else {
            let kind = m.subject.as_str().split('.').nth(2);
            std::hint::black_box(
                Event::parse(&m.payload, kind).map_err(|e| anyhow::anyhow!("{e}"))?,
            );
            events += 1;
        }
        if m.info()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .stream_sequence
            >= last
        {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(events);
    Ok(last as f64 / secs)
}

/// The product: gridwatch-ingest from start to the stream's end.
async fn ingest_consume(nats: &Nats, last: u64, rep: usize) -> Result<(f64, Value)> {
    let tmp = tempfile::tempdir()?;
    let work = tmp.path().to_path_buf();
    let client = async_nats::connect(nats.url()).await?;
    let js = jetstream::new(client);
    let bucket = format!("GW_STATE_BENCH_{rep}");
    let mut p = procs::ingest_with_env(
        &nats.url(),
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
        let v = kv.get("meta.ingest").await.ok()??;
        serde_json::from_slice::<Value>(&v).ok()
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
    let seq0 = first["last_seq"].as_u64().unwrap_or(0);
    let done = loop {
        if let Some(m) = meta(js.clone(), bucket.clone()).await
            && m["last_seq"].as_u64().unwrap_or(0) >= last
        {
            break m;
        }
        if Instant::now() > deadline + Duration::from_secs(3600) || !p.running() {
            bail!("ingest did not finish:\n{}", p.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let secs = ready.elapsed().as_secs_f64();
    p.terminate();
    Ok(((last - seq0) as f64 / secs, done))
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

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    // The binaries beside this one (target/release), unless told otherwise.
    if std::env::var_os("GRIDWATCH_BIN_DIR").is_none()
        && let Some(dir) = std::env::current_exe()?.parent()
    {
        procs::set_bin_dir(dir.to_path_buf());
    }
    let nats = Nats::start_with(false).context("starting nats-server")?;
    let last = prefill(&nats, args.events).await?;

    let mut raw = Vec::new();
    let mut ing = Vec::new();
    let mut stages = Value::Null;
    for rep in 0..=args.reps {
        let r = raw_consume(&nats, last, rep).await?;
        let (i, meta) = ingest_consume(&nats, last, rep).await?;
        eprintln!(
            "rep {rep}{}: raw {r:.0} msg/s, ingest {i:.0} msg/s",
            if rep == 0 { " (warm-up)" } else { "" }
        );
        if rep > 0 {
            raw.push(r);
            ing.push(i);
            stages = meta["stages"].clone();
        }
    }
    let raw_s = stat(&raw);
    let ing_s = stat(&ing);
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
        "- command: `scripts/bench.sh --events {} --reps {}`",
        args.events, args.reps
    )?;
    writeln!(
        md,
        "- stream: {last} messages of simulated Beilun days from 2022-10-15 (events and replay-clock ticks), pre-filled with nats-server's default flush (consuming does not depend on it)"
    )?;
    writeln!(
        md,
        "- each figure: median of {} runs after one warm-up, spread min–max\n",
        args.reps
    )?;
    writeln!(md, "## Consuming a pre-filled stream\n")?;
    writeln!(md, "| what | messages/s (median) | spread | ratio to raw |")?;
    writeln!(md, "|---|---|---|---|")?;
    writeln!(
        md,
        "| raw limit: bare pull consumer + serde into `model` types | {:.0} | {:.0}–{:.0} | 1.00 |",
        raw_s.median, raw_s.min, raw_s.max
    )?;
    writeln!(
        md,
        "| gridwatch-ingest (validate, apply, polars, roll-up, checkpoint, history, publish) | {:.0} | {:.0}–{:.0} | {:.3} |",
        ing_s.median,
        ing_s.min,
        ing_s.max,
        ing_s.median / raw_s.median
    )?;
    writeln!(md, "\nGoal: ingest ≥ 50 % of the raw limit.\n")?;
    writeln!(md, "### Ingest time per stage (last run)\n")?;
    writeln!(md, "| stage | seconds | share |")?;
    writeln!(md, "|---|---|---|")?;
    if let Some(obj) = stages.as_object() {
        let total: f64 = obj.values().filter_map(Value::as_f64).sum();
        for (k, v) in obj {
            let us = v.as_f64().unwrap_or(0.0);
            writeln!(
                md,
                "| {} | {:.2} | {:.0} % |",
                k.trim_end_matches("_us"),
                us / 1e6,
                100.0 * us / total.max(1.0)
            )?;
        }
    }
    writeln!(md, "\n## Not measured yet\n")?;
    writeln!(
        md,
        "Publish → WebSocket latency at 1k/10k/50k events/s, WebSocket fan-out (1k/5k/10k clients) against a bare tokio-tungstenite broadcast server, and ingest memory with a day of history are still to be added to this harness."
    )?;
    std::fs::write(&args.out, md)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
