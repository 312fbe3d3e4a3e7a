//! Signing in: the account's name as the user, an API token as the
//! clear-text password; only accounts that read the whole district
//! (analysts, admins) may query.

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::ClientInfo;
use pgwire::api::auth::cleartext::CleartextPasswordAuth;
use pgwire::api::auth::driver::AuthOutcome;
use pgwire::api::auth::mechanism::AuthMechanismFactory;
use pgwire::api::auth::{
    AuthDriver, AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
    protocol_negotiation, save_startup_parameters_to_metadata,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use super::{PEER, error};
use crate::AppState;
use crate::auth::Caller;

/// API tokens as passwords: the user must be the token's account, and an
/// account that reads the whole district (analyst, admin).
pub(super) struct Tokens(pub(super) Arc<AppState>);

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
        // The client's own address (the connection pgwire sees is the
        // bridge's; see `frame`).
        let from: IpAddr = PEER
            .try_with(|p| p.ip())
            .ok()
            .or_else(|| login.host().parse().ok())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
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
pub(super) struct Startup {
    pub(super) driver: AuthDriver<DefaultServerParameterProvider, Caller>,
    pub(super) passwords: CleartextPasswordAuth<Tokens>,
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
                let from = PEER.try_with(|p| *p).unwrap_or(client.socket_addr());
                tracing::info!(user = %caller.name, %from, "postgres client signed in");
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
