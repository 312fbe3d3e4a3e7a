//! What was sent: the ledger (a JetStream key-value bucket, one key per
//! (group, hour), [`crate::schedule::ledger_key`]) and the reminders stream
//! (`GW_REMINDERS`: every reminder delivered or kept, which the wall
//! shows; with no robot configured it is the outbox).
//!
//! A digest's life in the ledger: **claimed** `queued` (with its whole
//! message) by an atomic create — a second notify, or this one after a
//! restart, finds the key and does not make it again — then `sent` once
//! the robot answered `ok` (or it was kept in the outbox), `refused` when
//! the robot refused it as it is, `superseded` when the group's next hour
//! came before it could go out. When every group of an hour is claimed,
//! the hour's marker key says so: a restart within the hour sends nothing
//! new for it (no resend), and an hour without a marker is worked through
//! on start (no skip).
//!
//! **The crash window.** On start, the due hour's `queued` entries are sent
//! (again). A crash after DingTalk took a message and before its entry
//! became `sent` — the time of one ledger write, milliseconds — therefore
//! sends that digest twice, marked `resent`; a crash anywhere else neither
//! resends nor loses one. Reminders kept in the outbox carry the ledger
//! key as `Nats-Msg-Id`, so the stream stores such a repeat once.

use async_nats::HeaderMap;
use async_nats::jetstream::{self, kv, stream};
use bytes::Bytes;
use futures::TryStreamExt as _;
use gridwatch_model::api::{Delivery, Reminder};
use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::schedule::{Slot, group_of_key};

/// Where a digest stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Queued,
    Sent,
    Refused,
    Superseded,
}

/// One ledger entry: the digest and where it stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub state: State,
    pub reminder: Reminder,
}

/// What a claim found.
#[derive(Debug)]
pub enum Claim {
    /// The key was free: the digest is ours to send.
    New,
    /// Someone (an earlier run) claimed it before.
    Taken,
}

/// An error of the ledger or the stream, as text for the logs.
pub type Error = String;

/// The ledger and the reminders stream.
#[derive(Clone)]
pub struct Books {
    kv: kv::Store,
    js: jetstream::Context,
}

impl Books {
    /// Opens (or makes) the ledger bucket and the reminders stream.
    pub async fn open(js: jetstream::Context, cfg: &crate::Config) -> Result<Books, Error> {
        let (ledger, reminders) = (&cfg.ledger_bucket, &cfg.reminders_stream);
        let kv = match js.get_key_value(ledger).await {
            Ok(kv) => kv,
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: ledger.to_string(),
                    description: "gridwatch-notify: one key per (group, hour) sent".into(),
                    history: 1,
                    // A digest is at most DingTalk's 20,000 bytes, and its
                    // entry carries it once.
                    max_value_size: 256 * 1024,
                    max_age: Duration::from_secs(cfg.ledger_days.max(1) * 86_400),
                    storage: stream::StorageType::File,
                    num_replicas: cfg.replicas.max(1),
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("the ledger bucket {ledger}: {e}"))?,
        };
        js.get_or_create_stream(stream::Config {
            name: reminders.to_string(),
            subjects: vec![gridwatch_model::api::REMINDERS_SUBJECTS.into()],
            storage: stream::StorageType::File,
            max_age: Duration::from_secs(cfg.reminders_days.max(1) * 86_400),
            duplicate_window: Duration::from_secs(3600),
            num_replicas: cfg.replicas.max(1),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("the reminders stream {reminders}: {e}"))?;
        Ok(Books { kv, js })
    }

    /// Claims `key` for `entry` (atomically: only one claim wins).
    pub async fn claim(&self, key: &str, entry: &Entry) -> Result<Claim, Error> {
        let body = serde_json::to_vec(entry).map_err(|e| e.to_string())?;
        match self.kv.create(key, body.into()).await {
            Ok(_) => Ok(Claim::New),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(Claim::Taken),
            Err(e) => Err(format!("claiming {key}: {e}")),
        }
    }

    /// Writes `entry` under `key`.
    pub async fn set(&self, key: &str, entry: &Entry) -> Result<(), Error> {
        let body = serde_json::to_vec(entry).map_err(|e| e.to_string())?;
        self.kv
            .put(key, body.into())
            .await
            .map(|_| ())
            .map_err(|e| format!("writing {key}: {e}"))
    }

    /// Every entry of `slot`: (key, group, entry). Unreadable entries are
    /// skipped with a warning (nobody else writes the bucket).
    pub async fn slot(&self, slot: Slot) -> Result<Vec<(String, String, Entry)>, Error> {
        let keys: Vec<String> = self
            .kv
            .keys()
            .await
            .map_err(|e| format!("listing the ledger: {e}"))?
            .try_collect()
            .await
            .map_err(|e| format!("listing the ledger: {e}"))?;
        let mut out = Vec::new();
        for key in keys {
            let Some(group) = group_of_key(&key, slot) else {
                continue;
            };
            let Some(bytes) = self
                .kv
                .get(key.clone())
                .await
                .map_err(|e| format!("reading {key}: {e}"))?
            else {
                continue;
            };
            match serde_json::from_slice::<Entry>(&bytes) {
                Ok(e) => out.push((key, group, e)),
                Err(e) => tracing::warn!(%key, error = %e, "an unreadable ledger entry"),
            }
        }
        Ok(out)
    }

    /// Whether every group of `slot` was claimed.
    pub async fn marked(&self, slot: Slot) -> Result<bool, Error> {
        self.kv
            .get(slot.marker_key())
            .await
            .map(|v| v.is_some())
            .map_err(|e| format!("reading the marker of {}: {e}", slot.marker_key()))
    }

    /// Records that every group of `slot` was claimed (`digests` of them).
    pub async fn mark(&self, slot: Slot, digests: usize) -> Result<(), Error> {
        let body = serde_json::to_vec(&serde_json::json!({ "digests": digests }))
            .map_err(|e| e.to_string())?;
        self.kv
            .put(slot.marker_key(), body.into())
            .await
            .map(|_| ())
            .map_err(|e| format!("marking {}: {e}", slot.marker_key()))
    }

    /// Records `reminder` (ledger key `key`) as delivered: the ledger
    /// first (closing the crash window), then the reminders stream.
    pub async fn delivered(&self, key: &str, reminder: &Reminder) -> Result<(), Error> {
        let state = match reminder.delivery {
            Delivery::Refused => State::Refused,
            Delivery::Dingtalk | Delivery::Outbox => State::Sent,
        };
        self.set(
            key,
            &Entry {
                state,
                reminder: reminder.clone(),
            },
        )
        .await?;
        self.record(key, reminder).await
    }

    /// Publishes `reminder` to the reminders stream, `Nats-Msg-Id` = `key`
    /// (a repeat is stored once), retrying a few times.
    async fn record(&self, key: &str, reminder: &Reminder) -> Result<(), Error> {
        let body: Bytes = serde_json::to_vec(reminder)
            .map_err(|e| e.to_string())?
            .into();
        let subject = format!("gw.reminders.{}", reminder.delivery.token());
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", key);
        let mut last = String::new();
        for attempt in 0..5u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            let sent = self
                .js
                .publish_with_headers(subject.clone(), headers.clone(), body.clone())
                .await;
            match sent {
                Ok(ack) => match ack.await {
                    Ok(_) => return Ok(()),
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = e.to_string(),
            }
        }
        Err(format!("recording {key} in the reminders stream: {last}"))
    }

    /// Marks `key` superseded by its group's next hour.
    pub async fn superseded(&self, key: &str, reminder: &Reminder) -> Result<(), Error> {
        self.set(
            key,
            &Entry {
                state: State::Superseded,
                reminder: reminder.clone(),
            },
        )
        .await
    }
}
