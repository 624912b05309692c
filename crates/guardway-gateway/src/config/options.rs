//! Resolution of the `serve` command line (gateway.md §2) into
//! [`ServeOptions`]: explicit flag > variable > config > default, with the
//! reference's quirk that a variable overrides the config only when it
//! differs from the built-in default.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use super::env::{Environment, parse_duration};
use super::model::*;
use super::policy::validate_config_policy;

/// Default `--listen` address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
/// Default `--log-dir`.
pub const DEFAULT_LOG_DIR: &str = "/tmp/gh-aw/mcp-logs";
/// Default `--shutdown-timeout`.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `MCP_GATEWAY_SESSION_TIMEOUT`.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// The `serve` flags as given on the command line (`None`/`false` = not
/// given). The binary fills this from clap; variables are read here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServeFlags {
    pub listen: Option<String>,
    pub routed: bool,
    pub unified: bool,
    pub stdio: bool,
    pub validate_env: bool,
    pub verbosity: u8,
    pub log_dir: Option<PathBuf>,
    pub payload_dir: Option<String>,
    pub payload_path_prefix: Option<String>,
    pub payload_size_threshold: Option<u64>,
    pub url_domain_audit: bool,
    pub wasm_cache_dir: Option<PathBuf>,
    pub no_wasm_cache: bool,
    pub wasm_cache_max_bytes: Option<u64>,
    pub guards_mode: Option<String>,
    pub guards_sink_server_ids: Option<String>,
    pub guard_policy_json: Option<String>,
    pub allowonly_scope_public: bool,
    pub allowonly_scope_owner: Option<String>,
    pub allowonly_scope_repo: Option<String>,
    pub allowonly_min_integrity: Option<String>,
    pub sequential_launch: bool,
    pub shutdown_timeout: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_ca: Option<PathBuf>,
    pub hmac_secret: Option<String>,
    pub otlp_endpoint: Option<String>,
    pub otlp_service_name: Option<String>,
    pub otlp_sample_rate: Option<f64>,
    pub require_guards: bool,
    pub enforce_tool_call_limits: bool,
}

/// A flag or variable with an unusable value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptionsError {
    #[error("invalid value {value:?} for {source_name}: expected {expected}")]
    InvalidValue {
        /// The flag (`--guards-mode`) or variable (`MCP_GATEWAY_GUARDS_MODE`).
        source_name: String,
        value: String,
        expected: String,
    },
    #[error("--tls-cert and --tls-key must be given together")]
    TlsIncomplete,
    #[error("--tls-ca requires --tls-cert and --tls-key")]
    TlsCaWithoutCert,
    #[error("invalid guard policy from {source_name}: {message}")]
    InvalidPolicyOverride {
        source_name: String,
        message: String,
    },
    #[error(
        "--guard-policy-json (MCP_GATEWAY_GUARD_POLICY_JSON) cannot be combined with the --allowonly-* flags"
    )]
    PolicyOverrideConflict,
    #[error("invalid guards sink server ID {id:?}: whitespace is not allowed")]
    InvalidSinkServerId { id: String },
}

/// One setting read from a flag, else a variable.
struct Source<T> {
    value: T,
    name: String,
}

fn flag_or_env(
    flag: Option<String>,
    flag_name: &str,
    env: &Environment,
    vars: &[&str],
) -> Option<Source<String>> {
    if let Some(value) = flag {
        return Some(Source {
            value,
            name: flag_name.to_owned(),
        });
    }
    vars.iter().find_map(|var| {
        env.get(var).map(|value| Source {
            value,
            name: (*var).to_owned(),
        })
    })
}

/// explicit flag > variable (only when it differs from the default, or the
/// config is silent) > config > default.
fn pick<T: PartialEq>(flag: Option<T>, var: Option<T>, config: Option<T>, default: T) -> T {
    if let Some(value) = flag {
        return value;
    }
    if let Some(value) = var
        && (value != default || config.is_none())
    {
        return value;
    }
    config.unwrap_or(default)
}

fn parse_bool(source: &Source<String>) -> Result<bool, OptionsError> {
    match source.value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "" | "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(invalid(source, "true or false")),
    }
}

fn invalid(source: &Source<String>, expected: &str) -> OptionsError {
    OptionsError::InvalidValue {
        source_name: source.name.clone(),
        value: source.value.clone(),
        expected: expected.to_owned(),
    }
}

/// A boolean flag, else a boolean variable.
fn flag_bool(flag: bool, env: &Environment, var: &str) -> Result<bool, OptionsError> {
    if flag {
        return Ok(true);
    }
    match env.get(var) {
        Some(value) => parse_bool(&Source {
            value,
            name: var.to_owned(),
        }),
        None => Ok(false),
    }
}

/// Parses `--listen`: `host:port`, `[v6]:port`, `:port` (all interfaces), or
/// a host name that resolves.
///
/// # Errors
/// When the address cannot be parsed or resolved.
pub fn parse_listen(text: &str) -> Result<SocketAddr, OptionsError> {
    let error = || OptionsError::InvalidValue {
        source_name: "--listen".to_owned(),
        value: text.to_owned(),
        expected: "host:port".to_owned(),
    };
    let trimmed = text.trim();
    if let Some(port) = trimmed.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| error())?;
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Ok(addr) = trimmed.parse::<SocketAddr>() {
        return Ok(addr);
    }
    trimmed
        .to_socket_addrs()
        .map_err(|_| error())?
        .next()
        .ok_or_else(error)
}

/// `strict`, `filter` or `propagate` (any case).
fn parse_guards_mode(source: &Source<String>) -> Result<String, OptionsError> {
    let mode = source.value.trim().to_ascii_lowercase();
    if matches!(mode.as_str(), "strict" | "filter" | "propagate") {
        Ok(mode)
    } else {
        Err(invalid(source, "strict, filter or propagate"))
    }
}

/// Comma-separated ids: trimmed, blanks dropped, deduplicated in order.
///
/// # Errors
/// An id with whitespace inside.
pub fn parse_sink_server_ids(text: &str) -> Result<Vec<String>, OptionsError> {
    let mut ids: Vec<String> = Vec::new();
    for id in text.split(',').map(str::trim).filter(|id| !id.is_empty()) {
        if id.contains(char::is_whitespace) {
            return Err(OptionsError::InvalidSinkServerId { id: id.to_owned() });
        }
        if !ids.iter().any(|known| known == id) {
            ids.push(id.to_owned());
        }
    }
    Ok(ids)
}

/// The default compilation cache directory: `<parent of log dir>/wazero-cache`.
pub fn default_wasm_cache_dir(log_dir: &Path) -> PathBuf {
    let parent = log_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    parent.join("wazero-cache")
}

/// Combines flags, variables and the parsed configuration.
///
/// # Errors
/// A flag or variable with an unusable value, or an inconsistent TLS or
/// policy-override combination.
pub fn resolve_serve_options(
    flags: ServeFlags,
    parsed: ParsedConfig,
    env: &Environment,
) -> Result<ServeOptions, OptionsError> {
    let ParsedConfig {
        mut config,
        warnings,
    } = parsed;

    let listen = parse_listen(flags.listen.as_deref().unwrap_or(DEFAULT_LISTEN))?;
    let mode = if flags.unified {
        RoutingMode::Unified
    } else {
        RoutingMode::Routed
    };

    let log_dir = flags
        .log_dir
        .clone()
        .or_else(|| env.get_non_blank("MCP_GATEWAY_LOG_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_LOG_DIR));

    // Payload settings live in the config; flags and variables override them.
    let gateway = &mut config.gateway;
    gateway.payload_dir = pick(
        flags.payload_dir.clone(),
        env.get_non_blank("MCP_GATEWAY_PAYLOAD_DIR"),
        Some(gateway.payload_dir.clone()),
        DEFAULT_PAYLOAD_DIR.to_owned(),
    );
    gateway.payload_path_prefix = pick(
        flags.payload_path_prefix.clone().map(Some),
        env.get("MCP_GATEWAY_PAYLOAD_PATH_PREFIX").map(Some),
        Some(gateway.payload_path_prefix.clone()),
        None,
    )
    .filter(|p| !p.is_empty());
    let threshold_var = match env.get_non_blank("MCP_GATEWAY_PAYLOAD_SIZE_THRESHOLD") {
        Some(value) => {
            let source = Source {
                value,
                name: "MCP_GATEWAY_PAYLOAD_SIZE_THRESHOLD".to_owned(),
            };
            Some(
                source
                    .value
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| invalid(&source, "a size in bytes (at least 1)"))?,
            )
        }
        None => None,
    };
    if let Some(0) = flags.payload_size_threshold {
        return Err(OptionsError::InvalidValue {
            source_name: "--payload-size-threshold".to_owned(),
            value: "0".to_owned(),
            expected: "a size in bytes (at least 1)".to_owned(),
        });
    }
    gateway.payload_size_threshold = pick(
        flags.payload_size_threshold,
        threshold_var,
        Some(gateway.payload_size_threshold),
        DEFAULT_PAYLOAD_SIZE_THRESHOLD,
    );
    // MCP_GATEWAY_FORCE_PUBLIC_REPOS is read by the guard pipeline, next to
    // this config value (docs/security.md): the config alone also exempts
    // sinks, so the two are not merged here.

    let guards_mode_var = match flag_or_env(None, "", env, &["MCP_GATEWAY_GUARDS_MODE"]) {
        Some(source) if !source.value.trim().is_empty() => Some(parse_guards_mode(&source)?),
        _ => None,
    };
    let guards_mode_flag = match flags.guards_mode.clone() {
        Some(value) => Some(parse_guards_mode(&Source {
            value,
            name: "--guards-mode".to_owned(),
        })?),
        None => None,
    };
    let guards_mode = pick(
        guards_mode_flag,
        guards_mode_var,
        config.guards_mode.clone(),
        "strict".to_owned(),
    );
    config.sequential_launch |= flags.sequential_launch;

    let wasm_cache_dir = if flags.no_wasm_cache {
        None
    } else {
        Some(
            flags
                .wasm_cache_dir
                .clone()
                .filter(|d| !d.as_os_str().to_string_lossy().trim().is_empty())
                .or_else(|| {
                    env.get_non_blank("GUARDWAY_WASM_CACHE_DIR")
                        .map(PathBuf::from)
                })
                .or_else(|| {
                    env.get_non_blank("MCP_GATEWAY_WASM_CACHE_DIR")
                        .map(PathBuf::from)
                })
                .unwrap_or_else(|| default_wasm_cache_dir(&log_dir)),
        )
    };

    let (wasm_guards_dir, baked_in_guards) = match env.get("MCP_GATEWAY_WASM_GUARDS_DIR") {
        Some(dir) if dir.trim().is_empty() => (None, false),
        Some(dir) => (Some(PathBuf::from(dir.trim())), true),
        None => (None, true),
    };

    let shutdown_timeout = match flag_or_env(
        flags.shutdown_timeout.clone(),
        "--shutdown-timeout",
        env,
        &["MCP_GATEWAY_SHUTDOWN_TIMEOUT"],
    ) {
        Some(source) => {
            parse_duration(&source.value).map_err(|_| invalid(&source, "a duration such as 5s"))?
        }
        None => DEFAULT_SHUTDOWN_TIMEOUT,
    };
    let session_timeout = match flag_or_env(None, "", env, &["MCP_GATEWAY_SESSION_TIMEOUT"]) {
        Some(source) if !source.value.trim().is_empty() => parse_duration(&source.value)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| invalid(&source, "a duration such as 6h"))?,
        _ => DEFAULT_SESSION_TIMEOUT,
    };

    let tls_cert = flags
        .tls_cert
        .clone()
        .or_else(|| env.get_non_blank("MCP_GATEWAY_TLS_CERT").map(PathBuf::from));
    let tls_key = flags
        .tls_key
        .clone()
        .or_else(|| env.get_non_blank("MCP_GATEWAY_TLS_KEY").map(PathBuf::from));
    let tls_ca = flags
        .tls_ca
        .clone()
        .or_else(|| env.get_non_blank("MCP_GATEWAY_CA_CERT").map(PathBuf::from));
    let tls = match (tls_cert, tls_key, tls_ca) {
        (Some(cert), Some(key), client_ca) => Some(TlsOptions {
            cert,
            key,
            client_ca,
        }),
        (None, None, None) => None,
        (None, None, Some(_)) => return Err(OptionsError::TlsCaWithoutCert),
        _ => return Err(OptionsError::TlsIncomplete),
    };

    let guard_policy_override = policy_override(&flags, env)?;

    let guards_sink_server_ids = match flag_or_env(
        flags.guards_sink_server_ids.clone(),
        "--guards-sink-server-ids",
        env,
        &["MCP_GATEWAY_GUARDS_SINK_SERVER_IDS"],
    ) {
        Some(source) => parse_sink_server_ids(&source.value)?,
        None => Vec::new(),
    };

    let otlp_sample_rate = flags.otlp_sample_rate.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&otlp_sample_rate) {
        return Err(OptionsError::InvalidValue {
            source_name: "--otlp-sample-rate".to_owned(),
            value: otlp_sample_rate.to_string(),
            expected: "a number between 0 and 1".to_owned(),
        });
    }
    let otlp = OtlpOptions {
        endpoint: flags
            .otlp_endpoint
            .clone()
            .or_else(|| env.get_non_blank("OTEL_EXPORTER_OTLP_ENDPOINT")),
        service_name: flags
            .otlp_service_name
            .clone()
            .or_else(|| env.get_non_blank("OTEL_SERVICE_NAME"))
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned()),
        sample_rate: otlp_sample_rate,
    };

    let extra = ExtraServeOptions {
        env_overrides: env.overlay().clone(),
        validate_env: flags.validate_env,
        verbosity: flags.verbosity.min(3),
        debug: env.get_non_blank("DEBUG"),
        url_domain_audit: flag_bool(flags.url_domain_audit, env, "MCP_GATEWAY_URL_DOMAIN_AUDIT")?,
        guards_sink_server_ids,
        guard_policy_override,
        tls,
        hmac_secret: flags
            .hmac_secret
            .clone()
            .or_else(|| env.get_non_blank("MCP_GATEWAY_HMAC_SECRET")),
        otlp,
        baked_in_guards,
        config_warnings: warnings,
    };

    Ok(ServeOptions {
        config,
        listen,
        mode,
        stdio: flags.stdio,
        log_dir,
        shutdown_timeout,
        session_timeout,
        guards_mode: Some(guards_mode),
        wasm_cache_dir,
        no_wasm_cache: flags.no_wasm_cache,
        wasm_cache_max_bytes: flags.wasm_cache_max_bytes,
        wasm_guards_dir,
        require_guards: flag_bool(flags.require_guards, env, "GUARDWAY_REQUIRE_GUARDS")?,
        enforce_tool_call_limits: flag_bool(
            flags.enforce_tool_call_limits,
            env,
            "GUARDWAY_ENFORCE_TOOL_CALL_LIMITS",
        )?,
        extra,
    })
}

/// `--guard-policy-json` or the `--allowonly-*` flags (or their variables).
fn policy_override(flags: &ServeFlags, env: &Environment) -> Result<Option<Value>, OptionsError> {
    let json_source = flag_or_env(
        flags.guard_policy_json.clone(),
        "--guard-policy-json",
        env,
        &["MCP_GATEWAY_GUARD_POLICY_JSON"],
    )
    .filter(|s| !s.value.trim().is_empty());

    let public = flag_bool(
        flags.allowonly_scope_public,
        env,
        "MCP_GATEWAY_ALLOWONLY_SCOPE_PUBLIC",
    )?;
    let owner = flags
        .allowonly_scope_owner
        .clone()
        .or_else(|| env.get_non_blank("MCP_GATEWAY_ALLOWONLY_SCOPE_OWNER"));
    let repo = flags
        .allowonly_scope_repo
        .clone()
        .or_else(|| env.get_non_blank("MCP_GATEWAY_ALLOWONLY_SCOPE_REPO"));
    let min_integrity = flags
        .allowonly_min_integrity
        .clone()
        .or_else(|| env.get_non_blank("MCP_GATEWAY_ALLOWONLY_MIN_INTEGRITY"));
    let any_allowonly = public || owner.is_some() || repo.is_some() || min_integrity.is_some();

    let (policy, source_name) = match json_source {
        Some(source) => {
            if any_allowonly {
                return Err(OptionsError::PolicyOverrideConflict);
            }
            let policy: Value = serde_json::from_str(source.value.trim()).map_err(|err| {
                OptionsError::InvalidPolicyOverride {
                    source_name: source.name.clone(),
                    message: format!("not valid JSON: {err}"),
                }
            })?;
            (policy, source.name)
        }
        None if any_allowonly => {
            let repos = match (public, owner, repo) {
                (true, _, _) => json!("public"),
                (false, Some(owner), Some(repo)) => {
                    json!([format!("{}/{}", owner.trim(), repo.trim())])
                }
                (false, Some(owner), None) => json!([format!("{}/*", owner.trim())]),
                (false, None, Some(_)) => {
                    return Err(OptionsError::InvalidPolicyOverride {
                        source_name: "--allowonly-scope-repo".to_owned(),
                        message: "requires --allowonly-scope-owner".to_owned(),
                    });
                }
                (false, None, None) => json!("all"),
            };
            let min_integrity = min_integrity.unwrap_or_else(|| "none".to_owned());
            (
                json!({"allow-only": {"repos": repos, "min-integrity": min_integrity}}),
                "--allowonly-* flags".to_owned(),
            )
        }
        None => return Ok(None),
    };
    validate_config_policy(&policy).map_err(|message| OptionsError::InvalidPolicyOverride {
        source_name,
        message,
    })?;
    Ok(Some(policy))
}

/// The variables `--validate-env` requires (the container entrypoint's
/// contract with the reference gateway).
pub const VALIDATE_ENV_VARIABLES: [&str; 3] = [
    "MCP_GATEWAY_PORT",
    "MCP_GATEWAY_DOMAIN",
    "MCP_GATEWAY_AGENT_ID",
];

/// `--validate-env`: the required variables that are unset or blank, and
/// whether `docker` answers `docker version` within `docker_timeout`.
/// Returns one message per problem (empty = all good).
pub fn validate_environment(env: &Environment, docker_timeout: Duration) -> Vec<String> {
    let mut problems: Vec<String> = VALIDATE_ENV_VARIABLES
        .iter()
        .filter(|var| env.get_non_blank(var).is_none())
        .map(|var| format!("required environment variable {var} is not set"))
        .collect();
    if let Err(why) = docker_reachable(docker_timeout) {
        problems.push(format!("docker is not reachable: {why}"));
    }
    problems
}

fn docker_reachable(timeout: Duration) -> Result<(), String> {
    let mut child = std::process::Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|err| format!("cannot run docker: {err}"))?;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("`docker version` exited with {status}")),
            Ok(None) if std::time::Instant::now() >= deadline => {
                // Best effort: the child is abandoned either way.
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`docker version` did not answer within {timeout:?}"
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(err) => return Err(format!("cannot wait for docker: {err}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment::from_pairs(pairs.iter().copied())
    }

    fn resolve(flags: ServeFlags, vars: &[(&str, &str)]) -> Result<ServeOptions, OptionsError> {
        resolve_serve_options(flags, ParsedConfig::default(), &env(vars))
    }

    #[test]
    fn defaults() {
        let options = resolve(ServeFlags::default(), &[]).unwrap();
        assert_eq!(options.listen, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(options.mode, RoutingMode::Routed);
        assert_eq!(options.log_dir, PathBuf::from(DEFAULT_LOG_DIR));
        assert_eq!(
            options.wasm_cache_dir,
            Some(PathBuf::from("/tmp/gh-aw/wazero-cache"))
        );
        assert_eq!(options.shutdown_timeout, DEFAULT_SHUTDOWN_TIMEOUT);
        assert_eq!(options.session_timeout, DEFAULT_SESSION_TIMEOUT);
        assert_eq!(options.guards_mode.as_deref(), Some("strict"));
        assert!(options.extra.baked_in_guards);
        assert!(options.extra.tls.is_none());
        assert!(!options.require_guards);
    }

    #[test]
    fn listen_forms() {
        assert_eq!(
            parse_listen(":8000").unwrap(),
            "0.0.0.0:8000".parse().unwrap()
        );
        assert_eq!(parse_listen("[::]:80").unwrap(), "[::]:80".parse().unwrap());
        assert!(parse_listen("localhost:3000").unwrap().ip().is_loopback());
        assert!(parse_listen("nonsense").is_err());
    }

    #[test]
    fn wasm_cache_dir_precedence() {
        let flags = ServeFlags {
            log_dir: Some("/var/log/gw/logs".into()),
            ..ServeFlags::default()
        };
        let o = resolve(flags.clone(), &[]).unwrap();
        assert_eq!(
            o.wasm_cache_dir,
            Some(PathBuf::from("/var/log/gw/wazero-cache"))
        );
        let o = resolve(flags.clone(), &[("MCP_GATEWAY_WASM_CACHE_DIR", " /m ")]).unwrap();
        assert_eq!(o.wasm_cache_dir, Some(PathBuf::from("/m")));
        let o = resolve(
            flags.clone(),
            &[
                ("MCP_GATEWAY_WASM_CACHE_DIR", "/m"),
                ("GUARDWAY_WASM_CACHE_DIR", "/g"),
            ],
        )
        .unwrap();
        assert_eq!(o.wasm_cache_dir, Some(PathBuf::from("/g")));
        let o = resolve(
            ServeFlags {
                wasm_cache_dir: Some("/f".into()),
                ..flags.clone()
            },
            &[("GUARDWAY_WASM_CACHE_DIR", "/g")],
        )
        .unwrap();
        assert_eq!(o.wasm_cache_dir, Some(PathBuf::from("/f")));
        let o = resolve(
            ServeFlags {
                no_wasm_cache: true,
                ..flags
            },
            &[],
        )
        .unwrap();
        assert_eq!(o.wasm_cache_dir, None);
        assert!(o.no_wasm_cache);
    }

    #[test]
    fn log_dir_from_variable() {
        let o = resolve(ServeFlags::default(), &[("MCP_GATEWAY_LOG_DIR", "/x/y")]).unwrap();
        assert_eq!(o.log_dir, PathBuf::from("/x/y"));
        assert_eq!(o.wasm_cache_dir, Some(PathBuf::from("/x/wazero-cache")));
    }

    fn config_with_payload_dir(dir: &str) -> ParsedConfig {
        let mut parsed = ParsedConfig::default();
        parsed.config.gateway.payload_dir = dir.to_owned();
        parsed.config.guards_mode = Some("filter".to_owned());
        parsed
    }

    #[test]
    fn variable_overrides_config_only_when_not_default() {
        // Variable equal to the default: the config wins (the quirk).
        let o = resolve_serve_options(
            ServeFlags::default(),
            config_with_payload_dir("/cfg"),
            &env(&[
                ("MCP_GATEWAY_PAYLOAD_DIR", DEFAULT_PAYLOAD_DIR),
                ("MCP_GATEWAY_GUARDS_MODE", "strict"),
            ]),
        )
        .unwrap();
        assert_eq!(o.config.gateway.payload_dir, "/cfg");
        assert_eq!(o.guards_mode.as_deref(), Some("filter"));
        // Variable differing from the default: the variable wins.
        let o = resolve_serve_options(
            ServeFlags::default(),
            config_with_payload_dir("/cfg"),
            &env(&[
                ("MCP_GATEWAY_PAYLOAD_DIR", "/var"),
                ("MCP_GATEWAY_GUARDS_MODE", "propagate"),
            ]),
        )
        .unwrap();
        assert_eq!(o.config.gateway.payload_dir, "/var");
        assert_eq!(o.guards_mode.as_deref(), Some("propagate"));
        // An explicit flag beats both, even when equal to the default.
        let o = resolve_serve_options(
            ServeFlags {
                payload_dir: Some(DEFAULT_PAYLOAD_DIR.to_owned()),
                guards_mode: Some("strict".to_owned()),
                ..ServeFlags::default()
            },
            config_with_payload_dir("/cfg"),
            &env(&[("MCP_GATEWAY_PAYLOAD_DIR", "/var")]),
        )
        .unwrap();
        assert_eq!(o.config.gateway.payload_dir, DEFAULT_PAYLOAD_DIR);
        assert_eq!(o.guards_mode.as_deref(), Some("strict"));
    }

    #[test]
    fn payload_threshold_and_prefix() {
        let o = resolve(
            ServeFlags::default(),
            &[
                ("MCP_GATEWAY_PAYLOAD_SIZE_THRESHOLD", "1000"),
                ("MCP_GATEWAY_PAYLOAD_PATH_PREFIX", "/p"),
            ],
        )
        .unwrap();
        assert_eq!(o.config.gateway.payload_size_threshold, 1000);
        assert_eq!(o.config.gateway.payload_path_prefix.as_deref(), Some("/p"));
        let err = resolve(
            ServeFlags::default(),
            &[("MCP_GATEWAY_PAYLOAD_SIZE_THRESHOLD", "big")],
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("MCP_GATEWAY_PAYLOAD_SIZE_THRESHOLD"),
            "{err}"
        );
    }

    #[test]
    fn bad_guards_mode_flag_is_an_error() {
        let err = resolve(
            ServeFlags {
                guards_mode: Some("lenient".to_owned()),
                ..ServeFlags::default()
            },
            &[],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value \"lenient\" for --guards-mode: expected strict, filter or propagate"
        );
    }

    #[test]
    fn durations_from_flags_and_variables() {
        let o = resolve(
            ServeFlags::default(),
            &[
                ("MCP_GATEWAY_SHUTDOWN_TIMEOUT", "30s"),
                ("MCP_GATEWAY_SESSION_TIMEOUT", "90m"),
            ],
        )
        .unwrap();
        assert_eq!(o.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(o.session_timeout, Duration::from_secs(5400));
        let o = resolve(
            ServeFlags {
                shutdown_timeout: Some("2s".to_owned()),
                ..ServeFlags::default()
            },
            &[("MCP_GATEWAY_SHUTDOWN_TIMEOUT", "30s")],
        )
        .unwrap();
        assert_eq!(o.shutdown_timeout, Duration::from_secs(2));
        assert!(
            resolve(
                ServeFlags::default(),
                &[("MCP_GATEWAY_SESSION_TIMEOUT", "soon")]
            )
            .is_err()
        );
    }

    #[test]
    fn tls_combinations() {
        let tls = |cert: Option<&str>, key: Option<&str>, ca: Option<&str>| {
            resolve(
                ServeFlags {
                    tls_cert: cert.map(PathBuf::from),
                    tls_key: key.map(PathBuf::from),
                    tls_ca: ca.map(PathBuf::from),
                    ..ServeFlags::default()
                },
                &[],
            )
        };
        assert_eq!(
            tls(Some("c"), None, None).unwrap_err(),
            OptionsError::TlsIncomplete
        );
        assert_eq!(
            tls(None, None, Some("a")).unwrap_err(),
            OptionsError::TlsCaWithoutCert
        );
        let o = tls(Some("c"), Some("k"), Some("a")).unwrap();
        assert_eq!(o.extra.tls.unwrap().client_ca, Some(PathBuf::from("a")));
        let o = resolve(
            ServeFlags::default(),
            &[("MCP_GATEWAY_TLS_CERT", "c"), ("MCP_GATEWAY_TLS_KEY", "k")],
        )
        .unwrap();
        assert!(o.extra.tls.is_some());
    }

    #[test]
    fn sink_server_ids() {
        assert_eq!(parse_sink_server_ids(" a, b ,,a ").unwrap(), vec!["a", "b"]);
        assert_eq!(
            parse_sink_server_ids("a,b c").unwrap_err().to_string(),
            "invalid guards sink server ID \"b c\": whitespace is not allowed"
        );
        let o = resolve(
            ServeFlags::default(),
            &[("MCP_GATEWAY_GUARDS_SINK_SERVER_IDS", "x,y")],
        )
        .unwrap();
        assert_eq!(o.extra.guards_sink_server_ids, vec!["x", "y"]);
    }

    #[test]
    fn policy_overrides() {
        let o = resolve(
            ServeFlags {
                allowonly_scope_owner: Some("acme".to_owned()),
                allowonly_min_integrity: Some("approved".to_owned()),
                ..ServeFlags::default()
            },
            &[],
        )
        .unwrap();
        assert_eq!(
            o.extra.guard_policy_override,
            Some(json!({"allow-only": {"repos": ["acme/*"], "min-integrity": "approved"}}))
        );
        let o = resolve(
            ServeFlags::default(),
            &[(
                "MCP_GATEWAY_GUARD_POLICY_JSON",
                r#"{"allow-only":{"repos":"all","min-integrity":"none"}}"#,
            )],
        )
        .unwrap();
        assert!(o.extra.guard_policy_override.is_some());
        let err = resolve(
            ServeFlags {
                guard_policy_json: Some(r#"{"allow-only":{"repos":"all"}}"#.to_owned()),
                ..ServeFlags::default()
            },
            &[],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid guard policy from --guard-policy-json: min-integrity is required"
        );
        let err = resolve(
            ServeFlags {
                guard_policy_json: Some("{}".to_owned()),
                allowonly_scope_public: true,
                ..ServeFlags::default()
            },
            &[],
        )
        .unwrap_err();
        assert_eq!(err, OptionsError::PolicyOverrideConflict);
    }

    #[test]
    fn guards_dir_and_require_guards() {
        let o = resolve(
            ServeFlags::default(),
            &[("MCP_GATEWAY_WASM_GUARDS_DIR", "")],
        )
        .unwrap();
        assert!(!o.extra.baked_in_guards);
        assert_eq!(o.wasm_guards_dir, None);
        let o = resolve(
            ServeFlags::default(),
            &[
                ("MCP_GATEWAY_WASM_GUARDS_DIR", "/g"),
                ("GUARDWAY_REQUIRE_GUARDS", "true"),
            ],
        )
        .unwrap();
        assert_eq!(o.wasm_guards_dir, Some(PathBuf::from("/g")));
        assert!(o.require_guards);
        assert!(
            resolve(
                ServeFlags::default(),
                &[("GUARDWAY_REQUIRE_GUARDS", "maybe")]
            )
            .is_err()
        );
    }

    #[test]
    fn validate_environment_lists_missing_variables() {
        let problems = validate_environment(
            &env(&[("MCP_GATEWAY_PORT", "80"), ("MCP_GATEWAY_DOMAIN", " ")]),
            Duration::from_secs(5),
        );
        assert!(
            problems.contains(
                &"required environment variable MCP_GATEWAY_DOMAIN is not set".to_owned()
            )
        );
        assert!(
            problems.contains(
                &"required environment variable MCP_GATEWAY_AGENT_ID is not set".to_owned()
            )
        );
        assert!(!problems.iter().any(|p| p.contains("MCP_GATEWAY_PORT")));
    }

    #[test]
    fn routing_mode_and_sequential_launch() {
        let o = resolve(
            ServeFlags {
                unified: true,
                sequential_launch: true,
                ..ServeFlags::default()
            },
            &[],
        )
        .unwrap();
        assert_eq!(o.mode, RoutingMode::Unified);
        assert!(o.config.sequential_launch);
    }
}
