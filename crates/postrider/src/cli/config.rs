//! `check-config` and `config defaults`.

use super::Context;
use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ConfigCmd {
    /// Print the complete default configuration, every key commented.
    Defaults,
}

pub fn run(cmd: ConfigCmd) -> Result<()> {
    match cmd {
        ConfigCmd::Defaults => {
            print!("{}", settings::DEFAULTS_TOML);
            Ok(())
        }
    }
}

pub fn check(ctx: Context) -> Result<()> {
    let config = ctx.config()?;
    let source = ctx
        .config_path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "built-in defaults".into());
    println!("{source}: ok");
    for l in &config.listeners {
        println!(
            "  listener {:<16} {:<22} {}",
            l.name,
            l.address,
            l.role.as_str()
        );
    }
    println!("  data directory {}", config.server.data_dir.display());
    Ok(())
}
