//! `queue list|show|delete`.

use super::{Context, format_time};
use anyhow::{Result, bail};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum QueueCmd {
    /// List queued messages: id, arrival time, size, sender, recipients, state.
    List,
    /// Show one message's envelope and the state of each recipient.
    Show { id: String },
    /// Delete a message from the queue (it is not delivered).
    Delete { id: String },
}

pub async fn run(ctx: Context, cmd: QueueCmd) -> Result<()> {
    let store = ctx.open_store().await?;
    match cmd {
        QueueCmd::List => {
            let all = store.queue_list().await?;
            if all.is_empty() {
                println!("queue is empty");
                return Ok(());
            }
            println!(
                "{:<13}  {:<19}  {:>9}  {:<30}  {:>5}  STATE",
                "ID", "ARRIVED (UTC)", "SIZE", "FROM", "RCPTS"
            );
            for m in &all {
                let state = match &m.quarantined {
                    Some(_) => "quarantined".to_string(),
                    None => {
                        let open = m.recipients.iter().filter(|r| !r.state.is_final()).count();
                        let failed = m
                            .recipients
                            .iter()
                            .filter(|r| r.state == store::RecipientState::Failed)
                            .count();
                        match (open, failed) {
                            (o, 0) => format!("{o} pending"),
                            (0, f) => format!("{f} failed"),
                            (o, f) => format!("{o} pending, {f} failed"),
                        }
                    }
                };
                let from = if m.envelope.sender.is_empty() {
                    "<>"
                } else {
                    &m.envelope.sender
                };
                println!(
                    "{:<13}  {:<19}  {:>9}  {:<30}  {:>5}  {state}",
                    m.id,
                    format_time(m.created_at),
                    m.size,
                    from,
                    m.recipients.len()
                );
            }
            println!("{} message(s)", all.len());
        }
        QueueCmd::Show { id } => {
            let Some(m) = store.queue_get(&id).await? else {
                bail!("no message {id} in the queue; `postrider queue list` shows what is queued");
            };
            let e = &m.envelope;
            println!("id:        {}", m.id);
            println!("arrived:   {} UTC", format_time(m.created_at));
            println!("size:      {} octets", m.size);
            println!("from:      <{}>", e.sender);
            println!(
                "client:    {} (HELO {}) on listener {}",
                e.client_ip, e.helo, e.listener
            );
            println!("tls:       {}", e.tls.as_deref().unwrap_or("none"));
            println!("auth:      {}", e.auth.as_deref().unwrap_or("none"));
            if let Some(v) = &e.envid {
                println!("envid:     {v}");
            }
            if let Some(v) = &e.ret {
                println!("ret:       {v}");
            }
            if let Some(q) = &m.quarantined {
                println!("QUARANTINED: {q}");
            }
            println!("recipients:");
            for r in &m.recipients {
                println!(
                    "  {}  → {}  [{}] attempts {}",
                    r.address,
                    r.destination,
                    r.state.as_str(),
                    r.attempts
                );
                if !r.dsn.notify.is_empty() || r.dsn.orcpt.is_some() {
                    println!(
                        "      notify {} orcpt {}",
                        r.dsn.notify.join(","),
                        r.dsn.orcpt.as_deref().unwrap_or("-")
                    );
                }
                if let Some(err) = &r.last_error {
                    println!("      last error: {err}");
                }
                if !r.state.is_final() && r.attempts > 0 {
                    println!("      next attempt: {} UTC", format_time(r.next_attempt));
                }
            }
        }
        QueueCmd::Delete { id } => {
            if !store.queue_delete(&id).await? {
                bail!("no message {id} in the queue; `postrider queue list` shows what is queued");
            }
            println!("deleted {id}");
        }
    }
    Ok(())
}
