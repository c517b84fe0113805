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

mod cache;
mod client;
mod dns;
mod pools;
mod tls;

pub use cache::Slot;
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
    /// Deliveries (and connections) at once per next hop, unless its route says otherwise.
    pub max_connections: usize,
    /// Messages sent over one connection before it is closed, unless its route says otherwise.
    pub max_messages_per_connection: u32,
    /// How long a connection stays open, idle, for the next message to the same next hop.
    /// Zero: one connection per delivery.
    pub idle_time: Duration,
    /// After no host of a destination could be reached, how long its other mail is deferred
    /// without trying (the scheduler's first retry delay). Zero: always try.
    pub unreachable_hold: Duration,
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
    /// Overrides `OutboundSettings::max_connections` for this route.
    pub max_connections: Option<usize>,
    /// Overrides `OutboundSettings::max_messages_per_connection` for this route.
    pub max_messages_per_connection: Option<u32>,
}

impl Route {
    /// The next hop of mail for `domain` along this route: the domain itself (its MX hosts),
    /// or the smarthost. Connection slots and reused connections belong to a next hop, so
    /// every domain routed to one smarthost shares its connections. Credentials and the TLS
    /// requirement are part of it: a connection is only reused under the same terms.
    fn nexthop(&self, domain: &str) -> String {
        match &self.smarthost {
            None => format!("mx:{domain}"),
            Some((host, port)) => format!(
                "smarthost:{host}:{port}:tls={}:auth={}",
                self.tls_required,
                self.auth.as_ref().map_or("", |(u, _)| u.as_str())
            ),
        }
    }
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
    /// "transactional" or "bulk".
    pub lane: String,
    pub recipients: Vec<JobRecipient>,
    /// The whole message as stored (intake's headers and the original), CRLF line ends.
    pub message: Arc<Vec<u8>>,
}

/// What happened to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteOutcome {
    /// The remote server accepted it: its reply, and whether the server offered DSN (then the
    /// NOTIFY request went along and the remote side reports success itself, RFC 3461 §5.2).
    /// `conn_use`: the how-manieth transaction on its connection this was (1: a new
    /// connection; more: a reused one), as Postfix logs it.
    Sent {
        reply: String,
        peer_dsn: bool,
        conn_use: u32,
    },
    /// Try again later; why.
    Deferred(String),
    /// Give up; why (with the remote reply when there was one).
    Failed(String),
}

/// The outbound service. Cheap to clone: clones share DNS cache, slots and open connections.
#[derive(Clone)]
pub struct Outbound {
    dns: Dns,
    settings: Arc<OutboundSettings>,
    tls: Arc<rustls::ClientConfig>,
    pools: Arc<Pools>,
    destinations: cache::Destinations,
}

impl Outbound {
    pub fn new(dns: Dns, settings: OutboundSettings, pools: Pools) -> Outbound {
        Outbound {
            dns,
            settings: Arc::new(settings),
            tls: tls::opportunistic_config(),
            pools: Arc::new(pools),
            destinations: cache::Destinations::default(),
        }
    }

    /// Waits for a delivery slot at the next hop of mail for `domain`. Take it before any
    /// other shared resource, so deliveries waiting for a busy destination hold nothing else.
    pub async fn slot(&self, domain: &str) -> Slot {
        let route = self.settings.route(domain);
        let limit = route
            .max_connections
            .unwrap_or(self.settings.max_connections);
        self.destinations.slot(&route.nexthop(domain), limit).await
    }

    /// Delivers `job` to its domain's mail hosts (or its smarthost) and returns one outcome per
    /// recipient.
    pub async fn deliver(&self, job: &RemoteJob) -> Vec<(u32, RemoteOutcome)> {
        let slot = self.slot(&job.domain).await;
        self.deliver_in(&slot, job).await
    }

    /// Like [`Outbound::deliver`], in a slot already taken with [`Outbound::slot`].
    pub async fn deliver_in(&self, slot: &Slot, job: &RemoteJob) -> Vec<(u32, RemoteOutcome)> {
        let all = |o: RemoteOutcome| {
            job.recipients
                .iter()
                .map(|r| (r.idx, o.clone()))
                .collect::<Vec<_>>()
        };
        let route = self.settings.route(&job.domain);
        let source = self.pools.choose(
            job.envelope.auth.as_deref(),
            &job.envelope.sender,
            &job.lane,
        );
        if let Some((pool, src)) = &source {
            tracing::debug!(queue_id = %job.queue_id, pool, source = %src.ip, helo = %src.helo, "source address chosen");
        }
        let source = source.map(|(_, s)| s);
        let source_ip = source.as_ref().map(|s| s.ip);
        // A connection left open by an earlier delivery to this next hop, if any. One the
        // server closed meanwhile shows as stale before anything was decided: try the next.
        while let Some(session) = self.destinations.take(slot, source_ip) {
            match self.run(slot, &route, session, job).await {
                Ok(outcomes) => return outcomes,
                Err(why) => {
                    tracing::debug!(queue_id = %job.queue_id, why, "a reused connection was closed; opening another")
                }
            }
        }
        if let Some(problem) = self.destinations.unreachable(slot) {
            tracing::debug!(queue_id = %job.queue_id, domain = %job.domain, "destination recently unreachable; deferred without trying");
            return all(RemoteOutcome::Deferred(format!(
                "{problem} (recently unreachable; not tried again yet)"
            )));
        }
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
                Err(e) => {
                    let problem = format!("4.4.3 {e}");
                    self.destinations.set_unreachable(
                        slot,
                        Some(problem.clone()),
                        self.settings.unreachable_hold,
                    );
                    return all(RemoteOutcome::Deferred(problem));
                }
            },
        };
        self.destinations.make_room(slot);
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
                let session = match client::open(
                    &self.settings,
                    &self.tls,
                    &route,
                    source.as_ref(),
                    host,
                    addr,
                )
                .await
                {
                    Ok(session) => {
                        self.destinations
                            .set_unreachable(slot, None, Duration::ZERO);
                        session
                    }
                    Err(problem) => {
                        tracing::info!(queue_id = %job.queue_id, host, %addr, problem = %problem, "mail host unusable; trying the next");
                        last_problem = problem;
                        continue;
                    }
                };
                match self.run(slot, &route, session, job).await {
                    Ok(outcomes) => return outcomes,
                    // A fresh connection lost before MAIL was answered: like a host that did
                    // not answer, try the next one.
                    Err(why) => {
                        tracing::info!(queue_id = %job.queue_id, host, %addr, problem = %why, "connection lost before MAIL was answered; trying the next host");
                        last_problem = format!("4.4.2 {host} [{ip}]: {why}");
                    }
                }
            }
        }
        self.destinations.set_unreachable(
            slot,
            Some(last_problem.clone()),
            self.settings.unreachable_hold,
        );
        all(RemoteOutcome::Deferred(last_problem))
    }

    /// Sends `job` over `session`, and the recipients a server refused with "too many
    /// recipients" in further transactions on it; then parks or closes the session. `Err`:
    /// the connection was lost before anything was decided.
    async fn run(
        &self,
        slot: &Slot,
        route: &Route,
        mut session: client::Session,
        job: &RemoteJob,
    ) -> Result<Vec<(u32, RemoteOutcome)>, String> {
        let mut outcomes: Vec<(u32, RemoteOutcome)> = Vec::new();
        let mut pending = job.recipients.clone();
        loop {
            let tx = client::send_message(&self.settings, &mut session, job, &pending).await;
            let progress = tx
                .outcomes
                .iter()
                .any(|(_, o)| matches!(o, RemoteOutcome::Sent { .. }));
            match tx.after {
                client::After::Stale(why) if outcomes.is_empty() => {
                    tokio::spawn(session.close());
                    return Err(why);
                }
                client::After::Stale(why) => {
                    // Part of the job went in an earlier transaction on this connection.
                    outcomes.extend(
                        pending
                            .iter()
                            .map(|r| (r.idx, RemoteOutcome::Deferred(format!("4.4.2 {why}")))),
                    );
                    tokio::spawn(session.close());
                    return Ok(outcomes);
                }
                client::After::Close => {
                    outcomes.extend(tx.outcomes);
                    tokio::spawn(session.close());
                    return Ok(outcomes);
                }
                client::After::Ready if !tx.too_many.is_empty() && progress => {
                    // RFC 5321 §4.5.3.1.10: the rest go in another transaction, at once.
                    tracing::info!(queue_id = %job.queue_id, host = %session.host, rest = tx.too_many.len(), "too many recipients for one transaction; sending the rest in another");
                    outcomes.extend(
                        tx.outcomes
                            .into_iter()
                            .filter(|(i, _)| !tx.too_many.contains(i)),
                    );
                    pending.retain(|r| tx.too_many.contains(&r.idx));
                }
                client::After::Ready => {
                    outcomes.extend(tx.outcomes);
                    let max = route
                        .max_messages_per_connection
                        .unwrap_or(self.settings.max_messages_per_connection);
                    self.destinations
                        .park(slot, session, self.settings.idle_time, max);
                    return Ok(outcomes);
                }
            }
        }
    }
}
