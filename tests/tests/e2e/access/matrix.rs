//! Every route × every caller, in scope and out of scope; personal data;
//! the security headers.

use anyhow::{Context, Result, ensure};
use gridwatch_tests::events::{at, publish_all, tick};
use serde_json::json;

use crate::system::*;

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
            "/api/v1/tasks?node=beilun/daqi".into(),
            [401, 200, 403, 200, 200, 200],
        ),
        (
            M::GET,
            "/api/v1/tasks?node=beilun/xinqi".into(),
            [401, 200, 403, 403, 200, 200],
        ),
        // History: analysts, admins, supervisors in scope; walls never.
        (
            M::GET,
            "/api/v1/query?node=beilun/daqi&metric=samples&level=street&from=2022-10-15&to=2022-10-16&bucket=1h".into(),
            [401, 403, 403, 200, 200, 200],
        ),
        (
            M::GET,
            "/api/v1/query?node=beilun/xinqi&metric=samples&level=street&from=2022-10-15&to=2022-10-16&bucket=1h".into(),
            [401, 403, 403, 403, 200, 200],
        ),
        // SQL reads the whole district (this body is no statement).
        (
            M::POST,
            "/api/v1/sql".into(),
            [401, 403, 403, 403, 400, 400],
        ),
        (
            M::GET,
            "/api/v1/sql?sql=SELECT%20count(*)%20AS%20n%20FROM%20nodes".into(),
            [401, 403, 403, 403, 200, 200],
        ),
        // The reminders just sent (a public wall's without the items).
        (
            M::GET,
            "/api/v1/reminders?node=beilun/daqi".into(),
            [401, 200, 200, 200, 200, 200],
        ),
        (
            M::GET,
            "/api/v1/reminders?node=beilun/xinqi".into(),
            [401, 200, 200, 403, 200, 200],
        ),
        // Acting: walls and analysts read only; the body here is not an
        // action's (400 for those who may act).
        (
            M::POST,
            "/api/v1/incidents".into(),
            [401, 403, 403, 400, 403, 400],
        ),
        (
            M::POST,
            "/api/v1/incidents/I-1/resolve".into(),
            [401, 403, 403, 400, 403, 400],
        ),
        (
            M::POST,
            "/api/v1/orders/F-1/rectify".into(),
            [401, 403, 403, 400, 403, 400],
        ),
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
