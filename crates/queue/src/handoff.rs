//! The hand-off from intake to the scheduler: a message just written to the queue is passed
//! to the scheduler in memory (its queue entry and, for remote delivery, its content), so its
//! delivery starts without reading it back from the store. The store stays the truth: a
//! message the hand-off does not carry (it was full, or the process restarted) is found by the
//! scheduler's next read of the queue.
//!
//! The one rule that makes this safe: a message is never taken both from the hand-off and from
//! a read of the queue. Intake registers the id (`reserve`) *before* the write, and the
//! scheduler leaves registered ids out of its reads, so a read that happens between the write
//! and the hand-off cannot pick the message up a second time.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use store::QueuedMessage;

/// Most messages waiting in the hand-off; past that, intake leaves new ones to the queue reads.
const MAX_WAITING: usize = 4096;

/// Most content bytes waiting in the hand-off; past that, messages are handed over without
/// their content (the delivery reads it from the store).
const MAX_BYTES: usize = 64 << 20;

/// A message handed over: its queue entry as written, and its content when it is in memory
/// and has remote recipients.
pub(crate) struct Fresh {
    pub(crate) msg: QueuedMessage,
    pub(crate) content: Option<Arc<Vec<u8>>>,
}

#[derive(Default)]
struct Inner {
    /// Ids being written (registered, not yet handed over).
    writing: HashSet<String>,
    ready: VecDeque<Fresh>,
    /// Content bytes in `ready`.
    bytes: usize,
}

/// Shared by intake and the scheduler. Cheap to clone.
#[derive(Clone, Default)]
pub struct Handoff {
    inner: Arc<Mutex<Inner>>,
    /// Set when intake left a message to the queue reads (the hand-off was full).
    missed: Arc<AtomicBool>,
    /// Only while a scheduler runs (not with delivery paused) does intake hand messages over.
    enabled: Arc<AtomicBool>,
}

impl Handoff {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Before writing message `id`: registers it for the hand-off, or returns false when the
    /// hand-off is full (the scheduler then finds the message by reading the queue).
    pub(crate) fn reserve(&self, id: &str) -> bool {
        if !self.enabled.load(Ordering::Acquire) {
            return false;
        }
        let mut inner = self.lock();
        if inner.writing.len() + inner.ready.len() >= MAX_WAITING {
            self.missed.store(true, Ordering::Release);
            return false;
        }
        inner.writing.insert(id.to_string());
        true
    }

    /// After the write: hands the message over (`Some`), or withdraws the registration
    /// because the write failed (`None`).
    pub(crate) fn complete(&self, id: &str, fresh: Option<Fresh>) {
        let mut inner = self.lock();
        inner.writing.remove(id);
        if let Some(mut f) = fresh {
            let len = f.content.as_ref().map_or(0, |c| c.len());
            if inner.bytes + len > MAX_BYTES {
                f.content = None;
            } else {
                inner.bytes += len;
            }
            inner.ready.push_back(f);
        }
    }

    /// Takes every message handed over so far.
    pub(crate) fn take(&self) -> Vec<Fresh> {
        let mut inner = self.lock();
        inner.bytes = 0;
        inner.ready.drain(..).collect()
    }

    /// Turns the hand-off on (a scheduler is taking messages) or off.
    pub(crate) fn enable(&self, on: bool) {
        self.enabled.store(on, Ordering::Release);
    }

    /// Ids a read of the queue must leave out: being written or waiting in the hand-off.
    pub(crate) fn ids(&self) -> Vec<String> {
        let inner = self.lock();
        inner
            .writing
            .iter()
            .cloned()
            .chain(inner.ready.iter().map(|f| f.msg.id.clone()))
            .collect()
    }

    /// Whether a message was left to the queue reads since the last call.
    pub(crate) fn missed(&self) -> bool {
        self.missed.swap(false, Ordering::AcqRel)
    }
}
