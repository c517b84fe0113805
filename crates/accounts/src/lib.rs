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

mod password;
mod resolve;
mod senders;

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

    /// Checks a login. Returns the account address on success. Unknown users cost the same
    /// argon2 work as wrong passwords. The hashing runs on the blocking pool.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<String>, AccountsError> {
        let username = username.trim().to_lowercase();
        let account = self.store.get_account(&username).await?;
        let (hash, address) = match &account {
            Some(a) => (a.password_hash.clone(), Some(a.address.clone())),
            None => (self.dummy_hash.as_ref().clone(), None),
        };
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .map_err(|e| AccountsError::Hash(e.to_string()))?;
        Ok(if ok { address } else { None })
    }
}
