//! Gridwatch's Leptos (client-side rendered, wasm) dashboard.
//!
//! Modules:
//! - [`route`]: which screen the URL asks for (`/`, `/wall`, `/street/<id>`).
//! - [`signin`]: who is signed in, the sign-in page, signing out.
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

pub mod analyst;
pub mod board;
pub mod components;
pub mod deadlines;
pub mod district;
pub use gridwatch_model::fmt;
pub mod geo;
pub mod i18n;
pub mod live;
pub mod map;
pub mod outbox;
pub mod perf;
pub mod reminders;
pub mod route;
pub mod signin;
pub mod street;
pub mod tasks;
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

/// The application root: the screen the URL asks for once someone is
/// signed in, else the sign-in page.
#[component]
pub fn App() -> impl IntoView {
    i18n::provide();
    let session = RwSignal::new(None::<signin::Session>);
    leptos::task::spawn_local(async move {
        loop {
            let s = signin::who().await;
            let retry = s == signin::Session::Unreachable;
            session.set(Some(s));
            if !retry {
                return;
            }
            gloo_sleep(2_000).await;
        }
    });
    move || {
        match session.get() {
        None => view! { <div class="loading">"…"</div> }.into_any(),
        Some(signin::Session::SignedOut) => view! { <signin::SignInPage/> }.into_any(),
        Some(signin::Session::Unreachable) => view! {
            <div class="loading" data-testid="unreachable">{move || i18n::tr("服务器无响应，正在重试…", "The server does not answer: retrying…")}</div>
        }
        .into_any(),
        Some(signin::Session::SignedIn(me)) => {
            // Someone scoped below the district starts at their own part
            // of the tree (the district's screens are outside it).
            let district = gridwatch_model::ids::DISTRICT_ID;
            if me.scope != district
                && !matches!(me.role, gridwatch_model::auth::Role::Analyst | gridwatch_model::auth::Role::Admin)
                && !matches!(route::current(), route::Route::Street(_) | route::Route::Analyst)
            {
                route::set_path(&format!("/street/{}", me.scope));
            }
            provide_context(components::PublicWall(me.public));
            view! {
                <signin::WhoAmI me=me/>
                {screen()}
            }
            .into_any()
        }
    }
    }
}

/// Waits `ms` milliseconds.
async fn gloo_sleep(ms: i32) {
    let p = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(p).await;
}

/// The screen of the URL.
fn screen() -> AnyView {
    match route::current() {
        route::Route::Wall => view! { <wall::WallPage/> }.into_any(),
        route::Route::Street(node) => view! { <street::StreetPage node=node/> }.into_any(),
        route::Route::Analyst => view! { <analyst::AnalystPage/> }.into_any(),
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
