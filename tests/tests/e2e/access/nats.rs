//! NATS with least privilege: each service signs in as its own NKey user;
//! the field's user may publish events and nothing else, so a forged node
//! state or clock tick is refused by the server itself.

use anyhow::{Result, ensure};
use async_nats::jetstream;
use gridwatch_runtime::nats_auth::Service;
use gridwatch_tests::events::{at, publish_all, tick};
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

/// docker-compose's NATS, as far as it runs here: `deploy/init-secrets.sh`
/// makes the keys and a private CA, nats-server takes
/// `deploy/nats-cluster.conf` (paths and ports moved into a temporary
/// directory) and speaks TLS only; a service connects with `tls://`, the CA
/// and its key, and a plain connection is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_nats_speaks_tls_only_with_the_services_keys() -> Result<()> {
    use anyhow::Context as _;
    use gridwatch_tests::procs;
    let tmp = tempfile::tempdir()?;
    let etc = tmp.path().join("etc/nats");
    let secrets = etc.join("secrets");
    std::fs::create_dir_all(&etc)?;
    let path = format!(
        "{}:{}",
        procs::bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new("sh")
        .arg(gridwatch_tests::root().join("deploy/init-secrets.sh"))
        .env("SECRETS_DIR", &secrets)
        .env("PATH", path)
        .output()?;
    ensure!(
        out.status.success(),
        "init-secrets.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        !secrets.join("tls/ca-key.pem").exists(),
        "the CA's key was kept"
    );
    let (port, cluster) = (procs::free_port()?, procs::free_port()?);
    let conf = std::fs::read_to_string(gridwatch_tests::root().join("deploy/nats-cluster.conf"))?
        .replace("/etc/nats/secrets", &secrets.display().to_string())
        .replace("0.0.0.0:4222", &format!("127.0.0.1:{port}"))
        .replace("0.0.0.0:6222", &format!("127.0.0.1:{cluster}"));
    std::fs::write(etc.join("cluster.conf"), conf)?;
    let mut cmd = std::process::Command::new(procs::nats_server_bin());
    cmd.arg("-c")
        .arg(etc.join("cluster.conf"))
        .args([
            "--name",
            "nats-1",
            "--cluster_name",
            "gridwatch",
            "-js",
            "-sd",
        ])
        .arg(tmp.path().join("js"));
    let _server = procs::spawn_cmd("nats-compose", cmd, &tmp.path().join("logs"))?;
    procs::wait_port(port, Duration::from_secs(20), "the compose nats-server")?;
    let connect = |url: String, nkey: Option<std::path::PathBuf>, ca: bool| {
        let creds = gridwatch_runtime::nats::Creds {
            nkey_file: nkey,
            ca_file: ca.then(|| secrets.join("tls/ca.pem")),
        };
        async move {
            let (url, opts) = gridwatch_runtime::nats::options(&url, &creds)?;
            let c = tokio::time::timeout(Duration::from_secs(10), opts.connect(url.as_str()))
                .await
                .context("connecting")??;
            c.flush().await?;
            anyhow::Ok(c)
        }
    };
    let field = Some(secrets.join("nats/field.nk"));
    let c = connect(format!("tls://localhost:{port}"), field.clone(), true).await?;
    c.publish("gw.ev.patrol.daqi", "{}".into()).await?;
    c.flush().await?;
    ensure!(
        connect(format!("nats://localhost:{port}"), field, false)
            .await
            .is_err(),
        "a connection that does not trust the private CA was accepted"
    );
    ensure!(
        connect(format!("tls://localhost:{port}"), None, true)
            .await
            .is_err(),
        "a connection without a key was accepted"
    );
    Ok(())
}
