//! The history over the Postgres wire protocol (`pg_listen`, default
//! port 5433), with the `pgwire` crate: `psql`, Python's psycopg, DBeaver,
//! Metabase and Grafana's PostgreSQL source connect as an analyst (or an
//! admin) with their API token (`gwt_…`) as the password and the
//! account's name as the user.
//!
//! What runs is what `POST /api/v1/sql` runs: one checked SELECT over
//! `history`, `nodes`, `zones`, `incidents`, `orders`, in a query worker
//! (rows, time and memory bounded; see `history::worker`). Both the
//! simple and the extended protocol (which describes an answer before it
//! executes: a schema-only job) are spoken. The session commands drivers
//! send on their own (`SET`, `BEGIN`/`COMMIT`/`ROLLBACK`, `SHOW …`) are
//! accepted and change nothing: the data is read-only.
//!
//! The password travels in clear text, as over `psql` to any server
//! without TLS: listen on localhost (the default) or behind a TLS proxy.//!
//! Modules: [`auth`] (signing in), [`queries`] (what a statement is and
//! how it runs), [`encode`] (answers in Postgres types), [`frame`] (the
//! bound on a client's message sizes, enforced before pgwire reads them).

mod auth;
mod encode;
mod frame;
mod queries;

use pgwire::api::PgWireServerHandlers;
use pgwire::api::auth::cleartext::CleartextPasswordAuth;
use pgwire::api::auth::{AuthDriver, DefaultServerParameterProvider, StartupHandler};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::error::{ErrorInfo, PgWireError};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::history::worker::Failure;
use auth::{Startup, Tokens};
use queries::Queries;

tokio::task_local! {
    /// The client's address, for the connection's task (pgwire sees the
    /// bridge's socket pair; see [`frame`]).
    static PEER: SocketAddr;
}

/// Connections at once; more are refused.
pub const CONNECTIONS_MAX: usize = 64;

/// An error to the client with its SQLSTATE.
pub(super) fn error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        code.to_owned(),
        message.into(),
    )))
}

impl From<Failure> for PgWireError {
    fn from(f: Failure) -> PgWireError {
        let code = match &f {
            // syntax_error_or_access_rule_violation
            Failure::Bad(_) => "42000",
            // program_limit_exceeded
            Failure::TooManyRows(_) => "54000",
            // query_canceled
            Failure::Timeout(_) => "57014",
            // out_of_memory
            Failure::Memory(_) => "53200",
            // too_many_connections
            Failure::Busy => "53300",
            Failure::Broken(_) => "XX000",
        };
        error(code, f.to_string())
    }
}

/// The handlers of a connection.
struct Handlers {
    startup: Arc<Startup>,
    queries: Arc<Queries>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.queries.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.queries.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }
}

/// Binds `addr` (an error when it cannot: a port taken is a
/// misconfiguration, said at start).
pub async fn bind(addr: &str) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Serves Postgres clients on `listener` until `stop`.
pub async fn serve(app: Arc<AppState>, listener: tokio::net::TcpListener, stop: CancellationToken) {
    let mut params = DefaultServerParameterProvider::default();
    params.server_version = "15.0 (Gridwatch)".to_string();
    params.time_zone = "Asia/Shanghai".to_string();
    params.default_transaction_read_only = true;
    params.is_superuser = false;
    let handlers = Arc::new(Handlers {
        startup: Arc::new(Startup {
            driver: AuthDriver::new(params),
            passwords: CleartextPasswordAuth::new(Arc::new(Tokens(app.clone()))),
        }),
        queries: Arc::new(Queries(app.clone())),
    });
    let open = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
    if let Ok(a) = listener.local_addr() {
        tracing::info!(addr = %a, "postgres protocol listening");
    }
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => return,
        };
        let (socket, peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "postgres accept");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "postgres: too many connections, refused");
            drop(socket);
            continue;
        };
        let (inner, outer) = match tokio::net::UnixStream::pair() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "postgres: a socket pair for the bridge");
                continue;
            }
        };
        let h = handlers.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let conn = PEER.scope(peer, pgwire::tokio::process_socket_unix(inner, h));
            let both = async {
                let (served, bridged) = tokio::join!(conn, frame::bridge(socket, outer));
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "postgres connection");
                }
                match bridged {
                    Err(e @ (frame::Cut::TooLong(_) | frame::Cut::Malformed(_))) => {
                        metrics::counter!("gridwatch_pg_connections_cut_total").increment(1);
                        tracing::warn!(%peer, error = %e, "postgres: connection cut");
                    }
                    Err(e) => tracing::debug!(%peer, error = %e, "postgres connection"),
                    Ok(()) => {}
                }
            };
            tokio::select! {
                _ = both => {}
                _ = stop.cancelled() => {}
            }
            drop(permit);
        });
    }
}
