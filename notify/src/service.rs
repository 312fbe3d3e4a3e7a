//! The service: it follows the deployment clock (ingest's `meta.ingest`
//! in the state bucket: the wall clock, or a replay's), and when a full
//! hour in the window comes it works the hour through once — every
//! group's open items from ingest (`gw.ingest.open`), one digest per group
//! with any, each claimed in the ledger and handed to its robot's sender
//! (or kept in the outbox stream when the group has no robot), then the
//! hour's marker. A group with nothing open gets no message.

use anyhow::Context as _;
use async_nats::jetstream::{self, kv};
use chrono::{DateTime, Utc};
use gridwatch_model::Registry;
use gridwatch_model::api::{
    Delivery, OPEN_LIST_MAX, OPEN_SUBJECT, OpenIncident, OpenList, OpenOrder, OpenQuery, Reminder,
};
use gridwatch_model::stats::IngestStats;
use gridwatch_runtime::nats::Creds;
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::digest;
use crate::groups::Groups;
use crate::ledger::{Books, Claim, Entry, State};
use crate::pace::Message;
use crate::schedule::{Slot, ledger_key};
use crate::send::{Backoff, Outgoing, Part, Sender};

/// How long ingest has to answer an open-items query.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// The open items every group may list.
#[derive(Default)]
struct Open {
    incidents: Vec<OpenIncident>,
    orders: Vec<OpenOrder>,
}

async fn ask(client: &async_nats::Client, node: &str) -> anyhow::Result<OpenList> {
    let body = serde_json::to_vec(&OpenQuery {
        node: node.to_string(),
        limit: OPEN_LIST_MAX,
    })?;
    let reply = tokio::time::timeout(ANSWER_WITHIN, client.request(OPEN_SUBJECT, body.into()))
        .await
        .context("ingest did not answer the open-items query")?
        .context("the open-items query")?;
    let list: OpenList = serde_json::from_slice(&reply.payload).context("ingest's open list")?;
    if let Some(e) = list.error {
        anyhow::bail!("ingest refused the open-items query: {e}");
    }
    Ok(list)
}

/// Every open item: the district's list, or, when that is cut at
/// [`OPEN_LIST_MAX`], each group's (a group's own list is cut there too).
async fn open_items(
    client: &async_nats::Client,
    reg: &Registry,
    groups: &Groups,
) -> anyhow::Result<Open> {
    let root = reg.node(reg.root()).id.to_string();
    let all = ask(client, &root).await?;
    let whole = all.incidents_total as usize == all.incidents.len()
        && all.orders_total as usize == all.orders.len();
    if whole {
        return Ok(Open {
            incidents: all.incidents,
            orders: all.orders,
        });
    }
    tracing::warn!(
        incidents = all.incidents_total,
        orders = all.orders_total,
        "over {OPEN_LIST_MAX} open items: asking group by group"
    );
    let mut out = Open::default();
    let (mut seen_i, mut seen_o) = (HashSet::new(), HashSet::new());
    for g in &groups.ids {
        let l = ask(client, g).await?;
        for i in l.incidents {
            if seen_i.insert(i.incident.incident_id.clone()) {
                out.incidents.push(i);
            }
        }
        for o in l.orders {
            if seen_o.insert(o.order.flag_id.clone()) {
                out.orders.push(o);
            }
        }
    }
    Ok(out)
}

/// The deployment clock from ingest's statistics.
async fn clock(state: &kv::Store) -> anyhow::Result<Option<(DateTime<Utc>, String)>> {
    let Some(bytes) = state.get(gridwatch_model::kv::META_KEY).await? else {
        return Ok(None);
    };
    let stats: IngestStats = serde_json::from_slice(&bytes).context("ingest's statistics")?;
    let Some(now) = stats.clock_now else {
        return Ok(None);
    };
    let t = DateTime::parse_from_rfc3339(&now)
        .with_context(|| format!("ingest's clock `{now}`"))?
        .with_timezone(&Utc);
    Ok(Some((t, now)))
}

/// The running service's parts.
struct Notify {
    cfg: Config,
    reg: Registry,
    groups: Groups,
    client: async_nats::Client,
    books: Books,
    senders: Vec<mpsc::UnboundedSender<Vec<Outgoing>>>,
    /// Each robot's digests of the hour being worked through, handed to
    /// its sender together (so it sees them all at once, and merges what
    /// one minute cannot carry).
    batches: Vec<Vec<Outgoing>>,
    /// Keys this process claimed or handed to a sender.
    ours: HashSet<String>,
}

impl Notify {
    /// Hands a claimed digest on: to its robot's batch, or into the
    /// outbox at once.
    async fn dispatch(&mut self, key: String, mut r: Reminder, now: &str) -> anyhow::Result<()> {
        let robot = self
            .groups
            .list
            .iter()
            .find(|g| g.node == r.group)
            .and_then(|g| g.robot);
        match robot.and_then(|i| self.batches.get_mut(i)) {
            Some(batch) => {
                self.ours.insert(key.clone());
                batch.push(Message {
                    title: r.title.clone(),
                    text: r.text.clone(),
                    parts: vec![Part { key, reminder: r }],
                });
            }
            None => {
                r.delivery = Delivery::Outbox;
                r.sent_at = now.to_string();
                self.books
                    .delivered(&key, &r)
                    .await
                    .map_err(anyhow::Error::msg)?;
                self.ours.insert(key);
                metrics::counter!("gridwatch_notify_digests_total", "delivery" => "outbox")
                    .increment(1);
            }
        }
        Ok(())
    }

    /// Hands each robot its batch.
    fn flush(&mut self) {
        for (tx, batch) in self.senders.iter().zip(self.batches.iter_mut()) {
            if !batch.is_empty() && tx.send(std::mem::take(batch)).is_err() {
                tracing::error!("a robot's sender has stopped");
            }
        }
    }

    /// Works `slot` through at `now`; returns the digests made. What was
    /// claimed goes to the senders even when a later step fails.
    async fn work(&mut self, slot: Slot, now_s: &str) -> anyhow::Result<usize> {
        let made = self.work_unflushed(slot, now_s).await;
        self.flush();
        made
    }

    async fn work_unflushed(&mut self, slot: Slot, now_s: &str) -> anyhow::Result<usize> {
        let existing = self.books.slot(slot).await.map_err(anyhow::Error::msg)?;
        let mut taken = HashSet::new();
        for (key, group, entry) in existing {
            taken.insert(group);
            if entry.state != State::Queued || self.ours.contains(&key) {
                continue;
            }
            // Claimed by a run that stopped before it was delivered: the
            // crash window (see `ledger`).
            let mut r = entry.reminder;
            r.resent = true;
            tracing::info!(%key, "sending a digest an earlier run claimed and did not deliver");
            self.dispatch(key, r, now_s).await?;
        }
        if self.books.marked(slot).await.map_err(anyhow::Error::msg)? {
            return Ok(0);
        }
        let open = open_items(&self.client, &self.reg, &self.groups).await?;
        tracing::debug!(
            incidents = open.incidents.len(),
            orders = open.orders.len(),
            "open items"
        );
        let hour = slot.start();
        let mut made = 0;
        for g in self.groups.list.clone() {
            if taken.contains(&g.node) {
                continue;
            }
            // Time left as at the full hour the digest is for.
            let lines = digest::lines(
                &self.groups.ids,
                &g.node,
                &open.incidents,
                &open.orders,
                &hour,
            );
            if lines.is_empty() {
                continue;
            }
            let (title, text) = digest::markdown(&g.name, slot.hour, &lines);
            let count = |order: bool| lines.iter().filter(|l| l.order == order).count() as u32;
            let reminder = Reminder {
                group: g.node.clone(),
                group_name: g.name.clone(),
                slot: slot.start(),
                sent_at: String::new(),
                delivery: if g.robot.is_some() {
                    Delivery::Dingtalk
                } else {
                    Delivery::Outbox
                },
                robot: g
                    .robot
                    .and_then(|i| self.cfg.robots.get(i).map(|r| r.name.clone())),
                incidents: count(false),
                orders: count(true),
                overdue: lines.iter().filter(|l| l.left_min < 0).count() as u32,
                title,
                text,
                resent: false,
                error: None,
            };
            let key = ledger_key(&g.node, slot);
            let entry = Entry {
                state: State::Queued,
                reminder: reminder.clone(),
            };
            match self
                .books
                .claim(&key, &entry)
                .await
                .map_err(anyhow::Error::msg)?
            {
                Claim::New => {
                    made += 1;
                    self.dispatch(key, reminder, now_s).await?;
                }
                Claim::Taken => {}
            }
        }
        self.books
            .mark(slot, made)
            .await
            .map_err(anyhow::Error::msg)?;
        Ok(made)
    }
}

/// Waits for `what` until it is there or `stop`.
async fn patiently<T, F, Fut>(what: &str, stop: &CancellationToken, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    loop {
        match f().await {
            Ok(v) => return Some(v),
            Err(e) => tracing::warn!(error = %e, "waiting for {what}"),
        }
        tokio::select! {
            _ = stop.cancelled() => return None,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Runs the service until `stop`.
///
/// Fails on a configuration that cannot work (bad hours, a robot naming
/// an unknown node) or an unusable registry.
pub async fn run(cfg: Config, stop: CancellationToken) -> anyhow::Result<()> {
    cfg.check().map_err(anyhow::Error::msg)?;
    let reg = gridwatch_runtime::registry::load(cfg.registry.as_deref())?;
    let groups = Groups::build(&reg, &cfg).map_err(anyhow::Error::msg)?;
    let creds = Creds {
        nkey_file: cfg.nats_nkey_file.clone(),
        ca_file: cfg.nats_ca_file.clone(),
    };
    let (client, _) =
        gridwatch_runtime::nats::connect(&cfg.nats, &creds, "gridwatch-notify").await?;
    let js = jetstream::new(client.clone());
    let Some(books) = patiently("the ledger", &stop, || Books::open(js.clone(), &cfg)).await else {
        return Ok(());
    };
    let Some(state) = patiently("ingest's state bucket", &stop, || async {
        js.get_key_value(&cfg.state_bucket)
            .await
            .map_err(|e| e.to_string())
    })
    .await
    else {
        return Ok(());
    };
    let (clock_tx, clock_rx) = watch::channel(None);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(cfg.http_timeout_s.max(1)))
        .build()?;
    let backoff = Backoff {
        first: Duration::from_millis(cfg.retry_ms),
        max: Duration::from_millis(cfg.retry_max_ms),
    };
    let mut senders = Vec::new();
    let mut batches = Vec::new();
    let mut tasks = Vec::new();
    for robot in &cfg.robots {
        let (tx, rx) = mpsc::unbounded_channel();
        let s = Sender {
            robot: robot.clone(),
            http: http.clone(),
            books: books.clone(),
            clock: clock_rx.clone(),
            backoff,
        };
        tasks.push(tokio::spawn(s.run(rx, stop.clone())));
        senders.push(tx);
        batches.push(Vec::new());
    }
    tracing::info!(
        groups = groups.list.len(),
        robots = cfg.robots.len(),
        first_hour = cfg.first_hour,
        last_hour = cfg.last_hour,
        "gridwatch-notify running"
    );
    let hours = cfg.hours();
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.tick_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = Notify {
        cfg,
        reg,
        groups,
        client,
        books,
        senders,
        batches,
        ours: HashSet::new(),
    };
    let mut done: Option<Slot> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let (now, now_s) = match clock(&state).await {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "reading the deployment clock");
                continue;
            }
        };
        clock_tx.send_replace(Some(now_s.clone()));
        let Some(slot) = hours.due(now) else {
            continue;
        };
        if done == Some(slot) {
            continue;
        }
        match n.work(slot, &now_s).await {
            Ok(made) => {
                tracing::info!(slot = %slot.start(), digests = made, clock = %now_s, "hour worked through");
                done = Some(slot);
            }
            Err(e) => {
                tracing::warn!(error = %e, slot = %slot.start(), "working the hour through; trying again")
            }
        }
    }
    drop(n);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    Ok(())
}
