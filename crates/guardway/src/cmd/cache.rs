//! `guardway cache …`.

use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum CacheCommand {}

pub fn run(command: CacheCommand) -> anyhow::Result<ExitCode> {
    match command {}
}
