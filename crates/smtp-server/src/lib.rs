//! The SMTP front end (RFC 5321 with ESMTP): one session ([`run_session`]) per connection. It turns bytes into
//! commands with `smtp-codec`, runs each command as check (state and syntax), policy (roles,
//! authentication, recipients) and apply, and hands complete messages to `queue::Intake`.
//!
//! What it must not do: write to storage directly, resolve addresses itself (the `accounts`
//! directory does), or reply with anything not in the codec's reply table.
//!
//! # Security
//! Everything read here is untrusted network input, much of it before authentication. Input is
//! bounded (command line, text line, message size, errors per session, timeouts); a message is
//! never held in memory beyond `spool_memory_limit`; passwords pass through only to the
//! directory and are never logged.
#![forbid(unsafe_code)]

mod auth;
mod body;
mod commands;
mod session;
mod unusual;

use accounts::Directory;
use queue::Intake;
use std::path::PathBuf;
use std::time::Duration;
use tokio_rustls::TlsAcceptor;

pub use session::run_session;

/// What a listener is for (see the config reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Server-to-server: no AUTH, local domains only, STARTTLS offered.
    Mx,
    /// RFC 6409 submission: STARTTLS offered, AUTH only after TLS, AUTH required before MAIL.
    Submission,
    /// RFC 8314 implicit TLS submission: AUTH required.
    Submissions,
}

impl Role {
    pub fn requires_auth(self) -> bool {
        self != Role::Mx
    }
}

/// Per-listener session settings.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub hostname: String,
    pub listener: String,
    pub role: Role,
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub max_command_line: usize,
    pub max_text_line: usize,
    pub max_errors: u32,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    pub spool_memory_limit: u64,
    /// Client networks that may relay without authentication.
    pub relay_networks: Vec<ipnet::IpNet>,
    /// AUTH failures in one session before it is closed.
    pub max_auth_failures: u32,
    /// Client networks allowed to AUTH without TLS (a dangerous setting).
    pub plaintext_auth_networks: Vec<ipnet::IpNet>,
    pub limits: SessionLimits,
}

/// Rate limits applied by sessions (counted in `Services::limiter`).
#[derive(Debug, Clone, Default)]
pub struct SessionLimits {
    pub account_messages: accounts::RateLimit,
    pub account_recipients: accounts::RateLimit,
    pub credential_messages: accounts::RateLimit,
    pub credential_recipients: accounts::RateLimit,
    /// New connections per minute from one address; 0: no limit.
    pub ip_connections_per_minute: u32,
}

/// The services a session uses, shared by all sessions.
pub struct Services {
    pub directory: Directory,
    /// Which addresses authenticated accounts may send as.
    pub senders: accounts::SenderPolicy,
    /// Brute-force protection: failure delays, bans and locks.
    pub guard: accounts::Guard,
    /// Counts for the rate limits.
    pub limiter: accounts::Limiter,
    /// Unusual-activity detection per credential.
    pub activity: accounts::Activity,
    pub intake: Intake,
    /// `None` when TLS is not configured (STARTTLS then answers 454).
    pub tls: Option<TlsAcceptor>,
    /// Where messages larger than the memory limit are spooled while they arrive.
    pub spool_dir: PathBuf,
}
