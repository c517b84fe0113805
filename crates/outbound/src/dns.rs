//! MX resolution for outbound mail (RFC 5321 §5.1) through hickory, with configurable
//! nameservers (tests point them at a DNS server on 127.0.0.x) and hickory's TTL cache.
//!
//! Outcomes are split the way delivery needs them: a domain that does not exist or publishes a
//! null MX (RFC 7505) fails permanently; a server failure or timeout is temporary.

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RData;
use rand::seq::SliceRandom;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Where mail for a domain goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MxResult {
    /// Host names in the order to try: by preference, random among equal preferences.
    Hosts(Vec<String>),
    /// RFC 7505: the domain accepts no mail.
    NullMx,
}

/// Why a lookup gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// NXDOMAIN: the name does not exist. Permanent.
    #[error("{0}: no such domain")]
    NoSuchDomain(String),
    /// The name exists but has no records of the type asked. Permanent for that type.
    #[error("{0}: no records")]
    NoRecords(String),
    /// SERVFAIL, timeout, refused, network trouble: try again later.
    #[error("{0}: temporary DNS failure ({1})")]
    Temporary(String, String),
}

/// The resolver Postrider uses for outbound mail.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
}

impl Dns {
    /// A resolver asking `nameservers` (UDP, then TCP for truncated answers), or the system's
    /// configured ones when the list is empty.
    pub fn new(nameservers: &[SocketAddr], timeout: Duration) -> Result<Dns, String> {
        let (config, mut opts) = if nameservers.is_empty() {
            hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| format!("cannot read the system's DNS configuration: {e}"))?
        } else {
            let servers = nameservers
                .iter()
                .map(|a| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = a.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = a.port();
                    NameServerConfig::new(a.ip(), true, vec![udp, tcp])
                })
                .collect();
            (
                ResolverConfig::from_name_servers(servers),
                ResolverOpts::default(),
            )
        };
        opts.timeout = timeout;
        opts.attempts = 2;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ndots = 0;
        let resolver = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(|e| format!("cannot start the DNS resolver: {e}"))?;
        Ok(Dns { resolver })
    }

    /// The mail hosts of `domain`. No MX records → the domain itself as implicit MX
    /// (RFC 5321 §5.1). A single MX with the root as exchange → null MX (RFC 7505 §3).
    pub async fn mx(&self, domain: &str) -> Result<MxResult, LookupError> {
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        let mut records: Vec<(u16, String)> = match self.resolver.mx_lookup(fqdn.as_str()).await {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some((
                        mx.preference,
                        mx.exchange.to_ascii().trim_end_matches('.').to_lowercase(),
                    )),
                    _ => None,
                })
                .collect(),
            Err(e) => match classify(domain, e) {
                LookupError::NoRecords(_) => Vec::new(),
                other => return Err(other),
            },
        };
        if records.is_empty() {
            return Ok(MxResult::Hosts(vec![domain.to_lowercase()]));
        }
        if records.len() == 1 && records[0].1.is_empty() {
            return Ok(MxResult::NullMx);
        }
        // A null MX mixed with real ones is a misconfiguration; ignore the null entry.
        records.retain(|(_, h)| !h.is_empty());
        records.shuffle(&mut rand::thread_rng());
        records.sort_by_key(|(p, _)| *p);
        Ok(MxResult::Hosts(
            records.into_iter().map(|(_, h)| h).collect(),
        ))
    }

    /// IPv6 and IPv4 addresses of a host (IPv6 first, as RFC 6724 prefers, when both exist).
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, LookupError> {
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return Ok(vec![ip]);
        }
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        let (v6, v4) = tokio::join!(
            self.resolver.ipv6_lookup(fqdn.as_str()),
            self.resolver.ipv4_lookup(fqdn.as_str())
        );
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for result in [v6, v4] {
            match result {
                Ok(lookup) => out.extend(lookup.answers().iter().filter_map(|r| match &r.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                })),
                Err(e) => errors.push(classify(host, e)),
            }
        }
        if !out.is_empty() {
            return Ok(out);
        }
        // Both failed: a temporary failure wins over "does not exist".
        if let Some(t) = errors
            .iter()
            .find(|e| matches!(e, LookupError::Temporary(..)))
        {
            return Err(t.clone());
        }
        Err(errors
            .into_iter()
            .next()
            .unwrap_or_else(|| LookupError::NoRecords(host.to_string())))
    }
}

fn classify(name: &str, e: NetError) -> LookupError {
    match &e {
        NetError::Dns(DnsError::NoRecordsFound(nr))
            if nr.response_code == ResponseCode::NXDomain =>
        {
            LookupError::NoSuchDomain(name.to_string())
        }
        NetError::Dns(DnsError::NoRecordsFound(_)) => LookupError::NoRecords(name.to_string()),
        _ => LookupError::Temporary(name.to_string(), e.to_string()),
    }
}
