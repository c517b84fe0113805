//! `postrider`: the one binary. `serve` runs the mail server; the other subcommands administer
//! the same data directory, also while the server runs.
//!
//! # Security
//! Reads passwords from stdin (never from arguments, which other users can see in `ps`), and
//! prints generated passwords once.
#![forbid(unsafe_code)]

mod cli;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "postrider",
    version,
    about = "Postrider mail server",
    propagate_version = true
)]
struct Cli {
    /// Configuration file (TOML). Without it, the built-in defaults are used.
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "POSTRIDER_CONFIG",
        value_name = "FILE"
    )]
    config: Option<PathBuf>,
    /// Data directory; overrides server.data_dir from the config.
    #[arg(long, global = true, env = "POSTRIDER_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the mail server.
    Serve {
        /// Log as JSON lines instead of text.
        #[arg(long)]
        log_json: bool,
    },
    /// Check a configuration file without starting anything.
    CheckConfig,
    /// Configuration helpers.
    #[command(subcommand)]
    Config(cli::config::ConfigCmd),
    /// Local domains: mail for these is delivered here.
    #[command(subcommand)]
    Domain(cli::directory::DomainCmd),
    /// Accounts: mailboxes that can log in.
    #[command(subcommand)]
    Account(cli::directory::AccountCmd),
    /// DKIM signing keys: make one and print its DNS record, list them.
    #[command(subcommand)]
    Dkim(cli::dkim::DkimCmd),
    /// Bans after repeated failed logins: list, remove.
    #[command(subcommand)]
    Ban(cli::ban::BanCmd),
    /// Credentials: the secrets an account logs in with (add, list, revoke, rotate).
    #[command(subcommand)]
    Credential(cli::credential::CredentialCmd),
    /// Aliases: addresses that deliver to other addresses.
    #[command(subcommand)]
    Alias(cli::directory::AliasCmd),
    /// The mail queue.
    #[command(subcommand)]
    Queue(cli::queue::QueueCmd),
    /// Stored mail.
    #[command(subcommand)]
    Mailbox(cli::mailbox::MailboxCmd),
    /// TLS certificates: check what the server presents and when it expires.
    #[command(subcommand)]
    Tls(cli::tls::TlsCmd),
}

fn main() -> ExitCode {
    // Output piped into `head` or `grep -q` ends when the reader goes: Rust ignores SIGPIPE, so
    // printing fails (and would panic). End quietly instead, with the status a SIGPIPE death
    // would give (128 + 13), as other command-line tools do.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to std") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info)
    }));
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let ctx = cli::Context {
            config_path: cli.config,
            data_dir: cli.data_dir,
        };
        match cli.command {
            Command::Serve { log_json } => cli::serve::run(ctx, log_json).await,
            Command::CheckConfig => cli::config::check(ctx),
            Command::Config(c) => cli::config::run(c),
            Command::Domain(c) => cli::directory::domain(ctx, c).await,
            Command::Account(c) => cli::directory::account(ctx, c).await,
            Command::Credential(c) => cli::credential::run(ctx, c).await,
            Command::Ban(c) => cli::ban::run(ctx, c).await,
            Command::Dkim(c) => cli::dkim::run(ctx, c).await,
            Command::Alias(c) => cli::directory::alias(ctx, c).await,
            Command::Queue(c) => cli::queue::run(ctx, c).await,
            Command::Mailbox(c) => cli::mailbox::run(ctx, c).await,
            Command::Tls(c) => cli::tls::run(ctx, c),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
