//! The v1 event envelope (DESIGN §3) and its kind-specific bodies.
//!
//! Parsing happens once, at the edge: [`Event::parse`] turns the bytes of a
//! message into a typed [`Event`] or a [`ParseError`] that says which DLQ
//! reason applies and why. Unknown fields are ignored.

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::ids::Zone;
use crate::limits::{self, Length, Range};

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
    persons: Option<u64>,
    checkpoints: Option<u64>,
    findings: Option<Findings>,
    // testing
    site: Option<String>,
    interval_s: Option<u64>,
    samples: Option<u64>,
    queue: Option<u64>,
    staff: Option<u64>,
    // video
    camera: Option<String>,
    flag_id: Option<String>,
    flag: Option<FlagKind>,
    action: Option<String>,
    severity: Option<u64>,
    // incident
    incident_id: Option<String>,
    level: Option<u64>,
    category: Option<String>,
    note: Option<String>,
    by: Option<String>,
    to: Option<String>,
    // zone
    zone: Option<Zone>,
    reason: Option<String>,
}

fn need<T>(v: Option<T>, kind: &str, field: &str) -> Result<T, ParseError> {
    v.ok_or_else(|| ParseError::schema(format!("{kind}: field `{field}` is missing")))
}

/// `v` inside `r`, as the field's type (every range fits it).
fn within<T: TryFrom<u64>>(r: Range, v: u64) -> Result<T, ParseError> {
    let v = r.check(v).map_err(ParseError::schema)?;
    T::try_from(v).map_err(|_| ParseError::schema(format!("field `{}` is out of range", r.field)))
}

/// `s` when at most `l` long.
fn short(l: Length, s: String) -> Result<String, ParseError> {
    l.check(&s).map_err(ParseError::schema)?;
    Ok(s)
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
        let node = short(
            limits::NODE,
            nonempty(need(self.node, k, "node")?, k, "node")?,
        )?;
        let body = match kind {
            EventKind::Patrol => {
                let findings = self.findings.unwrap_or_default();
                for (field, v) in findings.fields() {
                    limits::FINDING.check(v).map_err(|_| {
                        ParseError::schema(format!(
                            "patrol: field `findings.{field}` is {v}, outside {}–{}",
                            limits::FINDING.min,
                            limits::FINDING.max
                        ))
                    })?;
                }
                EventBody::Patrol(Patrol {
                    team: short(
                        limits::TEAM,
                        nonempty(need(self.team, k, "team")?, k, "team")?,
                    )?,
                    persons: within(limits::PERSONS, need(self.persons, k, "persons")?)?,
                    checkpoints: within(limits::CHECKPOINTS, self.checkpoints.unwrap_or(0))?,
                    findings,
                })
            }
            EventKind::Testing => EventBody::Testing(Testing {
                site: short(
                    limits::SITE,
                    nonempty(need(self.site, k, "site")?, k, "site")?,
                )?,
                interval_s: within(limits::INTERVAL_S, need(self.interval_s, k, "interval_s")?)?,
                samples: within(limits::SAMPLES, need(self.samples, k, "samples")?)?,
                queue: within(limits::QUEUE, self.queue.unwrap_or(0))?,
                staff: within(limits::STAFF, self.staff.unwrap_or(0))?,
            }),
            EventKind::Video => {
                let action = match need(self.action, k, "action")?.as_str() {
                    "raised" => VideoAction::Raised,
                    "rectified" => VideoAction::Rectified,
                    "reopened" => VideoAction::Reopened,
                    other => {
                        return Err(ParseError::schema(format!(
                            "video: field `action` must be raised, rectified or reopened, not `{other}`"
                        )));
                    }
                };
                let (flag, severity) = match action {
                    VideoAction::Raised => (
                        need(self.flag, k, "flag")?,
                        need(self.severity, k, "severity")?,
                    ),
                    VideoAction::Rectified | VideoAction::Reopened => (
                        self.flag.unwrap_or(FlagKind::Other),
                        self.severity.unwrap_or(1),
                    ),
                };
                EventBody::Video(Video {
                    camera: short(limits::CAMERA, self.camera.unwrap_or_default())?,
                    flag_id: short(
                        limits::FLAG_ID,
                        nonempty(need(self.flag_id, k, "flag_id")?, k, "flag_id")?,
                    )?,
                    flag,
                    action,
                    severity: within(limits::SEVERITY, severity)?,
                    by: short(limits::VIDEO_BY, self.by.unwrap_or_default())?,
                    note: short(limits::VIDEO_NOTE, self.note.unwrap_or_default())?,
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
                EventBody::Incident(Incident {
                    incident_id: short(
                        limits::INCIDENT_ID,
                        nonempty(need(self.incident_id, k, "incident_id")?, k, "incident_id")?,
                    )?,
                    action,
                    level: within(limits::LEVEL, level)?,
                    category: short(
                        limits::CATEGORY,
                        match action {
                            IncidentAction::Reported => need(self.category, k, "category")?,
                            _ => self.category.unwrap_or_default(),
                        },
                    )?,
                    note: {
                        let note = short(limits::NOTE, self.note.unwrap_or_default())?;
                        if action == IncidentAction::Resolved && note.trim().is_empty() {
                            return Err(ParseError::schema(
                                "incident: a `resolved` step needs a `note` saying how",
                            ));
                        }
                        note
                    },
                    by: short(limits::INCIDENT_BY, self.by.unwrap_or_default())?,
                    to: match (action, self.to) {
                        (IncidentAction::Transferred, None) => {
                            return Err(ParseError::schema(
                                "incident: a `transferred` step needs `to`, the node it goes to",
                            ));
                        }
                        (_, to) => to.map(|t| short(limits::TO, t)).transpose()?,
                    },
                })
            }
            EventKind::Zone => EventBody::Zone(ZoneChange {
                zone: need(self.zone, k, "zone")?,
                reason: short(limits::REASON, self.reason.unwrap_or_default())?,
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

    /// A valid event of `kind` with every field that has a limit present.
    fn full(kind: &str) -> serde_json::Value {
        let base = serde_json::json!({"v":1,"kind":kind,"id":"e1","ts":"2022-10-15T09:30:00+08:00","node":"beilun/daqi/x/g01/m01"});
        let extra = match kind {
            "patrol" => {
                serde_json::json!({"team":"t","persons":3,"checkpoints":4,"findings":{"gatherings_dispersed":1,"people_persuaded":1,"venues_closed":1,"vendors_cleared":1,"violations":1}})
            }
            "testing" => {
                serde_json::json!({"site":"s","interval_s":600,"samples":10,"queue":2,"staff":3})
            }
            "video" => {
                serde_json::json!({"camera":"c","flag_id":"f","flag":"gathering","action":"raised","severity":2,"by":"u","note":"n"})
            }
            "incident" => {
                serde_json::json!({"incident_id":"i","action":"reported","level":2,"category":"c","note":"n","by":"u","to":"beilun"})
            }
            _ => serde_json::json!({"zone":"sealed","reason":"r"}),
        };
        let mut v = base;
        for (k, x) in extra.as_object().expect("object") {
            v[k] = x.clone();
        }
        v
    }

    fn parse_with(kind: &str, field: &str, value: serde_json::Value) -> Result<Event, ParseError> {
        let mut v = full(kind);
        match field.strip_prefix("findings.") {
            Some(f) => v["findings"][f] = value,
            None => v[field] = value,
        }
        Event::parse(&serde_json::to_vec(&v).expect("json"), Some(kind))
    }

    #[test]
    fn a_transfer_needs_a_target_and_a_resolution_a_note() {
        let step = |action: &str, extra: &str| {
            let s = format!(
                r#"{{"v":1,"kind":"incident","id":"e","ts":"2022-10-15T09:30:00+08:00","node":"beilun/daqi/x/g01/m01","incident_id":"i","action":"{action}"{extra}}}"#
            );
            Event::parse(s.as_bytes(), Some("incident"))
        };
        let e = step("transferred", "").expect_err("no target");
        assert!(e.detail.contains("`to`"), "{e}");
        let ok = step("transferred", r#","to":"beilun/daqi","by":"li""#).expect("a transfer");
        let EventBody::Incident(inc) = &ok.body else {
            panic!("not an incident")
        };
        assert_eq!(
            (inc.to.as_deref(), inc.by.as_str()),
            (Some("beilun/daqi"), "li")
        );
        assert_eq!(Event::parse(&ok.to_json(), None).expect("roundtrip"), ok);
        assert!(step("resolved", "").is_err());
        assert!(step("resolved", r#","note":"  ""#).is_err());
        step("resolved", r#","note":"done""#).expect("resolved with a note");
        // An old reader's event, without `by` or `to`, serializes as before.
        let old = step("acknowledged", "").expect("acknowledged");
        let json = String::from_utf8(old.to_json()).expect("utf-8");
        assert!(
            !json.contains("\"by\"") && !json.contains("\"to\""),
            "{json}"
        );
    }

    #[test]
    fn every_number_is_accepted_at_its_limits_and_refused_past_them() {
        for r in limits::RANGES {
            let fields: Vec<String> = if r.field == "findings.*" {
                Findings::default()
                    .fields()
                    .iter()
                    .map(|(f, _)| format!("findings.{f}"))
                    .collect()
            } else {
                vec![r.field.to_string()]
            };
            for f in fields {
                for ok in [r.min, r.max] {
                    parse_with(r.kind, &f, ok.into())
                        .unwrap_or_else(|e| panic!("{f} = {ok} refused: {e}"));
                }
                let mut bad = vec![r.max + 1, u64::from(u32::MAX) + 1, u64::MAX];
                if r.min > 0 {
                    bad.push(r.min - 1);
                }
                for b in bad {
                    let e = parse_with(r.kind, &f, b.into()).expect_err(&format!("{f} = {b}"));
                    assert_eq!(e.reason, Reason::Schema, "{f} = {b}: {e}");
                    assert!(e.detail.contains(&format!("`{f}`")), "{e}");
                }
                let e = parse_with(r.kind, &f, (-1).into()).expect_err("negative");
                assert_eq!(e.reason, Reason::Schema, "{f} = -1: {e}");
            }
        }
    }

    #[test]
    fn every_text_is_accepted_at_its_limit_and_refused_past_it() {
        let kinds = ["patrol", "testing", "video", "incident", "zone"];
        for l in limits::LENGTHS {
            let kind = if l.kind == "*" { "patrol" } else { l.kind };
            assert!(kinds.contains(&kind), "{l:?}");
            // Multi-byte text: the limit is in bytes. The node is checked
            // against the registry later, any text passes here.
            let at = "界".repeat(l.max_bytes / 3) + &"x".repeat(l.max_bytes % 3);
            assert_eq!(at.len(), l.max_bytes);
            parse_with(kind, l.field, at.clone().into())
                .unwrap_or_else(|e| panic!("{} of {} bytes refused: {e}", l.field, at.len()));
            let e = parse_with(kind, l.field, format!("{at}x").into()).expect_err(l.field);
            assert_eq!(e.reason, Reason::Schema, "{}: {e}", l.field);
            assert!(e.detail.contains(&format!("`{}`", l.field)), "{e}");
        }
        // A 600 KB category is refused, not copied into states.
        let e = parse_with("incident", "category", "c".repeat(600_000).into()).expect_err("huge");
        assert_eq!(e.reason, Reason::Schema);
    }
}
