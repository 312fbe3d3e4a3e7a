//! The v1 event envelope (DESIGN §3) and its kind-specific bodies.
//!
//! Parsing happens once, at the edge: [`Event::parse`] turns the bytes of a
//! message into a typed [`Event`] or a [`ParseError`] that says which DLQ
//! reason applies and why. Unknown fields are ignored.

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::ids::Zone;

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
/// The longest event id accepted.
pub const MAX_ID_LEN: usize = 64;
/// The longest incident note accepted, in bytes.
pub const MAX_NOTE_BYTES: usize = 2048;

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

/// Patrol findings of one round; every count ≥ 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Findings {
    pub gatherings_dispersed: u32,
    pub people_persuaded: u32,
    pub venues_closed: u32,
    pub vendors_cleared: u32,
    pub violations: u32,
}

impl Findings {
    /// Field-wise sum.
    pub fn add(&mut self, o: &Findings) {
        self.gatherings_dispersed += o.gatherings_dispersed;
        self.people_persuaded += o.people_persuaded;
        self.venues_closed += o.venues_closed;
        self.vendors_cleared += o.vendors_cleared;
        self.violations += o.violations;
    }
    /// Sum of all findings.
    pub fn total(&self) -> u64 {
        u64::from(self.gatherings_dispersed)
            + u64::from(self.people_persuaded)
            + u64::from(self.venues_closed)
            + u64::from(self.vendors_cleared)
            + u64::from(self.violations)
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
}

/// A video-patrol flag raised or rectified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Video {
    pub camera: String,
    pub flag_id: String,
    pub flag: FlagKind,
    pub action: VideoAction,
    pub severity: u8,
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

/// An incident report or a step in its handling.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub incident_id: String,
    pub action: IncidentAction,
    pub level: u8,
    pub category: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
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

/// Every field any kind may carry, all optional: deserialized in one pass
/// without buffering, then checked field by field so errors name the field.
#[derive(Deserialize)]
struct Wire {
    v: Option<u64>,
    kind: Option<String>,
    id: Option<String>,
    ts: Option<String>,
    node: Option<String>,
    // patrol
    team: Option<String>,
    persons: Option<u32>,
    checkpoints: Option<u32>,
    findings: Option<Findings>,
    // testing
    site: Option<String>,
    interval_s: Option<u32>,
    samples: Option<u32>,
    queue: Option<u32>,
    staff: Option<u32>,
    // video
    camera: Option<String>,
    flag_id: Option<String>,
    flag: Option<FlagKind>,
    action: Option<String>,
    severity: Option<u8>,
    // incident
    incident_id: Option<String>,
    level: Option<u8>,
    category: Option<String>,
    note: Option<String>,
    // zone
    zone: Option<Zone>,
    reason: Option<String>,
}

fn need<T>(v: Option<T>, kind: &str, field: &str) -> Result<T, ParseError> {
    v.ok_or_else(|| ParseError::schema(format!("{kind}: field `{field}` is missing")))
}

fn nonempty(s: String, kind: &str, field: &str) -> Result<String, ParseError> {
    if s.is_empty() {
        Err(ParseError::schema(format!(
            "{kind}: field `{field}` must not be empty"
        )))
    } else {
        Ok(s)
    }
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

/// Decides the reason for a payload serde could not read as a [`Wire`].
fn classify(bytes: &[u8], err: serde_json::Error) -> ParseError {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ParseError::new(Reason::Malformed, format!("not JSON: {err}"))
        }
        Category::Data => match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(serde_json::Value::Object(map)) => match map.get("v") {
                Some(v) if v.as_u64() != Some(WIRE_VERSION) => {
                    ParseError::new(Reason::Version, format!("unknown version v={v}"))
                }
                _ => ParseError::schema(err.to_string()),
            },
            Ok(_) => ParseError::new(Reason::Malformed, "not a JSON object"),
            Err(e) => ParseError::new(Reason::Malformed, format!("not JSON: {e}")),
        },
    }
}

impl Wire {
    fn into_event(self) -> Result<Event, ParseError> {
        let v = self
            .v
            .ok_or_else(|| ParseError::new(Reason::Version, "field `v` is missing"))?;
        if v != WIRE_VERSION {
            return Err(ParseError::new(
                Reason::Version,
                format!("unknown version v={v}"),
            ));
        }
        let kind_s = need(self.kind, "event", "kind")?;
        let kind = EventKind::parse(&kind_s)
            .ok_or_else(|| ParseError::schema(format!("unknown kind `{kind_s}`")))?;
        let k = kind.as_str();
        let id = need(self.id, k, "id")?;
        if id.is_empty() || id.chars().count() > MAX_ID_LEN {
            return Err(ParseError::schema(format!(
                "{k}: field `id` must be 1–{MAX_ID_LEN} characters"
            )));
        }
        let ts_s = need(self.ts, k, "ts")?;
        let ts = DateTime::parse_from_rfc3339(&ts_s).map_err(|e| {
            ParseError::schema(format!(
                "{k}: field `ts` is not RFC 3339 with an offset: {e}"
            ))
        })?;
        let node = nonempty(need(self.node, k, "node")?, k, "node")?;
        let body = match kind {
            EventKind::Patrol => {
                let persons = need(self.persons, k, "persons")?;
                if persons == 0 {
                    return Err(ParseError::schema("patrol: field `persons` must be ≥ 1"));
                }
                EventBody::Patrol(Patrol {
                    team: nonempty(need(self.team, k, "team")?, k, "team")?,
                    persons,
                    checkpoints: self.checkpoints.unwrap_or(0),
                    findings: self.findings.unwrap_or_default(),
                })
            }
            EventKind::Testing => {
                let interval_s = need(self.interval_s, k, "interval_s")?;
                if interval_s == 0 {
                    return Err(ParseError::schema(
                        "testing: field `interval_s` must be > 0",
                    ));
                }
                EventBody::Testing(Testing {
                    site: nonempty(need(self.site, k, "site")?, k, "site")?,
                    interval_s,
                    samples: need(self.samples, k, "samples")?,
                    queue: self.queue.unwrap_or(0),
                    staff: self.staff.unwrap_or(0),
                })
            }
            EventKind::Video => {
                let action = match need(self.action, k, "action")?.as_str() {
                    "raised" => VideoAction::Raised,
                    "rectified" => VideoAction::Rectified,
                    other => {
                        return Err(ParseError::schema(format!(
                            "video: field `action` must be raised or rectified, not `{other}`"
                        )));
                    }
                };
                let (flag, severity) = match action {
                    VideoAction::Raised => (
                        need(self.flag, k, "flag")?,
                        need(self.severity, k, "severity")?,
                    ),
                    VideoAction::Rectified => (
                        self.flag.unwrap_or(FlagKind::Other),
                        self.severity.unwrap_or(1),
                    ),
                };
                if !(1..=3).contains(&severity) {
                    return Err(ParseError::schema("video: field `severity` must be 1–3"));
                }
                EventBody::Video(Video {
                    camera: self.camera.unwrap_or_default(),
                    flag_id: nonempty(need(self.flag_id, k, "flag_id")?, k, "flag_id")?,
                    flag,
                    action,
                    severity,
                })
            }
            EventKind::Incident => {
                let action = match need(self.action, k, "action")?.as_str() {
                    "reported" => IncidentAction::Reported,
                    "acknowledged" => IncidentAction::Acknowledged,
                    "transferred" => IncidentAction::Transferred,
                    "resolved" => IncidentAction::Resolved,
                    other => {
                        return Err(ParseError::schema(format!(
                            "incident: field `action` must be reported, acknowledged, transferred or resolved, not `{other}`"
                        )));
                    }
                };
                let level = match action {
                    IncidentAction::Reported => need(self.level, k, "level")?,
                    _ => self.level.unwrap_or(1),
                };
                if !(1..=4).contains(&level) {
                    return Err(ParseError::schema("incident: field `level` must be 1–4"));
                }
                let note = self.note.unwrap_or_default();
                if note.len() > MAX_NOTE_BYTES {
                    return Err(ParseError::schema(format!(
                        "incident: field `note` is {} bytes, over {MAX_NOTE_BYTES}",
                        note.len()
                    )));
                }
                EventBody::Incident(Incident {
                    incident_id: nonempty(
                        need(self.incident_id, k, "incident_id")?,
                        k,
                        "incident_id",
                    )?,
                    action,
                    level,
                    category: match action {
                        IncidentAction::Reported => need(self.category, k, "category")?,
                        _ => self.category.unwrap_or_default(),
                    },
                    note,
                })
            }
            EventKind::Zone => EventBody::Zone(ZoneChange {
                zone: need(self.zone, k, "zone")?,
                reason: self.reason.unwrap_or_default(),
            }),
        };
        Ok(Event {
            v,
            id,
            ts,
            node,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(bytes: &[u8]) -> Reason {
        match Event::parse(bytes, None) {
            Ok(e) => panic!("expected an error, parsed {e:?}"),
            Err(e) => e.reason,
        }
    }

    const PATROL: &str = r#"{"v":1,"kind":"patrol","id":"p1","ts":"2022-10-15T09:30:00+08:00","node":"beilun/daqi/x/g01/m01","team":"t","persons":3,"checkpoints":4,"findings":{"vendors_cleared":2},"extra":"ignored"}"#;

    #[test]
    fn parses_and_roundtrips_a_patrol() {
        let ev = Event::parse(PATROL.as_bytes(), Some("patrol")).expect("valid patrol");
        let EventBody::Patrol(p) = &ev.body else {
            panic!("not a patrol")
        };
        assert_eq!(p.persons, 3);
        assert_eq!(p.findings.vendors_cleared, 2);
        let again = Event::parse(&ev.to_json(), None).expect("roundtrip");
        assert_eq!(again, ev);
    }

    #[test]
    fn classifies_bad_events() {
        assert_eq!(reason(b"{not json"), Reason::Malformed);
        assert_eq!(reason(b"[1,2]"), Reason::Malformed);
        assert_eq!(reason(b"\xff\xfe"), Reason::Malformed);
        assert_eq!(reason(br#"{"v":2,"kind":"patrol"}"#), Reason::Version);
        assert_eq!(reason(br#"{"v":"2","kind":"patrol"}"#), Reason::Version);
        assert_eq!(
            reason(
                &PATROL
                    .replace(r#""persons":3"#, r#""persons":0"#)
                    .into_bytes()
            ),
            Reason::Schema
        );
        assert_eq!(
            reason(
                &PATROL
                    .replace(r#""persons":3"#, r#""persons":"three""#)
                    .into_bytes()
            ),
            Reason::Schema
        );
        assert_eq!(
            reason(&PATROL.replace("+08:00", "").into_bytes()),
            Reason::Schema
        );
        let long_id = "x".repeat(65);
        assert_eq!(
            reason(
                &PATROL
                    .replace(r#""p1""#, &format!("\"{long_id}\""))
                    .into_bytes()
            ),
            Reason::Schema
        );
        let err = Event::parse(PATROL.as_bytes(), Some("video")).expect_err("kind mismatch");
        assert_eq!(err.reason, Reason::Schema);
    }
}
