//! `domain`, `account` and `alias` subcommands.

use super::{Context, parse_address, parse_domain};
use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use std::io::Read;
use store::StoreError;

#[derive(Subcommand)]
pub enum DomainCmd {
    /// Add a local domain.
    Add {
        domain: String,
        /// Deliver mail for unknown addresses of this domain to this address.
        #[arg(long, value_name = "ADDRESS")]
        catch_all: Option<String>,
    },
    /// List local domains.
    List,
    /// Remove a local domain and its accounts (stored mail is kept).
    Remove { domain: String },
    /// Set or (with --off) clear a domain's catch-all address.
    CatchAll {
        domain: String,
        #[arg(required_unless_present = "off")]
        address: Option<String>,
        #[arg(long)]
        off: bool,
    },
}

#[derive(Subcommand)]
pub enum AccountCmd {
    /// Add an account. Without --password-stdin a password is generated and printed once.
    Add {
        address: String,
        /// Read the password from standard input (first line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts.
    List,
    /// Remove an account (its stored mail is kept).
    Remove { address: String },
    /// Change an account's password. Without --password-stdin a new one is generated.
    Passwd {
        address: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
pub enum AliasCmd {
    /// Deliver mail for ALIAS to TARGET (repeat for several targets).
    Add { alias: String, target: String },
    /// Remove one alias → target pair.
    Remove { alias: String, target: String },
    /// List aliases.
    List,
}

fn not_local(domain: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{domain} is not a local domain; add it first with `postrider domain add {domain}`"
    )
}

pub async fn domain(ctx: Context, cmd: DomainCmd) -> Result<()> {
    let store = ctx.open_store().await?;
    match cmd {
        DomainCmd::Add { domain, catch_all } => {
            let d = parse_domain(&domain)?;
            let catch_all = catch_all.map(|a| parse_address(&a)).transpose()?;
            match store.add_domain(&d, catch_all.as_deref()).await {
                Ok(()) => println!("added domain {d}"),
                Err(StoreError::AlreadyExists(_)) => bail!("domain {d} already exists"),
                Err(e) => return Err(e.into()),
            }
        }
        DomainCmd::List => {
            for d in store.list_domains().await? {
                match d.catch_all {
                    Some(c) => println!("{}\tcatch-all {c}", d.name),
                    None => println!("{}", d.name),
                }
            }
        }
        DomainCmd::Remove { domain } => {
            let d = parse_domain(&domain)?;
            if !store.remove_domain(&d).await? {
                bail!(
                    "{} ; `postrider domain list` shows the local domains",
                    not_local(&d)
                );
            }
            println!("removed domain {d}");
        }
        DomainCmd::CatchAll {
            domain,
            address,
            off,
        } => {
            let d = parse_domain(&domain)?;
            let target = if off {
                None
            } else {
                address.map(|a| parse_address(&a)).transpose()?
            };
            match store.set_catch_all(&d, target.as_deref()).await {
                Ok(()) => println!("{d}: catch-all {}", target.as_deref().unwrap_or("off")),
                Err(StoreError::NotFound(_)) => return Err(not_local(&d)),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// The password from stdin (first line, without its line end), or a generated one.
pub(crate) fn obtain_password(from_stdin: bool) -> Result<(String, bool)> {
    if !from_stdin {
        return Ok((accounts::generate_password(), true));
    }
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the password from standard input")?;
    let pw = input.lines().next().unwrap_or("").to_string();
    if pw.is_empty() {
        bail!(
            "no password on standard input; pipe it in, e.g. `echo 'secret' | postrider account add ... --password-stdin`"
        );
    }
    Ok((pw, false))
}

pub async fn account(ctx: Context, cmd: AccountCmd) -> Result<()> {
    let store = ctx.open_store().await?;
    match cmd {
        AccountCmd::Add {
            address,
            password_stdin,
        } => {
            let a = parse_address(&address)?;
            let domain = a
                .rsplit_once('@')
                .map(|(_, d)| d.to_string())
                .unwrap_or_default();
            if store.get_domain(&domain).await?.is_none() {
                return Err(not_local(&domain));
            }
            let (pw, generated) = obtain_password(password_stdin)?;
            let hash = accounts::hash_password(&pw)?;
            match store.add_account(&a, &hash).await {
                Ok(()) => {}
                Err(StoreError::AlreadyExists(_)) => {
                    bail!(
                        "account {a} already exists; change its password with `postrider account passwd {a}`"
                    )
                }
                Err(e) => return Err(e.into()),
            }
            println!("added account {a}");
            if generated {
                println!("password: {pw}");
                println!("(shown once; change it with `postrider account passwd {a}`)");
            }
        }
        AccountCmd::List => {
            for a in store.list_accounts().await? {
                println!(
                    "{}\tcreated {}",
                    a.address,
                    super::format_time(a.created_at)
                );
            }
        }
        AccountCmd::Remove { address } => {
            let a = parse_address(&address)?;
            if !store.remove_account(&a).await? {
                bail!("no account {a}; `postrider account list` shows the accounts");
            }
            println!("removed account {a} (its stored mail is kept)");
        }
        AccountCmd::Passwd {
            address,
            password_stdin,
        } => {
            let a = parse_address(&address)?;
            if store.get_account(&a).await?.is_none() {
                bail!("no account {a}; add it with `postrider account add {a}`");
            }
            let (pw, generated) = obtain_password(password_stdin)?;
            let hash = accounts::hash_password(&pw)?;
            store.set_password(&a, &hash).await?;
            println!("changed the password of {a}");
            if generated {
                println!("password: {pw}");
            }
        }
    }
    Ok(())
}

pub async fn alias(ctx: Context, cmd: AliasCmd) -> Result<()> {
    let store = ctx.open_store().await?;
    match cmd {
        AliasCmd::Add { alias, target } => {
            let a = parse_address(&alias)?;
            let t = parse_address(&target)?;
            let domain = a
                .rsplit_once('@')
                .map(|(_, d)| d.to_string())
                .unwrap_or_default();
            if store.get_domain(&domain).await?.is_none() {
                return Err(not_local(&domain));
            }
            match store.add_alias(&a, &t).await {
                Ok(()) => println!("added alias {a} → {t}"),
                Err(StoreError::AlreadyExists(_)) => bail!("alias {a} → {t} already exists"),
                Err(e) => return Err(e.into()),
            }
        }
        AliasCmd::Remove { alias, target } => {
            let a = parse_address(&alias)?;
            let t = parse_address(&target)?;
            if !store.remove_alias(&a, &t).await? {
                bail!("no alias {a} → {t}; `postrider alias list` shows the aliases");
            }
            println!("removed alias {a} → {t}");
        }
        AliasCmd::List => {
            for a in store.list_aliases().await? {
                println!("{}\t{}", a.alias, a.target);
            }
        }
    }
    Ok(())
}
