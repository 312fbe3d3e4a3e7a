//! The live connection: one WebSocket per page, to `/ws`, carrying every
//! node the page follows as a subscription. Each subscription applies
//! snapshots and deltas (RFC 7386 merge patches) in `seq` order and
//! resubscribes on a gap; the socket reconnects with backoff and resumes
//! every subscription from its last `seq`, reopens when silent, and tells
//! the page how fresh its data is. Reconnect and resume are written once,
//! here.

use gridwatch_model::NodeState;
use gridwatch_model::merge_patch;
use gridwatch_model::ws::{ClientMsg, ServerMsg};
use leptos::prelude::*;
use serde_json::Value;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{CloseEvent, Event, MessageEvent, WebSocket};

mod http;
mod past;

pub use http::fetch;
use http::reload_if_server_up;
use past::read_past;

/// Connection state shown in the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conn {
    Connecting,
    Open,
    Closed,
}

/// Reactive view of one followed node.
#[derive(Clone, Copy)]
pub struct Live {
    pub state: RwSignal<Option<NodeState>>,
    pub seq: RwSignal<u64>,
    /// The page socket's connection state.
    pub conn: RwSignal<Conn>,
    /// `Date.now()` of the last frame received for this node (ms).
    pub last_frame_ms: RwSignal<f64>,
    /// `Date.now()`, ticking every second.
    pub now_ms: RwSignal<f64>,
    /// The deployment clock's time from the last heartbeat or state.
    pub as_of: RwSignal<String>,
    /// Frames received for this node (for diagnostics and tests).
    pub frames: RwSignal<u64>,
    /// The node followed; set it to follow another on the same socket.
    pub node: RwSignal<String>,
    /// A past minute shown instead of the live state (`?at=`).
    pub replay: bool,
}

impl Live {
    /// The deployment clock (RFC 3339): the last heartbeat's time, else
    /// that of `state` (the node on screen).
    pub fn clock(self, state: Memo<Option<NodeState>>) -> Signal<String> {
        Signal::derive(move || {
            let hb = self.as_of.get();
            if hb.is_empty() {
                state.with(|s| s.as_ref().map(|s| s.as_of.clone()).unwrap_or_default())
            } else {
                hb
            }
        })
    }
}

/// Seconds without a frame after which the data is called stale.
pub const STALE_AFTER_MS: f64 = 10_000.0;
/// An open socket silent this long is closed and reopened.
const SILENT_REOPEN_MS: f64 = 20_000.0;
/// Watchdog: nothing heard for this long although the server answers
/// `/healthz` means the page itself is stuck: reload it.
const RELOAD_AFTER_MS: f64 = 300_000.0;
/// How often the watchdog asks `/healthz` while nothing is heard.
const RELOAD_CHECK_MS: f64 = 30_000.0;

impl Live {
    /// Whether no frame arrived for [`STALE_AFTER_MS`].
    pub fn stale(&self) -> bool {
        if self.replay {
            return false;
        }
        let last = self.last_frame_ms.get();
        last == 0.0 || self.now_ms.get() - last > STALE_AFTER_MS
    }
}

/// Called with the node's whole state after every snapshot (`patch` is
/// `None`) and delta (`patch` is the merge patch just applied).
pub type OnState = Rc<dyn Fn(&Value, Option<&Value>)>;

/// One followed node on the socket.
struct Sub {
    node: String,
    live: Live,
    on_state: OnState,
    raw: Option<Value>,
    seq: Option<u64>,
}

struct Inner {
    subs: Vec<Sub>,
    ws: Option<WebSocket>,
    backoff_ms: u64,
    opened_ms: f64,
    /// `Date.now()` of the last frame on the socket, for any node.
    heard_ms: f64,
    /// The past minute every subscription is read at, from the history
    /// (`?at=`); no WebSocket then.
    replay: Option<String>,
    // Keep the callbacks alive as long as their socket.
    _callbacks: Vec<Box<dyn std::any::Any>>,
}

/// The page's one WebSocket. Open it once per page and follow every node
/// the page shows on it.
#[derive(Clone)]
pub struct Socket {
    inner: Rc<RefCell<Inner>>,
    conn: RwSignal<Conn>,
    now_ms: RwSignal<f64>,
}

fn now() -> f64 {
    js_sys::Date::now()
}

fn ws_url() -> String {
    let loc = web_sys::window().map(|w| w.location());
    let (proto, host) = match loc {
        Some(l) => (
            l.protocol().unwrap_or_else(|_| "http:".into()),
            l.host().unwrap_or_else(|_| "127.0.0.1:8080".into()),
        ),
        None => ("http:".into(), "127.0.0.1:8080".into()),
    };
    let scheme = if proto == "https:" { "wss" } else { "ws" };
    format!("{scheme}://{host}/ws")
}

impl Socket {
    /// Opens the page's socket; it reconnects by itself for the page's
    /// lifetime.
    pub fn open() -> Socket {
        Self::open_at(None)
    }

    /// With `replay` (a past minute, as `?at=` gives it) no socket: every
    /// node followed is read as it was then, from the history, once.
    /// Without, [`Socket::open`].
    pub fn open_at(replay: Option<String>) -> Socket {
        let socket = Socket {
            inner: Rc::new(RefCell::new(Inner {
                subs: Vec::new(),
                ws: None,
                backoff_ms: 500,
                opened_ms: 0.0,
                heard_ms: 0.0,
                replay: replay.clone(),
                _callbacks: Vec::new(),
            })),
            conn: RwSignal::new(Conn::Connecting),
            now_ms: RwSignal::new(now()),
        };
        if replay.is_some() {
            let ticking = socket.now_ms;
            set_interval(move || ticking.set(now()), Duration::from_secs(1));
            return socket;
        }
        // Tick the clock, and reopen a socket that is open but silent well
        // past its heartbeats (a half-dead connection never closes by
        // itself).
        let watched = socket.clone();
        let started = now();
        let last_check = std::cell::Cell::new(0.0);
        set_interval(
            move || {
                let t = now();
                watched.now_ms.set(t);
                let w = watched.inner.borrow();
                let heard = w.heard_ms.max(w.opened_ms);
                if watched.conn.get_untracked() == Conn::Open
                    && t - heard > SILENT_REOPEN_MS
                    && let Some(ws) = &w.ws
                {
                    let _ = ws.close();
                }
                // Reload only when the server is there to load from: a wall
                // reloaded while the server is down would stay on an error
                // page.
                let heard = w.heard_ms.max(started);
                if t - heard > RELOAD_AFTER_MS && t - last_check.get() > RELOAD_CHECK_MS {
                    last_check.set(t);
                    leptos::task::spawn_local(reload_if_server_up());
                }
            },
            Duration::from_secs(1),
        );
        open(&socket);
        socket
    }

    /// Follows `node` as a [`NodeState`]: a snapshot is read whole, a delta
    /// re-reads only the fields it touched.
    pub fn follow(&self, node: &str) -> Live {
        self.follow_with(node, |live| {
            Rc::new(move |raw: &Value, patch: Option<&Value>| {
                let patched = patch.is_some_and(|p| {
                    live.state
                        .try_update(|s| s.as_mut().map(|s| s.apply_fields(raw, p).is_ok()))
                        .flatten()
                        .unwrap_or(false)
                });
                if patched {
                    return;
                }
                match serde_json::from_value::<NodeState>(raw.clone()) {
                    Ok(s) => live.state.set(Some(s)),
                    Err(e) => leptos::logging::warn!("state not understood: {e}"),
                }
            })
        })
    }

    /// Follows `node`, handing each new version to the handler that `make`
    /// builds (for states other than a [`NodeState`], e.g. the map).
    pub fn follow_with(&self, node: &str, make: impl FnOnce(Live) -> OnState) -> Live {
        let live = Live {
            state: RwSignal::new(None),
            seq: RwSignal::new(0),
            conn: self.conn,
            last_frame_ms: RwSignal::new(0.0),
            now_ms: self.now_ms,
            as_of: RwSignal::new(String::new()),
            frames: RwSignal::new(0),
            node: RwSignal::new(node.to_string()),
            replay: self.inner.borrow().replay.is_some(),
        };
        let index = {
            let mut i = self.inner.borrow_mut();
            i.subs.push(Sub {
                node: node.to_string(),
                live,
                on_state: make(live),
                raw: None,
                seq: None,
            });
            let index = i.subs.len() - 1;
            subscribe(&i, index);
            index
        };
        if let Some(at) = self.inner.borrow().replay.clone() {
            read_past(self.inner.clone(), self.conn, index, node.to_string(), at);
        }
        // Following another node: unsubscribe, forget the old state,
        // subscribe.
        let inner = self.inner.clone();
        Effect::new(move |_| {
            let node = live.node.get();
            let mut i = inner.borrow_mut();
            let old = &i.subs[index].node;
            if *old == node {
                return;
            }
            // Another subscription may still follow the old node.
            let shared = i
                .subs
                .iter()
                .enumerate()
                .any(|(k, s)| k != index && s.node == *old);
            if !shared && let Some(ws) = &i.ws {
                send(ws, &ClientMsg::Unsubscribe { node: old.clone() });
            }
            let sub = &mut i.subs[index];
            sub.node = node.clone();
            // The old node's figures stay until the new snapshot replaces
            // them.
            sub.raw = None;
            sub.seq = None;
            subscribe(&i, index);
            if let Some(at) = i.replay.clone() {
                read_past(inner.clone(), live.conn, index, node, at);
            }
        });
        live
    }
}

fn send(ws: &WebSocket, msg: &ClientMsg) {
    if let Ok(text) = serde_json::to_string(msg) {
        let _ = ws.send_with_str(&text);
    }
}

/// Subscribes (or resubscribes, resuming after its `seq`) subscription
/// `index`.
fn subscribe(inner: &Inner, index: usize) {
    if let (Some(ws), Some(sub)) = (&inner.ws, inner.subs.get(index)) {
        send(
            ws,
            &ClientMsg::Subscribe {
                node: sub.node.clone(),
                resume_from: sub.seq,
            },
        );
    }
}

fn publish_state(sub: &Sub, patch: Option<&Value>) {
    if let Some(raw) = &sub.raw {
        if let Some(t) = raw.get("as_of").and_then(Value::as_str) {
            sub.live.as_of.set(t.to_string());
        }
        (sub.on_state)(raw, patch);
    }
    sub.live.seq.set(sub.seq.unwrap_or(0));
}

/// What a frame asks of one subscription.
enum Next {
    Done,
    Resubscribe,
}

fn on_frame(sub: &mut Sub, msg: &ServerMsg, text_len: usize) -> Next {
    let live = sub.live;
    live.last_frame_ms.set(now());
    live.frames.update(|f| *f += 1);
    crate::perf::frame(&sub.node, text_len);
    match msg {
        ServerMsg::Snapshot { seq, state, .. } => {
            crate::perf::first_frame(text_len);
            sub.raw = Some(state.clone());
            sub.seq = Some(*seq);
            publish_state(sub, None);
            Next::Done
        }
        ServerMsg::Delta {
            from, seq, patch, ..
        } => match (sub.seq, sub.raw.as_mut()) {
            (Some(cur), Some(raw)) if *from == cur => {
                merge_patch::apply(raw, patch);
                sub.seq = Some(*seq);
                publish_state(sub, Some(patch));
                Next::Done
            }
            (Some(cur), _) if *seq <= cur => Next::Done,
            _ => Next::Resubscribe,
        },
        ServerMsg::Heartbeat { seq, as_of, .. } => {
            live.as_of.set(as_of.clone());
            if sub.seq.is_some_and(|cur| *seq > cur) {
                Next::Resubscribe
            } else {
                Next::Done
            }
        }
        ServerMsg::Error { .. } => Next::Done,
    }
}

fn on_message(inner: &Rc<RefCell<Inner>>, text: &str) {
    let Ok(msg) = serde_json::from_str::<ServerMsg>(text) else {
        return;
    };
    let mut i = inner.borrow_mut();
    i.heard_ms = now();
    let node = match &msg {
        ServerMsg::Snapshot { node, .. }
        | ServerMsg::Delta { node, .. }
        | ServerMsg::Heartbeat { node, .. } => node.clone(),
        ServerMsg::Error { code, message } => {
            leptos::logging::warn!("server error {code}: {message}");
            return;
        }
    };
    // Frames for a node no longer followed (late, after a switch) match
    // no subscription and are dropped.
    let mut again = Vec::new();
    for (k, sub) in i.subs.iter_mut().enumerate() {
        if sub.node == node && matches!(on_frame(sub, &msg, text.len()), Next::Resubscribe) {
            again.push(k);
        }
    }
    for k in again {
        subscribe(&i, k);
    }
}

fn open(socket: &Socket) {
    let conn = socket.conn;
    conn.set(Conn::Connecting);
    let ws = match WebSocket::new(&ws_url()) {
        Ok(ws) => ws,
        Err(_) => {
            reconnect_later(socket.clone());
            return;
        }
    };
    let on_open = {
        let inner = socket.inner.clone();
        Closure::<dyn FnMut(Event)>::new(move |_| {
            conn.set(Conn::Open);
            let mut i = inner.borrow_mut();
            i.backoff_ms = 500;
            i.opened_ms = now();
            // Resume every subscription from its last version.
            for k in 0..i.subs.len() {
                subscribe(&i, k);
            }
        })
    };
    let on_msg = {
        let inner = socket.inner.clone();
        Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            if let Some(text) = e.data().as_string() {
                on_message(&inner, &text);
            }
        })
    };
    let on_close = {
        let socket = socket.clone();
        Closure::<dyn FnMut(CloseEvent)>::new(move |_| {
            socket.conn.set(Conn::Closed);
            reconnect_later(socket.clone());
        })
    };
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_msg.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    let mut i = socket.inner.borrow_mut();
    if let Some(old) = i.ws.take() {
        old.set_onopen(None);
        old.set_onmessage(None);
        old.set_onclose(None);
        let _ = old.close();
    }
    i.ws = Some(ws);
    i._callbacks = vec![Box::new(on_open), Box::new(on_msg), Box::new(on_close)];
}

fn reconnect_later(socket: Socket) {
    let wait = {
        let mut i = socket.inner.borrow_mut();
        let w = i.backoff_ms;
        i.backoff_ms = (i.backoff_ms * 2).min(10_000);
        w
    };
    set_timeout(move || open(&socket), Duration::from_millis(wait));
}
