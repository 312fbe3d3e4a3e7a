//! Replay: a followed node read as it was at a past minute, from the
//! history (`/api/v1/state?node=&at=`), once, instead of from the socket.

use super::{Conn, Inner, fetch, now, publish_state};
use leptos::prelude::*;
use serde_json::Value;
use std::cell::RefCell;
use std::rc::Rc;

/// Reads subscription `index`'s `node` as it was at `at` and hands it on
/// as a snapshot (the header says disconnected when the history has none).
pub(super) fn read_past(
    inner: Rc<RefCell<Inner>>,
    conn: RwSignal<Conn>,
    index: usize,
    node: String,
    at: String,
) {
    leptos::task::spawn_local(async move {
        let url = format!(
            "/api/v1/state?node={}&at={}",
            String::from(js_sys::encode_uri_component(&node)),
            String::from(js_sys::encode_uri_component(&at))
        );
        let got = fetch::<Value>(&url).await;
        let mut i = inner.borrow_mut();
        let Some(sub) = i.subs.get_mut(index).filter(|s| s.node == node) else {
            return;
        };
        let Some(state) = got else {
            conn.set(Conn::Closed);
            return;
        };
        conn.set(Conn::Open);
        sub.live.last_frame_ms.set(now());
        sub.live.frames.update(|f| *f += 1);
        sub.seq = state.get("seq").and_then(Value::as_u64);
        sub.raw = Some(state);
        publish_state(sub, None);
    });
}
