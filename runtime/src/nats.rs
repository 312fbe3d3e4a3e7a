//! The NATS connection every service opens: named, retrying until the
//! server is first reachable, reconnecting forever, and counting
//! disconnections (a pull consumer must recreate its requests after one:
//! messages in flight during an outage are lost).

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
    let client = async_nats::ConnectOptions::new()
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
        .connect(url)
        .await
        .map_err(|e| RuntimeError::Nats(e.to_string()))?;
    Ok((client, disconnects))
}
