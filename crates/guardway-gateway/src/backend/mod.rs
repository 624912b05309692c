//! One backend MCP server: its connection (a stdio child process or an HTTP
//! endpoint, both through `rmcp`), its tool and prompt lists, health,
//! restart with backoff, per-call timeout and circuit breaker; for `http`
//! backends also keep-alive pings, one reconnect and retry when the backend
//! lost the session, and `github-oidc` token renewal.
//!
//! The HTTP connection lives in submodules: `http_connect` (the transport
//! fallback: streamable HTTP, SSE, plain JSON-RPC POST), `http_transport`
//! (the SSE and POST transports rmcp has no client for), `http_client`
//! (reqwest over rustls/ring and the trusted roots) and `oidc` (tokens).
//! A stdio process's connection is `stdio_link`: rmcp's client for
//! everything but `tools/call`, which takes the link's lane (written by the
//! calling task, answered by the link's reader) and so skips rmcp's service
//! loop on the hot path.
//!
//! Around the connection: `breaker` (the per-backend circuit breaker),
//! `relay` (the backend's notifications and progress on their way back to
//! agents) and `error` (how a backend call fails, as the agent sees it).
//! `<id>.log` and `rpc-messages.jsonl` are written through the
//! `crate::observe::logfiles::LogFiles` handle the gateway attaches.
//!
//! Connections (gateway.md §5.2): the start-up connection serves discovery
//! and calls without an agent id; a stdio backend gets one more process per
//! agent id, started on its first call and closed after
//! [`AGENT_PROCESS_IDLE`] without calls; HTTP backends share one connection.

// MCP logging is deprecated by the newest protocol revision but still
// carried for agents and backends that speak older ones.
#![allow(deprecated)]

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, ClientCapabilities, ClientConfig,
    ClientRequest, GetPromptRequestParams, GetPromptResult, Implementation,
    ListResourceTemplatesResult, ListResourcesResult, LoggingMessageNotificationParam,
    PaginatedRequestParams, ProgressToken, Prompt, ReadResourceRequestParams, ReadResourceResult,
    RequestMetaObject, ServerResult, SetLevelRequestParams, Tool,
};
use rmcp::model::{GetExtensions, GetMeta};
use rmcp::service::{NotificationContext, PeerRequestOptions, RunningService};
use rmcp::{ClientHandler, Peer, RoleClient, ServiceError, ServiceExt};
use tokio::io::AsyncBufReadExt;

use crate::config::{ServerConfig, ServerTransport};

pub mod breaker;
pub mod error;
mod http_client;
mod http_connect;
mod http_transport;
mod oidc;
pub mod relay;
mod stdio_link;

use breaker::{Admission, CircuitBreaker, detect_rate_limit};
use error::BackendError;
pub use http_client::install_crypto_provider;
pub use http_connect::HttpTransportKind;
use oidc::OidcTokenSource;
use relay::{NotificationRelay, ProgressOrderingTransport};
use stdio_link::StdioLink;

/// Health of a backend as `/health` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendStatus {
    /// Connected.
    Running,
    /// Was connected, the connection ended; restarted on next use.
    Stopped,
    /// The last launch failed.
    Error,
}

impl BackendStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stopped => "stopped",
            Self::Error => "error",
        }
    }
}

/// Failed launches after which the periodic monitor leaves a backend alone.
const MAX_MONITOR_RESTARTS: u32 = 3;
/// Longest wait between launch attempts triggered by calls.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// An agent's stdio process is closed after this long without calls.
pub const AGENT_PROCESS_IDLE: Duration = Duration::from_secs(6 * 3600);
/// Wait before another token renewal after one failed.
const TOKEN_RENEWAL_RETRY: Duration = Duration::from_secs(10);
/// Period of the sweep closing idle agent processes.
const AGENT_SWEEP_PERIOD: Duration = Duration::from_secs(300);
/// How long a connection may take to close (a stdio process's whole
/// shutdown sequence, `stdio_link`) before it is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// One agent's own process of a stdio backend.
struct AgentProcess {
    connection: Connection,
    lane: Option<Arc<StdioLink>>,
    last_used: Instant,
}

#[derive(Debug)]
struct Health {
    status: BackendStatus,
    connected_at: Option<Instant>,
    consecutive_failures: u32,
    next_attempt: Option<Instant>,
    last_error: Option<String>,
    launches: u64,
    agent_launches: u64,
    /// Set by `stop`: no more launches.
    stopped: bool,
}

#[derive(Debug, Default, Clone)]
struct Catalog {
    tools: Vec<Tool>,
    prompts: Vec<Prompt>,
    has_resources: bool,
}

/// A snapshot of a backend's health.
#[derive(Debug, Clone)]
pub struct BackendHealth {
    pub status: BackendStatus,
    pub uptime: Duration,
    pub last_error: Option<String>,
    /// Successful and failed launches of the shared (start-up)
    /// connection since start-up.
    pub launches: u64,
    /// Launches of per-agent processes (gateway.md §5.2) since start-up.
    pub agent_launches: u64,
}

/// The `rmcp` client handler of one backend connection: relays the
/// backend's notifications to agents.
#[derive(Clone)]
pub struct BackendClient {
    server: String,
    relay: Arc<NotificationRelay>,
    catalog_stale: Arc<tokio::sync::Notify>,
}

impl ClientHandler for BackendClient {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("guardway", env!("CARGO_PKG_VERSION")),
        )
    }

    #[allow(deprecated)]
    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.relay.log_message(&self.server, params).await;
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.catalog_stale.notify_one();
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.catalog_stale.notify_one();
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.relay.resources_changed(&self.server).await;
    }
}

// Progress is not relayed from `on_progress`: `rmcp` runs that handler on a
// task of its own, which may run after the call's result was returned.
// `serve_ordered` queues progress in the order the transport reads it.
impl BackendClient {
    /// Starts the MCP session over `transport`, relaying the backend's
    /// progress in order ([`ProgressOrderingTransport`]).
    pub(crate) async fn serve_ordered<T>(
        self,
        transport: T,
    ) -> Result<Connection, rmcp::service::ClientInitializeError>
    where
        T: rmcp::transport::Transport<RoleClient> + 'static,
    {
        let transport =
            ProgressOrderingTransport::new(transport, self.server.clone(), self.relay.clone());
        self.serve(transport).await
    }
}

type Connection = RunningService<RoleClient, BackendClient>;

/// A live connection's peer and, for a stdio process, its tool-call lane
/// (`stdio_link`).
#[derive(Clone)]
struct Live {
    peer: Peer<RoleClient>,
    lane: Option<Arc<StdioLink>>,
}

impl Live {
    /// The lane, when a tools/call may take it: rmcp adds per-request
    /// metadata on connections without an `initialize` handshake, so those
    /// keep rmcp's path.
    fn lane(&self) -> Option<&Arc<StdioLink>> {
        let handshake = self
            .peer
            .peer_info()
            .is_some_and(|info| info.protocol_version.has_initialize());
        self.lane.as_ref().filter(|_| handshake)
    }
}

/// One configured backend. Thread-safe; shared as `Arc<Backend>`.
pub struct Backend {
    id: String,
    config: ServerConfig,
    startup_timeout: Duration,
    tool_timeout: Duration,
    relay: Arc<NotificationRelay>,
    /// Serialises launches; holds the running connection.
    connection: tokio::sync::Mutex<Option<Connection>>,
    /// Fast path to the live connection's peer and lane.
    live: RwLock<Option<Live>>,
    catalog: RwLock<Catalog>,
    health: Mutex<Health>,
    breaker: Mutex<CircuitBreaker>,
    catalog_stale: Arc<tokio::sync::Notify>,
    /// Where `<id>.log` lines and `rpc-messages.jsonl` records go.
    log_files: std::sync::OnceLock<Arc<crate::observe::logfiles::LogFiles>>,
    /// Per-agent processes of a stdio backend, by agent id. The lock also
    /// serialises their launches.
    agents: tokio::sync::Mutex<HashMap<String, AgentProcess>>,
    /// The transport of the live connection of an `http` backend.
    http_transport: Mutex<Option<HttpTransportKind>>,
    /// Between pings of an `http` backend; `None` = none.
    keepalive: Mutex<Option<Duration>>,
    /// Keep-alive pings that failed since start-up.
    keepalive_failures: std::sync::atomic::AtomicU64,
    /// Reconnections after the backend lost the session.
    session_reconnects: std::sync::atomic::AtomicU64,
    /// When the `github-oidc` token of the live connection must be renewed.
    auth_renew_at: Mutex<Option<std::time::SystemTime>>,
    /// Wakes the token renewal task when `auth_renew_at` changes.
    auth_changed: Arc<tokio::sync::Notify>,
    /// Reconnections made to renew the `github-oidc` token.
    token_renewals: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("id", &self.id)
            .field("health", &*self.health.lock())
            .finish()
    }
}

impl Backend {
    pub fn new(
        id: impl Into<String>,
        config: ServerConfig,
        startup_timeout: Duration,
        gateway_tool_timeout: Duration,
        relay: Arc<NotificationRelay>,
    ) -> Arc<Self> {
        let id = id.into();
        // reqwest (rustls without a built-in provider) needs the process
        // default to be set before any client is built without our config.
        http_client::install_crypto_provider();
        let tool_timeout = config
            .tool_timeout
            .filter(|t| !t.is_zero())
            .unwrap_or(gateway_tool_timeout);
        let breaker = CircuitBreaker::new(
            id.clone(),
            config.rate_limit_threshold,
            config.rate_limit_cooldown,
        );
        let backend = Arc::new(Self {
            id,
            config,
            startup_timeout,
            tool_timeout,
            relay,
            connection: tokio::sync::Mutex::new(None),
            live: RwLock::new(None),
            catalog: RwLock::new(Catalog::default()),
            health: Mutex::new(Health {
                status: BackendStatus::Stopped,
                connected_at: None,
                consecutive_failures: 0,
                next_attempt: None,
                last_error: None,
                launches: 0,
                agent_launches: 0,
                stopped: false,
            }),
            breaker: Mutex::new(breaker),
            catalog_stale: Arc::new(tokio::sync::Notify::new()),
            log_files: std::sync::OnceLock::new(),
            agents: tokio::sync::Mutex::new(HashMap::new()),
            http_transport: Mutex::new(None),
            keepalive: Mutex::new(None),
            keepalive_failures: Default::default(),
            session_reconnects: Default::default(),
            auth_renew_at: Mutex::new(None),
            auth_changed: Arc::new(tokio::sync::Notify::new()),
            token_renewals: Default::default(),
        });
        if backend.config.auth.is_some() {
            backend.spawn_token_renewal();
        }
        backend.spawn_catalog_refresher();
        if backend.per_agent_processes() {
            backend.spawn_agent_sweeper();
        }
        backend
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether each agent id gets its own process (stdio backends).
    pub fn per_agent_processes(&self) -> bool {
        matches!(self.config.transport, ServerTransport::Stdio { .. })
    }

    /// Agent processes running now.
    pub async fn agent_process_count(&self) -> usize {
        self.agents.lock().await.len()
    }

    /// Closes agent processes unused for `idle` or whose connection ended;
    /// returns how many were removed.
    pub async fn close_idle_agent_processes(&self, idle: Duration) -> usize {
        let now = Instant::now();
        let expired: Vec<(String, AgentProcess)> = {
            let mut agents = self.agents.lock().await;
            let ids: Vec<String> = agents
                .iter()
                .filter(|(_, p)| {
                    now.duration_since(p.last_used) >= idle
                        || p.connection.peer().is_transport_closed()
                })
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter()
                .filter_map(|id| agents.remove(&id).map(|p| (id, p)))
                .collect()
        };
        let count = expired.len();
        for (agent, mut process) in expired {
            tracing::info!(server = %self.id, %agent, "closing idle agent process");
            let _ = process.connection.close_with_timeout(CLOSE_TIMEOUT).await;
        }
        count
    }

    fn spawn_agent_sweeper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(AGENT_SWEEP_PERIOD);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(backend) = weak.upgrade() else {
                    return;
                };
                if backend.health.lock().stopped {
                    return;
                }
                backend.close_idle_agent_processes(AGENT_PROCESS_IDLE).await;
            }
        });
    }

    /// The connection serving `agent`: its own process for a stdio
    /// backend (started now if it has none), else the shared connection.
    async fn live_for(&self, agent: Option<&str>) -> Result<Live, BackendError> {
        let Some(agent) = agent.filter(|_| self.per_agent_processes()) else {
            return self.live().await;
        };
        // The shared process must be up (it serves discovery); this also
        // applies its launch backoff to agents.
        self.live().await?;
        let mut agents = self.agents.lock().await;
        if let Some(process) = agents.get_mut(agent) {
            let peer = process.connection.peer().clone();
            if !peer.is_transport_closed() {
                process.last_used = Instant::now();
                return Ok(Live {
                    peer,
                    lane: process.lane.clone(),
                });
            }
            agents.remove(agent);
        }
        self.health.lock().agent_launches += 1;
        let (connection, lane, _) =
            self.connect()
                .await
                .map_err(|reason| BackendError::Launch {
                    server: self.id.clone(),
                    reason,
                })?;
        tracing::info!(server = %self.id, %agent, "started the agent's backend process");
        let live = Live {
            peer: connection.peer().clone(),
            lane: lane.clone(),
        };
        agents.insert(
            agent.to_owned(),
            AgentProcess {
                connection,
                lane,
                last_used: Instant::now(),
            },
        );
        Ok(live)
    }

    /// Sends this backend's child stderr to `<id>.log` and its messages to
    /// `rpc-messages.jsonl` of `files`. Only the first call has an effect.
    pub fn attach_log_files(&self, files: Arc<crate::observe::logfiles::LogFiles>) {
        let _ = self.log_files.set(files);
    }

    /// One line of `<id>.log` (nothing before log files are attached).
    fn log_backend(&self, level: &str, message: &str) {
        if let Some(files) = self.log_files.get() {
            files.backend_line(&self.id, level, "backend", message);
        }
    }

    /// The transport of an `http` backend's current connection (`None`
    /// before it first connected, and for stdio backends).
    pub fn http_transport(&self) -> Option<HttpTransportKind> {
        *self.http_transport.lock()
    }

    /// Keep-alive pings that failed since start-up.
    pub fn keepalive_failures(&self) -> u64 {
        self.keepalive_failures
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Reconnections made because the backend no longer knew the session.
    pub fn session_reconnects(&self) -> u64 {
        self.session_reconnects
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Pings an `http` backend every `interval` (`keepaliveInterval`;
    /// `None` = never). Failures go to `<id>.log`; a backend that lost the
    /// session is reconnected. Only the first call starts the pinger.
    pub fn set_keepalive_interval(self: &Arc<Self>, interval: Option<Duration>) {
        if !matches!(self.config.transport, ServerTransport::Http { .. }) {
            return;
        }
        let Some(interval) = interval.filter(|i| !i.is_zero()) else {
            return;
        };
        {
            let mut slot = self.keepalive.lock();
            if slot.is_some() {
                return;
            }
            *slot = Some(interval);
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(backend) = weak.upgrade() else {
                    return;
                };
                if backend.health.lock().stopped {
                    return;
                }
                backend.keepalive_ping(interval).await;
            }
        });
    }

    /// One keep-alive ping of the live connection (none when there is no
    /// live connection: the next call reconnects).
    async fn keepalive_ping(&self, interval: Duration) {
        let peer = self.live_peer();
        let Some(peer) = peer.filter(|p| !p.is_transport_closed()) else {
            return;
        };
        let launches = self.health.lock().launches;
        let timeout = interval.min(self.tool_timeout);
        let request = ClientRequest::PingRequest(rmcp::model::PingRequest::default());
        let outcome = match peer
            .send_request_with_option(request, PeerRequestOptions::with_timeout(timeout))
            .await
        {
            Ok(handle) => handle.await_response().await,
            Err(e) => Err(e),
        };
        let Err(error) = outcome else {
            return;
        };
        self.keepalive_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let error = self.error_from("ping", timeout, error);
        self.log_backend("WARN", &format!("keep-alive ping failed: {error}"));
        tracing::warn!(server = %self.id, %error, "keep-alive ping failed");
        if is_session_lost(&error) {
            let _ = self.reconnect_lost_session(launches).await;
        }
    }

    /// Reconnections made to renew the `github-oidc` token.
    pub fn token_renewals(&self) -> u64 {
        self.token_renewals
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Reconnects with a new `github-oidc` token when the current one
    /// reaches its renewal time (60 s before expiry).
    fn spawn_token_renewal(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let changed = self.auth_changed.clone();
        tokio::spawn(async move {
            loop {
                let renew_at = {
                    let Some(backend) = weak.upgrade() else {
                        return;
                    };
                    if backend.health.lock().stopped {
                        return;
                    }
                    *backend.auth_renew_at.lock()
                };
                let Some(at) = renew_at else {
                    changed.notified().await;
                    continue;
                };
                let wait = at
                    .duration_since(std::time::SystemTime::now())
                    .unwrap_or(Duration::ZERO);
                tokio::select! {
                    () = changed.notified() => continue,
                    () = tokio::time::sleep(wait) => {}
                }
                let Some(backend) = weak.upgrade() else {
                    return;
                };
                if *backend.auth_renew_at.lock() == Some(at) {
                    backend.renew_token_connection().await;
                }
            }
        });
    }

    async fn renew_token_connection(&self) {
        let mut slot = self.connection.lock().await;
        // Cleared first; a failed reconnect sets the next attempt.
        *self.auth_renew_at.lock() = None;
        if self.health.lock().stopped || slot.is_none() {
            return;
        }
        self.token_renewals
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.log_backend("INFO", "renewing the github-oidc token; reconnecting");
        tracing::info!(server = %self.id, "renewing the github-oidc token; reconnecting");
        // The old connection keeps serving while the new one is made, and
        // its calls in flight get the tool timeout to finish.
        let old = slot.take();
        match self.launch_locked(&mut slot).await {
            Ok(_) => {
                if let Some(old) = old {
                    let grace = self.tool_timeout;
                    tokio::spawn(async move {
                        tokio::time::sleep(grace).await;
                        let _ = old.cancel().await;
                    });
                }
            }
            Err(_) => {
                // Keep the old connection (its token may still be valid)
                // and try again shortly.
                *slot = old;
                *self.auth_renew_at.lock() =
                    Some(std::time::SystemTime::now() + TOKEN_RENEWAL_RETRY);
                self.auth_changed.notify_one();
            }
        }
    }

    /// Reconnects after the backend lost the session, unless the connection
    /// was relaunched since `launches_seen` (another call got there first).
    async fn reconnect_lost_session(&self, launches_seen: u64) -> Result<(), BackendError> {
        let mut slot = self.connection.lock().await;
        if self.health.lock().stopped {
            return Err(BackendError::ShuttingDown);
        }
        if self.health.lock().launches != launches_seen {
            return Ok(());
        }
        self.session_reconnects
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.log_backend("WARN", "the backend lost the session; reconnecting");
        tracing::warn!(server = %self.id, "backend lost the session; reconnecting");
        self.launch_locked(&mut slot).await.map(|_| ())
    }

    /// One `rpc-messages.jsonl` record; `payload` is made by the log
    /// writer, off the request's path.
    fn log_rpc(
        &self,
        direction: crate::observe::logfiles::RpcDirection,
        method: &str,
        error: Option<String>,
        payload: impl FnOnce() -> Option<serde_json::Value> + Send + 'static,
    ) {
        if let Some(files) = self.log_files.get() {
            files.rpc(&self.id, direction, method, error, payload);
        }
    }

    fn log_outcome<T: Clone + Send + 'static>(
        &self,
        method: &str,
        outcome: &Result<T, BackendError>,
        to_json: fn(&T) -> Option<serde_json::Value>,
    ) {
        if self.log_files.get().is_none() {
            return;
        }
        match outcome {
            Ok(result) => {
                let result = result.clone();
                self.log_rpc(
                    crate::observe::logfiles::RpcDirection::In,
                    method,
                    None,
                    move || to_json(&result),
                );
            }
            Err(error) => self.log_rpc(
                crate::observe::logfiles::RpcDirection::In,
                method,
                Some(error.to_string()),
                || None,
            ),
        }
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    pub fn tool_timeout(&self) -> Duration {
        self.tool_timeout
    }

    /// The backend's tools that pass its allow-list, as the backend names them.
    pub fn tools(&self) -> Vec<Tool> {
        let allow = self.config.tools.as_deref();
        self.catalog
            .read()
            .tools
            .iter()
            .filter(|t| crate::config::tool_allowed(allow, &t.name))
            .cloned()
            .collect()
    }

    /// Whether the backend listed a tool of that name (allowed or not).
    pub fn has_tool(&self, name: &str) -> bool {
        self.catalog.read().tools.iter().any(|t| t.name == name)
    }

    pub fn prompts(&self) -> Vec<Prompt> {
        self.catalog.read().prompts.clone()
    }

    pub fn has_prompt(&self, name: &str) -> bool {
        self.catalog.read().prompts.iter().any(|p| p.name == name)
    }

    pub fn has_resources(&self) -> bool {
        self.catalog.read().has_resources
    }

    pub fn health(&self) -> BackendHealth {
        // A connection that ended since the last call is reported as stopped.
        if self.live_ended() {
            self.mark_stopped();
        }
        let h = self.health.lock();
        BackendHealth {
            status: h.status,
            uptime: match (h.status, h.connected_at) {
                (BackendStatus::Running, Some(at)) => at.elapsed(),
                _ => Duration::ZERO,
            },
            last_error: h.last_error.clone(),
            launches: h.launches,
            agent_launches: h.agent_launches,
        }
    }

    /// Times the circuit breaker opened.
    pub fn breaker_openings(&self) -> u64 {
        self.breaker.lock().times_opened()
    }

    fn mark_stopped(&self) {
        let mut h = self.health.lock();
        if h.status == BackendStatus::Running {
            tracing::warn!(server = %self.id, "backend connection ended; restarting on next use");
            h.status = BackendStatus::Stopped;
            h.connected_at = None;
        }
    }

    /// Launches the backend now (start-up and the periodic monitor), ignoring
    /// backoff. Errors are recorded in the health state.
    pub async fn start(&self) -> Result<(), BackendError> {
        let mut slot = self.connection.lock().await;
        if self.health.lock().stopped {
            return Err(BackendError::ShuttingDown);
        }
        self.launch_locked(&mut slot).await.map(|_| ())
    }

    /// Whether the periodic monitor should try to relaunch this backend.
    pub fn wants_monitor_restart(&self) -> bool {
        let h = self.health.lock();
        !h.stopped
            && h.status == BackendStatus::Error
            && h.consecutive_failures <= MAX_MONITOR_RESTARTS
    }

    /// The live connection's peer, if there is one (without relaunching).
    fn live_peer(&self) -> Option<Peer<RoleClient>> {
        self.live.read().as_ref().map(|live| live.peer.clone())
    }

    /// Whether the recorded live connection has ended.
    fn live_ended(&self) -> bool {
        self.live_peer()
            .is_some_and(|peer| peer.is_transport_closed())
    }

    /// The live connection, (re)launching it if it ended, subject to backoff.
    pub async fn peer(&self) -> Result<Peer<RoleClient>, BackendError> {
        self.live().await.map(|live| live.peer)
    }

    /// [`Backend::peer`] with the connection's tool-call lane.
    async fn live(&self) -> Result<Live, BackendError> {
        if let Some(live) = self.live.read().as_ref()
            && !live.peer.is_transport_closed()
        {
            return Ok(live.clone());
        }
        let mut slot = self.connection.lock().await;
        if let Some(live) = self.live.read().as_ref()
            && !live.peer.is_transport_closed()
        {
            return Ok(live.clone());
        }
        self.mark_stopped();
        {
            let h = self.health.lock();
            if h.stopped {
                return Err(BackendError::ShuttingDown);
            }
            if let Some(at) = h.next_attempt {
                let now = Instant::now();
                if now < at {
                    return Err(BackendError::BackingOff {
                        server: self.id.clone(),
                        retry_in: at - now,
                        reason: h.last_error.clone().unwrap_or_default(),
                    });
                }
            }
        }
        self.launch_locked(&mut slot).await
    }

    async fn launch_locked(&self, slot: &mut Option<Connection>) -> Result<Live, BackendError> {
        let first_launch = self.health.lock().launches == 0;
        if let Some(old) = slot.take() {
            *self.live.write() = None;
            let _ = old.cancel().await;
        }
        self.health.lock().launches += 1;
        match self.connect().await {
            Ok((connection, lane, catalog)) => {
                let live = Live {
                    peer: connection.peer().clone(),
                    lane,
                };
                let tools = catalog.tools.len();
                *self.catalog.write() = catalog;
                *slot = Some(connection);
                *self.live.write() = Some(live.clone());
                {
                    let mut h = self.health.lock();
                    h.status = BackendStatus::Running;
                    h.connected_at = Some(Instant::now());
                    h.consecutive_failures = 0;
                    h.next_attempt = None;
                    h.last_error = None;
                }
                tracing::info!(server = %self.id, tools, "backend connected");
                if !first_launch {
                    self.relay.tools_changed(&self.id).await;
                }
                Ok(live)
            }
            Err(reason) => {
                let mut h = self.health.lock();
                h.status = BackendStatus::Error;
                h.connected_at = None;
                h.consecutive_failures = h.consecutive_failures.saturating_add(1);
                let exp = h.consecutive_failures.saturating_sub(1).min(6);
                let backoff = (Duration::from_millis(500) * (1u32 << exp)).min(MAX_BACKOFF);
                h.next_attempt = Some(Instant::now() + backoff);
                h.last_error = Some(reason.clone());
                tracing::error!(
                    server = %self.id, %reason,
                    "backend failed to start; agents will not see tools from this server"
                );
                Err(BackendError::Launch {
                    server: self.id.clone(),
                    reason,
                })
            }
        }
    }

    async fn connect(&self) -> Result<(Connection, Option<Arc<StdioLink>>, Catalog), String> {
        let client = BackendClient {
            server: self.id.clone(),
            relay: self.relay.clone(),
            catalog_stale: self.catalog_stale.clone(),
        };
        let mut lane = None;
        let connection = match &self.config.transport {
            ServerTransport::Stdio { command, args, env } => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args)
                    .envs(env)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .kill_on_drop(true);
                let mut child = cmd
                    .spawn()
                    .map_err(|e| format!("cannot run {command:?}: {e}"))?;
                let stderr = child.stderr.take();
                let (link, transport) = StdioLink::attach(&self.id, child)
                    .map_err(|e| format!("cannot run {command:?}: {e}"))?;
                lane = Some(link);
                if let Some(stderr) = stderr {
                    let server = self.id.clone();
                    let files = self.log_files.get().cloned();
                    tokio::spawn(async move {
                        let mut lines = tokio::io::BufReader::new(stderr).lines();
                        while let Ok(Some(line)) = lines.next_line().await {
                            if let Some(files) = &files {
                                files.backend_line(
                                    &server,
                                    "INFO",
                                    "backend",
                                    &format!("[stderr] {line}"),
                                );
                            }
                            tracing::info!(target: crate::observe::logfiles::STDERR_TARGET, server = %server, "[stderr] {line}");
                        }
                    });
                }
                tokio::time::timeout(self.startup_timeout, client.serve_ordered(transport))
                    .await
                    .map_err(|_| {
                        format!("server startup timeout after {:?}", self.startup_timeout)
                    })?
                    .map_err(|e| format!("initialize failed: {e}"))?
            }
            ServerTransport::Http { url, headers } => {
                let log = |level: &str, message: &str| self.log_backend(level, message);
                let authorization = match &self.config.auth {
                    Some(crate::config::ServerAuth::GithubOidc { audience }) => {
                        let token = OidcTokenSource::from_env()
                            .map_err(|e| e.to_string())?
                            .token(audience)
                            .await
                            .map_err(|e| e.to_string())?;
                        *self.auth_renew_at.lock() = token.renew_at();
                        self.auth_changed.notify_one();
                        Some(format!("Bearer {}", token.jwt))
                    }
                    None => None,
                };
                let target = http_connect::HttpTarget {
                    url,
                    headers,
                    authorization,
                    connect_timeout: self.config.connect_timeout,
                    preferred: *self.http_transport.lock(),
                };
                let (connection, kind) = http_connect::connect_http(client, target, &log).await?;
                *self.http_transport.lock() = Some(kind);
                self.log_backend("INFO", &format!("connected to {url} over {kind}"));
                tracing::info!(server = %self.id, %url, transport = %kind, "http backend transport chosen");
                connection
            }
        };
        let catalog = tokio::time::timeout(self.startup_timeout, fetch_catalog(&connection))
            .await
            .map_err(|_| "listing tools timed out".to_owned())??;
        Ok((connection, lane, catalog))
    }

    fn spawn_catalog_refresher(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let stale = self.catalog_stale.clone();
        tokio::spawn(async move {
            loop {
                stale.notified().await;
                let Some(backend) = weak.upgrade() else {
                    return;
                };
                let peer = backend.live_peer();
                let Some(peer) = peer else { continue };
                match fetch_catalog_from_peer(&peer).await {
                    Ok(catalog) => {
                        *backend.catalog.write() = catalog;
                        backend.relay.tools_changed(&backend.id).await;
                        backend.relay.prompts_changed(&backend.id).await;
                    }
                    Err(error) => {
                        tracing::warn!(server = %backend.id, %error, "cannot refresh tool list")
                    }
                }
            }
        });
    }

    fn error_from(&self, method: &str, timeout: Duration, error: ServiceError) -> BackendError {
        self.error_from_peer(method, timeout, error, true)
    }

    /// Maps a request error; `shared` says it came from the shared
    /// connection (whose end changes the backend's health).
    fn error_from_peer(
        &self,
        method: &str,
        timeout: Duration,
        error: ServiceError,
        shared: bool,
    ) -> BackendError {
        match error {
            ServiceError::TransportClosed => {
                if shared {
                    self.mark_stopped();
                }
                BackendError::ConnectionClosed {
                    server: self.id.clone(),
                    method: method.to_owned(),
                }
            }
            ServiceError::Timeout { .. } => BackendError::Timeout {
                server: self.id.clone(),
                method: method.to_owned(),
                timeout,
            },
            ServiceError::McpError(data) => BackendError::Transport {
                server: self.id.clone(),
                method: method.to_owned(),
                reason: data.message.to_string(),
            },
            other => {
                if shared && self.live_ended() {
                    self.mark_stopped();
                    return BackendError::ConnectionClosed {
                        server: self.id.clone(),
                        method: method.to_owned(),
                    };
                }
                BackendError::Transport {
                    server: self.id.clone(),
                    method: method.to_owned(),
                    reason: other.to_string(),
                }
            }
        }
    }

    /// Sends one request with the tool timeout and returns the raw result.
    async fn request(
        &self,
        method: &str,
        request: ClientRequest,
    ) -> Result<ServerResult, BackendError> {
        if self.log_files.get().is_some() {
            let logged = request.clone();
            self.log_rpc(
                crate::observe::logfiles::RpcDirection::Out,
                method,
                None,
                move || {
                    let mut payload = serde_json::to_value(&logged).ok()?;
                    payload.get_mut("params").map(serde_json::Value::take)
                },
            );
        }
        let outcome = self.request_unlogged(method, request).await;
        self.log_outcome(method, &outcome, |r| serde_json::to_value(r).ok());
        outcome
    }

    /// One request; when the backend lost the session, one reconnect and
    /// one retry (gateway.md §5.2).
    async fn request_unlogged(
        &self,
        method: &str,
        request: ClientRequest,
    ) -> Result<ServerResult, BackendError> {
        let launches = self.health.lock().launches;
        match self.request_once(method, request.clone()).await {
            Err(error) if is_session_lost(&error) => {
                self.reconnect_lost_session(launches).await?;
                self.request_once(method, request).await
            }
            outcome => outcome,
        }
    }

    async fn request_once(
        &self,
        method: &str,
        request: ClientRequest,
    ) -> Result<ServerResult, BackendError> {
        let peer = self.peer().await?;
        let timeout = self.tool_timeout;
        let handle = peer
            .send_request_with_option(request, PeerRequestOptions::with_timeout(timeout))
            .await
            .map_err(|e| self.error_from(method, timeout, e))?;
        handle
            .await_response()
            .await
            .map_err(|e| self.error_from(method, timeout, e))
    }

    /// One `tools/call` on the backend: circuit breaker, tool timeout,
    /// progress relay to `progress` (agent peer and token), cancellation
    /// when `cancel` fires.
    pub async fn call_tool(
        &self,
        params: CallToolRequestParams,
        meta: Option<RequestMetaObject>,
        progress: Option<(relay::AgentProgress, ProgressToken)>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<CallToolResponse, BackendError> {
        self.call_tool_as(None, params, meta, progress, cancel)
            .await
    }

    /// [`Backend::call_tool`] on the process of `agent` (gateway.md §5.2).
    pub async fn call_tool_as(
        &self,
        agent: Option<&str>,
        params: CallToolRequestParams,
        meta: Option<RequestMetaObject>,
        progress: Option<(relay::AgentProgress, ProgressToken)>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<CallToolResponse, BackendError> {
        if self.log_files.get().is_some() {
            let logged = params.clone();
            self.log_rpc(
                crate::observe::logfiles::RpcDirection::Out,
                "tools/call",
                None,
                move || serde_json::to_value(&logged).ok(),
            );
        }
        let outcome = self
            .call_tool_unlogged(agent, params, meta, progress, cancel)
            .await;
        self.log_outcome("tools/call", &outcome, |r| match r {
            CallToolResponse::Complete(r) => serde_json::to_value(r).ok(),
            CallToolResponse::InputRequired(r) => serde_json::to_value(r).ok(),
            CallToolResponse::Task(r) => serde_json::to_value(r).ok(),
            _ => None,
        });
        outcome
    }

    /// One call; when the backend lost the session, one reconnect and one
    /// retry (gateway.md §5.2).
    async fn call_tool_unlogged(
        &self,
        agent: Option<&str>,
        params: CallToolRequestParams,
        meta: Option<RequestMetaObject>,
        progress: Option<(relay::AgentProgress, ProgressToken)>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<CallToolResponse, BackendError> {
        let launches = self.health.lock().launches;
        let first = self
            .call_tool_once(
                agent,
                params.clone(),
                meta.clone(),
                progress.clone(),
                cancel.clone(),
            )
            .await;
        match first {
            Err(error) if is_session_lost(&error) => {
                self.reconnect_lost_session(launches).await?;
                self.call_tool_once(agent, params, meta, progress, cancel)
                    .await
            }
            outcome => outcome,
        }
    }

    async fn call_tool_once(
        &self,
        agent: Option<&str>,
        params: CallToolRequestParams,
        meta: Option<RequestMetaObject>,
        progress: Option<(relay::AgentProgress, ProgressToken)>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<CallToolResponse, BackendError> {
        const METHOD: &str = "tools/call";
        if let Admission::Reject { message } = self.breaker.lock().admit(Instant::now()) {
            return Err(BackendError::CircuitOpen {
                server: self.id.clone(),
                message,
            });
        }
        let shared = agent.is_none() || !self.per_agent_processes();
        let live = match self.live_for(agent).await {
            Ok(live) => live,
            Err(e) => {
                self.breaker.lock().record_transport_error();
                return Err(e);
            }
        };
        let timeout = self.tool_timeout;
        // The route exists before the request is sent: its connection
        // queues progress on it from then on.
        let mut route =
            progress.map(|(agent, agent_token)| self.relay.route_progress(agent, agent_token));
        let mut request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let called = match live.lane() {
            Some(lane) => {
                if let Some(meta) = meta {
                    request.get_meta_mut().extend(meta);
                }
                call_on_lane(lane, request, route.as_mut(), &cancel, timeout).await
            }
            None => call_on_peer(&live.peer, request, meta, route.as_mut(), &cancel, timeout).await,
        };
        let outcome = match called {
            Ok(outcome) => outcome,
            Err(AgentCancelled) => {
                self.breaker.lock().record_transport_error();
                return Err(BackendError::Transport {
                    server: self.id.clone(),
                    method: METHOD.into(),
                    reason: "cancelled".into(),
                });
            }
        };
        // Every progress notification read before the response has been
        // queued by now; the agent gets them all before the result.
        if let Some(route) = route.as_mut() {
            route.relay_queued().await;
        }
        match outcome {
            Ok(ServerResult::CallToolResult(result)) => {
                let (limited, retry_after) = detect_rate_limit(&result);
                self.breaker
                    .lock()
                    .record(limited, retry_after, Instant::now());
                Ok(CallToolResponse::Complete(result))
            }
            Ok(ServerResult::InputRequiredResult(result)) => {
                self.breaker.lock().record(false, None, Instant::now());
                Ok(CallToolResponse::InputRequired(result))
            }
            Ok(ServerResult::CreateTaskResult(result)) => {
                self.breaker.lock().record(false, None, Instant::now());
                Ok(CallToolResponse::Task(result))
            }
            Ok(_) => Err(BackendError::UnexpectedResponse {
                server: self.id.clone(),
                method: METHOD.into(),
            }),
            Err(e) => {
                self.breaker.lock().record_transport_error();
                Err(self.error_from_peer(METHOD, timeout, e, shared))
            }
        }
    }

    pub async fn get_prompt(
        &self,
        params: GetPromptRequestParams,
    ) -> Result<GetPromptResult, BackendError> {
        const METHOD: &str = "prompts/get";
        let request = ClientRequest::GetPromptRequest(rmcp::model::GetPromptRequest::new(params));
        match self.request(METHOD, request).await? {
            ServerResult::GetPromptResult(r) => Ok(r),
            _ => Err(self.unexpected(METHOD)),
        }
    }

    pub async fn list_resources(
        &self,
        params: Option<PaginatedRequestParams>,
    ) -> Result<ListResourcesResult, BackendError> {
        const METHOD: &str = "resources/list";
        let request = ClientRequest::ListResourcesRequest(rmcp::model::ListResourcesRequest {
            method: Default::default(),
            params,
            extensions: Default::default(),
        });
        match self.request(METHOD, request).await? {
            ServerResult::ListResourcesResult(r) => Ok(r),
            _ => Err(self.unexpected(METHOD)),
        }
    }

    pub async fn list_resource_templates(
        &self,
        params: Option<PaginatedRequestParams>,
    ) -> Result<ListResourceTemplatesResult, BackendError> {
        const METHOD: &str = "resources/templates/list";
        let request = ClientRequest::ListResourceTemplatesRequest(
            rmcp::model::ListResourceTemplatesRequest {
                method: Default::default(),
                params,
                extensions: Default::default(),
            },
        );
        match self.request(METHOD, request).await? {
            ServerResult::ListResourceTemplatesResult(r) => Ok(r),
            _ => Err(self.unexpected(METHOD)),
        }
    }

    pub async fn read_resource(
        &self,
        params: ReadResourceRequestParams,
    ) -> Result<ReadResourceResult, BackendError> {
        const METHOD: &str = "resources/read";
        let request =
            ClientRequest::ReadResourceRequest(rmcp::model::ReadResourceRequest::new(params));
        match self.request(METHOD, request).await? {
            ServerResult::ReadResourceResult(r) => Ok(r),
            _ => Err(self.unexpected(METHOD)),
        }
    }

    #[allow(deprecated)]
    pub async fn set_level(&self, params: SetLevelRequestParams) -> Result<(), BackendError> {
        let request = ClientRequest::SetLevelRequest(rmcp::model::SetLevelRequest::new(params));
        self.request("logging/setLevel", request).await.map(|_| ())
    }

    fn unexpected(&self, method: &str) -> BackendError {
        BackendError::UnexpectedResponse {
            server: self.id.clone(),
            method: method.to_owned(),
        }
    }

    /// Closes the connection (a stdio child is asked to exit, then killed).
    pub async fn stop(&self) {
        let agents: Vec<AgentProcess> = self.agents.lock().await.drain().map(|(_, p)| p).collect();
        futures::future::join_all(agents.into_iter().map(|mut p| async move {
            let _ = p.connection.close_with_timeout(CLOSE_TIMEOUT).await;
        }))
        .await;
        let connection = self.connection.lock().await.take();
        *self.live.write() = None;
        if let Some(mut connection) = connection {
            let _ = connection.close_with_timeout(CLOSE_TIMEOUT).await;
        }
        let mut h = self.health.lock();
        h.status = BackendStatus::Stopped;
        h.connected_at = None;
        // A stopped gateway does not relaunch.
        h.stopped = true;
    }
}

/// The agent cancelled a backend tools/call; the backend was told.
struct AgentCancelled;

/// How a backend tools/call ended: answered or failed, or cancelled.
type Called = Result<Result<ServerResult, ServiceError>, AgentCancelled>;

/// Why the backend is told a call is cancelled: the agent cancelled it.
const AGENT_CANCELLED: &str = "cancelled by the agent";
/// ... or the agent's connection closed under it.
const AGENT_GONE: &str = "the agent went away";

/// Waits for `answer`, relaying the call's queued progress to the agent
/// meanwhile; `None` when the agent cancelled first. An arm's body is not
/// interrupted by the answer, so no notification is half sent.
async fn relay_progress_until<T>(
    answer: impl Future<Output = T>,
    route: &mut Option<&mut relay::ProgressRoute<'_>>,
    cancel: &tokio_util::sync::CancellationToken,
) -> Option<T> {
    tokio::pin!(answer);
    loop {
        let next_progress = async {
            match route.as_deref_mut() {
                Some(route) => route.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = &mut answer => return Some(result),
            Some(param) = next_progress => {
                if let Some(route) = route.as_deref() {
                    route.deliver(param).await;
                }
            }
            () = cancel.cancelled() => return None,
        }
    }
}

/// One tools/call through rmcp's client (HTTP backends, and stdio
/// connections without an `initialize` handshake), relaying progress while
/// it runs.
async fn call_on_peer(
    peer: &Peer<RoleClient>,
    mut request: ClientRequest,
    meta: Option<RequestMetaObject>,
    mut route: Option<&mut relay::ProgressRoute<'_>>,
    cancel: &tokio_util::sync::CancellationToken,
    timeout: Duration,
) -> Called {
    let mut options = PeerRequestOptions::with_timeout(timeout);
    if let Some(meta) = meta {
        options = options.with_meta(meta);
    }
    if let Some(route) = &route {
        request.extensions_mut().insert(route.sink());
    }
    let handle = match peer.send_request_with_option(request, options).await {
        Ok(handle) => handle,
        Err(e) => return Ok(Err(e)),
    };
    let request_id = handle.id.clone();
    // A call dropped before its answer (the agent's connection closed
    // under a direct call) is cancelled at the backend like one the agent
    // cancelled.
    let mut abandoned = CancelOnDrop {
        peer: Some(peer.clone()),
        request_id: request_id.clone(),
    };
    let outcome = relay_progress_until(handle.await_response(), &mut route, cancel).await;
    abandoned.disarm();
    match outcome {
        Some(outcome) => Ok(outcome),
        None => {
            let _ = peer
                .notify_cancelled(rmcp::model::CancelledNotificationParam::new(
                    Some(request_id),
                    Some(AGENT_CANCELLED.into()),
                ))
                .await;
            Err(AgentCancelled)
        }
    }
}

/// One tools/call on a stdio connection's lane (`stdio_link`): written by
/// this task, answered by the connection's reader, with rmcp's timeout
/// and cancellation behaviour and the same progress relay.
async fn call_on_lane(
    lane: &Arc<StdioLink>,
    request: ClientRequest,
    mut route: Option<&mut relay::ProgressRoute<'_>>,
    cancel: &tokio_util::sync::CancellationToken,
    timeout: Duration,
) -> Called {
    let sink = route.as_ref().map(|route| route.sink());
    let mut call = match lane.send_request(request, sink).await {
        Ok(call) => call,
        Err(e) => return Ok(Err(e)),
    };
    let answer = tokio::time::timeout(timeout, call.answer());
    match relay_progress_until(answer, &mut route, cancel).await {
        Some(Ok(answer)) => Ok(answer),
        Some(Err(_elapsed)) => {
            call.cancel(rmcp::service::RequestHandle::<RoleClient>::REQUEST_TIMEOUT_REASON)
                .await;
            Ok(Err(ServiceError::Timeout { timeout }))
        }
        None => {
            call.cancel(AGENT_CANCELLED).await;
            Err(AgentCancelled)
        }
    }
}

/// Whether a failure means the backend no longer knows the session
/// (gateway.md §5.2: one reconnect and one retry).
fn is_session_lost(error: &BackendError) -> bool {
    match error {
        BackendError::Transport { reason, .. } => {
            let reason = reason.to_ascii_lowercase();
            reason.contains("session not found") || reason.contains("session expired")
        }
        _ => false,
    }
}

async fn fetch_catalog(connection: &Connection) -> Result<Catalog, String> {
    fetch_catalog_from_peer(connection.peer()).await
}

async fn fetch_catalog_from_peer(peer: &Peer<RoleClient>) -> Result<Catalog, String> {
    let info = peer.peer_info();
    let capabilities = info.as_ref().map(|i| i.capabilities.clone());
    let has_tools = capabilities.as_ref().is_none_or(|c| c.tools.is_some());
    let has_prompts = capabilities.as_ref().is_some_and(|c| c.prompts.is_some());
    let has_resources = capabilities.as_ref().is_some_and(|c| c.resources.is_some());
    let tools = if has_tools {
        peer.list_all_tools()
            .await
            .map_err(|e| format!("tools/list failed: {e}"))?
    } else {
        Vec::new()
    };
    let prompts = if has_prompts {
        match peer.list_all_prompts().await {
            Ok(prompts) => prompts,
            Err(e) => {
                tracing::warn!(%e, "prompts/list failed; serving no prompts");
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    Ok(Catalog {
        tools,
        prompts,
        has_resources,
    })
}

/// Sends `notifications/cancelled` for a backend request whose caller
/// stopped waiting without an answer, unless disarmed first. The
/// notification is sent from a task of its own: `Drop` cannot await.
struct CancelOnDrop {
    peer: Option<Peer<RoleClient>>,
    request_id: rmcp::model::RequestId,
}

impl CancelOnDrop {
    /// The request ended one way or another; nothing to cancel.
    fn disarm(&mut self) {
        self.peer = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(peer) = self.peer.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let request_id = self.request_id.clone();
        tracing::debug!(request = %request_id, "caller went away; cancelling the backend request");
        runtime.spawn(async move {
            let _ = peer
                .notify_cancelled(rmcp::model::CancelledNotificationParam::new(
                    Some(request_id),
                    Some(AGENT_GONE.into()),
                ))
                .await;
        });
    }
}
