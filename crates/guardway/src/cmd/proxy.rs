//! `guardway proxy`: a GitHub REST and GraphQL forward proxy guarded by a
//! WebAssembly guard. Owns the proxy's flags (the reference's `awmg proxy`
//! set, with its variables and defaults) and their resolution; the proxy
//! itself is `guardway_proxy`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::ArgAction;
use guardway_gateway::github;
use guardway_proxy::{ProxyPipeline, ProxyState, Upstream};

/// The reference's default log directory.
pub const DEFAULT_LOG_DIR: &str = "/tmp/gh-aw/mcp-logs";
/// Where a container image carries its GitHub guard.
pub const CONTAINER_GUARD_WASM: &str = "/guards/github/00-github-guard.wasm";

/// Flags of `guardway proxy`.
///
/// Boolean flags also take Go-style values (`--tls=true`), as the
/// reference's flags do; list flags take comma-separated values and can be
/// repeated.
#[derive(Debug, Default, clap::Args)]
pub struct ProxyArgs {
    /// Path to the guard WASM module [default: /guards/github/00-github-guard.wasm when it exists, else required].
    #[arg(long, value_name = "FILE")]
    pub guard_wasm: Option<PathBuf>,

    /// Guard policy JSON, e.g. '{"allow-only":{"repos":["org/repo"],"min-integrity":"approved"}}' [env: MCP_GATEWAY_GUARD_POLICY_JSON].
    #[arg(long, value_name = "JSON")]
    pub policy: Option<String>,

    /// Fallback GitHub API token for requests without an Authorization header [env: GITHUB_MCP_SERVER_TOKEN, GITHUB_TOKEN, GITHUB_PERSONAL_ACCESS_TOKEN, GH_TOKEN] [default: forwards the client's Authorization].
    #[arg(long, value_name = "TOKEN")]
    pub github_token: Option<String>,

    /// Proxy listen address (host:port, [v6]:port or :port).
    #[arg(
        short = 'l',
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: String,

    /// Log file directory [env: MCP_GATEWAY_LOG_DIR] [default: /tmp/gh-aw/mcp-logs].
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,

    /// Guard compilation cache directory [env: GUARDWAY_WASM_CACHE_DIR, MCP_GATEWAY_WASM_CACHE_DIR] [default: <parent of log dir>/wazero-cache].
    #[arg(long, value_name = "DIR")]
    pub wasm_cache_dir: Option<PathBuf>,

    /// DIFC enforcement mode: strict, filter or propagate [env: MCP_GATEWAY_GUARDS_MODE] [default: filter].
    #[arg(long, value_name = "MODE")]
    pub guards_mode: Option<String>,

    /// Upstream GitHub API URL [default: from GITHUB_API_URL or GITHUB_SERVER_URL, else https://api.github.com].
    #[arg(long, value_name = "URL")]
    pub github_api_url: Option<String>,

    /// Force repos="public" when the workflow repository (GITHUB_REPOSITORY) is public [env: MCP_GATEWAY_FORCE_PUBLIC_REPOS] [default: true].
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, value_name = "BOOL")]
    pub force_public_repos: Option<bool>,

    /// Serve HTTPS with a generated CA and server certificate.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value_t = false, value_name = "BOOL", hide_default_value = true, hide_possible_values = true)]
    pub tls: bool,

    /// Directory of the generated certificates [default: <log-dir>/proxy-tls].
    #[arg(long, value_name = "DIR")]
    pub tls_dir: Option<PathBuf>,

    /// Additional DNS name of the generated server certificate (repeatable or comma-separated; requires --tls).
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub tls_dns_name: Vec<String>,

    /// Additional trusted bot usernames (comma-separated, extends the guard's built-in list).
    #[arg(long, value_name = "LOGINS", value_delimiter = ',')]
    pub trusted_bots: Vec<String>,

    /// User logins that receive approved integrity (comma-separated).
    #[arg(long, value_name = "LOGINS", value_delimiter = ',')]
    pub trusted_users: Vec<String>,

    /// Time an upstream request (headers and body) may take [default: 60s].
    #[arg(long, value_name = "DURATION")]
    pub upstream_timeout: Option<String>,

    /// OTLP/HTTP trace endpoint (accepted for compatibility; spans are not exported).
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,

    /// Service name of exported spans [default: mcp-gateway].
    #[arg(long, value_name = "NAME")]
    pub otlp_service_name: Option<String>,

    /// Fraction of traces sampled (0.0 to 1.0) [default: 1.0].
    #[arg(long, value_name = "RATE")]
    pub otlp_sample_rate: Option<f64>,
}

/// The proxy's settings once flags, variables and defaults are combined.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    pub guard_wasm: PathBuf,
    /// The policy JSON, when one is given (flag or variable, non-empty).
    pub policy: Option<String>,
    /// The fallback token: `--github-token`, else the token variables.
    pub token: Option<github::Token>,
    pub listen: String,
    pub log_dir: PathBuf,
    pub wasm_cache_dir: Option<PathBuf>,
    pub mode: guardway_difc::EnforcementMode,
    pub api_url: String,
    pub force_public_repos: bool,
    /// The TLS directory with `--tls`.
    pub tls_dir: Option<PathBuf>,
    pub tls_dns_names: Vec<String>,
    pub trusted_bots: Vec<String>,
    pub trusted_users: Vec<String>,
    pub upstream_timeout: std::time::Duration,
    pub otlp_endpoint: Option<String>,
}

fn cleaned(list: Vec<String>) -> Vec<String> {
    list.into_iter()
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect()
}

/// Combines flags, variables (through `var`) and defaults.
///
/// # Errors
/// A flag that is missing, out of range or inconsistent, as the reference
/// reports it.
pub fn resolve(
    args: ProxyArgs,
    var: impl Fn(&str) -> Option<String>,
    container_guard_exists: bool,
) -> anyhow::Result<ProxyOptions> {
    let non_empty = |name: &str| var(name).filter(|value| !value.trim().is_empty());
    if !args.tls_dns_name.is_empty() && !args.tls {
        anyhow::bail!("--tls-dns-name requires --tls");
    }
    let mode_text = args
        .guards_mode
        .clone()
        .or_else(|| non_empty("MCP_GATEWAY_GUARDS_MODE"))
        .unwrap_or_else(|| "filter".to_owned());
    let mode = mode_text
        .parse::<guardway_difc::EnforcementMode>()
        .map_err(|error| anyhow::anyhow!("invalid --guards-mode flag: {error}"))?;
    let guard_wasm = match args.guard_wasm {
        Some(path) => path,
        None if container_guard_exists => PathBuf::from(CONTAINER_GUARD_WASM),
        None => anyhow::bail!("required flag(s) \"guard-wasm\" not set"),
    };
    let policy = args
        .policy
        .or_else(|| var("MCP_GATEWAY_GUARD_POLICY_JSON"))
        .filter(|policy| !policy.trim().is_empty());
    let log_dir = args
        .log_dir
        .or_else(|| non_empty("MCP_GATEWAY_LOG_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_LOG_DIR));
    let token = args
        .github_token
        .filter(|token| !token.trim().is_empty())
        .map(|token| github::Token::new("--github-token", token))
        .or_else(|| github::lookup_token(&var));
    let api_url = args
        .github_api_url
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| github::derive_api_url(&var, github::DEFAULT_API_URL));
    let force_public_repos = args.force_public_repos.unwrap_or_else(|| {
        github::env_bool(var(github::FORCE_PUBLIC_REPOS_VARIABLE).as_deref()).unwrap_or(true)
    });
    let tls_dir = args
        .tls
        .then(|| args.tls_dir.unwrap_or_else(|| log_dir.join("proxy-tls")));
    let upstream_timeout = match &args.upstream_timeout {
        Some(text) => guardway_gateway::config::parse_duration(text)
            .map_err(|error| anyhow::anyhow!("invalid --upstream-timeout: {error}"))?,
        None => guardway_proxy::DEFAULT_UPSTREAM_TIMEOUT,
    };
    if upstream_timeout.is_zero() {
        anyhow::bail!("invalid --upstream-timeout: must be positive");
    }
    if let Some(rate) = args.otlp_sample_rate
        && !(0.0..=1.0).contains(&rate)
    {
        anyhow::bail!("invalid --otlp-sample-rate {rate}: expected a fraction from 0.0 to 1.0");
    }
    Ok(ProxyOptions {
        guard_wasm,
        policy,
        token,
        listen: args.listen,
        log_dir,
        wasm_cache_dir: args.wasm_cache_dir,
        mode,
        api_url,
        force_public_repos,
        tls_dir,
        tls_dns_names: cleaned(args.tls_dns_name),
        trusted_bots: cleaned(args.trusted_bots),
        trusted_users: cleaned(args.trusted_users),
        upstream_timeout,
        otlp_endpoint: args.otlp_endpoint.filter(|e| !e.trim().is_empty()),
    })
}

/// Configures the process-wide guard compilation cache: `--wasm-cache-dir`,
/// else the variables, else `<parent of log dir>/wazero-cache`.
fn configure_compilation_cache(options: &ProxyOptions) {
    let disk_dir = crate::cmd::cache::configure_serving_cache(
        options.wasm_cache_dir.as_deref(),
        &options.log_dir,
        false,
        None,
    );
    tracing::info!(
        "WASM compilation cache directory: {}",
        disk_dir
            .map(|d| d.display().to_string())
            .unwrap_or_default()
    );
}

pub fn run(args: ProxyArgs) -> anyhow::Result<ExitCode> {
    let options = resolve(
        args,
        |name| std::env::var(name).ok(),
        Path::new(CONTAINER_GUARD_WASM).exists(),
    )?;
    guardway_gateway::logfiles::install_global_logging_with(
        &options.log_dir,
        guardway_gateway::logfiles::LogLayout::PROXY,
        "info",
    );
    crate::memory::return_freed_memory_in_background();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    configure_compilation_cache(&options);
    let served = runtime.block_on(serve(options));
    if let Err(error) = guardway_wasm::CompilationCache::global().close() {
        tracing::error!(%error, "closing the WASM compilation cache failed");
    }
    guardway_gateway::logfiles::flush_global_logging();
    served?;
    Ok(ExitCode::SUCCESS)
}

/// Waits for SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

async fn serve(options: ProxyOptions) -> anyhow::Result<()> {
    tracing::info!(
        "MCPG Proxy starting: listen={}, guard={}, mode={}, tls={}",
        options.listen,
        options.guard_wasm.display(),
        options.mode,
        options.tls_dir.is_some()
    );
    if let Some(endpoint) = &options.otlp_endpoint {
        tracing::warn!(%endpoint, "OpenTelemetry export is not supported by guardway proxy; --otlp-endpoint is ignored");
    }
    if options.token.is_some() {
        tracing::info!("GitHub token configured from flag/env");
    } else {
        tracing::info!("No fallback token — proxy will forward client Authorization headers");
    }
    tracing::info!("Upstream GitHub API URL: {}", options.api_url);
    let upstream = Arc::new(
        Upstream::new(
            &options.api_url,
            options.token.as_ref().map(|token| token.value().to_owned()),
            options.upstream_timeout,
        )
        .context("failed to create proxy server")?,
    );
    let pipeline = build_pipeline(&options, &upstream).await?;
    let tls = match &options.tls_dir {
        Some(dir) => {
            let generated = guardway_proxy::generate_self_signed(dir, &options.tls_dns_names)
                .context("failed to generate TLS certificates")?;
            tracing::info!(
                "TLS certificates generated: ca={}",
                generated.ca_cert_path.display()
            );
            Some(generated)
        }
        None => None,
    };
    let state = Arc::new(ProxyState {
        upstream,
        pipeline,
        metrics: Arc::default(),
        // The handle the global logger writes through (same directory).
        log_files: Some(guardway_gateway::logfiles::LogFiles::open_with(
            &options.log_dir,
            guardway_gateway::logfiles::LogLayout::PROXY,
        )),
    });
    let running = guardway_proxy::serve(
        &options.listen,
        tls.as_ref().map(|tls| tls.config.clone()),
        state,
    )
    .await
    .map_err(|error| match error {
        guardway_proxy::ServeError::Bind { address, source } => {
            anyhow::anyhow!("failed to listen on {address}: {source}")
        }
        other => anyhow::Error::new(other),
    })?;
    let scheme = running.scheme();
    let address = running.local_addr();
    tracing::info!("Proxy listening on {scheme}://{address}");
    print_banner(&options, scheme, address, tls.as_ref());
    let mut running = running;
    tokio::select! {
        () = shutdown_signal() => {
            tracing::info!("Proxy shutting down");
            running.stop().await.context("the proxy stopped with an error")?;
        }
        served = running.wait() => {
            served.context("the proxy stopped with an error")?;
        }
    }
    Ok(())
}

/// The guard pipeline: the guard is loaded (always, as the reference
/// does, so a bad module stops the proxy) and, with a policy, bound to it
/// in the gateway's DIFC pipeline (`label_agent` runs now).
async fn build_pipeline(
    options: &ProxyOptions,
    upstream: &Arc<Upstream>,
) -> anyhow::Result<Option<Arc<dyn ProxyPipeline>>> {
    guardway_wasm::GuardModule::from_file(
        &options.guard_wasm,
        &guardway_wasm::GuardOptions::default(),
    )
    .with_context(|| {
        format!(
            "failed to create proxy server: failed to load WASM guard from {}",
            options.guard_wasm.display()
        )
    })?;
    let Some(policy) = &options.policy else {
        tracing::info!("No guard policy configured, running without policy enforcement");
        return Ok(None);
    };
    let policy = force_public_repos(options, policy, |name| std::env::var(name).ok()).await;
    let fail = |what: String| {
        anyhow::anyhow!("failed to create proxy server: failed to initialize guard policy: {what}")
    };
    let mut policy: serde_json::Value = serde_json::from_str(&policy)
        .map_err(|error| fail(format!("invalid policy JSON: {error}")))?;
    if let Some(object) = policy.as_object_mut()
        && !object.contains_key("allow-only")
        && let Some(legacy) = object.remove("allowonly")
    {
        object.insert("allow-only".to_owned(), legacy);
    }
    guardway_difc::prepare_label_agent_policy(policy.clone())
        .map_err(|error| fail(format!("policy validation failed: {error}")))?;
    let pipeline = guardway_proxy::GatewayPipeline::build(guardway_proxy::GatewayPipelineOptions {
        guard_wasm: options.guard_wasm.clone(),
        policy,
        trusted_bots: options.trusted_bots.clone(),
        trusted_users: options.trusted_users.clone(),
        mode: options.mode,
        call_backend: Arc::new(guardway_proxy::RestBackend::new(upstream.clone())),
    })
    .await
    .map_err(|error| fail(error.to_string()))?;
    Ok(Some(Arc::new(pipeline)))
}

/// force-public-repos, once at start-up: when the workflow repository
/// (`GITHUB_REPOSITORY`) is public, the policy's allow-only `repos`
/// becomes `"public"`. The look-up goes to the proxy's upstream with the
/// fallback token (`--github-token`, else the token variables); any failure
/// keeps the policy as given (the reference fails open).
async fn force_public_repos(
    options: &ProxyOptions,
    policy: &str,
    var: impl Fn(&str) -> Option<String>,
) -> String {
    let mut env = github::GitHubEnv::from_lookup(var).with_api_url(options.api_url.clone());
    if let Some(token) = &options.token {
        env = env.with_token(token.clone());
    }
    let visibility = github::WorkflowVisibility::new(env, github::PROXY_LOOKUP_TIMEOUT);
    github::proxy_force_public_repos(policy, options.force_public_repos, &visibility).await
}

/// The connection summary on stderr, as the reference prints it.
fn print_banner(
    options: &ProxyOptions,
    scheme: &str,
    address: std::net::SocketAddr,
    tls: Option<&guardway_proxy::GeneratedTls>,
) {
    let mut text = format!(
        "\nMCPG GitHub API Proxy\n  Listening: {scheme}://{address}\n  Upstream:  {}\n  Mode:      {}\n  Guard:     {}\n",
        options.api_url,
        options.mode,
        options.guard_wasm.display()
    );
    match tls {
        Some(tls) => {
            let ca = tls.ca_cert_path.display();
            text.push_str(&format!(
                "  CA cert:   {ca}\n\nConnect with:\n  export GH_HOST={}\n  export NODE_EXTRA_CA_CERTS={ca}\n  export SSL_CERT_FILE={ca}\n  export GIT_SSL_CAINFO={ca}\n  gh issue list -R org/repo\n\n",
                guardway_proxy::client_address(address)
            ));
        }
        None => text.push_str(&format!(
            "\nConnect with:\n  curl http://{address}/repos/org/repo/issues\n\n"
        )),
    }
    eprint!("{text}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::collections::HashMap;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ProxyArgs,
    }

    fn resolved(flags: &[&str], vars: &[(&str, &str)]) -> anyhow::Result<ProxyOptions> {
        let mut argv = vec!["proxy"];
        argv.extend_from_slice(flags);
        let args = Cli::try_parse_from(argv).unwrap().args;
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        resolve(args, |name| vars.get(name).cloned(), false)
    }

    #[test]
    fn defaults_follow_the_reference() {
        let options = resolved(&["--guard-wasm", "g.wasm"], &[]).unwrap();
        assert_eq!(options.listen, "127.0.0.1:8080");
        assert_eq!(options.log_dir, PathBuf::from("/tmp/gh-aw/mcp-logs"));
        assert_eq!(options.mode, guardway_difc::EnforcementMode::Filter);
        assert_eq!(options.api_url, "https://api.github.com");
        assert!(options.force_public_repos);
        assert_eq!(options.policy, None);
        assert_eq!(options.token, None);
        assert_eq!(options.tls_dir, None);
        assert_eq!(options.upstream_timeout, std::time::Duration::from_secs(60));
    }

    #[test]
    fn variables_fill_in_for_flags() {
        let options = resolved(
            &[
                "--guard-wasm",
                "g.wasm",
                "--tls",
                "--trusted-bots",
                "a[bot], b[bot]",
                "--trusted-users",
                "x",
                "--trusted-users",
                "y",
            ],
            &[
                ("MCP_GATEWAY_GUARD_POLICY_JSON", "{\"allow-only\":{}}"),
                ("MCP_GATEWAY_LOG_DIR", "/var/log/g"),
                ("MCP_GATEWAY_GUARDS_MODE", "propagate"),
                ("MCP_GATEWAY_FORCE_PUBLIC_REPOS", "false"),
                ("GH_TOKEN", "t"),
                ("GITHUB_SERVER_URL", "https://ghes.example"),
            ],
        )
        .unwrap();
        assert_eq!(options.policy.as_deref(), Some("{\"allow-only\":{}}"));
        assert_eq!(options.log_dir, PathBuf::from("/var/log/g"));
        assert_eq!(options.tls_dir, Some(PathBuf::from("/var/log/g/proxy-tls")));
        assert_eq!(options.mode, guardway_difc::EnforcementMode::Propagate);
        assert!(!options.force_public_repos);
        assert_eq!(options.token.as_ref().map(github::Token::value), Some("t"));
        assert_eq!(
            options.token.as_ref().map(github::Token::source),
            Some("GH_TOKEN")
        );
        assert_eq!(options.api_url, "https://ghes.example/api/v3");
        assert_eq!(options.trusted_bots, ["a[bot]", "b[bot]"]);
        assert_eq!(options.trusted_users, ["x", "y"]);
        // Flags win over variables.
        let options = resolved(
            &[
                "--guard-wasm",
                "g.wasm",
                "--guards-mode",
                "strict",
                "--github-token",
                "f",
                "--force-public-repos=true",
                "--github-api-url",
                "http://127.0.0.1:9",
            ],
            &[
                ("MCP_GATEWAY_GUARDS_MODE", "propagate"),
                ("GH_TOKEN", "t"),
                ("MCP_GATEWAY_FORCE_PUBLIC_REPOS", "false"),
            ],
        )
        .unwrap();
        assert_eq!(options.mode, guardway_difc::EnforcementMode::Strict);
        assert_eq!(options.token.as_ref().map(github::Token::value), Some("f"));
        assert_eq!(
            options.token.as_ref().map(github::Token::source),
            Some("--github-token")
        );
        assert!(options.force_public_repos);
        assert_eq!(options.api_url, "http://127.0.0.1:9");
    }

    #[test]
    fn inconsistent_flags_are_refused() {
        let err = |flags: &[&str]| resolved(flags, &[]).unwrap_err().to_string();
        assert_eq!(
            err(&["--guard-wasm", "g", "--tls-dns-name", "x"]),
            "--tls-dns-name requires --tls"
        );
        assert!(
            err(&["--guard-wasm", "g", "--guards-mode", "lenient"])
                .starts_with("invalid --guards-mode flag: unknown enforcement mode: lenient")
        );
        assert_eq!(err(&[]), "required flag(s) \"guard-wasm\" not set");
        assert!(
            err(&["--guard-wasm", "g", "--upstream-timeout", "soon"])
                .starts_with("invalid --upstream-timeout")
        );
        assert!(
            err(&["--guard-wasm", "g", "--upstream-timeout", "0"])
                .starts_with("invalid --upstream-timeout")
        );
        assert!(
            err(&["--guard-wasm", "g", "--otlp-sample-rate", "2"])
                .starts_with("invalid --otlp-sample-rate")
        );
    }

    #[test]
    fn the_force_public_variable_takes_the_gateways_words() {
        let forced = |value: &str| {
            resolved(
                &["--guard-wasm", "g.wasm"],
                &[("MCP_GATEWAY_FORCE_PUBLIC_REPOS", value)],
            )
            .unwrap()
            .force_public_repos
        };
        for off in ["false", "0", "no", "OFF", "False"] {
            assert!(!forced(off), "{off}");
        }
        // Anything else keeps the default (on).
        for on in ["true", "1", "yes", "on", "", "maybe"] {
            assert!(forced(on), "{on}");
        }
    }

    /// The upstream without `--github-api-url`, as the reference derives
    /// it from `GITHUB_SERVER_URL`.
    #[test]
    fn the_upstream_is_derived_from_the_server_url() {
        let cases = [
            ("https://github.com", "https://api.github.com"),
            ("https://www.github.com/", "https://api.github.com"),
            ("https://GITHUB.COM", "https://api.github.com"),
            ("https://github.com/org/repo", "https://api.github.com"),
            (
                "https://mycompany.ghe.com",
                "https://copilot-api.mycompany.ghe.com",
            ),
            (
                "http://mycompany.ghe.com",
                "http://copilot-api.mycompany.ghe.com",
            ),
            (
                "https://deep.nested.tenant.ghe.com",
                "https://copilot-api.deep.nested.tenant.ghe.com",
            ),
            (
                "https://MYCOMPANY.GHE.COM",
                "https://copilot-api.mycompany.ghe.com",
            ),
            (
                "https://tenant.ghe.com:8443",
                "https://copilot-api.tenant.ghe.com:8443",
            ),
            ("https://ghe.com", "https://ghe.com/api/v3"),
            (
                "http://github.mycompany.com",
                "http://github.mycompany.com/api/v3",
            ),
            (
                "https://github.example.com/enterprise",
                "https://github.example.com/api/v3",
            ),
            (
                "https://github.example.com:8443",
                "https://github.example.com:8443/api/v3",
            ),
            ("http://", "https://api.github.com"),
            ("file:///some/path", "https://api.github.com"),
            ("not-a-valid-url", "https://api.github.com"),
        ];
        for (server, expected) in cases {
            let options = resolved(
                &["--guard-wasm", "g.wasm"],
                &[("GITHUB_SERVER_URL", server)],
            )
            .unwrap();
            assert_eq!(options.api_url, expected, "{server}");
        }
        // GITHUB_API_URL wins, without its trailing slash.
        let options = resolved(
            &["--guard-wasm", "g.wasm"],
            &[
                ("GITHUB_API_URL", "https://ghes.example/api/v3/"),
                ("GITHUB_SERVER_URL", "https://github.com"),
            ],
        )
        .unwrap();
        assert_eq!(options.api_url, "https://ghes.example/api/v3");
    }

    #[test]
    fn tokens_are_looked_up_in_the_references_order() {
        let token = |vars: &[(&str, &str)]| {
            resolved(&["--guard-wasm", "g.wasm"], vars)
                .unwrap()
                .token
                .map(|token| token.value().to_owned())
        };
        assert_eq!(token(&[]), None);
        assert_eq!(
            token(&[("GH_TOKEN", "d"), ("GITHUB_TOKEN", " b ")]).as_deref(),
            Some("b")
        );
        assert_eq!(
            token(&[
                ("GITHUB_MCP_SERVER_TOKEN", "  "),
                ("GITHUB_PERSONAL_ACCESS_TOKEN", "c")
            ])
            .as_deref(),
            Some("c")
        );
    }
}
