//! An event as it comes off the wire: every field optional, read in one
//! pass, then checked field by field so each error names its field.

use super::*;
use crate::limits::{Length, Range};

/// Every field any kind may carry, all optional: deserialized in one pass
/// without buffering, then checked field by field so errors name the field.
#[derive(Deserialize)]
pub(super) struct Wire {
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
/// Decides the reason for a payload serde could not read as a [`Wire`].
pub(super) fn classify(bytes: &[u8], err: serde_json::Error) -> ParseError {
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
    pub(super) fn into_event(self) -> Result<Event, ParseError> {
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
