//! The NATS connection every service opens: named, retrying until the
//! server is first reachable, reconnecting forever, and counting
//! disconnections (a pull consumer must recreate its requests after one:
//! messages in flight during an outage are lost). A user and password in
//! the URL (`nats://user:pass@host:4222`) are sent as such (the client does
//! not read them from the URL itself) and never logged. A service's own
//! user is an NKey whose seed is read from a file ([`Creds::nkey_file`],
//! see [`crate::nats_auth`]); a `tls://` URL, or a CA file, needs TLS.

use std::path::PathBuf;
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
    creds: &Creds,
    name: &str,
) -> Result<(async_nats::Client, Disconnects), RuntimeError> {
    let disconnects: Disconnects = Arc::new(AtomicU64::new(0));
    let counter = disconnects.clone();
    let (url, opts) = options(url, creds)?;
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

/// How a service proves who it is to NATS (each from a file, never logged).
#[derive(Clone, Debug, Default)]
pub struct Creds {
    /// The NKey seed of the service's user.
    pub nkey_file: Option<PathBuf>,
    /// The CA that signed the server's certificate (TLS).
    pub ca_file: Option<PathBuf>,
}

/// The connect options for `url` with `creds`, and the URL without its
/// user and password.
pub fn options(
    url: &str,
    creds: &Creds,
) -> Result<(String, async_nats::ConnectOptions), RuntimeError> {
    let (url, user) = split_credentials(url);
    let mut opts = async_nats::ConnectOptions::new();
    if let Some((u, p)) = user {
        opts = opts.user_and_password(u, p);
    }
    if let Some(f) = &creds.nkey_file {
        let (seed, inbox) = crate::nats_auth::read_seed(f)?;
        opts = opts.nkey(seed).custom_inbox_prefix(inbox);
    }
    if let Some(ca) = &creds.ca_file {
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    } else if url.starts_with("tls://") {
        opts = opts.require_tls(true);
    }
    Ok((url, opts))
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
