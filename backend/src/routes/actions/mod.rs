//! Acting from a tablet (DESIGN §6): a supervisor reports an incident on a
//! micro-grid, acknowledges, transfers or resolves one, rectifies or
//! reopens a supervision order.
//!
//! - `POST /api/v1/incidents` [`ReportIncident`]
//! - `POST /api/v1/incidents/<id>/acknowledge|transfer|resolve` [`Step`]
//! - `POST /api/v1/orders/<flag id>/rectify|reopen` [`Step`]
//!
//! Each needs an `Idempotency-Key` header. The backend checks the caller's
//! scope, then publishes the action as an event on
//! `gw.ev.incident.<street>` (or `gw.ev.video.<street>`) with
//! `Nats-Msg-Id` = the event id, which is derived from the caller and the
//! key: a retried POST is the same event and counts once (JetStream drops
//! it within its dedupe window, ingest's seen ids after). Ingest, the
//! single writer, applies it like any event; the answer says `applied`
//! once it has, `pending` (202) when it has not said yet, or 409 with
//! ingest's reason when the step does not fit (resolving a resolved
//! incident, a transfer to a node not above). Every action is audited.

use async_nats::jetstream::message::PublishMessage;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use gridwatch_model::api::{
    ActionAnswer, ITEMS_SUBJECT, ItemKind, ItemsPage, ItemsQuery, OUTCOME_SUBJECT, Outcome,
    OutcomeQuery, ReportIncident, Step,
};
use gridwatch_model::auth::{Role, in_scope};
use gridwatch_model::event::{
    EventBody, FlagKind, Incident, IncidentAction, Video, VideoAction, WIRE_VERSION,
};
use gridwatch_model::{Event, Level, limits};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::AppState;
use crate::auth::Caller;
use crate::auth::users::sha256_hex;
use crate::error::ApiError;
use crate::routes::session::record;

mod incidents;
mod orders;
pub use incidents::{incident_step, report};
pub use orders::order_step;

/// The header a tablet sends with every action.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The longest key accepted.
pub const KEY_MAX: usize = 64;
/// How long the publish of an action may wait for its ack.
const ACK_WITHIN: Duration = Duration::from_secs(2);

type Answer = (StatusCode, Json<ActionAnswer>);

/// Who may act at all: supervisors and admins.
fn may_act(caller: &Caller) -> Result<(), ApiError> {
    match caller.role {
        Role::Supervisor | Role::Admin => Ok(()),
        Role::Wall | Role::Analyst => Err(ApiError::Forbidden(format!(
            "a {} reads; only supervisors and admins act",
            caller.role.as_str()
        ))),
    }
}

/// Whether the caller's scope holds `node` (an admin's holds everything).
fn holds(caller: &Caller, node: &str) -> bool {
    caller.role == Role::Admin || in_scope(&caller.scope, node)
}

/// The event id of the caller's action with this key.
fn event_id(caller: &Caller, headers: &HeaderMap) -> Result<String, ApiError> {
    let key = headers
        .get(IDEMPOTENCY_KEY)
        .ok_or_else(|| {
            ApiError::BadRequest(
                "send an `Idempotency-Key` header: the same key for a retry of the same action"
                    .into(),
            )
        })?
        .to_str()
        .map_err(|_| ApiError::BadRequest("`Idempotency-Key` must be ASCII".into()))?;
    let ok = |c: char| c.is_ascii_alphanumeric() || "-_.:".contains(c);
    if key.is_empty() || key.len() > KEY_MAX || !key.chars().all(ok) {
        return Err(ApiError::BadRequest(format!(
            "`Idempotency-Key` must be 1–{KEY_MAX} of A–Z a–z 0–9 - _ . :"
        )));
    }
    let hash = sha256_hex(&format!("{}\n{key}", caller.name));
    Ok(format!(
        "{}{}",
        gridwatch_model::api::ACTION_ID_PREFIX,
        &hash[..40]
    ))
}

/// A micro-grid the caller's scope holds: 404 unknown, 400 not a
/// micro-grid, 403 outside the scope. Its street token.
fn microgrid(app: &AppState, caller: &Caller, node: &str) -> Result<String, ApiError> {
    let i = app
        .registry
        .lookup(node)
        .ok_or_else(|| ApiError::NotFound(format!("no node `{node}`")))?;
    let info = app.registry.node(i);
    if info.level != Level::Microgrid {
        return Err(ApiError::BadRequest(format!(
            "`{node}` is a {}: incidents and orders belong to micro-grids",
            info.level.as_str()
        )));
    }
    if !holds(caller, node) {
        return Err(ApiError::Forbidden(format!(
            "`{node}` is outside your scope ({})",
            caller.scope
        )));
    }
    Ok(info.id.street_token().unwrap_or_default().to_string())
}

fn text(field: &str, v: &str, max: usize, required: bool) -> Result<(), ApiError> {
    if required && v.trim().is_empty() {
        return Err(ApiError::BadRequest(format!("`{field}` is required")));
    }
    if v.len() > max {
        return Err(ApiError::BadRequest(format!(
            "`{field}` is {} bytes, over the {max} allowed",
            v.len()
        )));
    }
    Ok(())
}

/// What ingest says became of event `id`.
async fn outcome(app: &AppState, id: &str) -> Result<Outcome, ApiError> {
    app.ask_ingest(OUTCOME_SUBJECT, &OutcomeQuery { id: id.to_string() })
        .await
}

/// The open item `id` of micro-grid `node`, if it is open.
async fn lookup(
    app: &AppState,
    node: &str,
    kind: ItemKind,
    id: &str,
) -> Result<ItemsPage, ApiError> {
    let q = ItemsQuery {
        node: node.to_string(),
        kind,
        offset: 0,
        limit: 1,
        id: Some(id.to_string()),
    };
    app.ask_ingest(ITEMS_SUBJECT, &q).await
}

/// One action on its way: the event, where it goes, what it is about.
struct Action {
    event: Event,
    subject: String,
    /// `incident_report`, `incident_resolve`, `order_rectify`, …
    name: String,
    item: String,
}

impl Action {
    /// The event of an action on micro-grid `node` of `street` at `ts`,
    /// on the subject of its kind.
    fn new(
        ts: chrono::DateTime<chrono::FixedOffset>,
        (id, node, street): (String, String, &str),
        body: EventBody,
        name: String,
        item: String,
    ) -> Action {
        let kind = match &body {
            EventBody::Video(_) => "video",
            _ => "incident",
        };
        Action {
            event: Event {
                v: WIRE_VERSION,
                id,
                ts,
                node,
                body,
            },
            subject: format!("gw.ev.{kind}.{street}"),
            name,
            item,
        }
    }
}

/// Publishes `a` (unless ingest already knows its id: a retry), waits for
/// ingest's word, audits it and answers.
async fn act(
    app: &AppState,
    caller: &Caller,
    peer: &SocketAddr,
    a: Action,
) -> Result<Answer, ApiError> {
    let id = a.event.id.clone();
    // The audit record of this action, with what became of it.
    let audited = |what: &str| {
        record(
            &caller.name,
            Some(caller.role.as_str()),
            peer,
            &a.name,
            Some(&a.item),
            what,
        )
    };
    let mut known = outcome(app, &id).await?;
    if known == Outcome::Unknown {
        let published = app
            .js
            .send_publish(
                a.subject.clone(),
                PublishMessage::build()
                    .payload(a.event.to_json().into())
                    .message_id(&id),
            )
            .await;
        let acked = match published {
            Ok(ack) => tokio::time::timeout(ACK_WITHIN, ack)
                .await
                .ok()
                .and_then(Result::ok),
            Err(e) => {
                tracing::warn!(error = %e, "publishing an action");
                None
            }
        };
        if acked.is_none() {
            app.audit.record(audited("not stored")).await;
            return Err(ApiError::Unavailable(
                "the action could not be stored: send it again (the same key counts once)".into(),
            ));
        }
        let until = Instant::now() + Duration::from_millis(app.cfg.action_wait_ms);
        loop {
            known = outcome(app, &id).await?;
            if known != Outcome::Unknown || Instant::now() >= until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let said = match &known {
        Outcome::Applied => "applied".to_string(),
        Outcome::Unknown => "pending".to_string(),
        Outcome::Rejected { reason, detail } => format!("rejected: {reason}: {detail}"),
    };
    app.audit.record(audited(&said)).await;
    let answer = |status: StatusCode, s: &str| {
        Ok((
            status,
            Json(ActionAnswer {
                status: s.into(),
                event_id: id.clone(),
                item: a.item.clone(),
            }),
        ))
    };
    match known {
        Outcome::Applied => answer(StatusCode::OK, "applied"),
        Outcome::Unknown => answer(StatusCode::ACCEPTED, "pending"),
        Outcome::Rejected { reason, detail } if reason == "conflict" => {
            Err(ApiError::Conflict(detail))
        }
        Outcome::Rejected { detail, .. } => Err(ApiError::BadRequest(detail)),
    }
}

/// The time an action is stamped with: the deployment clock's (on a
/// replay, the replay's). Until ingest has said what it is (just after a
/// start), 503: a guess would be refused as too late or too early, and
/// the tablet sends the action again.
fn now(app: &AppState) -> Result<chrono::DateTime<chrono::FixedOffset>, ApiError> {
    app.deployment_clock()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
        .ok_or_else(|| {
            ApiError::Unavailable("the deployment clock is not known yet: try again".into())
        })
}
