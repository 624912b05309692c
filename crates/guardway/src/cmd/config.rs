//! `guardway config …`.

use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {}

pub fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    match command {}
}
