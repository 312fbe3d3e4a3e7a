//! One robot's sender: its digests in a queue, paced to at most 20 a
//! rolling minute ([`crate::pace`]), the excess merged when more wait than
//! the minute carries, each POSTed signed; DingTalk's answers decide what
//! comes next (`ok`: recorded; too fast, a refused signature or anything
//! else: back off, doubling, and try again, signed afresh; a body refused
//! as it is: recorded as refused). A digest still waiting when its
//! group's next hour arrives is superseded by it.
//!
//! The webhook's access token and the signature are in the URL: errors
//! are logged without it.

use gridwatch_model::api::{Delivery, Reminder};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Robot;
use crate::dingtalk::{At, MarkdownMessage, Outcome, outcome, signed_url};
use crate::ledger::Books;
use crate::pace::{Message, Pace, merge};

/// One digest inside a message: its ledger key and its record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub key: String,
    pub reminder: Reminder,
}

/// A message for a robot.
pub type Outgoing = Message<Part>;

/// The deployment clock as the service sees it (RFC 3339, +08:00).
pub type Clock = watch::Receiver<Option<String>>;

/// What one POST came to.
enum Posted {
    Sent,
    Refused(String),
    Again(String),
}

/// Backoff between failed sends.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The wait after the `n`-th failure in a row (n ≥ 1).
    pub fn after(&self, n: u32) -> Duration {
        let factor = 1u32 << n.saturating_sub(1).min(16);
        (self.first * factor).min(self.max)
    }
}

/// One robot's sender.
pub struct Sender {
    pub robot: Robot,
    pub http: reqwest::Client,
    pub books: Books,
    pub clock: Clock,
    pub backoff: Backoff,
}

/// Drops every single-digest message whose group has a later hour waiting
/// (marking it superseded); returns what was dropped.
fn supersede(waiting: &mut Vec<Outgoing>) -> Vec<Part> {
    let newest = |m: &Outgoing| -> Option<(String, String)> {
        match m.parts.as_slice() {
            [p] => Some((p.reminder.group.clone(), p.reminder.slot.clone())),
            _ => None,
        }
    };
    let mut dropped = Vec::new();
    let keys: Vec<Option<(String, String)>> = waiting.iter().map(newest).collect();
    let mut k = 0;
    waiting.retain(|m| {
        let me = &keys[k];
        k += 1;
        let later = me.as_ref().is_some_and(|(g, s)| {
            keys.iter()
                .flatten()
                .any(|(g2, s2)| g2 == g && s2.as_str() > s.as_str())
        });
        if later {
            dropped.extend(m.parts.iter().cloned());
        }
        !later
    });
    dropped
}

impl Sender {
    /// Sends what arrives on `rx` (an hour's digests at a time) until
    /// `stop`.
    pub async fn run(
        self,
        mut rx: mpsc::UnboundedReceiver<Vec<Outgoing>>,
        stop: CancellationToken,
    ) {
        let origin = Instant::now();
        let mut pace = Pace::default();
        let mut waiting: Vec<Outgoing> = Vec::new();
        let mut failures = 0u32;
        let mut not_before = Instant::now();
        let mut open = true;
        loop {
            if waiting.is_empty() {
                if !open {
                    return;
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    m = rx.recv() => match m {
                        Some(m) => waiting.extend(m),
                        None => return,
                    },
                }
            }
            while let Ok(m) = rx.try_recv() {
                waiting.extend(m);
            }
            for p in supersede(&mut waiting) {
                tracing::info!(robot = %self.robot.name, group = %p.reminder.group, slot = %p.reminder.slot, "superseded by the group's next hour");
                metrics::counter!("gridwatch_notify_digests_total", "delivery" => "superseded")
                    .increment(1);
                if let Err(e) = self.books.superseded(&p.key, &p.reminder).await {
                    tracing::warn!(error = %e, "the ledger");
                }
            }
            let now = origin.elapsed();
            let wait = pace
                .wait(now)
                .max(not_before.saturating_duration_since(Instant::now()));
            if !wait.is_zero() {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                    m = rx.recv(), if open => match m {
                        Some(m) => waiting.extend(m),
                        None => open = false,
                    },
                }
                continue;
            }
            let room = pace.room(now);
            let (mut first, later) = merge(std::mem::take(&mut waiting), room);
            first.extend(later);
            waiting = first;
            let msg = waiting[0].clone();
            pace.sent(origin.elapsed());
            let posted = tokio::select! {
                _ = stop.cancelled() => return,
                p = self.post(&msg) => p,
            };
            match posted {
                Posted::Sent => {
                    waiting.remove(0);
                    failures = 0;
                    self.delivered(&msg, Delivery::Dingtalk, None).await;
                }
                Posted::Refused(why) => {
                    waiting.remove(0);
                    failures = 0;
                    tracing::error!(robot = %self.robot.name, error = %why, "the robot refused a message as it is; not retried");
                    self.delivered(&msg, Delivery::Refused, Some(why)).await;
                }
                Posted::Again(why) => {
                    failures += 1;
                    let wait = self.backoff.after(failures);
                    metrics::counter!("gridwatch_notify_retries_total").increment(1);
                    tracing::warn!(robot = %self.robot.name, error = %why, retry_in_ms = wait.as_millis() as u64, "sending failed; retrying");
                    not_before = Instant::now() + wait;
                }
            }
        }
    }

    /// Records every digest of `msg` as delivered `how`.
    async fn delivered(&self, msg: &Outgoing, how: Delivery, error: Option<String>) {
        let at = self.clock.borrow().clone().unwrap_or_default();
        for p in &msg.parts {
            let mut r = p.reminder.clone();
            r.delivery = how;
            r.robot = Some(self.robot.name.clone());
            r.sent_at = at.clone();
            r.error = error.clone();
            metrics::counter!("gridwatch_notify_digests_total", "delivery" => how.token())
                .increment(1);
            if let Err(e) = self.books.delivered(&p.key, &r).await {
                tracing::error!(error = %e, key = %p.key, "recording a delivered digest");
            }
        }
    }

    /// One signed POST of `msg`.
    async fn post(&self, msg: &Outgoing) -> Posted {
        let ts = chrono::Utc::now().timestamp_millis();
        let url = signed_url(&self.robot.webhook, &self.robot.secret, ts);
        let mut text = msg.text.clone();
        // DingTalk shows a mention only when the text names it too.
        for m in &self.robot.at_mobiles {
            if !text.contains(&format!("@{m}")) {
                text.push_str(&format!("\n\n@{m}"));
            }
        }
        let body = MarkdownMessage::new(
            &msg.title,
            &text,
            At {
                mobiles: self.robot.at_mobiles.clone(),
                all: false,
            },
        );
        let answer = match self.http.post(url).json(&body).send().await {
            Ok(a) => a,
            Err(e) => return Posted::Again(e.without_url().to_string()),
        };
        let status = answer.status();
        let bytes = match answer.bytes().await {
            Ok(b) => b,
            Err(e) => return Posted::Again(e.without_url().to_string()),
        };
        if !status.is_success() {
            return Posted::Again(format!("HTTP {status}"));
        }
        match outcome(&bytes) {
            Outcome::Sent => Posted::Sent,
            Outcome::TooFast => Posted::Again("130101 too fast".into()),
            Outcome::BadSign => Posted::Again("310000 signature or timestamp refused".into()),
            Outcome::Refused(code, m) => Posted::Refused(format!("{code} {m}")),
            Outcome::Retry(code, m) => Posted::Again(format!("{code} {m}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridwatch_model::api::Delivery;

    fn one(group: &str, slot: &str) -> Outgoing {
        Message {
            parts: vec![Part {
                key: format!("{slot}.{group}"),
                reminder: Reminder {
                    group: group.into(),
                    group_name: group.into(),
                    slot: slot.into(),
                    sent_at: String::new(),
                    delivery: Delivery::Outbox,
                    robot: None,
                    incidents: 1,
                    orders: 0,
                    overdue: 0,
                    title: "t".into(),
                    text: "x".into(),
                    resent: false,
                    error: None,
                },
            }],
            title: "t".into(),
            text: "x".into(),
        }
    }

    #[test]
    fn a_later_hour_supersedes_the_waiting_one_of_its_group_only() {
        let mut w = vec![
            one("beilun/daqi", "2022-10-15T09:00:00+08:00"),
            one("beilun", "2022-10-15T09:00:00+08:00"),
            one("beilun/daqi", "2022-10-15T10:00:00+08:00"),
        ];
        let dropped = supersede(&mut w);
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].reminder.slot, "2022-10-15T09:00:00+08:00");
        assert_eq!(w.len(), 2);
        let b = Backoff {
            first: Duration::from_secs(2),
            max: Duration::from_secs(60),
        };
        assert_eq!(b.after(1), Duration::from_secs(2));
        assert_eq!(b.after(3), Duration::from_secs(8));
        assert_eq!(b.after(30), Duration::from_secs(60));
    }
}
