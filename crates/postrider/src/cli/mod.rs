//! The subcommands.

pub mod ban;
pub mod config;
pub mod credential;
pub mod directory;
pub mod dkim;
pub mod mailbox;
pub mod queue;
pub mod serve;
pub mod tls;

use anyhow::{Context as _, Result};
use settings::Config;
use std::path::PathBuf;
use std::sync::Arc;
use store::{SharedStore, SqliteStore};

/// What every subcommand gets from the global options.
pub struct Context {
    pub config_path: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
}

impl Context {
    /// The configuration: the file if given, else the defaults; `--data-dir` applied.
    pub fn config(&self) -> Result<Config> {
        let mut config = match &self.config_path {
            Some(path) => Config::load(path)?,
            None => Config::defaults(),
        };
        if let Some(dir) = &self.data_dir {
            config.server.data_dir = dir.clone();
        }
        Ok(config)
    }

    /// Opens the store of an existing data directory (admin commands never create one, so a
    /// wrong `--data-dir` is reported instead of silently starting an empty store).
    pub async fn open_store(&self) -> Result<SharedStore> {
        let config = self.config()?;
        let dir = &config.server.data_dir;
        if !dir.join("postrider.db").is_file() {
            anyhow::bail!(
                "no Postrider data in {} ; start the server once with `postrider serve` (same --config/--data-dir), \
                 or point --data-dir at the server's data directory",
                dir.display()
            );
        }
        let store = SqliteStore::open(dir)
            .await
            .with_context(|| format!("opening the store in {}", dir.display()))?;
        Ok(Arc::new(store))
    }
}

/// How the user invoked this program (e.g. `target/release/postrider`), for the commands
/// suggested in messages, so they can be pasted as they are. A bare name found on PATH stays bare.
pub fn program() -> String {
    let argv0 = std::env::args().next().unwrap_or_default();
    if argv0.contains('/') && !argv0.starts_with('/') {
        argv0
    } else {
        "postrider".to_string()
    }
}

/// Parses and lower-cases an email address given on the command line.
pub fn parse_address(text: &str) -> Result<String> {
    let a = smtp_codec::Address::parse(text.trim()).map_err(|e| {
        anyhow::anyhow!(
            "\"{text}\" is not a valid email address ({e}); write it as name@example.com"
        )
    })?;
    if a.domain.starts_with('[') {
        anyhow::bail!("\"{text}\": use a domain name, not an address literal");
    }
    Ok(a.normalized())
}

/// Checks and lower-cases a domain name given on the command line.
pub fn parse_domain(text: &str) -> Result<String> {
    let d = text.trim().trim_end_matches('.').to_lowercase();
    let valid = !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if !valid {
        anyhow::bail!("\"{text}\" is not a valid domain name; write it like example.com");
    }
    Ok(d)
}

/// Formats unix milliseconds as `YYYY-MM-DD HH:MM:SS` UTC.
/// Unix time in milliseconds, as the store records times.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn format_time(ms: i64) -> String {
    ::queue::iso_datetime(ms)
}
