//! Measurements the browser benchmark reads from page globals (bounded,
//! so a wall can run for days with them on):
//! - `__gw_first_frame`: `{ms, bytes}` — when the first snapshot arrived
//!   (ms since navigation start) and its size; always recorded, once;
//!   `__gw_memory`, the wasm memory (its `buffer.byteLength` is its size);
//!   and `__gw_heap_live()`, the bytes of that memory the allocator has
//!   handed out and not had back (the memory never shrinks; this does).
//! - with `?perf=1`: `__gw_frames`, the last 20,000 frames as `[node, ms,
//!   bytes]` where `ms` is the main thread's time from the frame's arrival
//!   until the reactive updates it queued ran and style and layout were
//!   recomputed (an upper bound: a task queued in between counts too).

use js_sys::{Array, Object, Reflect};
use std::cell::RefCell;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

/// Frames kept.
const KEEP: u32 = 20_000;

thread_local! {
    static ON: bool = crate::route::query("perf").is_some_and(|v| v != "0");
}

fn now() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

fn global(name: &str) -> JsValue {
    web_sys::window()
        .and_then(|w| Reflect::get(&w, &JsValue::from_str(name)).ok())
        .unwrap_or(JsValue::UNDEFINED)
}

fn set_global(name: &str, v: &JsValue) {
    if let Some(w) = web_sys::window() {
        let _ = Reflect::set(&w, &JsValue::from_str(name), v);
    }
}

/// Records the first snapshot's arrival (once per page).
pub fn first_frame(bytes: usize) {
    if !global("__gw_first_frame").is_undefined() {
        return;
    }
    let o = Object::new();
    let _ = Reflect::set(&o, &"ms".into(), &now().into());
    let _ = Reflect::set(&o, &"bytes".into(), &(bytes as f64).into());
    set_global("__gw_first_frame", &o);
    // The wasm memory itself, so its size can be read without `?perf=1`.
    set_global("__gw_memory", &wasm_bindgen::memory());
    HEAP_LIVE.with(|f| set_global("__gw_heap_live", f.as_ref()));
}

/// Frames waiting for their measurement: (node, arrival, bytes).
type Pending = Vec<(String, f64, usize)>;

thread_local! {
    /// `__gw_heap_live()`: made once, kept for the page's life.
    static HEAP_LIVE: Closure<dyn Fn() -> f64> =
        Closure::<dyn Fn() -> f64>::new(|| crate::heap_live_bytes() as f64);
    static PENDING: RefCell<Pending> = const { RefCell::new(Vec::new()) };
    /// The one callback that measures the pending frames. Made once and
    /// kept: a closure per frame (as `set_timeout` makes) is freed only
    /// when the JS GC finalizes it, and on a busy wall that lagged behind —
    /// the JS heap and wasm memory grew with every frame measured.
    static MEASURE: Option<Closure<dyn FnMut()>> = ON.with(|on| *on).then(|| {
        Closure::<dyn FnMut()>::new(measure_pending)
    });
}

/// Call as a frame arrives: with `?perf=1`, measures it once the work it
/// queued has run.
pub fn frame(node: &str, bytes: usize) {
    if !ON.with(|on| *on) {
        return;
    }
    let first = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        p.push((node.to_string(), now(), bytes));
        p.len() == 1
    });
    if first {
        MEASURE.with(|m| {
            if let (Some(m), Some(w)) = (m, web_sys::window()) {
                let _ = w.set_timeout_with_callback(m.as_ref().unchecked_ref());
            }
        });
    }
}

/// Runs after the work the pending frames queued: style and layout now, so
/// they count, then one record per frame.
fn measure_pending() {
    if let Some(el) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.document_element())
    {
        let _ = el.get_bounding_client_rect();
    }
    let end = now();
    let pending = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    let frames = match global("__gw_frames").dyn_into::<Array>() {
        Ok(a) => a,
        Err(_) => {
            let a = Array::new();
            set_global("__gw_frames", &a);
            a
        }
    };
    for (node, t0, bytes) in pending {
        frames.push(&Array::of3(
            &node.as_str().into(),
            &(end - t0).into(),
            &(bytes as f64).into(),
        ));
    }
    while frames.length() > KEEP {
        frames.shift();
    }
}
