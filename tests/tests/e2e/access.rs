//! Access: NATS with least privilege. Each service signs in as its own
//! NKey user; the field's user may publish events and nothing else, so a
//! forged node state or clock tick is refused by the server itself.

use anyhow::{Context, Result, ensure};
use async_nats::jetstream;
use gridwatch_runtime::nats_auth::Service;
use gridwatch_tests::events::{at, publish_all, tick};
use gridwatch_tests::wait_for;
use serde_json::{Value, json};
use std::time::Duration;

use crate::system::*;

/// Publishes `payload` to `subject` as `user` with JetStream acks: whether
/// the server stored it (a refused publish is never acked).
async fn stored(sys: &System, user: Service, subject: &str, payload: &Value) -> Result<bool> {
    let js = jetstream::new(sys.nats.client_as(user).await?);
    let ack = match js
        .publish(subject.to_string(), payload.to_string().into())
        .await
    {
        Ok(ack) => ack,
        Err(_) => return Ok(false),
    };
    Ok(
        tokio::time::timeout(Duration::from_secs(8), ack.into_future())
            .await
            .is_ok_and(|r| r.is_ok()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_refuses_a_forged_state_or_clock_tick_from_any_other_user() -> Result<()> {
    let sys = System::start().await?;
    publish_all(&sys.js, &[tick(at(11, 0, 0))]).await?;
    sys.wait_all_processed().await?;
    let kv = sys.admin.get_key_value("GW_STATE").await?;
    let before = kv.entry("node.beilun").await?.map(|e| e.revision);
    let forged = json!({"seq": 999_999, "node": "beilun", "forged": true});
    // Each refusal is a publish never acked (a few seconds): all at once.
    let users = [
        Service::Field,
        Service::Replay,
        Service::Backend,
        Service::Reader,
        Service::Ops,
    ];
    let tries = users
        .iter()
        .map(|u| stored(&sys, *u, "$KV.GW_STATE.node.beilun", &forged));
    for (user, r) in users.iter().zip(futures::future::join_all(tries).await) {
        ensure!(!r?, "NATS stored a node state put by {user:?}");
    }
    let after = kv.entry("node.beilun").await?.map(|e| e.revision);
    ensure!(
        before == after,
        "the district's state changed: {before:?} → {after:?}"
    );
    // The clock: only the replay user may move it.
    let later = json!({"now": at(23, 0, 0).to_rfc3339()});
    let clockless = [Service::Field, Service::Backend, Service::Ops];
    let tries = clockless
        .iter()
        .map(|u| stored(&sys, *u, "gw.clock", &later));
    for (user, r) in clockless.iter().zip(futures::future::join_all(tries).await) {
        ensure!(!r?, "NATS stored a clock tick from {user:?}");
    }
    // The field's user may publish events, and nothing else: not stream
    // administration, not dead letters.
    ensure!(stored(&sys, Service::Field, "gw.ev.patrol.daqi", &json!({"v": 1})).await?);
    ensure!(!stored(&sys, Service::Field, "gw.dlq.malformed", &json!({})).await?);
    let field = jetstream::new(sys.nats.client_as(Service::Field).await?);
    ensure!(
        tokio::time::timeout(Duration::from_secs(8), field.delete_stream("GW_EVENTS"))
            .await
            .map_or(true, |r| r.is_err()),
        "the field's user deleted the event stream"
    );
    ensure!(sys.admin.get_stream("GW_EVENTS").await.is_ok());
    // And the control: ingest's own user does write states (so the
    // refusals above are the permissions, not a broken publish).
    ensure!(stored(&sys, Service::Ingest, "$KV.GW_STATE.probe", &json!({})).await?);
    Ok(())
}

/// Who asks, in the matrix.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Nobody,
    Wall,
    PublicWall,
    Supervisor,
    Analyst,
    Admin,
}

const WHO: [Who; 6] = [
    Who::Nobody,
    Who::Wall,
    Who::PublicWall,
    Who::Supervisor,
    Who::Analyst,
    Who::Admin,
];

/// Every route × every role, in scope and out of scope, and what a
/// request without credentials gets at each; personal data only for the
/// admin and the supervisor in scope; the CSP on every answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_role_by_its_scope() -> Result<()> {
    let sys = System::start().await?;
    let reg = gridwatch_tests::registry()?;
    let accounts = sys.nats.accounts()?.clone();
    let inside = mgs_under(&reg, "beilun/daqi")[0].clone();
    let outside = mgs_under(&reg, "beilun/xinqi")[0].clone();
    publish_all(&sys.js, &[tick(at(11, 0, 0))]).await?;
    sys.wait_all_processed().await?;
    let wall_cookie = gridwatch_tests::Http::device_cookie(sys.port, &accounts.wall_link).await?;
    let public_cookie =
        gridwatch_tests::Http::device_cookie(sys.port, &accounts.public_wall_link).await?;
    let client = |w: Who| match w {
        Who::Nobody => gridwatch_tests::Http::new(sys.port),
        Who::Wall => gridwatch_tests::Http::with_cookie(sys.port, &wall_cookie),
        Who::PublicWall => gridwatch_tests::Http::with_cookie(sys.port, &public_cookie),
        Who::Supervisor => gridwatch_tests::Http::with_token(sys.port, &accounts.supervisor.token),
        Who::Analyst => gridwatch_tests::Http::with_token(sys.port, &accounts.analyst.token),
        Who::Admin => gridwatch_tests::Http::with_token(sys.port, &accounts.admin.token),
    };
    // (route, expected status per role: nobody, wall, public wall,
    // supervisor, analyst, admin)
    let st = |n: &str| format!("/api/v1/state?node={n}");
    let rg = |n: &str| format!("/api/v1/registry?node={n}");
    let it = |n: &str| format!("/api/v1/items?node={n}&kind=flags");
    use reqwest::Method as M;
    let bad_sign_in = json!({"user": "nobody", "password": "not a password"});
    let matrix: Vec<(M, String, [u16; 6])> = vec![
        (M::GET, "/healthz".into(), [200, 200, 200, 200, 200, 200]),
        (M::GET, "/".into(), [200, 200, 200, 200, 200, 200]),
        (
            M::GET,
            "/api/v1/hierarchy".into(),
            [401, 200, 200, 200, 200, 200],
        ),
        (M::GET, "/api/v1/me".into(), [401, 200, 200, 200, 200, 200]),
        (M::GET, st("beilun"), [401, 200, 200, 403, 200, 200]),
        (M::GET, st("beilun/daqi"), [401, 200, 200, 200, 200, 200]),
        (M::GET, st(&inside), [401, 200, 403, 200, 200, 200]),
        (M::GET, st(&outside), [401, 200, 403, 403, 200, 200]),
        (M::GET, st("beilun/_map"), [401, 200, 200, 403, 200, 200]),
        (M::GET, rg(&inside), [401, 200, 403, 200, 200, 200]),
        (M::GET, rg(&outside), [401, 200, 403, 403, 200, 200]),
        (M::GET, it(&inside), [401, 200, 403, 200, 200, 200]),
        (M::GET, it(&outside), [401, 200, 403, 403, 200, 200]),
        (
            M::GET,
            "/api/v1/audit".into(),
            [401, 403, 403, 403, 403, 200],
        ),
        (M::GET, "/metrics".into(), [401, 403, 403, 403, 403, 200]),
        (
            M::GET,
            "/api/v1/no-such-thing".into(),
            [401, 404, 404, 404, 404, 404],
        ),
        (M::GET, "/api".into(), [401, 404, 404, 404, 404, 404]),
        (M::GET, "/ws".into(), [401, 400, 400, 400, 400, 400]),
        // A wrong password, for anyone; signing out without a session;
        // a device link that is not one.
        // (the sixth wrong password from one address in a row waits: 429)
        (
            M::POST,
            "/api/v1/session".into(),
            [401, 401, 401, 401, 401, 429],
        ),
        (
            M::DELETE,
            "/api/v1/session".into(),
            [401, 204, 204, 204, 204, 204],
        ),
        (
            M::GET,
            format!("/device/gwd_00000000_{}", "0".repeat(64)),
            [401, 401, 401, 401, 401, 401],
        ),
    ];
    let mut table = String::from(
        "| route | nobody | wall | public wall | supervisor (Daqi) | analyst | admin |\n|---|---|---|---|---|---|---|\n",
    );
    let mut wrong = Vec::new();
    let mut checked = 0;
    // The inline loader of index.html, hashed here on its own.
    let loader = gridwatch_tests::inline_script_hash(&std::fs::read_to_string(
        gridwatch_tests::root().join("frontend/dist/index.html"),
    )?)
    .context("index.html has an inline script")?;
    let mut csp = String::new();
    for (method, route, want) in &matrix {
        let mut row = if *method == M::GET {
            format!("| `{route}` |")
        } else {
            format!("| `{method} {route}` |")
        };
        let body = (*method == M::POST).then_some(&bad_sign_in);
        for (k, w) in WHO.iter().enumerate() {
            // Signing a wall out ends its session: a fresh one for that.
            let c = match (method, w) {
                (&M::DELETE, Who::Wall | Who::PublicWall) => {
                    let link = if *w == Who::Wall {
                        &accounts.wall_link
                    } else {
                        &accounts.public_wall_link
                    };
                    let fresh = gridwatch_tests::Http::device_cookie(sys.port, link).await?;
                    gridwatch_tests::Http::with_cookie(sys.port, &fresh)
                }
                _ => client(*w),
            };
            let (status, headers, body) = c.send(method.clone(), route, body, &[]).await?;
            checked += 1;
            row.push_str(&format!(" {status} |"));
            if status != want[k] {
                wrong.push(format!(
                    "{route} as {w:?}: {status}, expected {}: {body}",
                    want[k]
                ));
            }
            if status >= 400 && route != "/" && body["error"]["code"].as_str().is_none() {
                wrong.push(format!(
                    "{route} as {w:?}: {status} without the JSON error body: {body}"
                ));
            }
            let got_csp = headers
                .get("content-security-policy")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if csp.is_empty() {
                csp = got_csp.to_string();
            }
            if got_csp != csp || !got_csp.contains(&loader) {
                wrong.push(format!(
                    "{route} as {w:?}: CSP `{got_csp}` (the loader's hash {loader})"
                ));
            }
            if headers
                .get("x-content-type-options")
                .is_none_or(|v| v != "nosniff")
            {
                wrong.push(format!("{route} as {w:?}: no nosniff"));
            }
        }
        table.push_str(&row);
        table.push('\n');
    }
    // A real WebSocket upgrade, as each: 101 with an identity, else 401.
    let mut row = "| `/ws` (upgrade) |".to_string();
    for w in WHO {
        let url = format!("ws://127.0.0.1:{}/ws", sys.port);
        let wall = format!(
            "gw_session={}",
            wall_cookie.trim_start_matches("gw_session=")
        );
        let req = match w {
            Who::Nobody => gridwatch_tests::ws_request(&url, "", &[])?,
            Who::Wall => gridwatch_tests::ws_request(&url, "", &[("cookie", &wall)])?,
            Who::PublicWall => {
                gridwatch_tests::ws_request(&url, "", &[("cookie", &public_cookie)])?
            }
            Who::Supervisor => gridwatch_tests::ws_request(&url, &accounts.supervisor.token, &[])?,
            Who::Analyst => gridwatch_tests::ws_request(&url, &accounts.analyst.token, &[])?,
            Who::Admin => gridwatch_tests::ws_request(&url, &accounts.admin.token, &[])?,
        };
        let status = match tokio_tungstenite::connect_async(req).await {
            Ok((_, resp)) => resp.status().as_u16(),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
            Err(e) => anyhow::bail!("upgrade as {w:?}: {e}"),
        };
        checked += 1;
        let want = if w == Who::Nobody { 401 } else { 101 };
        if status != want {
            wrong.push(format!("/ws upgrade as {w:?}: {status}, expected {want}"));
        }
        row.push_str(&format!(" {status} |"));
    }
    table.push_str(&row);
    table.push('\n');
    std::fs::write(
        gridwatch_tests::artifacts_dir().join("access-matrix.md"),
        &table,
    )?;
    println!("{checked} route × role checks\n{table}");
    ensure!(wrong.is_empty(), "{}", wrong.join("\n"));
    ensure!(
        csp.contains("frame-ancestors 'none'")
            && csp.contains("script-src 'self' 'wasm-unsafe-eval' 'sha256-")
            && !csp.contains("script-src 'self' 'unsafe-inline'"),
        "{csp}"
    );

    // Personal data: the team's names only for the admin and for the
    // supervisor in scope.
    let team_names = |n: &str| -> Vec<String> {
        let i = reg.lookup(n).expect("a micro-grid of the registry");
        let t = &reg.node(i).mg.as_ref().expect("a micro-grid").team;
        std::iter::once(t.leader.clone())
            .chain(t.members.iter().cloned())
            .chain(t.volunteers.iter().cloned())
            .collect()
    };
    for (w, node, sees) in [
        (Who::Admin, &inside, true),
        (Who::Admin, &outside, true),
        (Who::Supervisor, &inside, true),
        (Who::Wall, &inside, false),
        (Who::Analyst, &inside, false),
        (Who::Analyst, &outside, false),
        (Who::Wall, &outside, false),
    ] {
        let (s, v) = client(w).get(&rg(node)).await?;
        ensure!(s == 200, "{w:?} {node}: {s} {v}");
        let text = v.to_string();
        let shown = team_names(node)
            .iter()
            .any(|name| text.contains(name.as_str()));
        ensure!(
            shown == sees,
            "{w:?} sees the team of {node}: {shown}, expected {sees}: {text}"
        );
    }
    // No response to a wall or an analyst, for any node they read, holds a
    // name of any team.
    // (A name that is also part of a place name is no leak: left out.)
    let places = client(Who::Admin)
        .get("/api/v1/hierarchy")
        .await?
        .1
        .to_string();
    let every_name: Vec<String> = reg
        .microgrids
        .iter()
        .flat_map(|&m| team_names(&reg.node(m).id.to_string()))
        .filter(|n| n.chars().count() >= 2 && !places.contains(n.as_str()))
        .collect();
    for w in [Who::Wall, Who::PublicWall, Who::Analyst] {
        let c = client(w);
        for route in [
            st("beilun"),
            st("beilun/daqi"),
            st(&inside),
            st("beilun/_map"),
            st("beilun/_testing"),
            rg(&inside),
            rg(&outside),
            rg("beilun/daqi"),
            "/api/v1/hierarchy".to_string(),
            it(&inside),
        ] {
            let (_, v) = c.get(&route).await?;
            let text = v.to_string();
            if let Some(n) = every_name.iter().find(|n| text.contains(n.as_str())) {
                anyhow::bail!("{w:?} got the team member `{n}` at {route}");
            }
        }
    }
    Ok(())
}

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
    let bad = json!({"user": acc.analyst.user, "password": "wrong password!"});
    for k in 0..5 {
        let (s, _, v) = Http::new(port)
            .send(Method::POST, "/api/v1/session", Some(&bad), &[])
            .await?;
        ensure!(
            s == 401 && v["error"]["code"] == "unauthenticated",
            "attempt {k}: {s} {v}"
        );
    }
    let good = json!({"user": acc.analyst.user, "password": acc.analyst.password});
    let (s, h, v) = Http::new(port)
        .send(Method::POST, "/api/v1/session", Some(&good), &[])
        .await?;
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

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_send(ws: &mut Socket, v: &Value) -> Result<()> {
    use futures::SinkExt as _;
    ws.send(tokio_tungstenite::tungstenite::Message::text(v.to_string()))
        .await?;
    Ok(())
}

/// The next text frame as JSON (skipping heartbeats).
async fn ws_next(ws: &mut Socket) -> Result<Value> {
    use futures::StreamExt as _;
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await?
            .context("the socket closed")??;
        if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
            let v: Value = serde_json::from_str(t.as_str())?;
            if v["type"] != "heartbeat" {
                return Ok(v);
            }
        }
    }
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
