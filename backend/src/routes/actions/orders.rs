//! A supervision order's steps: rectify, reopen.

use super::*;

/// `POST /api/v1/orders/<flag id>/<rectify|reopen>`.
pub async fn order_step(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((flag_id, step)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Json<Step>, JsonRejection>,
) -> Result<Answer, ApiError> {
    may_act(&caller)?;
    let action = match step.as_str() {
        "rectify" => VideoAction::Rectified,
        "reopen" => VideoAction::Reopened,
        other => {
            return Err(ApiError::NotFound(format!(
                "no step `{other}`: rectify or reopen"
            )));
        }
    };
    let Json(s) = body?;
    let id = event_id(&caller, &headers)?;
    let street = microgrid(&app, &caller, &s.node)?;
    text("flag id", &flag_id, limits::FLAG_ID.max_bytes, true)?;
    text("note", &s.note, limits::VIDEO_NOTE.max_bytes, true)?;
    if s.to.is_some() {
        return Err(ApiError::BadRequest("an order is not transferred".into()));
    }
    let (mut kind, mut severity) = (FlagKind::Other, 1);
    if action == VideoAction::Rectified
        && let Some(f) = lookup(&app, &s.node, ItemKind::Flags, &flag_id)
            .await?
            .flags
            .first()
    {
        (kind, severity) = (f.kind, f.severity);
    }
    let body = EventBody::Video(Video {
        camera: String::new(),
        flag_id: flag_id.clone(),
        flag: kind,
        action,
        severity,
        by: caller.name.clone(),
        note: s.note,
    });
    let a = Action::new(
        now(&app)?,
        (id, s.node, &street),
        body,
        format!("order_{step}"),
        flag_id,
    );
    act(&app, &caller, &peer, a).await
}
