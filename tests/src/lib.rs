//! Test harness for Gridwatch's end-to-end tests: a real `nats-server` per
//! test on a free port with a temporary JetStream store, the real
//! `gridwatch-ingest` and `gridwatch-backend` binaries as child processes,
//! HTTP helpers, event builders and an independent recount of what the
//! state API must show.
//!
//! Modules: [`procs`] (processes), [`events`] (building and publishing
//! events), [`recount`] (expected numbers from raw events).

pub mod events;
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

/// A JSON HTTP client for one backend.
#[derive(Clone)]
pub struct Http {
    pub base: String,
    client: reqwest::Client,
}

impl Http {
    /// A client for `http://127.0.0.1:<port>`.
    pub fn new(port: u16) -> Self {
        Self {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        }
    }

    /// GETs `path`: the status and the body as JSON (or a string value).
    pub async fn get(&self, path: &str) -> Result<(u16, Value)> {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = r.status().as_u16();
        let text = r.text().await?;
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, v))
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
