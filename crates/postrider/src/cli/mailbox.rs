//! `mailbox list|show`.

use super::{Context, format_time, parse_address};
use anyhow::{Result, bail};
use clap::Subcommand;
use std::io::Write;

/// Octets read from each message to show its headers in a listing.
const HEADER_PEEK: usize = 64 * 1024;

#[derive(Subcommand)]
pub enum MailboxCmd {
    /// One line per stored message: id, date, from, subject, size.
    List { address: String },
    /// Print a stored message exactly as stored.
    Show { address: String, id: i64 },
}

pub async fn run(ctx: Context, cmd: MailboxCmd) -> Result<()> {
    let store = ctx.open_store().await?;
    match cmd {
        MailboxCmd::List { address } => {
            let owner = parse_address(&address)?;
            let messages = store.mailbox_messages(&owner).await?;
            if messages.is_empty() {
                println!("no messages for {owner}");
                return Ok(());
            }
            println!(
                "{:>6}  {:<19}  {:<32}  {:<40}  {:>9}",
                "ID", "RECEIVED (UTC)", "FROM", "SUBJECT", "SIZE"
            );
            for m in messages {
                let head = store
                    .mailbox_read(&owner, m.id, Some(HEADER_PEEK))
                    .await?
                    .unwrap_or_default();
                let parsed = mail_parser::MessageParser::default().parse_headers(&head[..]);
                let from = parsed
                    .as_ref()
                    .and_then(|p| p.from())
                    .and_then(|f| f.first())
                    .and_then(|a| a.address())
                    .unwrap_or("-")
                    .to_string();
                let subject = parsed
                    .as_ref()
                    .and_then(|p| p.subject())
                    .unwrap_or("")
                    .to_string();
                println!(
                    "{:>6}  {:<19}  {:<32}  {:<40}  {:>9}",
                    m.id,
                    format_time(m.received_at),
                    clip(&from, 32),
                    clip(&subject, 40),
                    m.size
                );
            }
        }
        MailboxCmd::Show { address, id } => {
            let owner = parse_address(&address)?;
            let Some(raw) = store.mailbox_read(&owner, id, None).await? else {
                bail!(
                    "no message {id} for {owner}; `postrider mailbox list {owner}` shows the ids"
                );
            };
            let mut out = std::io::stdout().lock();
            out.write_all(&raw)?;
            out.flush()?;
        }
    }
    Ok(())
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
    t.push('…');
    t
}
