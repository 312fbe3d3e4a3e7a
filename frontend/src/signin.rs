//! Who is signed in, the sign-in page (Chinese and English) and signing
//! out. Every screen asks `GET /api/v1/me` first: 401 shows the sign-in
//! page, which posts to `/api/v1/session`; the backend sets an HttpOnly
//! cookie the page never sees, and the page reloads into the screen the
//! URL asked for. A wall signs in once through its device link instead.

use gridwatch_model::auth::{Me, Role, SignIn, Via};
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::i18n::{LangSwitch, tr};

/// What `/api/v1/me` said.
#[derive(Clone, Debug, PartialEq)]
pub enum Session {
    SignedIn(Me),
    SignedOut,
    /// The server did not answer (the page retries).
    Unreachable,
}

/// Sends a request: the status and the body text.
async fn send(method: &str, url: &str, body: Option<String>) -> Option<(u16, String)> {
    send_with(method, url, body, &[]).await
}

/// Sends a request with extra headers: the status and the body text
/// (`None` when the server cannot be reached).
pub async fn send_with(
    method: &str,
    url: &str,
    body: Option<String>,
    extra: &[(&str, &str)],
) -> Option<(u16, String)> {
    let window = web_sys::window()?;
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    let headers = web_sys::Headers::new().ok()?;
    for (k, v) in extra {
        headers.set(k, v).ok()?;
    }
    if let Some(b) = body {
        headers.set("content-type", "application/json").ok()?;
        init.set_body(&wasm_bindgen::JsValue::from_str(&b));
    }
    init.set_headers(&headers);
    let resp = JsFuture::from(window.fetch_with_str_and_init(url, &init))
        .await
        .ok()?;
    let resp: web_sys::Response = resp.dyn_into().ok()?;
    let text = JsFuture::from(resp.text().ok()?).await.ok()?.as_string()?;
    Some((resp.status(), text))
}

/// GETs `url` as JSON: the body, or the server's error message (its JSON
/// error body's, else the status).
pub async fn get_json<T: serde::de::DeserializeOwned>(url: &str) -> Result<T, String> {
    let Some((status, text)) = send_with("GET", url, None, &[]).await else {
        return Err(tr("服务器无响应", "the server does not answer").into());
    };
    if (200..300).contains(&status) {
        return serde_json::from_str(&text).map_err(|e| e.to_string());
    }
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    Err(v["error"]["message"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| format!("HTTP {status}")))
}

/// Asks who is signed in.
pub async fn who() -> Session {
    match send("GET", "/api/v1/me", None).await {
        Some((200, text)) => {
            serde_json::from_str(&text).map_or(Session::Unreachable, Session::SignedIn)
        }
        Some((401, _)) => Session::SignedOut,
        _ => Session::Unreachable,
    }
}

fn reload() {
    if let Some(w) = web_sys::window() {
        let _ = w.location().reload();
    }
}

/// A role's name.
pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Wall => tr("大屏", "wall"),
        Role::Supervisor => tr("街道督导", "supervisor"),
        Role::Analyst => tr("分析员", "analyst"),
        Role::Admin => tr("管理员", "admin"),
    }
}

/// The sign-in page.
#[component]
pub fn SignInPage() -> impl IntoView {
    let user = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        let body = SignIn {
            user: user.get_untracked().trim().to_string(),
            password: password.get_untracked(),
        };
        leptos::task::spawn_local(async move {
            let text = serde_json::to_string(&body).unwrap_or_default();
            let answer = send("POST", "/api/v1/session", Some(text)).await;
            busy.set(false);
            match answer {
                Some((200, _)) => reload(),
                Some((401, _)) | Some((400, _)) => error.set(Some(
                    tr("用户名或密码错误", "Wrong user name or password").to_string(),
                )),
                Some((429, _)) => error.set(Some(
                    tr(
                        "失败次数过多，请稍后再试",
                        "Too many failed sign-ins: wait a moment and try again",
                    )
                    .to_string(),
                )),
                _ => error.set(Some(
                    tr(
                        "服务器无响应，请重试",
                        "The server did not answer: try again",
                    )
                    .to_string(),
                )),
            }
        });
    };
    view! {
        <div class="signin-page" data-testid="signin">
            <form class="signin" on:submit=submit>
                <div class="signin-head">
                    <h1>{move || tr("北仑区 网格化防控指挥中心", "Beilun District · grid command center")}</h1>
                    <LangSwitch/>
                </div>
                <label>
                    <span>{move || tr("用户名", "User name")}</span>
                    <input type="text" name="user" autocomplete="username" required
                        data-testid="signin-user"
                        prop:value=move || user.get()
                        on:input=move |ev| user.set(event_target_value(&ev))/>
                </label>
                <label>
                    <span>{move || tr("密码", "Password")}</span>
                    <input type="password" name="password" autocomplete="current-password" required
                        data-testid="signin-password"
                        prop:value=move || password.get()
                        on:input=move |ev| password.set(event_target_value(&ev))/>
                </label>
                <p class="signin-error" data-testid="signin-error" hidden=move || error.get().is_none()>
                    {move || error.get().unwrap_or_default()}
                </p>
                <button type="submit" data-testid="signin-submit" disabled=move || busy.get()>
                    {move || tr("登录", "Sign in")}
                </button>
                <p class="signin-note">{move || tr(
                    "大屏请使用管理员发放的设备链接。",
                    "Wall displays sign in with the device link from an administrator.",
                )}</p>
            </form>
        </div>
    }
}

/// Who is signed in, and a sign-out button (not on a wall's device
/// session: a wall has no keyboard to sign in again).
#[component]
pub fn WhoAmI(me: Me) -> impl IntoView {
    let out = move |_| {
        leptos::task::spawn_local(async move {
            let _ = send("DELETE", "/api/v1/session", None).await;
            reload();
        });
    };
    let user = me.user.clone();
    let role = me.role;
    (me.via != Via::Device).then(|| {
        view! {
            <div class="whoami" data-testid="whoami">
                <span data-testid="whoami-user">{user}</span>
                <span class="whoami-role">{move || role_name(role)}</span>
                <button data-testid="signout" on:click=out>{move || tr("退出", "Sign out")}</button>
            </div>
        }
    })
}
