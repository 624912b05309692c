//! The MCP server agents talk to: one `rmcp` server handler per agent
//! session, scoped to one backend (routed mode) or to all (unified mode),
//! forwarding tools, prompts and resources to the backends.

// MCP logging is deprecated by the newest protocol revision but still
// carried for agents and backends that speak older ones.
#![allow(deprecated)]

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, GetPromptRequestParams, GetPromptResponse,
    Implementation, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ProtocolVersion, ReadResourceRequestParams,
    ReadResourceResponse, ServerCapabilities, ServerConfig, SetLevelRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};

use crate::agent::catalog::{present_prompt, present_tool, split_unified_name};
use crate::backend::Backend;
use crate::backend::error::BackendError;
use crate::backend::relay::{AgentProgress, AgentScope, NotificationRelay};
use crate::config::tool_allowed;
use crate::pipeline::{BackendInvoker, CallInterceptor, ToolCall, gateway_error};

/// State shared by every agent session of one gateway. Thread-safe; held in
/// an `Arc`.
pub struct GatewayCore {
    pub backends: BTreeMap<String, Arc<Backend>>,
    pub relay: Arc<NotificationRelay>,
    pub interceptor: Arc<dyn CallInterceptor>,
    /// `tools/call` requests being served right now.
    pub in_flight: std::sync::atomic::AtomicUsize,
    /// jq response filters and payload spill after the interceptor.
    pub postprocess: crate::pipeline::postprocess::ResultPostProcessor,
}

impl GatewayCore {
    pub fn in_flight_calls(&self) -> usize {
        self.in_flight.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Counts one in-flight call for as long as it lives.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a std::sync::atomic::AtomicUsize) -> Self {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl std::fmt::Debug for GatewayCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayCore")
            .field("backends", &self.backends.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Which backends one agent session sees.
#[derive(Debug, Clone)]
pub enum SessionScope {
    Routed(Arc<Backend>),
    Unified,
}

/// The `rmcp` server handler of one agent session. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AgentSession {
    core: Arc<GatewayCore>,
    scope: SessionScope,
}

fn backend_error(error: BackendError) -> ErrorData {
    gateway_error(error.to_string())
}

fn unknown_tool(name: &str) -> ErrorData {
    ErrorData::invalid_params(format!("unknown tool \"{name}\""), None)
}

struct SessionInvoker<'a> {
    backend: &'a Backend,
    /// Selects the agent's own process of a stdio backend.
    agent_id: Option<String>,
    meta: Option<rmcp::model::RequestMetaObject>,
    progress: Option<(
        crate::backend::relay::AgentProgress,
        rmcp::model::ProgressToken,
    )>,
    cancel: tokio_util::sync::CancellationToken,
}

impl BackendInvoker for SessionInvoker<'_> {
    fn invoke(
        &self,
        params: CallToolRequestParams,
    ) -> BoxFuture<'_, Result<CallToolResponse, ErrorData>> {
        Box::pin(async move {
            self.backend
                .call_tool_as(
                    self.agent_id.as_deref(),
                    params,
                    self.meta.clone(),
                    self.progress.clone(),
                    self.cancel.clone(),
                )
                .await
                .map_err(backend_error)
        })
    }
}

/// Where a `tools/call` comes from: the agent, its session, the request's
/// `_meta`, where to send progress (when the agent asked for it) and the
/// token that cancels the call.
pub(crate) struct AgentCall {
    pub agent_id: Option<String>,
    pub session_id: Option<String>,
    pub meta: rmcp::model::RequestMetaObject,
    pub progress: Option<(
        crate::backend::relay::AgentProgress,
        rmcp::model::ProgressToken,
    )>,
    pub cancel: tokio_util::sync::CancellationToken,
}

/// Serves one agent `tools/call` within `scope`: name resolution, the
/// allowed-tools list, the interceptor (the DIFC pipeline when guards are
/// configured) around the backend call, the tool timeout and the
/// post-processing of the result. Used by the rmcp handler and by the direct
/// path of the HTTP endpoint (`crate::agent::direct`).
pub(crate) async fn serve_tool_call(
    core: &GatewayCore,
    scope: &SessionScope,
    mut request: CallToolRequestParams,
    call: AgentCall,
) -> Result<CallToolResponse, ErrorData> {
    let _in_flight = InFlight::enter(&core.in_flight);
    let requested = request.name.to_string();
    let Some((backend, tool)) = resolve(core, scope, &requested) else {
        return Err(unknown_tool(&requested));
    };
    if !tool_allowed(backend.config().tools.as_deref(), &tool) {
        return Err(gateway_error(format!(
            "tool \"{tool}\" is not in the allowed-tools list for this server"
        )));
    }
    if !backend.has_tool(&tool) && backend.health().status == crate::backend::BackendStatus::Running
    {
        return Err(unknown_tool(&requested));
    }
    request.name = tool.clone().into();
    let invoker = SessionInvoker {
        backend: &backend,
        agent_id: call.agent_id.clone(),
        meta: Some(call.meta),
        progress: call.progress,
        cancel: call.cancel,
    };
    let response_filter = backend.config().tool_response_filters.get(&tool);
    let agent_id = call.agent_id;
    let tool_call = ToolCall {
        server: backend.id().to_owned(),
        tool,
        agent_id: agent_id.clone(),
        session_id: call.session_id,
        params: request,
    };
    let timeout = backend.tool_timeout();
    // The tool timeout bounds the whole call, interceptor included; the
    // backend request itself carries the same timeout (and is cancelled on
    // the backend when it expires).
    match tokio::time::timeout(
        timeout + std::time::Duration::from_millis(250),
        core.interceptor.intercept(tool_call, &invoker),
    )
    .await
    {
        Ok(result) => {
            let agent = || agent_id.clone();
            core.postprocess
                .apply(backend.id(), result, response_filter, agent)
                .await
        }
        Err(_) => Err(backend_error(BackendError::Timeout {
            server: backend.id().to_owned(),
            method: "tools/call".into(),
            timeout,
        })),
    }
}

/// Resolves an agent-facing tool name to (backend, backend-side name).
fn resolve(core: &GatewayCore, scope: &SessionScope, name: &str) -> Option<(Arc<Backend>, String)> {
    match scope {
        SessionScope::Routed(b) => Some((b.clone(), name.to_owned())),
        SessionScope::Unified => {
            let (server, rest) = split_unified_name(name, |s| core.backends.contains_key(s))?;
            let backend = core.backends.get(server)?.clone();
            Some((backend, rest.to_owned()))
        }
    }
}

impl AgentSession {
    pub fn new(core: Arc<GatewayCore>, scope: SessionScope) -> Self {
        Self { core, scope }
    }

    fn unified(&self) -> bool {
        matches!(self.scope, SessionScope::Unified)
    }

    fn visible_backends(&self) -> Vec<Arc<Backend>> {
        match &self.scope {
            SessionScope::Routed(b) => vec![b.clone()],
            SessionScope::Unified => self.core.backends.values().cloned().collect(),
        }
    }

    /// Resolves an agent-facing name to (backend, backend-side name).
    fn resolve(&self, name: &str) -> Option<(Arc<Backend>, String)> {
        resolve(&self.core, &self.scope, name)
    }

    fn agent_id(context: &RequestContext<RoleServer>) -> Option<String> {
        context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| crate::agent::auth::agent_id(&parts.headers))
    }

    fn session_id(context: &RequestContext<RoleServer>) -> Option<String> {
        context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

impl ServerHandler for AgentSession {
    fn get_info(&self) -> ServerConfig {
        let (name, capabilities) = match &self.scope {
            SessionScope::Routed(b) => {
                let mut caps = ServerCapabilities::builder()
                    .enable_tools()
                    .enable_tool_list_changed()
                    .enable_prompts()
                    .enable_logging()
                    .enable_resources()
                    .build();
                if !b.has_resources() {
                    caps.resources = None;
                }
                (format!("awmg-{}", b.id()), caps)
            }
            SessionScope::Unified => (
                "awmg-unified".to_owned(),
                ServerCapabilities::builder()
                    .enable_tools()
                    .enable_tool_list_changed()
                    .enable_prompts()
                    .enable_logging()
                    .build(),
            ),
        };
        let mut info = ServerConfig::new(capabilities);
        info.server_info = Implementation::new(name, env!("CARGO_PKG_VERSION"));
        info.protocol_version = ProtocolVersion::LATEST_WITH_INITIALIZE;
        info
    }

    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        std::borrow::Cow::Borrowed(ProtocolVersion::known_up_to(
            &ProtocolVersion::LATEST_WITH_INITIALIZE,
        ))
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let scope = match &self.scope {
            SessionScope::Routed(b) => AgentScope::Routed(b.id().to_owned()),
            SessionScope::Unified => AgentScope::Unified,
        };
        self.core.relay.register_agent(scope, context.peer);
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let unified = self.unified();
        let tools = self
            .visible_backends()
            .iter()
            .flat_map(|b| {
                b.tools()
                    .into_iter()
                    .map(|t| present_tool(b.id(), &t, unified))
                    .collect::<Vec<_>>()
            })
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let progress = context
            .meta
            .get_progress_token()
            .map(|token| (AgentProgress::Peer(context.peer.clone()), token));
        let call = AgentCall {
            agent_id: Self::agent_id(&context),
            session_id: Self::session_id(&context),
            meta: context.meta.clone(),
            progress,
            cancel: context.ct.clone(),
        };
        serve_tool_call(&self.core, &self.scope, request, call).await
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let unified = self.unified();
        let prompts = self
            .visible_backends()
            .iter()
            .flat_map(|b| {
                b.prompts()
                    .into_iter()
                    .map(|p| present_prompt(b.id(), &p, unified))
                    .collect::<Vec<_>>()
            })
            .collect();
        Ok(ListPromptsResult::with_all_items(prompts))
    }

    async fn get_prompt(
        &self,
        mut request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let Some((backend, prompt)) = self.resolve(&request.name) else {
            return Err(ErrorData::invalid_params(
                format!("unknown prompt \"{}\"", request.name),
                None,
            ));
        };
        if !backend.has_prompt(&prompt) {
            return Err(ErrorData::invalid_params(
                format!("unknown prompt \"{}\"", request.name),
                None,
            ));
        }
        request.name = prompt;
        backend
            .get_prompt(request)
            .await
            .map(GetPromptResponse::Complete)
            .map_err(backend_error)
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        match &self.scope {
            SessionScope::Routed(b) if b.has_resources() => {
                b.list_resources(request).await.map_err(backend_error)
            }
            _ => Ok(ListResourcesResult::default()),
        }
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        match &self.scope {
            SessionScope::Routed(b) if b.has_resources() => b
                .list_resource_templates(request)
                .await
                .map_err(backend_error),
            _ => Ok(ListResourceTemplatesResult::default()),
        }
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        match &self.scope {
            SessionScope::Routed(b) if b.has_resources() => b
                .read_resource(request)
                .await
                .map(ReadResourceResponse::Complete)
                .map_err(backend_error),
            _ => Err(ErrorData::method_not_found::<
                rmcp::model::ReadResourceRequestMethod,
            >()),
        }
    }

    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        for backend in self.visible_backends() {
            if let Err(error) = backend.set_level(request.clone()).await {
                tracing::debug!(server = backend.id(), %error, "logging/setLevel not forwarded");
            }
        }
        Ok(())
    }
}
