//! Typed, layered configuration: defaults → `--config` file (TOML) →
//! `GRIDWATCH__…` environment variables → flags. Unknown keys are rejected
//! (loaded by `gridwatch_runtime::config::load`).

use serde::Deserialize;
use std::path::PathBuf;

/// Backend configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// NATS server URL.
    pub nats: String,
    /// The NKey seed file of this service's NATS user (see
    /// `gridwatch_runtime::nats_auth`); none for a server without users.
    pub nats_nkey_file: Option<PathBuf>,
    /// The CA file that signed the NATS server's certificate (TLS).
    pub nats_ca_file: Option<PathBuf>,
    /// Address to listen on.
    pub listen: String,
    /// Registry file; the committed Beilun registry when unset.
    pub registry: Option<PathBuf>,
    /// Directory of the built frontend (index.html, wasm, js).
    pub static_dir: PathBuf,
    /// Key-value bucket ingest publishes node states to.
    pub state_bucket: String,
    /// Seconds between heartbeats to WebSocket clients.
    pub heartbeat_s: u64,
    /// Deltas kept per node for clients that resume.
    pub resume_history: usize,
    /// Frames queued per WebSocket client before it gets coalesced updates.
    pub client_queue: usize,
    /// Pacing: a node's deltas go out at most every this many microseconds
    /// times the number of connected clients (at most once a second);
    /// versions in between are folded into one delta.
    pub pace_us_per_client: u64,
    /// After SIGINT or SIGTERM, the process exits within this many seconds
    /// even when connections or NATS do not let go.
    pub shutdown_s: u64,
    /// The users file (accounts, API tokens, wall devices; see
    /// `auth::users`), reloaded on SIGHUP. None: nobody can sign in.
    pub users_file: Option<PathBuf>,
    /// A session from the sign-in page lasts this many hours.
    pub session_hours: u64,
    /// A wall's session from its device link lasts this many days.
    pub wall_session_days: u64,
    /// Mark the session cookie Secure (always behind TLS; a request with
    /// `X-Forwarded-Proto: https` gets it anyway).
    pub secure_cookies: bool,
    /// Requests per second one identity may make (bursts of 4× that).
    pub rate_per_s: u32,
    /// Origins a WebSocket may be opened from besides the server's own
    /// (e.g. `https://wall.example`); requests without an Origin (scripts)
    /// are not browsers and pass.
    pub allowed_origins: Vec<String>,
    /// Subscriptions one WebSocket may hold at once.
    pub ws_max_subscriptions: usize,
    /// Reading a request's headers may take this long (slowloris).
    pub header_timeout_s: u64,
    /// A request may take this long to answer.
    pub request_timeout_s: u64,
    /// Largest request body, bytes.
    pub body_limit: usize,
    /// Key-value bucket of the sessions.
    pub sessions_bucket: String,
    /// Stream of the audit trail.
    pub audit_stream: String,
    /// Stream of the reminders notify sent or kept.
    pub reminders_stream: String,
    /// Ingest's `<data-dir>/history` (the same disk, or a read-only
    /// mount): history queries and SQL read it. None: they answer 503.
    pub history_dir: Option<PathBuf>,
    /// A history query or SQL statement may run this long, seconds.
    pub query_timeout_s: u64,
    /// A history query or SQL statement may use this much memory, MiB
    /// (its worker's data segment: past it the query is stopped).
    pub query_memory_mb: u64,
    /// Where the Postgres wire protocol listens (psql, psycopg, DBeaver,
    /// Metabase, Grafana: an API token as the password); none: it does
    /// not. Only with `history_dir`.
    pub pg_listen: Option<String>,
    /// How long an action waits for ingest to apply it before the answer
    /// says `pending` (ms).
    pub action_wait_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            nats: "nats://127.0.0.1:4222".into(),
            nats_nkey_file: None,
            nats_ca_file: None,
            listen: "127.0.0.1:8080".into(),
            registry: None,
            static_dir: PathBuf::from("frontend/dist"),
            state_bucket: gridwatch_model::kv::DEFAULT_BUCKET.into(),
            heartbeat_s: 5,
            resume_history: 512,
            client_queue: 256,
            pace_us_per_client: 20,
            shutdown_s: gridwatch_runtime::shutdown::DEFAULT_SHUTDOWN_S,
            users_file: None,
            session_hours: 12,
            wall_session_days: 400,
            secure_cookies: false,
            rate_per_s: 50,
            allowed_origins: Vec::new(),
            ws_max_subscriptions: 64,
            header_timeout_s: 10,
            request_timeout_s: 30,
            body_limit: 64 * 1024,
            sessions_bucket: "GW_SESSIONS".into(),
            audit_stream: "GW_AUDIT".into(),
            reminders_stream: gridwatch_model::api::REMINDERS_STREAM.into(),
            history_dir: None,
            query_timeout_s: 20,
            query_memory_mb: 2048,
            pg_listen: Some("127.0.0.1:5433".into()),
            action_wait_ms: 3_000,
        }
    }
}

impl Config {
    /// The NATS credentials.
    pub fn nats_creds(&self) -> gridwatch_runtime::nats::Creds {
        gridwatch_runtime::nats::Creds {
            nkey_file: self.nats_nkey_file.clone(),
            ca_file: self.nats_ca_file.clone(),
        }
    }
}
