//! A JetStream publish retried until the server has stored it, or until
//! shutdown: the one retry loop the services share.
//!
//! A publish that can never succeed is not retried forever: one the client
//! or the server refuses outright (over the server's `max_payload`, a
//! JetStream API error such as a message over the stream's size limit) is
//! [`Refused`] at once, and, where the caller allows it, one still without
//! an ack after some attempts while the connection is up (the server drops
//! a publish it does not permit, and nothing comes back). The caller is
//! handed what was refused and decides what to do with it; every other
//! publish keeps flowing.

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
    /// Give a publish up after this many failed attempts made while the
    /// connection was up (`None`: retry until stored or shut down).
    pub give_up_connected: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_secs(2),
            give_up_connected: None,
        }
    }
}

/// A publish given up, and why.
#[derive(Clone, Debug)]
pub struct Refused {
    pub publish: Publish,
    /// A short, stable name for metrics: `max_payload`, `server`, `no_ack`.
    pub kind: &'static str,
    pub why: String,
}

/// How one failed attempt bears on the next.
enum Failure {
    /// Worth trying again (no connection, a timeout, no responders while
    /// a stream fails over).
    Transient(String),
    /// Will fail the same way every time.
    Refused(&'static str, String),
}

fn classify(e: &jetstream::context::PublishError) -> Failure {
    use jetstream::context::PublishErrorKind as K;
    match e.kind() {
        K::MaxPayloadExceeded => Failure::Refused("max_payload", e.to_string()),
        // The server answered, with an API error about this message.
        K::Other
            if std::error::Error::source(e)
                .is_some_and(|s| s.downcast_ref::<jetstream::Error>().is_some()) =>
        {
            Failure::Refused("server", e.to_string())
        }
        _ => Failure::Transient(e.to_string()),
    }
}

/// Publishes `p` until JetStream acknowledges it, backing off between
/// attempts and logging each failure; returns `Err(refused)` when it can
/// never succeed (see the module's notes).
///
/// Fails with [`RuntimeError::Cancelled`] once `stop` is cancelled (a
/// publish under way is abandoned: the caller decides what that loses).
pub async fn until_stored(
    js: &jetstream::Context,
    p: &Publish,
    backoff: Backoff,
    stop: &CancellationToken,
) -> Result<Result<(), Refused>, RuntimeError> {
    let mut wait = backoff.first;
    let mut failed_connected = 0u32;
    loop {
        let attempt = async {
            let ack = p.send(js).await.map_err(|e| classify(&e))?;
            ack.await.map(|_| ()).map_err(|e| classify(&e))
        };
        let r = tokio::select! {
            _ = stop.cancelled() => return Err(RuntimeError::Cancelled),
            r = attempt => r,
        };
        let refuse = |kind, why: String| {
            tracing::error!(error = %why, subject = %p.subject, "publish refused; set aside");
            Ok(Err(Refused {
                publish: p.clone(),
                kind,
                why,
            }))
        };
        match r {
            Ok(()) => return Ok(Ok(())),
            Err(Failure::Refused(kind, why)) => return refuse(kind, why),
            Err(Failure::Transient(e)) => {
                if js.client().connection_state() == async_nats::connection::State::Connected {
                    failed_connected += 1;
                }
                if backoff
                    .give_up_connected
                    .is_some_and(|n| failed_connected >= n)
                {
                    return refuse(
                        "no_ack",
                        format!("{e} ({failed_connected} attempts while connected)"),
                    );
                }
                tracing::warn!(error = %e, subject = %p.subject, "publish failed; retrying");
            }
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
///
/// A publish refused (see the module's notes) is set aside, not retried:
/// [`Pipelined::take_refused`] hands it to the caller. A subject whose
/// publish went unacked while connected (not permitted, most likely) is
/// quarantined for [`QUARANTINE`]: what is published to it meanwhile is
/// refused at once instead of costing every retry again, so the others
/// keep flowing.
pub struct Pipelined {
    pending: Vec<(jetstream::context::PublishAckFuture, Publish)>,
    /// Confirm the group once this many are in flight (well under the
    /// client's in-flight limit, which would otherwise block).
    max_pending: usize,
    backoff: Backoff,
    refused: Vec<Refused>,
    /// Subject → until when it is quarantined.
    quarantine: std::collections::HashMap<String, tokio::time::Instant>,
}

/// How long a subject whose publishes go unacked is refused at once.
pub const QUARANTINE: Duration = Duration::from_secs(600);

impl Pipelined {
    /// A pipeline confirming every `max_pending` publishes.
    pub fn new(max_pending: usize) -> Pipelined {
        Pipelined {
            pending: Vec::new(),
            max_pending: max_pending.max(1),
            backoff: Backoff::default(),
            refused: Vec::new(),
            quarantine: std::collections::HashMap::new(),
        }
    }

    /// Whether `subject` is quarantined now (forgetting it once it is not).
    fn quarantined(&mut self, subject: &str) -> bool {
        match self.quarantine.get(subject) {
            Some(until) if tokio::time::Instant::now() < *until => true,
            Some(_) => {
                self.quarantine.remove(subject);
                false
            }
            None => false,
        }
    }

    /// Gives a publish up after `attempts` failed while connected.
    pub fn giving_up_after(mut self, attempts: u32) -> Pipelined {
        self.backoff.give_up_connected = Some(attempts.max(1));
        self
    }

    /// The publishes refused since the last call.
    pub fn take_refused(&mut self) -> Vec<Refused> {
        std::mem::take(&mut self.refused)
    }

    /// Publishes `p` until stored, or sets it aside when refused.
    async fn until_settled(
        &mut self,
        js: &jetstream::Context,
        p: &Publish,
        stop: &CancellationToken,
    ) -> Result<(), RuntimeError> {
        if self.quarantined(&p.subject) {
            self.refused.push(Refused {
                publish: p.clone(),
                kind: "quarantined",
                why: format!("{} went unacked while connected lately", p.subject),
            });
            return Ok(());
        }
        if let Err(r) = until_stored(js, p, self.backoff, stop).await? {
            if r.kind == "no_ack" {
                self.quarantine
                    .insert(p.subject.clone(), tokio::time::Instant::now() + QUARANTINE);
            }
            self.refused.push(r);
        }
        Ok(())
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
    /// how many publishes (`p` among them) are now settled: stored, or
    /// refused and set aside.
    ///
    /// Fails with [`RuntimeError::Cancelled`] once `stop` is cancelled
    /// while a publish is being retried.
    pub async fn push(
        &mut self,
        js: &jetstream::Context,
        p: Publish,
        stop: &CancellationToken,
    ) -> Result<usize, RuntimeError> {
        if self.quarantined(&p.subject) {
            // In order: what is pending first, then this one, refused.
            let n = self.confirm(js, stop).await?;
            self.until_settled(js, &p, stop).await?;
            return Ok(n + 1);
        }
        match p.send(js).await {
            Ok(f) => self.pending.push((f, p)),
            Err(e) => {
                tracing::warn!(error = %e, subject = %p.subject, "publish could not be sent");
                let n = self.confirm(js, stop).await?;
                self.until_settled(js, &p, stop).await?;
                return Ok(n + 1);
            }
        }
        if self.pending.len() >= self.max_pending {
            return self.confirm(js, stop).await;
        }
        Ok(0)
    }

    /// Waits for every pending publish; sends the group again if any
    /// failed. Returns how many were settled (stored, or refused and set
    /// aside).
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
                self.until_settled(js, p, stop).await?;
            }
        }
        Ok(n)
    }
}
