//! The local delivery worker: takes due messages from the store, puts a copy in each
//! recipient's INBOX with Return-Path (RFC 5321 §4.4: added at final delivery) and
//! Delivered-To in front, and records the outcome per recipient.
//!
//! Delivery to a local mailbox is a store write that shares the body instead of copying it,
//! so a batch of messages is delivered in one commit.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use store::{DeliveryReport, Destination, Outcome, SharedStore};
use tokio::sync::{Notify, watch};

/// Most messages taken per round.
const BATCH: usize = 256;

#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub poll_interval: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

pub struct LocalDelivery {
    store: SharedStore,
    wake: Arc<Notify>,
    settings: DeliverySettings,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl LocalDelivery {
    pub fn new(store: SharedStore, wake: Arc<Notify>, settings: DeliverySettings) -> LocalDelivery {
        LocalDelivery {
            store,
            wake,
            settings,
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
                    let pause = self.backoff(failures);
                    tracing::error!(error = %e, retry_in = ?pause, "local delivery round failed; the queue is kept and retried");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.settings.retry_initial.min(Duration::from_secs(5));
        base.saturating_mul(1u32 << attempt.min(10))
            .min(self.settings.retry_max)
    }

    /// Delivers one batch; returns how many messages it handled.
    pub async fn round(&self) -> Result<usize, store::StoreError> {
        let due = self.store.due_messages(now_ms(), BATCH).await?;
        let mut reports = Vec::new();
        for msg in &due {
            for r in msg.recipients.iter().filter(|r| !r.state.is_final()) {
                let Destination::Mailbox(owner) = &r.destination;
                let prefix = format!(
                    "Return-Path: <{}>\r\nDelivered-To: {}\r\n",
                    msg.envelope.sender, owner
                );
                reports.push(DeliveryReport {
                    queue_id: msg.id.clone(),
                    idx: r.idx,
                    outcome: Outcome::Delivered {
                        owner: owner.clone(),
                        prefix: prefix.into_bytes(),
                    },
                });
            }
        }
        if !reports.is_empty() {
            let delivered: Vec<(String, u32, String)> = reports
                .iter()
                .filter_map(|r| match &r.outcome {
                    Outcome::Delivered { owner, .. } => {
                        Some((r.queue_id.clone(), r.idx, owner.clone()))
                    }
                    _ => None,
                })
                .collect();
            self.store.record_deliveries(reports).await?;
            for (queue_id, idx, owner) in delivered {
                tracing::info!(queue_id = %queue_id, recipient = idx, mailbox = %owner, "delivered");
            }
        }
        Ok(due.len())
    }
}
