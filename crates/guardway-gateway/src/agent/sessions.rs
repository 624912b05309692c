//! Agent-side MCP sessions (gateway.md §3.4): rmcp's local session manager
//! with idle expiry the HTTP layer can see (an expired or unknown session is
//! answered 404 `session not found`, never a transport error) and SSE
//! polling only for the sessions that asked for it (the empty priming event
//! first on a stream only when `initialize` asked for protocol 2025-11-25 or
//! later; the reference never sends one), the session each agent opened on
//! each MCP URL ([`AgentSessions`]), and the middleware that maps the
//! transport's session answers onto the spec's (`DELETE` ⇒ 204).

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use parking_lot::Mutex;
use rmcp::model::{ClientCapabilities, ClientJsonRpcMessage, ClientRequest, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::SessionManager;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, SessionConfig,
};
use rmcp::transport::streamable_http_server::session::{ServerSseMessage, SessionId};
use tokio::time::Instant;

use crate::agent::direct::{McpEndpoint, ParsedMessage, Route};

const SESSION_HEADER: &str = "mcp-session-id";

/// The first protocol version with SSE polling (SEP-1699): a stream starts
/// with an empty event carrying an event id and a `retry` hint.
pub const SSE_POLLING_VERSION: &str = "2025-11-25";
/// The `retry` hint of a priming event (rmcp's default).
const SSE_RETRY: Duration = Duration::from_secs(3);
/// The priming event rmcp writes before the `initialize` answer.
const INITIALIZE_PRIMING: &[u8] = b"data: \nid: 0\nretry: 3000\n\n";

/// Whether an `initialize` that asked for protocol `version` asks for SSE
/// polling: a `YYYY-MM-DD` version from [`SSE_POLLING_VERSION`] on. Any
/// other string (`1.0.0`, a draft name) does not.
pub fn asks_for_sse_polling(version: &str) -> bool {
    let is_date = version.len() == 10
        && version.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    is_date && version >= SSE_POLLING_VERSION
}

/// For an `initialize` request, whether its session is to have SSE
/// polling: the client asked for it, and is not the gateway's own
/// auto-initialise (whose session serves clients that did not ask).
/// `None` for any other message.
fn polling_requested(message: &ClientJsonRpcMessage) -> Option<bool> {
    let ClientJsonRpcMessage::Request(request) = message else {
        return None;
    };
    let ClientRequest::InitializeRequest(init) = &request.request else {
        return None;
    };
    Some(
        asks_for_sse_polling(init.params.protocol_version.as_str())
            && init.params.client_info.name != crate::agent::compat::AUTO_INIT_CLIENT_NAME,
    )
}

/// A [`LocalSessionManager`] whose sessions expire after `idle_timeout`
/// without a client message. Expired sessions are closed when a request
/// names them, whenever a new session is created, and by the sweeper
/// ([`ExpiringSessionManager::spawn_sweeper`]) within a quarter of the
/// timeout, so that an idle gateway gives back what abandoned sessions
/// held. The idle clock
/// is kept here, not by rmcp's session worker (which has none), because
/// direct tool calls (`crate::agent::direct`) never pass through the worker.
///
/// Thread-safe; shared as `Arc` between the transport and the middleware.
#[derive(Debug)]
pub struct ExpiringSessionManager {
    inner: LocalSessionManager,
    idle_timeout: Duration,
    last_seen: Mutex<HashMap<SessionId, Instant>>,
    /// What each session's agent declared in its `initialize`: a backend's
    /// request relayed on the direct path is checked against it.
    capabilities: Mutex<HashMap<SessionId, Arc<ClientCapabilities>>>,
    /// Sessions whose `initialize` asked for SSE polling: their streams
    /// keep rmcp's priming events; the others' streams lose them.
    polling: Mutex<HashSet<SessionId>>,
    /// Requests being served, by session: a session is not idle while one
    /// of its requests is (a tool call may outlast the idle timeout).
    in_progress: Mutex<HashMap<SessionId, usize>>,
}

/// One request of a session being served ([`ExpiringSessionManager::begin_request`]).
/// Dropping it ends the request and restarts the session's idle clock.
#[derive(Debug)]
pub struct RequestInProgress {
    manager: Weak<ExpiringSessionManager>,
    id: SessionId,
}

impl Drop for RequestInProgress {
    fn drop(&mut self) {
        if let Some(manager) = self.manager.upgrade() {
            manager.end_request(&self.id);
        }
    }
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
            capabilities: Mutex::new(HashMap::new()),
            polling: Mutex::new(HashSet::new()),
            in_progress: Mutex::new(HashMap::new()),
        }
    }

    /// Marks a request of session `id` as being served until the returned
    /// value is dropped: meanwhile the session does not expire.
    pub fn begin_request(self: &Arc<Self>, id: &str) -> RequestInProgress {
        let id: SessionId = Arc::from(id);
        *self.in_progress.lock().entry(id.clone()).or_default() += 1;
        RequestInProgress {
            manager: Arc::downgrade(self),
            id,
        }
    }

    fn end_request(&self, id: &SessionId) {
        {
            let mut in_progress = self.in_progress.lock();
            if let Some(count) = in_progress.get_mut(id) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    in_progress.remove(id);
                }
            }
        }
        self.touch(id);
    }

    /// Whether session `id`, last seen at `seen`, has expired: idle for the
    /// timeout with no request being served.
    fn has_expired(&self, id: &SessionId, seen: Instant) -> bool {
        self.is_expired(seen) && !self.in_progress.lock().contains_key(id)
    }

    /// The capabilities the agent of session `id` declared, once it sent
    /// its `initialize`.
    pub fn client_capabilities(&self, id: &str) -> Option<Arc<ClientCapabilities>> {
        self.capabilities.lock().get(id).cloned()
    }

    /// Whether session `id` asked for SSE polling.
    pub fn is_polling(&self, id: &str) -> bool {
        self.polling.lock().contains(id)
    }

    fn forget(&self, id: &SessionId) {
        self.last_seen.lock().remove(id);
        self.capabilities.lock().remove(id);
        self.polling.lock().remove(id);
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
            Some(seen) if self.has_expired(&id, seen) => {
                self.expire(&id).await;
                false
            }
            Some(_) => true,
        }
    }

    async fn expire(&self, id: &SessionId) {
        self.forget(id);
        tracing::info!(session = %id, "MCP session expired after being idle");
        if let Err(error) = self.inner.close_session(id).await {
            tracing::debug!(session = %id, %error, "closing an expired session");
        }
    }

    async fn sweep(&self) {
        let idle: Vec<(SessionId, Instant)> = self
            .last_seen
            .lock()
            .iter()
            .filter(|(_, seen)| self.is_expired(**seen))
            .map(|(id, seen)| (id.clone(), *seen))
            .collect();
        let expired = idle
            .into_iter()
            .filter(|(id, seen)| self.has_expired(id, *seen))
            .map(|(id, _)| id);
        for id in expired {
            self.expire(&id).await;
        }
    }

    /// How often the sweeper looks for expired sessions: a quarter of the
    /// idle timeout, at least every minute and at most every second.
    fn sweep_period(&self) -> Duration {
        (self.idle_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
    }

    /// Closes expired sessions every [`Self::sweep_period`] until `stop` is
    /// cancelled or the manager is dropped. Without it an expired session
    /// would be closed only when a request named it or a new session was
    /// created: an abandoned session's worker, channels and state would stay
    /// in memory for as long as the gateway saw no new agent. Outside a
    /// tokio runtime there is nothing to spawn on and sessions keep the
    /// lazy expiry.
    pub fn spawn_sweeper(self: &Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let manager = Arc::downgrade(self);
        let period = self.sweep_period();
        runtime.spawn(async move {
            let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                let Some(manager) = manager.upgrade() else {
                    return;
                };
                manager.sweep().await;
            }
        });
    }

    /// Number of live (not yet expired or closed) sessions.
    pub fn len(&self) -> usize {
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
        if let ClientJsonRpcMessage::Request(request) = &message
            && let ClientRequest::InitializeRequest(initialize) = &request.request
        {
            self.capabilities
                .lock()
                .insert(id.clone(), Arc::new(initialize.params.capabilities.clone()));
        }
        if polling_requested(&message) == Some(true) {
            self.polling.lock().insert(id.clone());
        }
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        if !self.is_live(id).await {
            return Ok(false);
        }
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.forget(id);
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        let polling = self.is_polling(id);
        let stream = self.inner.create_stream(id, message).await?;
        // Without SSE polling a stream carries messages only: its first
        // `data:` line is the answer.
        Ok(stream.filter(move |event| std::future::ready(polling || event.message.is_some())))
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
        let stream = self.inner.create_standalone_stream(id).await?;
        // rmcp's HTTP service primes no stream itself here (see `router`).
        Ok(if self.is_polling(id) {
            futures::stream::once(std::future::ready(ServerSseMessage::priming(
                "0", SSE_RETRY,
            )))
            .chain(stream)
            .left_stream()
        } else {
            stream.right_stream()
        })
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

/// The session each agent opened last on each MCP URL, so that its
/// requests without `Mcp-Session-Id` are served in it, whatever their
/// method (the reference keys sessions by the agent id). Entries are
/// recorded when an `initialize` succeeds and dropped once their session is
/// gone. Thread-safe; shared as `Arc` by the router's middleware.
#[derive(Debug, Default)]
pub struct AgentSessions {
    by_agent: Mutex<HashMap<AgentAtUrl, OpenedSession>>,
}

/// (MCP URL path, agent id).
type AgentAtUrl = (String, String);
/// A session id and the manager that knows whether it is still live.
type OpenedSession = (HeaderValue, Arc<ExpiringSessionManager>);

impl AgentSessions {
    /// `agent` opened `session` (a session of `sessions`) at `path`.
    pub fn record(
        &self,
        path: &str,
        agent: &str,
        session: HeaderValue,
        sessions: Arc<ExpiringSessionManager>,
    ) {
        self.by_agent
            .lock()
            .insert((path.to_owned(), agent.to_owned()), (session, sessions));
    }

    /// The live session `agent` opened last at `path`, if any.
    pub async fn live(&self, path: &str, agent: &str) -> Option<HeaderValue> {
        let key = (path.to_owned(), agent.to_owned());
        let (session, sessions) = self.by_agent.lock().get(&key).cloned()?;
        let live = match session.to_str() {
            Ok(id) => sessions.is_live(id).await,
            Err(_) => false,
        };
        if live {
            return Some(session);
        }
        let mut by_agent = self.by_agent.lock();
        if by_agent.get(&key).is_some_and(|(s, _)| *s == session) {
            by_agent.remove(&key);
        }
        None
    }
}

/// `body` with the priming event of SSE polling in front.
fn primed(response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let priming = futures::stream::once(std::future::ready(Ok::<Bytes, axum::Error>(
        Bytes::from_static(INITIALIZE_PRIMING),
    )));
    Response::from_parts(
        parts,
        Body::from_stream(priming.chain(body.into_data_stream())),
    )
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
    let mut in_progress = None;
    if let Some(id) = request.headers().get(SESSION_HEADER) {
        let id = match id.to_str() {
            Ok(id) if endpoint.sessions.is_live(id).await => id.to_owned(),
            _ => return session_not_found(),
        };
        // A request keeps its session from expiring until its answer has
        // been sent; the agent's own `GET` stream does not.
        if request.method() != http::Method::GET {
            in_progress = Some(endpoint.sessions.begin_request(&id));
        }
        if request.method() == http::Method::POST
            && let Some(ParsedMessage(message)) = request.extensions_mut().remove::<ParsedMessage>()
        {
            match endpoint.route(&id, request.headers(), message).await {
                Route::Answered(response) => return held_until_sent(response, in_progress),
                Route::Pass => {}
            }
        }
    }
    let response = transport_answer(&endpoint, request, next).await;
    held_until_sent(response, in_progress)
}

/// The answer of rmcp's transport to `request`, mapped onto the spec's.
async fn transport_answer(endpoint: &McpEndpoint, request: Request, next: Next) -> Response {
    let is_delete = request.method() == http::Method::DELETE;
    // A new session: whose it is, and whether it asked for SSE polling.
    let opening = request
        .extensions()
        .get::<ParsedMessage>()
        .and_then(|ParsedMessage(message)| polling_requested(message))
        .filter(|_| !request.headers().contains_key(SESSION_HEADER))
        .map(|polling| {
            (
                polling,
                crate::agent::auth::agent_id(request.headers()),
                request.uri().path().to_owned(),
            )
        });
    let response = next.run(request).await;
    if let Some((polling, agent, path)) = opening
        && response.status() == StatusCode::OK
    {
        if let (Some(agent), Some(session)) = (agent, response.headers().get(SESSION_HEADER)) {
            endpoint.agent_sessions.record(
                &path,
                &agent,
                session.clone(),
                endpoint.sessions.clone(),
            );
        }
        let is_sse = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if polling && is_sse {
            return primed(response);
        }
        return response;
    }
    if is_delete && response.status() == StatusCode::ACCEPTED {
        let (mut parts, _) = response.into_parts();
        parts.status = StatusCode::NO_CONTENT;
        parts.headers.remove(http::header::CONTENT_TYPE);
        parts.headers.remove(http::header::CONTENT_LENGTH);
        return Response::from_parts(parts, axum::body::Body::empty());
    }
    response
}

/// `response`, whose body keeps `in_progress` (when there is one) until it
/// has been sent or dropped. Size and end-of-stream hints pass through, so
/// the answer's framing (`Content-Length` or chunks) is unchanged.
fn held_until_sent(response: Response, in_progress: Option<RequestInProgress>) -> Response {
    match in_progress {
        Some(in_progress) => response.map(|body| {
            Body::new(HeldBody {
                body,
                _in_progress: in_progress,
            })
        }),
        None => response,
    }
}

/// A response body holding its request's [`RequestInProgress`].
struct HeldBody {
    body: Body,
    _in_progress: RequestInProgress,
}

impl http_body::Body for HeldBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_polling_is_asked_from_2025_11_25_on() {
        for version in ["2025-11-25", "2026-07-28", "2030-01-01"] {
            assert!(asks_for_sse_polling(version), "{version}");
        }
        for version in [
            "2025-06-18",
            "2025-03-26",
            "2024-11-05",
            "1.0.0",
            "draft",
            "",
            "2025-11-2x",
            "20251125xx",
        ] {
            assert!(!asks_for_sse_polling(version), "{version}");
        }
    }

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
    async fn the_sweeper_closes_expired_sessions_without_new_traffic() {
        let manager = Arc::new(ExpiringSessionManager::new(Duration::from_secs(8)));
        let stop = tokio_util::sync::CancellationToken::new();
        manager.spawn_sweeper(stop.clone());
        let (idle, _t1) = manager.create_session().await.unwrap();
        let (busy, _t2) = manager.create_session().await.unwrap();
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            manager.touch(&busy);
        }
        // 12 s: `idle` is past its timeout plus one sweep period (2 s);
        // nothing has asked for it, and no session was created since.
        assert!(!manager.inner.has_session(&idle).await.unwrap());
        assert!(manager.inner.has_session(&busy).await.unwrap());
        assert_eq!(manager.len(), 1);
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert!(manager.is_empty(), "the busy session expires once idle");
        assert!(!manager.inner.has_session(&busy).await.unwrap());
        stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_serving_a_request_does_not_expire() {
        let manager = Arc::new(ExpiringSessionManager::new(Duration::from_secs(4)));
        manager.spawn_sweeper(tokio_util::sync::CancellationToken::new());
        let (id, _t) = manager.create_session().await.unwrap();
        let first = manager.begin_request(&id);
        let second = manager.begin_request(&id);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(manager.is_live(&id).await, "two requests in progress");
        drop(first);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(manager.is_live(&id).await, "one request in progress");
        drop(second);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(manager.is_live(&id).await, "the clock restarted at the end");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(manager.is_empty(), "idle for the timeout: swept");
    }

    #[tokio::test(start_paused = true)]
    async fn the_sweeper_stops_with_its_token() {
        let manager = Arc::new(ExpiringSessionManager::new(Duration::from_secs(4)));
        let stop = tokio_util::sync::CancellationToken::new();
        manager.spawn_sweeper(stop.clone());
        stop.cancel();
        let (id, _t) = manager.create_session().await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(manager.len(), 1, "a stopped sweeper closes nothing");
        assert!(!manager.is_live(&id).await, "expiry stays lazy");
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
