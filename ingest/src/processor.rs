//! The processor: owns the live state on a dedicated thread (polars work
//! stays off the async workers). It forms micro-batches (N events or T ms),
//! validates and applies each event in stream order, folds the batch with
//! polars, recomputes node states, hands changed states and dead letters to
//! the publisher, and checkpoints — after which, and only after which, the
//! covered messages are acked.

use async_nats::jetstream::Message;
use bytes::Bytes;
use gridwatch_model::event::{CLOCK_SUBJECT, ClockTick, ParseError, Reason};
use gridwatch_model::state::{MAP_NODE, MapState, TESTING_NODE, cell_code};
use gridwatch_model::{Level, NodeState, Registry};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use crate::aggregate::{RollupCache, Scope, compute_states, fold_batch};
use crate::checkpoint;
use crate::clock::Clock;
use crate::config::Config;
use crate::consumer::ConsumerGauges;
use crate::error::IngestError;
use crate::history;
use crate::journal::{self, Journal, Kind};
use crate::nats::state_key;
use crate::state::{LiveState, Outcome, Row, Topology};
use crate::testing::Testing;
use crate::validate::{TimeRules, validate};

/// A message from the consumer and when it arrived.
#[derive(Debug)]
pub struct Arrived {
    pub at: Instant,
    pub msg: Message,
}

/// A dead letter: the original payload, where it came from and why.
#[derive(Debug)]
pub struct DeadLetter {
    pub seq: u64,
    pub subject: String,
    pub payload: Bytes,
    pub reason: &'static str,
    pub detail: String,
}

/// What the processor asks the publisher to do, in order.
#[derive(Debug)]
pub enum Outbound {
    Dead(DeadLetter),
    /// Changed node states: (key, JSON).
    States(Vec<(String, Bytes)>),
    /// Everything up to this message is checkpointed: ack it (AckPolicy::All).
    Ack(Box<Message>),
    /// Ingest statistics (JSON).
    Meta(Bytes),
}

/// Time spent per stage, summed since start (for metrics and benches).
#[derive(Clone, Debug, Default, Serialize)]
pub struct StageTimes {
    pub decode_validate_apply_us: u64,
    pub polars_batch_us: u64,
    pub rollup_us: u64,
    pub diff_serialize_us: u64,
    /// Journal appends and fsyncs.
    pub checkpoint_us: u64,
    /// Full snapshots (with pruning).
    pub snapshot_us: u64,
    pub history_us: u64,
}

/// Ingest statistics, published as `meta.ingest`.
#[derive(Clone, Debug, Serialize)]
pub struct Meta {
    pub applied: u64,
    pub duplicates: u64,
    pub redelivered: u64,
    pub dlq: BTreeMap<String, u64>,
    /// Every state in the bucket reflects the events up to this stream
    /// sequence (held states are published before this record).
    pub last_seq: u64,
    pub checkpoint_seq: u64,
    pub consumer_lag: u64,
    pub consumer_restarts: u64,
    pub batches: u64,
    pub batch_latency_ms_p50: f64,
    pub batch_latency_ms_p99: f64,
    /// Time of a recompute of every node with polars (compute, diff,
    /// serialize), and of a refresh (every micro-grid's metrics, the nodes
    /// they moved).
    pub full_recompute_ms_p50: f64,
    pub full_recompute_ms_p99: f64,
    pub refresh_ms_p50: f64,
    pub refresh_ms_p99: f64,
    /// The clock's now (RFC 3339, +08:00).
    pub clock_now: Option<String>,
    /// Newest applied event time (RFC 3339, +08:00).
    pub newest_event: Option<String>,
    /// Wall time the newest event was applied (Unix ms).
    pub last_applied_wall_ms: Option<i64>,
    /// Wall time of this record (Unix ms).
    pub wall_ms: i64,
    pub stages: StageTimes,
}

/// The processor's fixed inputs.
pub struct Processor {
    pub cfg: Config,
    pub registry: Arc<Registry>,
    pub topo: Topology,
    pub clock: Clock,
    pub state: LiveState,
    /// Seq of each node state already published (from the bucket).
    pub published: HashMap<String, u64>,
    pub gauges: Arc<ConsumerGauges>,
    /// Where checkpoints between snapshots go.
    pub journal: Journal,
}

struct Run {
    /// Each node's state as last published.
    prev: Vec<Option<NodeState>>,
    /// When each node's state was last published.
    published_at: Vec<Option<Instant>>,
    /// Changed community, grid and micro-grid states waiting for
    /// `detail_publish_ms` to pass since their node's last publish.
    held: Vec<Option<NodeState>>,
    /// The nodes in `held` (an index may repeat or be stale: `held` decides).
    held_order: VecDeque<u32>,
    /// One serialization buffer for every state.
    buf: Vec<u8>,
    /// The status map as last published (cells by micro-grid ordinal).
    map: MapState,
    /// The testing board (series per 10 minutes, busiest sites).
    testing: Testing,
    /// Micro-grid metrics between recomputes.
    rollup: RollupCache,
    /// Nodes an event changed since the last recompute (with ancestors).
    dirty: Vec<bool>,
    dirty_any: bool,
    /// A change that reaches beyond its micro-grid (a zone designation).
    full_needed: bool,
    /// Last time every node was recomputed with polars.
    last_full: Instant,
    /// Last time every micro-grid's metrics moved on with the clock.
    last_refresh: Instant,
    pending_ack: Option<Message>,
    last_checkpoint: Instant,
    last_snapshot: Instant,
    last_meta: Instant,
    latencies: VecDeque<f64>,
    /// Durations of the last full recomputes and refreshes, ms.
    full_ms: VecDeque<f64>,
    refresh_ms: VecDeque<f64>,
    batches: u64,
    stages: StageTimes,
    checkpoint_seq: u64,
    last_applied_wall_ms: Option<i64>,
}

fn us(since: Instant) -> u64 {
    since.elapsed().as_micros() as u64
}

/// Keeps the last 1,024 durations (ms) for quantiles.
fn push_bounded(q: &mut VecDeque<f64>, since: Instant) {
    q.push_back(since.elapsed().as_secs_f64() * 1000.0);
    if q.len() > 1024 {
        q.pop_front();
    }
}

/// Quantile `p` of `v` (sorted in place); 0 when empty.
fn quantile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        0.0
    } else {
        v[((v.len() - 1) as f64 * p).round() as usize]
    }
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
        let n = self.registry.nodes.len();
        let mut run = Run {
            prev: vec![None; n],
            published_at: vec![None; n],
            held: vec![None; n],
            held_order: VecDeque::new(),
            buf: Vec::with_capacity(64 << 10),
            map: MapState {
                node: MAP_NODE.to_string(),
                seq: self.published.get(MAP_NODE).copied().unwrap_or(0),
                ..Default::default()
            },
            testing: Testing::new(
                &self.registry,
                &self.topo,
                &self.state,
                self.published.get(TESTING_NODE).copied().unwrap_or(0),
            ),
            rollup: RollupCache::new(&self.registry, &self.topo),
            dirty: vec![false; self.registry.nodes.len()],
            dirty_any: false,
            full_needed: true,
            last_full: Instant::now(),
            last_refresh: Instant::now(),
            pending_ack: None,
            last_checkpoint: Instant::now(),
            last_snapshot: Instant::now(),
            last_meta: Instant::now() - Duration::from_secs(10),
            latencies: VecDeque::new(),
            full_ms: VecDeque::new(),
            refresh_ms: VecDeque::new(),
            batches: 0,
            stages: StageTimes::default(),
            checkpoint_seq: self.state.last_seq,
            last_applied_wall_ms: None,
        };
        // Publish every state once at start so the bucket matches this state.
        self.recompute(&mut run, &out)?;
        let tick = Duration::from_millis(self.cfg.tick_ms.max(10));
        let batch_wait = Duration::from_millis(self.cfg.batch_max_ms);
        loop {
            // Wake for the first held state that falls due, or the tick.
            let wait = run
                .held_order
                .iter()
                .filter_map(|&i| run.published_at[i as usize])
                .min()
                .map_or(tick, |at| {
                    (at + self.detail_every()).saturating_duration_since(Instant::now())
                })
                .min(tick);
            let first = rt.block_on(async { tokio::time::timeout(wait, rx.recv()).await });
            let mut batch = Vec::new();
            match first {
                // The batch closes `batch_max_ms` after its first message
                // *arrived*, not after it was taken: when the previous batch
                // took longer than that, the backlog is taken at once and the
                // batch closes without waiting again.
                Ok(Some(Arrived { at, msg })) => {
                    batch.push(msg);
                    let deadline = tokio::time::Instant::from_std(at + batch_wait);
                    while batch.len() < self.cfg.batch_max_events {
                        let next = match rx.try_recv() {
                            Ok(a) => Some(a),
                            Err(_) => rt
                                .block_on(async {
                                    tokio::time::timeout_at(deadline, rx.recv()).await
                                })
                                .ok()
                                .flatten(),
                        };
                        match next {
                            Some(a) => batch.push(a.msg),
                            None => break,
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => {}
            }
            let started = Instant::now();
            let got = !batch.is_empty();
            if got {
                self.apply_batch(batch, &mut run, &out)?;
            }
            self.recompute(&mut run, &out)?;
            if got {
                run.batches += 1;
                push_bounded(&mut run.latencies, started);
            }
            if run.last_checkpoint.elapsed() >= Duration::from_millis(self.cfg.checkpoint_ms) {
                self.checkpoint(&mut run, &out, false)?;
            }
            if run.last_meta.elapsed() >= Duration::from_secs(1) {
                // The statistics say which events every state reflects:
                // held states go out first.
                let mut changed = Vec::new();
                self.release_held(&mut run, &mut changed, true)?;
                if !changed.is_empty() {
                    Self::send(&out, Outbound::States(changed))?;
                }
                self.send_meta(&mut run, &out)?;
            }
        }
        let mut changed = Vec::new();
        self.release_held(&mut run, &mut changed, true)?;
        if !changed.is_empty() {
            Self::send(&out, Outbound::States(changed))?;
        }
        self.checkpoint(&mut run, &out, true)?;
        self.send_meta(&mut run, &out)?;
        Ok(())
    }

    fn detail_every(&self) -> Duration {
        Duration::from_millis(self.cfg.detail_publish_ms)
    }

    /// Serializes a changed state at its next version and books it as
    /// published.
    fn publish_state(
        &self,
        run: &mut Run,
        i: usize,
        mut s: NodeState,
        changed: &mut Vec<(String, Bytes)>,
    ) -> Result<(), IngestError> {
        s.seq = match &run.prev[i] {
            Some(p) => p.seq + 1,
            None => self.published.get(&s.node).copied().unwrap_or(0) + 1,
        };
        run.buf.clear();
        serde_json::to_writer(&mut run.buf, &s)
            .map_err(|e| IngestError::Config(format!("serializing a state: {e}")))?;
        changed.push((state_key(&s.node), Bytes::copy_from_slice(&run.buf)));
        run.prev[i] = Some(s);
        run.published_at[i] = Some(Instant::now());
        Ok(())
    }

    /// Publishes the held states whose node's `detail_publish_ms` has
    /// passed (all of them when `all`).
    fn release_held(
        &self,
        run: &mut Run,
        changed: &mut Vec<(String, Bytes)>,
        all: bool,
    ) -> Result<(), IngestError> {
        let every = self.detail_every();
        let now = Instant::now();
        let mut due = Vec::new();
        let (held, published_at) = (&run.held, &run.published_at);
        run.held_order.retain(|&i| {
            let i = i as usize;
            if held[i].is_none() {
                return false;
            }
            let go = all || published_at[i].is_none_or(|at| now.duration_since(at) >= every);
            if go {
                due.push(i);
            }
            !go
        });
        for i in due {
            if let Some(s) = run.held[i].take() {
                self.publish_state(run, i, s, changed)?;
            }
        }
        Ok(())
    }

    fn send(out: &mpsc::Sender<Outbound>, o: Outbound) -> Result<(), IngestError> {
        out.blocking_send(o)
            .map_err(|_| IngestError::Nats("the publisher stopped".into()))
    }

    fn apply_batch(
        &mut self,
        batch: Vec<Message>,
        run: &mut Run,
        out: &mpsc::Sender<Outbound>,
    ) -> Result<(), IngestError> {
        let t = Instant::now();
        let rules = self.rules();
        let mut rows = Vec::with_capacity(batch.len());
        let mut applied_any = false;
        for msg in batch {
            let Ok(info) = msg.info() else { continue };
            let seq = info.stream_sequence;
            if seq <= self.state.last_seq {
                self.state.counters.redelivered += 1;
                continue;
            }
            let subject = msg.subject.as_str();
            let (outcome, kind) = if subject == CLOCK_SUBJECT {
                (self.tick(&msg.payload), Kind::Tick)
            } else {
                let now = self.clock.now(self.state.replay_now);
                match validate(subject, &msg.payload, &self.registry, now, rules) {
                    Ok(v) => {
                        let outcome = self.state.apply(&v, &self.topo);
                        if matches!(outcome, Outcome::Applied(_)) {
                            self.mark_dirty(run, &v);
                        }
                        (outcome, Kind::Event)
                    }
                    Err(e) => {
                        let kind = Kind::Dead(e.reason);
                        (Outcome::DeadLetter(e), kind)
                    }
                }
            };
            let detail = match &outcome {
                Outcome::DeadLetter(e) if kind != Kind::Event => e.detail.as_str(),
                _ => "",
            };
            self.journal.push(kind, seq, subject, detail, &msg.payload);
            applied_any |= matches!(outcome, Outcome::Applied(Some(_)));
            self.settle(outcome, seq, subject, &msg.payload, &mut rows, out)?;
            self.state.last_seq = seq;
            run.pending_ack = Some(msg);
        }
        if applied_any {
            run.last_applied_wall_ms = Some(chrono::Utc::now().timestamp_millis());
        }
        run.stages.decode_validate_apply_us += us(t);
        let t = Instant::now();
        fold_batch(&mut self.state, &rows)?;
        run.testing.fold(&rows);
        run.stages.polars_batch_us += us(t);
        Ok(())
    }

    /// Marks what an applied event changed: its micro-grid and the nodes
    /// above it, or everything for a zone designation.
    fn mark_dirty(&self, run: &mut Run, v: &crate::validate::Valid) {
        match &self.registry.node(v.node).mg {
            Some(mg) if v.event.kind() != gridwatch_model::event::EventKind::Zone => {
                for &a in &mg.path {
                    run.dirty[a as usize] = true;
                }
                run.dirty_any = true;
            }
            _ => run.full_needed = true,
        }
    }

    /// Books one message's outcome: its counting row, or a dead letter.
    fn settle(
        &mut self,
        outcome: Outcome,
        seq: u64,
        subject: &str,
        payload: &Bytes,
        rows: &mut Vec<Row>,
        out: &mpsc::Sender<Outbound>,
    ) -> Result<(), IngestError> {
        match outcome {
            Outcome::Applied(row) => rows.extend(row),
            Outcome::Duplicate => {}
            Outcome::DeadLetter(e) => {
                self.state.count_dlq(e.reason);
                tracing::debug!(seq, reason = %e.reason, detail = %e.detail, "dead letter");
                Self::send(
                    out,
                    Outbound::Dead(DeadLetter {
                        seq,
                        subject: subject.to_string(),
                        payload: payload.clone(),
                        reason: e.reason.as_str(),
                        detail: e.detail,
                    }),
                )?;
            }
        }
        Ok(())
    }

    /// Replays the journal's records past the snapshot: the state becomes
    /// exactly the one last checkpointed. Dead letters are sent again (their
    /// `Nats-Msg-Id` lets JetStream drop the copies it already has).
    /// Returns how many records were replayed.
    pub fn replay(
        &mut self,
        records: Vec<journal::Record>,
        out: &mpsc::Sender<Outbound>,
    ) -> Result<usize, IngestError> {
        let mut rows = Vec::new();
        let mut n = 0;
        for r in records {
            if r.seq <= self.state.last_seq {
                continue;
            }
            let outcome = match r.kind {
                Kind::Tick => self.tick(&r.payload),
                Kind::Dead(reason) => Outcome::DeadLetter(ParseError::new(reason, r.detail)),
                // It passed validation when it came; the time rules depended
                // on the clock then, so they are not applied again.
                Kind::Event => {
                    match validate(&r.subject, &r.payload, &self.registry, None, self.rules()) {
                        Ok(v) => self.state.apply(&v, &self.topo),
                        Err(e) => Outcome::DeadLetter(e),
                    }
                }
            };
            self.settle(outcome, r.seq, &r.subject, &r.payload, &mut rows, out)?;
            self.state.last_seq = r.seq;
            n += 1;
        }
        fold_batch(&mut self.state, &rows)?;
        Ok(n)
    }

    fn rules(&self) -> TimeRules {
        TimeRules {
            lateness_s: self.cfg.lateness_s,
            future_s: self.cfg.future_s,
        }
    }

    /// A replay-clock tick moves the replay clock forward (never back).
    fn tick(&mut self, payload: &[u8]) -> Outcome {
        match serde_json::from_slice::<ClockTick>(payload) {
            Ok(t) => {
                let t = t.now.timestamp();
                self.state.replay_now = Some(self.state.replay_now.map_or(t, |n| n.max(t)));
                Outcome::Applied(None)
            }
            Err(e) => Outcome::DeadLetter(ParseError::new(
                Reason::Malformed,
                format!("not a clock tick: {e}"),
            )),
        }
    }

    /// Recomputes every node state at the clock's now and publishes those
    /// that changed, each with its version moved up by one.
    fn recompute(
        &mut self,
        run: &mut Run,
        out: &mpsc::Sender<Outbound>,
    ) -> Result<(), IngestError> {
        match self.clock.now(self.state.replay_now) {
            Some(now) => self.recompute_at(now, run, out),
            // Replay clock before any event: publish the registry's totals
            // once, as of the wall clock, so clients see the structure.
            None if run.prev.iter().all(Option::is_none) => {
                self.recompute_at(chrono::Utc::now().timestamp(), run, out)
            }
            None => Ok(()),
        }
    }

    fn recompute_at(
        &mut self,
        now: i64,
        run: &mut Run,
        out: &mpsc::Sender<Outbound>,
    ) -> Result<(), IngestError> {
        // Every node with polars at start, on a zone designation and every
        // `full_recompute_s`; every micro-grid's metrics (but only the nodes
        // they moved) when time has moved on by a tick; otherwise only what
        // the events since the last recompute touched.
        let t0 = Instant::now();
        let full = run.full_needed
            || t0.duration_since(run.last_full) >= Duration::from_secs(self.cfg.full_recompute_s);
        let refresh =
            t0.duration_since(run.last_refresh) >= Duration::from_millis(self.cfg.tick_ms.max(10));
        let scope = if full {
            Scope::Full
        } else if refresh {
            Scope::Refresh(&run.dirty)
        } else if run.dirty_any {
            Scope::Touched(&run.dirty)
        } else {
            let mut changed = Vec::new();
            self.release_held(run, &mut changed, false)?;
            if !changed.is_empty() {
                Self::send(out, Outbound::States(changed))?;
            }
            return Ok(());
        };
        let states = compute_states(
            &self.registry,
            &self.topo,
            &self.state,
            now,
            &self.cfg.status,
            &mut run.rollup,
            scope,
        )?;
        if full {
            run.full_needed = false;
            run.last_full = t0;
        }
        if full || refresh {
            run.last_refresh = t0;
        }
        run.dirty.fill(false);
        run.dirty_any = false;
        run.stages.rollup_us += us(t0);
        let t = Instant::now();
        let mut changed = Vec::new();
        let mut map_moved = false;
        let every = self.detail_every();
        let now_i = Instant::now();
        for (i, s) in states.into_iter().enumerate() {
            let Some(mut s) = s else { continue };
            if let (Some(zone), Some(&o)) = (s.zone, self.topo.ordinal.get(i)) {
                let code = cell_code(zone, s.status);
                if run.map.cells.get(&o) != Some(&code) {
                    run.map.cells.insert(o, code);
                    map_moved = true;
                }
            }
            if let Some(p) = run.prev[i].as_ref() {
                let as_of = std::mem::replace(&mut s.as_of, p.as_of.clone());
                s.seq = p.seq;
                if &s == p {
                    // Back to what was published: nothing to hold.
                    run.held[i] = None;
                    continue;
                }
                s.as_of = as_of;
            }
            // Below the streets, a node published within `detail_publish_ms`
            // waits (only its newest state is kept).
            let detail = !matches!(s.level, Level::District | Level::Street);
            let recent = run.published_at[i].is_some_and(|at| now_i.duration_since(at) < every);
            if detail && recent {
                if run.held[i].replace(s).is_none() {
                    run.held_order.push_back(i as u32);
                }
                continue;
            }
            run.held[i] = None;
            self.publish_state(run, i, s, &mut changed)?;
        }
        self.release_held(run, &mut changed, false)?;
        let buf = &mut run.buf;
        // The testing board moves on with the clock, once a tick.
        if (full || refresh)
            && let Some(board) = run.testing.update(&self.registry, &self.state, now, |i| {
                run.rollup.samples_today(i)
            })
        {
            buf.clear();
            serde_json::to_writer(&mut *buf, board)
                .map_err(|e| IngestError::Config(format!("serializing the testing board: {e}")))?;
            changed.push((state_key(TESTING_NODE), Bytes::copy_from_slice(buf)));
        }
        if map_moved {
            run.map.seq += 1;
            run.map.as_of = gridwatch_model::time::to_local_rfc3339(
                chrono::DateTime::from_timestamp(now, 0).unwrap_or_default(),
            );
            buf.clear();
            serde_json::to_writer(&mut *buf, &run.map)
                .map_err(|e| IngestError::Config(format!("serializing the map: {e}")))?;
            changed.push((state_key(MAP_NODE), Bytes::copy_from_slice(buf)));
        }
        run.stages.diff_serialize_us += us(t);
        if full {
            push_bounded(&mut run.full_ms, t0);
        } else if refresh {
            push_bounded(&mut run.refresh_ms, t0);
        }
        if !changed.is_empty() {
            Self::send(out, Outbound::States(changed))?;
        }
        Ok(())
    }

    /// Makes everything handled so far durable, then acks it: a journal
    /// append when cheap, a full snapshot (with a Parquet history part) when
    /// `snapshot_s` has passed, the journal has grown past
    /// `snapshot_journal_mb`, or on shutdown (`force`).
    fn checkpoint(
        &mut self,
        run: &mut Run,
        out: &mpsc::Sender<Outbound>,
        force: bool,
    ) -> Result<(), IngestError> {
        if self.state.last_seq == run.checkpoint_seq && !force {
            run.last_checkpoint = Instant::now();
            return Ok(());
        }
        let last_seq = self.state.last_seq;
        let snapshot = force
            || run.last_snapshot.elapsed() >= Duration::from_secs(self.cfg.snapshot_s)
            || self.journal.len() + self.journal.pending() as u64
                > self.cfg.snapshot_journal_mb << 20;
        if snapshot {
            let t = Instant::now();
            history::flush(
                &self.cfg.data_dir,
                &self.registry,
                &self.topo,
                &mut self.state,
                last_seq,
            )?;
            run.stages.history_us += us(t);
            let t = Instant::now();
            if let Some(now) = self.clock.now(self.state.replay_now) {
                self.state.prune(now, self.cfg.lateness_s);
            }
            checkpoint::save(&self.cfg.data_dir, &self.state)?;
            // The snapshot covers every journal record, committed or not.
            self.journal.reset()?;
            run.stages.snapshot_us += us(t);
            run.last_snapshot = Instant::now();
        } else {
            let t = Instant::now();
            self.journal.commit()?;
            run.stages.checkpoint_us += us(t);
        }
        run.checkpoint_seq = last_seq;
        run.last_checkpoint = Instant::now();
        if let Some(msg) = run.pending_ack.take() {
            Self::send(out, Outbound::Ack(Box::new(msg)))?;
        }
        Ok(())
    }

    fn send_meta(
        &mut self,
        run: &mut Run,
        out: &mpsc::Sender<Outbound>,
    ) -> Result<(), IngestError> {
        let mut l: Vec<f64> = run.latencies.iter().copied().collect();
        let mut f: Vec<f64> = run.full_ms.iter().copied().collect();
        let mut r: Vec<f64> = run.refresh_ms.iter().copied().collect();
        let fmt = |ts: i64| {
            chrono::DateTime::from_timestamp(ts, 0).map(gridwatch_model::time::to_local_rfc3339)
        };
        let c = &self.state.counters;
        let meta = Meta {
            applied: c.applied,
            duplicates: c.duplicates,
            redelivered: c.redelivered,
            dlq: c.dlq.clone(),
            last_seq: self.state.last_seq,
            checkpoint_seq: run.checkpoint_seq,
            consumer_lag: self.gauges.lag.load(Ordering::Relaxed),
            consumer_restarts: self.gauges.restarts.load(Ordering::Relaxed),
            batches: run.batches,
            batch_latency_ms_p50: quantile(&mut l, 0.5),
            batch_latency_ms_p99: quantile(&mut l, 0.99),
            full_recompute_ms_p50: quantile(&mut f, 0.5),
            full_recompute_ms_p99: quantile(&mut f, 0.99),
            refresh_ms_p50: quantile(&mut r, 0.5),
            refresh_ms_p99: quantile(&mut r, 0.99),
            clock_now: self.clock.now(self.state.replay_now).and_then(fmt),
            newest_event: self.state.watermark.and_then(fmt),
            last_applied_wall_ms: run.last_applied_wall_ms,
            wall_ms: chrono::Utc::now().timestamp_millis(),
            stages: run.stages.clone(),
        };
        let bytes = serde_json::to_vec(&meta)
            .map_err(|e| IngestError::Config(format!("serializing meta: {e}")))?;
        run.last_meta = Instant::now();
        Self::send(out, Outbound::Meta(Bytes::from(bytes)))
    }
}
