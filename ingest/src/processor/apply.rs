//! Applying messages: each one validated and applied in stream order (or a
//! replay-clock tick, or a dead letter), journalled, its outcome booked;
//! then the batch's counting rows folded with polars. Also the replay of
//! the journal at start, through the same booking.

use async_nats::jetstream::Message;
use bytes::Bytes;
use gridwatch_model::event::{CLOCK_SUBJECT, ClockTick, EventKind, ParseError, Reason};
use std::time::Instant;
use tokio::sync::mpsc;

use super::{Processor, Stages, stats::us};
use crate::aggregate::fold_batch;
use crate::error::IngestError;
use crate::journal::{self, Kind};
use crate::pipeline::{DeadLetter, Outbound};
use crate::state::{Outcome, PendingDead, Row};
use crate::validate::{TimeRules, Valid, validate};

/// What the events since the last recompute touched.
pub struct Dirty {
    /// Nodes an event changed (with ancestors), indexed like the registry.
    pub nodes: Vec<bool>,
    pub any: bool,
    /// A change that reaches beyond its micro-grid (a zone designation):
    /// every node is recomputed.
    pub full_needed: bool,
}

impl Dirty {
    /// Everything needs computing once at start.
    pub fn new(nodes: usize) -> Dirty {
        Dirty {
            nodes: vec![false; nodes],
            any: false,
            full_needed: true,
        }
    }

    /// After a recompute: nothing is dirty.
    pub fn clear(&mut self) {
        self.nodes.fill(false);
        self.any = false;
    }
}

impl Processor {
    pub(super) fn apply_batch(
        &mut self,
        batch: Vec<Message>,
        st: &mut Stages,
        out: &mpsc::Sender<Outbound>,
    ) -> Result<(), IngestError> {
        let t = Instant::now();
        let rules = self.rules();
        let mut rows = Vec::with_capacity(batch.len());
        let mut applied_any = false;
        for msg in batch {
            let Ok(info) = msg.info() else { continue };
            let seq = info.stream_sequence;
            if seq <= self.live.last_seq {
                self.live.counters.redelivered += 1;
                continue;
            }
            let subject = msg.subject.as_str();
            let (outcome, kind) = if subject == CLOCK_SUBJECT {
                (self.tick(&msg.payload), Kind::Tick)
            } else {
                let now = self.clock.now(self.live.replay_now);
                match validate(subject, &msg.payload, &self.registry, now, rules) {
                    Ok(v) => {
                        let outcome = self.live.apply(&v, &self.topo);
                        if matches!(outcome, Outcome::Applied(_)) {
                            self.mark_dirty(&mut st.dirty, &v);
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
            self.record_action(&msg, &outcome);
            self.journal.push(kind, seq, subject, detail, &msg.payload);
            applied_any |= matches!(outcome, Outcome::Applied(Some(_)));
            self.book(outcome, seq, subject, &msg.payload, &mut rows, out)?;
            self.live.last_seq = seq;
            st.durable.pending_ack = Some(msg);
        }
        if applied_any {
            st.stats.last_applied_wall_ms = Some(chrono::Utc::now().timestamp_millis());
        }
        st.stats.stages.decode_validate_apply_us += us(t);
        let t = Instant::now();
        fold_batch(&mut self.live, &rows)?;
        st.emit.board.fold(&rows);
        st.stats.stages.polars_batch_us += us(t);
        Ok(())
    }

    /// Records what became of a tablet's action (an incident or video event
    /// the backend sent, its `Nats-Msg-Id` beginning with
    /// [`ACTION_ID_PREFIX`](gridwatch_model::api::ACTION_ID_PREFIX)), for
    /// the backend to tell the tablet. A duplicate was applied before.
    fn record_action(&self, msg: &Message, outcome: &Outcome) {
        let subject = msg.subject.as_str();
        if !(subject.starts_with("gw.ev.incident.") || subject.starts_with("gw.ev.video.")) {
            return;
        }
        let Some(id) = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
        else {
            return;
        };
        if !id
            .as_str()
            .starts_with(gridwatch_model::api::ACTION_ID_PREFIX)
        {
            return;
        }
        self.items.record(
            id.as_str(),
            match outcome {
                Outcome::Applied(_) | Outcome::Duplicate => gridwatch_model::api::Outcome::Applied,
                Outcome::DeadLetter(e) => gridwatch_model::api::Outcome::Rejected {
                    reason: e.reason.as_str().to_string(),
                    detail: e.detail.clone(),
                },
            },
        );
    }

    /// Marks what an applied event changed: its micro-grid and the nodes
    /// above it, or everything for a zone designation.
    fn mark_dirty(&self, dirty: &mut Dirty, v: &Valid) {
        match &self.registry.node(v.node).mg {
            Some(mg) if v.event.kind() != EventKind::Zone => {
                for &a in &mg.path {
                    dirty.nodes[a as usize] = true;
                }
                dirty.any = true;
            }
            _ => dirty.full_needed = true,
        }
    }

    /// Books one message's outcome: its counting row, or a dead letter.
    fn book(
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
                self.live.count_dlq(e.reason);
                tracing::debug!(seq, reason = %e.reason, detail = %e.detail, "dead letter");
                let d = PendingDead {
                    seq,
                    subject: subject.to_string(),
                    reason: e.reason,
                    detail: e.detail,
                    payload: payload.to_vec(),
                };
                self.hand_over(&d, out)?;
                self.live.unsettled_dead.push_back(d);
            }
        }
        Ok(())
    }

    /// Hands a dead letter to the publisher.
    fn hand_over(&self, d: &PendingDead, out: &mpsc::Sender<Outbound>) -> Result<(), IngestError> {
        self.dead.handed_over();
        Self::send(
            out,
            Outbound::Dead(DeadLetter {
                seq: d.seq,
                subject: d.subject.clone(),
                payload: Bytes::from(d.payload.clone()),
                reason: d.reason.as_str(),
                detail: d.detail.clone(),
            }),
        )
    }

    /// Forgets the dead letters the publisher has settled since the last
    /// call (it settles them in the order they were handed over).
    pub(super) fn forget_settled(&mut self, dropped: &mut u64) {
        let settled = self.dead.settled();
        while *dropped < settled && self.live.unsettled_dead.pop_front().is_some() {
            *dropped += 1;
        }
    }

    /// Replays the journal's records past the snapshot: the state becomes
    /// exactly the one last checkpointed. The snapshot's unsettled dead
    /// letters go out first, then the journal's (their `Nats-Msg-Id` lets
    /// JetStream drop the copies it already has).
    /// Returns how many records were replayed.
    pub fn replay(
        &mut self,
        records: Vec<journal::Record>,
        out: &mpsc::Sender<Outbound>,
    ) -> Result<usize, IngestError> {
        let mut rows = Vec::new();
        let mut n = 0;
        for d in &self.live.unsettled_dead {
            self.hand_over(d, out)?;
        }
        for r in records {
            if r.seq <= self.live.last_seq {
                continue;
            }
            let outcome = match r.kind {
                Kind::Tick => self.tick(&r.payload),
                Kind::Dead(reason) => Outcome::DeadLetter(ParseError::new(reason, r.detail)),
                // It passed validation when it came; the time rules depended
                // on the clock then, so they are not applied again.
                Kind::Event => {
                    match validate(&r.subject, &r.payload, &self.registry, None, self.rules()) {
                        Ok(v) => self.live.apply(&v, &self.topo),
                        Err(e) => Outcome::DeadLetter(e),
                    }
                }
            };
            self.book(outcome, r.seq, &r.subject, &r.payload, &mut rows, out)?;
            self.live.last_seq = r.seq;
            n += 1;
        }
        fold_batch(&mut self.live, &rows)?;
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
                self.live.replay_now = Some(self.live.replay_now.map_or(t, |n| n.max(t)));
                Outcome::Applied(None)
            }
            Err(e) => Outcome::DeadLetter(ParseError::new(
                Reason::Malformed,
                format!("not a clock tick: {e}"),
            )),
        }
    }
}
