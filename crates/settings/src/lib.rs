//! Postrider's configuration: one TOML file into typed runtime values.
//!
//! What it does: merges the user's file over the built-in defaults (`defaults.toml`, which is
//! also what `postrider config defaults` prints, so the two cannot drift), rejects unknown keys,
//! and turns strings into typed values (sizes, durations, socket addresses, roles). All problems
//! are reported at once, each with its key path.
//!
//! What it must not do: open sockets, touch the data directory, or start anything.
//!
//! # Security
//! The file is operator input, trusted but possibly wrong; errors name the key and the fix.
#![forbid(unsafe_code)]

mod net;
mod raw;
mod units;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use net::{IpNet, parse_net};
pub use units::{format_size, parse_duration, parse_size};

/// The commented default configuration, exactly as `postrider config defaults` prints it.
pub const DEFAULTS_TOML: &str = include_str!("defaults.toml");

/// What a listener is for. See `defaults.toml` for the meaning of each role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Mx,
    Submission,
    Submissions,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Mx => "mx",
            Role::Submission => "submission",
            Role::Submissions => "submissions",
        }
    }

    /// Implicit TLS from the first byte (RFC 8314 §3.3) or STARTTLS offered (RFC 3207).
    pub fn implicit_tls(self) -> bool {
        self == Role::Submissions
    }

    /// Whether clients must authenticate before MAIL (RFC 6409 §4.3).
    pub fn requires_auth(self) -> bool {
        self != Role::Mx
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Listener {
    pub name: String,
    pub address: SocketAddr,
    pub role: Role,
}

#[derive(Debug, Clone)]
pub struct Server {
    /// Empty when the machine's hostname should be used.
    pub hostname: String,
    pub data_dir: PathBuf,
    pub recipient_delimiter: Option<char>,
}

#[derive(Debug, Clone)]
pub struct Log {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone)]
pub struct Tls {
    /// Certificate and key files, or `None` for the self-signed certificate in the data dir.
    pub files: Option<(PathBuf, PathBuf)>,
    /// Further certificates, chosen by the name a client asks for (`[[tls.sni]]`).
    pub sni: Vec<SniCertificate>,
    /// How often certificate files are checked for changes; zero: only on SIGHUP.
    pub reload_interval: Duration,
}

/// A certificate chosen by SNI (`[[tls.sni]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniCertificate {
    /// Lower-case host names, `*.example.com` for one label; empty: the certificate's own names.
    pub hostnames: Vec<String>,
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Smtp {
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub max_command_line: usize,
    pub max_text_line: usize,
    pub max_errors: u32,
    pub max_received_headers: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    pub spool_memory_limit: u64,
}

/// Who may relay without authenticating.
#[derive(Debug, Clone)]
pub struct Relay {
    pub networks: Vec<IpNet>,
}

/// What unusual activity of a credential leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnomalyAction {
    Alert,
    Throttle,
    Hold,
}

/// Unusual-activity detection (`[anomaly]`).
#[derive(Debug, Clone)]
pub struct Anomaly {
    pub enabled: bool,
    pub spike_factor: f64,
    pub min_volume: u32,
    pub min_domains: u32,
    pub min_bounces: u32,
    pub bounce_rate: f64,
    pub baseline_days: u32,
    pub new_network: bool,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    pub action: AnomalyAction,
}

/// A count per minute, hour and day; 0: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rate {
    pub per_minute: u32,
    pub per_hour: u32,
    pub per_day: u32,
}

/// Rate limits (`[limits]`).
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub account_messages: Rate,
    pub account_recipients: Rate,
    pub credential_messages: Rate,
    pub credential_recipients: Rate,
    /// 0: no limit.
    pub ip_connections_per_minute: u32,
    /// 0: no limit.
    pub destination_messages_per_minute: u32,
}

/// SMTP AUTH (`[auth]`).
#[derive(Debug, Clone)]
pub struct Auth {
    /// Every failure is answered this long after its AUTH command began (doubling per
    /// further failure, up to `max_failure_delay`).
    pub failure_delay: Duration,
    pub max_failure_delay: Duration,
    pub max_failures_per_session: u32,
    /// 0: never.
    pub ban_ip_after: u32,
    /// 0: never.
    pub lock_account_after: u32,
    pub failure_window: Duration,
    pub ban_time: Duration,
    /// Networks allowed to AUTH without TLS (passwords in clear text).
    pub dangerous_plaintext_auth_networks: Vec<IpNet>,
}

/// A route for remote mail (`[[transport]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transport {
    /// A recipient domain (lower-case) or "*".
    pub domain: String,
    /// Send through this host and port instead of the domain's MX hosts.
    pub smarthost: Option<(String, u16)>,
    /// No STARTTLS → defer; never plain text.
    pub tls_required: bool,
    /// AUTH credentials for the smarthost.
    pub auth: Option<(String, String)>,
    /// Overrides `outbound.max_connections_per_domain`.
    pub max_connections: Option<usize>,
    /// Overrides `outbound.max_messages_per_connection`.
    pub max_messages_per_connection: Option<u32>,
}

/// The two delivery lanes (`[lanes]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lanes {
    /// Accounts whose mail is bulk (lower-case).
    pub bulk_accounts: Vec<String>,
    /// Listener names whose mail is bulk.
    pub bulk_listeners: Vec<String>,
    /// Credentials ("account/label", account lower-case) whose mail is bulk.
    pub bulk_credentials: Vec<String>,
    pub max_deliveries: usize,
    pub reserved_transactional: usize,
}

/// A pool of source addresses for outbound connections (`[[ip_pool]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpPool {
    pub name: String,
    pub addresses: Vec<PoolAddress>,
    /// Authenticated accounts whose messages use this pool (lower-case).
    pub accounts: Vec<String>,
    /// Sender domains (MAIL FROM) whose messages use this pool (lower-case).
    pub sender_domains: Vec<String>,
    /// Lanes ("transactional", "bulk") whose messages use this pool.
    pub lanes: Vec<String>,
    /// The pool for messages no other pool claims.
    pub default: bool,
}

/// One source address with the EHLO name it announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolAddress {
    pub ip: std::net::IpAddr,
    pub helo: String,
    pub weight: u32,
}

/// Delivery to remote servers.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// Empty: the system's resolver configuration.
    pub nameservers: Vec<SocketAddr>,
    pub mx_port: u16,
    /// Empty: server.hostname.
    pub helo_name: String,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub data_end_timeout: Duration,
    /// Per next hop: a domain's MX hosts or a smarthost.
    pub max_connections_per_domain: usize,
    pub max_messages_per_connection: u32,
    /// Zero: no connection reuse.
    pub connection_idle_time: Duration,
}

#[derive(Debug, Clone)]
pub struct Delivery {
    pub max_queue_time: Duration,
    /// Zero: no delay reports.
    pub delay_warning: Duration,
    /// Where a failed bounce is reported; `None`: only logged.
    pub failed_bounce_copy_to: Option<String>,
    pub paused: bool,
    pub poll_interval: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

/// The whole runtime configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: Server,
    pub log: Log,
    pub tls: Tls,
    pub smtp: Smtp,
    pub relay: Relay,
    pub auth: Auth,
    pub limits: Limits,
    pub anomaly: Anomaly,
    /// `senders.allowed`: (account or "@domain", allowed addresses / "@domain" / "*"), lower-case.
    pub senders: Vec<(String, Vec<String>)>,
    /// Routes for remote mail, from `[[transport]]`.
    pub transports: Vec<Transport>,
    /// Source address pools, from `[[ip_pool]]`.
    pub ip_pools: Vec<IpPool>,
    pub lanes: Lanes,
    pub outbound: Outbound,
    pub delivery: Delivery,
    pub listeners: Vec<Listener>,
}

/// Every problem found in a configuration, each with its key path.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    pub source_name: String,
    pub problems: Vec<Problem>,
}

/// One problem: the key path (`smtp.max_recipients`, `listener[2].role`) and what to do.
#[derive(Debug, Clone)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn render(&self) -> String {
        let mut out = format!(
            "{}: {} problem{} found",
            self.source_name,
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" }
        );
        for p in &self.problems {
            if p.key.is_empty() {
                out.push_str(&format!("\n  - {}", p.message));
            } else {
                out.push_str(&format!("\n  - {}: {}", p.key, p.message));
            }
        }
        out.push_str(
            "\n(`postrider config defaults` prints every key with its default and meaning)",
        );
        out
    }
}

impl Config {
    /// The built-in defaults.
    pub fn defaults() -> Config {
        // The defaults file is part of the binary and covered by a test; it always parses.
        Config::from_toml_str(DEFAULTS_TOML, "defaults")
            .unwrap_or_else(|e| unreachable!("built-in defaults.toml is invalid: {e}"))
    }

    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source_name: name.clone(),
            problems: vec![Problem {
                key: String::new(),
                message: format!("cannot read the file ({e}); check the path given to --config"),
            }],
        })?;
        Config::from_toml_str(&text, &name)
    }

    /// Parses a config from TOML text; `source_name` names it in errors.
    pub fn from_toml_str(text: &str, source_name: &str) -> Result<Config, ConfigError> {
        let fail = |problems| ConfigError {
            source_name: source_name.to_string(),
            problems,
        };
        let user: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            fail(vec![Problem {
                key: String::new(),
                message: format!("not valid TOML: {e}"),
            }])
        })?;
        let (raw, mut problems) = raw::merge_over_defaults(user);
        let config = raw.and_then(|r| r.into_config());
        match config {
            Ok(c) if problems.is_empty() => Ok(c),
            Ok(_) => Err(fail(problems)),
            Err(more) => {
                problems.extend(more);
                Err(fail(problems))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match Config::from_toml_str(text, "test.toml") {
            Ok(_) => vec![],
            Err(e) => e
                .problems
                .iter()
                .map(|p| format!("{}: {}", p.key, p.message))
                .collect(),
        }
    }

    #[test]
    fn built_in_defaults_parse_and_have_the_four_documented_listeners() {
        let c = Config::defaults();
        let ports: Vec<(u16, Role)> = c
            .listeners
            .iter()
            .map(|l| (l.address.port(), l.role))
            .collect();
        assert_eq!(
            ports,
            vec![
                (10025, Role::Mx),
                (10587, Role::Submission),
                (10465, Role::Submissions),
                (2525, Role::Submission)
            ]
        );
        assert_eq!(c.smtp.max_message_size, 50 * 1024 * 1024);
        assert_eq!(c.smtp.max_recipients, 100);
        assert_eq!(c.smtp.command_timeout, Duration::from_secs(300));
    }

    #[test]
    fn an_empty_file_means_all_defaults() {
        let c = Config::from_toml_str("", "empty").unwrap();
        assert_eq!(c.listeners.len(), 4);
    }

    #[test]
    fn a_partial_file_changes_only_its_keys() {
        let c = Config::from_toml_str("[smtp]\nmax_recipients = 7\n", "t").unwrap();
        assert_eq!(c.smtp.max_recipients, 7);
        assert_eq!(c.smtp.max_command_line, 512);
    }

    #[test]
    fn listeners_in_a_file_replace_the_default_list() {
        let c = Config::from_toml_str(
            "[[listener]]\nname = \"in\"\naddress = \"127.0.0.1:25\"\nrole = \"mx\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.listeners.len(), 1);
        assert_eq!(c.listeners[0].name, "in");
    }

    #[test]
    fn unknown_keys_are_reported_with_their_path() {
        let p = problems("[smtp]\nmax_recipient = 7\n[nope]\nx = 1\n");
        assert!(
            p.iter()
                .any(|m| m.starts_with("smtp.max_recipient: unknown key")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|m| m.starts_with("nope: unknown key")),
            "{p:?}"
        );
    }

    #[test]
    fn all_bad_values_are_reported_at_once() {
        let p = problems(
            "[smtp]\nmax_message_size = \"lots\"\ncommand_timeout = \"5 fortnights\"\n\
             [[listener]]\nname = \"a\"\naddress = \"localhost\"\nrole = \"relay\"\n",
        );
        assert!(
            p.iter().any(|m| m.starts_with("smtp.max_message_size:")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|m| m.starts_with("smtp.command_timeout:")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|m| m.starts_with("listener[0].address:")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|m| m.starts_with("listener[0].role:")),
            "{p:?}"
        );
    }

    #[test]
    fn type_errors_and_value_errors_are_reported_together() {
        let p = problems("[smtp]\nmax_recipients = \"many\"\nmax_message_size = \"lots\"\n");
        assert!(
            p.iter().any(|m| m.starts_with("smtp.max_recipients:")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|m| m.starts_with("smtp.max_message_size:")),
            "{p:?}"
        );
    }

    #[test]
    fn lists_of_strings_are_read_and_checked() {
        let c = Config::from_toml_str(
            "[relay]\nnetworks = [\"192.0.2.0/24\", \"2001:db8::1\"]\n[outbound]\nnameservers = [\"127.0.0.53:5353\"]\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.relay.networks.len(), 2);
        assert_eq!(c.outbound.nameservers[0].port(), 5353);
        let p = problems("[relay]\nnetworks = [\"not a net\", 5]\n");
        assert!(p.iter().any(|m| m.starts_with("relay.networks")), "{p:?}");
    }

    #[test]
    fn sender_rules_take_the_users_own_keys_and_check_them() {
        let c = Config::from_toml_str(
            "[senders.allowed]\n\"App@Example.com\" = [\"noreply@example.com\", \"@mail.example.com\"]\n\"@ops.example\" = [\"*\"]\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.senders.len(), 2);
        assert!(
            c.senders
                .iter()
                .any(|(k, v)| k == "app@example.com" && v.len() == 2)
        );
        let p = problems("[senders.allowed]\n\"nobody\" = [\"not an address\"]\n");
        assert_eq!(p.len(), 2, "{p:?}");
    }

    #[test]
    fn transports_are_read_and_unsafe_ones_refused() {
        let c = Config::from_toml_str(
            "[[transport]]\ndomain = \"*\"\nsmarthost = \"smtp.provider.example:587\"\ntls = \"required\"\nusername = \"u\"\npassword = \"p\"\n\
             [[transport]]\ndomain = \"Bank.Example\"\ntls = \"required\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.transports.len(), 2);
        assert_eq!(
            c.transports[0].smarthost,
            Some(("smtp.provider.example".into(), 587))
        );
        assert_eq!(c.transports[1].domain, "bank.example");
        let p = problems(
            "[[transport]]\ndomain = \"*\"\nsmarthost = \"nohost\"\nusername = \"u\"\npassword = \"p\"\nfoo = 1\n",
        );
        assert!(p.iter().any(|m| m.contains("foo")), "{p:?}");
        let p = problems(
            "[[transport]]\ndomain = \"*\"\nsmarthost = \"nohost\"\nusername = \"u\"\npassword = \"p\"\n",
        );
        assert!(
            p.iter().any(|m| m.starts_with("transport[0].smarthost")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|m| m.starts_with("transport[0].tls")),
            "plain-text passwords are refused: {p:?}"
        );
    }

    #[test]
    fn delivery_limits_per_transport_pool_lanes_and_the_failed_bounce_copy_are_checked() {
        let c = Config::from_toml_str(
            "[[transport]]\ndomain = \"*\"\nsmarthost = \"hub.example:25\"\nmax_connections = 40\nmax_messages_per_connection = 500\n\
             [[ip_pool]]\nname = \"bulk\"\nlanes = [\"bulk\"]\naddresses = [ { address = \"192.0.2.1\", helo = \"mta.example\" } ]\n\
             [outbound]\nconnection_idle_time = \"0s\"\n\
             [delivery]\nfailed_bounce_copy_to = \"postmaster@example.com\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.transports[0].max_connections, Some(40));
        assert_eq!(c.transports[0].max_messages_per_connection, Some(500));
        assert_eq!(c.ip_pools[0].lanes, vec!["bulk".to_string()]);
        assert!(c.outbound.connection_idle_time.is_zero());
        assert_eq!(c.outbound.max_connections_per_domain, 20);
        assert_eq!(c.outbound.max_messages_per_connection, 100);
        assert_eq!(
            c.delivery.failed_bounce_copy_to.as_deref(),
            Some("postmaster@example.com")
        );
        let p = problems(
            "[[transport]]\ndomain = \"*\"\nmax_connections = 0\n\
             [[ip_pool]]\nname = \"x\"\nlanes = [\"fast\"]\naddresses = [ { address = \"192.0.2.1\", helo = \"mta.example\" } ]\n\
             [outbound]\nmax_messages_per_connection = 0\n\
             [delivery]\nfailed_bounce_copy_to = \"not an address\"\n",
        );
        for key in [
            "transport[0].max_connections",
            "ip_pool[0].lanes",
            "outbound.max_messages_per_connection",
            "delivery.failed_bounce_copy_to",
        ] {
            assert!(p.iter().any(|m| m.starts_with(key)), "{key}: {p:?}");
        }
    }

    #[test]
    fn a_wrong_type_names_its_key() {
        let p = problems("[smtp]\nmax_recipients = \"many\"\n");
        assert!(
            p.iter().any(|m| m.starts_with("smtp.max_recipients:")),
            "{p:?}"
        );
    }

    #[test]
    fn certificate_without_key_is_refused() {
        let p = problems("[tls]\ncertificate = \"/etc/ssl/x.pem\"\n");
        assert!(p.iter().any(|m| m.starts_with("tls.private_key:")), "{p:?}");
    }

    #[test]
    fn sni_certificates_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = |n: &str| {
            let p = dir.path().join(n);
            std::fs::write(&p, "x").unwrap();
            p.display().to_string()
        };
        let (c1, k1, c2, k2) = (file("a.crt"), file("a.key"), file("b.crt"), file("b.key"));
        let c = Config::from_toml_str(
            &format!(
                "[tls]\nreload_interval = \"2s\"\n\
                 [[tls.sni]]\nhostnames = [\"Mail.Example.com.\", \"*.example.net\"]\ncertificate = \"{c1}\"\nprivate_key = \"{k1}\"\n\
                 [[tls.sni]]\ncertificate = \"{c2}\"\nprivate_key = \"{k2}\"\n"
            ),
            "t",
        )
        .unwrap();
        assert_eq!(c.tls.reload_interval, Duration::from_secs(2));
        assert_eq!(c.tls.sni.len(), 2);
        assert_eq!(
            c.tls.sni[0].hostnames,
            vec!["mail.example.com", "*.example.net"]
        );
        assert!(c.tls.sni[1].hostnames.is_empty());
        assert_eq!(
            Config::defaults().tls.reload_interval,
            Duration::from_secs(5)
        );

        let p = problems(&format!(
            "[[tls.sni]]\nhostnames = [\"*.com\", \"bad name\", \"a.example\"]\ncertificate = \"/nonexistent/x.pem\"\nprivate_key = \"{k1}\"\n\
             [[tls.sni]]\nhostnames = [\"A.example\"]\ncertificate = \"{c2}\"\nprivate_key = \"\"\n"
        ));
        for key in [
            "tls.sni[0].hostnames[0]",
            "tls.sni[0].hostnames[1]",
            "tls.sni[0].certificate",
            "tls.sni[1].hostnames[0]",
            "tls.sni[1].private_key",
        ] {
            assert!(p.iter().any(|m| m.starts_with(key)), "{key}: {p:?}");
        }
        let p = problems("[[tls.sni]]\ncertificate = \"a\"\nprivate_key = \"b\"\nhostname = []\n");
        assert!(p.iter().any(|m| m.contains("hostname")), "{p:?}");
    }

    #[test]
    fn duplicate_listener_addresses_are_refused() {
        let p = problems(
            "[[listener]]\nname = \"a\"\naddress = \"127.0.0.1:25\"\nrole = \"mx\"\n\
             [[listener]]\nname = \"b\"\naddress = \"127.0.0.1:25\"\nrole = \"mx\"\n",
        );
        assert!(
            p.iter().any(|m| m.starts_with("listener[1].address:")),
            "{p:?}"
        );
    }
}
