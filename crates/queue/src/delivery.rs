//! The delivery scheduler: takes due messages from the store and delivers each recipient —
//! local ones into their INBOX (Return-Path and Delivered-To in front, RFC 5321 §4.4), remote
//! ones through `outbound`, one job per (message, domain) in its own task, at most
//! `outbound.max_connections_per_domain` at once per next hop (`outbound::Outbound::slot`, taken
//! before anything else), so one slow or dead domain never holds up the others. Outcomes are recorded per recipient; temporary failures are retried with capped
//! exponential backoff until `max_queue_time`, after which the recipient fails as expired.
//!
//! Local delivery is a store write that shares the body instead of copying it, so a batch of
//! local deliveries is one commit.

use crate::bounce;
use crate::intake::{AcceptedRecipient, Intake, Origin, Submission};
use accounts::{Directory, Resolution};
use outbound::{JobRecipient, Outbound, RemoteJob, RemoteOutcome};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use store::{DeliveryReport, Destination, Outcome, QueuedMessage, SharedStore};
use tokio::sync::{Notify, Semaphore, watch};

/// Most messages taken per round.
const BATCH: usize = 256;

/// Most messages with remote jobs under way at once (like Postfix's
/// `qmgr_message_active_limit`). Each waits in memory for a slot at its destination; past this
/// many, rounds start no new work until some finish.
const MAX_IN_FLIGHT: usize = 20_000;

/// The origin (listener name) of the postmaster copy of a failed bounce.
const POSTMASTER_COPY: &str = "postmaster-copy";

#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub poll_interval: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub max_queue_time: Duration,
    /// Zero: no delay reports.
    pub delay_warning: Duration,
    /// Where a failed message without a sender (a bounce) is reported; `None`: only logged.
    pub failed_bounce_copy_to: Option<String>,
    /// Messages per minute to one recipient domain; 0: no limit. Over it, mail is deferred.
    pub destination_messages_per_minute: u32,
    /// Remote deliveries at once, across all destinations.
    pub max_deliveries: usize,
    /// Of those, how many the bulk lane may never use.
    pub reserved_transactional: usize,
}

/// The scheduler. Cheap to clone: clones share their state.
#[derive(Clone)]
pub struct Scheduler {
    store: SharedStore,
    wake: Arc<Notify>,
    settings: DeliverySettings,
    outbound: Outbound,
    intake: Intake,
    directory: Directory,
    hostname: Arc<str>,
    /// Messages with a remote job under way; skipped by later rounds until it ends.
    in_flight: Arc<Mutex<HashSet<String>>>,
    /// Messages whose jobs ended. They leave `in_flight` only at the start of the next round,
    /// before it reads the queue: a round that read the queue while the job ran holds a stale
    /// copy of the message and must not act on it (it could deliver a recipient twice).
    finished: Arc<Mutex<Vec<String>>>,
    /// Remote delivery slots for every lane, and the smaller share bulk mail may take: bulk jobs
    /// need one of each, so `reserved_transactional` slots stay free for transactional mail.
    all_slots: Arc<Semaphore>,
    bulk_slots: Arc<Semaphore>,
    /// Set when a recipient failed since the last bounce round.
    bounce_due: Arc<AtomicBool>,
    /// Counts for `destination_messages_per_minute`.
    limiter: accounts::Limiter,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Scheduler {
    /// `intake` and `directory` are for bounces, which enter the queue like any message.
    pub fn new(
        store: SharedStore,
        wake: Arc<Notify>,
        settings: DeliverySettings,
        outbound: Outbound,
        intake: Intake,
        directory: Directory,
        hostname: &str,
    ) -> Scheduler {
        let all_slots = Arc::new(Semaphore::new(settings.max_deliveries.max(1)));
        let bulk = settings
            .max_deliveries
            .saturating_sub(settings.reserved_transactional)
            .max(1);
        let bulk_slots = Arc::new(Semaphore::new(bulk));
        Scheduler {
            store,
            wake,
            settings,
            outbound,
            intake,
            directory,
            hostname: hostname.into(),
            in_flight: Arc::default(),
            finished: Arc::default(),
            all_slots,
            bulk_slots,
            bounce_due: Arc::default(),
            limiter: accounts::Limiter::default(),
        }
    }

    /// Runs until `shutdown` turns true. Everything not yet delivered stays in the queue and is
    /// picked up on the next start.
    ///
    /// Each turn takes the messages intake handed over (delivered at once, without reading them
    /// back), then reads the queue — but only when it may hold due work the hand-off did not
    /// bring: every `poll_interval` (retries coming due, changes by the admin CLI), right after a
    /// read that found work (there may be more), and when intake could not hand a message over.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let handoff = self.intake.handoff().clone();
        handoff.enable(true);
        let mut failures: u32 = 0;
        let mut last_read: Option<tokio::time::Instant> = None;
        let mut more = true;
        loop {
            if *shutdown.borrow() {
                handoff.enable(false);
                return;
            }
            self.forget_finished();
            let fresh: Vec<(QueuedMessage, Option<Arc<Vec<u8>>>)> = handoff
                .take()
                .into_iter()
                .map(|f| (f.msg, f.content))
                .collect();
            let mut work = self.process(fresh).await;
            let read = more
                || handoff.missed()
                || last_read.is_none_or(|t| t.elapsed() >= self.settings.poll_interval);
            if read && work.is_ok() {
                last_read = Some(tokio::time::Instant::now());
                work = match self.round().await {
                    Ok(n) => {
                        more = n > 0;
                        work.map(|w| w + n)
                    }
                    Err(e) => Err(e),
                };
            }
            if (read || self.bounce_due.swap(false, Ordering::AcqRel)) && work.is_ok() {
                work = match self.bounce_round().await {
                    Ok(b) => work.map(|w| w + b),
                    Err(e) => Err(e),
                };
            }
            match work {
                Ok(0) => {
                    failures = 0;
                    let wait = last_read.map_or(Duration::ZERO, |t| {
                        self.settings.poll_interval.saturating_sub(t.elapsed())
                    });
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Ok(_) => failures = 0,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    more = true;
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

    /// Messages whose jobs ended leave the in-flight set. Only between reads of the queue (the
    /// run loop calls this, never a round): a read made while a job ran holds a stale copy of
    /// its message, which must meet the message still in flight and leave it alone.
    fn forget_finished(&self) {
        let mut finished = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        for id in finished.drain(..) {
            in_flight.remove(&id);
        }
    }

    /// One read of the queue: due messages other than those in delivery or in the hand-off,
    /// processed. Returns how many messages it started work on.
    pub async fn round(&self) -> Result<usize, store::StoreError> {
        let mut busy: Vec<String> = self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        if busy.len() >= MAX_IN_FLIGHT {
            tracing::debug!(
                in_flight = busy.len(),
                "at the limit of messages in delivery; waiting for some to finish"
            );
            return Ok(0);
        }
        // Messages being handed over by intake are the hand-off's: a read must not take them
        // too (that could deliver a local recipient twice).
        busy.extend(self.intake.handoff().ids());
        let now = now_ms();
        // Messages already in delivery are left out by the store, so a destination that is slow
        // to answer, with many messages waiting for its slots, does not fill every round's
        // window and hold up mail for other destinations.
        let due = self.store.due_messages(now, BATCH, &busy).await?;
        self.process(due.into_iter().map(|m| (m, None)).collect())
            .await
    }

    /// Local deliveries and expiries recorded at once, remote jobs started (with the content
    /// where the caller has it). Returns how many messages it started work on.
    async fn process(
        &self,
        messages: Vec<(QueuedMessage, Option<Arc<Vec<u8>>>)>,
    ) -> Result<usize, store::StoreError> {
        if messages.is_empty() {
            return Ok(0);
        }
        let now = now_ms();
        let mut reports = Vec::new();
        let mut jobs = Vec::new();
        let mut success: Vec<(QueuedMessage, Vec<u32>)> = Vec::new();
        let mut started = 0;
        for (msg, content) in messages {
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
            let wanted: Vec<u32> = msg
                .recipients
                .iter()
                .filter(|r| !r.state.is_final() && r.next_attempt <= now)
                .filter(|r| {
                    matches!(r.destination, Destination::Mailbox(_))
                        && bounce::wants_success_report(r)
                })
                .map(|r| r.idx)
                .collect();
            if !wanted.is_empty() {
                success.push((msg.clone(), wanted));
            }
            if !remote.is_empty() {
                self.in_flight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(msg.id.clone());
                jobs.push((msg, remote, content));
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
            let failed = reports
                .iter()
                .any(|r| matches!(r.outcome, Outcome::Failed { .. }));
            self.store.record_deliveries(reports).await?;
            if failed {
                self.bounce_due.store(true, Ordering::Release);
            }
            for (queue_id, idx, what) in summary {
                tracing::info!(queue_id = %queue_id, recipient = idx, "{what}");
            }
        }
        // RFC 3461 §4.1: NOTIFY=SUCCESS on a local delivery gets a "delivered" report.
        for (msg, idxs) in &success {
            let recipients: Vec<&store::QueuedRecipient> = msg
                .recipients
                .iter()
                .filter(|r| idxs.contains(&r.idx))
                .collect();
            if let Err(e) = self
                .send_report(bounce::Kind::Delivered, msg, &recipients, None)
                .await
            {
                tracing::error!(queue_id = %msg.id, error = %e, "the success report could not be queued");
            }
        }
        for (msg, groups, content) in jobs {
            self.start_remote(msg, groups, content);
        }
        Ok(started)
    }

    /// Starts one task per destination domain of a message.
    fn start_remote(
        &self,
        msg: QueuedMessage,
        groups: BTreeMap<String, Vec<JobRecipient>>,
        content: Option<Arc<Vec<u8>>>,
    ) {
        let remaining = Arc::new(AtomicUsize::new(groups.len()));
        let msg = Arc::new(msg);
        for (domain, recipients) in groups {
            let this = self.clone();
            let msg = msg.clone();
            let remaining = remaining.clone();
            let content = content.clone();
            tokio::spawn(async move {
                this.remote_job(&msg, domain, recipients, content).await;
                if remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                    this.finished
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(msg.id.clone());
                    this.wake.notify_one();
                }
            });
        }
    }

    async fn remote_job(
        &self,
        msg: &QueuedMessage,
        domain: String,
        recipients: Vec<JobRecipient>,
        content: Option<Arc<Vec<u8>>>,
    ) {
        // The destination's slot first: a job waiting for a busy (or slow, or dead) destination
        // holds no lane slot, so it never holds up mail for other destinations. Then the lane
        // slots. The semaphores are never closed, so acquiring only waits.
        let slot = self.outbound.slot(&domain).await;
        let bulk = if msg.lane == "bulk" {
            match self.bulk_slots.clone().acquire_owned().await {
                Ok(p) => Some(p),
                Err(_) => return,
            }
        } else {
            None
        };
        let Ok(lane) = self.all_slots.clone().acquire_owned().await else {
            return;
        };
        let attempts: HashMap<u32, u32> =
            msg.recipients.iter().map(|r| (r.idx, r.attempts)).collect();
        let mut message: Option<Arc<Vec<u8>>> = None;
        let per_minute = accounts::RateLimit {
            per_minute: self.settings.destination_messages_per_minute,
            ..Default::default()
        };
        let within_rate = self
            .limiter
            .take(&format!("destination:{domain}"), 1, &per_minute)
            .is_ok();
        let body = match content {
            _ if !within_rate => Ok(Arc::default()),
            Some(c) => Ok(c),
            None => self.store.read_body(&msg.body_id, None).await.map(Arc::new),
        };
        let outcomes = match body {
            // Over the destination's rate: deferred without reading or sending the message.
            Ok(_) if !within_rate => recipients
                .iter()
                .map(|r| {
                    (
                        r.idx,
                        RemoteOutcome::Deferred(format!(
                            "4.7.0 rate limit for {domain}: {} messages per minute; sent later",
                            per_minute.per_minute
                        )),
                    )
                })
                .collect(),
            Ok(body) => {
                message = Some(body.clone());
                let job = RemoteJob {
                    queue_id: msg.id.clone(),
                    domain: domain.clone(),
                    envelope: msg.envelope.clone(),
                    lane: msg.lane.clone(),
                    recipients: recipients.clone(),
                    message: body,
                };
                self.outbound.deliver_in(&slot, &job).await
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
        // The connection is parked or closed by now: the next delivery to this destination may
        // start while the outcomes are written.
        drop((slot, lane, bulk));
        let now = now_ms();
        let mut reports = Vec::new();
        let mut relayed: Vec<store::QueuedRecipient> = Vec::new();
        let mut delayed: Vec<store::QueuedRecipient> = Vec::new();
        let mut bounced: u32 = 0;
        for (idx, outcome) in outcomes {
            let address = recipients
                .iter()
                .find(|r| r.idx == idx)
                .map(|r| r.address.as_str())
                .unwrap_or("?");
            let outcome = match outcome {
                RemoteOutcome::Sent {
                    reply,
                    peer_dsn,
                    conn_use,
                } => {
                    tracing::info!(queue_id = %msg.id, to = address, domain = %domain, conn_use, reply = %reply, "sent");
                    // RFC 3461 §5.2.1: a server without DSN will not report success; we do.
                    if let Some(r) = msg.recipients.iter().find(|r| r.idx == idx)
                        && !peer_dsn
                        && bounce::wants_success_report(r)
                    {
                        let mut r = r.clone();
                        r.last_error = Some(reply.clone());
                        relayed.push(r);
                    }
                    Outcome::Sent { response: reply }
                }
                RemoteOutcome::Deferred(why) => {
                    let delay = self.backoff(attempts.get(&idx).copied().unwrap_or(0));
                    tracing::info!(queue_id = %msg.id, to = address, domain = %domain, retry_in = ?delay, "deferred: {why}");
                    // RFC 3464 "delayed": once, after delay_warning, where NOTIFY allows it.
                    let warning = self.settings.delay_warning.as_millis() as i64;
                    if let Some(r) = msg.recipients.iter().find(|r| r.idx == idx)
                        && warning > 0
                        && now.saturating_sub(msg.envelope.received_at) >= warning
                        && !r.delay_notified
                        && bounce::wants_delay_report(r)
                    {
                        let mut r = r.clone();
                        r.last_error = Some(why.clone());
                        delayed.push(r);
                    }
                    Outcome::Deferred {
                        error: why,
                        next_attempt: now + delay.as_millis() as i64,
                        delay_notified: false,
                    }
                }
                RemoteOutcome::Failed(why) => {
                    tracing::warn!(queue_id = %msg.id, to = address, domain = %domain, "failed: {why}");
                    self.bounce_due.store(true, Ordering::Release);
                    bounced += 1;
                    Outcome::Failed { error: why }
                }
            };
            reports.push(DeliveryReport {
                queue_id: msg.id.clone(),
                idx,
                outcome,
            });
        }
        if !delayed.is_empty() {
            let refs: Vec<&store::QueuedRecipient> = delayed.iter().collect();
            let sent = self
                .send_report(
                    bounce::Kind::Delayed,
                    msg,
                    &refs,
                    message.as_deref().map(|v| v.as_slice()),
                )
                .await;
            match sent {
                // Recorded only once the report is queued, so a failure here means another try.
                Ok(()) => {
                    for report in &mut reports {
                        if let Outcome::Deferred { delay_notified, .. } = &mut report.outcome
                            && delayed.iter().any(|r| r.idx == report.idx)
                        {
                            *delay_notified = true;
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(queue_id = %msg.id, error = %e, "the delay report could not be queued")
                }
            }
        }
        if let Err(e) = self.store.record_deliveries(reports).await {
            // The recipients stay pending and are tried again: at worst a duplicate, never a loss.
            tracing::error!(queue_id = %msg.id, error = %e, "recording delivery outcomes failed; they will be retried");
            return;
        }
        // Bounces count against the credential the mail was sent with (unusual-activity
        // detection compares them with its usual bounce rate).
        if bounced > 0
            && let (Some(account), Some(label)) = (&msg.envelope.auth, &msg.envelope.credential)
            && let Err(e) = self
                .store
                .count_bounces(account, label, now / 3_600_000, bounced)
                .await
        {
            tracing::warn!(error = %e, "counting the credential's bounces failed");
        }
        if !relayed.is_empty() {
            let refs: Vec<&store::QueuedRecipient> = relayed.iter().collect();
            // The queue entry (and with it the stored body) may be gone now: use the copy read
            // for sending.
            if let Err(e) = self
                .send_report(
                    bounce::Kind::Relayed,
                    msg,
                    &refs,
                    message.as_deref().map(|v| v.as_slice()),
                )
                .await
            {
                tracing::error!(queue_id = %msg.id, error = %e, "the relayed report could not be queued");
            }
        }
    }
}

impl Scheduler {
    /// Sends the bounces of failed recipients: one report per message for the recipients whose
    /// NOTIFY asks for it, back to the sender through intake with a null sender. A message that
    /// was itself a bounce (null sender) gets none: its failure is only logged. Once the report
    /// is queued (durably), the recipients are marked bounced.
    pub async fn bounce_round(&self) -> Result<usize, store::StoreError> {
        let failed = self.store.failed_messages(BATCH).await?;
        let mut handled = 0;
        for msg in failed {
            let recipients: Vec<&store::QueuedRecipient> = msg
                .recipients
                .iter()
                .filter(|r| r.state == store::RecipientState::Failed)
                .collect();
            let wanted: Vec<&store::QueuedRecipient> = recipients
                .iter()
                .copied()
                .filter(|r| bounce::wants_failure_report(r))
                .collect();
            if msg.envelope.sender.is_empty() {
                tracing::warn!(queue_id = %msg.id, "a bounce could not be delivered; it is dropped (a bounce is never bounced)");
                // A copy for the postmaster, if configured — but never of a copy.
                if let Some(to) = &self.settings.failed_bounce_copy_to
                    && msg.envelope.listener != POSTMASTER_COPY
                    && let Err(e) = self
                        .send_report_to(bounce::Kind::Failed, &msg, &recipients, None, to)
                        .await
                {
                    tracing::error!(queue_id = %msg.id, error = %e, "queueing the postmaster copy failed; it will be retried");
                    continue;
                }
            } else if wanted.is_empty() {
                tracing::info!(queue_id = %msg.id, "no failure report: NOTIFY did not ask for one");
            } else if let Err(e) = self
                .send_report(bounce::Kind::Failed, &msg, &wanted, None)
                .await
            {
                tracing::error!(queue_id = %msg.id, error = %e, "queueing the bounce failed; it will be retried");
                continue;
            }
            let reports = recipients
                .iter()
                .map(|r| store::DeliveryReport {
                    queue_id: msg.id.clone(),
                    idx: r.idx,
                    outcome: Outcome::Bounced,
                })
                .collect();
            self.store.record_deliveries(reports).await?;
            handled += 1;
        }
        Ok(handled)
    }

    /// Sends a delivery report of `kind` about `failed` (the reported recipients) of `msg` to
    /// its sender, through intake with a null sender. Nothing for a message without sender.
    async fn send_report(
        &self,
        kind: bounce::Kind,
        msg: &QueuedMessage,
        failed: &[&store::QueuedRecipient],
        original: Option<&[u8]>,
    ) -> Result<(), String> {
        if msg.envelope.sender.is_empty() {
            return Ok(());
        }
        self.send_report_to(kind, msg, failed, original, &msg.envelope.sender)
            .await
    }

    /// Like `send_report`, to `to`: the sender, or the postmaster copy of a failed bounce
    /// (which enters the queue from the listener named `POSTMASTER_COPY`, so that its own
    /// failure is never copied again).
    async fn send_report_to(
        &self,
        kind: bounce::Kind,
        msg: &QueuedMessage,
        failed: &[&store::QueuedRecipient],
        original: Option<&[u8]>,
        to: &str,
    ) -> Result<(), String> {
        let copy = msg.envelope.sender.is_empty();
        let original = match original {
            Some(o) => o.to_vec(),
            None => self
                .store
                .read_body(&msg.body_id, None)
                .await
                .map_err(|e| e.to_string())?,
        };
        let report = bounce::build(
            &self.hostname,
            kind,
            msg,
            failed,
            &original,
            copy.then_some(to),
        );
        let sender = to.to_lowercase();
        let destinations = match self
            .directory
            .resolve(&sender)
            .await
            .map_err(|e| e.to_string())?
        {
            Resolution::Local(owners) => owners.into_iter().map(Destination::Mailbox).collect(),
            Resolution::NotLocal => match sender.rsplit_once('@') {
                Some((_, domain)) => vec![Destination::Remote(domain.to_string())],
                None => return Err(format!("sender {sender} has no domain")),
            },
            Resolution::UnknownUser => {
                tracing::warn!(queue_id = %msg.id, sender = %sender, "the sender is an unknown local address; no bounce");
                return Ok(());
            }
        };
        let head_end = report
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| p + 4)
            .unwrap_or(report.len());
        let submission = Submission {
            sender: String::new(),
            ret: None,
            envid: None,
            body_type: Some("8BITMIME".into()),
            smtputf8: msg.envelope.smtputf8,
            recipients: vec![AcceptedRecipient {
                address: to.to_string(),
                dsn: store::RecipientDsn::default(),
                destinations,
            }],
            origin: Origin {
                client_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                helo: self.hostname.to_string(),
                esmtp: true,
                listener: if copy { POSTMASTER_COPY } else { "bounce" }.into(),
                tls: None,
                auth: None,
                submission: false,
                credential: None,
            },
            head: report[..head_end].to_vec(),
            body: store::NewBody::Memory(report),
            hold: false,
        };
        let id = self
            .intake
            .submit(submission)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(queue_id = %msg.id, report = %id, kind = ?kind, to = %to, recipients = failed.len(), "delivery report queued");
        Ok(())
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
