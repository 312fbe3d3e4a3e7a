//! The page's plain HTTP reads: a JSON GET, and the watchdog's health
//! check.

use wasm_bindgen::JsCast;

/// GETs `url` and parses it as `T`; `None` when the server cannot be
/// reached or answers an error or something else.
pub async fn fetch<T: serde::de::DeserializeOwned>(url: &str) -> Option<T> {
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

/// Reloads the page when `/healthz` answers 200.
pub(super) async fn reload_if_server_up() {
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
