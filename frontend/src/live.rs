//! The live connection: one WebSocket to `/ws` that follows a node, applies
//! snapshots and deltas (RFC 7386 merge patches) in `seq` order, resumes
//! from its last `seq` after a reconnect (with backoff), resubscribes on a
//! gap, and tells the page how fresh its data is.

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
    pub conn: RwSignal<Conn>,
    /// `Date.now()` of the last frame received (ms).
    pub last_frame_ms: RwSignal<f64>,
    /// `Date.now()`, ticking every second.
    pub now_ms: RwSignal<f64>,
    /// The deployment clock's time from the last heartbeat or state.
    pub as_of: RwSignal<String>,
    /// Frames received (for diagnostics and tests).
    pub frames: RwSignal<u64>,
    /// The node followed; set it to follow another on the same socket.
    pub node: RwSignal<String>,
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
        let last = self.last_frame_ms.get();
        last == 0.0 || self.now_ms.get() - last > STALE_AFTER_MS
    }
}

/// Called with the node's whole state after every snapshot (`patch` is
/// `None`) and delta (`patch` is the merge patch just applied).
pub type OnState = Rc<dyn Fn(&Value, Option<&Value>)>;

struct Inner {
    node: String,
    on_state: OnState,
    raw: Option<Value>,
    seq: Option<u64>,
    ws: Option<WebSocket>,
    backoff_ms: u64,
    opened_ms: f64,
    // Keep the callbacks alive as long as their socket.
    _callbacks: Vec<Box<dyn std::any::Any>>,
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

/// Starts following `node` as a [`NodeState`]; reconnects by itself for
/// the page's lifetime.
pub fn follow(node: &str) -> Live {
    follow_with(node, |live| {
        Rc::new(
            move |raw: &Value, _| match serde_json::from_value::<NodeState>(raw.clone()) {
                Ok(s) => live.state.set(Some(s)),
                Err(e) => leptos::logging::warn!("state not understood: {e}"),
            },
        )
    })
}

/// Starts following `node`, handing each new version to the handler that
/// `make` builds (for states other than a [`NodeState`], e.g. the map).
pub fn follow_with(node: &str, make: impl FnOnce(Live) -> OnState) -> Live {
    let live = Live {
        state: RwSignal::new(None),
        seq: RwSignal::new(0),
        conn: RwSignal::new(Conn::Connecting),
        last_frame_ms: RwSignal::new(0.0),
        now_ms: RwSignal::new(now()),
        as_of: RwSignal::new(String::new()),
        frames: RwSignal::new(0),
        node: RwSignal::new(node.to_string()),
    };
    let inner = Rc::new(RefCell::new(Inner {
        node: node.to_string(),
        on_state: make(live),
        raw: None,
        seq: None,
        ws: None,
        backoff_ms: 500,
        opened_ms: 0.0,
        _callbacks: Vec::new(),
    }));
    // Tick the clock, and reopen a socket that is open but silent well
    // past its heartbeats (a half-dead connection never closes by itself).
    let watched = inner.clone();
    let started = now();
    let last_check = std::cell::Cell::new(0.0);
    set_interval(
        move || {
            let t = now();
            live.now_ms.set(t);
            let w = watched.borrow();
            let heard = live.last_frame_ms.get_untracked().max(w.opened_ms);
            if live.conn.get_untracked() == Conn::Open
                && t - heard > SILENT_REOPEN_MS
                && let Some(ws) = &w.ws
            {
                let _ = ws.close();
            }
            // Reload only when the server is there to load from: a wall
            // reloaded while the server is down would stay on an error page.
            let heard = live.last_frame_ms.get_untracked().max(started);
            if t - heard > RELOAD_AFTER_MS && t - last_check.get() > RELOAD_CHECK_MS {
                last_check.set(t);
                leptos::task::spawn_local(reload_if_server_up());
            }
        },
        Duration::from_secs(1),
    );
    // Following another node: unsubscribe, forget the old state, subscribe.
    let switched = inner.clone();
    Effect::new(move |_| {
        let node = live.node.get();
        let mut i = switched.borrow_mut();
        if i.node == node {
            return;
        }
        if let Some(ws) = &i.ws {
            send(
                ws,
                &ClientMsg::Unsubscribe {
                    node: i.node.clone(),
                },
            );
        }
        i.node = node;
        // The old node's figures stay until the new snapshot replaces them.
        i.raw = None;
        i.seq = None;
        subscribe(&i);
    });
    open(inner, live);
    live
}

fn send(ws: &WebSocket, msg: &ClientMsg) {
    if let Ok(text) = serde_json::to_string(msg) {
        let _ = ws.send_with_str(&text);
    }
}

fn subscribe(inner: &Inner) {
    if let Some(ws) = &inner.ws {
        send(
            ws,
            &ClientMsg::Subscribe {
                node: inner.node.clone(),
                resume_from: inner.seq,
            },
        );
    }
}

fn publish_state(inner: &Inner, live: Live, patch: Option<&Value>) {
    if let Some(raw) = &inner.raw {
        if let Some(t) = raw.get("as_of").and_then(Value::as_str) {
            live.as_of.set(t.to_string());
        }
        (inner.on_state)(raw, patch);
    }
    live.seq.set(inner.seq.unwrap_or(0));
}

fn on_message(inner: &Rc<RefCell<Inner>>, live: Live, text: &str) {
    live.last_frame_ms.set(now());
    live.frames.update(|f| *f += 1);
    let Ok(msg) = serde_json::from_str::<ServerMsg>(text) else {
        return;
    };
    let mut i = inner.borrow_mut();
    crate::perf::frame(&i.node, text.len());
    // Frames for a node followed before a switch are late: drop them.
    let node = match &msg {
        ServerMsg::Snapshot { node, .. }
        | ServerMsg::Delta { node, .. }
        | ServerMsg::Heartbeat { node, .. } => Some(node.as_str()),
        ServerMsg::Error { .. } => None,
    };
    if node.is_some_and(|n| n != i.node) {
        return;
    }
    match msg {
        ServerMsg::Snapshot { seq, state, .. } => {
            crate::perf::first_frame(text.len());
            i.raw = Some(state);
            i.seq = Some(seq);
            publish_state(&i, live, None);
        }
        ServerMsg::Delta {
            from, seq, patch, ..
        } => match (i.seq, i.raw.as_mut()) {
            (Some(cur), Some(raw)) if from == cur => {
                merge_patch::apply(raw, &patch);
                i.seq = Some(seq);
                publish_state(&i, live, Some(&patch));
            }
            (Some(cur), _) if seq <= cur => {}
            _ => subscribe(&i),
        },
        ServerMsg::Heartbeat { seq, as_of, .. } => {
            live.as_of.set(as_of);
            if i.seq.is_some_and(|cur| seq > cur) {
                subscribe(&i);
            }
        }
        ServerMsg::Error { code, message } => {
            leptos::logging::warn!("server error {code}: {message}");
        }
    }
}

fn open(inner: Rc<RefCell<Inner>>, live: Live) {
    live.conn.set(Conn::Connecting);
    let ws = match WebSocket::new(&ws_url()) {
        Ok(ws) => ws,
        Err(_) => {
            reconnect_later(inner, live);
            return;
        }
    };
    let on_open = {
        let inner = inner.clone();
        Closure::<dyn FnMut(Event)>::new(move |_| {
            live.conn.set(Conn::Open);
            let mut i = inner.borrow_mut();
            i.backoff_ms = 500;
            i.opened_ms = now();
            subscribe(&i);
        })
    };
    let on_msg = {
        let inner = inner.clone();
        Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            if let Some(text) = e.data().as_string() {
                on_message(&inner, live, &text);
            }
        })
    };
    let on_close = {
        let inner = inner.clone();
        Closure::<dyn FnMut(CloseEvent)>::new(move |_| {
            live.conn.set(Conn::Closed);
            reconnect_later(inner.clone(), live);
        })
    };
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_msg.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    let mut i = inner.borrow_mut();
    if let Some(old) = i.ws.take() {
        old.set_onopen(None);
        old.set_onmessage(None);
        old.set_onclose(None);
        let _ = old.close();
    }
    i.ws = Some(ws);
    i._callbacks = vec![Box::new(on_open), Box::new(on_msg), Box::new(on_close)];
}

fn reconnect_later(inner: Rc<RefCell<Inner>>, live: Live) {
    let wait = {
        let mut i = inner.borrow_mut();
        let w = i.backoff_ms;
        i.backoff_ms = (i.backoff_ms * 2).min(10_000);
        w
    };
    set_timeout(move || open(inner, live), Duration::from_millis(wait));
}

/// Reloads the page when `/healthz` answers 200.
/// GETs `url` and parses it as JSON; `None` when the server cannot be
/// reached or answers an error or something else.
pub async fn fetch_json(url: &str) -> Option<serde_json::Value> {
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;
    let window = web_sys::window()?;
    let resp = JsFuture::from(window.fetch_with_str(url)).await.ok()?;
    let resp: web_sys::Response = resp.dyn_into().ok()?;
    if !resp.ok() {
        return None;
    }
    let text = JsFuture::from(resp.text().ok()?).await.ok()?.as_string()?;
    serde_json::from_str(&text).ok()
}

async fn reload_if_server_up() {
    use wasm_bindgen_futures::JsFuture;
    let Some(window) = web_sys::window() else {
        return;
    };
    let Ok(resp) = JsFuture::from(window.fetch_with_str("/healthz")).await else {
        return;
    };
    if let Ok(resp) = resp.dyn_into::<web_sys::Response>()
        && resp.ok()
    {
        leptos::logging::warn!("no data for minutes while the server is up: reloading");
        let _ = window.location().reload();
    }
}
