//! `guardway guard bench`: measures a guard end to end.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `guardway guard bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The guard's `.wasm` file.
    file: PathBuf,
}

pub fn run(_args: BenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("guard bench is not available yet")
}
