//! Reference-compatible HTTP behaviour around the MCP transport
//! (gateway.md §3): the DNS-rebinding `Host` check, the
//! `MCP-Protocol-Version` and `Accept` checks answering 400, auto-initialise
//! of a session-less `tools/call`, and the `/close` endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Protocol versions accepted in `MCP-Protocol-Version`.
pub const SUPPORTED_PROTOCOL_VERSIONS: [&str; 4] =
    ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// Protocol version of the internal `initialize` of auto-initialise.
pub const AUTO_INIT_PROTOCOL_VERSION: &str = "2025-11-25";
/// Client name of the internal `initialize` of auto-initialise.
pub const AUTO_INIT_CLIENT_NAME: &str = "mcpg-auto-init";

const SESSION_HEADER: &str = "mcp-session-id";
const PROTOCOL_HEADER: &str = "mcp-protocol-version";
/// Longest wait for each internal request of auto-initialise.
const AUTO_INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest body read back from an internal auto-initialise request.
const AUTO_INIT_MAX_BODY: usize = 1024 * 1024;

/// State of the compatibility middleware. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CompatState {
    /// Whether the listener is bound to a loopback address (enables the
    /// DNS-rebinding check).
    pub loopback_listener: bool,
}

fn plain(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.to_owned(),
    )
        .into_response()
}

/// Whether a `Host` header value names a loopback host.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        match host.rsplit_once(':') {
            Some((name, port))
                if !name.contains(':') && port.chars().all(|c| c.is_ascii_digit()) =>
            {
                name
            }
            _ => host,
        }
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

fn accepts_json_and_sse(headers: &HeaderMap) -> bool {
    let accept: String = headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",")
        .to_ascii_lowercase();
    accept.contains("application/json") && accept.contains("text/event-stream")
}

/// The middleware in front of the MCP transport (inside the key and
/// shutdown checks).
pub async fn mcp_compat(
    State(state): State<CompatState>,
    request: Request,
    next: Next,
) -> Response {
    if state.loopback_listener
        && let Some(host) = request.headers().get(http::header::HOST)
        && !host.to_str().is_ok_and(is_loopback_host)
    {
        return plain(StatusCode::FORBIDDEN, "Forbidden: invalid Host header");
    }
    if let Some(version) = request.headers().get(PROTOCOL_HEADER) {
        let version = version.to_str().unwrap_or_default();
        if !SUPPORTED_PROTOCOL_VERSIONS.contains(&version) {
            return plain(
                StatusCode::BAD_REQUEST,
                &format!("Bad Request: Unsupported protocol version: {version}"),
            );
        }
    }
    if request.method() != http::Method::POST {
        return next.run(request).await;
    }
    if !accepts_json_and_sse(request.headers()) {
        return plain(
            StatusCode::BAD_REQUEST,
            "Bad Request: Accept must contain both application/json and text/event-stream",
        );
    }
    if request.headers().contains_key(SESSION_HEADER) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, crate::agent::http::MAX_REQUEST_BODY_BYTES).await
    else {
        return plain(StatusCode::BAD_REQUEST, "Bad Request: unreadable body");
    };
    let is_tool_call = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .is_some_and(|v| v.get("method").and_then(Value::as_str) == Some("tools/call"));
    if !is_tool_call {
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    }
    let session = match auto_initialize(&next, &parts).await {
        Ok(session) => session,
        Err(reason) => {
            tracing::debug!(%reason, "auto-initialise failed; passing the request through");
            return next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
        }
    };
    tracing::info!(uri = %parts.uri, "auto-initialised a session for a session-less tools/call");
    parts.headers.insert(SESSION_HEADER, session.clone());
    let mut response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if !response.headers().contains_key(SESSION_HEADER) {
        response.headers_mut().insert(SESSION_HEADER, session);
    }
    response
}

/// An internal POST to the same endpoint with the caller's headers.
fn internal_request(
    parts: &http::request::Parts,
    session: Option<&HeaderValue>,
    message: &Value,
) -> Result<Request, String> {
    let mut builder = Request::builder()
        .method(http::Method::POST)
        .uri(parts.uri.clone())
        .version(parts.version);
    for (name, value) in &parts.headers {
        if name == http::header::CONTENT_LENGTH
            || name == http::header::CONTENT_TYPE
            || name == http::header::ACCEPT
            || name == http::header::TRANSFER_ENCODING
        {
            continue;
        }
        builder = builder.header(name, value);
    }
    builder = builder
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json, text/event-stream");
    if let Some(session) = session {
        builder = builder.header(SESSION_HEADER, session);
    }
    let mut request = builder
        .body(Body::from(message.to_string()))
        .map_err(|e| format!("cannot build the internal request: {e}"))?;
    // Connection info and other extensions the transport may look at; not
    // the agent's parsed message, which is the `tools/call` itself: on the
    // internal `notifications/initialized` it would take the direct path and
    // run the call (an extra run, or one dropped mid-launch of the agent's
    // backend process when it outlasts the direct path's first second).
    request.extensions_mut().clone_from(&parts.extensions);
    request
        .extensions_mut()
        .remove::<crate::agent::direct::ParsedMessage>();
    Ok(request)
}

/// Runs `initialize` and `notifications/initialized` through the transport
/// and returns the new session id.
async fn auto_initialize(next: &Next, parts: &http::request::Parts) -> Result<HeaderValue, String> {
    let initialize = json!({
        "jsonrpc": "2.0",
        "id": "mcpg-auto-init",
        "method": "initialize",
        "params": {
            "protocolVersion": AUTO_INIT_PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": AUTO_INIT_CLIENT_NAME, "version": env!("CARGO_PKG_VERSION")},
        },
    });
    let request = internal_request(parts, None, &initialize)?;
    let response = tokio::time::timeout(AUTO_INIT_TIMEOUT, next.clone().run(request))
        .await
        .map_err(|_| "initialize timed out".to_owned())?;
    if response.status() != StatusCode::OK {
        return Err(format!("initialize answered {}", response.status()));
    }
    let session = response
        .headers()
        .get(SESSION_HEADER)
        .cloned()
        .ok_or_else(|| "initialize returned no session id".to_owned())?;
    let body = tokio::time::timeout(
        AUTO_INIT_TIMEOUT,
        axum::body::to_bytes(response.into_body(), AUTO_INIT_MAX_BODY),
    )
    .await
    .map_err(|_| "initialize response timed out".to_owned())?
    .map_err(|e| format!("cannot read the initialize response: {e}"))?;
    let text = String::from_utf8_lossy(&body);
    if !text.contains("\"result\"") {
        return Err(format!("initialize failed: {text}"));
    }
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let request = internal_request(parts, Some(&session), &initialized)?;
    let response = tokio::time::timeout(AUTO_INIT_TIMEOUT, next.clone().run(request))
        .await
        .map_err(|_| "notifications/initialized timed out".to_owned())?;
    if !response.status().is_success() {
        return Err(format!(
            "notifications/initialized answered {}",
            response.status()
        ));
    }
    Ok(session)
}

/// What `/close` needs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CloseState {
    pub api_key: Arc<str>,
    /// Set once `/close` succeeded (later calls answer 410).
    pub closed: Arc<AtomicBool>,
    /// Makes MCP routes answer 503.
    pub shutting_down: Arc<AtomicBool>,
    /// Cancelled when `/close` asks for the graceful shutdown.
    pub close_requested: CancellationToken,
    /// Backends the shutdown terminates.
    pub servers: usize,
}

async fn close(State(state): State<CloseState>, headers: HeaderMap) -> Response {
    if let Err(rejection) = crate::agent::auth::check_authorization(&headers, &state.api_key) {
        let status = StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::UNAUTHORIZED);
        return (
            status,
            axum::Json(json!({"error": rejection.error, "message": rejection.message})),
        )
            .into_response();
    }
    if state.closed.swap(true, Ordering::SeqCst) {
        return (
            StatusCode::GONE,
            axum::Json(json!({"error": "Gateway has already been closed"})),
        )
            .into_response();
    }
    tracing::info!("shutdown requested through /close");
    state.shutting_down.store(true, Ordering::SeqCst);
    state.close_requested.cancel();
    axum::Json(json!({
        "status": "closed",
        "message": "Gateway shutdown initiated",
        "serversTerminated": state.servers,
    }))
    .into_response()
}

/// The `/close` route (POST only; other methods get 405).
pub fn close_router(state: CloseState) -> Router {
    Router::new()
        .route("/close", axum::routing::post(close))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1",
            "127.0.0.1:3000",
            "[::1]:80",
            "[::1]",
            "::1",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:80",
            "10.0.0.1:80",
            "localhost.evil.com",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
