//! `guardway config …`: validate configuration files without starting anything.

use std::path::PathBuf;
use std::process::ExitCode;

use guardway_gateway::config::{ParsedConfig, ServerTransport, load_json_file, load_toml_file};

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Parse and validate a configuration file; print a summary and "ok".
    ///
    /// TOML by default; the JSON (stdin) format when the file ends in .json or
    /// with --json. `${NAME}` references are expanded from the environment.
    Check {
        /// The configuration file.
        file: PathBuf,
        /// Read the file as the JSON (stdin) format.
        #[arg(long)]
        json: bool,
        /// Load KEY=VALUE lines into the environment first (as `serve --env`).
        #[arg(long = "env", value_name = "FILE")]
        env_file: Option<PathBuf>,
    },
}

pub fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConfigCommand::Check {
            file,
            json,
            env_file,
        } => {
            let env = super::serve::environment_with_env_file(env_file.as_deref())?;
            let is_json = json
                || file
                    .extension()
                    .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
            let parsed = if is_json {
                load_json_file(&file, &env)?
            } else {
                load_toml_file(&file, &env)?
            };
            for warning in &parsed.warnings {
                eprintln!("warning: {warning}");
            }
            out!("{}", summary(&parsed));
            outln!("ok");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One line per server and guard.
fn summary(parsed: &ParsedConfig) -> String {
    let config = &parsed.config;
    let mut out = format!("servers: {}\n", config.servers.len());
    for (id, server) in &config.servers {
        let target = match &server.transport {
            ServerTransport::Stdio { command, args, .. } => {
                let mut line = format!("stdio {command}");
                for arg in args {
                    line.push(' ');
                    line.push_str(arg);
                }
                line
            }
            ServerTransport::Http { url, .. } => format!("http {url}"),
        };
        out.push_str(&format!("  {id}: {target}"));
        if let Some(guard) = &server.guard {
            out.push_str(&format!(" (guard {guard})"));
        }
        if let Some(tools) = &server.tools {
            out.push_str(&format!(" (tools {})", tools.join(",")));
        }
        out.push('\n');
    }
    out.push_str(&format!("guards: {}\n", config.guards.len()));
    for (name, guard) in &config.guards {
        out.push_str(&format!("  {name}: {}", guard.kind));
        if let Some(path) = &guard.path {
            out.push_str(&format!(" {}", path.display()));
        }
        if guard.policy.is_some() {
            out.push_str(" (policy)");
        }
        out.push('\n');
    }
    if let Some(mode) = &config.guards_mode {
        out.push_str(&format!("guards_mode: {mode}\n"));
    }
    out
}
