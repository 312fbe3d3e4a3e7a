//! Signing in and out, and who is signed in:
//!
//! - `POST /api/v1/session` `{"user", "password"}`: checks the password
//!   (argon2id, off the async workers), throttled per account and address
//!   (429 with `Retry-After`), and sets the session cookie: HttpOnly,
//!   SameSite=Strict, Secure behind TLS, expiring after `session_hours`.
//! - `DELETE /api/v1/session`: signs out (every backend forgets it).
//! - `GET /api/v1/me`: who is asking ([`gridwatch_model::auth::Me`]).
//! - `GET /device/<code>`: a wall's device link; sets a long-lived wall
//!   session (`wall_session_days`) and opens the wall, so a display never
//!   needs a keyboard and survives reloads and restarts.
//!
//! Each is audited.

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use gridwatch_model::auth::{Me, SESSION_COOKIE, SignIn};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::AppState;
use crate::audit::Record;
use crate::auth::sessions::{Holder, Session};
use crate::auth::users::{self, sha256_hex};
use crate::auth::{Caller, password_tag};
use crate::error::ApiError;

/// The cookie that holds `secret` for `max_age`.
fn set_cookie(app: &AppState, headers: &HeaderMap, secret: &str, max_age: Duration) -> HeaderValue {
    let behind_tls = app.cfg.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let secure = if behind_tls { "; Secure" } else { "" };
    let v = format!(
        "{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        max_age.as_secs()
    );
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A record for the trail.
pub fn record(
    who: &str,
    role: Option<&str>,
    from: &SocketAddr,
    action: &str,
    target: Option<&str>,
    outcome: &str,
) -> Record {
    Record {
        ts: gridwatch_model::time::to_local_rfc3339(chrono::Utc::now()),
        who: who.to_string(),
        role: role.map(str::to_string),
        from: from.ip().to_string(),
        action: action.to_string(),
        target: target.map(str::to_string),
        outcome: outcome.to_string(),
    }
}

/// Stores a session: its cookie's secret, or 503 when NATS cannot take it.
async fn open_session(app: &AppState, s: Session) -> Result<String, ApiError> {
    app.auth.sessions.create(s).await.map_err(|e| {
        tracing::error!(error = %e, "storing a session");
        ApiError::Unavailable("cannot open a session now: try again".into())
    })
}

/// Audits a sign-in that did not happen, and why.
async fn signin_failed(app: &AppState, user: &str, peer: &SocketAddr, why: &str) {
    app.audit
        .record(record(user, None, peer, "signin_failed", None, why))
        .await;
}

/// A hash to check unknown accounts against, so that they take as long as
/// known ones.
fn decoy() -> &'static str {
    static D: OnceLock<String> = OnceLock::new();
    D.get_or_init(|| users::hash_password("gridwatch decoy password").unwrap_or_default())
}

/// Signs in.
pub async fn create(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<SignIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    if req.user.is_empty() || req.user.len() > users::NAME_MAX {
        return Err(ApiError::BadRequest(format!(
            "`user` must be 1–{} characters",
            users::NAME_MAX
        )));
    }
    if req.password.len() > users::PASSWORD_MAX {
        return Err(ApiError::BadRequest(format!(
            "`password` must be at most {} bytes",
            users::PASSWORD_MAX
        )));
    }
    let keys = vec![format!("user:{}", req.user), format!("ip:{}", peer.ip())];
    let wait = app.auth.throttle.wait(&keys, Instant::now());
    if !wait.is_zero() {
        signin_failed(&app, &req.user, &peer, "throttled").await;
        return Err(ApiError::TooManyRequests {
            message: "too many failed sign-ins: wait and try again".into(),
            retry_after_s: wait.as_secs().max(1),
        });
    }
    let file = app.auth.file();
    let user = file.user(&req.user).cloned();
    let hash = user
        .as_ref()
        .map_or_else(|| decoy().to_string(), |u| u.password.clone());
    let password = req.password.clone();
    let slot = tokio::time::timeout(Duration::from_secs(5), app.auth.checks.acquire())
        .await
        .map_err(|_| ApiError::Unavailable("too many sign-ins at once: try again".into()))?
        .map_err(|_| ApiError::Unavailable("shutting down".into()))?;
    let ok = tokio::task::spawn_blocking(move || users::verify_password(&hash, &password))
        .await
        .unwrap_or(false);
    drop(slot);
    let Some(user) = user.filter(|_| ok) else {
        app.auth.throttle.failed(&keys, Instant::now());
        metrics::counter!("gridwatch_signins_total", "outcome" => "failed").increment(1);
        signin_failed(&app, &req.user, &peer, "bad credentials").await;
        return Err(ApiError::Unauthorized("wrong user name or password".into()));
    };
    app.auth.throttle.succeeded(&keys);
    let life = Duration::from_secs(app.cfg.session_hours.max(1) * 3600);
    let now = chrono::Utc::now().timestamp_millis();
    let session = Session {
        holder: Holder::User(user.name.clone()),
        tag: password_tag(&user.password),
        created_ms: now,
        expires_ms: now + life.as_millis() as i64,
        from: peer.ip().to_string(),
    };
    let secret = open_session(&app, session.clone()).await?;
    metrics::counter!("gridwatch_signins_total", "outcome" => "ok").increment(1);
    app.audit
        .record(record(
            &user.name,
            Some(user.role.as_str()),
            &peer,
            "signin",
            None,
            "ok",
        ))
        .await;
    let me = Me {
        user: user.name.clone(),
        role: user.role,
        scope: user.scope.clone(),
        public: false,
        via: gridwatch_model::auth::Via::Session,
        expires: chrono::DateTime::from_timestamp_millis(session.expires_ms)
            .map(gridwatch_model::time::to_local_rfc3339),
    };
    Ok((
        [(
            header::SET_COOKIE,
            set_cookie(&app, &headers, &secret, life),
        )],
        Json(me),
    )
        .into_response())
}

/// Signs out.
pub async fn delete(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Extension(caller): Extension<Caller>,
) -> Response {
    if let Some(s) = &caller.session {
        app.auth.sessions.delete(s).await;
    }
    app.audit
        .record(record(
            &caller.name,
            Some(caller.role.as_str()),
            &peer,
            "signout",
            None,
            "ok",
        ))
        .await;
    (
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            set_cookie(&app, &headers, "", Duration::ZERO),
        )],
    )
        .into_response()
}

/// Who is asking.
pub async fn me(Extension(caller): Extension<Caller>) -> Json<Me> {
    Json(caller.me())
}

/// A wall's device link.
pub async fn device(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    let bad = || ApiError::Unauthorized("this device link is not valid (revoked?)".into());
    let id = users::secret_id(&code, "gwd").ok_or_else(bad)?;
    let file = app.auth.file();
    let Some(wall) = file
        .walls
        .iter()
        .find(|w| w.id == id && !w.revoked && w.hash == sha256_hex(&code))
        .cloned()
    else {
        app.audit
            .record(record("", None, &peer, "device_link", None, "invalid link"))
            .await;
        return Err(bad());
    };
    let life = Duration::from_secs(app.cfg.wall_session_days.max(1) * 86_400);
    let now = chrono::Utc::now().timestamp_millis();
    let secret = open_session(
        &app,
        Session {
            holder: Holder::Wall(wall.id.clone()),
            tag: String::new(),
            created_ms: now,
            expires_ms: now + life.as_millis() as i64,
            from: peer.ip().to_string(),
        },
    )
    .await?;
    app.audit
        .record(record(
            &wall.name,
            Some("wall"),
            &peer,
            "device_link",
            Some(&wall.scope),
            "ok",
        ))
        .await;
    // The district's wall, or the tablet view of a street's.
    let to = if wall.scope == gridwatch_model::ids::DISTRICT_ID {
        "/wall".to_string()
    } else {
        format!("/street/{}", wall.scope)
    };
    Ok((
        [(
            header::SET_COOKIE,
            set_cookie(&app, &headers, &secret, life),
        )],
        Redirect::to(&to),
    )
        .into_response())
}
