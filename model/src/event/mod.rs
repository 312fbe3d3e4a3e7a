//! The v1 event envelope (DESIGN §3) and its kind-specific bodies.
//!
//! Parsing happens once, at the edge: [`Event::parse`] turns the bytes of a
//! message into a typed [`Event`] or a [`ParseError`] that says which DLQ
//! reason applies and why. Unknown fields are ignored. The reading
//! itself, field by field, is in `wire.rs`.

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::ids::Zone;
use crate::limits;

mod wire;
use wire::{Wire, classify};

/// Subject of replay-clock ticks (in the event stream, beside `gw.ev.>`).
pub const CLOCK_SUBJECT: &str = "gw.clock";

/// A replay-clock tick: on a replay, the simulator says what time it is, so
/// "now" follows simulated time and stays in stream order (deterministic).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockTick {
    pub now: DateTime<FixedOffset>,
}

/// The only wire version this build understands.
pub const WIRE_VERSION: u64 = 1;
/// The longest event id accepted, in characters.
pub const MAX_ID_LEN: usize = limits::ID_CHARS;
/// The longest incident note accepted, in bytes.
pub const MAX_NOTE_BYTES: usize = limits::NOTE.max_bytes;

/// The event kinds, as in the subject `gw.ev.<kind>.<street>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Patrol,
    Testing,
    Video,
    Incident,
    Zone,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 5] = [
        EventKind::Patrol,
        EventKind::Testing,
        EventKind::Video,
        EventKind::Incident,
        EventKind::Zone,
    ];
    /// The kind's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Patrol => "patrol",
            EventKind::Testing => "testing",
            EventKind::Video => "video",
            EventKind::Incident => "incident",
            EventKind::Zone => "zone",
        }
    }
    /// Parses a kind name.
    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an event cannot be applied: the DLQ reason (`gw.dlq.<reason>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Malformed,
    Version,
    Schema,
    UnknownNode,
    TooLate,
    Future,
    Conflict,
}

impl Reason {
    /// Every reason, in DESIGN order.
    pub const ALL: [Reason; 7] = [
        Reason::Malformed,
        Reason::Version,
        Reason::Schema,
        Reason::UnknownNode,
        Reason::TooLate,
        Reason::Future,
        Reason::Conflict,
    ];
    /// The reason's name, also the last subject token.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::Version => "version",
            Reason::Schema => "schema",
            Reason::UnknownNode => "unknown_node",
            Reason::TooLate => "too_late",
            Reason::Future => "future",
            Reason::Conflict => "conflict",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected event: the DLQ reason and a human-readable detail.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct ParseError {
    pub reason: Reason,
    pub detail: String,
}

impl ParseError {
    /// A rejection for `reason` with `detail`.
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
    fn schema(detail: impl Into<String>) -> Self {
        Self::new(Reason::Schema, detail)
    }
}

/// Patrol findings of one round (each within [`limits::FINDING`]), or their
/// sum over many rounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Findings {
    pub gatherings_dispersed: u64,
    pub people_persuaded: u64,
    pub venues_closed: u64,
    pub vendors_cleared: u64,
    pub violations: u64,
}

impl Findings {
    /// The counts with their field names.
    pub fn fields(&self) -> [(&'static str, u64); 5] {
        [
            ("gatherings_dispersed", self.gatherings_dispersed),
            ("people_persuaded", self.people_persuaded),
            ("venues_closed", self.venues_closed),
            ("vendors_cleared", self.vendors_cleared),
            ("violations", self.violations),
        ]
    }
    /// Field-wise sum (saturating: with the fields' limits it never needs
    /// to, and nothing from the network can make it panic).
    pub fn add(&mut self, o: &Findings) {
        self.gatherings_dispersed = self
            .gatherings_dispersed
            .saturating_add(o.gatherings_dispersed);
        self.people_persuaded = self.people_persuaded.saturating_add(o.people_persuaded);
        self.venues_closed = self.venues_closed.saturating_add(o.venues_closed);
        self.vendors_cleared = self.vendors_cleared.saturating_add(o.vendors_cleared);
        self.violations = self.violations.saturating_add(o.violations);
    }
    /// Sum of all findings.
    pub fn total(&self) -> u64 {
        self.fields()
            .iter()
            .fold(0u64, |t, (_, v)| t.saturating_add(*v))
    }
}

/// A patrol round by a micro-grid team.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patrol {
    pub team: String,
    pub persons: u32,
    pub checkpoints: u32,
    pub findings: Findings,
}

/// A testing-site report for the residents of one micro-grid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Testing {
    pub site: String,
    pub interval_s: u32,
    pub samples: u32,
    pub queue: u32,
    pub staff: u32,
}

/// Video-patrol flag categories.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagKind {
    Gathering,
    DoorBreach,
    SealedExit,
    Vendor,
    NoMask,
    Other,
}

impl FlagKind {
    /// Every flag kind.
    pub const ALL: [FlagKind; 6] = [
        FlagKind::Gathering,
        FlagKind::DoorBreach,
        FlagKind::SealedExit,
        FlagKind::Vendor,
        FlagKind::NoMask,
        FlagKind::Other,
    ];
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FlagKind::Gathering => "gathering",
            FlagKind::DoorBreach => "door_breach",
            FlagKind::SealedExit => "sealed_exit",
            FlagKind::Vendor => "vendor",
            FlagKind::NoMask => "no_mask",
            FlagKind::Other => "other",
        }
    }
}

/// Whether a flag is raised or rectified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoAction {
    Raised,
    Rectified,
    /// A supervisor reopens a rectified order after re-inspection.
    Reopened,
}

impl VideoAction {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            VideoAction::Raised => "raised",
            VideoAction::Rectified => "rectified",
            VideoAction::Reopened => "reopened",
        }
    }
}

/// A video-patrol flag raised or rectified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Video {
    pub camera: String,
    pub flag_id: String,
    pub flag: FlagKind,
    pub action: VideoAction,
    pub severity: u8,
    /// The acting user (a step taken from a tablet); empty from a camera.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub by: String,
    /// What was done, or why the order is reopened.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// Steps of the incident loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentAction {
    Reported,
    Acknowledged,
    Transferred,
    Resolved,
}

impl IncidentAction {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentAction::Reported => "reported",
            IncidentAction::Acknowledged => "acknowledged",
            IncidentAction::Transferred => "transferred",
            IncidentAction::Resolved => "resolved",
        }
    }
}

/// An incident report or a step in its handling.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub incident_id: String,
    pub action: IncidentAction,
    pub level: u8,
    pub category: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// The acting user (a step taken from a tablet).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub by: String,
    /// The node a `transferred` step hands the incident to: an ancestor of
    /// the node that holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// A zone designation on any node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneChange {
    pub zone: Zone,
    #[serde(default)]
    pub reason: String,
}

/// The kind-specific part of an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum EventBody {
    Patrol(Patrol),
    Testing(Testing),
    Video(Video),
    Incident(Incident),
    Zone(ZoneChange),
}

impl EventBody {
    /// The body's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            EventBody::Patrol(_) => EventKind::Patrol,
            EventBody::Testing(_) => EventKind::Testing,
            EventBody::Video(_) => EventKind::Video,
            EventBody::Incident(_) => EventKind::Incident,
            EventBody::Zone(_) => EventKind::Zone,
        }
    }
}

/// A parsed, schema-valid v1 event. Whether its node exists and its time is
/// acceptable is checked against the registry and the clock by ingest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub v: u64,
    pub id: String,
    pub ts: DateTime<FixedOffset>,
    pub node: String,
    #[serde(flatten)]
    pub body: EventBody,
}

impl Event {
    /// Parses the bytes of one message.
    ///
    /// Fails with `malformed` (not JSON, not an object), `version` (a `v`
    /// other than 1), or `schema` (a field missing, of the wrong type or out
    /// of range; or the kind differs from `subject_kind` when given).
    pub fn parse(bytes: &[u8], subject_kind: Option<&str>) -> Result<Event, ParseError> {
        let wire: Wire = match serde_json::from_slice(bytes) {
            Ok(w) => w,
            Err(e) => return Err(classify(bytes, e)),
        };
        let ev = wire.into_event()?;
        if let Some(sk) = subject_kind
            && sk != ev.body.kind().as_str()
        {
            return Err(ParseError::schema(format!(
                "kind `{}` does not match the subject's kind `{sk}`",
                ev.body.kind()
            )));
        }
        Ok(ev)
    }

    /// Event time in UTC.
    pub fn ts_utc(&self) -> DateTime<Utc> {
        self.ts.with_timezone(&Utc)
    }

    /// The event's kind.
    pub fn kind(&self) -> EventKind {
        self.body.kind()
    }

    /// Serializes to the wire form.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an Event always serializes")
    }
}

#[cfg(test)]
mod tests;
