//! `ban` subcommands: the temporary bans of client addresses and locks of account names made
//! after repeated failed logins (`[auth]`), listed and lifted while the server runs (it rereads
//! them every few seconds).

use super::{Context, format_time, now_ms};
use anyhow::{Result, bail};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum BanCmd {
    /// List bans in force: banned IP addresses and locked account names, until when and why.
    List,
    /// Lift the ban of an IP address, or the lock of an account name.
    Remove {
        /// An IP address ("192.0.2.7") or an account name ("alice@example.com").
        target: String,
    },
}

pub async fn run(ctx: Context, cmd: BanCmd) -> Result<()> {
    let store = ctx.open_store().await?;
    match cmd {
        BanCmd::List => {
            let bans = store.bans(now_ms()).await?;
            if bans.is_empty() {
                println!("no bans in force");
                return Ok(());
            }
            println!(
                "{:<8} {:<40} {:<20} REASON",
                "KIND", "ADDRESS OR ACCOUNT", "UNTIL (UTC)"
            );
            for b in bans {
                let kind = if b.kind == "ip" { "ip" } else { "account" };
                println!(
                    "{:<8} {:<40} {:<20} {}",
                    kind,
                    b.value,
                    format_time(b.until),
                    b.reason
                );
            }
        }
        BanCmd::Remove { target } => {
            let (kind, value) = match target.trim().parse::<std::net::IpAddr>() {
                Ok(ip) => ("ip", ip.to_string()),
                Err(_) if target.contains('@') => ("account", target.trim().to_lowercase()),
                Err(_) => bail!(
                    "{target:?} is neither an IP address nor an account name; `postrider ban list` shows the bans"
                ),
            };
            if !store.remove_ban(kind, &value).await? {
                bail!("no ban of {value} in force; `postrider ban list` shows the bans");
            }
            println!("lifted the ban of {value} (the server applies it within a few seconds)");
        }
    }
    Ok(())
}
