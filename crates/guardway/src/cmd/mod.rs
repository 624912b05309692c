//! One module per subcommand; each owns its flags and its `run`.

pub mod cache;
pub mod config;
pub mod guard;
pub mod proxy;
pub mod serve;
