//! Gridwatch backend: follows the node states ingest publishes on NATS,
//! serves them over HTTP and streams them over WebSocket, with health and
//! Prometheus metrics; serves the built frontend. Stateless: any number can
//! run side by side.
//!
//! Modules:
//! - [`config`]: layered configuration; [`error`]: `ApiError` and friends.
//! - [`auth`]: who is asking, at one point for REST and WebSocket; users,
//!   sessions, tokens, throttles. [`audit`]: the trail in `GW_AUDIT`.
//! - [`headers`]: CSP and the other security headers. [`serve`]: HTTP/1
//!   with a header-read timeout.
//! - [`store`]: node states, delta history and per-node broadcast.
//! - [`watch`]: follows the state bucket.
//! - [`ws`]: the WebSocket protocol.
//! - [`reminders`]: the reminders just sent (from `GW_REMINDERS`).
//! - [`history`]: ingest's Parquet history, read with polars.
//! - [`pg`]: the history over the Postgres wire protocol.
//! - [`routes`]: one file per HTTP resource.

pub mod audit;
pub mod auth;
pub mod config;
pub mod error;
pub mod headers;
pub mod history;
pub mod pg;
pub mod reminders;
pub mod routes;
pub mod serve;
pub mod store;
pub mod watch;
pub mod ws;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Uri};
use axum::routing::get;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tower_http::services::{ServeDir, ServeFile};

use gridwatch_model::Registry;

pub use config::Config;
pub use error::{ApiError, BackendError};

/// How long ingest has to answer a request over NATS.
pub const ASK_INGEST_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);

/// Shared state of the handlers.
pub struct AppState {
    pub cfg: Config,
    pub registry: Arc<Registry>,
    pub store: store::Store,
    pub hierarchy: Bytes,
    pub nats: async_nats::Client,
    /// Publishes tablets' actions as events.
    pub js: async_nats::jetstream::Context,
    pub metrics: gridwatch_runtime::metrics::Metrics,
    pub shutdown: CancellationToken,
    pub auth: auth::Auth,
    pub audit: audit::Audit,
    /// The Content-Security-Policy (see [`headers`]).
    pub csp: HeaderValue,
    /// The newest reminders notify sent or kept.
    pub reminders: reminders::Recent,
    /// The workers that query ingest's Parquet history, when this
    /// backend can read it.
    pub queries: Option<Arc<history::worker::Pool>>,
}

impl AppState {
    /// The deployment clock's "now" as ingest last reported it, else the
    /// wall clock (RFC 3339, +08:00).
    pub fn clock_now(&self) -> String {
        self.deployment_clock()
            .unwrap_or_else(|| gridwatch_model::time::to_local_rfc3339(chrono::Utc::now()))
    }

    /// The deployment clock's "now" as ingest last reported it; none
    /// before it has (just after a start).
    pub fn deployment_clock(&self) -> Option<String> {
        self.store.meta().and_then(|m| m.clock_now.clone())
    }

    /// Asks ingest `query` on `subject` (its items, open lists, outcomes)
    /// and reads the answer: 503 when it does not answer within
    /// [`ASK_INGEST_WITHIN`].
    pub async fn ask_ingest<Q: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        subject: &'static str,
        query: &Q,
    ) -> Result<T, ApiError> {
        let body = serde_json::to_vec(query).map_err(|e| ApiError::Internal(e.to_string()))?;
        let reply =
            tokio::time::timeout(ASK_INGEST_WITHIN, self.nats.request(subject, body.into()))
                .await
                .map_err(|_| ApiError::Unavailable("ingest did not answer".into()))?
                .map_err(|e| {
                    tracing::warn!(error = %e, subject, "asking ingest");
                    ApiError::Unavailable("ingest is not answering".into())
                })?;
        serde_json::from_slice(&reply.payload)
            .map_err(|e| ApiError::Internal(format!("ingest's answer on {subject}: {e}")))
    }
}

async fn api_not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no resource at {}", uri.path()))
}

/// The router.
pub fn router(app: Arc<AppState>) -> Router {
    let index = app.cfg.static_dir.join("index.html");
    // The frontend build writes a .gz beside each file: browsers that
    // accept gzip get it (the wasm is a third of its size).
    let spa = ServeDir::new(&app.cfg.static_dir)
        .precompressed_gzip()
        .fallback(ServeFile::new(index).precompressed_gzip());
    let api = Router::new()
        .route("/hierarchy", get(routes::hierarchy::get))
        .route("/state", get(routes::state::get))
        .route("/registry", get(routes::registry::get))
        .route("/items", get(routes::items::get))
        .route("/tasks", get(routes::tasks::get))
        .route("/reminders", get(routes::reminders::get))
        .route("/query", get(routes::query::get))
        .route(
            "/sql",
            axum::routing::post(routes::sql::post).get(routes::sql::get),
        )
        .route("/incidents", axum::routing::post(routes::actions::report))
        .route(
            "/incidents/{id}/{step}",
            axum::routing::post(routes::actions::incident_step),
        )
        .route(
            "/orders/{id}/{step}",
            axum::routing::post(routes::actions::order_step),
        )
        .route(
            "/session",
            axum::routing::post(routes::session::create).delete(routes::session::delete),
        )
        .route("/me", get(routes::session::me))
        .route("/audit", get(routes::audit::get))
        .fallback(api_not_found);
    let timeout = std::time::Duration::from_secs(app.cfg.request_timeout_s.max(1));
    Router::new()
        .nest("/api/v1", api)
        .route("/api", get(api_not_found))
        .route("/ws", get(ws::handler))
        .route("/healthz", get(routes::health::get))
        .route("/metrics", get(routes::metrics::get))
        .route("/device/{code}", get(routes::session::device))
        .fallback_service(spa)
        // Innermost first: the identity check runs before every handler
        // (one enforcement point), the headers go on every response.
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::layer,
        ))
        .layer(DefaultBodyLimit::max(app.cfg.body_limit))
        .layer(axum::middleware::from_fn(move |req, next| {
            bounded(timeout, req, next)
        }))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            headers::layer,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(app)
}

/// Answers 408 with the JSON error body when a request takes longer than
/// `within`.
async fn bounded(
    within: std::time::Duration,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match tokio::time::timeout(within, next.run(req)).await {
        Ok(r) => r,
        Err(_) => {
            ApiError::Timeout(format!("no answer within {} s", within.as_secs())).into_response()
        }
    }
}

/// Runs the backend until `shutdown` is cancelled. Binds `cfg.listen` and
/// reports the bound address through `bound` (for port 0).
pub async fn run(
    cfg: Config,
    shutdown: CancellationToken,
    bound: Option<tokio::sync::oneshot::Sender<std::net::SocketAddr>>,
) -> Result<(), BackendError> {
    let registry = Arc::new(gridwatch_runtime::registry::load(cfg.registry.as_deref())?);
    let hierarchy = serde_json::to_vec(&gridwatch_model::api::Hierarchy::of(&registry))
        .map(Bytes::from)
        .map_err(|e| BackendError::Config(format!("serializing the hierarchy: {e}")))?;
    let (nats, _) =
        gridwatch_runtime::nats::connect(&cfg.nats, &cfg.nats_creds(), "gridwatch-backend").await?;
    let js = async_nats::jetstream::new(nats.clone());
    let sessions = auth::sessions::Sessions::open(
        &js,
        &cfg.sessions_bucket,
        std::time::Duration::from_secs(cfg.wall_session_days.max(1) * 86_400),
    )
    .await?;
    let audit = audit::Audit::open(js.clone(), &cfg.audit_stream).await?;
    let auth = auth::Auth::new(cfg.users_file.clone(), sessions, cfg.rate_per_s)
        .map_err(|e| BackendError::Config(e.to_string()))?;
    let index = std::fs::read_to_string(cfg.static_dir.join("index.html")).unwrap_or_default();
    let csp = HeaderValue::from_str(&headers::csp(&index))
        .map_err(|e| BackendError::Config(format!("the CSP: {e}")))?;
    let store = store::Store::new(
        registry.nodes.iter().map(|n| n.id.as_str()).chain([
            gridwatch_model::state::MAP_NODE,
            gridwatch_model::state::TESTING_NODE,
        ]),
        cfg.resume_history,
        std::time::Duration::from_micros(cfg.pace_us_per_client),
    );
    let queries = match &cfg.history_dir {
        Some(d) => Some(Arc::new(
            history::worker::Pool::new(
                d.clone(),
                cfg.registry.clone(),
                cfg.query_memory_mb,
                std::time::Duration::from_secs(cfg.query_timeout_s.max(1)),
            )
            .map_err(|e| BackendError::Config(format!("the query workers: {e}")))?,
        )),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| BackendError::Io {
            path: cfg.listen.clone(),
            source: e,
        })?;
    let addr = listener.local_addr().map_err(|e| BackendError::Io {
        path: cfg.listen.clone(),
        source: e,
    })?;
    // The Postgres protocol, with the history only.
    let pg = match (&cfg.pg_listen, &cfg.history_dir) {
        (Some(a), Some(_)) => Some(pg::bind(a).await.map_err(|e| BackendError::Io {
            path: a.clone(),
            source: e,
        })?),
        _ => None,
    };
    let app = Arc::new(AppState {
        cfg,
        registry,
        store,
        hierarchy,
        nats: nats.clone(),
        js,
        metrics: gridwatch_runtime::metrics::install(),
        shutdown: shutdown.clone(),
        auth,
        audit,
        csp,
        reminders: reminders::Recent::default(),
        queries,
    });
    if let Some(q) = app.queries.clone() {
        tokio::task::spawn_blocking(move || q.warm());
    }
    metrics::gauge!("gridwatch_ws_clients").set(0.0);
    let watcher = tokio::spawn(watch::run(nats, app.clone(), shutdown.child_token()));
    tokio::spawn(flush_paced(app.clone(), shutdown.child_token()));
    tokio::spawn(heartbeats(app.clone(), shutdown.child_token()));
    tokio::spawn(app.auth.sessions.clone().follow(shutdown.child_token()));
    tokio::spawn(reload_on_hangup(app.clone(), shutdown.child_token()));
    tokio::spawn(reminders::follow(
        app.js.clone(),
        app.cfg.reminders_stream.clone(),
        app.reminders.clone(),
        shutdown.child_token(),
    ));
    if let Some(l) = pg {
        tokio::spawn(pg::serve(app.clone(), l, shutdown.child_token()));
    }
    tracing::info!(%addr, "listening");
    if let Some(b) = bound {
        let _ = b.send(addr);
    }
    let header_timeout = std::time::Duration::from_secs(app.cfg.header_timeout_s.max(1));
    let served = serve::serve(listener, router(app), header_timeout, shutdown.clone()).await;
    shutdown.cancel();
    let _ = watcher.await;
    served.map_err(|e| BackendError::Io {
        path: addr.to_string(),
        source: e,
    })?;
    Ok(())
}

/// Sends the deltas that waited for their node's pace (see [`store`]).
async fn flush_paced(app: Arc<AppState>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => app.store.flush_due(),
            _ = stop.cancelled() => return,
        }
    }
}

/// Every `heartbeat_s`, tells each followed node's clients that nothing
/// changed since the version they know, with the deployment clock's time
/// (one frame per node, shared by its followers).
async fn heartbeats(app: Arc<AppState>, stop: CancellationToken) {
    let every = std::time::Duration::from_secs(app.cfg.heartbeat_s.max(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => app.store.heartbeat(&app.clock_now()),
            _ = stop.cancelled() => return,
        }
    }
}

/// Loads the users file again on SIGHUP (revoked tokens and walls, new
/// accounts and passwords take effect; a broken file is refused and the
/// old one kept).
async fn reload_on_hangup(app: Arc<AppState>, stop: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: the users file is read at start only");
            return;
        };
        loop {
            tokio::select! {
                _ = hup.recv() => match app.auth.reload() {
                    // Each change is an admin action: on the trail, made
                    // on this machine with gridwatch-admin.
                    Ok(changes) => {
                        for (action, target) in changes {
                            app.audit
                                .record(audit::Record {
                                    ts: gridwatch_model::time::to_local_rfc3339(chrono::Utc::now()),
                                    who: "gridwatch-admin".into(),
                                    role: Some("admin".into()),
                                    from: "users file".into(),
                                    action: action.into(),
                                    target: Some(target),
                                    outcome: "ok".into(),
                                })
                                .await;
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "users file not reloaded; keeping the one in use");
                    }
                },
                _ = stop.cancelled() => return,
            }
        }
    }
    #[cfg(not(unix))]
    stop.cancelled().await;
}
