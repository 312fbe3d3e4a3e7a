//! The NATS connection every service opens: named, retrying until the
//! server is first reachable, reconnecting forever, and counting
//! disconnections (a pull consumer must recreate its requests after one:
//! messages in flight during an outage are lost). A user and password in
//! the URL (`nats://user:pass@host:4222`) are sent as such (the client does
//! not read them from the URL itself) and never logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::RuntimeError;

/// Times the connection was lost since it was opened.
pub type Disconnects = Arc<AtomicU64>;

/// Connects as `name`; see the module doc.
///
/// Fails only on an invalid URL or options (an unreachable server is
/// retried).
pub async fn connect(
    url: &str,
    name: &str,
) -> Result<(async_nats::Client, Disconnects), RuntimeError> {
    let disconnects: Disconnects = Arc::new(AtomicU64::new(0));
    let counter = disconnects.clone();
    let (url, user) = split_credentials(url);
    let mut opts = async_nats::ConnectOptions::new();
    if let Some((u, p)) = user {
        opts = opts.user_and_password(u, p);
    }
    let client = opts
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .event_callback(move |event| {
            let counter = counter.clone();
            async move {
                if matches!(event, async_nats::Event::Disconnected) {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
        .connect(url.as_str())
        .await
        .map_err(|e| RuntimeError::Nats(e.to_string()))?;
    Ok((client, disconnects))
}

/// `nats://user:pass@host` → (`nats://host`, (user, pass)).
pub fn split_credentials(url: &str) -> (String, Option<(String, String)>) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("nats", url));
    match rest.rsplit_once('@') {
        Some((cred, host)) => {
            let (u, p) = cred.split_once(':').unwrap_or((cred, ""));
            (
                format!("{scheme}://{host}"),
                Some((u.to_string(), p.to_string())),
            )
        }
        None => (url.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_come_out_of_the_url() {
        use super::split_credentials as s;
        assert_eq!(
            s("nats://127.0.0.1:4222"),
            ("nats://127.0.0.1:4222".into(), None)
        );
        assert_eq!(
            s("nats://gw:se:cret@h:1"),
            ("nats://h:1".into(), Some(("gw".into(), "se:cret".into())))
        );
    }
}
