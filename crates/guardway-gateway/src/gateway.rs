//! Starting, running and stopping a gateway: eager backend launch, the HTTP
//! listener, the stdout start-up document, signals and graceful shutdown,
//! and `serve --stdio`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rmcp::ServiceExt;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::agent::http::HttpState;
use crate::agent::server::{AgentSession, GatewayCore, SessionScope};
use crate::backend::Backend;
use crate::backend::relay::NotificationRelay;
use crate::config::{RoutingMode, ServeOptions, ServerTransport};
use crate::error::GatewayError;
use crate::observe::digest::{DigestServer, StartupDigest};
use crate::observe::logfiles::LogFiles;
use crate::pipeline::{CallInterceptor, PassThrough};

/// Period of the relaunch monitor for backends whose launch failed.
const MONITOR_PERIOD: Duration = Duration::from_secs(30);

/// Entry point for building a gateway.
#[derive(Debug)]
pub struct Gateway;

/// A gateway serving HTTP. Dropping it does not stop it; call `shutdown`.
pub struct RunningGateway {
    local_addr: SocketAddr,
    api_key: String,
    mode: RoutingMode,
    /// Whether the listener speaks TLS (`https` in the start-up document).
    tls: bool,
    core: Arc<GatewayCore>,
    configured_tools: BTreeMap<String, Option<Vec<String>>>,
    shutting_down: Arc<AtomicBool>,
    sessions_ct: CancellationToken,
    stop_server: CancellationToken,
    monitor_ct: CancellationToken,
    close_requested: CancellationToken,
    shutdown_timeout: Duration,
    server_task: tokio::task::JoinHandle<Result<(), std::io::Error>>,
    log_files: Arc<LogFiles>,
}

impl std::fmt::Debug for RunningGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningGateway")
            .field("local_addr", &self.local_addr)
            .field("mode", &self.mode)
            .finish()
    }
}

fn build_core(
    options: &ServeOptions,
    interceptor: Arc<dyn CallInterceptor>,
    log_files: &Arc<LogFiles>,
) -> Arc<GatewayCore> {
    let relay = Arc::new(NotificationRelay::default());
    let settings = &options.config.gateway;
    let backends = options
        .config
        .servers
        .iter()
        .map(|(id, server)| {
            (
                id.clone(),
                Backend::new(
                    id.clone(),
                    server.clone(),
                    settings.startup_timeout,
                    settings.tool_timeout,
                    relay.clone(),
                ),
            )
        })
        .collect::<BTreeMap<String, Arc<Backend>>>();
    for backend in backends.values() {
        backend.attach_log_files(log_files.clone());
        backend.set_keepalive_interval(settings.keepalive_interval);
    }
    Arc::new(GatewayCore {
        backends,
        relay,
        interceptor,
        in_flight: Default::default(),
        postprocess: crate::pipeline::postprocess::ResultPostProcessor::new(settings),
    })
}

/// The start-up digest of a gateway whose backends were launched and whose
/// interceptor was prepared; `listen` is `None` for `serve --stdio`.
fn startup_digest(
    options: &ServeOptions,
    core: &GatewayCore,
    listen: Option<std::net::SocketAddr>,
) -> StartupDigest {
    let (mode, listen) = match (listen, options.mode) {
        (None, _) => ("stdio (unified)", "stdin/stdout".to_owned()),
        (Some(addr), RoutingMode::Routed) => ("routed", addr.to_string()),
        (Some(addr), RoutingMode::Unified) => ("unified", addr.to_string()),
    };
    let servers = core
        .backends
        .iter()
        .map(|(id, backend)| {
            let health = backend.health();
            let transport = match &backend.config().transport {
                ServerTransport::Stdio { command, .. } => format!("stdio `{command}`"),
                ServerTransport::Http { url, .. } => format!("http `{url}`"),
            };
            DigestServer {
                id: id.clone(),
                transport,
                status: health.status.as_str().to_owned(),
                tools: backend.tools().len(),
                error: health.last_error,
            }
        })
        .collect();
    let cache = if options.no_wasm_cache {
        "disabled".to_owned()
    } else {
        match &options.wasm_cache_dir {
            Some(dir) => format!("`{}`", dir.display()),
            None => "memory only".to_owned(),
        }
    };
    StartupDigest {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        mode: mode.to_owned(),
        listen,
        servers,
        guards: core.interceptor.guard_states(),
        cache,
        policies: core.interceptor.startup_policies(),
    }
}

/// Writes `tools.json` with every backend's allowed tools.
fn write_tools_file(core: &GatewayCore, log_files: &LogFiles) {
    let servers = core
        .backends
        .iter()
        .map(|(id, backend)| {
            let tools = backend
                .tools()
                .into_iter()
                .map(|t| {
                    let description = t.description.as_deref().unwrap_or_default().to_owned();
                    (t.name.to_string(), description)
                })
                .collect();
            (id.clone(), tools)
        })
        .collect();
    log_files.write_tools(&servers);
}

async fn launch_all(core: &GatewayCore, sequential: bool) {
    if sequential {
        for backend in core.backends.values() {
            let _ = backend.start().await;
        }
    } else {
        futures::future::join_all(core.backends.values().map(|b| b.start())).await;
    }
    let failed: Vec<&str> = core
        .backends
        .values()
        .filter(|b| b.health().status == crate::backend::BackendStatus::Error)
        .map(|b| b.id())
        .collect();
    if !failed.is_empty() {
        tracing::warn!(
            servers = ?failed,
            "some backends failed to start; agents will not see tools from these servers until they recover"
        );
    }
}

/// Lets the interceptor load what it needs (guards) before agents are served;
/// on failure the backends are stopped.
async fn prepare_interceptor(core: &GatewayCore) -> Result<(), GatewayError> {
    if let Err(message) = core.interceptor.prepare(&core.backends).await {
        futures::future::join_all(core.backends.values().map(|b| b.stop())).await;
        return Err(GatewayError::Guards { message });
    }
    Ok(())
}

fn spawn_monitor(core: Arc<GatewayCore>, ct: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(MONITOR_PERIOD);
        tick.tick().await;
        loop {
            tokio::select! {
                () = ct.cancelled() => return,
                _ = tick.tick() => {}
            }
            for backend in core.backends.values() {
                if backend.wants_monitor_restart() {
                    tracing::info!(server = backend.id(), "relaunching failed backend");
                    let _ = backend.start().await;
                }
            }
        }
    });
}

/// Everything a serving gateway is made of except its listener.
struct Assembled {
    core: Arc<GatewayCore>,
    api_key: String,
    router: axum::Router,
    shutting_down: Arc<AtomicBool>,
    sessions_ct: CancellationToken,
    monitor_ct: CancellationToken,
    close_requested: CancellationToken,
    log_files: Arc<LogFiles>,
}

/// Launches the backends, prepares the interceptor and builds the router
/// (MCP routes, `/health`, `/metrics`, `/reflect`, `/close`).
async fn assemble(
    options: &ServeOptions,
    interceptor: Arc<dyn CallInterceptor>,
) -> Result<Assembled, GatewayError> {
    let api_key = match &options.config.gateway.api_key {
        Some(key) => key.clone(),
        None => crate::agent::auth::generate_api_key()
            .map_err(|message| GatewayError::KeyGeneration { message })?,
    };
    let log_files = LogFiles::open(&options.log_dir);
    let core = build_core(options, interceptor, &log_files);
    launch_all(&core, options.config.sequential_launch).await;
    prepare_interceptor(&core).await?;
    write_tools_file(&core, &log_files);
    let monitor_ct = CancellationToken::new();
    spawn_monitor(core.clone(), monitor_ct.clone());
    let shutting_down = Arc::new(AtomicBool::new(false));
    let sessions_ct = CancellationToken::new();
    let state = HttpState {
        core: core.clone(),
        api_key: Arc::from(api_key.as_str()),
        shutting_down: shutting_down.clone(),
        hmac: options
            .extra
            .hmac_secret
            .as_deref()
            .filter(|secret| !secret.is_empty())
            .map(|secret| Arc::new(crate::agent::hmac::HmacVerifier::new(secret.as_bytes()))),
    };
    let close_requested = CancellationToken::new();
    let close_routes = crate::agent::compat::close_router(crate::agent::compat::CloseState {
        api_key: state.api_key.clone(),
        closed: Arc::new(AtomicBool::new(false)),
        shutting_down: shutting_down.clone(),
        close_requested: close_requested.clone(),
        servers: core.backends.len(),
    });
    let router = crate::agent::http::router(
        state,
        options.mode,
        options.session_timeout,
        options.listen.ip().is_loopback(),
        sessions_ct.clone(),
    )
    .merge(close_routes)
    .layer(axum::middleware::from_fn(
        crate::agent::http::answer_after_body,
    ));
    Ok(Assembled {
        core,
        api_key,
        router,
        shutting_down,
        sessions_ct,
        monitor_ct,
        close_requested,
        log_files,
    })
}

/// A gateway without a listener: its router answers requests handed to it
/// in-process (the HTTP fuzz target drives it this way). Backends run as
/// for a serving gateway; call `shutdown` to stop them.
pub struct InProcessGateway {
    router: axum::Router,
    api_key: String,
    core: Arc<GatewayCore>,
    sessions_ct: CancellationToken,
    monitor_ct: CancellationToken,
    log_files: Arc<LogFiles>,
}

impl std::fmt::Debug for InProcessGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessGateway").finish_non_exhaustive()
    }
}

impl InProcessGateway {
    /// The router serving every endpoint of the HTTP surface.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// The key agents must send as `Authorization`.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// Ends the sessions and stops the backends.
    pub async fn shutdown(self) {
        self.monitor_ct.cancel();
        self.sessions_ct.cancel();
        futures::future::join_all(self.core.backends.values().map(|b| b.stop())).await;
        self.log_files.flush();
    }
}

impl Gateway {
    /// Like [`Gateway::start`] without binding a listener: the returned
    /// gateway's router answers requests handed to it directly.
    ///
    /// # Errors
    /// As [`Gateway::start`], except that nothing is bound.
    pub async fn in_process(options: ServeOptions) -> Result<InProcessGateway, GatewayError> {
        let assembled = assemble(&options, Arc::new(PassThrough)).await?;
        Ok(InProcessGateway {
            router: assembled.router,
            api_key: assembled.api_key,
            core: assembled.core,
            sessions_ct: assembled.sessions_ct,
            monitor_ct: assembled.monitor_ct,
            log_files: assembled.log_files,
        })
    }
}

impl Gateway {
    /// Launches the backends, binds the listener and serves HTTP, with
    /// every `tools/call` passed straight through.
    ///
    /// # Errors
    /// When the listener cannot be bound or no API key can be generated.
    /// Backends that fail to start do not fail the gateway.
    pub async fn start(options: ServeOptions) -> Result<RunningGateway, GatewayError> {
        Self::start_with_interceptor(options, Arc::new(PassThrough)).await
    }

    /// Like [`Gateway::start`], with `interceptor` around every `tools/call`.
    ///
    /// # Errors
    /// As [`Gateway::start`], and when the TLS files are unusable (checked
    /// before any backend starts).
    pub async fn start_with_interceptor(
        options: ServeOptions,
        interceptor: Arc<dyn CallInterceptor>,
    ) -> Result<RunningGateway, GatewayError> {
        let tls_config = match &options.extra.tls {
            Some(tls) => Some(crate::agent::tls::server_config(tls)?),
            None => None,
        };
        let Assembled {
            core,
            api_key,
            router,
            shutting_down,
            sessions_ct,
            monitor_ct,
            close_requested,
            log_files,
        } = assemble(&options, interceptor).await?;
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|source| GatewayError::Bind {
                addr: options.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| GatewayError::Bind {
            addr: options.listen,
            source,
        })?;
        let stop_server = CancellationToken::new();
        let stop = stop_server.clone();
        let tls = tls_config.is_some();
        let server_task = match tls_config {
            None => tokio::spawn(async move {
                let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                    crate::agent::set_nodelay(tcp)
                });
                axum::serve(listener, router)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await
            }),
            Some(config) => {
                let listener =
                    crate::agent::tls::TlsListener::new(listener, config).map_err(|source| {
                        GatewayError::Bind {
                            addr: options.listen,
                            source,
                        }
                    })?;
                tokio::spawn(async move {
                    axum::serve(listener, router)
                        .with_graceful_shutdown(async move { stop.cancelled().await })
                        .await
                })
            }
        };
        log_files.write_startup_digest(&startup_digest(&options, &core, Some(local_addr)));
        tracing::info!(%local_addr, mode = ?options.mode, tls, "gateway listening");
        Ok(RunningGateway {
            local_addr,
            api_key,
            mode: options.mode,
            tls,
            configured_tools: options
                .config
                .servers
                .iter()
                .map(|(id, s)| (id.clone(), s.tools.clone()))
                .collect(),
            core,
            shutting_down,
            sessions_ct,
            stop_server,
            monitor_ct,
            close_requested,
            shutdown_timeout: options.shutdown_timeout,
            server_task,
            log_files,
        })
    }
}

impl RunningGateway {
    /// Waits (up to 5 s) until every log line and `rpc-messages.jsonl`
    /// record of this gateway handed over so far is written (they are
    /// written in batches by a thread of their own).
    pub fn flush_logs(&self) {
        self.log_files.flush();
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The key agents must send as `Authorization`.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The backend with that id.
    pub fn backend(&self, id: &str) -> Option<&Arc<Backend>> {
        self.core.backends.get(id)
    }

    /// Call routes and progress queues still registered (zero when no call
    /// is in flight).
    pub fn pending_progress_routes(&self) -> usize {
        self.core.relay.pending_progress_routes()
    }

    /// Backend requests (sampling, elicitation, roots, ping) being relayed
    /// to agents (zero when none is waiting for an agent's answer).
    pub fn pending_relayed_requests(&self) -> usize {
        self.core.relay.pending_relayed_requests()
    }

    /// Cancelled once an agent asked for shutdown with `POST /close`; the
    /// owner then calls [`RunningGateway::shutdown`].
    pub fn close_requested(&self) -> CancellationToken {
        self.close_requested.clone()
    }

    /// The stdout start-up document (gateway.md §2).
    pub fn startup_document(&self) -> serde_json::Value {
        let ip = match self.local_addr.ip() {
            ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            ip => ip,
        };
        let host = SocketAddr::new(ip, self.local_addr.port());
        let scheme = if self.tls { "https" } else { "http" };
        let mut servers = serde_json::Map::new();
        for (id, tools) in &self.configured_tools {
            let url = match self.mode {
                RoutingMode::Routed => format!("{scheme}://{host}/mcp/{id}"),
                RoutingMode::Unified => format!("{scheme}://{host}/mcp"),
            };
            let mut entry = json!({
                "type": "http",
                "url": url,
                "headers": {"Authorization": self.api_key},
            });
            if let (Some(tools), Some(map)) = (tools, entry.as_object_mut()) {
                map.insert("tools".into(), json!(tools));
            }
            servers.insert(id.clone(), entry);
        }
        json!({ "mcpServers": servers })
    }

    /// Stops the gateway: MCP routes answer 503, in-flight calls get up to
    /// the shutdown timeout to finish, sessions end, backends stop.
    pub async fn shutdown(self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.monitor_ct.cancel();
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        while self.core.in_flight_calls() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.sessions_ct.cancel();
        futures::future::join_all(self.core.backends.values().map(|b| b.stop())).await;
        self.stop_server.cancel();
        let mut task = self.server_task;
        if tokio::time::timeout(Duration::from_secs(2), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
        self.log_files.flush();
        tracing::info!("gateway stopped");
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(error) => {
                    tracing::warn!(%error, "cannot watch SIGTERM");
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
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs a gateway until SIGINT/SIGTERM (HTTP) or until the agent closes
/// stdin (`--stdio`). In HTTP mode the start-up document is printed on
/// stdout once the listener is bound.
///
/// # Errors
/// When the gateway cannot start or stdout cannot be written.
pub async fn serve(options: ServeOptions) -> Result<(), GatewayError> {
    // A no-op when the caller installed logging already.
    crate::observe::logfiles::install_global_logging(&options.log_dir, "info");
    if options.stdio {
        return serve_stdio(options).await;
    }
    let interceptor = Arc::new(crate::pipeline::difc::GuardPipeline::new(&options));
    let banner = startup_banner(&options);
    let running = Gateway::start_with_interceptor(options, interceptor).await?;
    // Deployment scripts wait for the first of these on stderr before they
    // read the stdout document and connect.
    for line in banner {
        tracing::info!(target: STARTUP_LOG_TARGET, "{line}");
    }
    let document = serde_json::to_string_pretty(&running.startup_document()).map_err(|e| {
        GatewayError::StartupDocument {
            source: std::io::Error::other(e),
        }
    })?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{document}")
            .and_then(|()| out.flush())
            .map_err(|source| GatewayError::StartupDocument { source })?;
    }
    let close_requested = running.close_requested();
    tokio::select! {
        () = shutdown_signal() => tracing::info!("shutdown requested"),
        () = close_requested.cancelled() => {}
    }
    running.shutdown().await;
    Ok(())
}

/// Target of the start-up lines the reference writes under `startup`.
const STARTUP_LOG_TARGET: &str = "guardway::startup";

/// The reference's start-up banner, as it writes it once the gateway is
/// ready to listen (stderr and `mcp-gateway.log`, category `startup`):
/// mode and address, routes, TLS, HMAC.
fn startup_banner(options: &ServeOptions) -> Vec<String> {
    let listen = options.listen;
    let mut lines = match options.mode {
        RoutingMode::Routed => {
            let ids: Vec<&str> = options.config.servers.keys().map(String::as_str).collect();
            vec![
                format!("Starting MCPG in ROUTED mode on {listen}"),
                format!(
                    "Routes: /mcp/<server> where <server> is one of: [{}]",
                    ids.join(" ")
                ),
            ]
        }
        RoutingMode::Unified => vec![
            format!("Starting MCPG in UNIFIED mode on {listen}"),
            "Endpoint: /mcp".to_owned(),
        ],
    };
    lines.push(match &options.extra.tls {
        Some(tls) => {
            let ca = tls
                .client_ca
                .as_ref()
                .map(|ca| ca.display().to_string())
                .unwrap_or_default();
            let mtls = if tls.client_ca.is_some() {
                " (mTLS enabled)"
            } else {
                ""
            };
            format!(
                "TLS enabled: cert={}, key={}, ca={ca} — listening on https://{listen}{mtls}",
                tls.cert.display(),
                tls.key.display()
            )
        }
        None => format!(
            "TLS not configured — listening on http://{listen} (set --tls-cert/--tls-key to enable)"
        ),
    });
    if options
        .extra
        .hmac_secret
        .as_deref()
        .is_some_and(|secret| !secret.is_empty())
    {
        lines.push("HMAC request signing enabled (ASI-07)".to_owned());
    }
    lines
}

/// Serves one agent over stdin/stdout with the unified tool table.
async fn serve_stdio(options: ServeOptions) -> Result<(), GatewayError> {
    Gateway::serve_stream(options, tokio::io::stdin(), tokio::io::stdout()).await
}

impl Gateway {
    /// Serves one agent speaking newline-delimited MCP on `reader`/`writer`
    /// (what `serve --stdio` does with stdin/stdout), unified tool table,
    /// until the agent closes its side or a shutdown signal arrives; then
    /// stops the backends.
    ///
    /// # Errors
    /// When the agent's `initialize` handshake fails.
    pub async fn serve_stream<R, W>(
        options: ServeOptions,
        reader: R,
        writer: W,
    ) -> Result<(), GatewayError>
    where
        R: tokio::io::AsyncRead + Send + Unpin + 'static,
        W: tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let log_files = LogFiles::open(&options.log_dir);
        let interceptor = Arc::new(crate::pipeline::difc::GuardPipeline::new(&options));
        let core = build_core(&options, interceptor, &log_files);
        launch_all(&core, options.config.sequential_launch).await;
        prepare_interceptor(&core).await?;
        write_tools_file(&core, &log_files);
        log_files.write_startup_digest(&startup_digest(&options, &core, None));
        let monitor_ct = CancellationToken::new();
        spawn_monitor(core.clone(), monitor_ct.clone());
        let session = AgentSession::new(core.clone(), SessionScope::Unified);
        let result = match session.serve((reader, writer)).await {
            Ok(running) => {
                tokio::select! {
                    _ = running.waiting() => Ok(()),
                    () = shutdown_signal() => Ok(()),
                }
            }
            Err(e) => Err(GatewayError::Stdio {
                message: e.to_string(),
            }),
        };
        monitor_ct.cancel();
        futures::future::join_all(core.backends.values().map(|b| b.stop())).await;
        log_files.flush();
        result
    }
}
