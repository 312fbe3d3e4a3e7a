//! Signing in the way a person does, in a real browser: the sign-in page's
//! form (user name, password, the button), or a wall's device link.

use anyhow::{Context, Result};
use fantoccini::{Client, Locator};
use std::time::Duration;

use crate::procs::Account;
use crate::wait_for;

fn css(id: &str) -> String {
    format!("[data-testid='{id}']")
}

/// Opens `base` + `path`, finds the sign-in page, types `who`'s user name
/// and password, presses the button, and waits until the page says who is
/// signed in.
pub async fn sign_in(c: &Client, base: &str, path: &str, who: &Account) -> Result<()> {
    c.goto(&format!("{base}{path}")).await?;
    let user = wait_for("the sign-in page", Duration::from_secs(60), || async {
        c.find(Locator::Css(&css("signin-user"))).await.ok()
    })
    .await?;
    user.send_keys(&who.user).await?;
    c.find(Locator::Css(&css("signin-password")))
        .await?
        .send_keys(&who.password)
        .await?;
    c.find(Locator::Css(&css("signin-submit")))
        .await?
        .click()
        .await?;
    wait_for(
        "the page to say who signed in",
        Duration::from_secs(60),
        || async {
            let el = c.find(Locator::Css(&css("whoami-user"))).await.ok()?;
            (el.text().await.ok()? == who.user).then_some(())
        },
    )
    .await
    .with_context(|| format!("signing in as {}", who.user))
}

/// Opens a wall's device link (`/device/gwd_…`): the wall signs in and
/// opens its screen.
pub async fn open_device_link(c: &Client, base: &str, link: &str) -> Result<()> {
    c.goto(&format!("{base}{link}")).await?;
    wait_for("the wall to open", Duration::from_secs(60), || async {
        let url = c.current_url().await.ok()?;
        (!url.path().starts_with("/device")).then_some(())
    })
    .await
}

/// Gives the browser a session it signed in to before (`gw_session=…`,
/// from [`crate::Http::sign_in`] or [`crate::Http::device_cookie`])
/// without loading the app, so its cache stays cold: a benchmark of the
/// first frame in a fresh profile measures the screen, not the sign-in.
pub async fn carry_session(c: &Client, base: &str, cookie: &str) -> Result<()> {
    anyhow::ensure!(cookie.contains('='), "a cookie is name=value");
    // A cookie is set for the page's origin: open a tiny page of it first.
    // (ChromeDriver refuses WebDriver's add-cookie without a domain, and a
    // domain that is an IP address; the page sets it instead. Not
    // HttpOnly then, which the server does not need to read it.)
    c.goto(&format!("{base}/healthz")).await?;
    c.execute(
        "document.cookie = arguments[0] + '; path=/; SameSite=Strict';",
        vec![serde_json::Value::String(cookie.to_string())],
    )
    .await?;
    Ok(())
}
