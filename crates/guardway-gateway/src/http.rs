//! The HTTP surface (gateway.md §3): `/mcp/{server}` (routed) or `/mcp`
//! (unified) served by `rmcp`'s streamable-HTTP service behind the API-key
//! and shutdown checks, and the open `/health` endpoint.

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
use rmcp::transport::streamable_http_server::session::local::{LocalSessionManager, SessionConfig};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::RoutingMode;
use crate::server::{AgentSession, GatewayCore, SessionScope};

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
}

fn json_error(status: StatusCode, error: &str, message: Option<&str>) -> Response {
    let body = match message {
        Some(message) => json!({"error": error, "message": message}),
        None => json!({"error": error}),
    };
    (status, axum::Json(body)).into_response()
}

async fn mcp_guard(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    if let Err(rejection) = crate::auth::check_authorization(request.headers(), &state.api_key) {
        let status =
            StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::UNAUTHORIZED);
        return json_error(status, rejection.error, Some(rejection.message));
    }
    if state.shutting_down.load(Ordering::SeqCst) {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Gateway is shutting down",
            None,
        );
    }
    next.run(request).await
}

async fn health(State(state): State<HttpState>) -> Response {
    let mut servers = serde_json::Map::new();
    let mut healthy = true;
    for (id, backend) in &state.core.backends {
        let h = backend.health();
        if h.status == crate::backend::BackendStatus::Error {
            healthy = false;
        }
        servers.insert(
            id.clone(),
            json!({"status": h.status.as_str(), "uptime": h.uptime.as_secs()}),
        );
    }
    axum::Json(json!({
        "status": if healthy { "healthy" } else { "unhealthy" },
        "specVersion": SPEC_VERSION,
        "gatewayVersion": env!("CARGO_PKG_VERSION"),
        "servers": servers,
    }))
    .into_response()
}

async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "not_found", Some("no such endpoint"))
}

/// Builds the router. `sessions_ct` ends every MCP session when cancelled.
pub fn router(
    state: HttpState,
    mode: RoutingMode,
    session_timeout: Duration,
    loopback_listener: bool,
    sessions_ct: CancellationToken,
) -> Router {
    let mut config = StreamableHttpServerConfig::default()
        .with_max_request_body_bytes(MAX_REQUEST_BODY_BYTES)
        .with_cancellation_token(sessions_ct);
    if !loopback_listener {
        config = config.disable_allowed_hosts();
    }
    let session_manager = || {
        let mut manager = LocalSessionManager::default();
        let mut session_config = SessionConfig::default();
        session_config.keep_alive = Some(session_timeout);
        manager.session_config = session_config;
        Arc::new(manager)
    };
    let mut mcp = Router::new();
    match mode {
        RoutingMode::Routed => {
            for backend in state.core.backends.values() {
                let core = state.core.clone();
                let backend_for_factory = backend.clone();
                let service = StreamableHttpService::new(
                    move || {
                        Ok(AgentSession::new(
                            core.clone(),
                            SessionScope::Routed(backend_for_factory.clone()),
                        ))
                    },
                    session_manager(),
                    config.clone(),
                );
                mcp = mcp.nest_service(&format!("/mcp/{}", backend.id()), service);
            }
        }
        RoutingMode::Unified => {
            let core = state.core.clone();
            let service = StreamableHttpService::new(
                move || Ok(AgentSession::new(core.clone(), SessionScope::Unified)),
                session_manager(),
                config,
            );
            mcp = mcp.nest_service("/mcp", service);
        }
    }
    let mcp = mcp.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        mcp_guard,
    ));
    Router::new()
        .route("/health", axum::routing::get(health))
        .merge(mcp)
        .fallback(not_found)
        .with_state(state)
}
