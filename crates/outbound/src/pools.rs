//! Source addresses for outbound connections: pools of local addresses, each with its EHLO name,
//! chosen per message by authenticated account, sender domain, lane or default, and inside a pool by
//! smooth weighted round robin (equal weights give plain round robin).

use std::net::IpAddr;
use std::sync::Mutex;

/// A local address to connect from and the name to announce from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub ip: IpAddr,
    pub helo: String,
}

/// One pool, as configured.
#[derive(Debug, Clone, Default)]
pub struct Pool {
    pub name: String,
    /// Addresses with their weights (at least 1).
    pub addresses: Vec<(Source, u32)>,
    /// Authenticated accounts that use this pool (lower-case).
    pub accounts: Vec<String>,
    /// Sender domains that use this pool (lower-case).
    pub sender_domains: Vec<String>,
    /// Lanes ("transactional", "bulk") that use this pool.
    pub lanes: Vec<String>,
    pub default: bool,
}

/// All pools and their round-robin state.
#[derive(Debug, Default)]
pub struct Pools {
    pools: Vec<Pool>,
    /// Per pool, per address: the "current weight" of smooth weighted round robin.
    current: Mutex<Vec<Vec<i64>>>,
}

impl Pools {
    pub fn new(pools: Vec<Pool>) -> Pools {
        let current = pools.iter().map(|p| vec![0; p.addresses.len()]).collect();
        Pools {
            pools,
            current: Mutex::new(current),
        }
    }

    /// The pool for a message: its authenticated account's, else its sender domain's, else its
    /// lane's, else the default pool's; `None` when no pool applies (the system picks the
    /// source address).
    fn pool_for(&self, account: Option<&str>, sender: &str, lane: &str) -> Option<usize> {
        let sender_domain = sender
            .rsplit_once('@')
            .map(|(_, d)| d.to_lowercase())
            .unwrap_or_default();
        let account = account.map(str::to_lowercase);
        let by_account =
            account.and_then(|a| self.pools.iter().position(|p| p.accounts.contains(&a)));
        by_account
            .or_else(|| {
                self.pools.iter().position(|p| {
                    !sender_domain.is_empty() && p.sender_domains.contains(&sender_domain)
                })
            })
            .or_else(|| {
                self.pools
                    .iter()
                    .position(|p| p.lanes.iter().any(|l| l == lane))
            })
            .or_else(|| self.pools.iter().position(|p| p.default))
    }

    /// The next source address for a message, with the pool's name.
    pub fn choose(
        &self,
        account: Option<&str>,
        sender: &str,
        lane: &str,
    ) -> Option<(String, Source)> {
        let i = self.pool_for(account, sender, lane)?;
        let pool = &self.pools[i];
        if pool.addresses.is_empty() {
            return None;
        }
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let weights = current.get_mut(i)?;
        let total: i64 = pool.addresses.iter().map(|(_, w)| i64::from(*w)).sum();
        let mut best = 0;
        for (j, (_, w)) in pool.addresses.iter().enumerate() {
            weights[j] += i64::from(*w);
            if weights[j] > weights[best] {
                best = j;
            }
        }
        weights[best] -= total;
        Some((pool.name.clone(), pool.addresses[best].0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(last: u8) -> Source {
        Source {
            ip: IpAddr::from([127, 0, 0, last]),
            helo: format!("mta{last}.test"),
        }
    }

    fn pools() -> Pools {
        Pools::new(vec![
            Pool {
                name: "app".into(),
                addresses: vec![(src(2), 1)],
                accounts: vec!["app@x.test".into()],
                ..Default::default()
            },
            Pool {
                name: "bulk".into(),
                addresses: vec![(src(5), 1)],
                lanes: vec!["bulk".into()],
                ..Default::default()
            },
            Pool {
                name: "main".into(),
                addresses: vec![(src(3), 1), (src(4), 2)],
                sender_domains: vec!["x.test".into()],
                default: true,
                ..Default::default()
            },
        ])
    }

    #[test]
    fn account_then_sender_domain_then_lane_then_the_default() {
        let p = pools();
        let t = "transactional";
        assert_eq!(
            p.choose(Some("App@x.test"), "someone@x.test", "bulk")
                .unwrap()
                .0,
            "app"
        );
        assert_eq!(p.choose(None, "someone@x.test", "bulk").unwrap().0, "main");
        assert_eq!(p.choose(None, "other@y.test", "bulk").unwrap().0, "bulk");
        assert_eq!(p.choose(None, "other@y.test", t).unwrap().0, "main");
        assert!(Pools::new(vec![]).choose(None, "a@b.test", t).is_none());
    }

    #[test]
    fn weighted_round_robin_spreads_by_weight_and_interleaves() {
        let p = pools();
        let picks: Vec<u8> = (0..6)
            .map(
                |_| match p.choose(None, "a@x.test", "transactional").unwrap().1.ip {
                    IpAddr::V4(v4) => v4.octets()[3],
                    IpAddr::V6(_) => 0,
                },
            )
            .collect();
        assert_eq!(picks.iter().filter(|&&x| x == 4).count(), 4);
        assert_eq!(picks.iter().filter(|&&x| x == 3).count(), 2);
        assert_eq!(
            &picks[..3],
            &[4, 3, 4],
            "smooth: no long runs of one address"
        );
    }
}
