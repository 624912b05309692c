//! The validated configuration model. Parsers (TOML, JSON) produce it; the
//! runtime only ever reads it. Durations are already resolved (defaults and
//! environment overrides applied) by the time a `GatewayConfig` exists.

use std::collections::BTreeMap;
use std::time::Duration;

/// The whole, validated configuration of one gateway process.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    pub gateway: GatewaySettings,
    /// Backends by server id, in id order.
    pub servers: BTreeMap<String, ServerConfig>,
    /// Named guards (`[guards.<name>]` / `"guards"`).
    pub guards: BTreeMap<String, GuardConfig>,
    /// Gateway-wide enforcement mode from the config (`guards_mode`), if set.
    pub guards_mode: Option<String>,
    /// Launch backends one after the other instead of in parallel.
    pub sequential_launch: bool,
}

/// `[gateway]` / `"gateway"`.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewaySettings {
    /// Informational port (never the listen address).
    pub port: Option<u16>,
    /// The client key (`agentId`, or its deprecated alias `apiKey`). `None`
    /// means one is generated at start-up and printed in the stdout document.
    pub api_key: Option<String>,
    pub domain: Option<String>,
    /// Per stdio launch.
    pub startup_timeout: Duration,
    /// Per `tools/call` (servers may override).
    pub tool_timeout: Duration,
    /// Between pings to HTTP backends; `None` = off.
    pub keepalive_interval: Option<Duration>,
    pub payload_dir: String,
    pub payload_path_prefix: Option<String>,
    pub payload_size_threshold: u64,
    pub trusted_bots: Vec<String>,
    pub force_public_repos: bool,
    pub sink_visibility_exempt_servers: Vec<String>,
}

/// One backend MCP server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub transport: ServerTransport,
    /// Allow-list of tool names; `None` = all tools.
    pub tools: Option<Vec<String>>,
    /// Overrides the gateway's tool timeout when set.
    pub tool_timeout: Option<Duration>,
    /// Per HTTP transport attempt.
    pub connect_timeout: Duration,
    /// Name of an entry of `GatewayConfig::guards`.
    pub guard: Option<String>,
    /// The server's guard policy (`{"allow-only": …}` or `{"write-sink": …}`).
    pub guard_policies: Option<serde_json::Value>,
    /// Tool name → jq expression applied to results.
    pub tool_response_filters: BTreeMap<String, String>,
    /// Consecutive rate-limited results that open the circuit breaker.
    pub rate_limit_threshold: u32,
    /// How long an open circuit stays open without a reset time.
    pub rate_limit_cooldown: Duration,
    pub registry: Option<String>,
}

/// How to reach a backend.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerTransport {
    /// A child process speaking MCP over stdin/stdout. The docker form of the
    /// reference configuration is turned into its `docker run` command line.
    Stdio {
        command: String,
        args: Vec<String>,
        /// Extra environment over the gateway's own (sorted by key).
        env: BTreeMap<String, String>,
    },
    /// A streamable-HTTP MCP endpoint.
    Http {
        url: String,
        headers: BTreeMap<String, String>,
    },
}

/// `[guards.<name>]` / `"guards"`.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardConfig {
    /// `wasm`, `noop`, or a built-in type name.
    pub kind: String,
    /// Path of the `.wasm` file (for `wasm`), relative to the working directory.
    pub path: Option<std::path::PathBuf>,
    /// Default policy for servers using this guard.
    pub policy: Option<serde_json::Value>,
}

/// How agents reach backends over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RoutingMode {
    /// `/mcp/{server}` reaches one backend.
    #[default]
    Routed,
    /// `/mcp` lists every backend's tools as `<server>___<tool>`.
    Unified,
}

/// Everything `serve` needs: the configuration plus the resolved command-line
/// and environment settings (flag > environment > config > default).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub config: GatewayConfig,
    /// Listen address (`--listen`, default `127.0.0.1:3000`).
    pub listen: std::net::SocketAddr,
    pub mode: RoutingMode,
    /// Serve one agent over stdin/stdout instead of HTTP (`--stdio`).
    pub stdio: bool,
    pub log_dir: std::path::PathBuf,
    /// Deadline for in-flight calls at shutdown.
    pub shutdown_timeout: Duration,
    /// Idle MCP sessions expire after this long.
    pub session_timeout: Duration,
    /// Gateway-wide enforcement mode (`strict` when unset).
    pub guards_mode: Option<String>,
    /// Guard compilation cache directory; `None` = memory only.
    pub wasm_cache_dir: Option<std::path::PathBuf>,
    /// Disable the guard compilation cache entirely.
    pub no_wasm_cache: bool,
    /// Bound of the compilation cache, in bytes (`None` = default).
    pub wasm_cache_max_bytes: Option<u64>,
    /// Directory searched for `<dir>/<server-id>/*.wasm` guards.
    pub wasm_guards_dir: Option<std::path::PathBuf>,
    /// A configured guard that fails to load aborts start-up.
    pub require_guards: bool,
}
