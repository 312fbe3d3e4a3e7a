//! The simulator: publishes a realistic Beilun day into JetStream.
//!
//! [`day::generate`] builds the day's events for a seed and date
//! (deterministic: the same seed and date give the same events and ids);
//! [`bad::inject`] mixes in a chosen share of bad events; [`run`] publishes
//! them with `Nats-Msg-Id` = event id, either in real time (the default:
//! today, the day so far at once, then as the wall clock reaches each
//! event), sped up by a factor, or at a fixed rate.

pub mod bad;
pub mod day;

use async_nats::HeaderMap;
use async_nats::jetstream;
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveTime, Timelike, Utc};
use gridwatch_model::Registry;
use gridwatch_model::event::{CLOCK_SUBJECT, ClockTick};
use gridwatch_model::time::{local_date, local_offset, start_of_local_day};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use gridwatch_runtime::RuntimeError;
use gridwatch_runtime::publish::{Pipelined, Publish};

use crate::error::IngestError;

/// Simulated seconds between replay-clock ticks, at most.
const TICK_EVERY_S: i64 = 10;

/// One message to publish.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// Event time (Unix seconds) that decides when it is sent.
    pub at: i64,
    pub subject: String,
    pub msg_id: String,
    pub payload: Bytes,
}

/// How fast to play the day.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// Each event when the wall clock reaches its time (today only).
    RealTime,
    /// Simulated time runs this many times faster than the wall clock.
    Speed(f64),
    /// A fixed number of events per second, as fast as time allows.
    Rate(f64),
}

/// Simulator settings.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    /// Local date to play; today when `None`.
    pub date: Option<NaiveDate>,
    /// Local time of day to start from (replays only); events before it are
    /// published at once.
    pub from: Option<NaiveTime>,
    pub pace: Pace,
    /// Share of extra bad events (0.0–1.0).
    pub bad_share: f64,
    /// Stop after this many messages.
    pub limit: Option<usize>,
    /// Days to play (the next days follow the first).
    pub days: u32,
}

/// Publishes the simulated day(s), each message until stored (repeats
/// are harmless: they carry the same `Nats-Msg-Id`). Returns the number of
/// messages sent; stops early, with what was sent, on `shutdown`.
pub async fn run(
    js: jetstream::Context,
    reg: &Registry,
    cfg: SimConfig,
    shutdown: CancellationToken,
) -> Result<u64, IngestError> {
    let mut sent = 0;
    match play(&js, reg, &cfg, &shutdown, &mut sent).await {
        Ok(()) | Err(RuntimeError::Cancelled) => Ok(sent),
        Err(e) => Err(e.into()),
    }
}

async fn play(
    js: &jetstream::Context,
    reg: &Registry,
    cfg: &SimConfig,
    shutdown: &CancellationToken,
    sent: &mut u64,
) -> Result<(), RuntimeError> {
    let today = local_date(Utc::now());
    let first_day = cfg.date.unwrap_or(today);
    let wall_start = std::time::Instant::now();
    let sim_origin = start_of_local_day(first_day).timestamp()
        + cfg
            .from
            .map(|t| i64::from(t.num_seconds_from_midnight()))
            .unwrap_or(0);
    let mut last_tick = i64::MIN;
    for d in 0..cfg.days.max(1) {
        let date = first_day + chrono::Days::new(u64::from(d));
        let mut msgs = day::generate(reg, cfg.seed, date);
        bad::inject(&mut msgs, cfg.seed, cfg.bad_share);
        tracing::info!(%date, messages = msgs.len(), "playing a day");
        let mut pending = Pipelined::new(2048);
        for m in msgs {
            if cfg.limit.is_some_and(|l| *sent >= l as u64) {
                pending.confirm(js, shutdown).await?;
                return Ok(());
            }
            // When is this message due, on the wall clock?
            let due = match cfg.pace {
                Pace::RealTime => {
                    let wait = m.at - Utc::now().timestamp();
                    (wait > 0).then(|| Duration::from_secs(wait as u64))
                }
                Pace::Speed(x) => {
                    let sim_secs = (m.at - sim_origin).max(0) as f64 / x.max(1e-6);
                    let target = Duration::from_secs_f64(sim_secs);
                    target.checked_sub(wall_start.elapsed())
                }
                Pace::Rate(r) => {
                    let target = Duration::from_secs_f64(*sent as f64 / r.max(1e-6));
                    target.checked_sub(wall_start.elapsed())
                }
            };
            if let Some(wait) = due.filter(|w| *w > Duration::from_millis(1)) {
                pending.confirm(js, shutdown).await?;
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            if shutdown.is_cancelled() {
                break;
            }
            // Tell a replay-clock ingest what time it is, ahead of the event;
            // every 10 s of simulated time is enough (events are in time
            // order, so none is ahead of the clock by more than that).
            if m.at >= last_tick.saturating_add(TICK_EVERY_S) {
                last_tick = m.at;
                let tick = ClockTick {
                    now: DateTime::from_timestamp(m.at, 0)
                        .unwrap_or_default()
                        .with_timezone(&local_offset()),
                };
                let mut h = HeaderMap::new();
                h.insert("Nats-Msg-Id", format!("tick-{}", m.at).as_str());
                let payload = serde_json::to_vec(&tick).unwrap_or_default();
                let p = Publish {
                    subject: CLOCK_SUBJECT.into(),
                    headers: Some(h),
                    payload: payload.into(),
                };
                pending.push(js, p, shutdown).await?;
            }
            let mut h = HeaderMap::new();
            h.insert("Nats-Msg-Id", m.msg_id.as_str());
            let p = Publish {
                subject: m.subject,
                headers: Some(h),
                payload: m.payload,
            };
            pending.push(js, p, shutdown).await?;
            *sent += 1;
        }
        pending.confirm(js, shutdown).await?;
        if shutdown.is_cancelled() {
            break;
        }
    }
    Ok(())
}
