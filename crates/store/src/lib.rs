//! Postrider's storage: the [`Store`] trait, its contract, and the embedded SQLite backend.
//!
//! What it does: keeps domains, accounts, aliases, the queue (envelopes, per-recipient state)
//! and mailboxes, and message bodies written once and referenced by both queue and mailboxes.
//! Writes from many sessions are batched into one transaction and one fsync (group commit).
//!
//! What it must not do: decide policy (who may send, where mail goes), speak any protocol, or
//! parse messages. It stores what it is given and says exactly when that is durable.
//!
//! # Security
//! Holds password hashes (never plain passwords) and message content. All SQL is parameterised;
//! no input reaches a statement's text. File bodies are named by queue id, never by user input.
#![forbid(unsafe_code)]

mod ids;
pub mod sqlite;
mod types;

pub use ids::new_queue_id;
pub use sqlite::SqliteStore;
pub use types::*;

use async_trait::async_trait;
use std::sync::Arc;

/// Errors from a store. `Busy`, `Io` and `Database` are the system's fault and may succeed if
/// retried; `AlreadyExists`, `NotFound` and `Invalid` are the caller's.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrating the database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("corrupt entry: {0}")]
    Corrupt(String),
    #[error("the store is shut down")]
    Closed,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A shared handle on a store.
pub type SharedStore = Arc<dyn Store>;

/// The storage contract. Every implementation (SQLite now, PostgreSQL for several nodes later)
/// keeps these promises:
///
/// * **Durability.** When a write method returns `Ok`, the change is on stable storage (fsync'd):
///   a crash or power loss right after cannot undo it. In particular, [`Store::enqueue`] returning
///   `Ok` is what allows the SMTP server to answer 250.
/// * **Atomicity.** Each write method is all or nothing: an enqueued message is there with its
///   body and every recipient, or not at all; a batch of delivery reports is applied per report
///   (one report's failure does not undo another's, see [`Store::record_deliveries`]).
/// * **Retry.** A write that returned `Err` changed nothing and may be retried. A write whose
///   outcome is unknown (the process died) is either complete or absent after restart.
/// * **Concurrency.** Methods may be called from many tasks at once and from other processes on
///   the same data (the admin CLI while the server runs). Concurrent writes are serialised and
///   may share one commit (group commit); none waits on an unrelated slow reader.
/// * **Recovery.** [`Store::recover`] runs before serving: it finds every unfinished message,
///   removes leftovers of writes that never committed (spool and orphan body files), and
///   quarantines entries it cannot read, reporting them instead of failing.
/// * **Bodies** are written once and referenced by queue entries and mailbox messages, never
///   copied between them; a body is removed when its last reference goes.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // ---- domains, accounts, aliases -------------------------------------------------------
    /// Adds a local domain (lower-case). `AlreadyExists` if present.
    async fn add_domain(&self, name: &str, catch_all: Option<&str>) -> Result<()>;
    /// Sets or clears a domain's catch-all target. `NotFound` if the domain is absent.
    async fn set_catch_all(&self, name: &str, target: Option<&str>) -> Result<()>;
    /// Removes a domain with its accounts. `false` if it was not there.
    async fn remove_domain(&self, name: &str) -> Result<bool>;
    async fn get_domain(&self, name: &str) -> Result<Option<DomainRecord>>;
    async fn list_domains(&self) -> Result<Vec<DomainRecord>>;

    /// Adds an account in an existing domain. `NotFound` for an unknown domain,
    /// `AlreadyExists` for a taken address.
    async fn add_account(&self, address: &str, password_hash: &str) -> Result<()>;
    /// Replaces the password hash. `false` if there is no such account.
    async fn set_password(&self, address: &str, password_hash: &str) -> Result<bool>;
    /// Removes an account (its stored mail stays until removed separately). `false` if absent.
    async fn remove_account(&self, address: &str) -> Result<bool>;
    async fn get_account(&self, address: &str) -> Result<Option<AccountRecord>>;
    async fn list_accounts(&self) -> Result<Vec<AccountRecord>>;

    // ---- credentials -------------------------------------------------------------------------
    /// Adds a credential to an existing account (`NotFound` otherwise); returns its id. An
    /// account gets the credential "default" when it is added; `set_password` replaces that
    /// one's secret.
    async fn add_credential(
        &self,
        account: &str,
        label: &str,
        secret_hash: &str,
        expires_at: Option<i64>,
    ) -> Result<i64>;
    /// Every credential of an account, revoked and expired ones included, oldest first.
    async fn credentials(&self, account: &str) -> Result<Vec<CredentialRecord>>;
    /// Revokes the account's credentials with `label` that are not revoked yet; `false` if
    /// there were none.
    async fn revoke_credential(&self, account: &str, label: &str) -> Result<bool>;
    /// Rotation in one step: adds a new credential with `label` and makes the active ones with
    /// that label expire at `old_expire_at` (at the latest). `NotFound` when the account has no
    /// active credential with that label.
    async fn rotate_credential(
        &self,
        account: &str,
        label: &str,
        secret_hash: &str,
        old_expire_at: i64,
    ) -> Result<i64>;
    /// Records a successful login with credential `id` from `ip` at `at_ms`.
    async fn credential_used(&self, id: i64, at_ms: i64, ip: &str) -> Result<()>;
    /// Suspends (`Some(reason)`) or resumes (`None`) the account's credentials with `label`;
    /// `false` if there is none.
    async fn suspend_credential(
        &self,
        account: &str,
        label: &str,
        reason: Option<&str>,
    ) -> Result<bool>;
    /// Adds `n` messages to credential `id`'s count for `hour` (unix ms / 3 600 000), and
    /// raises its count of distinct recipient domains in that hour to `domains` if higher.
    async fn count_activity(&self, id: i64, hour: i64, n: u32, domains: u32) -> Result<()>;
    /// Per hour of credential `id` in hours `from..to` with any mail: (hour, messages,
    /// distinct recipient domains, bounced recipients).
    async fn activity(
        &self,
        id: i64,
        from_hour: i64,
        to_hour: i64,
    ) -> Result<Vec<(i64, u32, u32, u32)>>;
    /// Adds `n` bounced recipients to the count for `hour` of the account's newest credential
    /// with `label` (the one its mail was sent with).
    async fn count_bounces(&self, account: &str, label: &str, hour: i64, n: u32) -> Result<()>;
    /// Records that credential `id` logged in from `network`; `true` if it was new.
    async fn note_network(&self, id: i64, network: &str) -> Result<bool>;
    /// How many networks credential `id` has logged in from.
    async fn network_count(&self, id: i64) -> Result<u64>;

    // ---- DKIM keys ---------------------------------------------------------------------------
    /// Stores a key; `AlreadyExists` when the domain has the selector already.
    async fn add_dkim_key(&self, key: DkimKeyRecord) -> Result<()>;
    /// The keys of a domain (every domain's for `None`), oldest first.
    async fn dkim_keys(&self, domain: Option<&str>) -> Result<Vec<DkimKeyRecord>>;

    // ---- bans ----------------------------------------------------------------------------------
    /// Bans `value` of `kind` until `until_ms` (replacing an earlier ban of it).
    async fn add_ban(&self, kind: &str, value: &str, until_ms: i64, reason: &str) -> Result<()>;
    /// Lifts a ban; `false` if there was none.
    async fn remove_ban(&self, kind: &str, value: &str) -> Result<bool>;
    /// Bans still in force at `now_ms`, soonest to end first.
    async fn bans(&self, now_ms: i64) -> Result<Vec<BanRecord>>;

    /// Adds `alias → target`. `AlreadyExists` for the same pair.
    async fn add_alias(&self, alias: &str, target: &str) -> Result<()>;
    async fn remove_alias(&self, alias: &str, target: &str) -> Result<bool>;
    async fn list_aliases(&self) -> Result<Vec<AliasRecord>>;
    /// The targets of one alias (empty if it is not an alias).
    async fn alias_targets(&self, alias: &str) -> Result<Vec<String>>;

    // ---- queue ----------------------------------------------------------------------------
    /// Writes a message durably: body, envelope and recipients, all or nothing. Returns once
    /// committed and fsync'd. A file body is moved into the store (the caller's file is gone).
    async fn enqueue(&self, message: NewMessage) -> Result<()>;
    /// Messages with at least one recipient due for an attempt at `now_ms` (neither
    /// quarantined nor held, nor among `exclude`: those the caller is working on already),
    /// transactional before bulk, oldest first, at most `limit`.
    async fn due_messages(
        &self,
        now_ms: i64,
        limit: usize,
        exclude: &[String],
    ) -> Result<Vec<QueuedMessage>>;
    /// Applies delivery outcomes, each atomically: a `Delivered` report stores the mailbox
    /// message and marks the recipient in one step. A queue entry whose recipients are all
    /// delivered is removed; one with a failed recipient stays until its bounce is sent. Reports for entries that no longer exist (deleted by an admin) are
    /// ignored. Returns once durable.
    async fn record_deliveries(&self, reports: Vec<DeliveryReport>) -> Result<()>;
    /// Messages with recipients that failed and still need their bounce (neither quarantined
    /// nor held), oldest first.
    async fn failed_messages(&self, limit: usize) -> Result<Vec<QueuedMessage>>;
    async fn queue_list(&self) -> Result<Vec<QueuedMessage>>;
    async fn queue_get(&self, id: &str) -> Result<Option<QueuedMessage>>;
    /// Deletes a queue entry and its recipients. `false` if absent.
    async fn queue_delete(&self, id: &str) -> Result<bool>;
    /// Puts an entry on hold: until [`Store::queue_release`], [`Store::due_messages`] and
    /// [`Store::failed_messages`] skip it, so it is neither delivered nor bounced. Holding a
    /// held entry keeps the time it was first held. A delivery already under way is not
    /// stopped; its outcome is recorded. `false` if absent.
    async fn queue_hold(&self, id: &str) -> Result<bool>;
    /// Releases a held entry: it is scheduled again as before (recipients keep their next
    /// attempt). Releasing an entry that is not held changes nothing. `false` if absent.
    async fn queue_release(&self, id: &str) -> Result<bool>;
    /// Makes every pending (queued or deferred) recipient of an entry due now (next attempt =
    /// now; attempts and last error are kept). Does not release a held entry. `false` if
    /// absent.
    async fn queue_retry(&self, id: &str) -> Result<bool>;
    /// Returns an entry to its sender: every pending (queued or deferred) recipient becomes
    /// `failed` with the last error [`ADMIN_BOUNCE_ERROR`]; the scheduler then sends the
    /// bounce as for any failure (after which the entry leaves the queue). Does not release a
    /// held entry: its bounce waits for the release. `false` if absent.
    async fn queue_bounce(&self, id: &str) -> Result<bool>;
    /// Pending (queued or deferred) recipients per destination — remote domain, or
    /// [`LOCAL_DESTINATION`] for local mailboxes — counted by the age of their message
    /// (see [`DomainSummary`]), held and quarantined entries included; largest total first,
    /// then by name.
    async fn queue_summary(&self) -> Result<Vec<DomainSummary>>;

    // ---- bodies and mailboxes -------------------------------------------------------------
    /// The whole stored content of a body (intake's prefix + the original), or the first
    /// `limit` octets of it.
    async fn read_body(&self, body_id: &str, limit: Option<usize>) -> Result<Vec<u8>>;
    /// Messages in an owner's mailboxes, oldest first.
    async fn mailbox_messages(&self, owner: &str) -> Result<Vec<MailboxMessage>>;
    /// The raw stored message (delivery prefix + body), or its first `limit` octets.
    async fn mailbox_read(
        &self,
        owner: &str,
        id: i64,
        limit: Option<usize>,
    ) -> Result<Option<Vec<u8>>>;

    // ---- lifecycle ------------------------------------------------------------------------
    /// Startup recovery; see the trait documentation.
    async fn recover(&self) -> Result<RecoveryReport>;
}
