//! `guardway serve`: run the gateway. Owns the serve flags (also accepted at
//! the root command, like the reference gateway) and their conversion into
//! `ServeOptions`: `--env FILE` is loaded first, then the configuration is
//! read (`--config-stdin` wins over `--config`), then flags, variables and
//! config are combined by `guardway_gateway::config::resolve_serve_options`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::ArgAction;
use guardway_gateway::config::{
    Environment, ParsedConfig, ServeFlags, ServeOptions, load_json_file, load_toml_file,
    parse_env_file, parse_json, resolve_serve_options, validate_environment,
};

/// Flags of `guardway serve` (also accepted at the root command).
///
/// Boolean flags also take Go-style values (`--routed=true`), as the
/// reference's flags do. Variables are read after parsing so that `--env`
/// files can define them.
#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file (a `.json` file is read as the stdin format).
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Read a JSON configuration from stdin until EOF (wins over --config).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value_t = false, value_name = "BOOL", hide_default_value = true, hide_possible_values = true)]
    pub config_stdin: bool,

    /// Listen address (host:port, [v6]:port or :port) [default: 127.0.0.1:3000].
    #[arg(short = 'l', long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// One MCP endpoint per backend at /mcp/<server> (the default).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value_t = false, value_name = "BOOL", hide_default_value = true, hide_possible_values = true)]
    pub routed: bool,

    /// One MCP endpoint at /mcp with tools named <server>___<tool>.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value_t = false, value_name = "BOOL", hide_default_value = true, hide_possible_values = true)]
    pub unified: bool,

    /// Serve one agent over stdin/stdout instead of HTTP.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value_t = false, value_name = "BOOL", hide_default_value = true, hide_possible_values = true)]
    pub stdio: bool,

    /// Load KEY=VALUE lines (with # comments and $VAR references) into the
    /// environment before anything else reads it.
    #[arg(long = "env", value_name = "FILE")]
    pub env_file: Option<PathBuf>,

    /// More output on stderr (-vv debug for cmd/server/launcher, -vvv everything); ignored when DEBUG is set.
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,

    /// Log directory [env: MCP_GATEWAY_LOG_DIR] [default: /tmp/gh-aw/mcp-logs].
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,

    /// Guard compilation cache directory [env: GUARDWAY_WASM_CACHE_DIR, MCP_GATEWAY_WASM_CACHE_DIR]
    /// [default: <parent of log dir>/wazero-cache].
    #[arg(long, value_name = "DIR")]
    pub wasm_cache_dir: Option<PathBuf>,

    /// Compile guards in memory only, with no disk cache.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value_t = false, value_name = "BOOL", hide_default_value = true, hide_possible_values = true)]
    pub no_wasm_cache: bool,

    /// Bound of the guard compilation cache, in bytes.
    #[arg(long, value_name = "BYTES")]
    pub wasm_cache_max_bytes: Option<u64>,

    /// Compiler of guards: auto (Winch first, Cranelift in the background), cranelift or winch [env: GUARDWAY_GUARD_COMPILER] [default: auto].
    #[arg(long, value_name = "auto|cranelift|winch", value_parser = crate::cmd::guard::parse_compiler)]
    pub guard_compiler: Option<guardway_wasm::GuardCompiler>,

    /// strict, filter or propagate [env: MCP_GATEWAY_GUARDS_MODE] [default: strict].
    #[arg(long, value_name = "MODE")]
    pub guards_mode: Option<String>,

    /// A configured guard that fails to load aborts start-up [env: GUARDWAY_REQUIRE_GUARDS].
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value_t = false, value_name = "BOOL", hide_default_value = true, hide_possible_values = true)]
    pub require_guards: bool,

    /// Enforce `tool-call-limits` in the gateway and keep them out of wasm guards' `label_agent` (a deliberate deviation: in the reference such a policy fails `label_agent`) [env: GUARDWAY_ENFORCE_TOOL_CALL_LIMITS].
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value_t = false, value_name = "BOOL", hide_default_value = true, hide_possible_values = true)]
    pub enforce_tool_call_limits: bool,

    #[command(flatten)]
    pub compat: Box<CompatibilityArgs>,
}

/// The rest of the reference gateway's serve flags: payload spilling, DIFC
/// overrides, TLS, HMAC, tracing. Boxed: it is most of the flag set's size.
#[derive(Debug, Default, clap::Args)]
pub struct CompatibilityArgs {
    /// Check that docker is reachable and MCP_GATEWAY_PORT, _DOMAIN and _AGENT_ID are set.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value_t = false, value_name = "BOOL", hide_default_value = true, hide_possible_values = true)]
    pub validate_env: bool,

    /// Directory of spilled large results [env: MCP_GATEWAY_PAYLOAD_DIR] [default: /tmp/jq-payloads].
    #[arg(long, value_name = "DIR")]
    pub payload_dir: Option<String>,

    /// Prefix applied to spilled payload paths [env: MCP_GATEWAY_PAYLOAD_PATH_PREFIX].
    #[arg(long, value_name = "PREFIX")]
    pub payload_path_prefix: Option<String>,

    /// Results larger than this many bytes are spilled [env: MCP_GATEWAY_PAYLOAD_SIZE_THRESHOLD] [default: 524288].
    #[arg(long, value_name = "BYTES")]
    pub payload_size_threshold: Option<u64>,

    /// Record the URL domains seen in results [env: MCP_GATEWAY_URL_DOMAIN_AUDIT].
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value_t = false, value_name = "BOOL", hide_default_value = true, hide_possible_values = true)]
    pub url_domain_audit: bool,

    /// Comma-separated sink server ids [env: MCP_GATEWAY_GUARDS_SINK_SERVER_IDS].
    #[arg(long, value_name = "IDS")]
    pub guards_sink_server_ids: Option<String>,

    /// Guard policy for every server, as JSON [env: MCP_GATEWAY_GUARD_POLICY_JSON].
    #[arg(long, value_name = "JSON")]
    pub guard_policy_json: Option<String>,

    /// Allow-only policy over public repositories [env: MCP_GATEWAY_ALLOWONLY_SCOPE_PUBLIC].
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value_t = false, value_name = "BOOL", hide_default_value = true, hide_possible_values = true)]
    pub allowonly_scope_public: bool,

    /// Allow-only policy over one owner's repositories [env: MCP_GATEWAY_ALLOWONLY_SCOPE_OWNER].
    #[arg(long, value_name = "OWNER")]
    pub allowonly_scope_owner: Option<String>,

    /// Allow-only policy over one repository of --allowonly-scope-owner [env: MCP_GATEWAY_ALLOWONLY_SCOPE_REPO].
    #[arg(long, value_name = "REPO")]
    pub allowonly_scope_repo: Option<String>,

    /// Minimum integrity of the allow-only policy [env: MCP_GATEWAY_ALLOWONLY_MIN_INTEGRITY].
    #[arg(long, value_name = "LEVEL")]
    pub allowonly_min_integrity: Option<String>,

    /// Launch backends one after the other.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value_t = false, value_name = "BOOL", hide_default_value = true, hide_possible_values = true)]
    pub sequential_launch: bool,

    /// Time allowed to drain at shutdown [env: MCP_GATEWAY_SHUTDOWN_TIMEOUT] [default: 5s].
    #[arg(long, value_name = "DURATION")]
    pub shutdown_timeout: Option<String>,

    /// TLS certificate [env: MCP_GATEWAY_TLS_CERT].
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key [env: MCP_GATEWAY_TLS_KEY].
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// CA for client certificates (mTLS) [env: MCP_GATEWAY_CA_CERT].
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,

    /// Require HMAC-signed MCP requests [env: MCP_GATEWAY_HMAC_SECRET].
    #[arg(long, value_name = "SECRET")]
    pub hmac_secret: Option<String>,

    /// OTLP/HTTP trace endpoint [env: OTEL_EXPORTER_OTLP_ENDPOINT].
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,

    /// Service name of exported spans [env: OTEL_SERVICE_NAME] [default: mcp-gateway].
    #[arg(long, value_name = "NAME")]
    pub otlp_service_name: Option<String>,

    /// Fraction of traces sampled [default: 1.0].
    #[arg(long, value_name = "RATE")]
    pub otlp_sample_rate: Option<f64>,
}

/// Builds the process environment with the `--env` file loaded over it.
///
/// # Errors
/// When the file cannot be read or has a malformed line.
pub fn environment_with_env_file(
    env_file: Option<&std::path::Path>,
) -> anyhow::Result<Environment> {
    let mut env = Environment::process();
    if let Some(path) = env_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read env file {}", path.display()))?;
        let vars = parse_env_file(&text, &env)
            .with_context(|| format!("invalid env file {}", path.display()))?;
        env.extend(vars);
    }
    Ok(env)
}

/// What the reference gateway says when neither `--config` nor
/// `--config-stdin` is given (its flag-group check), word for word.
const MISSING_CONFIG_SOURCE: &str =
    "at least one of the flags in the group [config config-stdin] is required";
/// guardway's hint, on the line after [`MISSING_CONFIG_SOURCE`].
const MISSING_CONFIG_HINT: &str =
    "hint: give --config <file> (TOML) or --config-stdin (JSON on stdin)";
/// What the reference gateway says for `--routed` with `--unified`.
const ROUTED_AND_UNIFIED: &str = "if any flags in the group [routed unified] are set none of the others can be; [routed unified] were all set";

/// Reads the configuration named by the flags: stdin JSON when
/// `--config-stdin`, else the `--config` file (TOML, or JSON for `.json`).
fn load_config(args: &ServeArgs, env: &Environment) -> anyhow::Result<ParsedConfig> {
    if args.config_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the configuration from stdin")?;
        return Ok(parse_json(&text, env)?);
    }
    let Some(path) = &args.config else {
        anyhow::bail!("{MISSING_CONFIG_SOURCE}\n{MISSING_CONFIG_HINT}");
    };
    let is_json = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
    Ok(if is_json {
        load_json_file(path, env)?
    } else {
        load_toml_file(path, env)?
    })
}

/// Converts parsed flags into `ServeOptions`: loads `--env`, reads and
/// validates the configuration, and applies flag > variable > config > default.
///
/// # Errors
/// Unreadable files, configuration errors (naming the field path) and bad
/// flag or variable values.
pub fn options_from_args(args: ServeArgs) -> anyhow::Result<ServeOptions> {
    let env = environment_with_env_file(args.env_file.as_deref())?;
    let parsed = load_config(&args, &env)?;
    let compat = *args.compat;
    let flags = ServeFlags {
        listen: args.listen,
        routed: args.routed,
        unified: args.unified,
        stdio: args.stdio,
        validate_env: compat.validate_env,
        verbosity: args.verbose,
        log_dir: args.log_dir,
        payload_dir: compat.payload_dir,
        payload_path_prefix: compat.payload_path_prefix,
        payload_size_threshold: compat.payload_size_threshold,
        url_domain_audit: compat.url_domain_audit,
        wasm_cache_dir: args.wasm_cache_dir,
        no_wasm_cache: args.no_wasm_cache,
        wasm_cache_max_bytes: args.wasm_cache_max_bytes,
        guards_mode: args.guards_mode,
        guards_sink_server_ids: compat.guards_sink_server_ids,
        guard_policy_json: compat.guard_policy_json,
        allowonly_scope_public: compat.allowonly_scope_public,
        allowonly_scope_owner: compat.allowonly_scope_owner,
        allowonly_scope_repo: compat.allowonly_scope_repo,
        allowonly_min_integrity: compat.allowonly_min_integrity,
        sequential_launch: compat.sequential_launch,
        shutdown_timeout: compat.shutdown_timeout,
        tls_cert: compat.tls_cert,
        tls_key: compat.tls_key,
        tls_ca: compat.tls_ca,
        hmac_secret: compat.hmac_secret,
        otlp_endpoint: compat.otlp_endpoint,
        otlp_service_name: compat.otlp_service_name,
        otlp_sample_rate: compat.otlp_sample_rate,
        require_guards: args.require_guards,
        enforce_tool_call_limits: args.enforce_tool_call_limits,
    };
    let options = resolve_serve_options(flags, parsed, &env)?;
    if options.extra.validate_env {
        let problems = validate_environment(&env, Duration::from_secs(10));
        if !problems.is_empty() {
            anyhow::bail!(
                "environment validation failed:\n  {}",
                problems.join("\n  ")
            );
        }
    }
    Ok(options)
}

/// The start-up facts the reference writes to `mcp-gateway.log` only
/// (category `startup`), in its words. Not on stderr: scripts wait for the
/// banner's `Starting MCPG` there, which comes once the gateway is ready.
fn log_startup_facts(options: &ServeOptions, config_source: &str) {
    let ids: Vec<&str> = options.config.servers.keys().map(String::as_str).collect();
    for line in [
        format!(
            "MCPG Gateway version: guardway {}",
            env!("CARGO_PKG_VERSION")
        ),
        format!(
            "Starting MCPG with config: {config_source}, listen: {}, log-dir: {}",
            options.listen,
            options.log_dir.display()
        ),
        format!("Loaded {} MCP server(s): [{}]", ids.len(), ids.join(" ")),
    ] {
        guardway_gateway::logfiles::log_file_line("INFO", "startup", &line);
    }
}

/// Configures the process-wide guard compilation cache from the serve
/// options, before any guard is loaded.
fn configure_compilation_cache(options: &guardway_gateway::config::ServeOptions) {
    let disk_dir = crate::cmd::cache::configure_serving_cache(
        options.wasm_cache_dir.as_deref(),
        &options.log_dir,
        options.no_wasm_cache,
        options.wasm_cache_max_bytes,
    );
    tracing::info!(
        target: "guardway::startup",
        "WASM compilation cache directory: {}",
        disk_dir
            .map(|d| d.display().to_string())
            .unwrap_or_default()
    );
}

/// The guard compiler: `--guard-compiler`, else `GUARDWAY_GUARD_COMPILER` (the `--env`
/// file included), else `auto`.
fn guard_compiler(
    flag: Option<guardway_wasm::GuardCompiler>,
    options: &ServeOptions,
) -> anyhow::Result<guardway_wasm::GuardCompiler> {
    if let Some(compiler) = flag {
        return Ok(compiler);
    }
    match options.env_var(guardway_wasm::GUARD_COMPILER_ENV) {
        Some(value) if !value.trim().is_empty() => value
            .parse()
            .with_context(|| format!("invalid {}", guardway_wasm::GUARD_COMPILER_ENV)),
        _ => Ok(guardway_wasm::GuardCompiler::Auto),
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    // The reference's flag-group checks, in its order, before anything else
    // is read, printed as it prints them (no prefix) so that scripts matching
    // its text keep working.
    if !args.config_stdin && args.config.is_none() {
        eprintln!("{MISSING_CONFIG_SOURCE}\n{MISSING_CONFIG_HINT}");
        return Ok(ExitCode::FAILURE);
    }
    if args.routed && args.unified {
        eprintln!("{ROUTED_AND_UNIFIED}");
        return Ok(ExitCode::FAILURE);
    }
    let config_source = if args.config_stdin {
        "stdin".to_owned()
    } else {
        args.config
            .as_ref()
            .map(|path| path.display().to_string())
            .unwrap_or_default()
    };
    let compiler_flag = args.guard_compiler;
    let options = options_from_args(args)?;
    let compiler = guard_compiler(compiler_flag, &options)?;
    let wasm_guards = options.wasm_guards_dir.is_some()
        || options
            .config
            .guards
            .values()
            .any(|guard| guard.kind.eq_ignore_ascii_case("wasm"));
    if wasm_guards {
        // The engine's set-up overlaps with starting the backends.
        guardway_wasm::prepare_engine();
    }
    // Before any guard is loaded: every guard's default options take it.
    let _ = guardway_wasm::GuardCompiler::set_process_default(compiler);
    guardway_gateway::logfiles::install_global_logging(&options.log_dir, "info");
    crate::memory::return_freed_memory_in_background();
    log_startup_facts(&options, &config_source);
    tracing::debug!("guard compiler: {compiler}");
    for warning in &options.extra.config_warnings {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    configure_compilation_cache(&options);
    let served = runtime.block_on(guardway_gateway::serve(options));
    if let Err(error) = guardway_wasm::CompilationCache::global().close() {
        tracing::error!(%error, "closing the WASM compilation cache failed");
    }
    served?;
    Ok(ExitCode::SUCCESS)
}
