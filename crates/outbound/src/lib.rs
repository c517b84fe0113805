//! Delivery to remote mail servers: finds a domain's mail hosts (MX, then A/AAAA as implicit MX,
//! RFC 5321 §5.1; null MX, RFC 7505) and speaks SMTP to them as a client, with opportunistic
//! STARTTLS, PIPELINING where offered, and the outcome of every recipient classified once.
//!
//! What it must not do: touch the queue or the store (the scheduler in `queue` records
//! outcomes), or decide retry timing. One call delivers one message to one domain.
//!
//! # Security
//! Remote replies are untrusted input, parsed by the sans-IO codec with bounded line lengths.
//! Opportunistic TLS does not authenticate the server (as Postfix's `may` level): it protects
//! against passive eavesdropping only; policies that require verified TLS come later.
#![forbid(unsafe_code)]

mod client;
mod dns;
mod pools;
mod tls;

pub use dns::{Dns, LookupError, MxResult};
pub use pools::{Pool, Pools, Source};

use std::sync::Arc;
use std::time::Duration;
use store::{Envelope, RecipientDsn};

/// Settings for outbound delivery.
#[derive(Debug, Clone)]
pub struct OutboundSettings {
    /// Name sent in EHLO.
    pub helo_name: String,
    /// TCP port of MX hosts (25; tests use another).
    pub mx_port: u16,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub data_end_timeout: Duration,
    /// Routes by recipient domain ("*" for every other domain).
    pub routes: Vec<Route>,
}

/// How mail for a domain is sent (from the `[[transport]]` table).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    /// A recipient domain (lower-case) or "*".
    pub domain: String,
    /// Send through this host and port instead of the domain's MX hosts.
    pub smarthost: Option<(String, u16)>,
    /// Without STARTTLS (or with a failed handshake) the mail is deferred, never sent in plain
    /// text.
    pub tls_required: bool,
    /// AUTH credentials for the smarthost; used only over TLS.
    pub auth: Option<(String, String)>,
}

impl OutboundSettings {
    /// The route for a domain: its own entry, else "*", else MX with opportunistic TLS.
    pub fn route(&self, domain: &str) -> Route {
        self.routes
            .iter()
            .find(|r| r.domain == domain)
            .or_else(|| self.routes.iter().find(|r| r.domain == "*"))
            .cloned()
            .unwrap_or_default()
    }
}

/// One recipient of a job.
#[derive(Debug, Clone)]
pub struct JobRecipient {
    /// The recipient's index in its queue entry.
    pub idx: u32,
    pub address: String,
    pub dsn: RecipientDsn,
}

/// One message for recipients in one domain.
#[derive(Debug, Clone)]
pub struct RemoteJob {
    pub queue_id: String,
    pub domain: String,
    pub envelope: Envelope,
    pub recipients: Vec<JobRecipient>,
    /// The whole message as stored (intake's headers and the original), CRLF line ends.
    pub message: Arc<Vec<u8>>,
}

/// What happened to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteOutcome {
    /// The remote server accepted it: its reply, and whether the server offered DSN (then the
    /// NOTIFY request went along and the remote side reports success itself, RFC 3461 §5.2).
    Sent { reply: String, peer_dsn: bool },
    /// Try again later; why.
    Deferred(String),
    /// Give up; why (with the remote reply when there was one).
    Failed(String),
}

/// The outbound service.
#[derive(Clone)]
pub struct Outbound {
    dns: Dns,
    settings: OutboundSettings,
    tls: Arc<rustls::ClientConfig>,
    pools: Arc<Pools>,
}

impl Outbound {
    pub fn new(dns: Dns, settings: OutboundSettings, pools: Pools) -> Outbound {
        Outbound {
            dns,
            settings,
            tls: tls::opportunistic_config(),
            pools: Arc::new(pools),
        }
    }

    /// Delivers `job` to its domain's mail hosts (or its smarthost) and returns one outcome per
    /// recipient.
    pub async fn deliver(&self, job: &RemoteJob) -> Vec<(u32, RemoteOutcome)> {
        let all = |o: RemoteOutcome| {
            job.recipients
                .iter()
                .map(|r| (r.idx, o.clone()))
                .collect::<Vec<_>>()
        };
        let route = self.settings.route(&job.domain);
        let source = self
            .pools
            .choose(job.envelope.auth.as_deref(), &job.envelope.sender);
        if let Some((pool, src)) = &source {
            tracing::debug!(queue_id = %job.queue_id, pool, source = %src.ip, helo = %src.helo, "source address chosen");
        }
        let source = source.map(|(_, s)| s);
        let (hosts, port) = match &route.smarthost {
            Some((host, port)) => (vec![host.clone()], *port),
            None => match self.dns.mx(&job.domain).await {
                Ok(MxResult::Hosts(h)) => (h, self.settings.mx_port),
                Ok(MxResult::NullMx) => {
                    return all(RemoteOutcome::Failed(format!(
                        "5.1.10 {} does not accept mail (null MX, RFC 7505)",
                        job.domain
                    )));
                }
                Err(LookupError::NoSuchDomain(d)) => {
                    return all(RemoteOutcome::Failed(format!(
                        "5.1.2 domain {d} does not exist (DNS NXDOMAIN)"
                    )));
                }
                Err(e) => return all(RemoteOutcome::Deferred(format!("4.4.3 {e}"))),
            },
        };
        let mut last_problem = String::from("4.4.1 no mail host answered");
        for host in &hosts {
            let ips = match self.dns.addresses(host).await {
                Ok(ips) => ips,
                Err(e) => {
                    last_problem = format!("4.4.3 {e}");
                    continue;
                }
            };
            for ip in ips {
                // A source address can only reach destinations of its own family.
                if source
                    .as_ref()
                    .is_some_and(|s| s.ip.is_ipv4() != ip.is_ipv4())
                {
                    continue;
                }
                let addr = std::net::SocketAddr::new(ip, port);
                match client::deliver_to(
                    &self.settings,
                    &self.tls,
                    &route,
                    source.as_ref(),
                    host,
                    addr,
                    job,
                )
                .await
                {
                    Ok(outcomes) => return outcomes,
                    Err(problem) => {
                        tracing::info!(queue_id = %job.queue_id, host, %addr, problem = %problem, "mail host unusable; trying the next");
                        last_problem = problem;
                    }
                }
            }
        }
        all(RemoteOutcome::Deferred(last_problem))
    }
}
