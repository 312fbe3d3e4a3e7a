//! Validation of one message: parse (malformed, version, schema), then check
//! it against the registry (unknown_node, the right level, the subject's
//! street) and the clock (too_late, future). Conflicts with the current
//! state are found when the event is applied.

use gridwatch_model::event::{EventKind, ParseError, Reason};
use gridwatch_model::{Event, Level, Registry};

/// A validated event.
#[derive(Clone, Debug)]
pub struct Valid {
    pub event: Event,
    /// Registry index of the event's node.
    pub node: u32,
    /// Event time, Unix seconds (floored).
    pub ts: i64,
    /// Registry index of an incident transfer's target (`to`).
    pub to: Option<u32>,
}

/// Time rules, in seconds.
#[derive(Clone, Copy, Debug)]
pub struct TimeRules {
    pub lateness_s: i64,
    pub future_s: i64,
}

/// Validates the payload of a message published on `subject`.
pub fn validate(
    subject: &str,
    payload: &[u8],
    registry: &Registry,
    now: Option<i64>,
    rules: TimeRules,
) -> Result<Valid, ParseError> {
    let mut tokens = subject.split('.');
    let (subject_kind, subject_street) = match (tokens.next(), tokens.next()) {
        (Some("gw"), Some("ev")) => (tokens.next(), tokens.next()),
        _ => (None, None),
    };
    let event = Event::parse(payload, subject_kind)?;
    let node = registry.lookup(&event.node).ok_or_else(|| {
        ParseError::new(
            Reason::UnknownNode,
            format!("node `{}` is not in the registry", event.node),
        )
    })?;
    let info = registry.node(node);
    if event.kind() != EventKind::Zone && info.level != Level::Microgrid {
        return Err(ParseError::new(
            Reason::Schema,
            format!(
                "{} events must name a micro-grid; `{}` is a {}",
                event.kind(),
                event.node,
                info.level.as_str()
            ),
        ));
    }
    if let (Some(street), Some(node_street)) = (subject_street, info.id.street_token())
        && street != node_street
    {
        return Err(ParseError::new(
            Reason::Schema,
            format!("subject street `{street}` does not match the node's street `{node_street}`"),
        ));
    }
    let ts = event.ts.timestamp();
    if let Some(now) = now {
        if ts < now - rules.lateness_s {
            return Err(ParseError::new(
                Reason::TooLate,
                format!(
                    "event time {} is {} s before the clock, over the allowed {} s",
                    event.ts,
                    now - ts,
                    rules.lateness_s
                ),
            ));
        }
        if ts > now + rules.future_s {
            return Err(ParseError::new(
                Reason::Future,
                format!(
                    "event time {} is {} s ahead of the clock, over the allowed {} s",
                    event.ts,
                    ts - now,
                    rules.future_s
                ),
            ));
        }
    }
    let to = match &event.body {
        gridwatch_model::event::EventBody::Incident(inc) => match &inc.to {
            Some(t) => Some(registry.lookup(t).ok_or_else(|| {
                ParseError::new(
                    Reason::UnknownNode,
                    format!("`to` node `{t}` is not in the registry"),
                )
            })?),
            None => None,
        },
        _ => None,
    };
    Ok(Valid {
        event,
        node,
        ts,
        to,
    })
}
