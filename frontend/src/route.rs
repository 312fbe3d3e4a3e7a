//! Which screen the URL asks for, and its query parameters.

/// The screens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/`: the live district page.
    District,
    /// `/wall`: the command-center wall.
    Wall,
    /// `/street/<id>`: a street supervisor's tablet (`<id>` is the street's
    /// short id, e.g. `daqi`, or a node under it).
    Street(String),
    /// `/analyst`: history queries.
    Analyst,
}

/// Parses a path.
pub fn parse(path: &str) -> Route {
    let path = path.trim_end_matches('/');
    if path == "/wall" {
        Route::Wall
    } else if path == "/analyst" {
        Route::Analyst
    } else if let Some(rest) = path.strip_prefix("/street/") {
        let node = if rest.starts_with("beilun/") {
            rest.to_string()
        } else {
            format!("beilun/{rest}")
        };
        Route::Street(node)
    } else {
        Route::District
    }
}

fn location() -> Option<web_sys::Location> {
    web_sys::window().map(|w| w.location())
}

/// The current route.
pub fn current() -> Route {
    parse(
        &location()
            .and_then(|l| l.pathname().ok())
            .unwrap_or_default(),
    )
}

/// The value of `?key=` in the page's URL.
pub fn query(key: &str) -> Option<String> {
    let search = location().and_then(|l| l.search().ok())?;
    web_sys::UrlSearchParams::new_with_str(&search)
        .ok()?
        .get(key)
}

/// Moves the URL to `path` (keeping the query) without reloading, so a
/// reload comes back to the same screen.
pub fn set_path(path: &str) {
    let Some(w) = web_sys::window() else { return };
    let search = w.location().search().unwrap_or_default();
    if let Ok(h) = w.history() {
        let _ = h.replace_state_with_url(
            &wasm_bindgen::JsValue::NULL,
            "",
            Some(&format!("{path}{search}")),
        );
    }
}

/// Sets `?key=value` in the URL without reloading.
pub fn set_query(key: &str, value: &str) {
    let Some(w) = web_sys::window() else { return };
    let Ok(url) = web_sys::Url::new(&w.location().href().unwrap_or_default()) else {
        return;
    };
    url.search_params().set(key, value);
    if let Ok(h) = w.history() {
        let _ = h.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url.href()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(parse("/"), Route::District);
        assert_eq!(parse("/wall"), Route::Wall);
        assert_eq!(parse("/wall/"), Route::Wall);
        assert_eq!(parse("/analyst"), Route::Analyst);
        assert_eq!(parse("/street/daqi"), Route::Street("beilun/daqi".into()));
        assert_eq!(
            parse("/street/beilun/daqi/x/g01"),
            Route::Street("beilun/daqi/x/g01".into())
        );
    }
}
