//! The limits on every caller.

use anyhow::{Result, ensure};
use gridwatch_tests::wait_for;
use serde_json::json;
use std::time::Duration;

use crate::system::*;

/// The limits on every caller: a rate per identity, a bound on reading
/// headers (slowloris), a bound on bodies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_header_and_body_limits_hold() -> Result<()> {
    use gridwatch_tests::Http;
    use std::io::{Read as _, Write as _};
    let sys = System::start().await?;
    let port = gridwatch_tests::procs::free_port()?;
    let _limited = gridwatch_tests::procs::backend_with_env(
        &sys.nats,
        port,
        &sys.work.logs(),
        &[
            ("GRIDWATCH__RATE_PER_S", "5"),
            ("GRIDWATCH__HEADER_TIMEOUT_S", "2"),
        ],
    )?;
    let acc = sys.nats.accounts()?.clone();
    let me = Http::with_token(port, &acc.analyst.token);
    wait_for("the second backend", WAIT, || async {
        (me.get("/healthz").await.ok()?.0 == 200).then_some(())
    })
    .await?;
    // 5 a second with bursts of 20: 40 at once meet the limit.
    let mut limited = 0;
    for _ in 0..40 {
        let (s, v) = me.get("/api/v1/me").await?;
        if s == 429 {
            ensure!(v["error"]["code"] == "too_many_requests", "{v}");
            limited += 1;
        }
    }
    ensure!(limited >= 10, "only {limited} of 40 requests were limited");
    // Another identity has its own budget.
    ensure!(
        Http::with_token(port, &acc.admin.token)
            .get("/api/v1/me")
            .await?
            .0
            == 200
    );
    // Slowloris: headers that never end are cut off after the bound.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", port))?;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")?;
    slow.set_read_timeout(Some(Duration::from_secs(15)))?;
    let t = std::time::Instant::now();
    let mut buf = [0u8; 512];
    let n = slow.read(&mut buf).unwrap_or(0);
    let waited = t.elapsed();
    ensure!(
        waited < Duration::from_secs(14),
        "the half-sent request was still open after {waited:?}"
    );
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    ensure!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
    // A body over the limit: 413 with the JSON error body.
    let big = json!({"user": "x", "password": "y".repeat(100_000)});
    let (s, _, v) = Http::new(sys.port)
        .send(reqwest::Method::POST, "/api/v1/session", Some(&big), &[])
        .await?;
    ensure!(s == 413 && v["error"]["code"] == "too_large", "{s} {v}");
    Ok(())
}
