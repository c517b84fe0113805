//! Who is local and who may log in: recipient resolution over domains, accounts, aliases,
//! catch-alls, subaddressing and `postmaster@`, and password hashing and verification.
//!
//! What it must not do: store anything itself (that is the `store` crate's job), or know any
//! protocol. Addresses given to it are already parsed and lower-cased (`local@domain`).
//!
//! # Security
//! Handles plain passwords only transiently; stores argon2id hashes. Verification of an unknown
//! user runs against a dummy hash so the reply time does not reveal whether an account exists.
#![forbid(unsafe_code)]

mod activity;
mod guard;
mod limits;
mod password;
mod resolve;
mod senders;

pub use activity::{Action, Activity, ActivitySettings, Event, network_of};
pub use guard::{Guard, GuardSettings, Verdict};
pub use limits::{Exceeded, Limiter, RateLimit};
pub use password::{generate_password, hash_password, verify_password};
pub use resolve::Resolution;
pub use senders::SenderPolicy;

use store::SharedStore;

#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// At most this many active credentials of one account are tried per login (each try is an
/// argon2 verification); the most recently used come first.
const MAX_CREDENTIALS_TRIED: usize = 4;

/// Unix time in milliseconds (0 if the clock is before 1970).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A successful login: the account, and the credential that was used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub account: String,
    /// The credential's label ("default" for the account password).
    pub credential: String,
    pub credential_id: i64,
}

/// Lookups on the directory of domains, accounts and aliases.
#[derive(Clone)]
pub struct Directory {
    store: SharedStore,
    delimiter: Option<char>,
    dummy_hash: std::sync::Arc<String>,
}

impl Directory {
    /// `delimiter` is the subaddress separator (`+` in `alice+tag@`), if any.
    pub fn new(store: SharedStore, delimiter: Option<char>) -> Result<Directory, AccountsError> {
        let dummy_hash = hash_password(&generate_password())?;
        Ok(Directory {
            store,
            delimiter,
            dummy_hash: std::sync::Arc::new(dummy_hash),
        })
    }

    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// Whether mail for `domain` (lower-case) is delivered here.
    pub async fn is_local_domain(&self, domain: &str) -> Result<bool, AccountsError> {
        Ok(self.store.get_domain(domain).await?.is_some())
    }

    /// Resolves a recipient (lower-case `local@domain`) to the mailboxes it delivers to.
    pub async fn resolve(&self, address: &str) -> Result<Resolution, AccountsError> {
        resolve::resolve(&self.store, self.delimiter, address).await
    }

    /// Checks a login against the account's active credentials (not revoked, not expired),
    /// the most recently used first, and records the use (time and `client_ip`) of the one
    /// that matched. Unknown users, and accounts without an active credential, cost one argon2
    /// verification against a dummy hash, like a wrong password for an account with one
    /// credential; the front end also answers every failure at a fixed time after it started,
    /// so failures cannot be told apart by timing. The hashing runs on the blocking pool.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
        client_ip: &str,
    ) -> Result<Option<Login>, AccountsError> {
        let username = username.trim().to_lowercase();
        let now = now_ms();
        let mut candidates: Vec<store::CredentialRecord> =
            match self.store.get_account(&username).await? {
                Some(_) => self
                    .store
                    .credentials(&username)
                    .await?
                    .into_iter()
                    .filter(|c| c.is_active(now))
                    .collect(),
                None => Vec::new(),
            };
        candidates.sort_by_key(|c| std::cmp::Reverse(c.last_used_at.unwrap_or(c.created_at)));
        candidates.truncate(MAX_CREDENTIALS_TRIED);
        let hashes: Vec<String> = if candidates.is_empty() {
            vec![self.dummy_hash.as_ref().clone()]
        } else {
            candidates.iter().map(|c| c.secret_hash.clone()).collect()
        };
        let password = password.to_string();
        let matched = tokio::task::spawn_blocking(move || {
            hashes.iter().position(|h| verify_password(&password, h))
        })
        .await
        .map_err(|e| AccountsError::Hash(e.to_string()))?;
        let Some(credential) = matched.and_then(|i| candidates.get(i)) else {
            return Ok(None);
        };
        if let Err(e) = self
            .store
            .credential_used(credential.id, now, client_ip)
            .await
        {
            tracing::warn!(error = %e, "recording the credential's last use failed");
        }
        Ok(Some(Login {
            account: credential.account.clone(),
            credential: credential.label.clone(),
            credential_id: credential.id,
        }))
    }
}
