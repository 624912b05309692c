//! `guardway guard …`.

use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum GuardCommand {}

pub fn run(command: GuardCommand) -> anyhow::Result<ExitCode> {
    match command {}
}
