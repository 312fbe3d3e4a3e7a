//! Statements: session commands, `SHOW`, and checked queries run in a
//! query worker, over the simple and the extended protocol.

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::portal::{Format as PgFormat, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    DescribePortalResponse, DescribeStatementResponse, FieldFormat, FieldInfo, Response, Tag,
};
use pgwire::api::stmt::{NoopQueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use std::fmt::Debug;
use std::sync::Arc;

use super::encode::{fields, respond, show};
use super::error;
use crate::AppState;
use crate::auth::Caller;
use crate::history::sql::check;
use crate::history::worker::Job;

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

/// The queries of one server.
pub(super) struct Queries(pub(super) Arc<AppState>);

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

    /// The fields a statement's answer will have, for a signed-in client.
    async fn describe_for<C: ClientInfo>(
        &self,
        client: &C,
        sql: &str,
        format: &PgFormat,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Self::caller(client)?;
        self.describe(sql, format).await
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
        let f = self
            .describe_for(client, &target.statement, &PgFormat::UnifiedText)
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
        let f = self
            .describe_for(
                client,
                &target.statement.statement,
                &target.result_column_format,
            )
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
