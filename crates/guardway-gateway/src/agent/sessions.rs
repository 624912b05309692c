//! Agent-side MCP sessions (gateway.md §3.4): rmcp's local session manager
//! with idle expiry the HTTP layer can see (an expired or unknown session is
//! answered 404 `session not found`, never a transport error), and the
//! middleware that maps the transport's session answers onto the spec's
//! (`DELETE` ⇒ 204).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::Stream;
use parking_lot::Mutex;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::SessionManager;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, SessionConfig,
};
use rmcp::transport::streamable_http_server::session::{ServerSseMessage, SessionId};
use tokio::time::Instant;

use crate::agent::direct::{McpEndpoint, ParsedMessage, Route};

const SESSION_HEADER: &str = "mcp-session-id";

/// A [`LocalSessionManager`] whose sessions expire after `idle_timeout`
/// without a client message. Expired sessions are closed lazily: when a
/// request names them and whenever a new session is created. The idle clock
/// is kept here, not by rmcp's session worker (which has none), because
/// direct tool calls (`crate::agent::direct`) never pass through the worker.
///
/// Thread-safe; shared as `Arc` between the transport and the middleware.
#[derive(Debug)]
pub struct ExpiringSessionManager {
    inner: LocalSessionManager,
    idle_timeout: Duration,
    last_seen: Mutex<HashMap<SessionId, Instant>>,
}

impl ExpiringSessionManager {
    pub fn new(idle_timeout: Duration) -> Self {
        let mut inner = LocalSessionManager::default();
        let mut config = SessionConfig::default();
        config.keep_alive = None;
        inner.session_config = config;
        Self {
            inner,
            idle_timeout,
            last_seen: Mutex::new(HashMap::new()),
        }
    }

    /// Restarts the idle clock of session `id` (a message arrived).
    pub fn touch(&self, id: &str) {
        if let Some(seen) = self.last_seen.lock().get_mut(id) {
            *seen = Instant::now();
        }
    }

    fn is_expired(&self, seen: Instant) -> bool {
        seen.elapsed() >= self.idle_timeout
    }

    /// Whether `id` names a live session; an expired one is closed here.
    pub async fn is_live(&self, id: &str) -> bool {
        let id: SessionId = Arc::from(id);
        let state = self.last_seen.lock().get(&id).copied();
        match state {
            None => false,
            Some(seen) if self.is_expired(seen) => {
                self.expire(&id).await;
                false
            }
            Some(_) => true,
        }
    }

    async fn expire(&self, id: &SessionId) {
        self.last_seen.lock().remove(id);
        tracing::info!(session = %id, "MCP session expired after being idle");
        if let Err(error) = self.inner.close_session(id).await {
            tracing::debug!(session = %id, %error, "closing an expired session");
        }
    }

    async fn sweep(&self) {
        let expired: Vec<SessionId> = self
            .last_seen
            .lock()
            .iter()
            .filter(|(_, seen)| self.is_expired(**seen))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.expire(&id).await;
        }
    }

    /// Number of live (not yet expired or closed) sessions.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.last_seen.lock().len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl SessionManager for ExpiringSessionManager {
    type Error = LocalSessionManagerError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        self.sweep().await;
        let (id, transport) = self.inner.create_session().await?;
        self.last_seen.lock().insert(id.clone(), Instant::now());
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.touch(id);
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        if !self.is_live(id).await {
            return Ok(false);
        }
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.last_seen.lock().remove(id);
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        self.inner.create_stream(id, message).await
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.touch(id);
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        self.inner.resume(id, last_event_id).await
    }
}

/// The plain-text answer for an unknown or expired session.
pub fn session_not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "session not found",
    )
        .into_response()
}

/// In front of one MCP endpoint's transport: a request naming a session
/// that is unknown or expired gets 404 `session not found`; a plain
/// `tools/call` on a live session is served directly (`crate::agent::direct`); a
/// successful `DELETE` answers 204 (rmcp answers 202).
pub async fn session_answers(
    State(endpoint): State<Arc<McpEndpoint>>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(id) = request.headers().get(SESSION_HEADER) {
        let id = match id.to_str() {
            Ok(id) if endpoint.sessions.is_live(id).await => id.to_owned(),
            _ => return session_not_found(),
        };
        if request.method() == http::Method::POST
            && let Some(ParsedMessage(message)) = request.extensions_mut().remove::<ParsedMessage>()
        {
            match endpoint.route(&id, request.headers(), message).await {
                Route::Answered(response) => return response,
                Route::Pass => {}
            }
        }
    }
    let is_delete = request.method() == http::Method::DELETE;
    let response = next.run(request).await;
    if is_delete && response.status() == StatusCode::ACCEPTED {
        let (mut parts, _) = response.into_parts();
        parts.status = StatusCode::NO_CONTENT;
        parts.headers.remove(http::header::CONTENT_TYPE);
        parts.headers.remove(http::header::CONTENT_LENGTH);
        return Response::from_parts(parts, axum::body::Body::empty());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sessions_expire_after_the_idle_timeout() {
        let manager = ExpiringSessionManager::new(Duration::from_secs(10));
        let (id, _transport) = manager.create_session().await.unwrap();
        assert!(manager.is_live(&id).await);
        tokio::time::advance(Duration::from_secs(6)).await;
        manager.touch(&id);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(
            manager.is_live(&id).await,
            "a message restarts the idle clock"
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(!manager.is_live(&id).await);
        assert!(!manager.has_session(&id).await.unwrap());
        assert!(manager.is_empty());
        assert!(!manager.is_live("never-created").await);
    }

    #[tokio::test(start_paused = true)]
    async fn creating_a_session_sweeps_expired_ones() {
        let manager = ExpiringSessionManager::new(Duration::from_secs(5));
        let (old, _t1) = manager.create_session().await.unwrap();
        tokio::time::advance(Duration::from_secs(6)).await;
        let (new, _t2) = manager.create_session().await.unwrap();
        assert_eq!(manager.len(), 1);
        assert!(!manager.inner.has_session(&old).await.unwrap());
        assert!(manager.is_live(&new).await);
    }
}
