//! The file as written: serde structs mirroring `defaults.toml`, the merge of a user file over
//! the defaults, and the conversion into typed values.
//!
//! The merge walks the user's table against the defaults, so unknown keys and values of the
//! wrong TOML type are all found in one pass, each with its key path, before serde runs.

use crate::units::{parse_duration, parse_size};
use crate::{
    Anomaly, AnomalyAction, Auth, Config, DEFAULTS_TOML, Delivery, IpPool, Lanes, Limits, Listener,
    Log, LogFormat, Outbound, PoolAddress, Problem, Rate, Relay, Role, Server, Smtp,
    SniCertificate, Tls, Transport,
};
use serde::Deserialize;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use toml::{Table, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    transport: Vec<RawTransport>,
    ip_pool: Vec<RawPool>,
    server: RawServer,
    log: RawLog,
    tls: RawTls,
    smtp: RawSmtp,
    relay: RawRelay,
    auth: RawAuth,
    limits: RawLimits,
    anomaly: RawAnomaly,
    senders: RawSenders,
    lanes: RawLanes,
    outbound: RawOutbound,
    delivery: RawDelivery,
    listener: Vec<RawListener>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnomaly {
    enabled: bool,
    spike_factor: f64,
    min_volume: i64,
    min_domains: i64,
    min_bounces: i64,
    bounce_rate: f64,
    baseline_days: i64,
    new_network: bool,
    ipv4_prefix: i64,
    ipv6_prefix: i64,
    action: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRate {
    minute: i64,
    hour: i64,
    day: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    account_messages: RawRate,
    account_recipients: RawRate,
    credential_messages: RawRate,
    credential_recipients: RawRate,
    ip_connections_per_minute: i64,
    destination_messages_per_minute: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    failure_delay: String,
    max_failure_delay: String,
    max_failures_per_session: i64,
    ban_ip_after: i64,
    lock_account_after: i64,
    failure_window: String,
    ban_time: String,
    dangerous_plaintext_auth_networks: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelay {
    networks: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    name: String,
    addresses: Vec<RawPoolAddress>,
    #[serde(default)]
    accounts: Vec<String>,
    #[serde(default)]
    sender_domains: Vec<String>,
    #[serde(default)]
    lanes: Vec<String>,
    #[serde(default)]
    default: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPoolAddress {
    address: String,
    helo: String,
    #[serde(default = "one")]
    weight: i64,
}

fn one() -> i64 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransport {
    domain: String,
    #[serde(default)]
    smarthost: String,
    #[serde(default)]
    tls: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    max_connections: Option<i64>,
    #[serde(default)]
    max_messages_per_connection: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLanes {
    bulk_accounts: Vec<String>,
    bulk_credentials: Vec<String>,
    bulk_listeners: Vec<String>,
    max_deliveries: i64,
    reserved_transactional: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSenders {
    allowed: std::collections::BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutbound {
    nameservers: Vec<String>,
    mx_port: i64,
    helo_name: String,
    connect_timeout: String,
    command_timeout: String,
    data_end_timeout: String,
    max_connections_per_domain: i64,
    max_messages_per_connection: i64,
    connection_idle_time: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    hostname: String,
    data_dir: String,
    recipient_delimiter: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: String,
    level: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    certificate: String,
    private_key: String,
    sni: Vec<RawSni>,
    reload_interval: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSni {
    #[serde(default)]
    hostnames: Vec<String>,
    certificate: String,
    private_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    max_message_size: String,
    max_recipients: i64,
    max_command_line: i64,
    max_text_line: i64,
    max_errors: i64,
    max_received_headers: i64,
    max_connections: i64,
    max_connections_per_ip: i64,
    command_timeout: String,
    data_timeout: String,
    spool_memory_limit: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelivery {
    max_queue_time: String,
    delay_warning: String,
    failed_bounce_copy_to: String,
    paused: bool,
    poll_interval: String,
    retry_initial: String,
    retry_max: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    name: String,
    address: String,
    role: String,
}

fn defaults_table() -> Table {
    // The defaults are compiled in and covered by tests.
    DEFAULTS_TOML
        .parse()
        .unwrap_or_else(|e| unreachable!("defaults.toml: {e}"))
}

/// Merges `user` over the defaults and deserializes the result. Keys with unknown names or
/// wrong types are reported and keep their defaults, so the later checks still run and every
/// problem is reported in one go.
pub(crate) fn merge_over_defaults(user: Table) -> (Result<RawConfig, Vec<Problem>>, Vec<Problem>) {
    let mut merged = defaults_table();
    let mut problems = Vec::new();
    merge_table(&mut merged, user, "", &mut problems);
    let raw = serde_path_to_error::deserialize(Value::Table(merged)).map_err(|e| {
        vec![Problem {
            key: e.path().to_string(),
            message: e.inner().to_string(),
        }]
    });
    (raw, problems)
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a number",
        Value::Boolean(_) => "true or false",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
    }
}

fn merge_table(base: &mut Table, user: Table, prefix: &str, problems: &mut Vec<Problem>) {
    for (key, value) in user {
        let path = join(prefix, &key);
        let Some(existing) = base.get_mut(&key) else {
            problems.push(Problem {
                key: path,
                message: "unknown key; check its spelling and section".into(),
            });
            continue;
        };
        match (existing, value) {
            // A table that is empty by default (like senders.allowed) holds the user's own
            // keys: it is taken as written and its values are checked by serde.
            (Value::Table(b), Value::Table(u)) if b.is_empty() => *b = u,
            (Value::Table(b), Value::Table(u)) => merge_table(b, u, &path, problems),
            // An array of listener tables replaces the default list; each entry is checked
            // against the shape of the first default entry.
            // An array of tables (the listeners) replaces the default list; each entry is
            // checked against the shape of the first default entry. Other arrays (lists of
            // strings) simply replace the default; serde checks their element type.
            (Value::Array(b), Value::Array(u)) => {
                let Some(Value::Table(template)) = b.first().cloned() else {
                    *b = u;
                    continue;
                };
                let mut out = Vec::new();
                for (i, item) in u.into_iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    match item {
                        Value::Table(ut) => {
                            check_entry(&template, &ut, &item_path, problems);
                            out.push(Value::Table(ut));
                        }
                        other => problems.push(Problem {
                            key: item_path,
                            message: format!("expected a table, found {}", type_name(&other)),
                        }),
                    }
                }
                *b = out;
            }
            (existing, value) => {
                if std::mem::discriminant(existing) == std::mem::discriminant(&value) {
                    *existing = value;
                } else {
                    problems.push(Problem {
                        key: path,
                        message: format!(
                            "expected {}, found {}",
                            type_name(existing),
                            type_name(&value)
                        ),
                    });
                }
            }
        }
    }
}

/// Checks one entry of an array of tables: no unknown keys, every key present, right types.
fn check_entry(template: &Table, entry: &Table, path: &str, problems: &mut Vec<Problem>) {
    for (key, value) in entry {
        match template.get(key) {
            None => problems.push(Problem {
                key: join(path, key),
                message: "unknown key; check its spelling".into(),
            }),
            Some(t) if std::mem::discriminant(t) != std::mem::discriminant(value) => {
                problems.push(Problem {
                    key: join(path, key),
                    message: format!("expected {}, found {}", type_name(t), type_name(value)),
                })
            }
            Some(_) => {}
        }
    }
    for key in template.keys() {
        if !entry.contains_key(key) {
            problems.push(Problem {
                key: join(path, key),
                message: "missing; this key is required".into(),
            });
        }
    }
}

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn size(&mut self, key: &str, v: &str) -> u64 {
        parse_size(v).unwrap_or_else(|e| {
            self.problems.push(Problem {
                key: key.into(),
                message: e,
            });
            0
        })
    }

    fn duration(&mut self, key: &str, v: &str) -> std::time::Duration {
        parse_duration(v).unwrap_or_else(|e| {
            self.problems.push(Problem {
                key: key.into(),
                message: e,
            });
            std::time::Duration::ZERO
        })
    }

    fn count(&mut self, key: &str, v: i64, min: i64) -> i64 {
        if v < min {
            self.problems.push(Problem {
                key: key.into(),
                message: format!("must be at least {min}, found {v}"),
            });
        }
        v.max(min)
    }
}

impl RawConfig {
    pub(crate) fn into_config(self) -> Result<Config, Vec<Problem>> {
        let mut c = Checker {
            problems: Vec::new(),
        };
        let s = &self.smtp;
        let smtp = Smtp {
            max_message_size: c.size("smtp.max_message_size", &s.max_message_size),
            max_recipients: c.count("smtp.max_recipients", s.max_recipients, 1) as usize,
            // RFC 5321 §4.5.3.1.4 and §4.5.3.1.6 set these as minimums a server must accept.
            max_command_line: c.count("smtp.max_command_line", s.max_command_line, 512) as usize,
            max_text_line: c.count("smtp.max_text_line", s.max_text_line, 1000) as usize,
            max_errors: c.count("smtp.max_errors", s.max_errors, 1) as u32,
            max_received_headers: c.count("smtp.max_received_headers", s.max_received_headers, 1)
                as usize,
            max_connections: c.count("smtp.max_connections", s.max_connections, 1) as usize,
            max_connections_per_ip: c.count(
                "smtp.max_connections_per_ip",
                s.max_connections_per_ip,
                1,
            ) as usize,
            command_timeout: c.duration("smtp.command_timeout", &s.command_timeout),
            data_timeout: c.duration("smtp.data_timeout", &s.data_timeout),
            spool_memory_limit: c.size("smtp.spool_memory_limit", &s.spool_memory_limit),
        };
        if smtp.max_message_size == 0 && c.problems.is_empty() {
            c.problems.push(Problem {
                key: "smtp.max_message_size".into(),
                message: "must be more than 0".into(),
            });
        }
        let d = &self.delivery;
        let delivery = Delivery {
            max_queue_time: c.duration("delivery.max_queue_time", &d.max_queue_time),
            delay_warning: c.duration("delivery.delay_warning", &d.delay_warning),
            failed_bounce_copy_to: match d.failed_bounce_copy_to.trim() {
                "" => None,
                a if smtp_codec::Address::parse(a).is_ok() => Some(a.to_string()),
                a => {
                    c.problems.push(Problem {
                        key: "delivery.failed_bounce_copy_to".into(),
                        message: format!("\"{a}\" is not a mail address; write e.g. \"postmaster@example.com\" or \"\""),
                    });
                    None
                }
            },
            paused: d.paused,
            poll_interval: c.duration("delivery.poll_interval", &d.poll_interval),
            retry_initial: c.duration("delivery.retry_initial", &d.retry_initial),
            retry_max: c.duration("delivery.retry_max", &d.retry_max),
        };
        let format = match self.log.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                c.problems.push(Problem {
                    key: "log.format".into(),
                    message: format!("\"{other}\" is not a log format; use \"text\" or \"json\""),
                });
                LogFormat::Text
            }
        };
        let delimiter = {
            let mut chars = self.server.recipient_delimiter.chars();
            match (chars.next(), chars.next()) {
                (None, _) => None,
                (Some(ch), None) if !ch.is_alphanumeric() && ch != '@' => Some(ch),
                _ => {
                    c.problems.push(Problem {
                        key: "server.recipient_delimiter".into(),
                        message: "must be empty or one punctuation character such as \"+\"".into(),
                    });
                    None
                }
            }
        };
        let hostname = self.server.hostname.trim().to_string();
        if !hostname.is_empty() && !valid_hostname(&hostname) {
            c.problems.push(Problem {
                key: "server.hostname".into(),
                message: format!(
                    "\"{hostname}\" is not a valid host name (letters, digits, '-', '.')"
                ),
            });
        }
        if self.server.data_dir.trim().is_empty() {
            c.problems.push(Problem {
                key: "server.data_dir".into(),
                message: "must not be empty".into(),
            });
        }
        let tls = check_tls(&self.tls, &mut c);
        let listeners = check_listeners(&self.listener, &mut c.problems);
        let mut relay_networks = Vec::new();
        for (i, n) in self.relay.networks.iter().enumerate() {
            match crate::parse_net(n) {
                Ok(net) => relay_networks.push(net),
                Err(e) => c.problems.push(Problem {
                    key: format!("relay.networks[{i}]"),
                    message: e,
                }),
            }
        }
        let transports = check_transports(&self.transport, &mut c.problems);
        let ip_pools = check_pools(&self.ip_pool, &mut c.problems);
        let l = &self.lanes;
        let max_deliveries = c.count("lanes.max_deliveries", l.max_deliveries, 1) as usize;
        let reserved =
            c.count("lanes.reserved_transactional", l.reserved_transactional, 0) as usize;
        if reserved >= max_deliveries {
            c.problems.push(Problem {
                key: "lanes.reserved_transactional".into(),
                message: format!("must be less than lanes.max_deliveries ({max_deliveries}), or bulk mail could never be sent"),
            });
        }
        for (i, name) in l.bulk_credentials.iter().enumerate() {
            if !name
                .split_once('/')
                .is_some_and(|(a, label)| a.contains('@') && !label.is_empty())
            {
                c.problems.push(Problem {
                    key: format!("lanes.bulk_credentials[{i}]"),
                    message: format!(
                        "\"{name}\" is not \"account/label\", e.g. \"app@example.com/newsletter\""
                    ),
                });
            }
        }
        for (i, name) in l.bulk_listeners.iter().enumerate() {
            if !self.listener.iter().any(|x| &x.name == name) {
                c.problems.push(Problem {
                    key: format!("lanes.bulk_listeners[{i}]"),
                    message: format!("no listener is named \"{name}\""),
                });
            }
        }
        let lanes = Lanes {
            bulk_accounts: l
                .bulk_accounts
                .iter()
                .map(|a| a.trim().to_lowercase())
                .collect(),
            bulk_credentials: l
                .bulk_credentials
                .iter()
                .map(|c| match c.trim().split_once('/') {
                    Some((a, label)) => format!("{}/{label}", a.to_lowercase()),
                    None => c.trim().to_string(),
                })
                .collect(),
            bulk_listeners: l.bulk_listeners.clone(),
            max_deliveries,
            reserved_transactional: reserved,
        };
        let mut senders_allowed = Vec::new();
        for (key, values) in &self.senders.allowed {
            let k = key.trim().to_lowercase();
            let key_ok = k.starts_with('@') && valid_hostname(&k[1..])
                || k.contains('@') && !k.starts_with('@');
            if !key_ok {
                c.problems.push(Problem {
                    key: format!("senders.allowed.\"{key}\""),
                    message: "a key is an account (name@example.com) or a domain (@example.com)"
                        .into(),
                });
            }
            for v in values {
                let v = v.trim().to_lowercase();
                let ok = v == "*"
                    || (v.starts_with('@') && valid_hostname(&v[1..]))
                    || (v.contains('@') && !v.starts_with('@'));
                if !ok {
                    c.problems.push(Problem {
                        key: format!("senders.allowed.\"{key}\""),
                        message: format!("\"{v}\" is not an address, \"@domain\" or \"*\""),
                    });
                }
            }
            senders_allowed.push((k, values.iter().map(|v| v.trim().to_lowercase()).collect()));
        }
        let o = &self.outbound;
        let mut nameservers = Vec::new();
        for (i, n) in o.nameservers.iter().enumerate() {
            match n.parse::<SocketAddr>() {
                Ok(a) => nameservers.push(a),
                Err(_) => c.problems.push(Problem {
                    key: format!("outbound.nameservers[{i}]"),
                    message: format!(
                        "\"{n}\" is not an IP address and port; write e.g. \"192.0.2.53:53\""
                    ),
                }),
            }
        }
        let mx_port = c.count("outbound.mx_port", o.mx_port, 1).min(65535) as u16;
        let helo_name = o.helo_name.trim().to_string();
        if !helo_name.is_empty() && !valid_hostname(&helo_name) {
            c.problems.push(Problem {
                key: "outbound.helo_name".into(),
                message: format!("\"{helo_name}\" is not a valid host name"),
            });
        }
        let outbound = Outbound {
            nameservers,
            mx_port,
            helo_name,
            connect_timeout: c.duration("outbound.connect_timeout", &o.connect_timeout),
            command_timeout: c.duration("outbound.command_timeout", &o.command_timeout),
            data_end_timeout: c.duration("outbound.data_end_timeout", &o.data_end_timeout),
            max_connections_per_domain: c.count(
                "outbound.max_connections_per_domain",
                o.max_connections_per_domain,
                1,
            ) as usize,
            max_messages_per_connection: c
                .count(
                    "outbound.max_messages_per_connection",
                    o.max_messages_per_connection,
                    1,
                )
                .min(u32::MAX as i64) as u32,
            connection_idle_time: c
                .duration("outbound.connection_idle_time", &o.connection_idle_time),
        };
        let rate = |c: &mut Checker, key: &str, r: &RawRate| Rate {
            per_minute: c
                .count(&format!("limits.{key}.minute"), r.minute, 0)
                .min(u32::MAX as i64) as u32,
            per_hour: c
                .count(&format!("limits.{key}.hour"), r.hour, 0)
                .min(u32::MAX as i64) as u32,
            per_day: c
                .count(&format!("limits.{key}.day"), r.day, 0)
                .min(u32::MAX as i64) as u32,
        };
        let l = &self.limits;
        let limits = Limits {
            account_messages: rate(&mut c, "account_messages", &l.account_messages),
            account_recipients: rate(&mut c, "account_recipients", &l.account_recipients),
            credential_messages: rate(&mut c, "credential_messages", &l.credential_messages),
            credential_recipients: rate(&mut c, "credential_recipients", &l.credential_recipients),
            ip_connections_per_minute: c
                .count(
                    "limits.ip_connections_per_minute",
                    l.ip_connections_per_minute,
                    0,
                )
                .min(u32::MAX as i64) as u32,
            destination_messages_per_minute: c
                .count(
                    "limits.destination_messages_per_minute",
                    l.destination_messages_per_minute,
                    0,
                )
                .min(u32::MAX as i64) as u32,
        };
        let an = &self.anomaly;
        if !(an.spike_factor >= 1.0 && an.spike_factor.is_finite()) {
            c.problems.push(Problem {
                key: "anomaly.spike_factor".into(),
                message: format!(
                    "{} is not a factor of at least 1.0, e.g. 10.0",
                    an.spike_factor
                ),
            });
        }
        let anomaly = Anomaly {
            enabled: an.enabled,
            spike_factor: an.spike_factor.max(1.0),
            min_volume: c
                .count("anomaly.min_volume", an.min_volume, 1)
                .min(u32::MAX as i64) as u32,
            min_domains: c
                .count("anomaly.min_domains", an.min_domains, 1)
                .min(u32::MAX as i64) as u32,
            min_bounces: c
                .count("anomaly.min_bounces", an.min_bounces, 1)
                .min(u32::MAX as i64) as u32,
            bounce_rate: if (0.0..=1.0).contains(&an.bounce_rate) {
                an.bounce_rate
            } else {
                c.problems.push(Problem {
                    key: "anomaly.bounce_rate".into(),
                    message: format!(
                        "{} is not a rate between 0.0 and 1.0, e.g. 0.2",
                        an.bounce_rate
                    ),
                });
                0.2
            },
            baseline_days: c
                .count("anomaly.baseline_days", an.baseline_days, 1)
                .min(365) as u32,
            new_network: an.new_network,
            ipv4_prefix: c.count("anomaly.ipv4_prefix", an.ipv4_prefix, 0).min(32) as u8,
            ipv6_prefix: c.count("anomaly.ipv6_prefix", an.ipv6_prefix, 0).min(128) as u8,
            action: match an.action.as_str() {
                "alert" => AnomalyAction::Alert,
                "throttle" => AnomalyAction::Throttle,
                "hold" => AnomalyAction::Hold,
                other => {
                    c.problems.push(Problem {
                        key: "anomaly.action".into(),
                        message: format!(
                            "\"{other}\" is not an action; use \"alert\", \"throttle\" or \"hold\""
                        ),
                    });
                    AnomalyAction::Alert
                }
            },
        };
        let auth_settings = Auth {
            failure_delay: c.duration("auth.failure_delay", &self.auth.failure_delay),
            max_failure_delay: c.duration("auth.max_failure_delay", &self.auth.max_failure_delay),
            max_failures_per_session: c
                .count(
                    "auth.max_failures_per_session",
                    self.auth.max_failures_per_session,
                    1,
                )
                .min(u32::MAX as i64) as u32,
            ban_ip_after: c
                .count("auth.ban_ip_after", self.auth.ban_ip_after, 0)
                .min(u32::MAX as i64) as u32,
            lock_account_after: c
                .count("auth.lock_account_after", self.auth.lock_account_after, 0)
                .min(u32::MAX as i64) as u32,
            failure_window: c.duration("auth.failure_window", &self.auth.failure_window),
            ban_time: c.duration("auth.ban_time", &self.auth.ban_time),
            dangerous_plaintext_auth_networks: Vec::new(),
        };
        let mut auth_settings = auth_settings;
        for (i, n) in self
            .auth
            .dangerous_plaintext_auth_networks
            .iter()
            .enumerate()
        {
            match crate::parse_net(n) {
                Ok(net) => auth_settings.dangerous_plaintext_auth_networks.push(net),
                Err(e) => c.problems.push(Problem {
                    key: format!("auth.dangerous_plaintext_auth_networks[{i}]"),
                    message: e,
                }),
            }
        }
        if !c.problems.is_empty() {
            return Err(c.problems);
        }
        Ok(Config {
            server: Server {
                hostname,
                data_dir: PathBuf::from(self.server.data_dir),
                recipient_delimiter: delimiter,
            },
            log: Log {
                format,
                level: self.log.level,
            },
            tls,
            smtp,
            relay: Relay {
                networks: relay_networks,
            },
            auth: auth_settings,
            limits,
            anomaly,
            senders: senders_allowed,
            transports,
            ip_pools,
            lanes,
            outbound,
            delivery,
            listeners,
        })
    }
}

fn check_tls(raw: &RawTls, c: &mut Checker) -> Tls {
    let files = match (raw.certificate.trim(), raw.private_key.trim()) {
        ("", "") => None,
        (_, "") => {
            c.problems.push(Problem {
                key: "tls.private_key".into(),
                message: "tls.certificate is set, so the private key file is needed too".into(),
            });
            None
        }
        ("", _) => {
            c.problems.push(Problem {
                key: "tls.certificate".into(),
                message: "tls.private_key is set, so the certificate file is needed too".into(),
            });
            None
        }
        (cert, key) => {
            check_tls_file(c, "tls.certificate", cert);
            check_tls_file(c, "tls.private_key", key);
            Some((PathBuf::from(cert), PathBuf::from(key)))
        }
    };
    let mut sni = Vec::new();
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (i, s) in raw.sni.iter().enumerate() {
        let key = |k: &str| format!("tls.sni[{i}].{k}");
        let mut hostnames = Vec::new();
        for (j, h) in s.hostnames.iter().enumerate() {
            let name = h.trim().trim_end_matches('.').to_lowercase();
            let ok = match name.strip_prefix("*.") {
                Some(rest) => valid_hostname(rest) && rest.contains('.'),
                None => valid_hostname(&name),
            };
            if !ok {
                c.problems.push(Problem {
                    key: format!("tls.sni[{i}].hostnames[{j}]"),
                    message: format!(
                        "\"{h}\" is not a host name; write e.g. \"mail.example.com\", or \"*.example.com\" for every name one label under example.com"
                    ),
                });
                continue;
            }
            if let Some((_, other)) = seen.iter().find(|(n, _)| *n == name) {
                c.problems.push(Problem {
                    key: format!("tls.sni[{i}].hostnames[{j}]"),
                    message: format!(
                        "\"{name}\" is already listed in tls.sni[{other}]; a name can have one certificate"
                    ),
                });
                continue;
            }
            seen.push((name.clone(), i));
            hostnames.push(name);
        }
        let cert = s.certificate.trim();
        let pkey = s.private_key.trim();
        for (k, v) in [("certificate", cert), ("private_key", pkey)] {
            if v.is_empty() {
                c.problems.push(Problem {
                    key: key(k),
                    message: "must name a PEM file".into(),
                });
            } else {
                check_tls_file(c, &key(k), v);
            }
        }
        sni.push(SniCertificate {
            hostnames,
            certificate: PathBuf::from(cert),
            private_key: PathBuf::from(pkey),
        });
    }
    Tls {
        files,
        sni,
        reload_interval: c.duration("tls.reload_interval", &raw.reload_interval),
    }
}

fn check_tls_file(c: &mut Checker, key: &str, path: &str) {
    if !std::path::Path::new(path).is_file() {
        c.problems.push(Problem {
            key: key.into(),
            message: format!(
                "file \"{path}\" does not exist or is not readable; correct the path (relative paths start in the directory postrider is started in)"
            ),
        });
    }
}

fn check_listeners(raw: &[RawListener], problems: &mut Vec<Problem>) -> Vec<Listener> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    let mut addrs = HashSet::new();
    if raw.is_empty() {
        problems.push(Problem {
            key: "listener".into(),
            message: "no listeners; add at least one [[listener]] with name, address and role"
                .into(),
        });
    }
    for (i, l) in raw.iter().enumerate() {
        let key = |k: &str| format!("listener[{i}].{k}");
        if l.name.trim().is_empty() || !names.insert(l.name.clone()) {
            problems.push(Problem {
                key: key("name"),
                message: format!(
                    "\"{}\" is empty or used by another listener; names must be unique",
                    l.name
                ),
            });
        }
        let address = match l.address.parse::<SocketAddr>() {
            Ok(a) => {
                if !addrs.insert(a) {
                    problems.push(Problem {
                        key: key("address"),
                        message: format!("{a} is already used by another listener"),
                    });
                }
                Some(a)
            }
            Err(_) => {
                problems.push(Problem {
                    key: key("address"),
                    message: format!(
                        "\"{}\" is not an IP address and port; write e.g. \"0.0.0.0:25\" or \"[::]:25\"",
                        l.address
                    ),
                });
                None
            }
        };
        let role = match l.role.as_str() {
            "mx" => Some(Role::Mx),
            "submission" => Some(Role::Submission),
            "submissions" => Some(Role::Submissions),
            other => {
                problems.push(Problem {
                    key: key("role"),
                    message: format!(
                        "\"{other}\" is not a role; use \"mx\", \"submission\" or \"submissions\""
                    ),
                });
                None
            }
        };
        if let (Some(address), Some(role)) = (address, role) {
            out.push(Listener {
                name: l.name.clone(),
                address,
                role,
            });
        }
    }
    out
}

fn check_pools(raw: &[RawPool], problems: &mut Vec<Problem>) -> Vec<IpPool> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    let mut defaults = 0;
    for (i, p) in raw.iter().enumerate() {
        let key = |k: &str| format!("ip_pool[{i}].{k}");
        if p.name.trim().is_empty() || !names.insert(p.name.clone()) {
            problems.push(Problem {
                key: key("name"),
                message: "empty or used by another pool; names must be unique".into(),
            });
        }
        if p.default {
            defaults += 1;
            if defaults > 1 {
                problems.push(Problem {
                    key: key("default"),
                    message: "only one pool can be the default".into(),
                });
            }
        }
        if p.addresses.is_empty() {
            problems.push(Problem {
                key: key("addresses"),
                message: "a pool needs at least one address".into(),
            });
        }
        let mut addresses = Vec::new();
        for (j, a) in p.addresses.iter().enumerate() {
            let akey = |k: &str| format!("ip_pool[{i}].addresses[{j}].{k}");
            let ip = a.address.trim().parse::<std::net::IpAddr>();
            if ip.is_err() {
                problems.push(Problem {
                    key: akey("address"),
                    message: format!("\"{}\" is not an IP address", a.address),
                });
            }
            if !valid_hostname(a.helo.trim()) {
                problems.push(Problem {
                    key: akey("helo"),
                    message: format!("\"{}\" is not a host name", a.helo),
                });
            }
            if !(1..=1000).contains(&a.weight) {
                problems.push(Problem {
                    key: akey("weight"),
                    message: "must be between 1 and 1000".into(),
                });
            }
            if let Ok(ip) = ip {
                addresses.push(PoolAddress {
                    ip,
                    helo: a.helo.trim().to_lowercase(),
                    weight: a.weight.clamp(1, 1000) as u32,
                });
            }
        }
        let mut lanes = Vec::new();
        for lane in &p.lanes {
            match lane.trim() {
                l @ ("transactional" | "bulk") => lanes.push(l.to_string()),
                other => problems.push(Problem {
                    key: key("lanes"),
                    message: format!(
                        "\"{other}\" is not a lane; use \"transactional\" or \"bulk\""
                    ),
                }),
            }
        }
        out.push(IpPool {
            name: p.name.clone(),
            lanes,
            addresses,
            accounts: p.accounts.iter().map(|a| a.trim().to_lowercase()).collect(),
            sender_domains: p
                .sender_domains
                .iter()
                .map(|d| d.trim().trim_start_matches('@').to_lowercase())
                .collect(),
            default: p.default,
        });
    }
    out
}

fn check_transports(raw: &[RawTransport], problems: &mut Vec<Problem>) -> Vec<Transport> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, t) in raw.iter().enumerate() {
        let key = |k: &str| format!("transport[{i}].{k}");
        let domain = t.domain.trim().trim_end_matches('.').to_lowercase();
        if domain != "*" && !valid_hostname(&domain) {
            problems.push(Problem {
                key: key("domain"),
                message: format!("\"{}\" is not a domain or \"*\"", t.domain),
            });
        } else if !seen.insert(domain.clone()) {
            problems.push(Problem {
                key: key("domain"),
                message: format!("\"{domain}\" has two transport entries"),
            });
        }
        let smarthost = match t.smarthost.trim() {
            "" => None,
            hp => {
                match hp.rsplit_once(':').map(|(h, p)| {
                    (
                        h.trim_start_matches('[').trim_end_matches(']'),
                        p.parse::<u16>(),
                    )
                }) {
                    Some((h, Ok(p))) if !h.is_empty() && p > 0 => Some((h.to_lowercase(), p)),
                    _ => {
                        problems.push(Problem {
                        key: key("smarthost"),
                        message: format!("\"{hp}\" is not host:port; write e.g. \"smtp.provider.example:587\""),
                    });
                        None
                    }
                }
            }
        };
        let tls_required = match t.tls.trim() {
            "" | "opportunistic" => false,
            "required" => true,
            other => {
                problems.push(Problem {
                    key: key("tls"),
                    message: format!(
                        "\"{other}\" is not a TLS mode; use \"opportunistic\" or \"required\""
                    ),
                });
                false
            }
        };
        let auth = match (t.username.is_empty(), t.password.is_empty()) {
            (true, true) => None,
            (false, false) => Some((t.username.clone(), t.password.clone())),
            _ => {
                problems.push(Problem {
                    key: key("password"),
                    message: "username and password go together".into(),
                });
                None
            }
        };
        if auth.is_some() && !tls_required {
            problems.push(Problem {
                key: key("tls"),
                message: "with a username and password set tls = \"required\", so the password never travels in plain text".into(),
            });
        }
        if auth.is_some() && smarthost.is_none() {
            problems.push(Problem {
                key: key("smarthost"),
                message: "credentials are only used with a smarthost".into(),
            });
        }
        let mut limit = |k: &str, v: Option<i64>| match v {
            None => None,
            Some(n) if n >= 1 => Some(n as u64),
            Some(n) => {
                problems.push(Problem {
                    key: key(k),
                    message: format!("{n} is not allowed; use a whole number of at least 1"),
                });
                None
            }
        };
        let max_connections = limit("max_connections", t.max_connections).map(|n| n as usize);
        let max_messages_per_connection =
            limit("max_messages_per_connection", t.max_messages_per_connection)
                .map(|n| n.min(u32::MAX as u64) as u32);
        out.push(Transport {
            domain,
            smarthost,
            tls_required,
            auth,
            max_connections,
            max_messages_per_connection,
        });
    }
    out
}

fn valid_hostname(h: &str) -> bool {
    h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}
