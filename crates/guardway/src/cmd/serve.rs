//! `guardway serve`: run the gateway.

use std::process::ExitCode;

/// Flags of `guardway serve` (also accepted at the root command).
#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(short = 'c', long)]
    pub config: Option<std::path::PathBuf>,
}

pub fn run(_args: ServeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("serve is not available yet")
}
