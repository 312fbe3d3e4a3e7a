//! Gridwatch's Leptos (client-side rendered, wasm) dashboard.
//!
//! Modules:
//! - [`route`]: which screen the URL asks for (`/`, `/wall`, `/street/<id>`).
//! - [`live`]: the page's one self-healing WebSocket, following every
//!   node the page shows.
//! - [`i18n`]: Chinese and English, with a switch.
//! - [`components`]: the header, figures and zone panels every screen uses.
//! - [`district`]: the live district page — the sealed, control and
//!   prevention zones, district totals, and the red micro-grids with reasons.
//! - [`geo`], [`map`]: the street polygons and micro-grid cells, live.
//! - [`board`]: the testing board — samples per 10 minutes today,
//!   busiest testing sites.
//! - [`wall`]: the command-center wall.
//! - [`street`]: the street supervisor's tablet.
//! - [`perf`]: the measurements the browser benchmark reads.
//! - [`fmt`]: number formatting.

pub mod board;
pub mod components;
pub mod district;
pub use gridwatch_model::fmt;
pub mod geo;
pub mod i18n;
pub mod live;
pub mod map;
pub mod perf;
pub mod route;
pub mod street;
pub mod wall;

use leptos::prelude::*;
use wasm_bindgen::prelude::wasm_bindgen;

/// The system allocator, counting the bytes it has handed out and not had
/// back: the wasm memory only grows (pages are never returned), so its
/// size alone cannot tell a leak from fragmentation; these live bytes can
/// (`__gw_heap_live()`, see [`perf`]).
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOC: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

/// Bytes of the wasm heap in use now.
#[cfg(target_arch = "wasm32")]
pub fn heap_live_bytes() -> usize {
    ALLOC.allocated()
}

/// Bytes of the wasm heap in use now (counted only in the browser).
#[cfg(not(target_arch = "wasm32"))]
pub fn heap_live_bytes() -> usize {
    0
}

/// The application root.
#[component]
pub fn App() -> impl IntoView {
    i18n::provide();
    match route::current() {
        route::Route::Wall => view! { <wall::WallPage/> }.into_any(),
        route::Route::Street(node) => view! { <street::StreetPage node=node/> }.into_any(),
        route::Route::District => {
            let live = live::Socket::open().follow(gridwatch_model::ids::DISTRICT_ID);
            view! { <district::DistrictPage live=live/> }.into_any()
        }
    }
}

/// Entry point called by the generated JS.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}
