//! Rate limits: counts per key (an account, a credential, a client address, a destination) in
//! fixed windows of a minute, an hour and a day. A request that would go over a limit is
//! refused as a whole and counts nothing, so the caller can answer with a temporary error at
//! the exact point the limit is crossed (never a silent stall).
//!
//! Counts live in memory (a restart starts them afresh).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Most keys counted at once; past it, keys whose day window has ended are dropped.
const MAX_KEYS: usize = 200_000;

/// Limits per window; 0 means no limit for that window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimit {
    pub per_minute: u32,
    pub per_hour: u32,
    pub per_day: u32,
}

impl RateLimit {
    pub fn is_none(&self) -> bool {
        self.per_minute == 0 && self.per_hour == 0 && self.per_day == 0
    }
}

/// The limit a request would have crossed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    /// "minute", "hour" or "day".
    pub window: &'static str,
    pub limit: u32,
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} per {}", self.limit, self.window)
    }
}

const WINDOWS: [(&str, i64); 3] = [("minute", 60_000), ("hour", 3_600_000), ("day", 86_400_000)];

#[derive(Default, Clone, Copy)]
struct Window {
    /// Which window (time / length) the count belongs to.
    index: i64,
    count: u32,
}

/// Cheap to clone: clones share their counts.
#[derive(Clone, Default)]
pub struct Limiter {
    counts: Arc<Mutex<HashMap<String, [Window; 3]>>>,
}

use crate::now_ms;

impl Limiter {
    /// Takes `n` units for `key` under `limit`, or refuses (taking nothing) when any window
    /// would go over.
    pub fn take(&self, key: &str, n: u32, limit: &RateLimit) -> Result<(), Exceeded> {
        self.take_at(key, n, limit, now_ms())
    }

    fn take_at(&self, key: &str, n: u32, limit: &RateLimit, now: i64) -> Result<(), Exceeded> {
        if limit.is_none() || n == 0 {
            return Ok(());
        }
        let limits = [limit.per_minute, limit.per_hour, limit.per_day];
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() >= MAX_KEYS && !counts.contains_key(key) {
            let day = now / WINDOWS[2].1;
            counts.retain(|_, w| w[2].index == day);
        }
        let windows = counts.entry(key.to_string()).or_default();
        for (i, (name, len)) in WINDOWS.iter().enumerate() {
            let index = now / len;
            if windows[i].index != index {
                windows[i] = Window { index, count: 0 };
            }
            if limits[i] > 0 && windows[i].count.saturating_add(n) > limits[i] {
                return Err(Exceeded {
                    window: name,
                    limit: limits[i],
                });
            }
        }
        for w in windows.iter_mut() {
            w.count = w.count.saturating_add(n);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_window_limits_on_its_own_and_a_refusal_counts_nothing() {
        let l = Limiter::default();
        let lim = RateLimit {
            per_minute: 3,
            per_hour: 5,
            per_day: 0,
        };
        let t = 10 * 3_600_000;
        assert!(l.take_at("a", 2, &lim, t).is_ok());
        assert!(l.take_at("a", 1, &lim, t + 1).is_ok());
        assert_eq!(
            l.take_at("a", 1, &lim, t + 2),
            Err(Exceeded {
                window: "minute",
                limit: 3
            })
        );
        // Other keys are counted apart.
        assert!(l.take_at("b", 3, &lim, t + 2).is_ok());
        // Next minute: the hour still counts 3 of 5.
        assert!(l.take_at("a", 2, &lim, t + 60_000).is_ok());
        assert_eq!(
            l.take_at("a", 1, &lim, t + 60_001).unwrap_err().window,
            "hour"
        );
        // A request bigger than what is left is refused whole.
        let l = Limiter::default();
        assert!(l.take_at("c", 4, &lim, t).is_err());
        assert!(l.take_at("c", 3, &lim, t).is_ok());
        // No limit at all.
        assert!(l.take_at("d", 1_000_000, &RateLimit::default(), t).is_ok());
    }
}
