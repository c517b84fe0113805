//! Records the store keeps and hands out.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRecord {
    pub name: String,
    pub catch_all: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub address: String,
    pub password_hash: String,
    pub created_at: i64,
}

/// A secret an account logs in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRecord {
    pub id: i64,
    pub account: String,
    pub label: String,
    /// argon2id PHC string.
    pub secret_hash: String,
    pub created_at: i64,
    /// Unix ms after which it no longer works; `None`: never expires.
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub last_used_ip: Option<String>,
    /// Set when unusual activity suspended it (until `postrider credential resume`).
    pub suspended_at: Option<i64>,
    pub suspended_reason: Option<String>,
}

impl CredentialRecord {
    /// Neither revoked, nor suspended, nor expired at `now_ms`.
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.revoked_at.is_none()
            && self.suspended_at.is_none()
            && self.expires_at.is_none_or(|e| now_ms < e)
    }
}

/// A DKIM key of a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimKeyRecord {
    pub domain: String,
    pub selector: String,
    /// "rsa" or "ed25519".
    pub algorithm: String,
    pub private_key: Vec<u8>,
    pub public_key: Vec<u8>,
    pub created_at: i64,
}

/// A temporary ban: of a client address (`kind` "ip") or of logins to an account name
/// (`kind` "account").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanRecord {
    pub kind: String,
    pub value: String,
    /// Unix ms when it ends.
    pub until: i64,
    pub reason: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasRecord {
    pub alias: String,
    pub target: String,
}

/// The envelope of a queued message, kept as JSON so later fields can be added without a
/// schema change. Unknown fields are ignored when read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Envelope {
    /// MAIL FROM address; empty for the null reverse path `<>`.
    pub sender: String,
    /// RET= (RFC 3461 §4.3): "FULL" or "HDRS".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<String>,
    /// ENVID= (RFC 3461 §4.4), decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envid: Option<String>,
    /// BODY= ("7BIT", "8BITMIME").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_type: Option<String>,
    #[serde(default)]
    pub smtputf8: bool,
    /// Unix ms when intake accepted the message.
    pub received_at: i64,
    /// Where it came from: client IP, HELO name, listener, authenticated user, TLS.
    pub client_ip: String,
    pub helo: String,
    pub listener: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    /// The label of the credential the client authenticated with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
}

/// DSN parameters of one recipient (RFC 3461 §4.1, §4.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RecipientDsn {
    /// NOTIFY values ("NEVER" or any of "SUCCESS", "FAILURE", "DELAY"); empty when not given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<String>,
    /// ORCPT as `addr-type;address`, decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orcpt: Option<String>,
}

/// Where a recipient's copy goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Destination {
    /// A local mailbox, by owner address (lower-case).
    Mailbox(String),
    /// A remote domain (lower-case), reached through its MX hosts.
    Remote(String),
}

impl Destination {
    /// The remote domain, for remote destinations.
    pub fn remote_domain(&self) -> Option<&str> {
        match self {
            Destination::Remote(d) => Some(d),
            Destination::Mailbox(_) => None,
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Mailbox(owner) => write!(f, "mailbox {owner}"),
            Destination::Remote(domain) => write!(f, "remote {domain}"),
        }
    }
}

/// A message body handed to [`crate::Store::enqueue`].
#[derive(Debug)]
pub enum NewBody {
    Memory(Vec<u8>),
    /// A spooled file; the store fsyncs it and moves it under the data directory.
    File {
        path: PathBuf,
        size: u64,
    },
}

impl NewBody {
    pub fn len(&self) -> u64 {
        match self {
            NewBody::Memory(v) => v.len() as u64,
            NewBody::File { size, .. } => *size,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug)]
pub struct NewRecipient {
    pub address: String,
    pub dsn: RecipientDsn,
    pub destination: Destination,
}

/// A message for [`crate::Store::enqueue`]. `prefix` holds the header lines intake added in
/// front of the original message.
#[derive(Debug)]
pub struct NewMessage {
    pub id: String,
    /// The delivery lane: "transactional" or "bulk".
    pub lane: String,
    pub envelope: Envelope,
    pub prefix: Vec<u8>,
    pub body: NewBody,
    pub recipients: Vec<NewRecipient>,
    /// Written on hold (`Store::queue_hold`): not delivered until released.
    pub held: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientState {
    Queued,
    Deferred,
    Delivered,
    /// Given up on; the sender is still to be told.
    Failed,
    /// Given up on, and the bounce (or the decision not to send one) is done.
    Bounced,
}

impl RecipientState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientState::Queued => "queued",
            RecipientState::Deferred => "deferred",
            RecipientState::Delivered => "delivered",
            RecipientState::Failed => "failed",
            RecipientState::Bounced => "bounced",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => RecipientState::Queued,
            "deferred" => RecipientState::Deferred,
            "delivered" => RecipientState::Delivered,
            "failed" => RecipientState::Failed,
            "bounced" => RecipientState::Bounced,
            _ => return None,
        })
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            RecipientState::Delivered | RecipientState::Failed | RecipientState::Bounced
        )
    }
}

#[derive(Debug, Clone)]
pub struct QueuedRecipient {
    pub idx: u32,
    pub address: String,
    pub dsn: RecipientDsn,
    pub destination: Destination,
    pub state: RecipientState,
    pub attempts: u32,
    pub next_attempt: i64,
    /// The last error, or for a recipient sent to a remote server, that server's reply.
    pub last_error: Option<String>,
    /// The sender has been sent a delay report about this recipient.
    pub delay_notified: bool,
}

#[derive(Debug, Clone)]
pub struct QueuedMessage {
    pub id: String,
    pub envelope: Envelope,
    /// The body this entry refers to (named by the queue id the message arrived with).
    pub body_id: String,
    pub size: u64,
    pub created_at: i64,
    pub recipients: Vec<QueuedRecipient>,
    /// Why recovery set this entry aside, if it did.
    pub quarantined: Option<String>,
    /// When an administrator put the entry on hold (unix ms), if it is held. A held entry is
    /// neither delivered nor bounced until released.
    pub held_at: Option<i64>,
    /// The delivery lane (`transactional` unless intake chose another).
    pub lane: String,
}

impl QueuedMessage {
    /// Whether an administrator holds this entry.
    pub fn held(&self) -> bool {
        self.held_at.is_some()
    }
}

/// The last error given to recipients returned by an administrator (`Store::queue_bounce`).
pub const ADMIN_BOUNCE_ERROR: &str = "5.0.0 returned by the administrator";

/// The destination name [`DomainSummary`] uses for local mailboxes.
pub const LOCAL_DESTINATION: &str = "(local)";

/// Upper bounds (exclusive, in minutes) of the age buckets of [`DomainSummary::by_age`], as
/// Postfix's qshape uses them; the last bucket holds everything older than the last bound.
pub const AGE_BUCKET_MINUTES: [i64; 9] = [5, 10, 20, 40, 80, 160, 320, 640, 1280];

/// Pending recipients of one destination, counted by the age of their message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSummary {
    /// The remote domain, [`LOCAL_DESTINATION`] for local mailboxes, or `(unreadable)` for
    /// recipients of a quarantined entry whose destination cannot be read.
    pub domain: String,
    /// Pending (queued or deferred) recipients for this destination.
    pub total: u64,
    /// The same recipients by age of their message since it arrived: index `i` counts ages
    /// below `AGE_BUCKET_MINUTES[i]` minutes (and at least the bound before it); the last
    /// index counts ages of 1280 minutes and more.
    pub by_age: [u64; AGE_BUCKET_MINUTES.len() + 1],
}

impl DomainSummary {
    /// The index in [`DomainSummary::by_age`] for an age in milliseconds (negative ages, from
    /// a clock that went back, count as new).
    pub fn bucket(age_ms: i64) -> usize {
        let minutes = age_ms.max(0) / 60_000;
        AGE_BUCKET_MINUTES
            .iter()
            .position(|&bound| minutes < bound)
            .unwrap_or(AGE_BUCKET_MINUTES.len())
    }
}

/// The outcome of one delivery attempt for one recipient.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Stored in `owner`'s INBOX with `prefix` (Return-Path, Delivered-To) in front.
    Delivered {
        owner: String,
        prefix: Vec<u8>,
    },
    /// Accepted by a remote server, whose reply is kept.
    Sent {
        response: String,
    },
    /// Try again at `next_attempt` (unix ms). `delay_notified` records that a delay report
    /// about this recipient has been queued (it is never cleared).
    Deferred {
        error: String,
        next_attempt: i64,
        delay_notified: bool,
    },
    Failed {
        error: String,
    },
    /// A failed recipient whose bounce has been queued (or needs none).
    Bounced,
}

#[derive(Debug, Clone)]
pub struct DeliveryReport {
    pub queue_id: String,
    pub idx: u32,
    pub outcome: Outcome,
}

/// A message in a mailbox.
#[derive(Debug, Clone)]
pub struct MailboxMessage {
    pub id: i64,
    pub folder: String,
    pub uid: i64,
    pub size: u64,
    pub received_at: i64,
    pub queue_id: Option<String>,
}

/// What startup recovery found.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    /// Queue entries with recipients still to deliver.
    pub pending: usize,
    /// Entries set aside as unreadable, with the reason.
    pub quarantined: Vec<(String, String)>,
    /// Leftover files of writes that never committed, removed.
    pub orphan_files_removed: usize,
}
