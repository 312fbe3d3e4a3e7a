//! A JetStream publish retried until the server has stored it, or until
//! shutdown: the one retry loop the services share.

use async_nats::HeaderMap;
use async_nats::jetstream;
use bytes::Bytes;
use std::future::IntoFuture;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::error::RuntimeError;

/// One message to publish, kept whole so it can be sent again.
#[derive(Clone, Debug)]
pub struct Publish {
    pub subject: String,
    pub headers: Option<HeaderMap>,
    pub payload: Bytes,
}

impl Publish {
    /// Sends it once; the returned future resolves when it is stored.
    ///
    /// Fails when it could not be sent (connection gone, client buffer full).
    pub async fn send(
        &self,
        js: &jetstream::Context,
    ) -> Result<jetstream::context::PublishAckFuture, jetstream::context::PublishError> {
        match &self.headers {
            Some(h) => {
                js.publish_with_headers(self.subject.clone(), h.clone(), self.payload.clone())
                    .await
            }
            None => js.publish(self.subject.clone(), self.payload.clone()).await,
        }
    }
}

/// Backoff between attempts: from `first`, doubling, at most `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_secs(2),
        }
    }
}

/// Publishes `p` until JetStream acknowledges it, backing off between
/// attempts and logging each failure.
///
/// Fails with [`RuntimeError::Cancelled`] once `stop` is cancelled (a
/// publish under way is abandoned: the caller decides what that loses).
pub async fn until_stored(
    js: &jetstream::Context,
    p: &Publish,
    backoff: Backoff,
    stop: &CancellationToken,
) -> Result<(), RuntimeError> {
    let mut wait = backoff.first;
    loop {
        let attempt = async {
            let ack = p.send(js).await.map_err(|e| e.to_string())?;
            ack.await.map(|_| ()).map_err(|e| e.to_string())
        };
        let r = tokio::select! {
            _ = stop.cancelled() => return Err(RuntimeError::Cancelled),
            r = attempt => r,
        };
        match r {
            Ok(()) => return Ok(()),
            Err(e) => tracing::warn!(error = %e, subject = %p.subject, "publish failed; retrying"),
        }
        tokio::select! {
            _ = stop.cancelled() => return Err(RuntimeError::Cancelled),
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(backoff.max);
    }
}

/// Publishes in flight together: each is sent at once and its ack awaited
/// later with the rest of its group, so a stream of publishes is not one
/// round trip each. If any of a group failed (NATS restarting, say), the
/// whole group is sent again in its original order, each until stored:
/// callers publish only what is harmless to repeat (last-value-wins puts,
/// or messages with a `Nats-Msg-Id`).
pub struct Pipelined {
    pending: Vec<(jetstream::context::PublishAckFuture, Publish)>,
    /// Confirm the group once this many are in flight (well under the
    /// client's in-flight limit, which would otherwise block).
    max_pending: usize,
    backoff: Backoff,
}

impl Pipelined {
    /// A pipeline confirming every `max_pending` publishes.
    pub fn new(max_pending: usize) -> Pipelined {
        Pipelined {
            pending: Vec::new(),
            max_pending: max_pending.max(1),
            backoff: Backoff::default(),
        }
    }

    /// Publishes awaiting their ack.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing awaits its ack.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Sends `p`; confirms the group when it is full. Order is kept: when
    /// `p` cannot even be sent, what is pending is confirmed first. Returns
    /// how many publishes (`p` among them) are now confirmed stored.
    ///
    /// Fails with [`RuntimeError::Cancelled`] once `stop` is cancelled
    /// while a publish is being retried.
    pub async fn push(
        &mut self,
        js: &jetstream::Context,
        p: Publish,
        stop: &CancellationToken,
    ) -> Result<usize, RuntimeError> {
        match p.send(js).await {
            Ok(f) => self.pending.push((f, p)),
            Err(e) => {
                tracing::warn!(error = %e, subject = %p.subject, "publish could not be sent");
                let n = self.confirm(js, stop).await?;
                until_stored(js, &p, self.backoff, stop).await?;
                return Ok(n + 1);
            }
        }
        if self.pending.len() >= self.max_pending {
            return self.confirm(js, stop).await;
        }
        Ok(0)
    }

    /// Waits for every pending publish; sends the group again if any
    /// failed. Returns how many were confirmed.
    ///
    /// Fails with [`RuntimeError::Cancelled`] once `stop` is cancelled
    /// while the group is being retried.
    pub async fn confirm(
        &mut self,
        js: &jetstream::Context,
        stop: &CancellationToken,
    ) -> Result<usize, RuntimeError> {
        // Wait for all at once: each ack times out on its own clock, so
        // waiting in turn after an outage would take the timeout times the
        // group.
        let (acks, group): (Vec<_>, Vec<_>) = self.pending.drain(..).unzip();
        let n = group.len();
        let results = tokio::select! {
            _ = stop.cancelled() => return Err(RuntimeError::Cancelled),
            r = futures::future::join_all(acks.into_iter().map(IntoFuture::into_future)) => r,
        };
        if let Some(e) = results.into_iter().find_map(Result::err) {
            tracing::warn!(error = %e, messages = n, "publish failed; sending the group again");
            for p in &group {
                until_stored(js, p, self.backoff, stop).await?;
            }
        }
        Ok(n)
    }
}
