//! Recipient resolution: `local@domain` → the mailboxes that get a copy.
//!
//! Order, as Postfix's virtual alias then mailbox lookup: an alias expands to its targets (an
//! alias naming itself delivers to its own mailbox); then an account; then `postmaster@`, which
//! is always reachable (RFC 5321 §4.5.1) and, with no account or alias, has a mailbox of its
//! own; then the address without its `+tag` (subaddressing); then the domain's catch-all.

use crate::AccountsError;
use std::collections::HashSet;
use store::SharedStore;

/// Expansion depth limit: alias chains longer than this are treated as a configuration loop.
const MAX_DEPTH: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Deliver to these mailbox owners (deduplicated, in order).
    Local(Vec<String>),
    /// The domain is local but nobody receives this address.
    UnknownUser,
    /// The domain is not one of ours.
    NotLocal,
}

pub(crate) async fn resolve(
    store: &SharedStore,
    delimiter: Option<char>,
    address: &str,
) -> Result<Resolution, AccountsError> {
    let Some((_, domain)) = address.rsplit_once('@') else {
        return Ok(Resolution::UnknownUser);
    };
    if store.get_domain(domain).await?.is_none() {
        return Ok(Resolution::NotLocal);
    }
    let mut owners = Vec::new();
    let mut path = HashSet::new();
    expand(store, delimiter, address, 0, &mut path, &mut owners).await?;
    Ok(if owners.is_empty() {
        Resolution::UnknownUser
    } else {
        Resolution::Local(owners)
    })
}

async fn expand(
    store: &SharedStore,
    delimiter: Option<char>,
    address: &str,
    depth: usize,
    path: &mut HashSet<String>,
    owners: &mut Vec<String>,
) -> Result<(), AccountsError> {
    let push = |owners: &mut Vec<String>, a: &str| {
        if !owners.iter().any(|o| o == a) {
            owners.push(a.to_string());
        }
    };
    if depth > MAX_DEPTH {
        tracing::warn!(
            address,
            "alias expansion deeper than {MAX_DEPTH} levels; check for an alias loop"
        );
        return Ok(());
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Ok(());
    };
    // An alias that names an address already being expanded refers to that address's own
    // mailbox, not to the alias again.
    let revisit = !path.insert(address.to_string());
    if !revisit {
        let targets = store.alias_targets(address).await?;
        if !targets.is_empty() {
            for target in targets {
                let target = target.to_lowercase();
                let target_domain = target.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
                if store.get_domain(target_domain).await?.is_some() {
                    Box::pin(expand(store, delimiter, &target, depth + 1, path, owners)).await?;
                } else {
                    tracing::warn!(
                        alias = address,
                        target,
                        "alias target is not in a local domain; relaying comes with the outbound queue, skipped"
                    );
                }
            }
            return Ok(());
        }
    }
    if store.get_account(address).await?.is_some() {
        push(owners, address);
        return Ok(());
    }
    if local == "postmaster" {
        push(owners, address);
        return Ok(());
    }
    if revisit {
        return Ok(());
    }
    if let Some(d) = delimiter
        && let Some((base, _tag)) = local.split_once(d)
        && !base.is_empty()
    {
        let before = owners.len();
        Box::pin(expand(
            store,
            delimiter,
            &format!("{base}@{domain}"),
            depth + 1,
            path,
            owners,
        ))
        .await?;
        if owners.len() > before {
            return Ok(());
        }
    }
    if let Some(catch_all) = store.get_domain(domain).await?.and_then(|d| d.catch_all) {
        Box::pin(expand(
            store,
            delimiter,
            &catch_all.to_lowercase(),
            depth + 1,
            path,
            owners,
        ))
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use store::{SqliteStore, Store};

    async fn setup() -> (tempfile::TempDir, SharedStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).await.unwrap();
        s.add_domain("x.test", None).await.unwrap();
        s.add_account("alice@x.test", "h").await.unwrap();
        s.add_account("bob@x.test", "h").await.unwrap();
        (dir, Arc::new(s))
    }

    async fn r(store: &SharedStore, a: &str) -> Resolution {
        resolve(store, Some('+'), a).await.unwrap()
    }

    fn local(v: &[&str]) -> Resolution {
        Resolution::Local(v.iter().map(|s| s.to_string()).collect())
    }

    #[tokio::test]
    async fn accounts_resolve_to_themselves_and_strangers_are_unknown() {
        let (_d, s) = setup().await;
        assert_eq!(r(&s, "alice@x.test").await, local(&["alice@x.test"]));
        assert_eq!(r(&s, "carol@x.test").await, Resolution::UnknownUser);
        assert_eq!(r(&s, "alice@elsewhere.test").await, Resolution::NotLocal);
    }

    #[tokio::test]
    async fn postmaster_is_always_reachable() {
        let (_d, s) = setup().await;
        assert_eq!(
            r(&s, "postmaster@x.test").await,
            local(&["postmaster@x.test"])
        );
        s.add_alias("postmaster@x.test", "alice@x.test")
            .await
            .unwrap();
        assert_eq!(r(&s, "postmaster@x.test").await, local(&["alice@x.test"]));
    }

    #[tokio::test]
    async fn aliases_expand_and_an_alias_to_itself_keeps_its_mailbox() {
        let (_d, s) = setup().await;
        s.add_alias("team@x.test", "alice@x.test").await.unwrap();
        s.add_alias("team@x.test", "bob@x.test").await.unwrap();
        assert_eq!(
            r(&s, "team@x.test").await,
            local(&["alice@x.test", "bob@x.test"])
        );
        s.add_alias("alice@x.test", "alice@x.test").await.unwrap();
        s.add_alias("alice@x.test", "bob@x.test").await.unwrap();
        assert_eq!(
            r(&s, "alice@x.test").await,
            local(&["alice@x.test", "bob@x.test"])
        );
    }

    #[tokio::test]
    async fn an_alias_loop_ends_without_hanging() {
        let (_d, s) = setup().await;
        s.add_alias("a@x.test", "b@x.test").await.unwrap();
        s.add_alias("b@x.test", "a@x.test").await.unwrap();
        assert_eq!(r(&s, "a@x.test").await, Resolution::UnknownUser);
    }

    #[tokio::test]
    async fn subaddress_tags_fall_back_to_the_base_address() {
        let (_d, s) = setup().await;
        assert_eq!(r(&s, "alice+news@x.test").await, local(&["alice@x.test"]));
        assert_eq!(r(&s, "carol+news@x.test").await, Resolution::UnknownUser);
    }

    #[tokio::test]
    async fn a_catch_all_takes_unknown_local_parts() {
        let (_d, s) = setup().await;
        s.set_catch_all("x.test", Some("bob@x.test")).await.unwrap();
        assert_eq!(r(&s, "anything@x.test").await, local(&["bob@x.test"]));
        assert_eq!(r(&s, "alice@x.test").await, local(&["alice@x.test"]));
    }

    #[tokio::test]
    async fn unknown_users_and_wrong_passwords_both_fail_login() {
        let (_d, s) = setup().await;
        s.set_password("alice@x.test", &crate::hash_password("pw").unwrap())
            .await
            .unwrap();
        let dir = crate::Directory::new(s, Some('+')).unwrap();
        let login = dir
            .authenticate("Alice@x.test", "pw", "192.0.2.1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(login.account, "alice@x.test");
        assert_eq!(login.credential, "default");
        assert_eq!(
            dir.authenticate("alice@x.test", "nope", "192.0.2.1")
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            dir.authenticate("nobody@x.test", "pw", "192.0.2.1")
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn credentials_rotate_with_a_grace_period_expire_and_revoke() {
        let (_d, s) = setup().await;
        let h = |p: &str| crate::hash_password(p).unwrap();
        s.set_password("alice@x.test", &h("pw")).await.unwrap();
        s.add_credential("alice@x.test", "app", &h("app-1"), None)
            .await
            .unwrap();
        let dir = crate::Directory::new(s.clone(), None).unwrap();
        let ok = |p: &'static str| {
            let dir = dir.clone();
            async move {
                dir.authenticate("alice@x.test", p, "192.0.2.7")
                    .await
                    .unwrap()
                    .map(|l| l.credential)
            }
        };
        assert_eq!(ok("pw").await.as_deref(), Some("default"));
        assert_eq!(ok("app-1").await.as_deref(), Some("app"));
        // The last use is recorded with the client's address.
        let app = s.credentials("alice@x.test").await.unwrap();
        let app1 = app.iter().find(|c| c.label == "app").unwrap();
        assert_eq!(app1.last_used_ip.as_deref(), Some("192.0.2.7"));
        assert!(app1.last_used_at.is_some());
        // Rotation with a grace period: old and new both work until it ends.
        let later = super::super::now_ms() + 3_600_000;
        s.rotate_credential("alice@x.test", "app", &h("app-2"), later)
            .await
            .unwrap();
        assert_eq!(ok("app-1").await.as_deref(), Some("app"));
        assert_eq!(ok("app-2").await.as_deref(), Some("app"));
        // A rotation whose grace has ended: the previous secret stops at once.
        s.rotate_credential("alice@x.test", "app", &h("app-3"), 0)
            .await
            .unwrap();
        assert_eq!(ok("app-1").await, None);
        assert_eq!(ok("app-2").await, None);
        assert_eq!(ok("app-3").await.as_deref(), Some("app"));
        // Expired and revoked credentials fail like a wrong password.
        s.add_credential("alice@x.test", "old", &h("old-1"), Some(1))
            .await
            .unwrap();
        assert_eq!(ok("old-1").await, None);
        assert!(s.revoke_credential("alice@x.test", "app").await.unwrap());
        assert_eq!(ok("app-3").await, None);
        assert!(!s.revoke_credential("alice@x.test", "app").await.unwrap());
        assert_eq!(ok("pw").await.as_deref(), Some("default"));
        // Rotating a label that has no active credential is refused.
        assert!(
            s.rotate_credential("alice@x.test", "app", &h("x"), later)
                .await
                .is_err()
        );
    }
}
