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

    /// How many more sends fit the window at `now`.
    pub fn room(&mut self, now: Duration) -> usize {
        let _ = self.wait(now);
        PER_MINUTE.saturating_sub(self.sent.len())
    }

    /// Records a send at `now`.
    pub fn sent(&mut self, now: Duration) {
        self.sent.push_back(now);
    }
}

/// One message waiting for a robot: the digests it carries (`parts`: what
/// the sender records for each when it is delivered), its title and
/// markdown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message<P> {
    pub parts: Vec<P>,
    pub title: String,
    pub text: String,
}

/// Merges one robot's waiting messages when more wait than `room` (the
/// sends left in this minute, at least one) carries: the first `room - 1`
/// stay as they are, the rest go out as one message holding as many as
/// fit DingTalk's body limit; what does not fit keeps waiting (returned
/// second, for the next minute), so nothing is dropped.
pub fn merge<P: Clone>(
    waiting: Vec<Message<P>>,
    room: usize,
) -> (Vec<Message<P>>, Vec<Message<P>>) {
    let room = room.max(1);
    if waiting.len() <= room {
        return (waiting, Vec::new());
    }
    let mut out = waiting;
    let tail = out.split_off(room - 1);
    let budget = BODY_MAX - 1024;
    let mut text = String::new();
    let mut parts = Vec::new();
    let mut taken = 0;
    for m in &tail {
        let add = if text.is_empty() {
            m.text.len()
        } else {
            m.text.len() + 5
        };
        if taken > 0 && text.len() + add > budget {
            break;
        }
        if !text.is_empty() {
            text.push_str("\n---\n");
        }
        text.push_str(&m.text);
        parts.extend(m.parts.iter().cloned());
        taken += 1;
    }
    let title = format!("{}（合并 {taken} 条）", tail[0].title);
    out.push(Message { parts, title, text });
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
        assert_eq!(p.room(s(60)), 0);
        assert_eq!(p.room(s(65)), 5);
    }

    #[test]
    fn more_than_a_minute_carries_is_merged_not_dropped() {
        let m = |k: usize, text: String| Message {
            parts: vec![k],
            title: format!("t{k}"),
            text,
        };
        let msgs: Vec<Message<usize>> = (0..45).map(|k| m(k, format!("body {k}"))).collect();
        let (out, left) = merge(msgs.clone(), PER_MINUTE);
        assert_eq!((out.len(), left.len()), (PER_MINUTE, 0));
        assert_eq!(out[..PER_MINUTE - 1], msgs[..PER_MINUTE - 1]);
        let last = &out[PER_MINUTE - 1];
        for k in PER_MINUTE - 1..45 {
            assert!(last.text.contains(&format!("body {k}")), "body {k} lost");
        }
        assert_eq!(last.parts, (PER_MINUTE - 1..45).collect::<Vec<_>>());
        assert!(last.title.contains("合并 26 条"), "{}", last.title);
        assert_eq!(merge(msgs[..3].to_vec(), PER_MINUTE).0.len(), 3);
        // Five sends left this minute: four alone, the rest in one.
        let (out, left) = merge(msgs[..10].to_vec(), 5);
        assert_eq!((out.len(), left.len()), (5, 0));
        assert_eq!(out[4].parts, vec![4, 5, 6, 7, 8, 9]);
        // Big digests: what does not fit one body waits for the next minute.
        let big: Vec<Message<usize>> = (0..30)
            .map(|k| m(k, format!("{k} {}", "x".repeat(8_000))))
            .collect();
        let (out, left) = merge(big, PER_MINUTE);
        let merged = &out[PER_MINUTE - 1];
        assert!(
            merged.text.len() <= BODY_MAX - 1024,
            "{}",
            merged.text.len()
        );
        assert_eq!(merged.parts.len() + left.len(), 30 - (PER_MINUTE - 1));
        assert!(!left.is_empty());
    }
}
