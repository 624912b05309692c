//! The DIFC pipeline as the MCP gateway's [`CallInterceptor`]: each
//! configured server's guard and policy taken from the gateway's
//! configuration (gateway.md §6.1) and settled by the security-by-default
//! rules (`security`: force-public-repos, sink-visibility), guards'
//! `call_backend` over the server's own MCP connection, and rmcp's
//! tool-call types handed to and taken from [`DifcPipeline::call`]. A
//! result becomes JSON only when a guard labels it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use futures::future::BoxFuture;
use guardway_difc::{AgentRegistry, EnforcementMode};
use guardway_wasm::{BackendCallError, GuardOptions};
use rmcp::ErrorData;
use rmcp::model::{CallToolRequestParams, CallToolResponse, CallToolResult};
use serde_json::{Value, json};

use crate::backend::Backend;
use crate::config::{GatewayConfig, ServeOptions};
use crate::github::{
    FORCE_PUBLIC_REPOS_VARIABLE, GATEWAY_LOOKUP_TIMEOUT, GitHubEnv, WorkflowVisibility, env_bool,
};
use crate::observe::digest::StartupPolicies;
use crate::observe::metrics::{MetricsRegistry, SnapshotFamily};
use crate::pipeline::{BackendInvoker, CallInterceptor, ToolCall, gateway_error};

use super::binding::{self, GuardSource};
use super::security::{PolicySource, SecurityDefaults, SinkVisibility};
use super::{
    CallError, DIFC_LOG_TARGET, DifcCall, DifcPipeline, Forwarded, ForwardedResult, GuardLoadError,
    Outcome, ServerSpec, render_cache_stats,
};

/// The DIFC pipeline of a gateway as a [`CallInterceptor`]. Build with
/// [`GuardPipeline::new`]; guards load in `prepare` (at gateway start-up).
/// `Send + Sync`; share as `Arc`.
pub struct GuardPipeline {
    core: DifcPipeline,
    config: GatewayConfig,
    guards_dir: Option<PathBuf>,
    policy_override: Option<Value>,
    require_guards: bool,
    enforce_tool_call_limits: bool,
    security: SecurityDefaults,
    /// Per server, the effective policy as `gateway.md` shows it.
    effective_policies: OnceLock<BTreeMap<String, String>>,
    backends: OnceLock<BTreeMap<String, Arc<Backend>>>,
}

impl std::fmt::Debug for GuardPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardPipeline")
            .field("default_mode", &self.core.default_mode())
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

impl GuardPipeline {
    /// A pipeline for the servers of `options` (nothing is loaded yet).
    pub fn new(options: &ServeOptions) -> Self {
        let guards_dir = options
            .wasm_guards_dir
            .clone()
            .filter(|dir| !dir.as_os_str().is_empty());
        let env = |name: &str| options.env_var(name);
        let visibility =
            WorkflowVisibility::new(GitHubEnv::from_lookup(env), GATEWAY_LOOKUP_TIMEOUT);
        let force_word = options.env_var(FORCE_PUBLIC_REPOS_VARIABLE);
        let env_force = env_bool(force_word.as_deref());
        if let Some(word) = force_word.filter(|word| !word.is_empty() && env_force.is_none()) {
            tracing::debug!(target: DIFC_LOG_TARGET,
                "GetEnvBool: {FORCE_PUBLIC_REPOS_VARIABLE}={word:?} is not a recognized boolean value, using default=true");
        }
        GuardPipeline {
            core: DifcPipeline::new(default_mode(options)),
            config: options.config.clone(),
            guards_dir,
            policy_override: options.extra.guard_policy_override.clone(),
            require_guards: options.require_guards,
            enforce_tool_call_limits: options.enforce_tool_call_limits,
            security: SecurityDefaults::new(&options.config, env_force, visibility),
            effective_policies: OnceLock::new(),
            backends: OnceLock::new(),
        }
    }

    /// Replaces the options every guard instance is created with.
    pub fn with_guard_options(mut self, options: GuardOptions) -> Self {
        self.core = self.core.with_guard_options(options);
        self
    }

    /// The transport-neutral pipeline inside.
    pub fn difc(&self) -> &DifcPipeline {
        &self.core
    }

    /// The shared agent label registry.
    pub fn agents(&self) -> &AgentRegistry {
        self.core.agents()
    }

    /// The counters and histograms of the pipeline.
    pub fn metrics(&self) -> &MetricsRegistry {
        self.core.metrics()
    }

    /// The state of each server's guard, as `/health` shows it.
    pub fn guard_state_map(&self) -> BTreeMap<String, Value> {
        self.core.guard_states()
    }

    /// Each configured server's guard, effective policy and `call_backend`
    /// target, in id order, with the reference's lines. Per server, as the
    /// reference: its configured policy is logged, a write-sink guard's
    /// visibility is settled, then (when the workflow repository is public
    /// and the feature is on) the policy is narrowed to public
    /// repositories. The effective policies are kept for `gateway.md`.
    async fn server_specs(&self, backends: &BTreeMap<String, Arc<Backend>>) -> Vec<ServerSpec> {
        self.security.check_exempt_list(&self.config);
        let mut specs = Vec::with_capacity(self.config.servers.len());
        let mut shown = BTreeMap::new();
        for (id, server) in &self.config.servers {
            let raw = binding::raw_policy(&self.config, server, self.policy_override.as_ref());
            let mut source = binding::guard_source(
                &self.config,
                id,
                server,
                self.guards_dir.as_deref(),
                raw.as_ref(),
            );
            log_guard_policy(id, server.guard_policies.as_ref());
            let mut sink_visibility = None;
            if let GuardSource::WriteSink { accept, public } = &mut source {
                let configured = raw
                    .as_ref()
                    .and_then(binding::write_sink_of)
                    .and_then(binding::configured_sink_visibility);
                let settled = self.security.sink_visibility(id, configured).await;
                *public = settled.as_deref().and_then(SinkVisibility::parse)
                    == Some(SinkVisibility::Public);
                log_write_sink_guard(id, accept.len(), settled.as_deref());
                sink_visibility = Some(settled);
            }
            let policy = if self.security.force_public_repos().await {
                let origin = if self.policy_override.is_some() {
                    PolicySource::Global
                } else if server.guard_policies.is_some() {
                    PolicySource::Server
                } else {
                    PolicySource::Unset
                };
                self.security.force_server_scope(id, origin, raw)
            } else {
                raw
            };
            if let Some(text) = shown_policy(policy.as_ref(), sink_visibility) {
                shown.insert(id.clone(), text);
            }
            let mut spec = ServerSpec::new(id.clone(), source)
                .trusted_bots(self.config.gateway.trusted_bots.clone())
                .enforce_tool_call_limits(self.enforce_tool_call_limits);
            if let Some(policy) = policy {
                spec = spec.policy(policy);
            }
            if let Some(backend) = backends.get(id) {
                spec = spec.call_backend(Arc::new(McpCallBackend {
                    backend: backend.clone(),
                }));
            }
            specs.push(spec);
        }
        let _ = self.effective_policies.set(shown);
        specs
    }

    async fn load_guards(&self, backends: &BTreeMap<String, Arc<Backend>>) -> Result<(), String> {
        let specs = self.server_specs(backends).await;
        // As the reference: DIFC is on when a server has a guard or a
        // policy (force-public-repos gives every server one).
        let enforcing = self.policy_override.is_some()
            || specs.iter().any(ServerSpec::is_guarded)
            || self
                .config
                .servers
                .values()
                .any(|s| s.guard_policies.is_some())
            || (!specs.is_empty() && self.security.force_public_repos().await);
        let failures = self.core.bind_servers(specs).await;
        if enforcing {
            tracing::info!(target: STARTUP_LOG_TARGET,
                "Guards enforcement enabled with mode: {}", self.core.default_mode());
        } else {
            tracing::info!(target: STARTUP_LOG_TARGET,
                "Guards enforcement disabled (sessions auto-created for standard MCP client compatibility)");
        }
        let _ = self.backends.set(backends.clone());
        if self.require_guards && !failures.is_empty() {
            return Err(GuardLoadError { failures }.to_string());
        }
        Ok(())
    }

    async fn run(
        &self,
        call: ToolCall,
        backend: &dyn BackendInvoker,
    ) -> Result<CallToolResponse, ErrorData> {
        let ToolCall {
            server,
            tool,
            agent_id,
            session_id,
            params,
        } = call;
        let arguments = params
            .arguments
            .clone()
            .map(Value::Object)
            .unwrap_or_else(|| json!({}));
        let call = DifcCall {
            server: &server,
            tool: &tool,
            arguments,
            agent_id: agent_id.as_deref(),
            session: session_id.as_deref(),
        };
        match self.core.call(call, || forward(backend, params)).await {
            Ok(Outcome::Result { result, .. }) => Ok(CallToolResponse::Complete(result)),
            Ok(Outcome::Unlabelled(response)) => Ok(response),
            Err(CallError::Refused(refusal)) => Err(gateway_error(refusal.into_message())),
            Err(CallError::Forward(error)) => Err(error),
        }
    }

    fn render(&self, out: &mut String) {
        self.core.render_metrics(out);
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

/// Target of the start-up lines the reference writes under `startup`.
const STARTUP_LOG_TARGET: &str = "guardway::startup";

/// The reference's line about a server's configured policy, before any
/// override (`[difc] [<id>] …` in `mcp-gateway.log`, through the
/// `server_id` field): its own `guard-policies` (JSON, keys sorted as the
/// reference's encoder writes them), or that it has none.
fn log_guard_policy(id: &str, own_policies: Option<&Value>) {
    match own_policies.filter(|p| p.as_object().is_none_or(|map| !map.is_empty())) {
        Some(policies) => tracing::info!(target: DIFC_LOG_TARGET, server_id = %id,
            "Guard policy: {}", sorted_json(policies)),
        None => tracing::info!(target: DIFC_LOG_TARGET, server_id = %id, "No guard policy was set"),
    }
}

/// The reference's line for a write-sink guard: its accept patterns and the
/// `sink-visibility` it enforces once settled (empty when unset).
fn log_write_sink_guard(id: &str, accept: usize, visibility: Option<&str>) {
    tracing::info!(target: DIFC_LOG_TARGET, server_id = %id,
        "Created write-sink guard with {accept} accept patterns, sink-visibility={:?}",
        visibility.unwrap_or_default());
}

/// Compact JSON with every object's keys sorted.
fn sorted_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sorted(v)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

/// The backend call of an MCP tool call: a complete result is labelled, a
/// task handle (or any other answer) passes unlabelled.
async fn forward(
    backend: &dyn BackendInvoker,
    params: CallToolRequestParams,
) -> Result<Forwarded<CallToolResult, CallToolResponse>, ErrorData> {
    Ok(match backend.invoke(params).await? {
        CallToolResponse::Complete(result) => Forwarded::Result(result),
        other => Forwarded::Unlabelled(other),
    })
}

impl ForwardedResult for CallToolResult {
    fn into_json(self) -> Result<(Value, Option<Self>), String> {
        let json = serde_json::to_value(&self).map_err(|error| error.to_string())?;
        Ok((json, Some(self)))
    }

    fn from_json(value: Value) -> Result<Self, String> {
        serde_json::from_value(value).map_err(|error| error.to_string())
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
        Some(self.core.reflect())
    }

    fn startup_policies(&self) -> StartupPolicies {
        StartupPolicies {
            workflow_repository: Some(self.security.workflow_repository_summary()),
            force_public_repos: Some(self.security.force_public_repos_summary()),
            policies: self.effective_policies.get().cloned().unwrap_or_default(),
        }
    }
}

/// A policy as `gateway.md` shows it: compact JSON; a write-sink entry with
/// the visibility its guard enforces (`sink_visibility`: `Some(None)` =
/// unset).
fn shown_policy(policy: Option<&Value>, sink_visibility: Option<Option<String>>) -> Option<String> {
    let mut policy = policy?.clone();
    if let Some(visibility) = sink_visibility
        && let Some(Value::Object(sink)) = policy.as_object_mut().and_then(|map| {
            map.iter_mut()
                .find(|(key, _)| {
                    let key = key.to_ascii_lowercase();
                    key == "write-sink" || key == "writesink"
                })
                .map(|(_, value)| value)
        })
    {
        match visibility {
            Some(visibility) => {
                sink.insert("sink-visibility".into(), Value::String(visibility));
            }
            None => {
                sink.remove("sink-visibility");
            }
        }
    }
    Some(policy.to_string())
}

/// `env.call_backend` of a server's guard: the gateway's handle of that
/// server. Read-only look-ups on behalf of the guard; they bypass the DIFC
/// pipeline.
struct McpCallBackend {
    backend: Arc<Backend>,
}

impl guardway_wasm::Backend for McpCallBackend {
    fn call_tool<'a>(
        &'a self,
        tool: &'a str,
        args: Value,
    ) -> guardway_wasm::BoxFuture<'a, Result<Value, BackendCallError>> {
        Box::pin(async move {
            let mut params = CallToolRequestParams::new(tool.to_owned());
            params.arguments = match args {
                Value::Object(map) => Some(map),
                _ => None,
            };
            let response = self
                .backend
                .call_tool(
                    params,
                    None,
                    None,
                    tokio_util::sync::CancellationToken::new(),
                )
                .await
                .map_err(|error| BackendCallError::Unavailable {
                    message: error.to_string(),
                })?;
            let CallToolResponse::Complete(result) = response else {
                return Err(BackendCallError::Failed {
                    tool: tool.to_owned(),
                    message: "the backend did not complete the call".to_owned(),
                });
            };
            serde_json::to_value(result).map_err(|error| BackendCallError::Failed {
                tool: tool.to_owned(),
                message: error.to_string(),
            })
        })
    }
}
