//! `credential` subcommands: the secrets an account logs in with, each with a label, creation
//! time, optional expiry and last use; rotation with a grace period.

use super::{Context, format_time, now_ms, parse_address};
use anyhow::{Result, bail};
use clap::Subcommand;
use store::StoreError;

#[derive(Subcommand)]
pub enum CredentialCmd {
    /// Add a credential to an account. Without --password-stdin a secret is generated and
    /// printed once.
    Add {
        address: String,
        /// A name for it, e.g. the application that uses it ("billing-app").
        label: String,
        /// It stops working after this long ("90d", "12h"); default: never.
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
        /// Read the secret from standard input (first line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List an account's credentials: label, state, created, expires, last use and from where.
    List { address: String },
    /// Revoke every credential of an account with this label, at once.
    Revoke { address: String, label: String },
    /// Lift the suspension unusual activity put on a credential (its held mail stays held:
    /// `postrider queue list --state held`, then `queue release` or `queue delete`).
    Resume { address: String, label: String },
    /// Issue a new secret for a label (printed once); the old one keeps working for the grace
    /// period, then stops.
    Rotate {
        address: String,
        label: String,
        /// How long the old secret keeps working ("7d", "0s" to stop it at once).
        #[arg(long, value_name = "DURATION", default_value = "7d")]
        grace: String,
    },
}

fn duration_ms(option: &str, text: &str) -> Result<i64> {
    match settings::parse_duration(text) {
        Ok(d) => Ok(d.as_millis().min(i64::MAX as u128) as i64),
        Err(e) => bail!("--{option} {text:?}: {e}; write e.g. \"7d\", \"12h\" or \"30m\""),
    }
}

fn check_label(label: &str) -> Result<()> {
    if label.is_empty()
        || label.len() > 64
        || !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        bail!(
            "{label:?} is not a usable label; use up to 64 letters, digits, '-', '_' or '.', e.g. \"billing-app\""
        );
    }
    Ok(())
}

pub async fn run(ctx: Context, cmd: CredentialCmd) -> Result<()> {
    let store = ctx.open_store().await?;
    let no_account =
        |a: &str| anyhow::anyhow!("no account {a}; `postrider account list` shows the accounts");
    match cmd {
        CredentialCmd::Add {
            address,
            label,
            expires,
            password_stdin,
        } => {
            let a = parse_address(&address)?;
            check_label(&label)?;
            let lifetime = expires.map(|e| duration_ms("expires", &e)).transpose()?;
            let now = now_ms();
            if store
                .credentials(&a)
                .await?
                .iter()
                .any(|c| c.label == label && c.is_active(now))
            {
                bail!(
                    "{a} already has an active credential \"{label}\"; give the new one another label, or replace it with `postrider credential rotate {a} {label}`"
                );
            }
            let (secret, generated) = super::directory::obtain_password(password_stdin)?;
            let hash = accounts::hash_password(&secret)?;
            // The lifetime counts from when the credential exists.
            let expires_at = lifetime.map(|d| now_ms().saturating_add(d));
            match store.add_credential(&a, &label, &hash, expires_at).await {
                Ok(_) => {}
                Err(StoreError::NotFound(_)) => return Err(no_account(&a)),
                Err(e) => return Err(e.into()),
            }
            println!("added credential \"{label}\" to {a}");
            if let Some(e) = expires_at {
                println!("expires: {} UTC", format_time(e));
            }
            if generated {
                println!("secret: {secret}");
                println!("(shown once; log in as {a} with it)");
            }
        }
        CredentialCmd::List { address } => {
            let a = parse_address(&address)?;
            if store.get_account(&a).await?.is_none() {
                return Err(no_account(&a));
            }
            let now = now_ms();
            println!(
                "{:<20} {:<9} {:<20} {:<20} LAST USED",
                "LABEL", "STATE", "CREATED (UTC)", "EXPIRES (UTC)"
            );
            for c in store.credentials(&a).await? {
                let state = if c.revoked_at.is_some() {
                    "revoked"
                } else if c.suspended_at.is_some() {
                    "suspended"
                } else if !c.is_active(now) {
                    "expired"
                } else {
                    "active"
                };
                let expires = c.expires_at.map_or("never".to_string(), format_time);
                let used = match (c.last_used_at, &c.last_used_ip) {
                    (Some(t), Some(ip)) => format!("{} from {ip}", format_time(t)),
                    (Some(t), None) => format_time(t),
                    _ => "never".to_string(),
                };
                println!(
                    "{:<20} {:<9} {:<20} {:<20} {used}",
                    c.label,
                    state,
                    format_time(c.created_at),
                    expires
                );
            }
        }
        CredentialCmd::Resume { address, label } => {
            let a = parse_address(&address)?;
            if !store
                .credentials(&a)
                .await?
                .iter()
                .any(|c| c.label == label && c.suspended_at.is_some())
            {
                bail!(
                    "{a} has no suspended credential \"{label}\"; `postrider credential list {a}` shows them"
                );
            }
            store.suspend_credential(&a, &label, None).await?;
            println!("resumed credential \"{label}\" of {a}: it works again");
            println!(
                "its held mail stays held: `postrider queue list --state held`, then `queue release ID` or `queue delete ID`"
            );
        }
        CredentialCmd::Revoke { address, label } => {
            let a = parse_address(&address)?;
            if !store.revoke_credential(&a, &label).await? {
                bail!(
                    "{a} has no credential \"{label}\" to revoke; `postrider credential list {a}` shows them"
                );
            }
            println!("revoked credential \"{label}\" of {a}: it no longer works");
        }
        CredentialCmd::Rotate {
            address,
            label,
            grace,
        } => {
            let a = parse_address(&address)?;
            let until = now_ms().saturating_add(duration_ms("grace", &grace)?);
            let secret = accounts::generate_password();
            let hash = accounts::hash_password(&secret)?;
            match store.rotate_credential(&a, &label, &hash, until).await {
                Ok(_) => {}
                Err(StoreError::NotFound(_)) => bail!(
                    "{a} has no active credential \"{label}\" to rotate; `postrider credential list {a}` shows them, `postrider credential add {a} {label}` makes one"
                ),
                Err(e) => return Err(e.into()),
            }
            println!("rotated credential \"{label}\" of {a}");
            println!("new secret: {secret}");
            println!("(shown once)");
            println!(
                "the old secret keeps working until {} UTC, then stops",
                format_time(until)
            );
        }
    }
    Ok(())
}
