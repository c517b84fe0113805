//! `dkim` subcommands: signing keys per domain and the DNS records that publish them.

use super::{Context, format_time, parse_domain};
use anyhow::{Result, bail};
use clap::Subcommand;
use sender_auth::dkim::{self, Algorithm};
use store::{DkimKeyRecord, StoreError};

#[derive(Subcommand)]
pub enum DkimCmd {
    /// Make a signing key for a local domain, store it, and print the DNS TXT record to publish.
    Keygen {
        domain: String,
        /// The selector (the DNS name is SELECTOR._domainkey.DOMAIN); default: "pr" and the
        /// year and month, e.g. "pr202611".
        #[arg(long)]
        selector: Option<String>,
        /// rsa (2048 bits, the default, verified everywhere) or ed25519 (RFC 8463).
        #[arg(long, default_value = "rsa")]
        algorithm: String,
    },
    /// List the keys of a domain (or of every domain) with their DNS records.
    List { domain: Option<String> },
}

fn check_selector(s: &str) -> Result<()> {
    // A selector is one or more DNS labels (RFC 6376 §3.1).
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if !ok {
        bail!("{s:?} is not a usable selector; use letters, digits and '-', e.g. \"pr202611\"");
    }
    Ok(())
}

fn print_record(k: &DkimKeyRecord) {
    let algorithm = Algorithm::parse(&k.algorithm).unwrap_or(Algorithm::Rsa);
    let value = dkim::txt_record(algorithm, &k.public_key);
    println!("{}", dkim::zone_line(&k.selector, &k.domain, &value));
}

pub async fn run(ctx: Context, cmd: DkimCmd) -> Result<()> {
    let store = ctx.open_store().await?;
    match cmd {
        DkimCmd::Keygen {
            domain,
            selector,
            algorithm,
        } => {
            let d = parse_domain(&domain)?;
            if store.get_domain(&d).await?.is_none() {
                bail!("{d} is not a local domain; add it first with `postrider domain add {d}`");
            }
            let Some(alg) = Algorithm::parse(&algorithm) else {
                bail!("{algorithm:?} is not a DKIM algorithm; use \"rsa\" or \"ed25519\"");
            };
            let selector = selector.unwrap_or_else(|| {
                let month = format_time(super::now_ms());
                // "2026-11-28 ..." → "pr202611"
                format!("pr{}{}", &month[0..4], &month[5..7])
            });
            check_selector(&selector)?;
            let pair = dkim::generate(alg)?;
            let record = DkimKeyRecord {
                domain: d.clone(),
                selector: selector.clone(),
                algorithm: alg.as_str().to_string(),
                private_key: pair.private_der,
                public_key: pair.public,
                created_at: 0,
            };
            match store.add_dkim_key(record.clone()).await {
                Ok(()) => {}
                Err(StoreError::AlreadyExists(_)) => bail!(
                    "{d} already has a key with selector {selector}; choose another with --selector"
                ),
                Err(e) => return Err(e.into()),
            }
            println!(
                "made a {} key for {d} with selector {selector}",
                if alg == Algorithm::Rsa {
                    "2048-bit RSA"
                } else {
                    "Ed25519"
                }
            );
            println!("publish this record in the DNS zone of {d}:");
            println!();
            print_record(&record);
        }
        DkimCmd::List { domain } => {
            let d = domain.map(|d| parse_domain(&d)).transpose()?;
            let keys = store.dkim_keys(d.as_deref()).await?;
            if keys.is_empty() {
                println!(
                    "no DKIM keys; make one with `postrider dkim keygen {}`",
                    d.as_deref().unwrap_or("DOMAIN")
                );
            }
            for k in keys {
                println!(
                    "{}  selector {}  {}  created {} UTC",
                    k.domain,
                    k.selector,
                    k.algorithm,
                    format_time(k.created_at)
                );
                print_record(&k);
            }
        }
    }
    Ok(())
}
