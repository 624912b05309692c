//! The HTTP surface (gateway.md §3): `/mcp/{server}` (routed) or `/mcp`
//! (unified) served by `rmcp`'s streamable-HTTP service behind the API-key,
//! HMAC and shutdown checks, and the open `/health`, `/metrics` and
//! `/reflect` endpoints.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::StreamableHttpService;
use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::agent::direct::McpEndpoint;
use crate::agent::server::{AgentSession, GatewayCore, SessionScope};
use crate::agent::sessions::ExpiringSessionManager;
use crate::config::RoutingMode;

/// Largest accepted MCP request body; larger ones get 413.
pub const MAX_REQUEST_BODY_BYTES: usize = 10 * 1024 * 1024;

/// The version of the reference's health document this gateway mirrors.
pub const SPEC_VERSION: &str = "1.14.0";

/// What the HTTP layer needs besides the core.
#[derive(Debug, Clone)]
pub struct HttpState {
    pub core: Arc<GatewayCore>,
    pub api_key: Arc<str>,
    pub shutting_down: Arc<AtomicBool>,
    /// Signed-request check of the MCP routes (`--hmac-secret`).
    pub hmac: Option<Arc<crate::agent::hmac::HmacVerifier>>,
}

fn json_error(status: StatusCode, error: &str, message: Option<&str>) -> Response {
    let body = match message {
        Some(message) => json!({"error": error, "message": message}),
        None => json!({"error": error}),
    };
    (status, axum::Json(body)).into_response()
}

async fn mcp_guard(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    if let Err(rejection) =
        crate::agent::auth::check_authorization(request.headers(), &state.api_key)
    {
        let status = StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::UNAUTHORIZED);
        return json_error(status, rejection.error, Some(rejection.message));
    }
    let request = match &state.hmac {
        Some(verifier) => match check_hmac(verifier, request).await {
            Ok(request) => request,
            Err(response) => return response,
        },
        None => request,
    };
    if state.shutting_down.load(Ordering::SeqCst) {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Gateway is shutting down",
            None,
        );
    }
    // A new session needs an agent id that can name a directory.
    if request.method() == http::Method::POST
        && !request.headers().contains_key("mcp-session-id")
        && !crate::agent::auth::agent_id(request.headers())
            .is_some_and(|id| crate::agent::auth::is_safe_agent_id(&id))
    {
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            Some("invalid agent id: must be one safe path segment"),
        );
    }
    if request.method() == http::Method::POST {
        return match check_jsonrpc_body(request).await {
            Ok(request) => next.run(request).await,
            Err(response) => response,
        };
    }
    next.run(request).await
}

/// Verifies the request's HMAC headers against its path and body; the body
/// is read (bounded) and put back.
async fn check_hmac(
    verifier: &crate::agent::hmac::HmacVerifier,
    request: Request,
) -> Result<Request, Response> {
    let (parts, body) = request.into_parts();
    let Some(bytes) = read_bounded(body).await else {
        return Err(json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            Some("request body exceeds the gateway's limit"),
        ));
    };
    if let Err(rejection) = verifier.verify(&parts.headers, parts.uri.path(), &bytes) {
        let status = StatusCode::from_u16(rejection.status()).unwrap_or(StatusCode::UNAUTHORIZED);
        tracing::warn!(path = %parts.uri.path(), reason = %rejection, "HMAC check failed");
        let error = if status == StatusCode::UNAUTHORIZED {
            "unauthorized"
        } else {
            "service_unavailable"
        };
        return Err(json_error(status, error, Some(&rejection.to_string())));
    }
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

fn jsonrpc_error(
    status: StatusCode,
    id: serde_json::Value,
    code: i32,
    message: String,
) -> Response {
    let body = json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": code, "message": message},
    });
    (status, axum::Json(body)).into_response()
}

/// An oversized body is still read (and dropped) up to this size so that
/// the client, still sending, receives the 413 instead of a reset.
const MAX_DRAINED_BODY_BYTES: usize = 4 * MAX_REQUEST_BODY_BYTES;

/// The body if it fits in [`MAX_REQUEST_BODY_BYTES`]; `None` (after
/// draining a bounded amount for a few seconds at most) if not.
async fn read_bounded(body: axum::body::Body) -> Option<axum::body::Bytes> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut collected = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.ok()?;
        if collected.len() + chunk.len() > MAX_REQUEST_BODY_BYTES {
            let mut seen = collected.len() + chunk.len();
            let drain = async {
                while let Some(Ok(chunk)) = stream.next().await {
                    seen += chunk.len();
                    if seen > MAX_DRAINED_BODY_BYTES {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
            return None;
        }
        collected.extend_from_slice(&chunk);
    }
    Some(axum::body::Bytes::from(collected))
}

/// Reads a POST body (bounded) and answers malformed JSON with a JSON-RPC
/// parse error and well-formed JSON that is no JSON-RPC message with an
/// invalid-request error, before the transport sees it.
async fn check_jsonrpc_body(request: Request) -> Result<Request, Response> {
    let too_large = || {
        json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            Some("request body exceeds the gateway's limit"),
        )
    };
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_DRAINED_BODY_BYTES) {
        return Err(too_large());
    }
    let (parts, body) = request.into_parts();
    let bytes = match read_bounded(body).await {
        Some(bytes) => bytes,
        None => return Err(too_large()),
    };
    let is_json = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if is_json {
        // The usual case, a well-formed message, is parsed once and handed
        // on (the direct call path uses it); anything else is looked at
        // again as plain JSON to say what is wrong with it.
        if let Ok(message) = serde_json::from_slice::<rmcp::model::ClientJsonRpcMessage>(&bytes) {
            let mut request = Request::from_parts(parts, axum::body::Body::from(bytes));
            request
                .extensions_mut()
                .insert(crate::agent::direct::ParsedMessage(message));
            return Ok(request);
        }
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            jsonrpc_error(
                StatusCode::BAD_REQUEST,
                serde_json::Value::Null,
                -32700,
                format!("Parse error: {e}"),
            )
        })?;
        let id = value.get("id").cloned().unwrap_or(serde_json::Value::Null);
        if value.is_array() {
            return Err(jsonrpc_error(
                StatusCode::BAD_REQUEST,
                id,
                -32600,
                "Invalid Request: batches are not supported".into(),
            ));
        }
        if value.get("jsonrpc").and_then(|v| v.as_str()) != Some("2.0") {
            return Err(jsonrpc_error(
                StatusCode::BAD_REQUEST,
                id,
                -32600,
                "Invalid Request: \"jsonrpc\" must be \"2.0\"".into(),
            ));
        }
        if let Err(e) = serde_json::from_value::<rmcp::model::ClientJsonRpcMessage>(value) {
            return Err(jsonrpc_error(
                StatusCode::BAD_REQUEST,
                id,
                -32600,
                format!("Invalid Request: {e}"),
            ));
        }
    }
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

async fn health(State(state): State<HttpState>) -> Response {
    let mut servers = serde_json::Map::new();
    let mut healthy = true;
    let mut guards = state.core.interceptor.guard_states();
    for (id, backend) in &state.core.backends {
        let h = backend.health();
        if h.status == crate::backend::BackendStatus::Error {
            healthy = false;
        }
        let mut entry = json!({"status": h.status.as_str(), "uptime": h.uptime.as_secs()});
        if let (Some(guard), Some(map)) = (guards.remove(id), entry.as_object_mut()) {
            map.insert("guard".into(), guard);
        }
        servers.insert(id.clone(), entry);
    }
    axum::Json(json!({
        "status": if healthy { "healthy" } else { "unhealthy" },
        "specVersion": SPEC_VERSION,
        "gatewayVersion": env!("CARGO_PKG_VERSION"),
        "servers": servers,
    }))
    .into_response()
}

async fn metrics(
    State(state): State<HttpState>,
    sessions: Arc<[(String, Arc<ExpiringSessionManager>)]>,
) -> Response {
    let mut body = String::new();
    state.core.interceptor.render_metrics(&mut body);
    let mut live = crate::observe::metrics::SnapshotFamily::gauge(
        "guardway_mcp_sessions",
        "Live agent MCP sessions (not yet closed or expired), by MCP endpoint.",
        &["endpoint"],
    );
    for (endpoint, manager) in sessions.iter() {
        live.sample(&[endpoint], manager.len() as u64);
    }
    live.render(&mut body);
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// `GET /reflect` (difc.md §6): the agents' labels and the gateway-wide
/// mode; `"mode": "disabled"` and no agents when the gateway runs no DIFC.
async fn reflect(State(state): State<HttpState>) -> Response {
    let mut document = state
        .core
        .interceptor
        .reflect()
        .unwrap_or_else(|| json!({"agents": {}, "mode": "disabled"}));
    if let Some(map) = document.as_object_mut() {
        map.insert(
            "timestamp".into(),
            json!(crate::observe::logfiles::utc_timestamp(
                std::time::SystemTime::now()
            )),
        );
    }
    axum::Json(document).into_response()
}

async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "not_found", Some("no such endpoint"))
}

/// How long [`answer_after_body`] waits for the next piece of an unread body.
const DRAIN_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest [`answer_after_body`] spends draining one body.
const DRAIN_TOTAL_TIMEOUT: Duration = Duration::from_secs(30);

/// Outermost layer of the HTTP surface: whatever part of a request's body
/// the handler left unread (a 401, 400, 404 or 503 answered from the
/// headers alone) is read and dropped, up to [`MAX_DRAINED_BODY_BYTES`],
/// before the answer goes out. Closing a connection with unread data on it
/// makes the kernel reset it, and the reset destroys the answer the client
/// has not read yet; drained, the client reads its status. A body too large
/// or too slow to drain gets the answer with `Connection: close`, and so
/// does a refused request whose client still waits for `100 Continue`.
pub async fn answer_after_body(request: Request, next: Next) -> Response {
    use futures::StreamExt;
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let expects_continue = request
        .headers()
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let (parts, body) = request.into_parts();
    let shared = Arc::new(parking_lot::Mutex::new(body.into_data_stream()));
    let reader = shared.clone();
    let read = Arc::new(AtomicBool::new(false));
    let read_flag = read.clone();
    // Set when the handler read the body to its end (the usual case): then
    // nothing is left to drain and no drain timers are set.
    let finished = Arc::new(AtomicBool::new(false));
    let finished_flag = finished.clone();
    let body = axum::body::Body::from_stream(futures::stream::poll_fn(move |cx| {
        read_flag.store(true, Ordering::Relaxed);
        let polled = reader.lock().poll_next_unpin(cx);
        if matches!(polled, std::task::Poll::Ready(None)) {
            finished_flag.store(true, Ordering::Relaxed);
        }
        polled
    }));
    let mut response = next.run(Request::from_parts(parts, body)).await;
    // A client waiting for `100 Continue` has sent nothing yet: answered
    // without reading, it reads the answer and never sends the body.
    let untouched = expects_continue && !read.load(Ordering::Relaxed);
    let drainable = !untouched && declared.is_none_or(|len| len <= MAX_DRAINED_BODY_BYTES as u64);
    let drained = finished.load(Ordering::Relaxed)
        || drainable && {
            let drain = async {
                let mut seen = 0usize;
                loop {
                    let next = futures::future::poll_fn(|cx| shared.lock().poll_next_unpin(cx));
                    match tokio::time::timeout(DRAIN_IDLE_TIMEOUT, next).await {
                        Ok(None) => return true,
                        Ok(Some(Ok(chunk))) => {
                            seen += chunk.len();
                            if seen > MAX_DRAINED_BODY_BYTES {
                                return false;
                            }
                        }
                        Ok(Some(Err(_))) | Err(_) => return false,
                    }
                }
            };
            tokio::time::timeout(DRAIN_TOTAL_TIMEOUT, drain)
                .await
                .unwrap_or(false)
        };
    if !drained {
        response.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    response
}

/// Builds the router. `sessions_ct` ends every MCP session when cancelled.
pub fn router(
    state: HttpState,
    mode: RoutingMode,
    session_timeout: Duration,
    loopback_listener: bool,
    sessions_ct: CancellationToken,
) -> Router {
    // No priming event from the HTTP service itself: the session manager
    // and `session_answers` add it for the sessions that asked for SSE
    // polling (protocol 2025-11-25 or later) and only for them.
    let mut config = StreamableHttpServerConfig::default()
        .with_max_request_body_bytes(MAX_REQUEST_BODY_BYTES)
        .with_sse_retry(None)
        .with_cancellation_token(sessions_ct.clone());
    if !loopback_listener {
        config = config.disable_allowed_hosts();
    }
    // One session manager per MCP endpoint, also seen by the middleware that
    // answers for unknown and expired sessions.
    let keep_alive = config.sse_keep_alive;
    let agent_sessions = Arc::new(crate::agent::sessions::AgentSessions::default());
    let endpoint = |path: &str,
                    service: StreamableHttpService<AgentSession, ExpiringSessionManager>,
                    sessions: Arc<ExpiringSessionManager>,
                    scope: SessionScope| {
        let endpoint = McpEndpoint::new(
            sessions,
            agent_sessions.clone(),
            state.core.clone(),
            scope,
            keep_alive,
        );
        Router::new()
            .nest_service(path, service)
            .layer(axum::middleware::from_fn_with_state(
                Arc::new(endpoint),
                crate::agent::sessions::session_answers,
            ))
    };
    let mut mcp = Router::new();
    // Each endpoint's sessions, for the sweeper and the `/metrics` gauge.
    let mut session_managers: Vec<(String, Arc<ExpiringSessionManager>)> = Vec::new();
    let sweep_stop = sessions_ct.clone();
    match mode {
        RoutingMode::Routed => {
            for backend in state.core.backends.values() {
                let core = state.core.clone();
                let backend_for_factory = backend.clone();
                let sessions = Arc::new(ExpiringSessionManager::new(session_timeout));
                session_managers.push((format!("/mcp/{}", backend.id()), sessions.clone()));
                let service = StreamableHttpService::new(
                    move || {
                        Ok(AgentSession::new(
                            core.clone(),
                            SessionScope::Routed(backend_for_factory.clone()),
                        ))
                    },
                    sessions.clone(),
                    config.clone(),
                );
                mcp = mcp.merge(endpoint(
                    &format!("/mcp/{}", backend.id()),
                    service,
                    sessions,
                    SessionScope::Routed(backend.clone()),
                ));
            }
        }
        RoutingMode::Unified => {
            let core = state.core.clone();
            let sessions = Arc::new(ExpiringSessionManager::new(session_timeout));
            session_managers.push(("/mcp".to_owned(), sessions.clone()));
            let service = StreamableHttpService::new(
                move || Ok(AgentSession::new(core.clone(), SessionScope::Unified)),
                sessions.clone(),
                config,
            );
            mcp = mcp.merge(endpoint("/mcp", service, sessions, SessionScope::Unified));
        }
    }
    for (_, sessions) in &session_managers {
        sessions.spawn_sweeper(sweep_stop.clone());
    }
    let session_managers: Arc<[(String, Arc<ExpiringSessionManager>)]> = session_managers.into();
    let mcp = mcp.layer(axum::middleware::from_fn_with_state(
        crate::agent::compat::CompatState {
            loopback_listener,
            agent_sessions,
        },
        crate::agent::compat::mcp_compat,
    ));
    let mcp = mcp.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        mcp_guard,
    ));
    Router::new()
        .route("/health", axum::routing::get(health))
        .route(
            "/metrics",
            axum::routing::get(move |state| metrics(state, session_managers.clone())),
        )
        .route("/reflect", axum::routing::get(reflect))
        .merge(mcp)
        .fallback(not_found)
        .with_state(state)
}
