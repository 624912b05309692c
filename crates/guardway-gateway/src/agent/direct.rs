//! The direct path of an agent's `tools/call` on a live session: the call is
//! served inside the HTTP request's own task and its answer streamed back as
//! one SSE `message` event (gateway.md §3.4), instead of travelling through
//! rmcp's session worker and service loop and back (five task hand-offs per
//! call, which dominated the gateway's added latency).
//!
//! A call that names a per-request protocol version or carries SEP-2243
//! routing headers goes through rmcp as before, as does everything that is
//! not a `tools/call`. Progress the agent asked for (a `progressToken` in
//! `_meta`) is sent on the same stream, each notification before the result.
//! `notifications/cancelled` naming a direct call cancels it here; any other
//! is passed on to rmcp. The answer's headers are sent at once and SSE
//! comments keep the stream alive while the call runs, as rmcp does for its
//! streams.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use futures::{FutureExt, Stream};
use parking_lot::Mutex;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientJsonRpcMessage, ClientNotification,
    ClientRequest, ErrorData, GetMeta, Notification, ProgressNotificationParam, RequestId,
    RequestMetaObject, ServerJsonRpcMessage, ServerNotification, ServerResult,
};
use tokio_util::sync::CancellationToken;

use crate::agent::server::{AgentCall, GatewayCore, SessionScope, serve_tool_call};
use crate::agent::sessions::ExpiringSessionManager;
use crate::backend::relay::AgentProgress;

/// The parsed JSON-RPC message of a POST, left in the request's extensions
/// by the body check so that it is not parsed again here.
#[derive(Debug, Clone)]
pub struct ParsedMessage(pub ClientJsonRpcMessage);

/// The `_meta` key of a per-request protocol version.
const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// SEP-2243 routing header; its checks live in rmcp.
const MCP_METHOD_HEADER: &str = "mcp-method";

/// One MCP endpoint (one backend in routed mode, `/mcp` in unified mode):
/// its sessions, what its sessions see, and its direct calls in flight.
/// Thread-safe; shared as `Arc` by the endpoint's middleware.
pub struct McpEndpoint {
    pub sessions: Arc<ExpiringSessionManager>,
    core: Arc<GatewayCore>,
    scope: SessionScope,
    keep_alive: Option<Duration>,
    /// Direct calls being served, by (session, JSON-RPC id): the call's
    /// serial number and its cancellation token.
    in_flight: Mutex<HashMap<(String, RequestId), (u64, CancellationToken)>>,
    next_serial: AtomicU64,
}

impl std::fmt::Debug for McpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpEndpoint")
            .field("scope", &self.scope)
            .field("in_flight", &self.in_flight.lock().len())
            .finish()
    }
}

/// What the endpoint does with a message on a live session.
pub enum Route {
    /// Served here: the answer.
    Answered(Response),
    /// Not for the direct path: rmcp serves it.
    Pass,
}

impl McpEndpoint {
    pub fn new(
        sessions: Arc<ExpiringSessionManager>,
        core: Arc<GatewayCore>,
        scope: SessionScope,
        keep_alive: Option<Duration>,
    ) -> Self {
        Self {
            sessions,
            core,
            scope,
            keep_alive,
            in_flight: Mutex::new(HashMap::new()),
            next_serial: AtomicU64::new(0),
        }
    }

    /// Routes a POSTed message of the live session `session`.
    pub async fn route(
        self: &Arc<Self>,
        session: &str,
        headers: &HeaderMap,
        message: ClientJsonRpcMessage,
    ) -> Route {
        match message {
            ClientJsonRpcMessage::Request(request) if is_plain_call(&request.request, headers) => {
                let id = request.id;
                let mut request = request.request;
                let meta = std::mem::take(request.get_meta_mut());
                let ClientRequest::CallToolRequest(call) = request else {
                    return Route::Pass;
                };
                let agent_id = crate::agent::auth::agent_id(headers);
                Route::Answered(
                    self.clone()
                        .serve(session.to_owned(), agent_id, id, call.params, meta)
                        .await,
                )
            }
            ClientJsonRpcMessage::Notification(notification) => {
                if let ClientNotification::CancelledNotification(cancelled) =
                    &notification.notification
                    && let Some(id) = &cancelled.params.request_id
                    && let Some((_, token)) = self
                        .in_flight
                        .lock()
                        .get(&(session.to_owned(), id.clone()))
                        .cloned()
                {
                    self.sessions.touch(session);
                    tracing::debug!(session, request = %id, "agent cancelled a tool call");
                    token.cancel();
                    return Route::Answered(StatusCode::ACCEPTED.into_response());
                }
                Route::Pass
            }
            _ => Route::Pass,
        }
    }

    /// Starts serving one call; the response's body carries its answer.
    async fn serve(
        self: Arc<Self>,
        session: String,
        agent_id: Option<String>,
        id: RequestId,
        params: CallToolRequestParams,
        meta: RequestMetaObject,
    ) -> Response {
        self.sessions.touch(&session);
        let cancel = CancellationToken::new();
        let (progress, progress_queue) = match meta.get_progress_token() {
            Some(token) => {
                let (sender, queue) = tokio::sync::mpsc::unbounded_channel();
                (Some((AgentProgress::Direct(sender), token)), Some(queue))
            }
            None => (None, None),
        };
        let key = (session.clone(), id.clone());
        let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);
        // A reused id: the newer call owns the entry; the older one still
        // finishes, but only the newer can be cancelled by id.
        self.in_flight
            .lock()
            .insert(key.clone(), (serial, cancel.clone()));
        let in_flight = InFlightEntry {
            endpoint: self.clone(),
            key,
            serial,
        };
        let cancelled = cancel.clone();
        let call = AgentCall {
            agent_id,
            session_id: Some(session),
            meta,
            progress,
            cancel,
        };
        let mut answer = async move {
            let _in_flight = in_flight;
            let endpoint = &_in_flight.endpoint;
            let outcome = serve_tool_call(&endpoint.core, &endpoint.scope, params, call).await;
            if cancelled.is_cancelled() {
                // The agent cancelled the call: it gets no answer
                // (MCP cancellation), the stream just ends.
                return Bytes::new();
            }
            sse_message(&answer_message(outcome, id))
        }
        .boxed();
        let mut progress_queue = progress_queue;
        // A call that ends quickly is answered with one sized body, written
        // at once; one that sends progress or runs longer is streamed.
        let first = tokio::select! {
            biased;
            event = &mut answer => {
                let mut body = Vec::new();
                if let Some(queue) = progress_queue.as_mut() {
                    while let Ok(param) = queue.try_recv() {
                        body.extend_from_slice(&progress_event(param));
                    }
                }
                body.extend_from_slice(&event);
                return sse_response(Body::from(body));
            }
            Some(param) = next_progress(&mut progress_queue) => Some(progress_event(param)),
            () = tokio::time::sleep(STREAM_AFTER) => None,
        };
        let body = AnswerBody {
            first,
            answer: Some(answer),
            ready: None,
            progress: progress_queue,
            keep_alive: self.keep_alive.map(|period| {
                let mut interval =
                    tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                interval
            }),
        };
        sse_response(Body::from_stream(body))
    }
}

/// How long a direct call may run before its answer is streamed (headers
/// sent, then keep-alive comments until the answer).
const STREAM_AFTER: Duration = Duration::from_secs(1);

/// An SSE answer with `body`.
fn sse_response(body: Body) -> Response {
    (
        [
            (http::header::CONTENT_TYPE, "text/event-stream"),
            (http::header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The next progress notification of a call, if it asked for progress.
async fn next_progress(
    queue: &mut Option<tokio::sync::mpsc::UnboundedReceiver<ProgressNotificationParam>>,
) -> Option<ProgressNotificationParam> {
    match queue {
        Some(queue) => queue.recv().await,
        None => std::future::pending().await,
    }
}

/// Whether a `tools/call` can take the direct path: no per-request protocol
/// version, no SEP-2243 headers, a Host header.
fn is_plain_call(request: &ClientRequest, headers: &HeaderMap) -> bool {
    if !matches!(request, ClientRequest::CallToolRequest(_)) {
        return false;
    }
    // The Host and MCP-Protocol-Version checks ran before (`compat`); a
    // request without a Host header is left to rmcp's own check.
    let meta = request.get_meta();
    !meta.contains_key(META_PROTOCOL_VERSION)
        && !headers.contains_key(MCP_METHOD_HEADER)
        && headers.contains_key(http::header::HOST)
}

/// The JSON-RPC answer to a call, as rmcp's handler would give it.
fn answer_message(
    outcome: Result<CallToolResponse, ErrorData>,
    id: RequestId,
) -> ServerJsonRpcMessage {
    match outcome {
        // Nobody asked for a task: a task handle is not an answer.
        Ok(CallToolResponse::Task(_)) => ServerJsonRpcMessage::error(
            crate::pipeline::gateway_error("the backend answered with a task nobody asked for"),
            Some(id),
        ),
        Ok(response) => ServerJsonRpcMessage::response(ServerResult::from(response), id),
        Err(error) => ServerJsonRpcMessage::error(error, Some(id)),
    }
}

/// One SSE `message` event carrying `message`.
fn sse_message(message: &ServerJsonRpcMessage) -> Bytes {
    let json = serde_json::to_string(message).unwrap_or_else(|error| {
        // A result rmcp's own types cannot serialise: say so to the agent.
        format!(
            r#"{{"jsonrpc":"2.0","id":null,"error":{{"code":-32603,"message":{}}}}}"#,
            serde_json::Value::String(format!("answer could not be serialised: {error}"))
        )
    });
    let mut event = Vec::with_capacity(json.len() + 24);
    event.extend_from_slice(b"event: message\ndata: ");
    event.extend_from_slice(json.as_bytes());
    event.extend_from_slice(b"\n\n");
    Bytes::from(event)
}

/// Removes a direct call from the in-flight table when it ends, however it
/// ends (answered, or dropped with its connection).
struct InFlightEntry {
    endpoint: Arc<McpEndpoint>,
    key: (String, RequestId),
    serial: u64,
}

impl Drop for InFlightEntry {
    fn drop(&mut self) {
        let mut table = self.endpoint.in_flight.lock();
        // Only our own entry: a later call may have reused the id.
        if table
            .get(&self.key)
            .is_some_and(|(serial, _)| *serial == self.serial)
        {
            table.remove(&self.key);
        }
    }
}

/// One SSE `message` event carrying a progress notification.
fn progress_event(param: ProgressNotificationParam) -> Bytes {
    sse_message(&ServerJsonRpcMessage::notification(
        ServerNotification::ProgressNotification(Notification::new(param)),
    ))
}

/// The response body of a direct call: the progress the agent asked for
/// and SSE keep-alive comments while the call runs, then its answer, then
/// the end of the stream. Polled by the connection's own task, so the call
/// runs there.
struct AnswerBody {
    /// An event to send before anything else.
    first: Option<Bytes>,
    answer: Option<BoxFuture<'static, Bytes>>,
    /// The answer, once ready, while progress sent before it drains.
    ready: Option<Bytes>,
    progress: Option<tokio::sync::mpsc::UnboundedReceiver<ProgressNotificationParam>>,
    keep_alive: Option<tokio::time::Interval>,
}

impl Stream for AnswerBody {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(event) = this.first.take() {
            return Poll::Ready(Some(Ok(event)));
        }
        if let Some(answer) = this.answer.as_mut()
            && let Poll::Ready(event) = answer.as_mut().poll(cx)
        {
            this.answer = None;
            this.ready = Some(event);
        }
        if let Some(queue) = this.progress.as_mut() {
            // Everything the call sent before its answer is queued by the
            // time the answer is ready; the agent gets it first.
            let next = if this.answer.is_some() {
                match queue.poll_recv(cx) {
                    Poll::Ready(param) => param,
                    Poll::Pending => None,
                }
            } else {
                queue.try_recv().ok()
            };
            if let Some(param) = next {
                return Poll::Ready(Some(Ok(progress_event(param))));
            }
        }
        if let Some(event) = this.ready.take() {
            this.progress = None;
            this.keep_alive = None;
            if !event.is_empty() {
                return Poll::Ready(Some(Ok(event)));
            }
        }
        if this.answer.is_none() {
            return Poll::Ready(None);
        }
        if let Some(keep_alive) = this.keep_alive.as_mut()
            && keep_alive.poll_tick(cx).is_ready()
        {
            return Poll::Ready(Some(Ok(Bytes::from_static(b": keep-alive\n\n"))));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(meta: serde_json::Value) -> ClientRequest {
        let message: ClientJsonRpcMessage = serde_json::from_value(serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "echo", "arguments": {}, "_meta": meta}
        }))
        .unwrap();
        match message {
            ClientJsonRpcMessage::Request(request) => request.request,
            other => panic!("not a request: {other:?}"),
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, http::HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn only_plain_tool_calls_take_the_direct_path() {
        let host = [("host", "127.0.0.1:8000")];
        assert!(is_plain_call(&call(serde_json::json!({})), &headers(&host)));
        assert!(is_plain_call(
            &call(serde_json::json!({"progressToken": 7})),
            &headers(&host)
        ));
        // A per-request protocol version is rmcp's to check.
        assert!(!is_plain_call(
            &call(serde_json::json!({META_PROTOCOL_VERSION: "2025-06-18"})),
            &headers(&host)
        ));
        // So are SEP-2243 routing headers, and a request without a Host.
        assert!(!is_plain_call(
            &call(serde_json::json!({})),
            &headers(&[("host", "127.0.0.1:8000"), ("mcp-method", "tools/call")])
        ));
        assert!(!is_plain_call(&call(serde_json::json!({})), &headers(&[])));
        let list: ClientJsonRpcMessage = serde_json::from_value(serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "tools/list"
        }))
        .unwrap();
        let ClientJsonRpcMessage::Request(list) = list else {
            panic!("not a request");
        };
        assert!(!is_plain_call(&list.request, &headers(&host)));
    }
}
