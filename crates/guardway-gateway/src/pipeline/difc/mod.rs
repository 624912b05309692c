//! The DIFC pipeline around one tool call, whatever the transport (difc.md
//! §2–§6, gateway.md §6.2): `label_agent` per (session, server), the
//! session's tool-call limits, `label_resource` and the coarse check before
//! the call is forwarded, `label_response`, per-item filtering and taint
//! after it; one structured decision line (target [`DIFC_LOG_TARGET`]) and
//! metrics per call.
//!
//! [`DifcPipeline`] knows a call only as a server id, a tool name, its
//! arguments as JSON, an agent id and a session key; the caller supplies the
//! step that forwards the call ([`DifcPipeline::call`]). The MCP gateway is
//! one caller ([`GuardPipeline`], in `mcp`); a proxy speaking another
//! protocol builds its own with [`DifcPipeline::builder`].

mod binding;
mod call_backend;
mod limits;
mod mcp;
mod report;
mod servers;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use guardway_difc::{
    AgentRegistry, ClientView, DEFAULT_AGENT_ID, EnforcementMode, FilterOutcome, LabelPair,
    LabelResourceInput, LabelResponseInput, LabelView, LabeledItem, Operation, ResourceLabels,
    coarse_check, filter_items, labels_response, noop_resource_labels, taint_source, taints_agent,
    violation_text, write_sink_resource_labels,
};
use guardway_wasm::{Guard, GuardOptions};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::observe::metrics::MetricsRegistry;

pub use binding::{BoundGuard, GuardSource, discover_guard_file, label_agent_payload};
pub use call_backend::GuardBackendLink;
pub use limits::{CallCounters, ToolCallLimits, split_tool_call_limits};
pub use mcp::GuardPipeline;
pub use report::render_cache_stats;
pub use servers::{DifcPipelineBuilder, GuardLoadError, ServerSpec};

use servers::ServerGuard;

/// `tracing` target of the per-call decision lines.
pub const DIFC_LOG_TARGET: &str = "guardway::difc";

const SERVER_TOOL: &[&str] = &["server", "tool"];

/// The DIFC pipeline of a set of servers: their guards, the agents' labels,
/// the per-session state and the pipeline's metrics.
///
/// Build one with [`DifcPipeline::builder`] (guards loaded at once), or
/// with [`DifcPipeline::new`] and bind the servers later with
/// [`DifcPipeline::bind_servers`] (what the gateway does once its backends
/// run). `Send + Sync`; share it as `Arc`. Calls run concurrently; each
/// takes a few short locks (session state, counters, metrics).
pub struct DifcPipeline {
    default_mode: EnforcementMode,
    guard_options: GuardOptions,
    servers: OnceLock<BTreeMap<String, Arc<ServerGuard>>>,
    registry: AgentRegistry,
    sessions: Mutex<HashMap<(String, String), SessionState>>,
    call_counts: CallCounters,
    metrics: MetricsRegistry,
}

impl std::fmt::Debug for DifcPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DifcPipeline")
            .field("default_mode", &self.default_mode)
            .field("servers", &self.servers.get().map(|s| s.len()))
            .finish_non_exhaustive()
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

/// One tool call as the pipeline sees it.
#[derive(Debug, Clone)]
pub struct DifcCall<'a> {
    /// The server id the guard is bound to.
    pub server: &'a str,
    /// The tool name as the server knows it.
    pub tool: &'a str,
    /// The arguments (`{}` when there are none), as `label_resource` and
    /// `label_response` see them.
    pub arguments: Value,
    /// The agent whose labels apply; `None` is [`DEFAULT_AGENT_ID`].
    pub agent_id: Option<&'a str>,
    /// What `label_agent` state and tool-call limits are kept per (an MCP
    /// session id); `None` is the agent id.
    pub session: Option<&'a str>,
}

/// What the caller's forward step returns.
#[derive(Debug)]
pub enum Forwarded<R, P> {
    /// A result, labelled and filtered by the pipeline.
    Result(R),
    /// An outcome the pipeline hands back unlabelled and untainted (an MCP
    /// task handle, an HTTP error status): allowed as it is.
    Unlabelled(P),
}

/// Items of a labelled result: how many there were, how many were removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ItemCounts {
    pub total: usize,
    pub filtered: usize,
}

/// How an allowed call ended.
#[derive(Debug)]
pub enum Outcome<R, P> {
    /// The forwarded result, with the items the agent may not see removed.
    /// `items` is `None` when the guard labelled no items (the result is
    /// unchanged then).
    Result {
        result: R,
        items: Option<ItemCounts>,
    },
    /// The forward step's unlabelled outcome.
    Unlabelled(P),
}

/// Where a DIFC denial happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenialStage {
    /// Before the call was forwarded (a write or read-write the agent may
    /// not make).
    Coarse,
    /// After: the agent may see nothing of the result.
    Response,
}

/// Why the pipeline refused a call. `Display` is the text the agent gets
/// (the gateway answers it with JSON-RPC code 0).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A DIFC denial.
    #[error("{message}")]
    Denied { stage: DenialStage, message: String },
    /// The session used up its tool-call limit for the tool.
    #[error("{message}")]
    Limit { message: String },
    /// No usable guard, or the guard failed (fails closed).
    #[error("{message}")]
    GuardError { message: String },
}

impl Refusal {
    /// The `stage` label of `guardway_denials_total` for this refusal.
    pub fn stage(&self) -> &'static str {
        match self {
            Refusal::Denied {
                stage: DenialStage::Coarse,
                ..
            } => "coarse",
            Refusal::Denied {
                stage: DenialStage::Response,
                ..
            } => "response",
            Refusal::Limit { .. } => "limit",
            Refusal::GuardError { .. } => "guard_error",
        }
    }

    /// The text the agent gets.
    pub fn message(&self) -> &str {
        match self {
            Refusal::Denied { message, .. }
            | Refusal::Limit { message }
            | Refusal::GuardError { message } => message,
        }
    }

    /// The text the agent gets, owned.
    pub fn into_message(self) -> String {
        match self {
            Refusal::Denied { message, .. }
            | Refusal::Limit { message }
            | Refusal::GuardError { message } => message,
        }
    }
}

/// Why [`DifcPipeline::call`] did not return an outcome.
#[derive(Debug)]
pub enum CallError<E> {
    /// The pipeline refused the call (before or after forwarding it).
    Refused(Refusal),
    /// The forward step failed; its error, unchanged.
    Forward(E),
}

/// A forwarded result in the caller's own form. The pipeline converts it
/// to JSON only when a guard labels it, and builds it again only when items
/// were filtered out of it; a caller whose results already are JSON uses
/// `serde_json::Value`, whose conversions move the value.
pub trait ForwardedResult: Sized {
    /// The result as `label_response` sees it (its `tool_result`), and the
    /// result itself when handing it back unfiltered must not cost a
    /// conversion from that JSON (`None`: [`ForwardedResult::from_json`]
    /// rebuilds it).
    ///
    /// # Errors
    /// Why the result has no JSON form (the call is refused with it).
    fn into_json(self) -> Result<(Value, Option<Self>), String>;

    /// The result from JSON.
    ///
    /// # Errors
    /// Why `value` is not a result of this form.
    fn from_json(value: Value) -> Result<Self, String>;

    /// What the agent gets of a result whose items were labelled and some
    /// perhaps removed. The default is the gateway's view
    /// ([`FilteredItems::client_view`]): an MCP tool result holding the
    /// accessible items, or a denial.
    ///
    /// # Errors
    /// [`ViewError::Denied`] when the agent may see none of it.
    fn filtered(items: &FilteredItems<'_>) -> Result<Self, ViewError> {
        match items.client_view() {
            ClientView::Denied(denial) => Err(ViewError::Denied(denial.to_string())),
            ClientView::Result(value) => Self::from_json(value).map_err(ViewError::Invalid),
        }
    }
}

impl ForwardedResult for Value {
    fn into_json(self) -> Result<(Value, Option<Self>), String> {
        Ok((self, None))
    }

    fn from_json(value: Value) -> Result<Self, String> {
        Ok(value)
    }
}

/// A labelled result after per-item filtering, for
/// [`ForwardedResult::filtered`].
#[derive(Debug, Clone, Copy)]
pub struct FilteredItems<'a> {
    /// The result as the guard labelled it.
    pub result: &'a Value,
    /// The labelled items, in the result's order.
    pub items: &'a [LabeledItem],
    /// Which items are accessible and which were removed, and why.
    pub outcome: &'a FilterOutcome,
    pub mode: EnforcementMode,
    pub tool: &'a str,
    pub agent_id: &'a str,
}

impl FilteredItems<'_> {
    /// The MCP gateway's view: the accessible items as one text item plus
    /// a `[Filtered]` notice, or a denial (strict mode, a single item).
    pub fn client_view(&self) -> ClientView {
        self.outcome
            .client_view(self.items, self.mode, self.tool, self.agent_id)
    }
}

/// Why [`ForwardedResult::filtered`] built no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewError {
    /// The agent may see nothing of the result: the denial text.
    Denied(String),
    /// The filtered result could not be built.
    Invalid(String),
}

fn response_labeling_failed(error: impl std::fmt::Display) -> Refusal {
    Refusal::GuardError {
        message: format!("response labeling failed: response labeling failed: {error}"),
    }
}

impl DifcPipeline {
    /// A pipeline with no servers bound yet, whose servers without a mode
    /// of their own (noop guards) enforce `default_mode`.
    pub fn new(default_mode: EnforcementMode) -> Self {
        DifcPipeline {
            default_mode,
            guard_options: GuardOptions::default(),
            servers: OnceLock::new(),
            registry: AgentRegistry::new(),
            sessions: Mutex::new(HashMap::new()),
            call_counts: CallCounters::default(),
            metrics: MetricsRegistry::new(),
        }
    }

    /// A builder: mode, guard options and servers, then
    /// [`DifcPipelineBuilder::build`].
    pub fn builder() -> DifcPipelineBuilder {
        DifcPipelineBuilder::default()
    }

    /// Replaces the options every guard is loaded and instantiated with
    /// (before [`DifcPipeline::bind_servers`]).
    pub fn with_guard_options(mut self, options: GuardOptions) -> Self {
        self.guard_options = options;
        self
    }

    /// The mode of servers whose guard sets none.
    pub fn default_mode(&self) -> EnforcementMode {
        self.default_mode
    }

    /// The shared agent label registry.
    pub fn agents(&self) -> &AgentRegistry {
        &self.registry
    }

    /// The counters and histograms of the pipeline (also part of
    /// [`DifcPipeline::render_metrics`]).
    pub fn metrics(&self) -> &MetricsRegistry {
        &self.metrics
    }

    /// The ids of the bound servers.
    pub fn server_ids(&self) -> Vec<String> {
        self.servers
            .get()
            .map(|servers| servers.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Runs one call through the pipeline: `label_agent` for the session
    /// (once per session and policy), the session's tool-call limit,
    /// `label_resource` and the coarse check; then `forward` (only when the
    /// call may go ahead), `label_response`, per-item filtering
    /// ([`ForwardedResult::filtered`]) and taint. Logs one decision line
    /// and updates the metrics.
    ///
    /// # Errors
    /// [`CallError::Refused`] with the agent's text, or the forward step's
    /// own error as [`CallError::Forward`] (no decision line then).
    pub async fn call<R, P, E, F, Fut>(
        &self,
        call: DifcCall<'_>,
        forward: F,
    ) -> Result<Outcome<R, P>, CallError<E>>
    where
        R: ForwardedResult,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Forwarded<R, P>, E>>,
    {
        let DifcCall {
            server: server_id,
            tool,
            arguments,
            agent_id,
            session,
        } = call;
        let agent_id = agent_id.unwrap_or(DEFAULT_AGENT_ID);
        let session = session.unwrap_or(agent_id);
        self.metrics.add(
            "guardway_tool_calls_total",
            "tools/call requests through the DIFC pipeline.",
            SERVER_TOOL,
            &[server_id, tool],
            1,
        );
        let mut decision = Decision {
            session,
            agent: agent_id,
            server: server_id,
            tool,
            operation: None,
            mode: None,
        };
        let Some(server) = self.servers.get().and_then(|s| s.get(server_id)).cloned() else {
            let message = format!("no guard is bound to server \"{server_id}\"");
            decision.log_error(&message);
            return Err(CallError::Refused(Refusal::GuardError { message }));
        };
        let refuse = |refusal: Refusal| {
            self.count_denial(server_id, tool, refusal.stage());
            CallError::Refused(refusal)
        };
        let (labeler, mode) = match self
            .session_labeler(&server, server_id, session, agent_id)
            .await
        {
            Ok(found) => found,
            Err(message) => {
                decision.log_error(&message);
                return Err(refuse(Refusal::GuardError { message }));
            }
        };
        decision.mode = Some(mode);
        if let Err(message) = self
            .call_counts
            .admit(&server.limits, session, server_id, tool)
        {
            decision.log("deny", &message, None);
            return Err(refuse(Refusal::Limit { message }));
        }
        let resource = match self
            .label_resource(&labeler, server_id, tool, &arguments)
            .await
        {
            Ok(resource) => resource,
            Err(message) => {
                decision.log_error(&message);
                return Err(refuse(Refusal::GuardError { message }));
            }
        };
        let operation = resource.operation;
        decision.operation = Some(operation);
        let agent = self.registry.get_or_create(agent_id);
        let check = coarse_check(&agent, &resource, mode);
        if check.refused {
            let message = violation_text(&check.evaluation, &agent, LabelView::from(&resource));
            decision.log("deny", &check.evaluation.reason, None);
            return Err(refuse(Refusal::Denied {
                stage: DenialStage::Coarse,
                message,
            }));
        }
        let result = match forward().await.map_err(CallError::Forward)? {
            Forwarded::Result(result) => result,
            Forwarded::Unlabelled(outcome) => {
                decision.log("allow", "", None);
                return Ok(Outcome::Unlabelled(outcome));
            }
        };
        let guard = match &labeler {
            Labeler::Wasm(guard) if labels_response(operation, mode) => guard,
            _ => {
                self.taint(agent_id, operation, mode, &resource, None);
                decision.log("allow", &check.evaluation.reason, None);
                return Ok(Outcome::Result {
                    result,
                    items: None,
                });
            }
        };
        let labelled = Labelled {
            guard,
            server_id,
            tool,
            agent_id,
            resource: &resource,
            mode,
        };
        match self.label_and_filter(labelled, arguments, result).await {
            Ok((result, items)) => {
                let outcome = if items.is_some_and(|counts| counts.filtered > 0) {
                    "filter"
                } else {
                    "allow"
                };
                decision.log(outcome, &check.evaluation.reason, items);
                Ok(Outcome::Result { result, items })
            }
            Err(refusal @ Refusal::Denied { .. }) => {
                decision.log("deny", refusal.message(), None);
                Err(refuse(refusal))
            }
            Err(refusal) => {
                decision.log_error(refusal.message());
                Err(refuse(refusal))
            }
        }
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
        tool: &str,
        arguments: &Value,
    ) -> Result<ResourceLabels, String> {
        match labeler {
            Labeler::Noop => Ok(noop_resource_labels()),
            Labeler::WriteSink { accept, public } => {
                Ok(write_sink_resource_labels(accept, *public, tool))
            }
            Labeler::Wasm(guard) => {
                let input = LabelResourceInput {
                    tool_name: tool.to_owned(),
                    tool_args: arguments.clone(),
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

    async fn label_and_filter<R: ForwardedResult>(
        &self,
        call: Labelled<'_>,
        arguments: Value,
        result: R,
    ) -> Result<(R, Option<ItemCounts>), Refusal> {
        let Labelled {
            guard,
            server_id,
            tool,
            agent_id,
            resource,
            mode,
        } = call;
        let operation = resource.operation;
        let (tool_result, kept) = result.into_json().map_err(response_labeling_failed)?;
        let input = LabelResponseInput {
            tool_name: tool.to_owned(),
            tool_result,
            tool_args: Some(arguments),
            capabilities: Some(json!({})),
        };
        let started = Instant::now();
        let labels = guard.label_response(&input).await;
        self.observe_guard(server_id, "label_response", started);
        let labels = labels.map_err(response_labeling_failed)?;
        let items = labels
            .into_items(&input.tool_result)
            .map_err(response_labeling_failed)?;
        let Some(items) = items else {
            self.taint(agent_id, operation, mode, resource, None);
            let result = match kept {
                Some(result) => result,
                None => R::from_json(input.tool_result).map_err(response_labeling_failed)?,
            };
            return Ok((result, None));
        };
        let agent = self.registry.get_or_create(agent_id);
        let outcome = filter_items(&agent, &items, operation, mode);
        let counts = ItemCounts {
            total: outcome.total,
            filtered: outcome.filtered.len(),
        };
        if counts.filtered > 0 {
            self.metrics.add(
                "guardway_filtered_items_total",
                "Response items removed by DIFC filtering.",
                SERVER_TOOL,
                &[server_id, tool],
                counts.filtered as u64,
            );
            let logged = tracing::enabled!(target: DIFC_LOG_TARGET, tracing::Level::INFO);
            for item in outcome.filtered.iter().filter(|_| logged) {
                if let Some(labeled) = items.get(item.index) {
                    let record =
                        guardway_difc::filtered_item_record(server_id, tool, labeled, item);
                    let record = serde_json::Value::Object(record);
                    tracing::info!(target: DIFC_LOG_TARGET, "[DIFC-FILTERED] {record}");
                }
            }
        }
        let view = R::filtered(&FilteredItems {
            result: &input.tool_result,
            items: &items,
            outcome: &outcome,
            mode,
            tool,
            agent_id,
        });
        match view {
            Err(ViewError::Denied(message)) => Err(Refusal::Denied {
                stage: DenialStage::Response,
                message,
            }),
            Err(ViewError::Invalid(error)) => Err(response_labeling_failed(error)),
            Ok(result) => {
                self.taint(agent_id, operation, mode, resource, Some(&items));
                Ok((result, Some(counts)))
            }
        }
    }

    fn taint(
        &self,
        agent_id: &str,
        operation: Operation,
        mode: EnforcementMode,
        resource: &ResourceLabels,
        items: Option<&[LabeledItem]>,
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

    fn observe_guard(&self, server: &str, function: &str, started: Instant) {
        self.metrics.observe(
            "guardway_guard_call_duration_seconds",
            "Duration of guard function calls.",
            &["server", "function"],
            &[server, function],
            started.elapsed(),
        );
    }
}

/// What `label_response` and filtering need to know about the call.
struct Labelled<'a> {
    guard: &'a Guard,
    server_id: &'a str,
    tool: &'a str,
    agent_id: &'a str,
    resource: &'a ResourceLabels,
    mode: EnforcementMode,
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
    fn log(&self, decision: &str, reason: &str, counts: Option<ItemCounts>) {
        let ItemCounts { total, filtered } = counts.unwrap_or_default();
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
