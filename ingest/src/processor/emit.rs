//! Emitting node states: each recompute's changed states go to the
//! publisher at their next version. District and street states go with
//! every batch; a community, grid or micro-grid published within
//! `detail_publish_ms` is held (only its newest state kept) and released
//! when that time has passed. The status map and the testing board are
//! built here too.

use bytes::Bytes;
use gridwatch_model::kv::node_key;
use gridwatch_model::state::{MAP_NODE, MapState, TESTING_NODE, cell_code};
use gridwatch_model::{Level, NodeState, Registry};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use super::{Processor, Stages, stats::us};
use crate::aggregate::{RollupCache, Scope, compute_states};
use crate::board::Board;
use crate::error::IngestError;
use crate::history::StateLog;
use crate::items::ItemIndex;
use crate::pipeline::Outbound;
use crate::state::{LiveState, Topology};

/// Changed states to publish: (key, JSON).
type Changed = Vec<(String, Bytes)>;

/// What was published, what is held back, and the caches recomputes use.
pub struct Emitter {
    /// Each node's state as last published.
    prev: Vec<Option<NodeState>>,
    /// When each node's state was last published.
    published_at: Vec<Option<Instant>>,
    /// Changed community, grid and micro-grid states waiting for
    /// `detail_publish_ms` to pass since their node's last publish.
    /// (the state, the clock second it was computed at).
    held: Vec<Option<(NodeState, i64)>>,
    /// The nodes in `held` (an index may repeat or be stale: `held` decides).
    held_order: VecDeque<u32>,
    /// One serialization buffer for every state.
    buf: Vec<u8>,
    /// The status map as last published (cells by micro-grid ordinal).
    map: MapState,
    /// The testing board (series per 10 minutes, busiest sites).
    pub board: Board,
    /// Micro-grid metrics between recomputes.
    rollup: RollupCache,
    /// Last time every node was recomputed with polars.
    last_full: Instant,
    /// Last time every micro-grid's metrics moved on with the clock.
    last_refresh: Instant,
    /// Every state published, for the `states` history table.
    pub log: StateLog,
}

fn serialize<T: serde::Serialize>(
    buf: &mut Vec<u8>,
    what: &str,
    v: &T,
) -> Result<Bytes, IngestError> {
    buf.clear();
    serde_json::to_writer(&mut *buf, v)
        .map_err(|e| IngestError::Config(format!("serializing {what}: {e}")))?;
    Ok(Bytes::copy_from_slice(buf))
}

impl Emitter {
    pub fn new(
        reg: &Registry,
        topo: &Topology,
        live: &LiveState,
        published: &HashMap<String, u64>,
        items: ItemIndex,
    ) -> Emitter {
        let n = reg.nodes.len();
        Emitter {
            prev: vec![None; n],
            published_at: vec![None; n],
            held: vec![None; n],
            held_order: VecDeque::new(),
            buf: Vec::with_capacity(64 << 10),
            map: MapState {
                node: MAP_NODE.to_string(),
                seq: published.get(MAP_NODE).copied().unwrap_or(0),
                ..Default::default()
            },
            board: Board::new(
                reg,
                topo,
                live,
                published.get(TESTING_NODE).copied().unwrap_or(0),
            ),
            rollup: RollupCache::new(reg, topo, items),
            last_full: Instant::now(),
            last_refresh: Instant::now(),
            log: StateLog::default(),
        }
    }

    /// How long until the first held state falls due (`every` after its
    /// node's last publish); `None` when nothing is held.
    pub fn next_due(&self, every: Duration) -> Option<Duration> {
        self.held_order
            .iter()
            .filter_map(|&i| self.published_at[i as usize])
            .min()
            .map(|at| (at + every).saturating_duration_since(Instant::now()))
    }

    /// Serializes a changed state at its next version and books it as
    /// published; the state log keeps it at `ts`, its clock second.
    fn publish(
        &mut self,
        i: usize,
        (mut s, ts): (NodeState, i64),
        published: &HashMap<String, u64>,
        changed: &mut Changed,
    ) -> Result<(), IngestError> {
        s.seq = match &self.prev[i] {
            Some(p) => p.seq + 1,
            None => published.get(&s.node).copied().unwrap_or(0) + 1,
        };
        let bytes = serialize(&mut self.buf, "a state", &s)?;
        self.log.record(&s.node, ts, s.seq, bytes.clone());
        changed.push((node_key(&s.node), bytes));
        self.prev[i] = Some(s);
        self.published_at[i] = Some(Instant::now());
        Ok(())
    }

    /// Publishes the held states whose node's `every` has passed (all of
    /// them when `all`).
    fn release_held(
        &mut self,
        every: Duration,
        published: &HashMap<String, u64>,
        changed: &mut Changed,
        all: bool,
    ) -> Result<(), IngestError> {
        let now = Instant::now();
        let mut due = Vec::new();
        let (held, published_at) = (&self.held, &self.published_at);
        self.held_order.retain(|&i| {
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
            if let Some(s) = self.held[i].take() {
                self.publish(i, s, published, changed)?;
            }
        }
        Ok(())
    }

    /// Whether any state was ever published (at start, none).
    fn published_any(&self) -> bool {
        self.prev.iter().any(Option::is_some)
    }
}

impl Processor {
    /// Sends every held state now (before a statistics record, which says
    /// which events every state reflects, and at shutdown).
    pub(super) fn flush_held(
        &self,
        st: &mut Stages,
        out: &mpsc::Sender<Outbound>,
    ) -> Result<(), IngestError> {
        let mut changed = Vec::new();
        st.emit
            .release_held(self.detail_every(), &self.published, &mut changed, true)?;
        if !changed.is_empty() {
            Self::send(out, Outbound::States(changed))?;
        }
        Ok(())
    }

    /// Recomputes the node states at the clock's now and publishes those
    /// that changed, each with its version moved up by one.
    pub(super) fn recompute(
        &mut self,
        st: &mut Stages,
        out: &mpsc::Sender<Outbound>,
    ) -> Result<(), IngestError> {
        match self.clock.now(self.live.replay_now) {
            Some(now) => self.recompute_at(now, st, out),
            // Replay clock before any event: publish the registry's totals
            // once, as of the wall clock, so clients see the structure.
            None if !st.emit.published_any() => {
                self.recompute_at(chrono::Utc::now().timestamp(), st, out)
            }
            None => Ok(()),
        }
    }

    fn recompute_at(
        &mut self,
        now: i64,
        st: &mut Stages,
        out: &mpsc::Sender<Outbound>,
    ) -> Result<(), IngestError> {
        // Every node with polars at start, on a zone designation and every
        // `full_recompute_s`; every micro-grid's metrics (but only the nodes
        // they moved) when time has moved on by a tick; otherwise only what
        // the events since the last recompute touched.
        let t0 = Instant::now();
        let every = self.detail_every();
        let em = &mut st.emit;
        let full = st.dirty.full_needed
            || t0.duration_since(em.last_full) >= Duration::from_secs(self.cfg.full_recompute_s);
        let refresh =
            t0.duration_since(em.last_refresh) >= Duration::from_millis(self.cfg.tick_ms.max(10));
        let scope = if full {
            Scope::Full
        } else if refresh {
            Scope::Refresh(&st.dirty.nodes)
        } else if st.dirty.any {
            Scope::Touched(&st.dirty.nodes)
        } else {
            let mut changed = Vec::new();
            em.release_held(every, &self.published, &mut changed, false)?;
            if !changed.is_empty() {
                Self::send(out, Outbound::States(changed))?;
            }
            return Ok(());
        };
        let states = compute_states(
            &self.registry,
            &self.topo,
            &self.live,
            now,
            &self.cfg.status,
            &mut em.rollup,
            scope,
        )?;
        if full {
            st.dirty.full_needed = false;
            em.last_full = t0;
        }
        if full || refresh {
            em.last_refresh = t0;
        }
        st.dirty.clear();
        st.stats.stages.rollup_us += us(t0);
        let t = Instant::now();
        let mut changed = Vec::new();
        let mut map_moved = false;
        let now_i = Instant::now();
        for (i, s) in states.into_iter().enumerate() {
            let Some(mut s) = s else { continue };
            if let (Some(zone), Some(&o)) = (s.zone, self.topo.ordinal.get(i)) {
                let code = cell_code(zone, s.status);
                if em.map.cells.get(&o) != Some(&code) {
                    em.map.cells.insert(o, code);
                    map_moved = true;
                }
            }
            if let Some(p) = em.prev[i].as_ref() {
                let as_of = std::mem::replace(&mut s.as_of, p.as_of.clone());
                s.seq = p.seq;
                if &s == p {
                    // Back to what was published: nothing to hold.
                    em.held[i] = None;
                    continue;
                }
                s.as_of = as_of;
            }
            // Below the streets, a node published within `detail_publish_ms`
            // waits (only its newest state is kept).
            let detail = !matches!(s.level, Level::District | Level::Street);
            let recent = em.published_at[i].is_some_and(|at| now_i.duration_since(at) < every);
            if detail && recent {
                if em.held[i].replace((s, now)).is_none() {
                    em.held_order.push_back(i as u32);
                }
                continue;
            }
            em.held[i] = None;
            em.publish(i, (s, now), &self.published, &mut changed)?;
        }
        em.release_held(every, &self.published, &mut changed, false)?;
        // The testing board moves on with the clock, once a tick.
        let rollup = &em.rollup;
        if (full || refresh)
            && let Some(board) = em
                .board
                .update(&self.registry, &self.live, now, |i| rollup.samples_today(i))
        {
            let bytes = serialize(&mut em.buf, "the testing board", board)?;
            em.log.record(TESTING_NODE, now, board.seq, bytes.clone());
            changed.push((node_key(TESTING_NODE), bytes));
        }
        if map_moved {
            em.map.seq += 1;
            em.map.as_of = gridwatch_model::time::to_local_rfc3339(
                chrono::DateTime::from_timestamp(now, 0).unwrap_or_default(),
            );
            let bytes = serialize(&mut em.buf, "the map", &em.map)?;
            em.log.record(MAP_NODE, now, em.map.seq, bytes.clone());
            changed.push((node_key(MAP_NODE), bytes));
        }
        st.stats.stages.diff_serialize_us += us(t);
        if full {
            st.stats.full_done(t0);
        } else if refresh {
            st.stats.refresh_done(t0);
        }
        if !changed.is_empty() {
            Self::send(out, Outbound::States(changed))?;
        }
        Ok(())
    }
}
