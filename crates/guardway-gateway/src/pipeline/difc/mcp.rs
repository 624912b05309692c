//! The DIFC pipeline as the MCP gateway's [`CallInterceptor`]: each
//! configured server's guard and policy taken from the gateway's
//! configuration (gateway.md §6.1), guards' `call_backend` over the
//! server's own MCP connection, and rmcp's tool-call types handed to and
//! taken from [`DifcPipeline::call`]. A result becomes JSON only when a
//! guard labels it.

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
use crate::observe::metrics::{MetricsRegistry, SnapshotFamily};
use crate::pipeline::{BackendInvoker, CallInterceptor, ToolCall, gateway_error};

use super::binding;
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
        GuardPipeline {
            core: DifcPipeline::new(default_mode(options)),
            config: options.config.clone(),
            guards_dir,
            policy_override: options.extra.guard_policy_override.clone(),
            require_guards: options.require_guards,
            enforce_tool_call_limits: options.enforce_tool_call_limits,
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

    /// Each configured server's guard, policy and `call_backend` target.
    fn server_specs(&self, backends: &BTreeMap<String, Arc<Backend>>) -> Vec<ServerSpec> {
        self.config
            .servers
            .iter()
            .map(|(id, server)| {
                let raw = binding::raw_policy(&self.config, server, self.policy_override.as_ref());
                let source = binding::guard_source(
                    &self.config,
                    id,
                    server,
                    self.guards_dir.as_deref(),
                    raw.as_ref(),
                );
                let mut spec = ServerSpec::new(id.clone(), source)
                    .trusted_bots(self.config.gateway.trusted_bots.clone())
                    .enforce_tool_call_limits(self.enforce_tool_call_limits);
                if let Some(raw) = raw {
                    spec = spec.policy(raw);
                }
                if let Some(backend) = backends.get(id) {
                    spec = spec.call_backend(Arc::new(McpCallBackend {
                        backend: backend.clone(),
                    }));
                }
                spec
            })
            .collect()
    }

    async fn load_guards(&self, backends: &BTreeMap<String, Arc<Backend>>) -> Result<(), String> {
        let failures = self.core.bind_servers(self.server_specs(backends)).await;
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
