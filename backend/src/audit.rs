//! The audit trail: every sign-in (success and failure), every write and
//! every admin action — who, when, what, from where — appended to the
//! JetStream stream `GW_AUDIT` (subjects `gw.audit.<action>`), which only
//! the backend's NATS user may write. Admins read it through
//! `GET /api/v1/audit`.

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::error::BackendError;

/// One record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// RFC 3339, +08:00.
    pub ts: String,
    /// The account, wall or user name tried ("" when unknown).
    pub who: String,
    /// Its role, when known.
    pub role: Option<String>,
    /// The address the request came from.
    pub from: String,
    /// `signin`, `signin_failed`, `signout`, `device_link`, …
    pub action: String,
    /// What it acted on (a node, an incident, a user), if anything.
    pub target: Option<String>,
    /// `ok`, or why not.
    pub outcome: String,
}

/// The stream's subjects.
pub const SUBJECTS: &str = "gw.audit.>";

/// Writes and reads the trail.
#[derive(Clone)]
pub struct Audit {
    js: jetstream::Context,
    stream: String,
}

impl Audit {
    /// Opens (or makes) the stream: file storage, kept a year.
    pub async fn open(js: jetstream::Context, name: &str) -> Result<Audit, BackendError> {
        js.get_or_create_stream(stream::Config {
            name: name.to_string(),
            subjects: vec![SUBJECTS.into()],
            storage: stream::StorageType::File,
            max_age: Duration::from_secs(366 * 86_400),
            ..Default::default()
        })
        .await
        .map_err(|e| BackendError::Config(format!("the audit stream {name}: {e}")))?;
        Ok(Audit {
            js,
            stream: name.to_string(),
        })
    }

    /// Appends `r`, waiting for JetStream to store it (at most 5 s; a
    /// failure is logged and counted, and the request it records goes on).
    pub async fn record(&self, r: Record) {
        let subject = format!("gw.audit.{}", r.action);
        let Ok(body) = serde_json::to_vec(&r) else {
            return;
        };
        let stored = async {
            self.js
                .publish(subject, body.into())
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(Duration::from_secs(5), stored).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                metrics::counter!("gridwatch_audit_failures_total").increment(1);
                tracing::error!(error = %e, action = %r.action, "audit record not stored");
            }
            Err(_) => {
                metrics::counter!("gridwatch_audit_failures_total").increment(1);
                tracing::error!(action = %r.action, "audit record not stored within 5 s");
            }
        }
    }

    /// The newest `limit` records, oldest first.
    pub async fn newest(&self, limit: usize) -> Result<Vec<Record>, String> {
        let mut s = self
            .js
            .get_stream(&self.stream)
            .await
            .map_err(|e| e.to_string())?;
        let last = s
            .info()
            .await
            .map_err(|e| e.to_string())?
            .state
            .last_sequence;
        if last == 0 || limit == 0 {
            return Ok(Vec::new());
        }
        let first = last.saturating_sub(limit as u64 - 1).max(1);
        let c = s
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: first,
                },
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut msgs = c.messages().await.map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        loop {
            let next = tokio::time::timeout(Duration::from_secs(3), msgs.next()).await;
            let Ok(Some(Ok(m))) = next else { break };
            let seq = m.info().map(|i| i.stream_sequence).unwrap_or(last);
            if let Ok(r) = serde_json::from_slice::<Record>(&m.payload) {
                out.push(r);
            }
            if seq >= last || out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}
