//! What happens to a `tools/call` between the agent and the backend. The
//! hook around every call is here: a `CallInterceptor` sees the call
//! (server, tool, agent, arguments) and decides whether and how the backend
//! is invoked and what comes back. Guards plug in here (`difc`); the
//! default passes the call straight through. `postprocess` shapes the
//! result afterwards (jq filters, payload spill).

pub mod difc;
pub mod postprocess;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use rmcp::ErrorData;
use rmcp::model::{CallToolRequestParams, CallToolResponse, ErrorCode};

use crate::backend::Backend;

/// What an interceptor knows about one call.
#[derive(Debug, Clone)]
pub struct ToolCall {
    /// Backend server id.
    pub server: String,
    /// Tool name as the backend knows it (no unified prefix).
    pub tool: String,
    /// The agent id (gateway.md §3.2), when the transport carries one.
    pub agent_id: Option<String>,
    /// The MCP session id of the agent, when there is one.
    pub session_id: Option<String>,
    /// The parameters to forward (name already the backend's).
    pub params: CallToolRequestParams,
}

/// Invokes the backend for an interceptor: circuit breaker, timeout,
/// progress relay and cancellation are already wired in.
pub trait BackendInvoker: Send + Sync {
    fn invoke(
        &self,
        params: CallToolRequestParams,
    ) -> BoxFuture<'_, Result<CallToolResponse, ErrorData>>;
}

/// A step around each `tools/call`. Implementations must be cheap to share
/// (`Arc<dyn CallInterceptor>`) and safe to call concurrently.
pub trait CallInterceptor: Send + Sync + 'static {
    /// Runs the call. Returning `Err` answers the agent with that JSON-RPC
    /// error (use code 0 for gateway-side refusals, gateway.md §4).
    fn intercept<'a>(
        &'a self,
        call: ToolCall,
        backend: &'a dyn BackendInvoker,
    ) -> BoxFuture<'a, Result<CallToolResponse, ErrorData>>;

    /// Called once at start-up, after the backends were launched and before
    /// any agent is served (guards load here). An `Err` stops the gateway.
    fn prepare<'a>(
        &'a self,
        backends: &'a BTreeMap<String, Arc<Backend>>,
    ) -> BoxFuture<'a, Result<(), String>> {
        let _ = backends;
        Box::pin(async { Ok(()) })
    }

    /// Per server: the state of its guard, added to `/health`.
    fn guard_states(&self) -> BTreeMap<String, serde_json::Value> {
        BTreeMap::new()
    }

    /// Appends the interceptor's metric families to a `/metrics` body.
    fn render_metrics(&self, out: &mut String) {
        let _ = out;
    }

    /// The DIFC state for `GET /reflect` (difc.md §6): `{"agents": {id:
    /// {"secrecy": [..], "integrity": [..]}}, "mode": ..}` with sorted tags;
    /// the HTTP layer adds the timestamp. `None` when the interceptor does
    /// no DIFC.
    fn reflect(&self) -> Option<serde_json::Value> {
        None
    }
}

/// A gateway-side failure as the agent sees it: JSON-RPC code 0, the text.
pub fn gateway_error(message: impl Into<String>) -> ErrorData {
    ErrorData::new(ErrorCode(0), message.into(), None)
}

/// Forwards every call unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassThrough;

impl CallInterceptor for PassThrough {
    fn intercept<'a>(
        &'a self,
        call: ToolCall,
        backend: &'a dyn BackendInvoker,
    ) -> BoxFuture<'a, Result<CallToolResponse, ErrorData>> {
        backend.invoke(call.params)
    }
}
