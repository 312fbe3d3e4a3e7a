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
