//! `postrider tls check`, and the certificate list both it and `serve` build from the config.

use super::Context;
use anyhow::Result;
use clap::Subcommand;
use listener::{CertInfo, CertificateFiles, SniCertificate, TlsSources, format_time};
use settings::Config;
use std::io::Write as _;
use std::time::SystemTime;

/// Exit codes of `tls check`, as monitoring plugins use them (Nagios, Icinga, Zabbix checks).
const EXIT_WARNING: i32 = 1;
const EXIT_ERROR: i32 = 2;

#[derive(Subcommand)]
pub enum TlsCmd {
    /// List the certificates the server presents, with their expiry, and warn about problems.
    ///
    /// Shows the default certificate and those chosen by SNI, each with its names, issuer and
    /// validity, loaded and checked as the server would load them. Exit code 0: all fine;
    /// 1: a warning (a certificate expires within --warn-days, or does not cover a name it is
    /// served for); 2: an error (a certificate expired or not yet valid, a file missing,
    /// unreadable or not matching its key, or the config does not load).
    Check {
        /// Warn about certificates that expire within this many days.
        #[arg(long, default_value_t = 30, value_name = "N")]
        warn_days: u32,
    },
}

/// The certificates `serve` presents: the configured default, or the self-signed pair in the
/// data directory (made now if it does not exist), and the `[[tls.sni]]` entries.
pub fn sources(config: &Config, hostname: &str) -> Result<TlsSources> {
    let default = match configured_default(config) {
        Some(files) => files,
        None => listener::make_self_signed(&config.server.data_dir, hostname)?,
    };
    Ok(TlsSources {
        default,
        sni: sni_entries(config),
    })
}

pub fn run(ctx: Context, cmd: TlsCmd) -> Result<()> {
    let TlsCmd::Check { warn_days } = cmd;
    let config = match ctx.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit(EXIT_ERROR);
        }
    };
    let code = check(&config, warn_days);
    exit(code)
}

fn exit(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

fn configured_default(config: &Config) -> Option<CertificateFiles> {
    config
        .tls
        .files
        .as_ref()
        .map(|(certificate, private_key)| CertificateFiles {
            certificate: certificate.clone(),
            private_key: private_key.clone(),
        })
}

fn sni_entries(config: &Config) -> Vec<SniCertificate> {
    config
        .tls
        .sni
        .iter()
        .map(|s| SniCertificate {
            hostnames: s.hostnames.clone(),
            files: CertificateFiles {
                certificate: s.certificate.clone(),
                private_key: s.private_key.clone(),
            },
        })
        .collect()
}

/// Counts of what the check found.
#[derive(Default)]
struct Findings {
    certificates: usize,
    warnings: usize,
    errors: usize,
}

impl Findings {
    fn warn(&mut self, text: String) {
        println!("  WARNING: {text}");
        self.warnings += 1;
    }

    fn error(&mut self, text: String) {
        println!("  ERROR: {text}");
        self.errors += 1;
    }
}

/// Prints every served certificate and what is wrong with it; returns the exit code.
fn check(config: &Config, warn_days: u32) -> i32 {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut f = Findings::default();
    match configured_default(config) {
        Some(files) => {
            println!("default certificate: {}", files.certificate.display());
            let host = &config.server.hostname;
            let names: Vec<String> = if host.is_empty() {
                vec![]
            } else {
                vec![host.clone()]
            };
            check_one(&files, None, &names, now, warn_days, &mut f);
        }
        None => {
            let files = listener::self_signed_files(&config.server.data_dir);
            println!(
                "default certificate: {} (self-signed, made by postrider because tls.certificate is empty)",
                files.certificate.display()
            );
            if files.certificate.is_file() {
                check_one(&files, None, &[], now, warn_days, &mut f);
            } else {
                println!(
                    "  not made yet: `postrider serve` makes it in {} on its first start",
                    files
                        .certificate
                        .parent()
                        .unwrap_or(&files.certificate)
                        .display()
                );
            }
            println!(
                "  note: clients that verify certificates refuse a self-signed one; set tls.certificate and tls.private_key to a certificate from a CA (e.g. Let's Encrypt)"
            );
        }
    }
    for s in sni_entries(config) {
        println!();
        let names = if s.hostnames.is_empty() {
            "the names in the certificate".to_string()
        } else {
            s.hostnames.join(", ")
        };
        println!(
            "SNI certificate for {names}: {}",
            s.files.certificate.display()
        );
        check_one(
            &s.files,
            Some(&s.hostnames),
            &s.hostnames,
            now,
            warn_days,
            &mut f,
        );
    }
    println!();
    println!(
        "{} certificate{} checked: {} warning{}, {} error{}",
        f.certificates,
        plural(f.certificates),
        f.warnings,
        plural(f.warnings),
        f.errors,
        plural(f.errors)
    );
    if f.errors > 0 {
        EXIT_ERROR
    } else if f.warnings > 0 {
        EXIT_WARNING
    } else {
        0
    }
}

/// Loads one pair as the server would and prints its facts and problems. `sni` is `Some` for
/// an SNI entry (its configured names, maybe empty); `must_cover` are names it is served for.
fn check_one(
    files: &CertificateFiles,
    sni: Option<&Vec<String>>,
    must_cover: &[String],
    now: i64,
    warn_days: u32,
    f: &mut Findings,
) {
    f.certificates += 1;
    let loaded = match listener::load_certificate(files) {
        Ok(l) => l,
        Err(e) => {
            f.error(format!(
                "{e}. The server refuses to start with this file, and a running server keeps the certificate it loaded before"
            ));
            return;
        }
    };
    let info = &loaded.info;
    print_facts(info, files, loaded.chain_len, now);
    if sni.is_some_and(|n| n.is_empty()) && info.dns_names.is_empty() {
        f.error(
            listener::TlsError::NoNames {
                path: files.certificate.clone(),
            }
            .to_string(),
        );
    }
    for name in must_cover {
        if !info.covers(name) {
            f.warn(format!(
                "the certificate does not cover {name}, which it is served for: clients that check names refuse it; get a certificate that lists {name}"
            ));
        }
    }
    let days = info.days_left(now);
    if now < info.not_before {
        f.error(format!(
            "not valid before {}: check the system clock, or wait",
            format_time(info.not_before)
        ));
    } else if days < 0 {
        f.error(format!(
            "EXPIRED on {}: clients that verify certificates refuse it; renew it and replace the files (the server picks them up without restart)",
            format_time(info.not_after)
        ));
    } else if days < i64::from(warn_days) {
        f.warn(format!(
            "expires in {days} day{} ({}), within --warn-days {warn_days}: renew it and replace the files (the server picks them up without restart)",
            plural(days as usize),
            format_time(info.not_after)
        ));
    }
}

fn print_facts(info: &CertInfo, files: &CertificateFiles, chain_len: usize, now: i64) {
    let names = if info.dns_names.is_empty() {
        "(no DNS names)".to_string()
    } else {
        info.dns_names.join(", ")
    };
    println!("  private key: {}", files.private_key.display());
    println!("  names:       {names}");
    println!("  subject:     {}", info.subject);
    println!(
        "  issuer:      {}{}",
        info.issuer,
        if info.self_signed() {
            " (self-signed)"
        } else {
            ""
        }
    );
    println!("  not before:  {}", format_time(info.not_before));
    println!(
        "  not after:   {} ({} days left)",
        format_time(info.not_after),
        info.days_left(now).max(0)
    );
    println!(
        "  chain:       {chain_len} certificate{} in the file",
        plural(chain_len)
    );
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
