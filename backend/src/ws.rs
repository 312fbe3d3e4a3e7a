//! `GET /ws`: clients subscribe to nodes and get a snapshot, then deltas
//! with an increasing `seq`, and heartbeats; on reconnect they resume from
//! their last `seq` or get a fresh snapshot.
//!
//! Each socket is split: one task writes frames from a bounded queue, the
//! receive loop reads requests, and one forwarder per subscription moves
//! that node's updates into the queue. A client that cannot keep up fills
//! its queue, its forwarder lags behind the node's broadcast, and on lag it
//! gets one fresh snapshot instead of the missed deltas: a slow client is
//! coalesced and never slows the others.
//!
//! The upgrade needs an identity (the one enforcement point,
//! [`crate::auth::layer`]) and, from a browser, an `Origin` of this server
//! (or one in `allowed_origins`): another site's page cannot open a socket
//! with its visitor's cookie. A subscription outside the caller's scope
//! gets an `error` frame (`forbidden`); at most `ws_max_subscriptions` at
//! once (`too_many_subscriptions`).

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use gridwatch_model::ws::ClientMsg;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};
use tokio::task::{AbortHandle, JoinSet};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::store::{CatchUp, Store, Update, error_frame, heartbeat_frame};

/// Read buffer per socket: clients only send small requests (the default,
/// 128 KiB, dominated the backend's memory per client).
pub const READ_BUFFER: usize = 1024;
/// Frames gathered per write when a client has several queued. The
/// socket's write buffer keeps the capacity of the most it ever held, for
/// every client: gathering 8 KiB (then the buffer held ~14 KiB per client
/// under load, heaptrack) costs more memory than the writes it saves.
pub const WRITE_BUFFER: usize = 2 * 1024;
/// Largest request a client may send.
pub const MAX_REQUEST: usize = 64 * 1024;

/// Whether a browser's `Origin` is this server (its `Host`) or allowed.
/// No `Origin`: not a browser (a script with a token), nothing to check.
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return headers.get(header::ORIGIN).is_none();
    };
    if allowed.iter().any(|a| a == origin) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((origin_host, host), (Some(o), Some(h)) if o == h)
}

/// Upgrades to a WebSocket: 403 for a browser page of another origin.
pub async fn handler(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => return ApiError::BadRequest(e.body_text()).into_response(),
    };
    if !origin_allowed(&headers, &app.cfg.allowed_origins) {
        metrics::counter!("gridwatch_ws_refused_total", "why" => "origin").increment(1);
        return ApiError::Forbidden("a WebSocket from another origin".into()).into_response();
    }
    ws.read_buffer_size(READ_BUFFER)
        // Queued frames gather up to this much before a write.
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(MAX_REQUEST)
        .max_frame_size(MAX_REQUEST)
        .on_upgrade(move |socket| client(socket, app, caller))
}

async fn client(socket: WebSocket, app: Arc<AppState>, caller: Caller) {
    metrics::gauge!("gridwatch_ws_clients").increment(1.0);
    app.store.client_count(1);
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(app.cfg.client_queue.max(1));
    // The forwarders, one per subscription; the writer on its own, so that
    // a subscription ending (an unsubscribe) never looks like the client
    // going away.
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut writer = tokio::spawn(async move {
        // Frames already queued go out together: one write instead of one
        // per frame (per-frame writes were most of the backend's CPU with
        // 10,000 clients).
        'out: while let Some(f) = rx.recv().await {
            let mut n = 1;
            if sink.feed(Message::Text(f)).await.is_err() {
                break;
            }
            while let Ok(f) = rx.try_recv() {
                if sink.feed(Message::Text(f)).await.is_err() {
                    break 'out;
                }
                n += 1;
            }
            if sink.flush().await.is_err() {
                break;
            }
            metrics::counter!("gridwatch_ws_frames_sent_total").increment(n);
        }
        let _ = sink.close().await;
    });
    let mut subs: HashMap<String, AbortHandle> = HashMap::new();
    loop {
        let msg = tokio::select! {
            m = stream.next() => m,
            // The writer ended: the client is gone.
            _ = &mut writer => break,
            _ = app.shutdown.cancelled() => break,
        };
        // Reap the forwarders that ended (unsubscribed, replaced).
        while tasks.try_join_next().is_some() {}
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => continue,
        };
        match serde_json::from_str::<ClientMsg>(text.as_str()) {
            Ok(ClientMsg::Subscribe { node, resume_from }) => {
                if app.store.knows(&node) && !caller.reads(&node) {
                    let why = format!("`{node}` is outside your scope ({})", caller.scope);
                    let _ = tx.send(error_frame("forbidden", &why)).await;
                    continue;
                }
                if let Some(h) = subs.remove(&node) {
                    h.abort();
                } else if subs.len() >= app.cfg.ws_max_subscriptions.max(1) {
                    let why = format!(
                        "at most {} subscriptions per connection",
                        app.cfg.ws_max_subscriptions.max(1)
                    );
                    let _ = tx.send(error_frame("too_many_subscriptions", &why)).await;
                    continue;
                }
                match app.store.subscribe(&node, resume_from) {
                    Some((updates, catch_up)) => {
                        let h = tasks.spawn(forward(
                            app.clone(),
                            node.clone(),
                            updates,
                            catch_up,
                            tx.clone(),
                        ));
                        subs.insert(node, h);
                    }
                    None => {
                        let _ = tx
                            .send(error_frame("unknown_node", &format!("no node `{node}`")))
                            .await;
                    }
                }
            }
            Ok(ClientMsg::Unsubscribe { node }) => {
                if let Some(h) = subs.remove(&node) {
                    h.abort();
                }
            }
            Err(e) => {
                let _ = tx
                    .send(error_frame(
                        "bad_request",
                        &format!("not a client message: {e}"),
                    ))
                    .await;
            }
        }
    }
    tasks.shutdown().await;
    writer.abort();
    app.store.client_count(-1);
    metrics::gauge!("gridwatch_ws_clients").decrement(1.0);
}

/// Sends a snapshot of `node` (if it has a state) and returns its seq.
async fn send_snapshot(store: &Store, node: &str, tx: &mpsc::Sender<Utf8Bytes>) -> Option<u64> {
    let (seq, f) = store.snapshot_frame(node)?;
    tx.send(f).await.ok()?;
    Some(seq)
}

/// Sends a fresh snapshot in place of deltas the client cannot apply,
/// counted by why: the node was `reset`, the client `lagged` behind the
/// node's channel, or a delta did not start where the client is (`gap`).
async fn resend_snapshot(
    store: &Store,
    node: &str,
    tx: &mpsc::Sender<Utf8Bytes>,
    why: &'static str,
) -> Option<u64> {
    metrics::counter!("gridwatch_ws_snapshots_resent_total", "why" => why).increment(1);
    send_snapshot(store, node, tx).await
}

/// Moves one node's updates to a client, keeping its `seq` contiguous.
async fn forward(
    app: Arc<AppState>,
    node: String,
    mut updates: broadcast::Receiver<Update>,
    catch_up: CatchUp,
    tx: mpsc::Sender<Utf8Bytes>,
) {
    let mut seq: Option<u64> = match catch_up {
        CatchUp::Deltas(frames, seq) => {
            for f in frames {
                if tx.send(f).await.is_err() {
                    return;
                }
            }
            Some(seq)
        }
        CatchUp::Snapshot(s, f) => {
            if tx.send(f).await.is_err() {
                return;
            }
            Some(s)
        }
        CatchUp::Nothing => None,
    };
    loop {
        let next = match updates.recv().await {
            Ok(Update::Heartbeat { seq: s, frame }) => {
                let frame = match seq {
                    Some(cur) if cur == s => frame,
                    // Behind the node (a snapshot is on its way): say
                    // where this client is.
                    Some(cur) => heartbeat_frame(&node, cur, &app.clock_now()),
                    None => continue,
                };
                if tx.send(frame).await.is_err() {
                    return;
                }
                continue;
            }
            Ok(Update::Delta {
                from,
                seq: s,
                frame,
            }) => match seq {
                Some(cur) if from == cur => {
                    if tx.send(frame).await.is_err() {
                        return;
                    }
                    Some(s)
                }
                // Already covered by the snapshot or catch-up.
                Some(cur) if s <= cur => Some(cur),
                _ => resend_snapshot(&app.store, &node, &tx, "gap").await,
            },
            Ok(Update::Reset) => resend_snapshot(&app.store, &node, &tx, "reset").await,
            Err(broadcast::error::RecvError::Lagged(_)) => {
                resend_snapshot(&app.store, &node, &tx, "lagged").await
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if next.is_none() && tx.is_closed() {
            return;
        }
        seq = next.or(seq);
    }
}
