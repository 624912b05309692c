//! The DIFC pipeline around every `tools/call` (difc.md §2–§6, gateway.md
//! §6.2): guard binding per backend, `label_agent` per (session, server),
//! `label_resource` + coarse check before the backend, `label_response` +
//! filtering after, taint in propagate mode; one structured decision line
//! (target `guardway::difc`) and metrics per call.

mod binding;
mod call_backend;
mod limits;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use futures::future::BoxFuture;
use guardway_difc::{
    AgentRegistry, ClientView, DEFAULT_AGENT_ID, EnforcementMode, LabelPair, LabelResourceInput,
    LabelResponseInput, LabelView, Operation, ResourceLabels, coarse_check, filter_response,
    labels_response, noop_resource_labels, taint_source, taints_agent, violation_text,
    write_sink_resource_labels,
};
use guardway_wasm::{Guard, GuardHealth, GuardOptions};
use parking_lot::Mutex;
use rmcp::ErrorData;
use rmcp::model::{CallToolResponse, CallToolResult};
use serde_json::{Value, json};

use crate::backend::Backend;
use crate::config::{GatewayConfig, ServeOptions};
use crate::observe::metrics::{MetricsRegistry, SnapshotFamily};
use crate::pipeline::{BackendInvoker, CallInterceptor, ToolCall, gateway_error};

pub use binding::{BoundGuard, GuardSource, discover_guard_file, label_agent_payload};
pub use limits::{CallCounters, ToolCallLimits, split_tool_call_limits};

/// `tracing` target of the per-call decision lines.
pub const DIFC_LOG_TARGET: &str = "guardway::difc";

const SERVER_TOOL: &[&str] = &["server", "tool"];

/// The guard of one server with its resolved policy and its pools.
struct ServerGuard {
    bound: BoundGuard,
    /// The validated `label_agent` payload, if a policy resolves.
    policy: Option<Result<Value, String>>,
    /// `policy`'s payload serialised once: the key of its pool and of the
    /// per-session state.
    payload_text: String,
    /// One `Guard` (instance pool) per serialised policy payload.
    pools: tokio::sync::Mutex<HashMap<String, Guard>>,
    /// The pools, readable without awaiting (health, metrics).
    pools_view: Mutex<Vec<Guard>>,
    /// Per-session `tool-call-limits` of the server's policy.
    limits: ToolCallLimits,
    /// Faults of `label_agent` calls that never produced a pool (a policy
    /// the guard trapped on), which no pool's statistics can show.
    init_faults: Mutex<GuardFaults>,
}

/// Fault counts by kind (the `kind` label of `guardway_guard_faults_total`).
#[derive(Debug, Clone, Copy, Default)]
struct GuardFaults {
    traps: u64,
    timeouts: u64,
    memory_limits: u64,
}

impl GuardFaults {
    /// Counts `error` when it is a fault (trap, timeout, memory cap).
    fn record(&mut self, error: &guardway_wasm::GuardError) {
        match error {
            guardway_wasm::GuardError::Trap { .. } => self.traps += 1,
            guardway_wasm::GuardError::Timeout { .. } => self.timeouts += 1,
            guardway_wasm::GuardError::MemoryLimit { .. } => self.memory_limits += 1,
            _ => {}
        }
    }
}

/// Per (session, server): the payload `label_agent` ran for and its mode.
#[derive(Debug, Clone)]
struct SessionState {
    payload: String,
    mode: EnforcementMode,
}

/// The labelling hooks for one call, whatever the guard kind.
enum Labeler {
    Noop,
    WriteSink { accept: Vec<String>, public: bool },
    Wasm(Guard),
}

/// The DIFC pipeline as a [`CallInterceptor`]. Build with
/// [`GuardPipeline::new`]; guards load in `prepare` (at gateway start-up).
/// `Send + Sync`; share as `Arc`.
pub struct GuardPipeline {
    config: GatewayConfig,
    guards_dir: Option<PathBuf>,
    policy_override: Option<Value>,
    require_guards: bool,
    enforce_tool_call_limits: bool,
    default_mode: EnforcementMode,
    guard_options: GuardOptions,
    servers: OnceLock<BTreeMap<String, Arc<ServerGuard>>>,
    backends: OnceLock<BTreeMap<String, Arc<Backend>>>,
    registry: AgentRegistry,
    sessions: Mutex<HashMap<(String, String), SessionState>>,
    call_counts: CallCounters,
    metrics: MetricsRegistry,
}

impl std::fmt::Debug for GuardPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardPipeline")
            .field("default_mode", &self.default_mode)
            .finish_non_exhaustive()
    }
}

/// The gateway-wide default mode: `--guards-mode`, else the config, else strict.
fn default_mode(options: &ServeOptions) -> EnforcementMode {
    let raw = options
        .guards_mode
        .as_deref()
        .or(options.config.guards_mode.as_deref());
    match raw.map(str::parse::<EnforcementMode>) {
        None => EnforcementMode::Strict,
        Some(Ok(mode)) => mode,
        Some(Err(error)) => {
            tracing::warn!(target: DIFC_LOG_TARGET, %error, "invalid guards mode; using strict");
            EnforcementMode::Strict
        }
    }
}

enum Refusal {
    /// A gateway-side failure before the guard decided (init, labelling).
    Error(String),
    /// A DIFC denial.
    Denied(String),
}

impl GuardPipeline {
    /// A pipeline for the servers of `options` (nothing is loaded yet).
    pub fn new(options: &ServeOptions) -> Self {
        let guards_dir = options
            .wasm_guards_dir
            .clone()
            .filter(|dir| !dir.as_os_str().is_empty());
        GuardPipeline {
            config: options.config.clone(),
            guards_dir,
            policy_override: options.extra.guard_policy_override.clone(),
            require_guards: options.require_guards,
            enforce_tool_call_limits: options.enforce_tool_call_limits,
            default_mode: default_mode(options),
            guard_options: GuardOptions::default(),
            servers: OnceLock::new(),
            backends: OnceLock::new(),
            registry: AgentRegistry::new(),
            sessions: Mutex::new(HashMap::new()),
            call_counts: CallCounters::default(),
            metrics: MetricsRegistry::new(),
        }
    }

    /// Replaces the options every guard instance is created with.
    pub fn with_guard_options(mut self, options: GuardOptions) -> Self {
        self.guard_options = options;
        self
    }

    /// The shared agent label registry.
    pub fn agents(&self) -> &AgentRegistry {
        &self.registry
    }

    /// The counters and histograms of the pipeline.
    pub fn metrics(&self) -> &MetricsRegistry {
        &self.metrics
    }

    async fn load_guards(&self, backends: &BTreeMap<String, Arc<Backend>>) -> Result<(), String> {
        let mut servers = BTreeMap::new();
        let mut failures = Vec::new();
        for (id, server) in &self.config.servers {
            let raw = binding::raw_policy(&self.config, server, self.policy_override.as_ref());
            let source = binding::guard_source(
                &self.config,
                id,
                server,
                self.guards_dir.as_deref(),
                raw.as_ref(),
            );
            let options = self.guard_options.clone();
            let loaded = tokio::task::spawn_blocking(move || binding::load(source, &options))
                .await
                .unwrap_or_else(|error| BoundGuard::Failed {
                    name: id.clone(),
                    reason: format!("guard loading panicked: {error}"),
                });
            // The limits are enforced here for every guard; a wasm guard's
            // payload keeps them unless the deviation is asked for (see
            // `limits` for why).
            let split = raw.clone().map(split_tool_call_limits);
            let limits = match &split {
                Some(Ok((_, limits))) => limits.clone(),
                _ => ToolCallLimits::default(),
            };
            let policy = match &loaded {
                BoundGuard::Wasm { .. } if self.enforce_tool_call_limits => split.map(|split| {
                    split.and_then(|(policy, _)| {
                        binding::label_agent_payload(policy, &self.config.gateway.trusted_bots)
                    })
                }),
                BoundGuard::Wasm { .. } => raw.map(|policy| {
                    binding::label_agent_payload(policy, &self.config.gateway.trusted_bots)
                }),
                _ => None,
            };
            let loaded = match (loaded, &policy) {
                (BoundGuard::Wasm { name, .. }, None) => {
                    tracing::warn!(target: DIFC_LOG_TARGET, server = %id, guard = %name,
                        "guard has no policy; the server falls back to the noop guard");
                    BoundGuard::Noop
                }
                (loaded, _) => loaded,
            };
            match &loaded {
                BoundGuard::Failed { name, reason } => {
                    tracing::error!(target: DIFC_LOG_TARGET, server = %id, guard = %name, %reason,
                        "guard failed to load; calls to this server are refused");
                    failures.push(format!("server \"{id}\": guard \"{name}\": {reason}"));
                }
                BoundGuard::Wasm { name, link, .. } => {
                    if let Some(backend) = backends.get(id) {
                        link.attach(backend.clone());
                    }
                    tracing::info!(target: DIFC_LOG_TARGET, server = %id, guard = %name, "guard loaded");
                }
                _ => {}
            }
            let payload_text = match &policy {
                Some(Ok(payload)) => payload.to_string(),
                _ => String::new(),
            };
            let guard = Arc::new(ServerGuard {
                bound: loaded,
                policy,
                payload_text,
                pools: tokio::sync::Mutex::new(HashMap::new()),
                pools_view: Mutex::new(Vec::new()),
                limits,
                init_faults: Mutex::new(GuardFaults::default()),
            });
            // Create the pool for the configured policy now, so that the
            // first call does not pay for it and a rejected policy shows.
            if let Some(Ok(payload)) = &guard.policy
                && let Err(error) = self.pool_for(&guard, payload, &guard.payload_text).await
            {
                tracing::error!(target: DIFC_LOG_TARGET, server = %id, %error,
                    "guard rejected its policy at start-up");
            }
            servers.insert(id.clone(), guard);
        }
        let _ = self.servers.set(servers);
        let _ = self.backends.set(backends.clone());
        if self.require_guards && !failures.is_empty() {
            return Err(format!("guards failed to load: {}", failures.join("; ")));
        }
        Ok(())
    }

    /// The `Guard` serving `payload` on a server, created on first use.
    /// `key` is `payload` serialised.
    async fn pool_for(
        &self,
        server: &ServerGuard,
        payload: &Value,
        key: &str,
    ) -> Result<Guard, String> {
        let BoundGuard::Wasm { module, link, .. } = &server.bound else {
            return Err("not a wasm guard".to_owned());
        };
        let mut pools = server.pools.lock().await;
        if let Some(guard) = pools.get(key) {
            return Ok(guard.clone());
        }
        let backend: Arc<dyn guardway_wasm::Backend> = link.clone();
        let guard = Guard::new(
            module.clone(),
            payload,
            self.guard_options.clone().with_name(module.name()),
            Some(backend),
        )
        .await
        .map_err(|error| {
            server.init_faults.lock().record(&error);
            error.to_string()
        })?;
        pools.insert(key.to_owned(), guard.clone());
        server.pools_view.lock().push(guard.clone());
        Ok(guard)
    }

    /// `label_agent` for (session, server): returns the labeler and mode.
    async fn session_labeler(
        &self,
        server: &ServerGuard,
        server_id: &str,
        session: &str,
        agent_id: &str,
    ) -> Result<(Labeler, EnforcementMode), String> {
        match &server.bound {
            BoundGuard::Failed { name, reason } => Err(format!(
                "guard \"{name}\" for server \"{server_id}\" is unavailable: {reason}"
            )),
            BoundGuard::Noop => Ok((Labeler::Noop, self.default_mode)),
            BoundGuard::WriteSink { accept, public } => Ok((
                Labeler::WriteSink {
                    accept: accept.clone(),
                    public: *public,
                },
                EnforcementMode::Filter,
            )),
            BoundGuard::Wasm { .. } => {
                let payload = match &server.policy {
                    Some(Ok(payload)) => payload,
                    Some(Err(error)) => {
                        return Err(format!(
                            "guard session initialization failed: failed to resolve guard policy: {error}"
                        ));
                    }
                    None => return Ok((Labeler::Noop, self.default_mode)),
                };
                let serialised = &server.payload_text;
                let guard = self
                    .pool_for(server, payload, serialised)
                    .await
                    .map_err(|error| {
                        format!("guard session initialization failed: LabelAgent failed: {error}")
                    })?;
                let key = (session.to_owned(), server_id.to_owned());
                let known = self
                    .sessions
                    .lock()
                    .get(&key)
                    .filter(|state| state.payload == *serialised)
                    .map(|state| state.mode);
                let mode = match known {
                    Some(mode) => mode,
                    None => {
                        let labels = guard.agent_labels();
                        self.registry.apply_agent_labels(agent_id, labels);
                        let mode = labels.difc_mode;
                        self.sessions.lock().insert(
                            key,
                            SessionState {
                                payload: serialised.clone(),
                                mode,
                            },
                        );
                        mode
                    }
                };
                Ok((Labeler::Wasm(guard), mode))
            }
        }
    }

    async fn label_resource(
        &self,
        labeler: &Labeler,
        server_id: &str,
        call: &ToolCall,
    ) -> Result<ResourceLabels, String> {
        match labeler {
            Labeler::Noop => Ok(noop_resource_labels()),
            Labeler::WriteSink { accept, public } => {
                Ok(write_sink_resource_labels(accept, *public, &call.tool))
            }
            Labeler::Wasm(guard) => {
                let input = LabelResourceInput {
                    tool_name: call.tool.clone(),
                    tool_args: call_arguments(call),
                    capabilities: Some(json!({})),
                };
                let started = Instant::now();
                let result = guard.label_resource(&input).await;
                self.observe_guard(server_id, "label_resource", started);
                result.map_err(|error| {
                    format!("guard labeling failed: resource labeling failed: {error}")
                })
            }
        }
    }

    fn observe_guard(&self, server: &str, function: &str, started: Instant) {
        self.metrics.observe(
            "guardway_guard_call_duration_seconds",
            "Duration of guard function calls.",
            &["server", "function"],
            &[server, function],
            started.elapsed(),
        );
    }

    async fn run(
        &self,
        call: ToolCall,
        backend: &dyn BackendInvoker,
    ) -> Result<CallToolResponse, ErrorData> {
        let server_id = call.server.clone();
        let tool = call.tool.clone();
        let agent_id = call
            .agent_id
            .clone()
            .unwrap_or_else(|| DEFAULT_AGENT_ID.to_owned());
        let session = call.session_id.clone().unwrap_or_else(|| agent_id.clone());
        self.metrics.add(
            "guardway_tool_calls_total",
            "tools/call requests through the DIFC pipeline.",
            SERVER_TOOL,
            &[&server_id, &tool],
            1,
        );
        let mut decision = Decision {
            session: &session,
            agent: &agent_id,
            server: &server_id,
            tool: &tool,
            operation: None,
            mode: None,
        };
        let Some(server) = self.servers.get().and_then(|s| s.get(&server_id)).cloned() else {
            let text = format!("no guard is bound to server \"{server_id}\"");
            decision.log_error(&text);
            return Err(gateway_error(text));
        };
        let (labeler, mode) = match self
            .session_labeler(&server, &server_id, &session, &agent_id)
            .await
        {
            Ok(found) => found,
            Err(text) => {
                self.count_denial(&server_id, &tool, "guard_error");
                decision.log_error(&text);
                return Err(gateway_error(text));
            }
        };
        decision.mode = Some(mode);
        if let Err(text) = self
            .call_counts
            .admit(&server.limits, &session, &server_id, &tool)
        {
            self.count_denial(&server_id, &tool, "limit");
            decision.log("deny", &text, None);
            return Err(gateway_error(text));
        }
        let resource = match self.label_resource(&labeler, &server_id, &call).await {
            Ok(resource) => resource,
            Err(text) => {
                self.count_denial(&server_id, &tool, "guard_error");
                decision.log_error(&text);
                return Err(gateway_error(text));
            }
        };
        let operation = resource.operation;
        decision.operation = Some(operation);
        let agent = self.registry.get_or_create(&agent_id);
        let check = coarse_check(&agent, &resource, mode);
        if check.refused {
            let text = violation_text(&check.evaluation, &agent, LabelView::from(&resource));
            self.count_denial(&server_id, &tool, "coarse");
            decision.log("deny", &check.evaluation.reason, None);
            return Err(gateway_error(text));
        }
        let tool_args = call_arguments(&call);
        let response = backend.invoke(call.params).await?;
        let CallToolResponse::Complete(result) = response else {
            decision.log("allow", "", None);
            return Ok(response);
        };
        let guard = match &labeler {
            Labeler::Wasm(guard) if labels_response(operation, mode) => guard,
            _ => {
                self.taint(&agent_id, operation, mode, &resource, None);
                decision.log("allow", &check.evaluation.reason, None);
                return Ok(CallToolResponse::Complete(result));
            }
        };
        match self
            .label_and_filter(
                guard, &server_id, &tool, tool_args, result, &agent_id, &resource, mode,
            )
            .await
        {
            Ok((response, counts)) => {
                let outcome = if counts.is_some_and(|(_, filtered)| filtered > 0) {
                    "filter"
                } else {
                    "allow"
                };
                decision.log(outcome, &check.evaluation.reason, counts);
                Ok(CallToolResponse::Complete(response))
            }
            Err(Refusal::Denied(text)) => {
                self.count_denial(&server_id, &tool, "response");
                decision.log("deny", &text, None);
                Err(gateway_error(text))
            }
            Err(Refusal::Error(text)) => {
                self.count_denial(&server_id, &tool, "guard_error");
                decision.log_error(&text);
                Err(gateway_error(text))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn label_and_filter(
        &self,
        guard: &Guard,
        server_id: &str,
        tool: &str,
        tool_args: Value,
        result: CallToolResult,
        agent_id: &str,
        resource: &ResourceLabels,
        mode: EnforcementMode,
    ) -> Result<(CallToolResult, Option<(usize, usize)>), Refusal> {
        let operation = resource.operation;
        let tool_result = serde_json::to_value(&result).map_err(|error| {
            Refusal::Error(format!(
                "response labeling failed: response labeling failed: {error}"
            ))
        })?;
        let input = LabelResponseInput {
            tool_name: tool.to_owned(),
            tool_result,
            tool_args: Some(tool_args),
            capabilities: Some(json!({})),
        };
        let started = Instant::now();
        let labels = guard.label_response(&input).await;
        self.observe_guard(server_id, "label_response", started);
        let labels = labels.map_err(|error| {
            Refusal::Error(format!(
                "response labeling failed: response labeling failed: {error}"
            ))
        })?;
        let items = labels.into_items(&input.tool_result).map_err(|error| {
            Refusal::Error(format!(
                "response labeling failed: response labeling failed: {error}"
            ))
        })?;
        let Some(items) = items else {
            self.taint(agent_id, operation, mode, resource, None);
            return Ok((result, None));
        };
        let agent = self.registry.get_or_create(agent_id);
        let filtered = filter_response(&agent, &items, operation, mode, tool, agent_id);
        let total = filtered.outcome.total;
        let removed = filtered.outcome.filtered.len();
        if removed > 0 {
            self.metrics.add(
                "guardway_filtered_items_total",
                "Response items removed by DIFC filtering.",
                SERVER_TOOL,
                &[server_id, tool],
                removed as u64,
            );
            let logged = tracing::enabled!(target: DIFC_LOG_TARGET, tracing::Level::INFO);
            for item in filtered.outcome.filtered.iter().filter(|_| logged) {
                if let Some(labeled) = items.get(item.index) {
                    let record =
                        guardway_difc::filtered_item_record(server_id, tool, labeled, item);
                    let record = serde_json::Value::Object(record);
                    tracing::info!(target: DIFC_LOG_TARGET, "[DIFC-FILTERED] {record}");
                }
            }
        }
        match filtered.view {
            ClientView::Denied(denial) => Err(Refusal::Denied(denial.to_string())),
            ClientView::Result(value) => {
                self.taint(agent_id, operation, mode, resource, Some(&items));
                let result = serde_json::from_value::<CallToolResult>(value).map_err(|error| {
                    Refusal::Error(format!(
                        "response labeling failed: response labeling failed: {error}"
                    ))
                })?;
                Ok((result, Some((total, removed))))
            }
        }
    }

    fn taint(
        &self,
        agent_id: &str,
        operation: Operation,
        mode: EnforcementMode,
        resource: &ResourceLabels,
        items: Option<&[guardway_difc::LabeledItem]>,
    ) {
        if taints_agent(operation, mode) {
            let source: LabelPair = taint_source(resource, items);
            self.registry.taint(agent_id, &source);
        }
    }

    fn count_denial(&self, server: &str, tool: &str, stage: &str) {
        self.metrics.add(
            "guardway_denials_total",
            "tools/call requests refused by the DIFC pipeline (stage: limit, coarse, response, guard_error).",
            &["server", "tool", "stage"],
            &[server, tool, stage],
            1,
        );
    }

    /// The state of each server's guard, as `/health` shows it.
    pub fn guard_state_map(&self) -> BTreeMap<String, Value> {
        let Some(servers) = self.servers.get() else {
            return BTreeMap::new();
        };
        servers
            .iter()
            .map(|(id, server)| (id.clone(), guard_state(server)))
            .collect()
    }

    fn render(&self, out: &mut String) {
        self.metrics.render(out);
        let mut idle = SnapshotFamily::gauge(
            "guardway_guard_instances_idle",
            "Guard instances waiting in the pool.",
            &["server"],
        );
        let mut live = SnapshotFamily::gauge(
            "guardway_guard_instances_live",
            "Guard instances alive (idle or in a call).",
            &["server"],
        );
        let mut faults = SnapshotFamily::counter(
            "guardway_guard_faults_total",
            "Guard calls that trapped, timed out or hit the memory cap.",
            &["server", "kind"],
        );
        let mut quarantined = SnapshotFamily::gauge(
            "guardway_guard_quarantined",
            "1 while the server's guard is quarantined.",
            &["server"],
        );
        let mut quarantine_denials = SnapshotFamily::counter(
            "guardway_guard_quarantine_denials_total",
            "Guard calls refused while quarantined.",
            &["server"],
        );
        let mut loaded = SnapshotFamily::gauge(
            "guardway_guard_loaded",
            "1 when the server's guard is usable, 0 when it failed to load.",
            &["server"],
        );
        if let Some(servers) = self.servers.get() {
            for (id, server) in servers {
                let pools = server.pools_view.lock().clone();
                let mut totals = guardway_wasm::GuardStats::default();
                let init_faults = *server.init_faults.lock();
                totals.traps += init_faults.traps;
                totals.timeouts += init_faults.timeouts;
                totals.memory_limits += init_faults.memory_limits;
                let mut is_quarantined = false;
                for guard in &pools {
                    let stats = guard.stats();
                    totals.idle_instances += stats.idle_instances;
                    totals.live_instances += stats.live_instances;
                    totals.traps += stats.traps;
                    totals.timeouts += stats.timeouts;
                    totals.memory_limits += stats.memory_limits;
                    totals.denied += stats.denied;
                    is_quarantined |= matches!(guard.health(), GuardHealth::Quarantined { .. });
                }
                idle.sample(&[id], totals.idle_instances);
                live.sample(&[id], totals.live_instances);
                faults.sample(&[id, "trap"], totals.traps);
                faults.sample(&[id, "timeout"], totals.timeouts);
                faults.sample(&[id, "memory_limit"], totals.memory_limits);
                quarantined.sample(&[id], u64::from(is_quarantined));
                quarantine_denials.sample(&[id], totals.denied);
                loaded.sample(
                    &[id],
                    u64::from(!matches!(server.bound, BoundGuard::Failed { .. })),
                );
            }
        }
        for family in [idle, live, faults, quarantined, quarantine_denials, loaded] {
            family.render(out);
        }
        let mut restarts = SnapshotFamily::counter(
            "guardway_backend_restarts_total",
            "Backend launches after the first one.",
            &["server"],
        );
        if let Some(backends) = self.backends.get() {
            for (id, backend) in backends {
                restarts.sample(&[id], backend.health().launches.saturating_sub(1));
            }
        }
        restarts.render(out);
        render_cache_stats(out);
    }
}

/// The process-wide compilation cache counters.
fn render_cache_stats(out: &mut String) {
    let stats = guardway_wasm::CompilationCache::global().stats();
    let mut lookups = SnapshotFamily::counter(
        "guardway_wasm_cache_lookups_total",
        "Guard module look-ups in the compilation cache by result.",
        &["result"],
    );
    lookups.sample(&["memory_hit"], stats.memory_hits);
    lookups.sample(&["disk_hit"], stats.disk_hits);
    lookups.sample(&["miss"], stats.misses);
    lookups.render(out);
    let mut compilations = SnapshotFamily::counter(
        "guardway_wasm_cache_compilations_total",
        "Guard modules compiled.",
        &[],
    );
    compilations.sample(&[], stats.compilations);
    compilations.render(out);
    let mut evictions = SnapshotFamily::counter(
        "guardway_wasm_cache_evictions_total",
        "Compiled modules evicted from the cache by tier.",
        &["tier"],
    );
    evictions.sample(&["memory"], stats.memory_evictions);
    evictions.sample(&["disk"], stats.disk_evictions);
    evictions.render(out);
    let mut bytes = SnapshotFamily::gauge(
        "guardway_wasm_cache_bytes",
        "Bytes held by the compilation cache by tier.",
        &["tier"],
    );
    bytes.sample(&["memory"], stats.memory_bytes);
    bytes.render(out);
}

fn guard_state(server: &ServerGuard) -> Value {
    let (name, kind) = match &server.bound {
        BoundGuard::Noop => ("noop".to_owned(), "noop"),
        BoundGuard::WriteSink { .. } => ("write-sink".to_owned(), "write-sink"),
        BoundGuard::Wasm { name, .. } => (name.clone(), "wasm"),
        BoundGuard::Failed { name, reason } => {
            return json!({"name": name, "state": "failed-to-load", "reason": reason});
        }
    };
    let pools = server.pools_view.lock().clone();
    let mut state = json!({"name": name, "type": kind, "state": "healthy"});
    for guard in pools {
        match guard.health() {
            GuardHealth::Healthy => {}
            GuardHealth::Degraded {
                recent_failures,
                last_failure,
            } => {
                if state["state"] == "healthy" {
                    state = json!({"name": name, "type": kind, "state": "degraded",
                        "recentFailures": recent_failures, "reason": last_failure});
                }
            }
            GuardHealth::Quarantined { reason, until } => {
                let retry = until.saturating_duration_since(std::time::Instant::now());
                return json!({"name": name, "type": kind, "state": "quarantined",
                    "reason": reason, "retryInSeconds": retry.as_secs()});
            }
        }
    }
    if let Some(Err(error)) = &server.policy {
        return json!({"name": name, "type": kind, "state": "failed-to-load",
            "reason": format!("invalid guard policy: {error}")});
    }
    state
}

fn call_arguments(call: &ToolCall) -> Value {
    call.params
        .arguments
        .clone()
        .map(Value::Object)
        .unwrap_or_else(|| json!({}))
}

/// The context of one decision line.
struct Decision<'a> {
    session: &'a str,
    agent: &'a str,
    server: &'a str,
    tool: &'a str,
    operation: Option<Operation>,
    mode: Option<EnforcementMode>,
}

impl Decision<'_> {
    fn log(&self, decision: &str, reason: &str, counts: Option<(usize, usize)>) {
        let (total, filtered) = counts.unwrap_or((0, 0));
        let operation = self.operation.map(|o| o.to_string()).unwrap_or_default();
        let mode = self.mode.map(|m| m.to_string()).unwrap_or_default();
        if decision == "deny" {
            tracing::warn!(target: DIFC_LOG_TARGET, session = self.session, agent = self.agent,
                server = self.server, tool = self.tool, operation = %operation, mode = %mode,
                decision, reason, items_total = total, items_filtered = filtered, "difc decision");
        } else {
            tracing::info!(target: DIFC_LOG_TARGET, session = self.session, agent = self.agent,
                server = self.server, tool = self.tool, operation = %operation, mode = %mode,
                decision, reason, items_total = total, items_filtered = filtered, "difc decision");
        }
    }

    fn log_error(&self, reason: &str) {
        tracing::error!(target: DIFC_LOG_TARGET, session = self.session, agent = self.agent,
            server = self.server, tool = self.tool, decision = "deny", reason,
            items_total = 0, items_filtered = 0, "difc decision (guard failure)");
    }
}

impl CallInterceptor for GuardPipeline {
    fn intercept<'a>(
        &'a self,
        call: ToolCall,
        backend: &'a dyn BackendInvoker,
    ) -> BoxFuture<'a, Result<CallToolResponse, ErrorData>> {
        Box::pin(self.run(call, backend))
    }

    fn prepare<'a>(
        &'a self,
        backends: &'a BTreeMap<String, Arc<Backend>>,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.load_guards(backends))
    }

    fn guard_states(&self) -> BTreeMap<String, Value> {
        self.guard_state_map()
    }

    fn render_metrics(&self, out: &mut String) {
        self.render(out);
    }

    fn reflect(&self) -> Option<Value> {
        let agents: serde_json::Map<String, Value> = self
            .registry
            .snapshot()
            .into_iter()
            .map(|(id, labels)| {
                let secrecy: Vec<&str> = labels.secrecy.iter().collect();
                let integrity: Vec<&str> = labels.integrity.iter().collect();
                (id, json!({"secrecy": secrecy, "integrity": integrity}))
            })
            .collect();
        Some(json!({"agents": agents, "mode": self.default_mode.as_str()}))
    }
}
