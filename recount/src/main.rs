//! `gridwatch-recount`: recounts GW_EVENTS from its first message and
//! diffs the figures against the live states in the state bucket at the
//! district, every street and sampled micro-grids (or the nodes given),
//! and ingest's counts of applied events, duplicates and dead letters.
//! Exits 1 on any difference, 2 when it cannot run.

use anyhow::{Context, Result, bail};
use async_nats::jetstream::{self, consumer};
use chrono::DateTime;
use clap::Parser;
use futures::StreamExt;
use gridwatch_model::Level;
use gridwatch_model::kv::{DEFAULT_BUCKET, META_KEY, node_key};
use gridwatch_model::stats::IngestStats;
use gridwatch_recount::classify::{Classifier, Message};
use gridwatch_recount::fold::{Recount, differences};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Recount GW_EVENTS and diff it against the live states"
)]
struct Args {
    /// NATS server URL.
    #[arg(long, env = "GRIDWATCH_NATS", default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// The NKey seed file of the `reader` NATS user.
    #[arg(long, env = "GRIDWATCH_NATS_NKEY_FILE")]
    nats_nkey_file: Option<std::path::PathBuf>,
    /// The CA file of the NATS server's certificate (TLS).
    #[arg(long, env = "GRIDWATCH_NATS_CA_FILE")]
    nats_ca_file: Option<std::path::PathBuf>,
    /// The event stream.
    #[arg(long, default_value = "GW_EVENTS")]
    stream: String,
    /// The state bucket.
    #[arg(long, default_value = DEFAULT_BUCKET)]
    bucket: String,
    /// The dead-letter stream: every message refused must be in it once.
    #[arg(long, default_value = "GW_DLQ")]
    dlq: String,
    /// Registry file (the built-in Beilun one when absent).
    #[arg(long)]
    registry: Option<std::path::PathBuf>,
    /// Nodes to compare (default: the district, every street, and
    /// `--sample` micro-grids spread over the registry).
    #[arg(long = "node")]
    nodes: Vec<String>,
    /// Micro-grids to sample when no `--node` is given.
    #[arg(long, default_value_t = 24)]
    sample: usize,
    /// Seconds to wait for ingest to reach the stream's end.
    #[arg(long, default_value_t = 120)]
    wait_s: u64,
    /// Ingest's allowed lateness and lead, seconds.
    #[arg(long, default_value_t = 86_400)]
    lateness_s: i64,
    #[arg(long, default_value_t = 300)]
    future_s: i64,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    match run(args).await {
        Ok(0) => println!("recount: equal"),
        Ok(n) => {
            println!("recount: {n} difference(s)");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("gridwatch-recount: {e:#}");
            std::process::exit(2);
        }
    }
}

/// Runs the recount; returns how many differences it found.
async fn run(args: Args) -> Result<usize> {
    let reg = gridwatch_runtime::registry::load(args.registry.as_deref())?;
    let creds = gridwatch_runtime::nats::Creds {
        nkey_file: args.nats_nkey_file.clone(),
        ca_file: args.nats_ca_file.clone(),
    };
    let (url, opts) = gridwatch_runtime::nats::options(&args.nats, &creds)?;
    let client = opts
        .name("gridwatch-recount")
        .connect(url.as_str())
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let js = jetstream::new(client);
    let mut stream = js
        .get_stream(&args.stream)
        .await
        .with_context(|| format!("the stream {}", args.stream))?;
    let last = stream.info().await?.state.last_sequence;

    // The fold, in stream order.
    let mut cls = Classifier::new(&reg);
    cls.lateness_s = args.lateness_s;
    cls.future_s = args.future_s;
    let mut rc = Recount::new(&reg, DateTime::default());
    let mut dead: BTreeMap<String, u64> = BTreeMap::new();
    // The stream sequence of every message that must be a dead letter.
    let mut dead_seqs: Vec<u64> = Vec::new();
    let mut ticks = 0u64;
    read_all(&mut stream, &args.stream, last, |seq, m| {
        match cls.classify(m.subject.as_str(), &m.payload) {
            Message::Tick(_) => ticks += 1,
            Message::Event(ev) => {
                if rc.take(&ev) == gridwatch_recount::fold::Verdict::Conflict {
                    *dead.entry("conflict".into()).or_default() += 1;
                    dead_seqs.push(seq);
                }
            }
            Message::Dead(r) => {
                *dead.entry(r.as_str().into()).or_default() += 1;
                dead_seqs.push(seq);
            }
        }
    })
    .await?;
    println!(
        "recount: {last} messages to seq {last}: {} applied, {} duplicates, {} dead letters, {ticks} clock ticks",
        rc.applied,
        rc.duplicates,
        dead.values().sum::<u64>()
    );
    if ticks == 0 {
        println!(
            "recount: no replay-clock ticks: ingest on the wall clock judged lateness by its own clock, so too_late and future are not compared"
        );
    }

    // Wait for ingest to have processed it all.
    let kv = js.get_key_value(&args.bucket).await?;
    let start = Instant::now();
    let meta: IngestStats = loop {
        if let Some(v) = kv.get(META_KEY).await?
            && let Ok(m) = serde_json::from_slice::<IngestStats>(&v)
            && m.last_seq >= last
        {
            break m;
        }
        if start.elapsed() > Duration::from_secs(args.wait_s) {
            bail!("ingest did not reach seq {last} within {} s", args.wait_s);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    let mut diffs = Vec::new();
    let mut count = |what: &str, want: u64, got: u64| {
        if want != got {
            diffs.push(format!("{what}: recount {want} ≠ ingest {got}"));
        }
    };
    count("applied", rc.applied, meta.applied);
    count("duplicates", rc.duplicates, meta.duplicates);
    let reasons: std::collections::BTreeSet<&String> = dead.keys().chain(meta.dlq.keys()).collect();
    for r in reasons {
        if ticks == 0 && (r == "too_late" || r == "future") {
            continue;
        }
        let want = dead.get(r).copied().unwrap_or(0);
        let got = meta.dlq.get(r).copied().unwrap_or(0);
        count(&format!("dead letters `{r}`"), want, got);
    }

    // Every refused message is in the dead-letter stream, once (ingest
    // stores a dead letter before it acks, a moment after it counts it).
    let started = Instant::now();
    let in_dlq = loop {
        let got = dead_letter_seqs(&js, &args.dlq).await?;
        if dead_seqs.iter().all(|s| got.contains_key(s))
            || started.elapsed() > Duration::from_secs(10)
        {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut missing = 0usize;
    for seq in &dead_seqs {
        match in_dlq.get(seq).copied().unwrap_or(0) {
            1 => {}
            0 => missing += 1,
            n => diffs.push(format!(
                "the dead letter of seq {seq} is in {} {n} times",
                args.dlq
            )),
        }
    }
    if missing > 0 {
        diffs.push(format!(
            "{missing} refused message(s) are not in {}",
            args.dlq
        ));
    }
    let expected: std::collections::HashSet<u64> = dead_seqs.iter().copied().collect();
    let extra = in_dlq.keys().filter(|s| !expected.contains(s)).count();
    if extra > 0 && ticks > 0 {
        diffs.push(format!(
            "{extra} dead letter(s) in {} for messages the recount accepts",
            args.dlq
        ));
    }
    println!(
        "recount: {} dead letters expected, {} in {}",
        dead_seqs.len(),
        in_dlq.values().sum::<u64>(),
        args.dlq
    );

    let nodes: Vec<String> = if args.nodes.is_empty() {
        let mut v: Vec<String> = reg
            .nodes
            .iter()
            .filter(|n| matches!(n.level, Level::District | Level::Street))
            .map(|n| n.id.to_string())
            .collect();
        let step = (reg.microgrids.len() / args.sample.max(1)).max(1);
        v.extend(
            reg.microgrids
                .iter()
                .step_by(step)
                .take(args.sample)
                .map(|&m| reg.node(m).id.to_string()),
        );
        v
    } else {
        args.nodes.clone()
    };
    for node in &nodes {
        let Some(bytes) = kv.get(node_key(node)).await? else {
            diffs.push(format!("{node}: no state in the bucket"));
            continue;
        };
        let state: serde_json::Value =
            serde_json::from_slice(&bytes).with_context(|| format!("the state of {node}"))?;
        // Each state says the clock time it is for: recount at that time.
        let Some(as_of) = state["as_of"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        else {
            diffs.push(format!("{node}: the state has no as_of"));
            continue;
        };
        rc.set_as_of(as_of);
        let d = differences(&rc.expected(node), &state, node);
        println!(
            "{node} (as of {as_of}): {}",
            if d.is_empty() {
                "equal".to_string()
            } else {
                format!("{} difference(s)", d.len())
            }
        );
        diffs.extend(d);
    }
    for d in &diffs {
        println!("  {d}");
    }
    Ok(diffs.len())
}

/// The `Gw-Stream-Seq` of every message in the dead-letter stream, with how
/// often each appears.
async fn dead_letter_seqs(
    js: &jetstream::Context,
    name: &str,
) -> Result<std::collections::HashMap<u64, u64>> {
    let mut out = std::collections::HashMap::new();
    let mut stream = js
        .get_stream(name)
        .await
        .with_context(|| format!("the dead-letter stream {name}"))?;
    let last = stream.info().await?.state.last_sequence;
    read_all(&mut stream, name, last, |_, m| {
        if let Some(s) = m
            .headers
            .as_ref()
            .and_then(|h| h.get("Gw-Stream-Seq"))
            .and_then(|v| v.as_str().parse::<u64>().ok())
        {
            *out.entry(s).or_default() += 1;
        }
    })
    .await?;
    Ok(out)
}

/// Reads `stream` from its first message to sequence `last` with an
/// ephemeral consumer, handing each message and its sequence to `f`.
async fn read_all(
    stream: &mut jetstream::stream::Stream,
    name: &str,
    last: u64,
    mut f: impl FnMut(u64, &jetstream::Message),
) -> Result<()> {
    if last == 0 {
        return Ok(());
    }
    let c = stream
        .create_consumer(consumer::pull::Config {
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        })
        .await?;
    let mut msgs = c.stream().max_messages_per_batch(5_000).messages().await?;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(30), msgs.next())
            .await
            .with_context(|| format!("{name} stopped delivering"))?
            .with_context(|| format!("{name} ended early"))?
            .map_err(|e| anyhow::anyhow!("reading {name}: {e}"))?;
        let seq = m
            .info()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .stream_sequence;
        f(seq, &m);
        if seq >= last {
            return Ok(());
        }
    }
}
