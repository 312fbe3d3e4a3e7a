//! Durability: everything handled so far is made durable, then acked — a
//! journal append when cheap, a full snapshot (with a Parquet history part
//! and pruning) when `snapshot_s` has passed, the journal has grown past
//! `snapshot_journal_mb`, or on shutdown. Dead letters handed to the
//! publisher and not yet stored go into the snapshot with the state, so a
//! steady flow of bad events never holds snapshots back.
//!
//! A write that fails (a full disk, an I/O error) stops nothing but the
//! acks: the error is kept for the statistics (`/healthz` says why),
//! events go on being applied in memory, the same records are written
//! again at the next checkpoint, and once a write succeeds everything
//! handled is acked at once.

use async_nats::jetstream::Message;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use super::{Processor, Stages, stats::us};
use crate::checkpoint;
use crate::error::IngestError;
use crate::history;
use crate::pipeline::Outbound;

/// Where checkpointing stands.
pub struct Durability {
    /// The newest message handled and not yet acked (AckPolicy::All: its
    /// ack covers every one before it).
    pub pending_ack: Option<Message>,
    pub last_checkpoint: Instant,
    last_snapshot: Instant,
    /// The stream sequence the last checkpoint covers.
    pub checkpoint_seq: u64,
    /// The last write's error while writes fail.
    pub write_error: Option<String>,
    /// Dead letters dropped from the state's unsettled list so far.
    dead_dropped: u64,
    /// The first local day not closed when history was last compacted.
    compacted_before: Option<chrono::NaiveDate>,
    /// Set while a compaction runs (on a thread of its own).
    compacting: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Durability {
    /// As of a state loaded at `last_seq`.
    pub fn new(last_seq: u64) -> Durability {
        Durability {
            pending_ack: None,
            last_checkpoint: Instant::now(),
            last_snapshot: Instant::now(),
            checkpoint_seq: last_seq,
            write_error: None,
            dead_dropped: 0,
            compacted_before: None,
            compacting: Default::default(),
        }
    }
}

impl Processor {
    /// Once a local day is closed (its last event accepted), merges its
    /// history parts and removes days past `history_days`, on a thread of
    /// its own: closed days are never written again, so the pipeline goes
    /// on meanwhile.
    fn tidy_history(&self, d: &mut Durability) {
        use std::sync::atomic::Ordering;
        let Some(now) = self.clock.now(self.live.replay_now) else {
            return;
        };
        let Some(t) = chrono::DateTime::from_timestamp(now - self.cfg.lateness_s - 3600, 0) else {
            return;
        };
        let before = gridwatch_model::time::local_date(t);
        if d.compacted_before == Some(before) || d.compacting.swap(true, Ordering::SeqCst) {
            return;
        }
        d.compacted_before = Some(before);
        let keep_from = (self.cfg.history_days > 0)
            .then(|| before - chrono::Days::new(u64::from(self.cfg.history_days)));
        let data_dir = self.cfg.data_dir.clone();
        let running = d.compacting.clone();
        std::thread::spawn(move || {
            let merged = history::compact(&data_dir, before)
                .and_then(|n| Ok(n + history::states::compact(&data_dir, before)?));
            match merged {
                Ok(n) if n > 0 => tracing::info!(days = n, %before, "history compacted"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "compacting history"),
            }
            if let Some(k) = keep_from {
                match history::retain(&data_dir, k) {
                    Ok(n) if n > 0 => {
                        tracing::info!(days = n, keep_from = %k, "old history removed")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "removing old history"),
                }
            }
            running.store(false, Ordering::SeqCst);
        });
    }

    /// Makes everything handled so far durable, then acks it (a snapshot
    /// when due or `force`d, else a journal commit). A failed write is
    /// kept in `write_error` and tried again next time; nothing is acked.
    pub(super) fn checkpoint(
        &mut self,
        st: &mut Stages,
        out: &mpsc::Sender<Outbound>,
        force: bool,
    ) -> Result<(), IngestError> {
        match self.write_durably(st, out, force) {
            Ok(()) => {
                if let Some(e) = st.durable.write_error.take() {
                    tracing::info!(was = %e, "writes under the data dir succeed again; acking");
                }
                Ok(())
            }
            Err(
                e @ (IngestError::Io { .. }
                | IngestError::Checkpoint { .. }
                | IngestError::Polars(_)),
            ) => {
                let e = e.to_string();
                if st.durable.write_error.as_ref() != Some(&e) {
                    tracing::error!(error = %e, "writing under the data dir failed: not acking until a write succeeds");
                }
                st.durable.write_error = Some(e);
                st.durable.last_checkpoint = Instant::now();
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn write_durably(
        &mut self,
        st: &mut Stages,
        out: &mpsc::Sender<Outbound>,
        force: bool,
    ) -> Result<(), IngestError> {
        let d = &st.durable;
        let snapshot_due = d.last_snapshot.elapsed() >= Duration::from_secs(self.cfg.snapshot_s);
        // Nothing new: nothing to do, unless history waits for a snapshot
        // (a quiet hour must not keep the last rows out of the Parquet).
        let now = self.clock.now(self.live.replay_now);
        let history_waits = snapshot_due
            && !(self.live.pending_history.is_empty()
                && self.live.pending_events.is_empty()
                && !st.emit.log.waiting(now));
        if self.live.last_seq == d.checkpoint_seq && !force && !history_waits {
            st.durable.last_checkpoint = Instant::now();
            // Quiet, yet the clock moves on: a day that closes meanwhile
            // is merged all the same.
            if snapshot_due {
                self.tidy_history(&mut st.durable);
            }
            return Ok(());
        }
        let last_seq = self.live.last_seq;
        let snapshot = force
            || snapshot_due
            || self.journal.len() + self.journal.pending() as u64
                > self.cfg.snapshot_journal_mb << 20;
        if snapshot {
            let stages = &mut st.stats.stages;
            let t = Instant::now();
            history::flush(
                &self.cfg.data_dir,
                &self.registry,
                &self.topo,
                &mut self.live,
                last_seq,
            )?;
            // The states published: at shutdown (`force`) every one.
            st.emit
                .log
                .flush(&self.cfg.data_dir, if force { None } else { now })?;
            stages.history_us += us(t);
            let t = Instant::now();
            if let Some(now) = now {
                self.live.prune(now, self.cfg.lateness_s);
            }
            // The dead letters still unsettled go into the snapshot.
            let d = &mut st.durable;
            self.forget_settled(&mut d.dead_dropped);
            checkpoint::save(&self.cfg.data_dir, &self.live, self.stream_created_ns)?;
            // The snapshot covers every journal record, committed or not.
            self.journal.reset()?;
            stages.snapshot_us += us(t);
            d.last_snapshot = Instant::now();
            self.tidy_history(d);
        } else {
            let t = Instant::now();
            self.journal.commit()?;
            st.stats.stages.checkpoint_us += us(t);
        }
        let d = &mut st.durable;
        d.checkpoint_seq = last_seq;
        d.last_checkpoint = Instant::now();
        if let Some(msg) = d.pending_ack.take() {
            Self::send(out, Outbound::Ack(Box::new(msg)))?;
        }
        Ok(())
    }
}
