//! The tablet's outbox: every action (report, acknowledge, transfer,
//! resolve, rectify, reopen) is queued on the device with its own
//! idempotency key, kept in `localStorage` so a reload or a dead battery
//! loses nothing, shown as pending, and sent — now, every few seconds, and
//! when the connection returns — until the backend answers. The same key
//! on every try makes a resend the same event: it counts once.
//!
//! `applied` removes it; `pending` (202: stored, ingest has not said yet)
//! keeps it to ask again with the same key; a refusal (403, 409, 400)
//! removes it and says why; no answer keeps it.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::i18n::tr;

const STORE_KEY: &str = "gw_outbox";
/// How often the outbox retries what is waiting (ms).
pub const RETRY_MS: u64 = 4_000;

/// One action waiting to be sent, or sent and not yet applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Queued {
    /// The `Idempotency-Key`, the same on every try.
    pub key: String,
    pub path: String,
    /// The JSON body.
    pub body: String,
    /// What the tablet shows for it.
    pub label: String,
    /// The item it is about (an incident or flag id; empty for a report).
    pub item: String,
    /// `queued` (not yet through) or `pending` (stored, not yet applied).
    pub state: String,
}

/// The outcome of an action the outbox let go of.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    pub label: String,
    /// Applied, or the server's reason for refusing it.
    pub ok: bool,
    pub message: String,
}

/// The outbox (a copy in each component; the signals are shared).
#[derive(Clone, Copy)]
pub struct Outbox {
    pub items: RwSignal<Vec<Queued>>,
    /// The last outcomes, newest first.
    pub notices: RwSignal<Vec<Notice>>,
    /// A flush is under way.
    busy: RwSignal<bool>,
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

/// A key no other action of this device shares.
fn fresh_key() -> String {
    let now = js_sys::Date::now() as u64;
    let r = (js_sys::Math::random() * 1e12) as u64;
    format!("tab-{now:x}-{r:x}")
}

impl Outbox {
    /// The outbox of this device, as stored; retries on a timer.
    pub fn open() -> Outbox {
        let stored = storage()
            .and_then(|s| s.get_item(STORE_KEY).ok().flatten())
            .and_then(|t| serde_json::from_str::<Vec<Queued>>(&t).ok())
            .unwrap_or_default();
        let o = Outbox {
            items: RwSignal::new(stored),
            notices: RwSignal::new(Vec::new()),
            busy: RwSignal::new(false),
        };
        if let Ok(h) = set_interval_with_handle(
            move || o.flush(),
            std::time::Duration::from_millis(RETRY_MS),
        ) {
            on_cleanup(move || h.clear());
        }
        o.flush();
        o
    }

    fn save(&self) {
        let text = self
            .items
            .with_untracked(|i| serde_json::to_string(i).unwrap_or_default());
        if let Some(s) = storage() {
            let _ = s.set_item(STORE_KEY, &text);
        }
    }

    /// Queues an action and tries to send it at once.
    pub fn push(&self, path: String, body: serde_json::Value, label: String, item: String) {
        let q = Queued {
            key: fresh_key(),
            path,
            body: body.to_string(),
            label,
            item,
            state: "queued".into(),
        };
        self.items.update(|i| i.push(q));
        self.save();
        self.flush();
    }

    /// Whether an action on `item` is waiting.
    pub fn waiting_on(&self, item: &str) -> bool {
        self.items.with(|i| i.iter().any(|q| q.item == item))
    }

    fn settle(&self, key: &str, notice: Option<Notice>) {
        self.items.update(|i| i.retain(|q| q.key != key));
        self.save();
        if let Some(n) = notice {
            self.notices.update(|ns| {
                ns.insert(0, n);
                ns.truncate(4);
            });
        }
    }

    /// Sends everything waiting, oldest first, one at a time.
    pub fn flush(&self) {
        if self.busy.get_untracked() || self.items.with_untracked(Vec::is_empty) {
            return;
        }
        self.busy.set(true);
        let o = *self;
        leptos::task::spawn_local(async move {
            let waiting = o.items.get_untracked();
            for q in waiting {
                let headers = [("idempotency-key", q.key.as_str())];
                let answer =
                    crate::signin::send_with("POST", &q.path, Some(q.body.clone()), &headers).await;
                match answer {
                    Some((200, _)) => o.settle(
                        &q.key,
                        Some(Notice {
                            label: q.label.clone(),
                            ok: true,
                            message: tr("已生效", "applied").into(),
                        }),
                    ),
                    Some((202, _)) => {
                        o.items.update(|i| {
                            if let Some(x) = i.iter_mut().find(|x| x.key == q.key) {
                                x.state = "pending".into();
                            }
                        });
                        o.save();
                    }
                    // Refused: it will not go through as it is.
                    Some((s @ 400..=499, text)) if s != 408 && s != 429 => {
                        let why = serde_json::from_str::<serde_json::Value>(&text)
                            .ok()
                            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                            .unwrap_or_else(|| format!("HTTP {s}"));
                        o.settle(
                            &q.key,
                            Some(Notice {
                                label: q.label.clone(),
                                ok: false,
                                message: why,
                            }),
                        );
                    }
                    // No answer, a timeout, the server busy: keep it, and
                    // stop for now (the next tries go in order).
                    _ => break,
                }
            }
            o.busy.set(false);
        });
    }
}
