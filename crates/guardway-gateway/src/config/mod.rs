//! Gateway configuration: the model every part of the gateway reads, parsing
//! of TOML files and stdin JSON into it (with `${NAME}` expansion and strict
//! validation), resolution of the `serve` command line, the docker command
//! line of stdio servers, the start-up document, and the jq expressions of
//! `tool_response_filters` (compiled when the configuration is checked).

mod docker;
mod env;
mod error;
mod jq;
mod model;
mod options;
mod parse;
mod policy;
mod startup;

pub use docker::{DockerServer, resolve_launch_args};
pub use env::{EnvFileError, Environment, expand_str, parse_duration, parse_env_file};
pub use error::{ConfigError, ConfigIssue};
pub use jq::{JqCompileError, JqFilter, JqRunError};
pub use model::*;
pub use options::{
    DEFAULT_LISTEN, DEFAULT_LOG_DIR, DEFAULT_SESSION_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT,
    OptionsError, ServeFlags, VALIDATE_ENV_VARIABLES, default_wasm_cache_dir, parse_listen,
    parse_sink_server_ids, resolve_serve_options, validate_environment,
};
pub use parse::{load_json_file, load_toml_file, parse_json, parse_toml};
pub use policy::{PolicyKind, validate_config_policy};
pub use startup::startup_document;
