//! Failed sign-ins, throttled per account and per address: after
//! [`FREE_FAILURES`] failures in a row, each further attempt waits 2ⁿ
//! seconds after the last failure (n = failures beyond the free ones, at
//! most 15 minutes). A success clears the account's and the address's
//! count. Each backend counts its own.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed before the waiting starts.
pub const FREE_FAILURES: u32 = 5;
/// The longest wait.
pub const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// Keys remembered at most (the oldest half goes when full).
const KEYS_MAX: usize = 50_000;

#[derive(Clone, Copy)]
struct Fails {
    count: u32,
    last: Instant,
}

/// The counts.
#[derive(Default)]
pub struct Throttle {
    fails: Mutex<HashMap<String, Fails>>,
}

fn wait_for(f: &Fails) -> Duration {
    if f.count < FREE_FAILURES {
        return Duration::ZERO;
    }
    let n = (f.count - FREE_FAILURES).min(20);
    Duration::from_secs(1u64 << n).min(MAX_WAIT)
}

impl Throttle {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Fails>> {
        self.fails.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long these keys must still wait before another attempt (zero:
    /// go ahead).
    pub fn wait(&self, keys: &[String], now: Instant) -> Duration {
        let m = self.map();
        keys.iter()
            .filter_map(|k| m.get(k))
            .map(|f| wait_for(f).saturating_sub(now.duration_since(f.last)))
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Counts a failure against every key.
    pub fn failed(&self, keys: &[String], now: Instant) {
        let mut m = self.map();
        if m.len() >= KEYS_MAX {
            let mut by_age: Vec<(Instant, String)> =
                m.iter().map(|(k, f)| (f.last, k.clone())).collect();
            by_age.sort();
            for (_, k) in by_age.into_iter().take(KEYS_MAX / 2) {
                m.remove(&k);
            }
        }
        for k in keys {
            let f = m.entry(k.clone()).or_insert(Fails {
                count: 0,
                last: now,
            });
            f.count += 1;
            f.last = now;
        }
    }

    /// Clears the keys after a success.
    pub fn succeeded(&self, keys: &[String]) {
        let mut m = self.map();
        for k in keys {
            m.remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_are_free_then_the_wait_doubles() {
        let t = Throttle::default();
        let keys = vec!["user:li".to_string(), "ip:10.0.0.1".to_string()];
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert_eq!(t.wait(&keys, t0), Duration::ZERO);
            t.failed(&keys, t0);
        }
        assert_eq!(t.wait(&keys, t0), Duration::from_secs(1));
        t.failed(&keys, t0);
        assert_eq!(t.wait(&keys, t0), Duration::from_secs(2));
        assert_eq!(t.wait(&keys, t0 + Duration::from_secs(2)), Duration::ZERO);
        // Another address for the same account waits as long.
        assert_eq!(t.wait(&["user:li".to_string()], t0), Duration::from_secs(2));
        t.succeeded(&keys);
        assert_eq!(t.wait(&keys, t0), Duration::ZERO);
    }
}
