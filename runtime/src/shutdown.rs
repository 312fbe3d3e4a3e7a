//! Shutdown: one root [`CancellationToken`], cancelled on SIGINT or
//! SIGTERM, and a bound — once it is cancelled, a service has `limit` to
//! finish; past it, [`run_bounded`] gives up on it, so a service whose
//! work is stuck (NATS gone, a publish that keeps failing) still exits.

use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::error::RuntimeError;

/// The default bound (`shutdown_s`), seconds.
pub const DEFAULT_SHUTDOWN_S: u64 = 10;

/// A token cancelled on SIGINT or SIGTERM (the first one logs).
pub fn on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        t.cancel();
    });
    token
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Runs `service` to its end; once `token` is cancelled, waits at most
/// `limit` more for it.
///
/// Fails with [`RuntimeError::ShutdownTimedOut`] when it did not stop in
/// time (the future is dropped; threads it started may still run, so the
/// caller should exit the process).
pub async fn run_bounded<T>(
    token: &CancellationToken,
    limit: Duration,
    service: impl Future<Output = T>,
) -> Result<T, RuntimeError> {
    tokio::pin!(service);
    tokio::select! {
        out = &mut service => return Ok(out),
        _ = token.cancelled() => {}
    }
    match tokio::time::timeout(limit, service).await {
        Ok(out) => Ok(out),
        Err(_) => Err(RuntimeError::ShutdownTimedOut(limit.as_secs())),
    }
}

/// [`run_bounded`], exiting the process (status 1) when the bound passes:
/// threads the service started (a blocked processor, say) would otherwise
/// keep it alive.
pub async fn run_or_exit<T>(
    token: &CancellationToken,
    limit: Duration,
    service: impl Future<Output = T>,
) -> T {
    match run_bounded(token, limit, service).await {
        Ok(out) => out,
        Err(e) => {
            tracing::error!(error = %e, "giving up on a clean stop; exiting");
            std::process::exit(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stuck_service_is_given_up_after_the_bound() {
        let token = CancellationToken::new();
        let t = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            t.cancel();
        });
        let limit = Duration::from_millis(100);
        let r = run_bounded(&token, limit, std::future::pending::<()>()).await;
        assert!(matches!(r, Err(RuntimeError::ShutdownTimedOut(_))), "{r:?}");
    }

    #[tokio::test]
    async fn a_service_that_stops_in_time_returns_its_result() {
        let token = CancellationToken::new();
        let t = token.clone();
        let service = async move {
            t.cancelled().await;
            7
        };
        token.cancel();
        let r = run_bounded(&token, Duration::from_secs(60), service).await;
        assert_eq!(r.ok(), Some(7));
    }
}
