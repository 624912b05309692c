//! Logging set-up for the short-lived commands (`guard`, `cache`, `config`):
//! human-readable lines on stderr, filtered by `GUARDWAY_LOG` (or `RUST_LOG`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs a stderr logger whose default level is `default_level` unless
/// `GUARDWAY_LOG` or `RUST_LOG` says otherwise. Calling it twice is harmless.
pub fn init_stderr(default_level: &str) {
    let filter = std::env::var("GUARDWAY_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
