//! Brute-force protection for logins, shared by every protocol that authenticates (SMTP AUTH
//! now, IMAP and POP3 later): failures are counted per client address and per account name
//! (whether or not the account exists, so a lock reveals nothing) within a window; each
//! failure is answered after a delay that doubles with the count; past a threshold the address
//! is banned, or logins to the name are locked, for a while.
//!
//! Counters live in memory. Bans are written to the store, so that `postrider ban list|remove`
//! (another process) sees and lifts them; the server reloads them every few seconds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::SharedStore;

/// How often the server rereads bans from the store (an admin's `ban remove` takes effect
/// within this).
const RELOAD: Duration = Duration::from_secs(3);

/// Most addresses and names counted at once; the oldest windows are dropped past it.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone)]
pub struct GuardSettings {
    /// The delay before the reply to a first failure; it doubles with each further one.
    pub failure_delay: Duration,
    pub max_failure_delay: Duration,
    /// Failures from one address within `window` that ban it (0: never).
    pub ban_ip_after: u32,
    /// Failures for one account name within `window` that lock its logins (0: never).
    pub lock_account_after: u32,
    pub window: Duration,
    /// How long a ban or lock lasts.
    pub ban_time: Duration,
}

/// What to do after a failed login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Answer this long after the attempt began.
    pub delay: Duration,
    /// The client address is banned now: close the connection.
    pub banned: bool,
}

#[derive(Default)]
struct Counter {
    count: u32,
    since: i64,
}

#[derive(Default)]
struct State {
    ips: HashMap<IpAddr, Counter>,
    names: HashMap<String, Counter>,
    /// (kind, value) → until (unix ms), as last read from the store plus bans made since.
    bans: HashMap<(String, String), i64>,
    loaded_at: Option<tokio::time::Instant>,
}

/// Cheap to clone: clones share their state.
#[derive(Clone)]
pub struct Guard {
    settings: Arc<GuardSettings>,
    store: SharedStore,
    state: Arc<Mutex<State>>,
}

use crate::now_ms;

impl Guard {
    pub fn new(store: SharedStore, settings: GuardSettings) -> Guard {
        Guard {
            settings: Arc::new(settings),
            store,
            state: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rereads the bans from the store when the copy is older than a few seconds.
    async fn refresh(&self) {
        let stale = self.lock().loaded_at.is_none_or(|t| t.elapsed() >= RELOAD);
        if !stale {
            return;
        }
        match self.store.bans(now_ms()).await {
            Ok(list) => {
                let mut s = self.lock();
                s.bans = list
                    .into_iter()
                    .map(|b| ((b.kind, b.value), b.until))
                    .collect();
                s.loaded_at = Some(tokio::time::Instant::now());
            }
            Err(e) => tracing::warn!(error = %e, "reading bans failed; the last copy stays in use"),
        }
    }

    fn banned(&self, kind: &str, value: &str) -> bool {
        self.lock()
            .bans
            .get(&(kind.to_string(), value.to_string()))
            .is_some_and(|until| *until > now_ms())
    }

    /// Whether connections from `ip` are refused now.
    pub async fn ip_banned(&self, ip: IpAddr) -> bool {
        self.refresh().await;
        self.banned("ip", &ip.to_string())
    }

    /// Whether logins to `name` (lower-case) are locked now.
    pub async fn account_locked(&self, name: &str) -> bool {
        self.refresh().await;
        self.banned("account", name)
    }

    /// Records a failed login of `name` from `ip`; bans or locks when a threshold is crossed.
    pub async fn failure(&self, ip: IpAddr, name: &str) -> Verdict {
        // Attempts on a name already locked do not count towards locking it again.
        let name_locked = self.banned("account", name);
        let now = now_ms();
        let window = self.settings.window.as_millis() as i64;
        let (ip_count, name_count) = {
            let mut s = self.lock();
            if s.ips.len() > MAX_TRACKED {
                s.ips.retain(|_, c| now - c.since < window);
            }
            if s.names.len() > MAX_TRACKED {
                s.names.retain(|_, c| now - c.since < window);
            }
            let bump = |c: &mut Counter| {
                if now - c.since >= window {
                    c.count = 0;
                    c.since = now;
                }
                c.count += 1;
                c.count
            };
            let a = bump(s.ips.entry(ip).or_default());
            let b = if name_locked {
                0
            } else {
                bump(s.names.entry(name.to_string()).or_default())
            };
            (a, b)
        };
        let worst = ip_count.max(name_count);
        let delay = self
            .settings
            .failure_delay
            .saturating_mul(1u32 << (worst.saturating_sub(1)).min(16))
            .min(
                self.settings
                    .max_failure_delay
                    .max(self.settings.failure_delay),
            );
        let until = now + self.settings.ban_time.as_millis() as i64;
        let mut banned = false;
        if self.settings.ban_ip_after > 0 && ip_count >= self.settings.ban_ip_after {
            banned = true;
            self.ban(
                "ip",
                &ip.to_string(),
                until,
                &format!("{ip_count} failed logins"),
            )
            .await;
            self.lock().ips.remove(&ip);
        }
        if self.settings.lock_account_after > 0 && name_count >= self.settings.lock_account_after {
            self.ban(
                "account",
                name,
                until,
                &format!("{name_count} failed logins"),
            )
            .await;
            self.lock().names.remove(name);
        }
        Verdict { delay, banned }
    }

    /// A successful login clears the address's count (not the name's: an attacker who also
    /// owns an account must not reset the count of someone else's).
    pub fn success(&self, ip: IpAddr) {
        self.lock().ips.remove(&ip);
    }

    async fn ban(&self, kind: &str, value: &str, until: i64, reason: &str) {
        tracing::warn!(kind, value, reason, "banned after repeated login failures");
        self.lock()
            .bans
            .insert((kind.to_string(), value.to_string()), until);
        if let Err(e) = self.store.add_ban(kind, value, until, reason).await {
            tracing::error!(error = %e, kind, value, "recording the ban failed; it holds in memory only");
        }
    }
}
