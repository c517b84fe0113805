//! Destinations: the connection slots of each next hop and the connections left open between
//! messages (connection reuse).
//!
//! A next hop is where mail goes: a domain's MX hosts, or a smarthost. At most `limit`
//! deliveries run at once per next hop (a slot each), and the connections open to it — busy or
//! idle — never exceed that limit either: a delivery that needs a new connection first closes
//! idle ones beyond it. A connection whose transaction ended cleanly is parked for
//! `idle_time`; the next delivery to the same next hop from the same source address takes it
//! instead of connecting, greeting, EHLO and STARTTLS again. An idle connection that outlives
//! `idle_time` is closed with QUIT.

use crate::client::Session;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A connection reused for longer than this is closed anyway (like Postfix's
/// `smtp_connection_reuse_time_limit`), so a busy destination's connections are renewed and
/// pick up DNS changes.
const REUSE_TIME_LIMIT: Duration = Duration::from_secs(300);

struct Idle {
    id: u64,
    session: Session,
}

struct Destination {
    slots: Arc<Semaphore>,
    limit: usize,
    idle: Vec<Idle>,
    /// Set when no host of the next hop could be reached: until then, deliveries are deferred
    /// with this problem without trying (like Postfix's dead destinations), so a backlog for a
    /// dead destination is rescheduled at once instead of waiting out a timeout per message.
    unreachable: Option<(tokio::time::Instant, String)>,
}

#[derive(Default)]
struct Inner {
    destinations: HashMap<String, Destination>,
    next_id: u64,
}

/// The destinations of one `Outbound`. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Destinations {
    inner: Arc<Mutex<Inner>>,
}

/// A delivery slot at one next hop, held while a delivery runs.
pub struct Slot {
    pub(crate) nexthop: String,
    _permit: OwnedSemaphorePermit,
}

impl Destinations {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a delivery slot at `nexthop` (at most `limit` at once).
    pub(crate) async fn slot(&self, nexthop: &str, limit: usize) -> Slot {
        let slots = {
            let mut inner = self.lock();
            inner
                .destinations
                .entry(nexthop.to_string())
                .or_insert_with(|| Destination {
                    slots: Arc::new(Semaphore::new(limit.max(1))),
                    limit: limit.max(1),
                    idle: Vec::new(),
                    unreachable: None,
                })
                .slots
                .clone()
        };
        // The semaphore is never closed.
        let permit = slots
            .acquire_owned()
            .await
            .expect("destination slots are never closed");
        Slot {
            nexthop: nexthop.to_string(),
            _permit: permit,
        }
    }

    /// An idle connection to the slot's next hop from `source`, if one is parked.
    pub(crate) fn take(&self, slot: &Slot, source: Option<IpAddr>) -> Option<Session> {
        let mut inner = self.lock();
        let dest = inner.destinations.get_mut(&slot.nexthop)?;
        // The most recently parked first: it is the least likely to have been closed.
        let pos = dest.idle.iter().rposition(|i| i.session.source == source)?;
        Some(dest.idle.remove(pos).session)
    }

    /// The problem the slot's next hop was marked unreachable with, while the mark lasts.
    pub(crate) fn unreachable(&self, slot: &Slot) -> Option<String> {
        let mut inner = self.lock();
        let dest = inner.destinations.get_mut(&slot.nexthop)?;
        match &dest.unreachable {
            Some((until, problem)) if tokio::time::Instant::now() < *until => Some(problem.clone()),
            Some(_) => {
                dest.unreachable = None;
                None
            }
            None => None,
        }
    }

    /// Marks the slot's next hop unreachable for `hold` (zero: not at all), or clears the mark
    /// (`None`) after a connection worked.
    pub(crate) fn set_unreachable(&self, slot: &Slot, problem: Option<String>, hold: Duration) {
        let mut inner = self.lock();
        if let Some(dest) = inner.destinations.get_mut(&slot.nexthop) {
            dest.unreachable = match problem {
                Some(p) if !hold.is_zero() => Some((tokio::time::Instant::now() + hold, p)),
                _ => None,
            };
        }
    }

    /// Before opening a new connection under `slot`: closes idle connections (in the
    /// background) until the busy ones, this new one included, and the idle ones are within
    /// the next hop's limit.
    pub(crate) fn make_room(&self, slot: &Slot) {
        let evicted: Vec<Session> = {
            let mut inner = self.lock();
            let Some(dest) = inner.destinations.get_mut(&slot.nexthop) else {
                return;
            };
            let busy = dest.limit - dest.slots.available_permits();
            let keep = dest.limit.saturating_sub(busy);
            let excess = dest.idle.len().saturating_sub(keep);
            dest.idle.drain(..excess).map(|i| i.session).collect()
        };
        for session in evicted {
            tokio::spawn(session.close());
        }
    }

    /// Parks `session` for the next delivery to the slot's next hop, or closes it when it has
    /// carried `max_messages` or has been open too long. `idle_time` zero: never parked.
    pub(crate) fn park(
        &self,
        slot: &Slot,
        session: Session,
        idle_time: Duration,
        max_messages: u32,
    ) {
        if idle_time.is_zero()
            || session.messages >= max_messages
            || session.opened.elapsed() >= REUSE_TIME_LIMIT
        {
            tokio::spawn(session.close());
            return;
        }
        let id = {
            let mut inner = self.lock();
            inner.next_id += 1;
            let id = inner.next_id;
            match inner.destinations.get_mut(&slot.nexthop) {
                Some(dest) => dest.idle.push(Idle { id, session }),
                None => {
                    tokio::spawn(session.close());
                    return;
                }
            }
            id
        };
        let this = self.clone();
        let nexthop = slot.nexthop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(idle_time).await;
            let expired = {
                let mut inner = this.lock();
                inner.destinations.get_mut(&nexthop).and_then(|dest| {
                    let pos = dest.idle.iter().position(|i| i.id == id)?;
                    Some(dest.idle.remove(pos).session)
                })
            };
            if let Some(session) = expired {
                tracing::debug!(nexthop, host = %session.host, addr = %session.addr, messages = session.messages, "idle connection closed");
                session.close().await;
            }
        });
    }
}
