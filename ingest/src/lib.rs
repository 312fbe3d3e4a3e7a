//! Gridwatch ingest: consumes field events from NATS JetStream, validates
//! them, aggregates them exactly with polars, checkpoints, writes Parquet
//! history and publishes node states for the backends. Also home of the
//! simulator (`gridwatch-sim`), which shares the model and NATS set-up.
//!
//! Modules:
//! - [`config`]: layered configuration; [`clock`]: wall or replay clock;
//!   [`error`]: the crate's error. Config loading, tracing, signals, the
//!   NATS connection and publish retries are `gridwatch_runtime`'s.
//! - [`validate`]: one message → a valid event or a DLQ reason.
//! - [`state`]: the exact live state and how an event changes it;
//!   [`disposal`]: the incident lifecycle by tier and the supervision
//!   orders (numbers, due times, rectify, reopen).
//! - [`aggregate`]: polars batch folding and roll-ups into node states.
//! - [`board`]: the testing board (samples per 10 minutes, busiest sites).
//! - [`items`]: every open flag and incident of each micro-grid, served a
//!   page at a time on `gw.ingest.items`, every open one under a node on
//!   `gw.ingest.open`, and what became of a tablet's action on
//!   `gw.ingest.outcome`.
//! - [`checkpoint`], [`journal`], [`history`]: durability (snapshots and
//!   the journal between them) and Parquet history.
//! - The pipeline, one way: [`consumer`] → [`processor`] → [`publisher`],
//!   with the types passed between them in [`pipeline`] and the JetStream
//!   set-up in [`nats`].
//! - [`sim`]: the Beilun-day simulator.

pub mod aggregate;
pub mod board;
pub mod checkpoint;
pub mod clock;
pub mod config;
pub mod consumer;
pub mod disposal;
pub mod error;
pub mod history;
pub mod items;
pub mod journal;
pub mod nats;
pub mod pipeline;
pub mod processor;
pub mod publisher;
pub mod sim;
pub mod state;
pub mod validate;

use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use error::IngestError;

/// Runs ingest until `shutdown` is cancelled or a part fails.
pub async fn run(cfg: Config, shutdown: CancellationToken) -> Result<(), IngestError> {
    let registry = Arc::new(gridwatch_runtime::registry::load(cfg.registry.as_deref())?);
    cfg.disposal.check().map_err(IngestError::Config)?;
    let topo = state::Topology::new(&registry).with_rules(cfg.disposal.clone());
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| IngestError::Io {
        path: cfg.data_dir.display().to_string(),
        source: e,
    })?;
    // Held until ingest exits: a second ingest on the same data dir stops.
    let _lock = lock_data_dir(&cfg.data_dir)?;
    let metrics_at =
        gridwatch_runtime::metrics::serve(&cfg.metrics_listen, shutdown.child_token()).await?;
    tracing::info!(%metrics_at, "serving /metrics");
    let (client, disconnects) =
        gridwatch_runtime::nats::connect(&cfg.nats, &cfg.nats_creds(), "gridwatch-ingest").await?;
    let js = async_nats::jetstream::new(client.clone());
    let store = nats::ensure_streams(&js, &cfg).await?;
    let stream_created_ns = nats::stream_created_ns(&js, &cfg).await?;
    let (live, checkpoints_set_aside) = resume(&cfg, registry.microgrids.len(), stream_created_ns)?;
    let removed = history::remove_uncommitted(&cfg.data_dir, live.last_seq)?
        + history::states::remove_torn(&cfg.data_dir)?;
    if removed > 0 {
        tracing::info!(
            removed,
            "removed history parts written after the last checkpoint"
        );
    }
    let published = nats::published_seqs(&store).await?;
    tracing::info!(
        nodes = registry.nodes.len(),
        known_states = published.len(),
        "ready"
    );

    let gauges = Arc::new(pipeline::ConsumerGauges::default());
    let dead = Arc::new(pipeline::DeadLetters::default());
    let publisher_gauges = Arc::new(pipeline::PublisherGauges::default());
    let items = items::ItemIndex::default();
    let items_service = tokio::spawn(items::serve(
        client,
        registry.clone(),
        items.clone(),
        shutdown.child_token(),
    ));
    let (in_tx, in_rx) = mpsc::channel(cfg.batch_max_events.max(1) * 4);
    let (out_tx, out_rx) = mpsc::channel(1024);
    let (journal, records) = journal::Journal::open(&cfg.data_dir)?;
    let mut processor = processor::Processor {
        cfg: cfg.clone(),
        registry: registry.clone(),
        topo,
        clock: clock::Clock { mode: cfg.clock },
        live,
        published,
        gauges: gauges.clone(),
        publisher: publisher_gauges.clone(),
        items: items.clone(),
        stream_created_ns,
        checkpoints_set_aside,
        dead: dead.clone(),
        journal,
    };
    let publisher = tokio::spawn(publisher::run(
        publisher::Targets {
            js: js.clone(),
            bucket: cfg.state_bucket.clone(),
            data_dir: cfg.data_dir.clone(),
        },
        out_rx,
        dead,
        publisher_gauges,
        shutdown.child_token(),
    ));
    // Replay the journal past the snapshot (blocking work, and the
    // processor's sends block): the state is then the last checkpointed one.
    let replay_out = out_tx.clone();
    let (processor, replayed) = tokio::task::spawn_blocking(move || {
        let r = processor.replay(records, &replay_out);
        (processor, r)
    })
    .await
    .map_err(|e| IngestError::Config(format!("replaying the journal: {e}")))?;
    let replayed = replayed?;
    if replayed > 0 {
        tracing::info!(
            replayed,
            last_seq = processor.live.last_seq,
            "replayed the journal"
        );
    }
    let start_seq = processor.live.last_seq + 1;
    let proc_thread = std::thread::Builder::new()
        .name("gw-processor".into())
        .spawn(move || processor.run(in_rx, out_tx))
        .map_err(|e| IngestError::Config(format!("starting the processor: {e}")))?;
    let consumer_token = shutdown.child_token();
    let consumer = consumer::run(
        disconnects,
        js,
        cfg.clone(),
        start_seq,
        in_tx,
        gauges,
        consumer_token.clone(),
    );
    let consumer_result = consumer.await;
    // The consumer is done (shutdown or failure): the processor drains,
    // checkpoints and hangs up; then the publisher finishes.
    let proc_result = tokio::task::spawn_blocking(move || proc_thread.join())
        .await
        .map_err(|e| IngestError::Config(format!("joining the processor: {e}")))?
        .map_err(|_| IngestError::Config("the processor panicked".into()))?;
    let pub_result = publisher
        .await
        .map_err(|e| IngestError::Config(format!("joining the publisher: {e}")))?;
    items_service.abort();
    consumer_result?;
    proc_result?;
    pub_result?;
    tracing::info!("ingest stopped");
    Ok(())
}

/// Takes the data dir's lock (`<data-dir>/ingest.lock`), held while the
/// returned file is open.
///
/// Fails when another process holds it.
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, IngestError> {
    let path = dir.join("ingest.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| IngestError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(IngestError::Config(format!(
            "another ingest holds the data dir {} (lock {})",
            dir.display(),
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(IngestError::Io {
            path: path.display().to_string(),
            source: e,
        }),
    }
}

/// The state to resume from, and how many unusable checkpoints were moved
/// aside (0 or 1): the checkpoint if it can be resumed from; else, with the
/// checkpoint and its journal moved aside, an empty state that rebuilds
/// from the stream's start (history parts of the old state are removed, the
/// rebuild writes them again).
fn resume(
    cfg: &Config,
    microgrids: usize,
    stream_created_ns: i128,
) -> Result<(state::LiveState, u64), IngestError> {
    let fresh = || state::LiveState::new(microgrids);
    let (live, aside) = match checkpoint::load(&cfg.data_dir, microgrids, stream_created_ns) {
        checkpoint::Loaded::State(s) => {
            tracing::info!(last_seq = s.last_seq, "resuming from checkpoint");
            (*s, 0)
        }
        checkpoint::Loaded::None => {
            // A journal without its snapshot cannot be replayed.
            let journal = cfg.data_dir.join(journal::FILE);
            if std::fs::metadata(&journal).is_ok_and(|m| m.len() > 0) {
                tracing::warn!("a journal without a checkpoint: moving it aside");
                checkpoint::set_aside(&cfg.data_dir, journal::FILE)?;
            }
            tracing::info!("no checkpoint: starting from the beginning of the stream");
            (fresh(), 0)
        }
        checkpoint::Loaded::Unusable(why) => {
            let to = checkpoint::set_aside(&cfg.data_dir, journal::FILE)?;
            tracing::error!(
                %why,
                moved_to = %to.map(|p| p.display().to_string()).unwrap_or_default(),
                "the checkpoint cannot be resumed from: moved aside, rebuilding from the stream"
            );
            (fresh(), 1)
        }
    };
    Ok((live, aside))
}
