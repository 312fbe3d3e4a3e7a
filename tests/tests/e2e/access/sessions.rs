//! Sessions, tokens, throttles, the audit trail and the socket's rules.

use anyhow::{Context, Result, ensure};
use gridwatch_tests::wait_for;
use serde_json::{Value, json};

use super::{sha256_hex, ws_next, ws_send};
use crate::system::*;

/// Signing in and out, the cookie's flags, an expired session, a revoked
/// token (SIGHUP), a throttled sign-in, the socket's scope, Origin and
/// cap, the rate limit, a slowloris client and an oversized body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_tokens_throttles_and_sockets_hold() -> Result<()> {
    use gridwatch_tests::Http;
    use reqwest::Method;
    let sys = System::start().await?;
    let port = sys.port;
    let acc = sys.nats.accounts()?.clone();
    let sup = &acc.supervisor;

    // Sign in: the cookie is HttpOnly, SameSite=Strict, expiring; Secure
    // behind TLS.
    let body = json!({"user": sup.user, "password": sup.password});
    let (s, h, me) = Http::new(port)
        .send(
            Method::POST,
            "/api/v1/session",
            Some(&body),
            &[("x-forwarded-proto", "https")],
        )
        .await?;
    ensure!(
        s == 200 && me["role"] == "supervisor" && me["scope"] == "beilun/daqi",
        "{s} {me}"
    );
    let set = h
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    for flag in [
        "HttpOnly",
        "SameSite=Strict",
        "Max-Age=43200",
        "Secure",
        "Path=/",
    ] {
        ensure!(set.contains(flag), "the cookie lacks {flag}: {set}");
    }
    let cookie = gridwatch_tests::session_cookie(&h).context("a cookie")?;
    let plain = Http::sign_in(port, &sup.user, &sup.password).await?;
    let (_, h2, _) = Http::with_cookie(port, &plain)
        .send(Method::GET, "/api/v1/me", None, &[])
        .await?;
    ensure!(h2.get("set-cookie").is_none());
    let as_cookie = Http::with_cookie(port, &cookie);
    let (s, me) = as_cookie.get("/api/v1/me").await?;
    ensure!(s == 200 && me["via"] == "session", "{s} {me}");
    // Sign out: that cookie no longer works, the other session still does.
    let (s, h, _) = as_cookie
        .send(Method::DELETE, "/api/v1/session", None, &[])
        .await?;
    ensure!(s == 204, "sign-out: {s}");
    ensure!(
        h.get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("Max-Age=0")),
        "sign-out does not clear the cookie"
    );
    ensure!(as_cookie.get("/api/v1/me").await?.0 == 401);
    ensure!(Http::with_cookie(port, &plain).get("/api/v1/me").await?.0 == 200);

    // An expired session: a session record whose time is up (written to
    // the bucket as the backend would), beside a live one (the control).
    let kv = sys.admin.get_key_value("GW_SESSIONS").await?;
    let now = chrono::Utc::now().timestamp_millis();
    let tag = {
        let f: Value = serde_json::from_str(&std::fs::read_to_string(&acc.file)?)?;
        let hash = f["users"]
            .as_array()
            .and_then(|u| u.iter().find(|u| u["name"] == sup.user))
            .and_then(|u| u["password"].as_str())
            .unwrap_or_default()
            .to_string();
        sha256_hex(&hash)[..16].to_string()
    };
    for (secret, expires) in [
        ("e".repeat(64), now - 1_000),
        ("f".repeat(64), now + 600_000),
    ] {
        let rec = json!({"holder": {"kind": "user", "name": sup.user}, "tag": tag,
            "created_ms": now - 3_600_000, "expires_ms": expires, "from": "127.0.0.1"});
        kv.put(sha256_hex(&secret), rec.to_string().into()).await?;
    }
    let expired = Http::with_cookie(port, &format!("gw_session={}", "e".repeat(64)));
    let (s, v) = expired.get("/api/v1/me").await?;
    ensure!(
        s == 401 && v["error"]["code"] == "unauthenticated",
        "expired: {s} {v}"
    );
    let live = Http::with_cookie(port, &format!("gw_session={}", "f".repeat(64)));
    ensure!(
        live.get("/api/v1/me").await?.0 == 200,
        "the control session"
    );

    // A revoked token: refused once the backend reloads the users file.
    let token = gridwatch_tests::procs::admin_cli(
        &acc.file,
        &["token", "add", &sup.user, "--label", "revoke-me"],
        "",
    )?;
    let id = token.split('_').nth(1).context("a token id")?.to_string();
    let hup = || -> Result<()> {
        let pid = sys.backend.pid().context("the backend's pid")?;
        std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()?;
        Ok(())
    };
    hup()?;
    let scripted = Http::with_token(port, &token);
    wait_for("the new token", WAIT, || async {
        (scripted.get("/api/v1/me").await.ok()?.0 == 200).then_some(())
    })
    .await?;
    gridwatch_tests::procs::admin_cli(&acc.file, &["token", "revoke", &id], "")?;
    hup()?;
    wait_for("the revoked token to be refused", WAIT, || async {
        (scripted.get("/api/v1/me").await.ok()?.0 == 401).then_some(())
    })
    .await?;
    ensure!(
        Http::with_token(port, &sup.token)
            .get("/api/v1/me")
            .await?
            .0
            == 200
    );

    // Throttled: five wrong passwords, then even the right one waits.
    let sign_in = |user: String, password: String| async move {
        let body = json!({"user": user, "password": password});
        Http::new(port)
            .send(Method::POST, "/api/v1/session", Some(&body), &[])
            .await
    };
    let analyst = acc.analyst.user.clone();
    for k in 0..5 {
        let (s, _, v) = sign_in(analyst.clone(), "wrong password!".into()).await?;
        ensure!(
            s == 401 && v["error"]["code"] == "unauthenticated",
            "attempt {k}: {s} {v}"
        );
    }
    let (s, h, v) = sign_in(analyst, acc.analyst.password.clone()).await?;
    ensure!(
        s == 429 && v["error"]["code"] == "too_many_requests",
        "{s} {v}"
    );
    ensure!(h.get("retry-after").is_some(), "429 without Retry-After");
    // The audit trail has the failures and the sign-ins, with the address.
    let (s, trail) = sys.http.get("/api/v1/audit?limit=1000").await?;
    ensure!(s == 200, "{s} {trail}");
    let rows = trail.as_array().cloned().unwrap_or_default();
    let count = |action: &str, outcome: &str| {
        rows.iter()
            .filter(|r| {
                r["action"] == action && r["outcome"].as_str().is_some_and(|o| o.contains(outcome))
            })
            .count()
    };
    ensure!(count("signin_failed", "bad credentials") >= 5, "{trail}");
    ensure!(count("signin_failed", "throttled") >= 1, "{trail}");
    ensure!(
        count("signin", "ok") >= 2 && count("signout", "ok") >= 1,
        "{trail}"
    );
    ensure!(
        rows.iter()
            .all(|r| (r["from"] == "127.0.0.1" || r["from"] == "users file") && r["ts"].is_string()),
        "{trail}"
    );
    // And the admin actions gridwatch-admin made, once the backend read them.
    ensure!(
        count("token_added", "ok") == 1 && count("token_revoked", "ok") == 1,
        "{trail}"
    );
    ensure!(
        rows.iter().any(|r| r["action"] == "token_revoked"
            && r["target"].as_str().is_some_and(|t| t.starts_with(&id))),
        "{trail}"
    );

    // The socket: scope, Origin, and the cap on subscriptions.
    let url = format!("ws://127.0.0.1:{port}/ws");
    let evil = [("origin", "http://evil.example")];
    let refused =
        tokio_tungstenite::connect_async(gridwatch_tests::ws_request(&url, &sup.token, &evil)?)
            .await;
    ensure!(refused.is_err(), "a socket from another origin was opened");
    let own = format!("http://127.0.0.1:{port}");
    let (mut ws, _) = tokio_tungstenite::connect_async(gridwatch_tests::ws_request(
        &url,
        "",
        &[("origin", &own), ("cookie", &plain)],
    )?)
    .await?;
    ensure!(
        tokio_tungstenite::connect_async(gridwatch_tests::ws_request(&url, "", &[])?)
            .await
            .is_err(),
        "a socket without identity was opened"
    );
    ws_send(&mut ws, &json!({"type": "subscribe", "node": "beilun"})).await?;
    let f = ws_next(&mut ws).await?;
    ensure!(f["type"] == "error" && f["code"] == "forbidden", "{f}");
    ws_send(
        &mut ws,
        &json!({"type": "subscribe", "node": "beilun/daqi"}),
    )
    .await?;
    let f = ws_next(&mut ws).await?;
    ensure!(f["type"] == "snapshot" && f["node"] == "beilun/daqi", "{f}");
    let reg = gridwatch_tests::registry()?;
    let mgs = mgs_under(&reg, "beilun/daqi");
    for m in mgs.iter().take(63) {
        ws_send(&mut ws, &json!({"type": "subscribe", "node": m})).await?;
    }
    ws_send(&mut ws, &json!({"type": "subscribe", "node": mgs[63]})).await?;
    // Snapshots come for the 63, then the error for the 65th.
    let capped = loop {
        let f = ws_next(&mut ws).await?;
        if f["type"] == "error" {
            break f;
        }
    };
    ensure!(capped["code"] == "too_many_subscriptions", "{capped}");
    Ok(())
}
