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
//! without TLS: listen on localhost (the default) or behind a TLS proxy.

use async_trait::async_trait;
use futures::{Sink, stream};
use pgwire::api::auth::cleartext::CleartextPasswordAuth;
use pgwire::api::auth::driver::AuthOutcome;
use pgwire::api::auth::mechanism::AuthMechanismFactory;
use pgwire::api::auth::{
    AuthDriver, AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
    protocol_negotiation, save_startup_parameters_to_metadata,
};
use pgwire::api::portal::{Format as PgFormat, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    DataRowEncoder, DescribePortalResponse, DescribeStatementResponse, FieldFormat, FieldInfo,
    QueryResponse, Response, Tag,
};
use pgwire::api::stmt::{NoopQueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use polars::prelude::{AnyValue, DataFrame, DataType, TimeUnit};
use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::auth::Caller;
use crate::history::sql::check;
use crate::history::worker::{Failure, Job};

/// Connections at once; more are refused.
pub const CONNECTIONS_MAX: usize = 64;

/// An error to the client with its SQLSTATE.
fn error(code: &str, message: impl Into<String>) -> PgWireError {
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

/// API tokens as passwords: the user must be the token's account, and an
/// account that reads the whole district (analyst, admin).
struct Tokens(Arc<AppState>);

impl Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens")
    }
}

#[async_trait]
impl AuthSource<Caller> for Tokens {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        Err(PgWireError::InvalidPassword(
            login.user().unwrap_or_default().to_owned(),
        ))
    }

    async fn verify_password(
        &self,
        login: &LoginInfo,
        presented: &[u8],
    ) -> PgWireResult<Option<Caller>> {
        let user = login.user().unwrap_or_default().to_owned();
        let from: IpAddr = login.host().parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let auth = &self.0.auth;
        let keys = [format!("pg:{from}")];
        let wait = auth.throttle.wait(&keys, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let caller = std::str::from_utf8(presented)
            .ok()
            .and_then(|t| auth.of_token(t.trim(), from))
            .filter(|c| c.name == user);
        let Some(caller) = caller else {
            auth.throttle.failed(&keys, Instant::now());
            metrics::counter!("gridwatch_pg_sign_ins_total", "outcome" => "refused").increment(1);
            return Err(PgWireError::InvalidPassword(user));
        };
        auth.throttle.succeeded(&keys);
        if crate::routes::query::may_query(&caller, gridwatch_model::ids::DISTRICT_ID).is_err() {
            metrics::counter!("gridwatch_pg_sign_ins_total", "outcome" => "forbidden").increment(1);
            // insufficient_privilege
            return Err(error(
                "42501",
                format!("`{user}` may not query history: SQL is for analysts and admins"),
            ));
        }
        metrics::counter!("gridwatch_pg_sign_ins_total", "outcome" => "ok").increment(1);
        Ok(Some(caller))
    }
}

/// Startup: clear-text password, checked by [`Tokens`]; the caller is kept
/// in the session for every query.
struct Startup {
    driver: AuthDriver<DefaultServerParameterProvider, Caller>,
    passwords: CleartextPasswordAuth<Tokens>,
}

impl Startup {
    async fn done<C>(&self, client: &mut C, outcome: AuthOutcome<Caller>) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match outcome {
            AuthOutcome::InProgress => Ok(()),
            AuthOutcome::Authenticated {
                identity,
                final_message,
            } => {
                let Some(caller) = identity else {
                    return Err(error("28000", "no identity"));
                };
                tracing::info!(user = %caller.name, from = %client.socket_addr(), "postgres client signed in");
                client.session_extensions().insert(caller);
                self.driver
                    .complete_authentication(client, final_message)
                    .await
            }
        }
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                let mechanism = self.passwords.create();
                let outcome = self.driver.begin_authentication(client, mechanism).await?;
                self.done(client, outcome).await
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                let outcome = self.driver.advance_authentication(client, message).await?;
                self.done(client, outcome).await
            }
            _ => Ok(()),
        }
    }
}

/// What a statement is.
enum Plan {
    Empty,
    /// A session command, answered with this tag.
    Session(Response),
    /// `SHOW name`: one value.
    Show(String, String),
    /// A checked query.
    Query(String),
}

/// The values `SHOW` knows (what drivers ask for).
fn setting(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "server_version" => "15.0 (Gridwatch)",
        "server_encoding" | "client_encoding" => "UTF8",
        "standard_conforming_strings" => "on",
        "datestyle" => "ISO, MDY",
        "timezone" => "Asia/Shanghai",
        "transaction isolation level" | "transaction_isolation" => "read committed",
        "transaction_read_only" | "default_transaction_read_only" => "on",
        "search_path" => "public",
        "integer_datetimes" => "on",
        "max_identifier_length" => "63",
        _ => return None,
    })
}

/// Sorts a statement out: session commands, `SHOW`, or a query that passed
/// [`check`] (else the parser's or the checker's words).
fn plan(sql: &str) -> PgWireResult<Plan> {
    let s = sql.trim().trim_end_matches(';').trim();
    if s.is_empty() {
        return Ok(Plan::Empty);
    }
    let first = s
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let session = |tag: &str| Plan::Session(Response::Execution(Tag::new(tag)));
    Ok(match first.as_str() {
        "SET" | "RESET" | "DISCARD" | "DEALLOCATE" => session(&first),
        "BEGIN" | "START" => Plan::Session(Response::TransactionStart(Tag::new("BEGIN"))),
        "COMMIT" | "END" => Plan::Session(Response::TransactionEnd(Tag::new("COMMIT"))),
        "ROLLBACK" | "ABORT" => Plan::Session(Response::TransactionEnd(Tag::new("ROLLBACK"))),
        "SHOW" => {
            let name = s[4..].trim().to_string();
            match setting(&name) {
                Some(v) => Plan::Show(name, v.to_string()),
                // undefined_object
                None => {
                    return Err(error(
                        "42704",
                        format!("unrecognized configuration parameter \"{name}\""),
                    ));
                }
            }
        }
        _ => {
            // insufficient_privilege for writes; syntax_error for the rest.
            check(s).map_err(|why| {
                let code = if why.starts_with("only SELECT") || why.contains("table functions") {
                    "42501"
                } else {
                    "42601"
                };
                error(code, why)
            })?;
            Plan::Query(s.to_string())
        }
    })
}

/// The Postgres type a column is sent as.
fn pg_type(dt: &DataType) -> Type {
    match dt {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 | DataType::Int32 | DataType::UInt16 => {
            Type::INT4
        }
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => Type::INT8,
        DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Date => Type::DATE,
        DataType::Datetime(_, _) => Type::TIMESTAMP,
        _ => Type::VARCHAR,
    }
}

/// The fields of `df`'s columns, each in the format the client asked.
fn fields(df: &DataFrame, format: &PgFormat) -> Vec<FieldInfo> {
    df.columns()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            FieldInfo::new(
                c.name().to_string(),
                None,
                None,
                pg_type(c.dtype()),
                format.format_for(i),
            )
        })
        .collect()
}

/// One value of a column declared `ty`.
fn encode(enc: &mut DataRowEncoder, ty: &Type, v: AnyValue<'_>) -> PgWireResult<()> {
    if matches!(v, AnyValue::Null) {
        return enc.encode_field(&None::<i64>);
    }
    let not_int = || error("22003", format!("{v} does not fit a bigint"));
    match *ty {
        Type::BOOL => enc.encode_field(&matches!(v, AnyValue::Boolean(true))),
        Type::INT4 => enc.encode_field(&v.extract::<i32>().ok_or_else(not_int)?),
        Type::INT8 => enc.encode_field(&v.extract::<i64>().ok_or_else(not_int)?),
        Type::FLOAT4 => enc.encode_field(&v.extract::<f32>().unwrap_or(f32::NAN)),
        Type::FLOAT8 => enc.encode_field(&v.extract::<f64>().unwrap_or(f64::NAN)),
        Type::DATE => {
            let AnyValue::Date(days) = v else {
                return enc.encode_field(&v.to_string());
            };
            // Unix day 0 is day 719,163 of the common era.
            let d = chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163);
            enc.encode_field(&d)
        }
        Type::TIMESTAMP => {
            let AnyValue::Datetime(t, unit, _) = v else {
                return enc.encode_field(&v.to_string());
            };
            let dt = match unit {
                TimeUnit::Milliseconds => chrono::DateTime::from_timestamp_millis(t),
                TimeUnit::Microseconds => chrono::DateTime::from_timestamp_micros(t),
                TimeUnit::Nanoseconds => Some(chrono::DateTime::from_timestamp_nanos(t)),
            };
            enc.encode_field(&dt.map(|d| d.naive_utc()))
        }
        _ => match v {
            AnyValue::String(s) => enc.encode_field(&s),
            AnyValue::StringOwned(s) => enc.encode_field(&s.as_str()),
            other => enc.encode_field(&other.to_string()),
        },
    }
}

/// `df` as a query response.
fn respond(mut df: DataFrame, format: &PgFormat) -> PgWireResult<Response> {
    df.rechunk_mut();
    let schema = Arc::new(fields(&df, format));
    let types: Vec<Type> = schema.iter().map(|f| f.datatype().clone()).collect();
    let mut enc = DataRowEncoder::new(schema.clone());
    let mut rows: Vec<PgWireResult<DataRow>> = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        for (c, ty) in df.columns().iter().zip(&types) {
            let v = c
                .get(i)
                .map_err(|e| error("XX000", format!("reading the answer: {e}")))?;
            encode(&mut enc, ty, v)?;
        }
        rows.push(Ok(enc.take_row()));
    }
    Ok(Response::Query(QueryResponse::new(
        schema,
        stream::iter(rows),
    )))
}

/// `SHOW name` → one row.
fn show(name: &str, value: &str) -> PgWireResult<Response> {
    let schema = Arc::new(vec![FieldInfo::new(
        name.to_string(),
        None,
        None,
        Type::VARCHAR,
        FieldFormat::Text,
    )]);
    let mut enc = DataRowEncoder::new(schema.clone());
    enc.encode_field(&value)?;
    Ok(Response::Query(QueryResponse::new(
        schema,
        stream::iter(vec![Ok(enc.take_row())]),
    )))
}

/// The queries of one server.
struct Queries(Arc<AppState>);

impl Queries {
    /// The session's caller (none: the startup did not finish).
    fn caller<C: ClientInfo>(client: &C) -> PgWireResult<Arc<Caller>> {
        client
            .session_extensions()
            .get::<Caller>()
            .ok_or_else(|| error("28000", "not signed in"))
    }

    async fn run(&self, who: &Caller, sql: &str, format: &PgFormat) -> PgWireResult<Response> {
        match plan(sql)? {
            Plan::Empty => Ok(Response::EmptyQuery),
            Plan::Session(r) => Ok(r),
            Plan::Show(name, value) => show(&name, &value),
            Plan::Query(q) => {
                let pool = crate::routes::query::queries_of(&self.0)
                    .map_err(|e| error("58000", e.to_string()))?;
                tracing::debug!(user = %who.name, "postgres query");
                metrics::counter!("gridwatch_pg_queries_total").increment(1);
                let df = pool.run(&Job::Sql { sql: q }).await?;
                respond(df, format)
            }
        }
    }

    /// The fields a statement's answer will have.
    async fn describe(&self, sql: &str, format: &PgFormat) -> PgWireResult<Vec<FieldInfo>> {
        match plan(sql)? {
            Plan::Empty | Plan::Session(_) => Ok(Vec::new()),
            Plan::Show(name, _) => Ok(vec![FieldInfo::new(
                name,
                None,
                None,
                Type::VARCHAR,
                FieldFormat::Text,
            )]),
            Plan::Query(q) => {
                let pool = crate::routes::query::queries_of(&self.0)
                    .map_err(|e| error("58000", e.to_string()))?;
                let df = pool.run(&Job::Schema { sql: q }).await?;
                Ok(fields(&df, format))
            }
        }
    }
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let who = Self::caller(client)?;
        Ok(vec![self.run(&who, query, &PgFormat::UnifiedText).await?])
    }
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = String;
    type QueryParser = NoopQueryParser;

    fn query_parser(&self) -> Arc<NoopQueryParser> {
        Arc::new(NoopQueryParser)
    }

    async fn do_describe_statement<C>(
        &self,
        client: &mut C,
        target: &StoredStatement<String>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = String>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Self::caller(client)?;
        let f = self
            .describe(&target.statement, &PgFormat::UnifiedText)
            .await?;
        // No fields: "no data", as for a session command.
        Ok(DescribeStatementResponse::new(Vec::new(), f))
    }

    async fn do_describe_portal<C>(
        &self,
        client: &mut C,
        target: &Portal<String>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = String>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Self::caller(client)?;
        let f = self
            .describe(&target.statement.statement, &target.result_column_format)
            .await?;
        Ok(DescribePortalResponse::new(f))
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<String>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = String>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let who = Self::caller(client)?;
        if !portal.parameters.is_empty() {
            // feature_not_supported
            return Err(error(
                "0A000",
                "parameters ($1 …) are not supported: write the values into the statement",
            ));
        }
        self.run(
            &who,
            &portal.statement.statement,
            &portal.result_column_format,
        )
        .await
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
        let h = handlers.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                r = pgwire::tokio::process_socket(socket, None, h) => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "postgres connection");
                    }
                }
                _ = stop.cancelled() => {}
            }
            drop(permit);
        });
    }
}
