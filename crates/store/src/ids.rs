//! Queue ids: 13 characters of Crockford base32 over 64 bits, time-ordered (milliseconds in
//! the high bits, then a per-process counter started at a random value), so ids sort by arrival,
//! are unique across restarts, and can be read aloud.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static LAST: AtomicU64 = AtomicU64::new(0);
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new queue id, greater than every id this process made before.
pub fn new_queue_id() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let candidate = (ms << 20) | (rand::random::<u64>() & 0x3ff);
    let mut prev = LAST.load(Ordering::Relaxed);
    let id = loop {
        let next = candidate.max(prev + 1);
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break next,
            Err(p) => prev = p,
        }
    };
    let mut out = [0u8; 13];
    for (i, slot) in out.iter_mut().enumerate() {
        let shift = 60 - 5 * i as i32;
        let v = if shift >= 0 {
            (id >> shift) & 31
        } else {
            (id << -shift) & 31
        };
        *slot = ALPHABET[v as usize];
    }
    out.iter().map(|&b| b as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_increase() {
        let ids: Vec<String> = (0..10_000).map(|_| new_queue_id()).collect();
        for w in ids.windows(2) {
            assert!(w[0] < w[1], "{} !< {}", w[0], w[1]);
        }
        assert!(ids.iter().all(|i| i.len() == 13));
    }
}
