//! Which addresses an authenticated account may send as: its envelope sender (MAIL FROM) and
//! the From: addresses of its messages. By default, addresses of the account's own domain;
//! `senders.allowed` in the config widens or narrows that per account or per domain.

/// The sender rules: (account or "@domain", allowed addresses / "@domain" / "*"), lower-case.
#[derive(Debug, Clone, Default)]
pub struct SenderPolicy {
    rules: Vec<(String, Vec<String>)>,
}

impl SenderPolicy {
    pub fn new(rules: Vec<(String, Vec<String>)>) -> SenderPolicy {
        SenderPolicy { rules }
    }

    /// Whether `account` may use `address`. The account's own address is always allowed. If a
    /// rule names the account or its domain, the rules decide; otherwise the address must be
    /// in the account's own domain.
    pub fn allows(&self, account: &str, address: &str) -> bool {
        let account = account.to_lowercase();
        let address = address.to_lowercase();
        if address == account {
            return true;
        }
        let account_domain = account.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        let address_domain = address.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        let domain_key = format!("@{account_domain}");
        let mut ruled = false;
        for (key, allowed) in &self.rules {
            if *key != account && *key != domain_key {
                continue;
            }
            ruled = true;
            let hit = allowed.iter().any(|a| {
                a == "*"
                    || *a == address
                    || a.strip_prefix('@').is_some_and(|d| d == address_domain)
            });
            if hit {
                return true;
            }
        }
        !ruled && !account_domain.is_empty() && address_domain == account_domain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> SenderPolicy {
        SenderPolicy::new(vec![
            (
                "app@example.com".into(),
                vec!["noreply@example.com".into(), "@notify.example.com".into()],
            ),
            ("@ops.example".into(), vec!["*".into()]),
        ])
    }

    #[test]
    fn by_default_an_account_sends_as_its_own_domain_only() {
        let p = policy();
        assert!(p.allows("alice@example.org", "alice@example.org"));
        assert!(p.allows("alice@example.org", "Sales@Example.org"));
        assert!(!p.allows("alice@example.org", "ceo@bank.test"));
    }

    #[test]
    fn rules_for_an_account_or_its_domain_decide_for_it() {
        let p = policy();
        assert!(p.allows("app@example.com", "noreply@example.com"));
        assert!(p.allows("app@example.com", "x@notify.example.com"));
        assert!(
            p.allows("app@example.com", "app@example.com"),
            "its own address always"
        );
        assert!(
            !p.allows("app@example.com", "boss@example.com"),
            "the rule replaces the default"
        );
        assert!(p.allows("anyone@ops.example", "whatever@elsewhere.test"));
    }
}
