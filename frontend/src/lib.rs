//! Gridwatch's Leptos (client-side rendered, wasm) dashboard.
//!
//! Modules:
//! - [`live`]: the self-healing WebSocket that follows a node.
//! - [`fmt`]: number formatting.
//! - [`district`]: the live district page — the sealed, control and
//!   prevention zones, district totals, and the red micro-grids with reasons.

pub mod district;
pub mod fmt;
pub mod live;

use leptos::prelude::*;
use wasm_bindgen::prelude::wasm_bindgen;

/// The application root.
#[component]
pub fn App() -> impl IntoView {
    let live = live::follow(gridwatch_model::ids::DISTRICT_ID);
    view! { <district::DistrictPage live=live/> }
}

/// Entry point called by the generated JS.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}
