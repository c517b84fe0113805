//! The delivery scheduler: takes due messages from the store and delivers each recipient —
//! local ones into their INBOX (Return-Path and Delivered-To in front, RFC 5321 §4.4), remote
//! ones through `outbound`, one job per (message, domain) in its own task, at most
//! `max_connections_per_domain` at once per domain, so one slow or dead domain never holds up
//! the others. Outcomes are recorded per recipient; temporary failures are retried with capped
//! exponential backoff until `max_queue_time`, after which the recipient fails as expired.
//!
//! Local delivery is a store write that shares the body instead of copying it, so a batch of
//! local deliveries is one commit.

use outbound::{JobRecipient, Outbound, RemoteJob, RemoteOutcome};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use store::{DeliveryReport, Destination, Outcome, QueuedMessage, SharedStore};
use tokio::sync::{Notify, Semaphore, watch};

/// Most messages taken per round.
const BATCH: usize = 256;

#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub poll_interval: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub max_queue_time: Duration,
    pub max_connections_per_domain: usize,
}

/// The scheduler. Cheap to clone: clones share their state.
#[derive(Clone)]
pub struct Scheduler {
    store: SharedStore,
    wake: Arc<Notify>,
    settings: DeliverySettings,
    outbound: Outbound,
    /// Messages with a remote job under way; skipped by later rounds until it ends.
    in_flight: Arc<Mutex<HashSet<String>>>,
    /// Connection slots per destination domain.
    domains: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Scheduler {
    pub fn new(
        store: SharedStore,
        wake: Arc<Notify>,
        settings: DeliverySettings,
        outbound: Outbound,
    ) -> Scheduler {
        Scheduler {
            store,
            wake,
            settings,
            outbound,
            in_flight: Arc::default(),
            domains: Arc::default(),
        }
    }

    /// Runs until `shutdown` turns true. Everything not yet delivered stays in the queue and is
    /// picked up on the next start.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut failures: u32 = 0;
        loop {
            if *shutdown.borrow() {
                return;
            }
            match self.round().await {
                Ok(0) => {
                    failures = 0;
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(self.settings.poll_interval) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Ok(_) => failures = 0,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let pause = Duration::from_millis(100)
                        .saturating_mul(1 << failures.min(8))
                        .min(self.settings.retry_max);
                    tracing::error!(error = %e, retry_in = ?pause, "delivery round failed; the queue is kept and retried");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
    }

    /// The delay before attempt number `attempts + 1`: `retry_initial` doubled per attempt
    /// made, at most `retry_max`.
    fn backoff(&self, attempts: u32) -> Duration {
        self.settings
            .retry_initial
            .saturating_mul(1u32 << attempts.min(20))
            .min(self.settings.retry_max)
    }

    /// One round: local deliveries and expiries recorded at once, remote jobs started.
    /// Returns how many messages it started work on.
    pub async fn round(&self) -> Result<usize, store::StoreError> {
        let now = now_ms();
        let due = self.store.due_messages(now, BATCH).await?;
        let mut reports = Vec::new();
        let mut jobs = Vec::new();
        let mut started = 0;
        for msg in due {
            if self
                .in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&msg.id)
            {
                continue;
            }
            started += 1;
            let expired = now.saturating_sub(msg.envelope.received_at.max(msg.created_at))
                >= self.settings.max_queue_time.as_millis() as i64;
            let mut remote: BTreeMap<String, Vec<JobRecipient>> = BTreeMap::new();
            for r in msg
                .recipients
                .iter()
                .filter(|r| !r.state.is_final() && r.next_attempt <= now)
            {
                match &r.destination {
                    Destination::Mailbox(owner) => reports.push(DeliveryReport {
                        queue_id: msg.id.clone(),
                        idx: r.idx,
                        outcome: Outcome::Delivered {
                            owner: owner.clone(),
                            prefix: format!(
                                "Return-Path: <{}>\r\nDelivered-To: {}\r\n",
                                msg.envelope.sender, owner
                            )
                            .into_bytes(),
                        },
                    }),
                    Destination::Remote(_) if expired => reports.push(DeliveryReport {
                        queue_id: msg.id.clone(),
                        idx: r.idx,
                        outcome: Outcome::Failed {
                            error: format!(
                                "4.4.7 gave up after {} in the queue; last error: {}",
                                humanize(self.settings.max_queue_time),
                                r.last_error.as_deref().unwrap_or("none")
                            ),
                        },
                    }),
                    Destination::Remote(domain) => {
                        remote
                            .entry(domain.clone())
                            .or_default()
                            .push(JobRecipient {
                                idx: r.idx,
                                address: r.address.clone(),
                                dsn: r.dsn.clone(),
                            })
                    }
                }
            }
            if !remote.is_empty() {
                self.in_flight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(msg.id.clone());
                jobs.push((msg, remote));
            }
        }
        if !reports.is_empty() {
            let summary: Vec<(String, u32, String)> = reports
                .iter()
                .map(|r| {
                    let what = match &r.outcome {
                        Outcome::Delivered { owner, .. } => format!("delivered to mailbox {owner}"),
                        Outcome::Failed { error } => format!("failed: {error}"),
                        other => format!("{other:?}"),
                    };
                    (r.queue_id.clone(), r.idx, what)
                })
                .collect();
            self.store.record_deliveries(reports).await?;
            for (queue_id, idx, what) in summary {
                tracing::info!(queue_id = %queue_id, recipient = idx, "{what}");
            }
        }
        for (msg, groups) in jobs {
            self.start_remote(msg, groups);
        }
        Ok(started)
    }

    fn domain_slots(&self, domain: &str) -> Arc<Semaphore> {
        let mut map = self.domains.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(domain.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.settings.max_connections_per_domain)))
            .clone()
    }

    /// Starts one task per destination domain of a message.
    fn start_remote(&self, msg: QueuedMessage, groups: BTreeMap<String, Vec<JobRecipient>>) {
        let remaining = Arc::new(AtomicUsize::new(groups.len()));
        let msg = Arc::new(msg);
        for (domain, recipients) in groups {
            let this = self.clone();
            let msg = msg.clone();
            let remaining = remaining.clone();
            tokio::spawn(async move {
                this.remote_job(&msg, domain, recipients).await;
                if remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                    this.in_flight
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&msg.id);
                    this.wake.notify_one();
                }
            });
        }
    }

    async fn remote_job(&self, msg: &QueuedMessage, domain: String, recipients: Vec<JobRecipient>) {
        let slots = self.domain_slots(&domain);
        // The semaphore is never closed, so acquiring only waits.
        let Ok(_slot) = slots.acquire_owned().await else {
            return;
        };
        let attempts: HashMap<u32, u32> =
            msg.recipients.iter().map(|r| (r.idx, r.attempts)).collect();
        let outcomes = match self.store.read_body(&msg.body_id, None).await {
            Ok(body) => {
                let job = RemoteJob {
                    queue_id: msg.id.clone(),
                    domain: domain.clone(),
                    envelope: msg.envelope.clone(),
                    recipients: recipients.clone(),
                    message: Arc::new(body),
                };
                self.outbound.deliver(&job).await
            }
            Err(e) => recipients
                .iter()
                .map(|r| {
                    (
                        r.idx,
                        RemoteOutcome::Deferred(format!("4.3.0 cannot read the message: {e}")),
                    )
                })
                .collect(),
        };
        let now = now_ms();
        let mut reports = Vec::new();
        for (idx, outcome) in outcomes {
            let address = recipients
                .iter()
                .find(|r| r.idx == idx)
                .map(|r| r.address.as_str())
                .unwrap_or("?");
            let outcome = match outcome {
                RemoteOutcome::Sent(reply) => {
                    tracing::info!(queue_id = %msg.id, to = address, domain = %domain, reply = %reply, "sent");
                    Outcome::Sent { response: reply }
                }
                RemoteOutcome::Deferred(why) => {
                    let delay = self.backoff(attempts.get(&idx).copied().unwrap_or(0));
                    tracing::info!(queue_id = %msg.id, to = address, domain = %domain, retry_in = ?delay, "deferred: {why}");
                    Outcome::Deferred {
                        error: why,
                        next_attempt: now + delay.as_millis() as i64,
                    }
                }
                RemoteOutcome::Failed(why) => {
                    tracing::warn!(queue_id = %msg.id, to = address, domain = %domain, "failed: {why}");
                    Outcome::Failed { error: why }
                }
            };
            reports.push(DeliveryReport {
                queue_id: msg.id.clone(),
                idx,
                outcome,
            });
        }
        if let Err(e) = self.store.record_deliveries(reports).await {
            // The recipients stay pending and are tried again: at worst a duplicate, never a loss.
            tracing::error!(queue_id = %msg.id, error = %e, "recording delivery outcomes failed; they will be retried");
        }
    }
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s >= 3_600 => format!("{} hours", s / 3_600),
        s if s >= 60 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}
