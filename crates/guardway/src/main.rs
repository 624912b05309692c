//! The `guardway` binary: parses the command line and calls the libraries.
//!
//! With no subcommand it serves, accepting the reference gateway's flags at the
//! root (`guardway --config x.toml` is `guardway serve --config x.toml`).

#[macro_use]
mod output;
mod cmd;
mod logging;
mod memory;

use clap::{Parser, Subcommand};

/// guardway: an MCP gateway that runs WebAssembly DIFC guards in front of MCP servers.
#[derive(Debug, Parser)]
#[command(
    name = "guardway",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Flags of `guardway serve`, also accepted with no subcommand.
    #[command(flatten)]
    serve: cmd::serve::ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (the default when no subcommand is given).
    Serve(cmd::serve::ServeArgs),
    /// Inspect, call and benchmark WebAssembly guards.
    #[command(subcommand)]
    Guard(cmd::guard::GuardCommand),
    /// Inspect and manage the guard compilation cache.
    #[command(subcommand)]
    Cache(cmd::cache::CacheCommand),
    /// Validate configuration files.
    #[command(subcommand)]
    Config(cmd::config::ConfigCommand),
    /// Run as a GitHub API filtering proxy: REST and GraphQL requests are
    /// labelled by the guard and filtered by the DIFC pipeline.
    Proxy(Box<cmd::proxy::ProxyArgs>),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => cmd::serve::run(cli.serve),
        Some(Command::Serve(args)) => cmd::serve::run(args),
        Some(Command::Guard(c)) => cmd::guard::run(c),
        Some(Command::Cache(c)) => cmd::cache::run(c),
        Some(Command::Config(c)) => cmd::config::run(c),
        Some(Command::Proxy(args)) => cmd::proxy::run(*args),
    };
    // Log lines are written by a thread of their own: out before exiting.
    guardway_gateway::logfiles::flush_global_logging();
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
