//! Unusual-activity detection per credential: a leaked credential used to send spam shows as a
//! burst far above the credential's usual hourly volume, or as a login from a network it was
//! never used from. Each such event is reported to the caller, which alerts the postmaster and
//! applies the configured action (alert, throttle, or hold: suspend the credential and hold its
//! mail).
//!
//! The baseline is the credential's average messages per hour over `baseline_days` (hours
//! without mail count as zero), kept in the store; the current hour is counted in memory and
//! written through.

use crate::Login;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use store::SharedStore;

const HOUR_MS: i64 = 3_600_000;

/// What to do when unusual activity is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Only the event and the alert mail.
    Alert,
    /// Also refuse further mail of the credential (451 4.7.1) for the rest of the hour.
    Throttle,
    /// Also suspend the credential and hold its mail of this hour until an admin decides.
    Hold,
}

#[derive(Debug, Clone)]
pub struct ActivitySettings {
    /// Off: nothing is counted.
    pub enabled: bool,
    /// A burst is this many times the hourly baseline...
    pub spike_factor: f64,
    /// ... and at least this many messages in the hour.
    pub min_volume: u32,
    /// A spray: distinct recipient domains in the hour at least spike_factor times the usual
    /// and at least this many.
    pub min_domains: u32,
    /// A bounce storm: in the hour, at least `min_bounces` recipients refused by remote
    /// servers, at a rate (bounces per message) of at least spike_factor times the usual rate
    /// and at least `bounce_rate`.
    pub min_bounces: u32,
    pub bounce_rate: f64,
    pub baseline_days: u32,
    /// Report logins from a network never seen for the credential.
    pub new_network: bool,
    /// Prefix lengths that make a "network" of a client address.
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    pub action: Action,
}

/// What was found.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `count` messages this hour against a baseline of `baseline` per hour.
    Spike { count: u32, baseline: f64 },
    /// Mail to `count` distinct recipient domains this hour against a usual `baseline`.
    DomainSpike { count: u32, baseline: f64 },
    /// `bounces` recipients refused this hour for `messages` messages, against a usual
    /// `baseline` bounces per message.
    BounceSpike {
        bounces: u32,
        messages: u32,
        baseline: f64,
    },
    /// A login from `network`, new for the credential.
    NewNetwork { ip: IpAddr, network: String },
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Spike { count, baseline } => write!(
                f,
                "{count} messages in the last hour, against a usual {baseline:.1} per hour"
            ),
            Event::DomainSpike { count, baseline } => write!(
                f,
                "mail to {count} different domains in the last hour, against a usual {baseline:.1} per hour"
            ),
            Event::BounceSpike {
                bounces,
                messages,
                baseline,
            } => write!(
                f,
                "{bounces} recipients refused by remote servers for {messages} messages in the last hour, against a usual {:.1}%",
                baseline * 100.0
            ),
            Event::NewNetwork { ip, network } => {
                write!(
                    f,
                    "a login from {ip}, in {network}, a network never seen for it"
                )
            }
        }
    }
}

struct Hour {
    hour: i64,
    count: u32,
    baseline: f64,
    domains: std::collections::HashSet<String>,
    baseline_domains: f64,
    /// Bounces this hour as last read from the store, and when.
    bounces: u32,
    bounces_read: Option<tokio::time::Instant>,
    baseline_bounce_rate: f64,
    /// A spike was reported this hour (once per hour).
    flagged: bool,
}

/// Cheap to clone: clones share their state.
#[derive(Clone)]
pub struct Activity {
    store: SharedStore,
    settings: Arc<ActivitySettings>,
    hours: Arc<Mutex<HashMap<i64, Hour>>>,
}

use crate::now_ms;

/// The network of `ip` at the given prefix lengths, e.g. "192.0.2.0/24".
pub fn network_of(ip: IpAddr, v4: u8, v6: u8) -> String {
    match ip {
        IpAddr::V4(a) => {
            let p = v4.min(32);
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            format!("{}/{p}", std::net::Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let p = v6.min(128);
            let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            format!("{}/{p}", std::net::Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

impl Activity {
    pub fn new(store: SharedStore, settings: ActivitySettings) -> Activity {
        Activity {
            store,
            settings: Arc::new(settings),
            hours: Arc::default(),
        }
    }

    pub fn action(&self) -> Action {
        self.settings.action
    }

    /// A successful login: reports a network new for a credential that has been used from
    /// another one before (the first network of a credential is its baseline, not news).
    pub async fn login(&self, login: &Login, ip: IpAddr) -> Option<Event> {
        if !self.settings.enabled {
            return None;
        }
        let network = network_of(ip, self.settings.ipv4_prefix, self.settings.ipv6_prefix);
        let known = self.store.network_count(login.credential_id).await.ok()?;
        let new = self
            .store
            .note_network(login.credential_id, &network)
            .await
            .ok()?;
        (self.settings.new_network && new && known > 0).then_some(Event::NewNetwork { ip, network })
    }

    /// One message accepted from `login` for recipients in `domains`: counts it and reports a
    /// burst or a spray of domains, once per hour.
    pub async fn message(&self, login: &Login, domains: &[String]) -> Option<Event> {
        if !self.settings.enabled {
            return None;
        }
        let hour = now_ms() / HOUR_MS;
        let id = login.credential_id;
        let known = {
            let hours = self.hours.lock().unwrap_or_else(|e| e.into_inner());
            hours.get(&id).is_some_and(|h| h.hour == hour)
        };
        if !known {
            // The baseline, and what the store already counted this hour (before a restart).
            let span = i64::from(self.settings.baseline_days.max(1)) * 24;
            let past = self
                .store
                .activity(id, hour - span, hour + 1)
                .await
                .unwrap_or_default();
            let before: Vec<_> = past.iter().filter(|(h, ..)| *h < hour).collect();
            let total: u64 = before.iter().map(|(_, n, ..)| u64::from(*n)).sum();
            let total_domains: u64 = before.iter().map(|(_, _, d, _)| u64::from(*d)).sum();
            let total_bounces: u64 = before.iter().map(|(.., b)| u64::from(*b)).sum();
            let now_count = past
                .iter()
                .find(|(h, ..)| *h == hour)
                .map_or(0, |(_, n, ..)| *n);
            let mut hours = self.hours.lock().unwrap_or_else(|e| e.into_inner());
            hours.retain(|_, h| h.hour == hour);
            hours.entry(id).or_insert(Hour {
                hour,
                count: now_count,
                baseline: total as f64 / span as f64,
                domains: Default::default(),
                baseline_domains: total_domains as f64 / span as f64,
                bounces: 0,
                bounces_read: None,
                baseline_bounce_rate: if total > 0 {
                    total_bounces as f64 / total as f64
                } else {
                    0.0
                },
                flagged: false,
            });
        }
        // Bounces arrive from deliveries: reread this hour's count now and then.
        let reread = {
            let hours = self.hours.lock().unwrap_or_else(|e| e.into_inner());
            hours.get(&id).is_some_and(|h| {
                h.bounces_read
                    .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(5))
            })
        };
        if reread {
            let bounces = self
                .store
                .activity(id, hour, hour + 1)
                .await
                .ok()
                .and_then(|v| v.first().map(|(.., b)| *b));
            let mut hours = self.hours.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(h) = hours.get_mut(&id) {
                h.bounces_read = Some(tokio::time::Instant::now());
                if let Some(b) = bounces {
                    h.bounces = b;
                }
            }
        }
        let (event, distinct) = {
            let mut hours = self.hours.lock().unwrap_or_else(|e| e.into_inner());
            let h = hours.get_mut(&id)?;
            h.count += 1;
            for d in domains {
                if h.domains.len() < 100_000 {
                    h.domains.insert(d.to_lowercase());
                }
            }
            let distinct = h.domains.len() as u32;
            let factor = self.settings.spike_factor;
            let volume = (h.baseline * factor).max(f64::from(self.settings.min_volume));
            let spray = (h.baseline_domains * factor).max(f64::from(self.settings.min_domains));
            let event = if h.flagged {
                None
            } else if f64::from(h.count) >= volume {
                Some(Event::Spike {
                    count: h.count,
                    baseline: h.baseline,
                })
            } else if h.bounces >= self.settings.min_bounces
                && f64::from(h.bounces) / f64::from(h.count.max(1))
                    >= (h.baseline_bounce_rate * factor).max(self.settings.bounce_rate)
            {
                Some(Event::BounceSpike {
                    bounces: h.bounces,
                    messages: h.count,
                    baseline: h.baseline_bounce_rate,
                })
            } else if f64::from(distinct) >= spray {
                Some(Event::DomainSpike {
                    count: distinct,
                    baseline: h.baseline_domains,
                })
            } else {
                None
            };
            if event.is_some() {
                h.flagged = true;
            }
            (event, distinct)
        };
        if let Err(e) = self.store.count_activity(id, hour, 1, distinct).await {
            tracing::warn!(error = %e, "counting credential activity failed");
        }
        event
    }

    /// Whether a spike was reported for credential `id` in the current hour (the throttle and
    /// hold actions then apply to its further mail).
    pub fn flagged(&self, id: i64) -> bool {
        let hour = now_ms() / HOUR_MS;
        self.hours
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .is_some_and(|h| h.hour == hour && h.flagged)
    }

    /// Forgets the flag of credential `id` (after an admin resumed it).
    pub fn clear(&self, id: i64) {
        self.hours
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_cut_at_the_prefix() {
        let ip: IpAddr = "192.0.2.77".parse().unwrap();
        assert_eq!(network_of(ip, 24, 48), "192.0.2.0/24");
        assert_eq!(network_of(ip, 32, 48), "192.0.2.77/32");
        let ip: IpAddr = "2001:db8:1:2:3::9".parse().unwrap();
        assert_eq!(network_of(ip, 24, 48), "2001:db8:1::/48");
    }
}
