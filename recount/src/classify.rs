//! Classifying the raw messages of GW_EVENTS as DESIGN §3 says, in stream
//! order: a clock tick moves the replay clock; an event is decoded with
//! the wire format's decoder (the contract, `gridwatch_model::Event`),
//! then checked against the registry (a known node; a micro-grid unless a
//! zone designation; the subject's street) and the clock (too late,
//! future). What passes goes to the fold.

use chrono::{DateTime, FixedOffset};
use gridwatch_model::event::{CLOCK_SUBJECT, ClockTick, Event, EventKind, Reason};
use gridwatch_model::{Level, Registry};
use serde_json::Value;

/// What one message is.
#[derive(Debug)]
pub enum Message {
    /// A replay-clock tick (the clock now at this time).
    Tick(DateTime<FixedOffset>),
    /// A valid event, as JSON for the fold.
    Event(Value),
    /// Refused, with the DLQ reason.
    Dead(Reason),
}

/// The classifier's clock and rules.
pub struct Classifier<'a> {
    reg: &'a Registry,
    /// The newest tick (replay clock); `None` before the first.
    pub now: Option<DateTime<FixedOffset>>,
    pub lateness_s: i64,
    pub future_s: i64,
}

impl<'a> Classifier<'a> {
    /// A classifier with ingest's default rules (24 h late, 5 min ahead).
    pub fn new(reg: &'a Registry) -> Self {
        Classifier {
            reg,
            now: None,
            lateness_s: 86_400,
            future_s: 300,
        }
    }

    /// Classifies one message of `subject`.
    pub fn classify(&mut self, subject: &str, payload: &[u8]) -> Message {
        if subject == CLOCK_SUBJECT {
            return match serde_json::from_slice::<ClockTick>(payload) {
                Ok(t) => {
                    // The clock never goes back.
                    let now = self.now.map_or(t.now, |n| n.max(t.now));
                    self.now = Some(now);
                    Message::Tick(now)
                }
                Err(_) => Message::Dead(Reason::Malformed),
            };
        }
        let mut tokens = subject.split('.');
        let (kind, street) = match (tokens.next(), tokens.next()) {
            (Some("gw"), Some("ev")) => (tokens.next(), tokens.next()),
            _ => (None, None),
        };
        let ev = match Event::parse(payload, kind) {
            Ok(ev) => ev,
            Err(e) => return Message::Dead(e.reason),
        };
        let Some(i) = self.reg.lookup(&ev.node) else {
            return Message::Dead(Reason::UnknownNode);
        };
        let info = self.reg.node(i);
        if ev.kind() != EventKind::Zone && info.level != Level::Microgrid {
            return Message::Dead(Reason::Schema);
        }
        // `beilun/<street>/…`: the subject's street must be the node's.
        if let Some(street) = street
            && ev.node.split('/').nth(1).is_some_and(|s| s != street)
        {
            return Message::Dead(Reason::Schema);
        }
        if let Some(now) = self.now {
            let (t, n) = (ev.ts.timestamp(), now.timestamp());
            if t < n - self.lateness_s {
                return Message::Dead(Reason::TooLate);
            }
            if t > n + self.future_s {
                return Message::Dead(Reason::Future);
            }
        }
        // A transfer's target must be a node (above it is the fold's to say).
        if let gridwatch_model::event::EventBody::Incident(inc) = &ev.body
            && let Some(to) = &inc.to
            && self.reg.lookup(to).is_none()
        {
            return Message::Dead(Reason::UnknownNode);
        }
        match serde_json::to_value(&ev) {
            Ok(v) => Message::Event(v),
            Err(_) => Message::Dead(Reason::Malformed),
        }
    }
}
