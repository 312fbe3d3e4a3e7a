//! Reporting an incident and its steps: acknowledge, transfer, resolve.

use super::*;

/// `POST /api/v1/incidents`.
pub async fn report(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<ReportIncident>, JsonRejection>,
) -> Result<Answer, ApiError> {
    may_act(&caller)?;
    let Json(r) = body?;
    let id = event_id(&caller, &headers)?;
    let street = microgrid(&app, &caller, &r.node)?;
    if !(1..=4).contains(&r.level) {
        return Err(ApiError::BadRequest("`level` must be 1–4".into()));
    }
    text("category", &r.category, limits::CATEGORY.max_bytes, true)?;
    text("note", &r.note, limits::NOTE.max_bytes, false)?;
    let ts = now(&app)?;
    let incident_id = format!("I-{}-{}", ts.format("%Y%m%d"), &id[2..12]);
    let body = EventBody::Incident(Incident {
        incident_id: incident_id.clone(),
        action: IncidentAction::Reported,
        level: r.level,
        category: r.category,
        note: r.note,
        by: caller.name.clone(),
        to: None,
    });
    let a = Action::new(
        ts,
        (id, r.node, &street),
        body,
        "incident_report".into(),
        incident_id,
    );
    act(&app, &caller, &peer, a).await
}

/// `POST /api/v1/incidents/<id>/<acknowledge|transfer|resolve>`.
pub async fn incident_step(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((incident_id, step)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Json<Step>, JsonRejection>,
) -> Result<Answer, ApiError> {
    may_act(&caller)?;
    let action = match step.as_str() {
        "acknowledge" => IncidentAction::Acknowledged,
        "transfer" => IncidentAction::Transferred,
        "resolve" => IncidentAction::Resolved,
        other => {
            return Err(ApiError::NotFound(format!(
                "no step `{other}`: acknowledge, transfer or resolve"
            )));
        }
    };
    let Json(s) = body?;
    let id = event_id(&caller, &headers)?;
    let street = microgrid(&app, &caller, &s.node)?;
    text(
        "incident id",
        &incident_id,
        limits::INCIDENT_ID.max_bytes,
        true,
    )?;
    text(
        "note",
        &s.note,
        limits::NOTE.max_bytes,
        action == IncidentAction::Resolved,
    )?;
    let to = match (action, &s.to) {
        (IncidentAction::Transferred, None) => {
            return Err(ApiError::BadRequest(
                "a transfer needs `to`: the node above that takes it".into(),
            ));
        }
        (IncidentAction::Transferred, Some(to)) => {
            if app.registry.lookup(to).is_none() {
                return Err(ApiError::NotFound(format!("no node `{to}`")));
            }
            Some(to.clone())
        }
        _ => None,
    };
    // Who holds it decides who may act: a level-3 incident at the district
    // centre is not a grid supervisor's to close. (Not open: ingest says
    // why, a 409, or it is a retry of a step already applied.)
    let mut level = 1;
    let mut category = String::new();
    if outcome(&app, &id).await? == Outcome::Unknown {
        let page = lookup(&app, &s.node, ItemKind::Incidents, &incident_id).await?;
        if let Some(open) = page.incidents.first() {
            if !holds(&caller, &open.owner) {
                return Err(ApiError::Forbidden(format!(
                    "incident {incident_id} is held by `{}`, above your scope ({})",
                    open.owner, caller.scope
                )));
            }
            level = open.level;
            category = open.category.clone();
        }
    }
    let body = EventBody::Incident(Incident {
        incident_id: incident_id.clone(),
        action,
        level,
        category,
        note: s.note,
        by: caller.name.clone(),
        to,
    });
    let a = Action::new(
        now(&app)?,
        (id, s.node, &street),
        body,
        format!("incident_{step}"),
        incident_id,
    );
    act(&app, &caller, &peer, a).await
}
