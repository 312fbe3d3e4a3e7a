//! Who is asking, checked at one point for REST and WebSocket alike
//! ([`layer`]): a session cookie (the sign-in page, or a wall's device
//! link) or an API token (`Authorization: Bearer gwt_…`). No identity →
//! 401; the handlers then ask [`Caller::may_read`] and friends, which
//! answer 403 out of scope. Open without identity: `/healthz`, the sign-in
//! (`POST /api/v1/session`), a device link (`/device/…`) and the static
//! frontend (which holds no data).
//!
//! - [`users`]: the users file (accounts, tokens, walls).
//! - [`sessions`]: sessions in NATS, shared by every backend.
//! - [`throttle`]: failed sign-ins per account and address.

pub mod sessions;
pub mod throttle;
pub mod users;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use gridwatch_model::auth::{Me, Role, SESSION_COOKIE, Via, in_scope};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::AppState;
use crate::error::ApiError;
use sessions::{Holder, Session, Sessions};
use users::{UsersFile, sha256_hex};

/// The identity of a request, put in its extensions by [`layer`].
#[derive(Clone, Debug)]
pub struct Caller {
    /// The account, or the wall's name.
    pub name: String,
    pub role: Role,
    pub scope: String,
    pub public: bool,
    pub via: Via,
    pub expires_ms: Option<i64>,
    /// The cookie's secret, for signing out.
    pub session: Option<String>,
    /// Where it came from.
    pub from: IpAddr,
}

impl Caller {
    /// Whether it may read `node`'s aggregates (its scope's subtree; an
    /// analyst and an admin everywhere). A public wall reads the district
    /// and its streets (and the map and testing board), nothing finer: a
    /// community's or micro-grid's small numbers are not for a public place.
    pub fn reads(&self, node: &str) -> bool {
        if self.public && node.split('/').count() > 2 {
            return false;
        }
        matches!(self.role, Role::Analyst | Role::Admin) || in_scope(&self.scope, node)
    }

    /// 403 unless it [`reads`](Self::reads) `node`.
    pub fn may_read(&self, node: &str) -> Result<(), ApiError> {
        if self.reads(node) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "`{node}` is outside your scope ({})",
                self.scope
            )))
        }
    }

    /// Whether it sees personal data (team names) of `node`: admins, and
    /// supervisors in scope.
    pub fn sees_people(&self, node: &str) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Supervisor => in_scope(&self.scope, node),
            Role::Wall | Role::Analyst => false,
        }
    }

    /// 403 unless it is an admin.
    pub fn must_be_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden("for admins only".into()))
        }
    }

    /// `GET /api/v1/me`.
    pub fn me(&self) -> Me {
        Me {
            user: self.name.clone(),
            role: self.role,
            scope: self.scope.clone(),
            public: self.public,
            via: self.via,
            expires: self
                .expires_ms
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(gridwatch_model::time::to_local_rfc3339),
        }
    }
}

/// Accounts, tokens, walls, sessions, throttles and rate limits.
pub struct Auth {
    path: Option<PathBuf>,
    file: RwLock<Arc<UsersFile>>,
    pub sessions: Arc<Sessions>,
    pub throttle: throttle::Throttle,
    limiter: DefaultKeyedRateLimiter<String>,
    /// Password checks under way at once (each takes ~20 MiB and tens of
    /// milliseconds of a core): a flood of sign-ins waits here instead of
    /// taking the machine.
    pub checks: tokio::sync::Semaphore,
}

/// Password checks at once.
pub const CHECKS_AT_ONCE: usize = 4;

impl Auth {
    /// Loads the users file (an absent file: nobody can sign in yet).
    pub fn new(
        path: Option<PathBuf>,
        sessions: Sessions,
        per_second: u32,
    ) -> Result<Auth, users::UsersError> {
        let file = match &path {
            Some(p) => UsersFile::load(p)?,
            None => UsersFile::default(),
        };
        let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        Ok(Auth {
            path,
            file: RwLock::new(Arc::new(file)),
            sessions: Arc::new(sessions),
            throttle: throttle::Throttle::default(),
            checks: tokio::sync::Semaphore::new(CHECKS_AT_ONCE),
            limiter: RateLimiter::keyed(
                Quota::per_second(rate).allow_burst(
                    rate.saturating_mul(NonZeroU32::new(4).unwrap_or(NonZeroU32::MIN)),
                ),
            ),
        })
    }

    /// The users file as loaded.
    pub fn file(&self) -> Arc<UsersFile> {
        self.file.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Loads the users file again (SIGHUP); a file that does not load
    /// leaves the one in use, and says why. Returns what changed (the
    /// admin actions `gridwatch-admin` made, for the audit trail).
    pub fn reload(&self) -> Result<Vec<users::Change>, users::UsersError> {
        let Some(p) = &self.path else {
            return Ok(Vec::new());
        };
        let f = UsersFile::load(p)?;
        let (u, t, w) = (f.users.len(), f.tokens.len(), f.walls.len());
        let changes = f.changes_since(&self.file());
        *self.file.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(f);
        self.limiter.retain_recent();
        tracing::info!(
            users = u,
            tokens = t,
            walls = w,
            changes = changes.len(),
            "users file reloaded"
        );
        Ok(changes)
    }

    /// The identity a session stands for now (a removed account, a new
    /// password or a revoked wall ends it).
    fn of_session(&self, s: &Session, secret: &str, from: IpAddr) -> Option<Caller> {
        let f = self.file();
        match &s.holder {
            Holder::User(name) => {
                let u = f.user(name)?;
                (password_tag(&u.password) == s.tag).then(|| Caller {
                    name: u.name.clone(),
                    role: u.role,
                    scope: u.scope.clone(),
                    public: false,
                    via: Via::Session,
                    expires_ms: Some(s.expires_ms),
                    session: Some(secret.to_string()),
                    from,
                })
            }
            Holder::Wall(id) => {
                let w = f.walls.iter().find(|w| &w.id == id && !w.revoked)?;
                Some(Caller {
                    name: w.name.clone(),
                    role: Role::Wall,
                    scope: w.scope.clone(),
                    public: w.public,
                    via: Via::Device,
                    expires_ms: Some(s.expires_ms),
                    session: Some(secret.to_string()),
                    from,
                })
            }
        }
    }

    /// The identity of an API token, if it is live.
    pub fn of_token(&self, token: &str, from: IpAddr) -> Option<Caller> {
        let id = users::secret_id(token, "gwt")?;
        let f = self.file();
        let t = f.tokens.iter().find(|t| t.id == id && !t.revoked)?;
        if !constant_eq(&t.hash, &sha256_hex(token)) {
            return None;
        }
        let expires = match &t.expires {
            Some(e) => Some(
                chrono::DateTime::parse_from_rfc3339(e)
                    .ok()?
                    .timestamp_millis(),
            ),
            None => None,
        };
        if expires.is_some_and(|e| e <= chrono::Utc::now().timestamp_millis()) {
            return None;
        }
        let u = f.user(&t.user)?;
        Some(Caller {
            name: u.name.clone(),
            role: u.role,
            scope: t.scope.clone(),
            public: false,
            via: Via::Token,
            expires_ms: expires,
            session: None,
            from,
        })
    }

    /// Who sent these headers, if anyone.
    pub async fn identify(&self, headers: &HeaderMap, from: IpAddr) -> Option<Caller> {
        if let Some(token) = bearer(headers) {
            return self.of_token(token, from);
        }
        let secret = cookie(headers, SESSION_COOKIE)?;
        let s = self.sessions.get(secret).await?;
        self.of_session(&s, secret, from)
    }
}

/// A tag of a password hash, kept in its sessions.
pub fn password_tag(hash: &str) -> String {
    sha256_hex(hash)[..16].to_string()
}

/// Compares two strings in time independent of where they differ.
fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The bearer token of a request.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ").map(str::trim)
}

/// The value of cookie `name`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Paths anyone may reach.
fn open(path: &str, method: &axum::http::Method) -> bool {
    path == "/healthz"
        || (path == "/api/v1/session" && method == axum::http::Method::POST)
        || path.starts_with("/device/")
        || !(path.starts_with("/api") || path == "/ws" || path == "/metrics")
}

/// The one enforcement point: every request to the API, the socket and
/// the metrics has an identity ([`Caller`] in its extensions) within its
/// rate, or gets 401 / 429 with the JSON error body.
pub async fn layer(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let from = peer.ip();
    let path = req.uri().path().to_string();
    let caller = app.auth.identify(req.headers(), from).await;
    if let Some(c) = &caller {
        let key = format!("{}:{}", via_key(c.via), c.name);
        if app.auth.limiter.check_key(&key).is_err() {
            metrics::counter!("gridwatch_http_rate_limited_total").increment(1);
            return ApiError::TooManyRequests {
                message: "too many requests: slow down".into(),
                retry_after_s: 1,
            }
            .into_response();
        }
        req.extensions_mut().insert(c.clone());
    } else if !open(&path, req.method()) {
        return ApiError::Unauthorized("sign in, or send an API token".into()).into_response();
    }
    next.run(req).await
}

/// The rate limiter's name for how a caller came.
fn via_key(v: Via) -> &'static str {
    match v {
        Via::Session => "session",
        Via::Device => "device",
        Via::Token => "token",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_bearer_tokens_are_read_from_the_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "lang=zh; gw_session=abc123; x=y".parse().expect("header"),
        );
        h.insert(
            header::AUTHORIZATION,
            "Bearer gwt_1_2".parse().expect("header"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc123"));
        assert_eq!(cookie(&h, "gw"), None);
        assert_eq!(bearer(&h), Some("gwt_1_2"));
        assert!(constant_eq("abc", "abc") && !constant_eq("abc", "abd"));
    }

    fn caller(role: Role, scope: &str) -> Caller {
        Caller {
            name: "x".into(),
            role,
            scope: scope.into(),
            public: false,
            via: Via::Token,
            expires_ms: None,
            session: None,
            from: IpAddr::from([127, 0, 0, 1]),
        }
    }

    #[test]
    fn scope_and_personal_data_follow_the_role() {
        let mg = "beilun/daqi/x/g01/m01";
        let other = "beilun/xinqi/y/g01/m01";
        let sup = caller(Role::Supervisor, "beilun/daqi");
        assert!(sup.reads(mg) && sup.reads("beilun/daqi") && !sup.reads(other));
        assert!(!sup.reads("beilun") && !sup.reads("beilun/_map"));
        assert!(sup.sees_people(mg) && !sup.sees_people(other));
        let analyst = caller(Role::Analyst, "beilun");
        assert!(analyst.reads(other) && !analyst.sees_people(mg));
        let wall = caller(Role::Wall, "beilun/daqi");
        assert!(wall.reads(mg) && !wall.reads(other) && !wall.sees_people(mg));
        let public = Caller {
            public: true,
            ..caller(Role::Wall, "beilun")
        };
        assert!(
            public.reads("beilun") && public.reads("beilun/daqi") && public.reads("beilun/_map")
        );
        assert!(!public.reads("beilun/daqi/x") && !public.reads(mg));
        let admin = caller(Role::Admin, "beilun");
        assert!(admin.sees_people(other) && admin.must_be_admin().is_ok());
        assert!(sup.must_be_admin().is_err());
    }

    #[test]
    fn only_health_sign_in_device_links_and_the_frontend_are_open() {
        use axum::http::Method;
        assert!(open("/healthz", &Method::GET));
        assert!(open("/api/v1/session", &Method::POST));
        assert!(!open("/api/v1/session", &Method::GET));
        assert!(open("/device/gwd_x_y", &Method::GET));
        assert!(open("/wall", &Method::GET));
        assert!(open("/gridwatch_frontend_bg.wasm", &Method::GET));
        for p in [
            "/api/v1/state",
            "/api/v1/hierarchy",
            "/ws",
            "/metrics",
            "/api",
            "/api/v2/x",
        ] {
            assert!(!open(p, &Method::GET), "{p}");
        }
    }
}
