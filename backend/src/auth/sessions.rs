//! Sessions, in the NATS key-value bucket `GW_SESSIONS`, so that every
//! backend knows every session, and a restart or another instance keeps
//! people signed in. The cookie holds a random 256-bit secret; the bucket
//! holds it only hashed (the key is its SHA-256). A signing-out deletes the
//! key and every backend drops it from its cache (they watch the bucket).

use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::users::{random_hex, sha256_hex};
use crate::error::BackendError;

/// Entries the cache holds at most (then it starts again from the bucket).
const CACHE_MAX: usize = 100_000;

/// Who a session is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Holder {
    /// An account, by name.
    User(String),
    /// A wall device, by its id.
    Wall(String),
}

/// One session, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub holder: Holder,
    /// A tag of the password hash it was opened with: setting a new
    /// password ends the account's sessions.
    pub tag: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    /// The address it was opened from.
    pub from: String,
}

/// The sessions of every backend.
pub struct Sessions {
    kv: kv::Store,
    cache: Mutex<HashMap<String, Arc<Session>>>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Sessions {
    /// Opens (or makes) the bucket; entries expire after `max_age`.
    pub async fn open(
        js: &jetstream::Context,
        bucket: &str,
        max_age: Duration,
    ) -> Result<Sessions, BackendError> {
        let nats = |e: String| BackendError::Config(format!("the sessions bucket {bucket}: {e}"));
        let kv = match js.get_key_value(bucket).await {
            Ok(s) => s,
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: bucket.to_string(),
                    history: 1,
                    max_age,
                    storage: jetstream::stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(|e| nats(e.to_string()))?,
        };
        Ok(Sessions {
            kv,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session: returns the cookie's secret.
    pub async fn create(&self, s: Session) -> Result<String, String> {
        let secret = random_hex(32);
        let key = sha256_hex(&secret);
        let bytes = serde_json::to_vec(&s).map_err(|e| e.to_string())?;
        self.kv
            .put(&key, bytes.into())
            .await
            .map_err(|e| e.to_string())?;
        let mut c = self.cache();
        if c.len() >= CACHE_MAX {
            c.clear();
        }
        c.insert(key, Arc::new(s));
        Ok(secret)
    }

    /// The live session of this cookie secret, if any.
    pub async fn get(&self, secret: &str) -> Option<Arc<Session>> {
        if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let key = sha256_hex(secret);
        let cached = self.cache().get(&key).cloned();
        let s = match cached {
            Some(s) => s,
            None => {
                let v = self.kv.get(&key).await.ok()??;
                let s: Arc<Session> = Arc::new(serde_json::from_slice(&v).ok()?);
                self.cache().insert(key, s.clone());
                s
            }
        };
        (s.expires_ms > now_ms()).then_some(s)
    }

    /// Ends the session of this cookie secret, on every backend.
    pub async fn delete(&self, secret: &str) {
        let key = sha256_hex(secret);
        self.cache().remove(&key);
        if let Err(e) = self.kv.delete(&key).await {
            tracing::warn!(error = %e, "deleting a session");
        }
    }

    /// Follows the bucket: a session deleted by any backend leaves this
    /// one's cache.
    pub async fn follow(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let watch = tokio::select! {
                w = self.kv.watch_all() => w,
                _ = stop.cancelled() => return,
            };
            let mut watch = match watch {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %e, "watching the sessions bucket");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = stop.cancelled() => return,
                    }
                }
            };
            loop {
                let next = tokio::select! {
                    n = watch.next() => n,
                    _ = stop.cancelled() => return,
                };
                match next {
                    Some(Ok(e)) if e.operation != kv::Operation::Put => {
                        self.cache().remove(&e.key);
                    }
                    Some(Ok(_)) => {}
                    // The watch broke: forget what may have changed since.
                    Some(Err(_)) | None => {
                        self.cache().clear();
                        break;
                    }
                }
            }
        }
    }
}
