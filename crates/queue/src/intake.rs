//! Intake: the one way into the queue (as Postfix's cleanup). Every message, whichever front
//! end received it, passes here: trace and missing headers are added, loops are refused, the
//! envelope is built, and the message is written durably. Only when [`Intake::submit`] returns
//! may the client be told the message is accepted.

use crate::date::rfc5322_date;
use crate::handoff::{Fresh, Handoff};
use crate::headers;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;
use store::{
    Destination, Envelope, NewBody, NewMessage, NewRecipient, QueuedMessage, QueuedRecipient,
    RecipientDsn, RecipientState, SharedStore, StoreError,
};
use tokio::sync::Notify;

/// Where a message came from, for the Received header and the envelope.
#[derive(Debug, Clone)]
pub struct Origin {
    pub client_ip: IpAddr,
    /// The name the client gave in EHLO/HELO.
    pub helo: String,
    /// True when the client used EHLO (ESMTP).
    pub esmtp: bool,
    /// The listener's name from the config.
    pub listener: String,
    /// TLS version and cipher suite, when the session was encrypted.
    pub tls: Option<String>,
    /// The authenticated account, if any.
    pub auth: Option<String>,
    /// A submission (RFC 6409): Message-ID and Date are added when missing (§8.2, §8.3).
    pub submission: bool,
    /// The label of the credential the client authenticated with.
    pub credential: Option<String>,
}

/// A recipient accepted at RCPT with where it goes: the local mailboxes it resolved to, or its
/// remote domain.
#[derive(Debug, Clone)]
pub struct AcceptedRecipient {
    pub address: String,
    pub dsn: RecipientDsn,
    pub destinations: Vec<Destination>,
}

/// One message handed to intake.
#[derive(Debug)]
pub struct Submission {
    /// MAIL FROM; empty for `<>`.
    pub sender: String,
    pub ret: Option<String>,
    pub envid: Option<String>,
    pub body_type: Option<String>,
    pub smtputf8: bool,
    pub recipients: Vec<AcceptedRecipient>,
    pub origin: Origin,
    /// The start of the message, at least its header section when that fits the caller's
    /// memory limit; used to scan headers.
    pub head: Vec<u8>,
    pub body: NewBody,
    /// Write it on hold (unusual activity): kept, not delivered until an admin releases it.
    pub hold: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// More Received headers than allowed: a mail loop (RFC 5321 §6.3).
    #[error("mail loop: {0} Received headers")]
    Loop(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which lane a message travels in: "bulk" for the listed accounts, credentials and listeners, else
/// "transactional".
#[derive(Debug, Clone, Default)]
pub struct LanePolicy {
    /// Authenticated accounts whose mail is bulk (lower-case).
    pub bulk_accounts: Vec<String>,
    /// Listener names whose mail is bulk.
    pub bulk_listeners: Vec<String>,
    /// Credentials ("account/label", account lower-case) whose mail is bulk.
    pub bulk_credentials: Vec<String>,
}

impl LanePolicy {
    pub fn lane_for(&self, origin: &Origin) -> &'static str {
        let by_account = origin
            .auth
            .as_ref()
            .is_some_and(|a| self.bulk_accounts.contains(&a.to_lowercase()));
        let by_credential = match (&origin.auth, &origin.credential) {
            (Some(a), Some(label)) => self
                .bulk_credentials
                .contains(&format!("{}/{label}", a.to_lowercase())),
            _ => false,
        };
        if by_account || by_credential || self.bulk_listeners.contains(&origin.listener) {
            "bulk"
        } else {
            "transactional"
        }
    }
}

/// The intake service, shared by every front end.
#[derive(Clone)]
pub struct Intake {
    lanes: Arc<LanePolicy>,
    store: SharedStore,
    hostname: Arc<str>,
    max_received: usize,
    wake: Arc<Notify>,
    handoff: Handoff,
}

impl Intake {
    /// `wake` is notified after each accepted message so the delivery worker starts at once.
    pub fn new(
        store: SharedStore,
        hostname: &str,
        max_received: usize,
        wake: Arc<Notify>,
        lanes: LanePolicy,
    ) -> Intake {
        Intake {
            lanes: Arc::new(lanes),
            store,
            hostname: hostname.into(),
            max_received,
            wake,
            handoff: Handoff::default(),
        }
    }

    /// Where accepted messages are handed to the scheduler.
    pub(crate) fn handoff(&self) -> &Handoff {
        &self.handoff
    }

    /// Writes the message durably and returns its queue id.
    pub async fn submit(&self, sub: Submission) -> Result<String, IntakeError> {
        let facts = headers::scan(&sub.head);
        if facts.received >= self.max_received {
            if let NewBody::File { path, .. } = &sub.body {
                let _ = std::fs::remove_file(path);
            }
            return Err(IntakeError::Loop(facts.received));
        }
        let id = store::new_queue_id();
        let now = SystemTime::now();
        let date = rfc5322_date(now);
        let mut prefix = self.received_header(&id, &sub, &date).into_bytes();
        if sub.origin.submission && !facts.has_message_id {
            let nonce: u32 = rand::random();
            prefix.extend_from_slice(
                format!("Message-ID: <{id}.{nonce:08x}@{}>\r\n", self.hostname).as_bytes(),
            );
        }
        if sub.origin.submission && !facts.has_date {
            prefix.extend_from_slice(format!("Date: {date}\r\n").as_bytes());
        }
        let size = prefix.len() as u64 + sub.body.len();
        let recipient_count = sub.recipients.len();
        let mut recipients = Vec::new();
        for r in sub.recipients {
            for destination in r.destinations {
                recipients.push(NewRecipient {
                    address: r.address.clone(),
                    dsn: r.dsn.clone(),
                    destination,
                });
            }
        }
        let envelope = Envelope {
            sender: sub.sender,
            ret: sub.ret,
            envid: sub.envid,
            body_type: sub.body_type,
            smtputf8: sub.smtputf8,
            received_at: now
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            client_ip: sub.origin.client_ip.to_string(),
            helo: sub.origin.helo.clone(),
            listener: sub.origin.listener.clone(),
            auth: sub.origin.auth.clone(),
            credential: sub.origin.credential.clone(),
            tls: sub.origin.tls.clone(),
        };
        let sender = envelope.sender.clone();
        let lane = self.lanes.lane_for(&sub.origin).to_string();
        // The queue entry as the store will hold it, for the hand-off to the scheduler, with
        // the content when it is in memory and goes to remote servers.
        // A held message is not handed over: it waits for an admin.
        let fresh = (!sub.hold && self.handoff.reserve(&id)).then(|| {
            let remote = recipients
                .iter()
                .any(|r| matches!(r.destination, Destination::Remote(_)));
            let content = match &sub.body {
                NewBody::Memory(b) if remote => {
                    let mut all = Vec::with_capacity(prefix.len() + b.len());
                    all.extend_from_slice(&prefix);
                    all.extend_from_slice(b);
                    Some(Arc::new(all))
                }
                _ => None,
            };
            Fresh {
                msg: QueuedMessage {
                    id: id.clone(),
                    envelope: envelope.clone(),
                    body_id: id.clone(),
                    size,
                    created_at: envelope.received_at,
                    recipients: recipients
                        .iter()
                        .enumerate()
                        .map(|(idx, r)| QueuedRecipient {
                            idx: idx as u32,
                            address: r.address.clone(),
                            dsn: r.dsn.clone(),
                            destination: r.destination.clone(),
                            state: RecipientState::Queued,
                            attempts: 0,
                            next_attempt: envelope.received_at,
                            last_error: None,
                            delay_notified: false,
                        })
                        .collect(),
                    quarantined: None,
                    held_at: None,
                    lane: lane.clone(),
                },
                content,
            }
        });
        let written = self
            .store
            .enqueue(NewMessage {
                lane: lane.clone(),
                id: id.clone(),
                envelope,
                prefix,
                body: sub.body,
                recipients,
                held: sub.hold,
            })
            .await;
        let handed = fresh.is_some();
        if handed {
            self.handoff.complete(&id, written.as_ref().ok().and(fresh));
        }
        written?;
        tracing::info!(
            queue_id = %id,
            from = %sender,
            recipients = recipient_count,
            size,
            lane = %lane,
            tls = sub.origin.tls.as_deref().unwrap_or("none"),
            auth = sub.origin.auth.as_deref().unwrap_or("-"),
            "message accepted"
        );
        self.wake.notify_one();
        Ok(id)
    }

    /// The Received header (RFC 5321 §4.4), with the protocol type of RFC 3848 / RFC 6531 §3.7.3
    /// (ESMTP, ESMTPS, ESMTPA, ESMTPSA, UTF8SMTP...), and comments noting TLS and AUTH.
    fn received_header(&self, id: &str, sub: &Submission, date: &str) -> String {
        let o = &sub.origin;
        let ip = match o.client_ip {
            IpAddr::V4(v4) => format!("[{v4}]"),
            IpAddr::V6(v6) => format!("[IPv6:{v6}]"),
        };
        let mut with = String::from(match (o.esmtp, sub.smtputf8) {
            (_, true) => "UTF8SMTP",
            (true, false) => "ESMTP",
            (false, false) => "SMTP",
        });
        if o.tls.is_some() {
            with.push('S');
        }
        if o.auth.is_some() {
            with.push('A');
        }
        // The HELO name is client input: keep it to printable non-space ASCII.
        let helo: String = o
            .helo
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(255)
            .collect();
        let mut h = format!(
            "Received: from {} ({ip})\r\n",
            if helo.is_empty() { "unknown" } else { &helo }
        );
        if let Some(tls) = &o.tls {
            h.push_str(&format!("\t(using {tls})\r\n"));
        }
        if let Some(user) = &o.auth {
            h.push_str(&format!("\t(authenticated as {user})\r\n"));
        }
        h.push_str(&format!(
            "\tby {} (Postrider) with {with} id {id}",
            self.hostname
        ));
        // Name the recipient only when there is one, so a Bcc is not revealed to others.
        if let [only] = sub.recipients.as_slice()
            && (only.address.is_ascii() || sub.smtputf8)
        {
            h.push_str(&format!("\r\n\tfor <{}>", only.address));
        }
        h.push_str(&format!(";\r\n\t{date}\r\n"));
        h
    }
}
