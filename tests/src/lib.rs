//! Test harness for Gridwatch's end-to-end tests: a real `nats-server` per
//! test on a free port with a temporary JetStream store, the real
//! `gridwatch-ingest` and `gridwatch-backend` binaries as child processes,
//! HTTP helpers, event builders and an independent recount of what the
//! state API must show.
//!
//! Modules: [`procs`] (processes, NATS users), [`accounts`] (people),
//! [`events`] (building and publishing events), [`people`] (signing in in
//! a browser), [`recount`] (expected numbers from raw events),
//! [`dingtalk`] (a strict fake of DingTalk's robot webhook).

pub mod accounts;
pub mod dingtalk;
pub mod events;
pub mod people;
pub mod procs;
/// The independent recount (the `gridwatch-recount` crate).
pub use gridwatch_recount::fold as recount;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The workspace root: from the `CARGO_MANIFEST_DIR` cargo sets when it
/// runs a test or bench (a build in a shared target dir may come from
/// another checkout), else the one this crate was built in.
pub fn root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("..")
}

/// Where tests save screenshots and other artifacts.
pub fn artifacts_dir() -> PathBuf {
    let d = std::env::var_os("GRIDWATCH_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("tests/artifacts"));
    let _ = std::fs::create_dir_all(&d);
    d
}

/// Loads the committed registry (reference data the tests count against).
pub fn registry() -> Result<gridwatch_model::Registry> {
    let text = std::fs::read_to_string(root().join("data/beilun-registry.json"))?;
    Ok(gridwatch_model::Registry::from_json(&text)?)
}

/// Polls `f` until it returns `Some`, or fails after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A JSON HTTP client for one backend, with an API token or without.
#[derive(Clone)]
pub struct Http {
    pub base: String,
    client: reqwest::Client,
    token: Option<String>,
    cookie: Option<String>,
}

impl Http {
    /// A client for `http://127.0.0.1:<port>` without credentials.
    pub fn new(port: u16) -> Self {
        Self {
            base: format!("http://127.0.0.1:{port}"),
            // Redirects are answers to look at (a device link's 303).
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            token: None,
            cookie: None,
        }
    }

    /// A client sending `Cookie: <cookie>` (e.g. `gw_session=…`).
    pub fn with_cookie(port: u16, cookie: &str) -> Self {
        Self {
            cookie: Some(cookie.to_string()),
            ..Self::new(port)
        }
    }

    /// Signs in with a password: the session cookie (`gw_session=…`).
    pub async fn sign_in(port: u16, user: &str, password: &str) -> Result<String> {
        let body = serde_json::json!({"user": user, "password": password});
        let (s, h, v) = Self::new(port)
            .send(reqwest::Method::POST, "/api/v1/session", Some(&body), &[])
            .await?;
        if s != 200 {
            bail!("signing in as {user}: HTTP {s}: {v}");
        }
        session_cookie(&h).context("no session cookie")
    }

    /// Opens a wall's device link: the wall's session cookie.
    pub async fn device_cookie(port: u16, link: &str) -> Result<String> {
        let (s, h, v) = Self::new(port)
            .send(reqwest::Method::GET, link, None, &[])
            .await?;
        if s != 303 {
            bail!("device link: HTTP {s}: {v}");
        }
        session_cookie(&h).context("no session cookie")
    }

    /// A client sending `Authorization: Bearer <token>`.
    pub fn with_token(port: u16, token: &str) -> Self {
        Self {
            token: Some(token.to_string()),
            ..Self::new(port)
        }
    }

    /// Sends `method path` with `body` (JSON) and `headers`: the status,
    /// the response headers and the body as JSON (or a string value).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<(u16, reqwest::header::HeaderMap, Value)> {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .timeout(Duration::from_secs(10));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = r.status().as_u16();
        let h = r.headers().clone();
        let text = r.text().await?;
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, h, v))
    }

    /// GETs `path`: the status and the body as JSON (or a string value).
    /// POSTs `body` as JSON: (status, body).
    pub async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        let (s, _, v) = self
            .send(reqwest::Method::POST, path, Some(body), &[])
            .await?;
        Ok((s, v))
    }

    pub async fn get(&self, path: &str) -> Result<(u16, Value)> {
        let (s, _, v) = self.send(reqwest::Method::GET, path, None, &[]).await?;
        Ok((s, v))
    }

    /// The state of `node`, once the backend has it.
    pub async fn state(&self, node: &str) -> Result<Value> {
        let (s, v) = self.get(&format!("/api/v1/state?node={node}")).await?;
        if s != 200 {
            bail!("state of {node}: HTTP {s}: {v}");
        }
        Ok(v)
    }

    /// Waits until ingest reports it has processed stream sequence `seq`
    /// and the backend has seen that report.
    pub async fn wait_processed(&self, seq: u64, timeout: Duration) -> Result<()> {
        wait_for(&format!("ingest to process seq {seq}"), timeout, || async {
            let (_, h) = self.get("/healthz").await.ok()?;
            let last = h.get("last_seq").and_then(Value::as_u64)?;
            (last >= seq).then_some(())
        })
        .await
    }
}

/// `'sha256-…'` of the first inline `<script>` of an HTML page, as a CSP
/// names it.
pub fn inline_script_hash(html: &str) -> Option<String> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let start = html.find("<script type=\"module\">")? + "<script type=\"module\">".len();
    let len = html[start..].find("</script>")?;
    let digest = sha2::Sha256::digest(&html.as_bytes()[start..start + len]);
    Some(format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    ))
}

/// The `gw_session=…` pair of a response's `Set-Cookie`.
pub fn session_cookie(h: &reqwest::header::HeaderMap) -> Option<String> {
    h.get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("gw_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}

/// A WebSocket request to `url` with `Authorization: Bearer <token>` (none
/// when empty) and `extra` headers (e.g. an `Origin`, a `Cookie`).
pub fn ws_request(
    url: &str,
    token: &str,
    extra: &[(&str, &str)],
) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    let mut req = url.into_client_request()?;
    let h = req.headers_mut();
    if !token.is_empty() {
        h.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
    }
    for (k, v) in extra {
        h.insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes())?,
            HeaderValue::from_str(v)?,
        );
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use gridwatch_model::limits;

    /// The README's wire-limits tables say what the decoder enforces.
    #[test]
    fn the_readme_lists_every_wire_limit() {
        let readme = std::fs::read_to_string(super::root().join("README.md")).expect("README");
        for r in limits::RANGES {
            let row = format!("| {} | `{}` | {}–{} |", r.kind, r.field, r.min, r.max);
            assert!(readme.contains(&row), "README lacks `{row}`");
        }
        for l in limits::LENGTHS {
            let row = format!("| {} | `{}` | {} |", l.kind, l.field, l.max_bytes);
            assert!(readme.contains(&row), "README lacks `{row}`");
        }
        let id = format!("`id` is 1–{} characters", limits::ID_CHARS);
        assert!(readme.contains(&id), "README lacks `{id}`");
    }
}
