//! The screens in headless Chromium: the wall at both sizes, the tablet
//! drill-down, and the district page live and stale.

use anyhow::{Context, Result, ensure};
use gridwatch_model::{Level, Zone};
use gridwatch_tests::events::{self, at, msg, publish_all, tick};
use gridwatch_tests::people;
use gridwatch_tests::procs::{self};
use gridwatch_tests::{registry, wait_for};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

use crate::system::*;

/// The browser tests need the built frontend.
pub(crate) fn require_frontend() -> Result<()> {
    let dist = gridwatch_tests::root().join("frontend/dist/index.html");
    ensure!(
        dist.exists(),
        "build the frontend first: scripts/build-frontend.sh"
    );
    Ok(())
}

/// Saves a screenshot of the page as `tests/artifacts/<name>.png`.
pub(crate) async fn screenshot(c: &fantoccini::Client, name: &str) -> Result<()> {
    let png = c.screenshot().await?;
    std::fs::write(
        gridwatch_tests::artifacts_dir().join(format!("{name}.png")),
        png,
    )?;
    Ok(())
}

/// Headless Chromium (through chromedriver) with a window of `size`.
pub(crate) async fn chromium(
    sys: &System,
    size: (u32, u32),
) -> Result<(procs::Proc, fantoccini::Client)> {
    let (driver, url) = procs::chromedriver(&sys.work.logs())?;
    let caps = procs::chromium_caps(size, &[]);
    let c =
        fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .context("starting headless Chromium through chromedriver")?;
    Ok((driver, c))
}

/// The text of the element with `data-testid` = `id`, if it is there.
pub(crate) async fn text_of(c: &fantoccini::Client, id: &str) -> Option<String> {
    let el = c
        .find(fantoccini::Locator::Css(&format!("[data-testid='{id}']")))
        .await
        .ok()?;
    el.text().await.ok()
}

/// Waits until the element `id` reads `expected`.
pub(crate) async fn wait_text(c: &fantoccini::Client, id: &str, expected: &str) -> Result<()> {
    wait_for(&format!("`{id}` to read {expected}"), WAIT, || async {
        (text_of(c, id).await? == expected).then_some(())
    })
    .await
}

/// Sets the viewport (not the window) to `w`×`h` CSS pixels, then checks
/// that the page fits: no horizontal or vertical scrolling.
pub(crate) async fn fit_viewport(c: &fantoccini::Client, w: u32, h: u32) -> Result<()> {
    c.set_window_size(w, h).await?;
    // The window includes the browser's frame: grow it by the difference.
    let inner = c
        .execute("return [window.innerWidth, window.innerHeight];", vec![])
        .await?;
    let (iw, ih) = (
        inner[0].as_u64().unwrap_or(u64::from(w)) as u32,
        inner[1].as_u64().unwrap_or(u64::from(h)) as u32,
    );
    c.set_window_size(w + w.saturating_sub(iw), h + h.saturating_sub(ih))
        .await?;
    wait_for(&format!("a {w}×{h} viewport"), WAIT, || async {
        let v = c
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await
            .ok()?;
        (v[0].as_u64() == Some(u64::from(w)) && v[1].as_u64() == Some(u64::from(h))).then_some(())
    })
    .await?;
    let fits = c
        .execute(
            "const d = document.documentElement; \
             return [d.scrollWidth, d.scrollHeight, window.innerWidth, window.innerHeight];",
            vec![],
        )
        .await?;
    let v: Vec<u64> = fits
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    ensure!(v.len() == 4, "no page size: {fits}");
    ensure!(
        v[2] == u64::from(w) && v[3] == u64::from(h),
        "viewport {}×{} instead of {w}×{h}",
        v[2],
        v[3]
    );
    ensure!(
        v[0] <= v[2] && v[1] <= v[3],
        "scrollbars at {w}×{h}: content {}×{}",
        v[0],
        v[1]
    );
    Ok(())
}

/// The wall at 1920×1080 and 3840×2160: no scrollbars; its red count, map
/// and sealed-zone population equal the state API's after events; a
/// micro-grid turning red reaches the ticker; a backend restart heals
/// without a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_wall_matches_the_api_at_both_sizes_and_heals() -> Result<()> {
    require_frontend()?;
    let mut sys = System::start().await?;
    let reg = registry()?;
    let sealed = first_with_zone(&reg, Zone::Sealed);
    let daqi = mgs_under(&reg, "beilun/daqi");
    publish_all(
        &sys.js,
        &[
            tick(at(9, 0, 0)),
            msg(&events::testing("w1", at(8, 10, 0), &daqi[0], 400, 20)),
            msg(&events::patrol("w2", at(8, 50, 0), &sealed, 2, [0; 5])),
        ],
    )
    .await?;
    sys.wait_all_processed().await?;
    let (_driver, c) = chromium(&sys, (1920, 1080)).await?;
    let result = async {
        // The wall signs in once with its device link, as provisioned.
        let base = format!("http://127.0.0.1:{}", sys.port);
        people::open_device_link(&c, &base, &sys.nats.accounts()?.wall_link).await?;
        c.goto(&format!("{base}/wall")).await?;
        let agree = |c: fantoccini::Client, http: gridwatch_tests::Http| async move {
            let d = http.state("beilun").await?;
            let red = gridwatch_model::fmt::thousands(d["red_microgrids"].as_u64().unwrap_or(0));
            let sealed_pop = gridwatch_model::fmt::thousands(
                d["zones"]["sealed"]["population"].as_u64().unwrap_or(0),
            );
            wait_text(&c, "wall-red", &red).await?;
            wait_text(&c, "zone-sealed-population", &sealed_pop).await?;
            // The chart's samples today add up to the API's.
            let samples = gridwatch_model::fmt::thousands(
                d["testing"]["samples_today"].as_u64().unwrap_or(0),
            );
            wait_text(&c, "chart-total", &samples).await?;
            wait_for("the map's red count", WAIT, || async {
                text_of(&c, "map-red")
                    .await?
                    .starts_with(&format!("{red} "))
                    .then_some(())
            })
            .await?;
            anyhow::Ok(red)
        };
        let red0 = agree(c.clone(), sys.http.clone()).await?;
        // The district, the map and the testing board all came over one
        // socket: the backend has one WebSocket client, the wall.
        assert_one_socket(&sys, "the wall").await?;
        for (w, h) in [(1920, 1080), (3840, 2160)] {
            fit_viewport(&c, w, h).await?;
            screenshot(&c, &format!("wall-{w}x{h}")).await?;
        }
        fit_viewport(&c, 1920, 1080).await?;
        // A sealed-zone exit: the micro-grid turns red, the ticker says so,
        // and the counts still agree with the API.
        publish_all(
            &sys.js,
            &[msg(&events::video(
                "w3",
                at(9, 1, 0),
                &sealed,
                "FW",
                "sealed_exit",
                "raised",
            ))],
        )
        .await?;
        sys.wait_all_processed().await?;
        let red1 = agree(c.clone(), sys.http.clone()).await?;
        ensure!(red1 != red0, "the red count did not move ({red0})");
        wait_for("a red alert on the ticker", WAIT, || async {
            c.find(fantoccini::Locator::Css(
                "[data-testid='ticker'] .alert.status-red",
            ))
            .await
            .ok()
            .map(|_| ())
        })
        .await?;
        // The backend restarts under the open page; it heals by itself.
        sys.backend.kill_hard();
        wait_for("the wall to notice", Duration::from_secs(30), || async {
            c.find(fantoccini::Locator::Css(".conn.conn-open"))
                .await
                .is_err()
                .then_some(())
        })
        .await?;
        sys.backend = procs::backend(&sys.nats, sys.port, &sys.work.logs())?;
        publish_all(
            &sys.js,
            &[msg(&events::video(
                "w4",
                at(9, 2, 0),
                &sealed,
                "FW",
                "sealed_exit",
                "rectified",
            ))],
        )
        .await?;
        sys.wait_all_processed().await?;
        let red2 = agree(c.clone(), sys.http.clone()).await?;
        ensure!(red2 != red1, "no new data after the restart ({red1})");
        screenshot(&c, "wall-after-restart").await?;
        // Rotation, in English: the wall moves on to a street, whose figures
        // are the API's for that street, and lists its communities.
        c.goto(&format!(
            "http://127.0.0.1:{}/wall?rotate=2&lang=en",
            sys.port
        ))
        .await?;
        let street = wait_for("the wall to rotate to a street", WAIT, || async {
            let name = text_of(&c, "subtitle").await?;
            reg.nodes
                .iter()
                .find(|n| n.level == Level::Street && n.name_en == name)
                .map(|n| n.id.to_string())
        })
        .await?;
        let s = sys.http.state(&street).await?;
        let pop = gridwatch_model::fmt::thousands(
            s["zones"]["prevention"]["population"].as_u64().unwrap_or(0),
        );
        wait_text(&c, "zone-prevention-population", &pop).await?;
        // The map zooms on that street: its outline is the one in focus and
        // the view box is narrower than the district's.
        let focus = c
            .find(fantoccini::Locator::Css(
                "[data-testid='map'] path.street.focus",
            ))
            .await
            .context("a street in focus on the map")?;
        ensure!(
            focus.attr("data-node").await?.as_deref() == Some(street.as_str()),
            "the map is not zoomed on {street}"
        );
        let view_box = |v: Option<String>| -> Vec<f64> {
            v.unwrap_or_default()
                .split(' ')
                .filter_map(|x| x.parse().ok())
                .collect()
        };
        let zoomed = view_box(
            c.find(fantoccini::Locator::Css("[data-testid='map']"))
                .await?
                .attr("viewBox")
                .await?,
        );
        ensure!(
            zoomed.len() == 4 && (zoomed[0] != 0.0 || zoomed[1] != 0.0),
            "the view box {zoomed:?} is the whole district's"
        );
        screenshot(&c, "wall-street-en").await?;
        anyhow::Ok(())
    }
    .await;
    let _ = c.close().await;
    result
}

/// Asserts the backend has exactly one WebSocket client (the page under
/// test: one socket per page, whatever it follows).
async fn assert_one_socket(sys: &System, page: &str) -> Result<()> {
    let (_, metrics) = sys.http.get("/metrics").await?;
    let clients = metrics
        .as_str()
        .and_then(|m| m.lines().find(|l| l.starts_with("gridwatch_ws_clients ")))
        .map(str::to_string);
    ensure!(
        clients.as_deref() == Some("gridwatch_ws_clients 1"),
        "{page} should hold one socket: {clients:?}"
    );
    Ok(())
}

/// The street tablet at 1024×768 and 1280×800: no scrollbars; tap down
/// from the street to a micro-grid, whose figures are the API's, and back
/// up by the breadcrumbs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_tablet_drills_down_and_back() -> Result<()> {
    require_frontend()?;
    let mut sys = System::start().await?;
    let reg = registry()?;
    let daqi = mgs_under(&reg, "beilun/daqi");
    publish_all(
        &sys.js,
        &[
            tick(at(9, 0, 0)),
            msg(&events::testing("s1", at(8, 30, 0), &daqi[0], 120, 4)),
        ],
    )
    .await?;
    sys.wait_all_processed().await?;
    let street_name = reg
        .lookup("beilun/daqi")
        .map(|i| reg.node(i).name.clone())
        .context("Daqi")?;
    let (_driver, c) = chromium(&sys, (1024, 768)).await?;
    let result = async {
        // Daqi's supervisor signs in on the tablet, as a person does.
        let base = format!("http://127.0.0.1:{}", sys.port);
        people::sign_in(&c, &base, "/street/daqi", &sys.nats.accounts()?.supervisor).await?;
        wait_text(&c, "node-name", &street_name).await?;
        assert_one_socket(&sys, "the tablet").await?;
        for (w, h) in [(1024, 768), (1280, 800)] {
            fit_viewport(&c, w, h).await?;
            screenshot(&c, &format!("street-{w}x{h}")).await?;
        }
        // Down: street → community → grid → micro-grid, tapping the first
        // (worst) row each time.
        let mut name = street_name.clone();
        for _ in 0..3 {
            let row = c
                .find(fantoccini::Locator::Css("[data-testid='child']"))
                .await?;
            row.click().await?;
            name = wait_for("the next level", WAIT, || async {
                let now = text_of(&c, "node-name").await?;
                (now != name && now != "–").then_some(now)
            })
            .await?;
        }
        c.find(fantoccini::Locator::Css("[data-testid='mg-detail']"))
            .await
            .context("a micro-grid page at the bottom")?;
        // Its figures are the API's: the URL names the micro-grid.
        let url = c.current_url().await?;
        let mg = url
            .path()
            .strip_prefix("/street/")
            .context("a tablet URL")?
            .to_string();
        let s = sys.http.state(&mg).await?;
        ensure!(s["name"] == json!(name), "{mg} is not {name}");
        let tested =
            gridwatch_model::fmt::thousands(s["testing"]["samples_today"].as_u64().unwrap_or(0));
        wait_for("the micro-grid's tests", WAIT, || async {
            text_of(&c, "mg-tested")
                .await?
                .starts_with(&format!("{tested} /"))
                .then_some(())
        })
        .await?;
        // Its team is the registry's.
        let leader = reg
            .lookup(&mg)
            .and_then(|i| reg.node(i).mg.as_ref())
            .map(|m| m.team.leader.clone())
            .context("a micro-grid in the registry")?;
        wait_text(&c, "mg-leader", &leader).await?;
        // A flag raised, an incident reported and a designation made on it
        // reach the open tablet, each with how long it has been open by the
        // deployment clock (09:00).
        publish_all(
            &sys.js,
            &[
                msg(&events::video(
                    "tv1",
                    at(8, 50, 0),
                    &mg,
                    "TF1",
                    "gathering",
                    "raised",
                )),
                msg(&events::incident(
                    "ti1",
                    at(8, 40, 0),
                    &mg,
                    "TI1",
                    "reported",
                    2,
                )),
                msg(&events::zone("tz1", at(8, 55, 0), &mg, "control")),
            ],
        )
        .await?;
        for (id, expected) in [
            ("mg-flags", "10 min"),
            ("mg-incidents", "20 min"),
            ("mg-zone-since", "08:55"),
        ] {
            wait_for(&format!("{id} to show {expected}"), WAIT, || async {
                text_of(&c, id).await?.contains(expected).then_some(())
            })
            .await?;
        }
        screenshot(&c, "street-microgrid").await?;
        // Offline: the backend goes away under the tablet; a banner says so.
        // The flag is rectified meanwhile; when the backend is back the
        // tablet catches up by itself.
        sys.backend.kill_hard();
        wait_for("the offline banner", Duration::from_secs(30), || async {
            c.find(fantoccini::Locator::Css("[data-testid='offline']"))
                .await
                .ok()
                .map(|_| ())
        })
        .await?;
        screenshot(&c, "street-offline").await?;
        publish_all(
            &sys.js,
            &[msg(&events::video(
                "tv2",
                at(8, 58, 0),
                &mg,
                "TF1",
                "gathering",
                "rectified",
            ))],
        )
        .await?;
        sys.backend = procs::backend(&sys.nats, sys.port, &sys.work.logs())?;
        wait_for(
            "the tablet to catch up",
            Duration::from_secs(60),
            || async {
                let banner = c
                    .find(fantoccini::Locator::Css("[data-testid='offline']"))
                    .await
                    .is_ok();
                let flags = text_of(&c, "mg-flags").await?;
                (!banner && !flags.contains("10 min") && flags.contains("无")).then_some(())
            },
        )
        .await?;
        // Back up to the street by its breadcrumb.
        let crumbs = c
            .find_all(fantoccini::Locator::Css("[data-testid='crumbs'] .crumb"))
            .await?;
        ensure!(crumbs.len() == 4, "{} breadcrumbs", crumbs.len());
        crumbs[0].click().await?;
        wait_text(&c, "node-name", &street_name).await?;
        anyhow::Ok(())
    }
    .await;
    let _ = c.close().await;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_page_updates_live_and_marks_stale() -> Result<()> {
    require_frontend()?;
    let mut sys = System::start().await?;
    let reg = registry()?;
    let daqi = mgs_under(&reg, "beilun/daqi");
    publish_all(
        &sys.js,
        &[
            tick(at(6, 30, 0)),
            msg(&events::testing("b1", at(6, 10, 0), &daqi[0], 1234, 20)),
        ],
    )
    .await?;
    sys.wait_all_processed().await?;

    let (_driver, c) = chromium(&sys, (1920, 1080)).await?;
    let result = async {
        let base = format!("http://127.0.0.1:{}", sys.port);
        people::sign_in(&c, &base, "/", &sys.nats.accounts()?.analyst).await?;
        wait_text(&c, "samples-today", "1,234").await?;
        // Publish one event; the number changes without a reload.
        let t0 = Instant::now();
        publish_all(
            &sys.js,
            &[msg(&events::testing("b2", at(6, 20, 0), &daqi[1], 1000, 5))],
        )
        .await?;
        wait_text(&c, "samples-today", "2,234").await?;
        eprintln!("publish → page: {} ms", t0.elapsed().as_millis());
        screenshot(&c, "district").await?;
        // Cut the data: the backend goes away; after 10 s the page says stale.
        sys.backend.kill_hard();
        wait_for("the stale marker", Duration::from_secs(30), || async {
            c.find(fantoccini::Locator::Css("[data-testid='stale']"))
                .await
                .ok()
                .map(|_| ())
        })
        .await?;
        screenshot(&c, "district-stale").await?;
        // The backend returns; the page reconnects by itself and is live again.
        sys.backend = procs::backend(&sys.nats, sys.port, &sys.work.logs())?;
        publish_all(
            &sys.js,
            &[msg(&events::testing("b3", at(6, 30, 0), &daqi[2], 1, 5))],
        )
        .await?;
        wait_text(&c, "samples-today", "2,235").await?;
        ensure!(
            c.find(fantoccini::Locator::Css("[data-testid='stale']"))
                .await
                .is_err(),
            "still stale"
        );
        anyhow::Ok(())
    }
    .await;
    let _ = c.close().await;
    result
}
