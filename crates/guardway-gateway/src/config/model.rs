//! The validated configuration model. Parsers (TOML, JSON) produce it; the
//! runtime only ever reads it. Durations are already resolved (defaults and
//! environment overrides applied) by the time a `GatewayConfig` exists.
//!
//! Every type here is plain data: `Clone` copies the whole tree (cheap for a
//! configuration, never done per request), and all of it is `Send + Sync`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::jq::JqFilter;

/// Default per-stdio-launch timeout (`startupTimeout`).
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Default per-`tools/call` timeout (`toolTimeout`).
pub const DEFAULT_TOOL_TIMEOUT: Duration = Duration::from_secs(60);
/// Default interval between pings to HTTP backends (`keepaliveInterval`).
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1500);
/// Default per-transport-attempt timeout for HTTP backends (`connectTimeout`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default directory of spilled payloads (`payloadDir`).
pub const DEFAULT_PAYLOAD_DIR: &str = "/tmp/jq-payloads";
/// Default size above which a result is spilled to disk (`payloadSizeThreshold`).
pub const DEFAULT_PAYLOAD_SIZE_THRESHOLD: u64 = 524_288;
/// Default consecutive rate-limited results that open a circuit.
pub const DEFAULT_RATE_LIMIT_THRESHOLD: u32 = 3;
/// Default time an open circuit stays open without a reset time.
pub const DEFAULT_RATE_LIMIT_COOLDOWN: Duration = Duration::from_secs(60);
/// Default OpenTelemetry service name.
pub const DEFAULT_SERVICE_NAME: &str = "mcp-gateway";

/// The whole, validated configuration of one gateway process.
#[derive(Debug, Clone, PartialEq, Default)]
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
    /// OTLP tracing (`opentelemetry`, or the TOML-only legacy `tracing`).
    pub opentelemetry: Option<TracingConfig>,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            port: None,
            api_key: None,
            domain: None,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            tool_timeout: DEFAULT_TOOL_TIMEOUT,
            keepalive_interval: Some(DEFAULT_KEEPALIVE_INTERVAL),
            payload_dir: DEFAULT_PAYLOAD_DIR.to_owned(),
            payload_path_prefix: None,
            payload_size_threshold: DEFAULT_PAYLOAD_SIZE_THRESHOLD,
            trusted_bots: Vec::new(),
            force_public_repos: true,
            sink_visibility_exempt_servers: Vec::new(),
            opentelemetry: None,
        }
    }
}

/// `[gateway.opentelemetry]` / `"opentelemetry"` (or legacy `[gateway.tracing]`).
#[derive(Debug, Clone, PartialEq)]
pub struct TracingConfig {
    /// OTLP/HTTP endpoint; empty only for a disabled legacy `tracing` table.
    pub endpoint: String,
    /// Extra export headers (`k=v,k=v` in TOML).
    pub headers: BTreeMap<String, String>,
    /// Parent trace id (32 hex digits, not all zero).
    pub trace_id: Option<String>,
    /// Parent span id (16 hex digits).
    pub span_id: Option<String>,
    pub service_name: String,
    pub sample_rate: Option<f64>,
    /// Path appended to the endpoint (default `/v1/traces`).
    pub signal_path: String,
}

/// One backend MCP server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub transport: ServerTransport,
    /// Allow-list of tool names; `None` = all tools (also when it holds `*`).
    pub tools: Option<Vec<String>>,
    /// Overrides the gateway's tool timeout when set.
    pub tool_timeout: Option<Duration>,
    /// Per HTTP transport attempt.
    pub connect_timeout: Duration,
    /// Name of an entry of `GatewayConfig::guards` (or a built-in guard type).
    pub guard: Option<String>,
    /// The server's guard policy (`{"allow-only": …}` or `{"write-sink": …}`).
    pub guard_policies: Option<serde_json::Value>,
    /// Tool name → jq expression applied to results, compiled at load.
    pub tool_response_filters: BTreeMap<String, JqFilter>,
    /// Consecutive rate-limited results that open the circuit breaker.
    pub rate_limit_threshold: u32,
    /// How long an open circuit stays open without a reset time.
    pub rate_limit_cooldown: Duration,
    pub registry: Option<String>,
    /// Authentication towards an HTTP backend.
    pub auth: Option<ServerAuth>,
    /// TOML `working_directory` (accepted, no effect; kept for diagnostics).
    pub working_directory: Option<String>,
}

/// Whether `tool` passes a server's allow-list (its `tools`; `None` or `*`
/// = all).
pub fn tool_allowed(allow_list: Option<&[String]>, tool: &str) -> bool {
    match allow_list {
        None => true,
        Some(list) => list.iter().any(|t| t == "*" || t == tool),
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            transport: ServerTransport::Stdio {
                command: String::new(),
                args: Vec::new(),
                env: BTreeMap::new(),
            },
            tools: None,
            tool_timeout: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            guard: None,
            guard_policies: None,
            tool_response_filters: BTreeMap::new(),
            rate_limit_threshold: DEFAULT_RATE_LIMIT_THRESHOLD,
            rate_limit_cooldown: DEFAULT_RATE_LIMIT_COOLDOWN,
            registry: None,
            auth: None,
            working_directory: None,
        }
    }
}

/// How to reach a backend.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerTransport {
    /// A child process speaking MCP over stdin/stdout. The docker form of the
    /// reference configuration is turned into its `docker run` command line;
    /// `-e NAME` arguments are completed at launch by
    /// [`resolve_launch_args`](crate::config::resolve_launch_args).
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

/// `auth` of an HTTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerAuth {
    /// GitHub Actions OIDC token as `Authorization: Bearer <jwt>`.
    GithubOidc {
        /// Token audience (defaults to the server's `url`).
        audience: String,
    },
}

/// `[guards.<name>]` / `"guards"`.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardConfig {
    /// `wasm`, `noop`, or a built-in type name.
    pub kind: String,
    /// Path of the `.wasm` file (for `wasm`), relative to the working directory.
    pub path: Option<PathBuf>,
    /// Default policy for servers using this guard.
    pub policy: Option<serde_json::Value>,
    /// Free-form guard configuration (unused by the gateway).
    pub config: Option<serde_json::Value>,
}

/// A parsed configuration together with the warnings parsing produced
/// (deprecated keys, ignored servers); the runtime logs them at start-up.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedConfig {
    pub config: GatewayConfig,
    pub warnings: Vec<String>,
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
    pub log_dir: PathBuf,
    /// Deadline for in-flight calls at shutdown.
    pub shutdown_timeout: Duration,
    /// Idle MCP sessions expire after this long.
    pub session_timeout: Duration,
    /// Gateway-wide enforcement mode (`strict` when unset).
    pub guards_mode: Option<String>,
    /// Guard compilation cache directory; `None` = memory only.
    pub wasm_cache_dir: Option<PathBuf>,
    /// Disable the guard compilation cache entirely.
    pub no_wasm_cache: bool,
    /// Bound of the compilation cache, in bytes (`None` = default).
    pub wasm_cache_max_bytes: Option<u64>,
    /// Directory searched for `<dir>/<server-id>/*.wasm` guards.
    pub wasm_guards_dir: Option<PathBuf>,
    /// A configured guard that fails to load aborts start-up.
    pub require_guards: bool,
    /// Deliberate deviation (difc.md §8 quirk 4): take `tool-call-limits`
    /// out of a wasm guard's `label_agent` payload and enforce them in the
    /// gateway. Off by default, as in the reference, where such a policy
    /// makes the guard's `label_agent` fail.
    pub enforce_tool_call_limits: bool,
    /// Settings accepted for compatibility with the reference gateway, most
    /// of which only some parts of the runtime act on.
    pub extra: ExtraServeOptions,
}

impl ServeOptions {
    /// Options with every flag at its default around `config` (tests, embedding).
    pub fn new(config: GatewayConfig) -> Self {
        Self {
            config,
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 3000)),
            mode: RoutingMode::Routed,
            stdio: false,
            log_dir: PathBuf::from(crate::config::DEFAULT_LOG_DIR),
            shutdown_timeout: Duration::from_secs(5),
            session_timeout: Duration::from_secs(6 * 3600),
            guards_mode: None,
            wasm_cache_dir: None,
            no_wasm_cache: false,
            wasm_cache_max_bytes: None,
            wasm_guards_dir: None,
            require_guards: false,
            enforce_tool_call_limits: false,
            extra: ExtraServeOptions::default(),
        }
    }

    /// A variable as the gateway sees it: `--env` file values over the process
    /// environment. Use this (not `std::env::var`) for launch-time lookups.
    pub fn env_var(&self, name: &str) -> Option<String> {
        self.extra
            .env_overrides
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    }
}

/// The rest of the command line (§2): TLS, HMAC, OTLP, DIFC overrides, logging.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExtraServeOptions {
    /// Variables loaded from `--env FILE`; child processes get them too.
    pub env_overrides: BTreeMap<String, String>,
    /// `--validate-env`.
    pub validate_env: bool,
    /// `-v` count (0–3); `debug` (the `DEBUG` variable) wins when set.
    pub verbosity: u8,
    /// The `DEBUG` pattern (`*`, `server:*`, `a,b`, `-x`).
    pub debug: Option<String>,
    /// `--url-domain-audit`.
    pub url_domain_audit: bool,
    /// `--guards-sink-server-ids`: trimmed, deduplicated, in given order.
    pub guards_sink_server_ids: Vec<String>,
    /// Gateway-wide policy override (`--guard-policy-json` or the
    /// `--allowonly-*` flags), applied to every server.
    pub guard_policy_override: Option<serde_json::Value>,
    pub tls: Option<TlsOptions>,
    pub hmac_secret: Option<String>,
    pub otlp: OtlpOptions,
    /// The baked-in `/guards/github/00-github-guard.wasm` is considered unless
    /// `MCP_GATEWAY_WASM_GUARDS_DIR` is set to "".
    pub baked_in_guards: bool,
    /// Warnings from parsing the configuration, to be logged at start-up.
    pub config_warnings: Vec<String>,
}

/// `--tls-cert`, `--tls-key`, `--tls-ca`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA.
    pub client_ca: Option<PathBuf>,
}

/// `--otlp-*` (the config's `opentelemetry` is in `GatewaySettings`).
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpOptions {
    pub endpoint: Option<String>,
    pub service_name: String,
    pub sample_rate: f64,
}

impl Default for OtlpOptions {
    fn default() -> Self {
        Self {
            endpoint: None,
            service_name: DEFAULT_SERVICE_NAME.to_owned(),
            sample_rate: 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list() {
        assert!(tool_allowed(None, "x"));
        assert!(tool_allowed(Some(&["*".into()]), "x"));
        assert!(tool_allowed(Some(&["x".into()]), "x"));
        assert!(!tool_allowed(Some(&["y".into()]), "x"));
        assert!(!tool_allowed(Some(&[]), "x"));
    }
}
