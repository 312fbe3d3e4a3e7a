//! DingTalk takes at most 20 messages a minute per robot. Each robot's
//! sends are paced over a rolling minute: a message over the limit waits
//! for the oldest send to leave the window; when more wait than one
//! minute can carry, the waiting ones for that robot are merged into one
//! message, so nothing is dropped and the robot is never over its limit.

use std::collections::VecDeque;
use std::time::Duration;

use crate::dingtalk::{BODY_MAX, PER_MINUTE};

/// The window the limit counts over.
pub const WINDOW: Duration = Duration::from_secs(60);

/// One robot's sends in the last minute (as offsets on a monotonic clock).
#[derive(Clone, Debug, Default)]
pub struct Pace {
    sent: VecDeque<Duration>,
}

impl Pace {
    /// How long to wait at `now` before the next send may go (zero: now).
    pub fn wait(&mut self, now: Duration) -> Duration {
        while self
            .sent
            .front()
            .is_some_and(|t| now.saturating_sub(*t) >= WINDOW)
        {
            self.sent.pop_front();
        }
        if self.sent.len() < PER_MINUTE {
            return Duration::ZERO;
        }
        // The oldest leaves the window at oldest + WINDOW.
        self.sent
            .front()
            .map_or(Duration::ZERO, |t| (*t + WINDOW).saturating_sub(now))
    }

    /// Records a send at `now`.
    pub fn sent(&mut self, now: Duration) {
        self.sent.push_back(now);
    }
}

/// A message waiting: (title, markdown text).
pub type Message = (String, String);

/// Merges waiting messages (title, markdown text) of one robot when more
/// wait than a minute carries: the first `PER_MINUTE - 1` stay as they
/// are, the rest go out as one message holding as many as fit DingTalk's
/// body limit; what does not fit stays waiting (returned second), so
/// nothing is dropped.
pub fn merge(waiting: Vec<Message>) -> (Vec<Message>, Vec<Message>) {
    if waiting.len() <= PER_MINUTE {
        return (waiting, Vec::new());
    }
    let mut rest = waiting;
    let tail = rest.split_off(PER_MINUTE - 1);
    let mut out = rest;
    let budget = BODY_MAX - 1024;
    let mut text = String::new();
    let mut taken = 0;
    for (_, t) in &tail {
        let add = if text.is_empty() {
            t.len()
        } else {
            t.len() + 5
        };
        if taken > 0 && text.len() + add > budget {
            break;
        }
        if !text.is_empty() {
            text.push_str("\n---\n");
        }
        text.push_str(t);
        taken += 1;
    }
    let title = format!("{}（合并 {taken} 条）", tail[0].0);
    out.push((title, text));
    (out, tail[taken..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_a_minute_then_wait_for_the_oldest_to_leave() {
        let mut p = Pace::default();
        let s = Duration::from_secs;
        for k in 0..PER_MINUTE as u64 {
            assert_eq!(p.wait(s(k)), Duration::ZERO);
            p.sent(s(k));
        }
        // The 21st at 30 s waits until the first (at 0 s) is a minute old.
        assert_eq!(p.wait(s(30)), s(30));
        assert_eq!(p.wait(s(60)), Duration::ZERO);
        p.sent(s(60));
        // In any minute, never more than twenty.
        assert_eq!(p.wait(s(60)), s(1));
    }

    #[test]
    fn more_than_a_minute_carries_is_merged_not_dropped() {
        let msgs: Vec<(String, String)> = (0..45)
            .map(|k| (format!("t{k}"), format!("body {k}")))
            .collect();
        let (out, left) = merge(msgs.clone());
        assert_eq!((out.len(), left.len()), (PER_MINUTE, 0));
        assert_eq!(out[..PER_MINUTE - 1], msgs[..PER_MINUTE - 1]);
        let last = &out[PER_MINUTE - 1];
        for k in PER_MINUTE - 1..45 {
            assert!(last.1.contains(&format!("body {k}")), "body {k} lost");
        }
        assert!(last.0.contains("合并 26 条"), "{}", last.0);
        assert_eq!(merge(msgs[..3].to_vec()).0.len(), 3);
        // Big digests: what does not fit one body waits for the next minute.
        let big: Vec<(String, String)> = (0..30)
            .map(|k| (format!("t{k}"), format!("{k} {}", "x".repeat(8_000))))
            .collect();
        let (out, left) = merge(big);
        let merged = &out[PER_MINUTE - 1];
        assert!(merged.1.len() <= BODY_MAX - 1024, "{}", merged.1.len());
        let count = merged.1.matches("---").count() + 1;
        assert_eq!(count + left.len(), 30 - (PER_MINUTE - 1));
        assert!(!left.is_empty());
    }
}
