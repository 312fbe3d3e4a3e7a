//! The processor: owns the live state on a dedicated thread (polars work
//! stays off the async workers). Each turn of its loop:
//!
//! 1. [`batching`]: takes a micro-batch (N events or T ms after the first
//!    arrived);
//! 2. [`apply`]: validates and applies each event in stream order, books
//!    dead letters, folds the batch's counts with polars;
//! 3. [`emit`]: recomputes the node states the batch (or the clock) moved
//!    and hands the changed ones to the publisher — below the streets held
//!    and paced, plus the status map and the testing board;
//! 4. [`durability`]: checkpoints (journal append or snapshot), after which,
//!    and only after which, the covered messages are acked;
//! 5. [`stats`]: once a second, ingest's statistics.

mod apply;
mod batching;
mod durability;
mod emit;
mod stats;

use gridwatch_model::Registry;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

use crate::clock::Clock;
use crate::config::Config;
use crate::error::IngestError;
use crate::items::ItemIndex;
use crate::journal::Journal;
use crate::pipeline::{Arrived, ConsumerGauges, DeadLetters, Outbound, PublisherGauges};
use crate::state::{LiveState, Topology};

use apply::Dirty;
use durability::Durability;
use emit::Emitter;
use stats::Stats;

/// The processor's inputs and the live state it owns.
pub struct Processor {
    pub cfg: Config,
    pub registry: Arc<Registry>,
    pub topo: Topology,
    pub clock: Clock,
    pub live: LiveState,
    /// Seq of each node state already published (from the bucket).
    pub published: HashMap<String, u64>,
    pub gauges: Arc<ConsumerGauges>,
    /// What the publisher gave up on.
    pub publisher: Arc<PublisherGauges>,
    /// Every open item of each micro-grid, for the items API.
    pub items: ItemIndex,
    /// The event stream's identity, saved with each snapshot.
    pub stream_created_ns: i128,
    /// Unusable checkpoints moved aside at start.
    pub checkpoints_set_aside: u64,
    /// Dead letters handed to the publisher and not yet stored.
    pub dead: Arc<DeadLetters>,
    /// Where checkpoints between snapshots go.
    pub journal: Journal,
}

/// What the loop keeps between batches, by the stage that owns it.
struct Stages {
    dirty: Dirty,
    emit: Emitter,
    durable: Durability,
    stats: Stats,
}

impl Processor {
    /// Runs on the current (dedicated) thread until `rx` closes, then writes
    /// a final checkpoint and acks.
    pub fn run(
        mut self,
        mut rx: mpsc::Receiver<Arrived>,
        out: mpsc::Sender<Outbound>,
    ) -> Result<(), IngestError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| IngestError::Config(format!("processor runtime: {e}")))?;
        let mut st = Stages {
            dirty: Dirty::new(self.registry.nodes.len()),
            emit: Emitter::new(
                &self.registry,
                &self.topo,
                &self.live,
                &self.published,
                self.items.clone(),
            ),
            durable: Durability::new(self.live.last_seq),
            stats: Stats::default(),
        };
        // Publish every state once at start so the bucket matches this state.
        self.recompute(&mut st, &out)?;
        let tick = Duration::from_millis(self.cfg.tick_ms.max(10));
        let batch_wait = Duration::from_millis(self.cfg.batch_max_ms);
        loop {
            // Wake for the first held state that falls due, or the tick.
            let wait = st
                .emit
                .next_due(self.detail_every())
                .map_or(tick, |d| d.min(tick));
            let Some(batch) =
                batching::take(&rt, &mut rx, wait, batch_wait, self.cfg.batch_max_events)
            else {
                break;
            };
            let started = std::time::Instant::now();
            let got = !batch.is_empty();
            if got {
                self.apply_batch(batch, &mut st, &out)?;
            }
            self.recompute(&mut st, &out)?;
            if got {
                st.stats.batch_done(started);
            }
            if st.durable.last_checkpoint.elapsed() >= Duration::from_millis(self.cfg.checkpoint_ms)
            {
                self.checkpoint(&mut st, &out, false)?;
            }
            if st.stats.last_meta.elapsed() >= Duration::from_secs(1) {
                // The statistics say which events every state reflects:
                // held states go out first.
                self.flush_held(&mut st, &out)?;
                self.send_meta(&mut st, &out)?;
            }
        }
        self.flush_held(&mut st, &out)?;
        self.checkpoint(&mut st, &out, true)?;
        self.send_meta(&mut st, &out)?;
        Ok(())
    }

    fn detail_every(&self) -> Duration {
        Duration::from_millis(self.cfg.detail_publish_ms)
    }

    fn send(out: &mpsc::Sender<Outbound>, o: Outbound) -> Result<(), IngestError> {
        out.blocking_send(o)
            .map_err(|_| IngestError::Nats("the publisher stopped".into()))
    }
}
