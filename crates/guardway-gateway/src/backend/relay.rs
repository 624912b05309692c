//! Routes messages between agents and backends besides tool calls and their
//! results:
//!
//! - backend progress goes back to the agent request that caused it (under
//!   the agent's own progress token) in the order the backend sent it and
//!   before that request's result;
//! - a backend's requests to its client during a call made for an agent
//!   (sampling, elicitation, roots, ping) go to that agent's session
//!   ([`NotificationRelay::relay_request`]), on the stream of the agent's
//!   call, and the agent's answer back to the backend;
//! - resource update notifications go to the sessions subscribed to the
//!   resource ([`Subscriptions`]);
//! - list-changed and logging notifications go to connected agents.
//!
//! Each call made for an agent has a [`CallRoute`]: its [`AgentLink`] (an
//! rmcp session peer and the agent's request id, or the answer stream of a
//! call on the direct path) and, when the agent asked for progress, its
//! progress queue. The call creates its route before sending the request
//! and attaches it to the request; the connection's
//! [`ProgressOrderingTransport`] keeps the link by request id (with a stdio
//! process's lane calls, in the connection's [`ConnectionRoutes`]) and
//! the progress queue by the request's progress token (tokens are chosen
//! per connection, so several connections to one server, such as per-agent
//! stdio processes, reuse them), from the moment the request is sent until
//! its response (or the gateway's cancellation) passes through.
//!
//! Ordering: `rmcp` runs every incoming notification handler on its own task,
//! so a handler may run after the response that followed the notification
//! has already been returned. Backend progress therefore does not go through
//! the handler: the transport queues it as each message is read; the call
//! relays its queue while it waits and drains it once the response arrives,
//! so everything read before the response reaches the agent before the
//! result.

// MCP logging is deprecated by the newest protocol revision but still
// carried for agents and backends that speak older ones.
#![allow(deprecated)]

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rmcp::model::{
    CancelledNotification, CancelledNotificationParam, ClientCapabilities, ClientJsonRpcMessage,
    ClientNotification, ClientResult, ElicitRequestParams, ErrorData, GetExtensions, GetMeta,
    JsonRpcMessage, LoggingMessageNotificationParam, ProgressNotification,
    ProgressNotificationParam, ProgressToken, RequestId, ServerJsonRpcMessage, ServerNotification,
    ServerRequest,
};
use rmcp::service::{
    InboundStreamOrigin, OriginatingRequestId, PeerRequestOptions, RxJsonRpcMessage,
    TxJsonRpcMessage,
};
use rmcp::transport::Transport;
use rmcp::{Peer, RoleClient, RoleServer, ServiceError};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Which agents a backend notification concerns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AgentScope {
    /// An agent connected to `/mcp/<server>`.
    Routed(String),
    /// An agent connected to `/mcp` or `--stdio`.
    Unified,
}

/// Where progress read by one backend connection for one pending call is
/// queued. The call creates it ([`NotificationRelay::route_call`]) and
/// hands it to the connection's [`ProgressOrderingTransport`] inside the
/// request's extensions; the transport keys it by the progress token it
/// sees going out, in a map of its own. Tokens are chosen per backend
/// connection, so two connections (e.g. two agents' processes of one stdio
/// backend) may use the same token at once without sharing a queue.
///
/// Cheap to clone (a channel sender).
#[derive(Clone)]
pub struct ProgressSink {
    sender: mpsc::UnboundedSender<ProgressNotificationParam>,
}

impl ProgressSink {
    /// Queues one progress notification for the call; false when the call
    /// is gone.
    pub(crate) fn queue(&self, param: ProgressNotificationParam) -> bool {
        self.sender.send(param).is_ok()
    }
}

/// The agent end of a backend request made on an agent's behalf: where the
/// call's progress and the backend's own requests during the call go.
/// Cheap to clone.
#[derive(Clone)]
pub struct AgentLink {
    /// The agent session (its `Mcp-Session-Id`, or a key of its own for a
    /// session without one): requests of calls of one session may go to
    /// any of them.
    session: Arc<str>,
    target: LinkTarget,
}

#[derive(Clone)]
enum LinkTarget {
    /// A call served by rmcp's session: the agent's peer and the id of the
    /// agent's request (a backend request rides that request's stream).
    Peer {
        peer: Peer<RoleServer>,
        request: RequestId,
    },
    /// A call served on the direct path (`crate::agent::direct`): its SSE
    /// answer sends what it receives here before the result; the agent
    /// POSTs its answers to the session.
    Direct {
        events: mpsc::UnboundedSender<ServerJsonRpcMessage>,
        capabilities: Option<Arc<ClientCapabilities>>,
    },
}

impl std::fmt::Debug for AgentLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.target {
            LinkTarget::Peer { .. } => "peer",
            LinkTarget::Direct { .. } => "direct",
        };
        f.debug_struct("AgentLink")
            .field("session", &self.session)
            .field("kind", &kind)
            .finish()
    }
}

impl AgentLink {
    /// A call served by rmcp: agent request `request` of session `session`.
    pub fn peer(session: Arc<str>, peer: Peer<RoleServer>, request: RequestId) -> Self {
        Self {
            session,
            target: LinkTarget::Peer { peer, request },
        }
    }

    /// A call served on the direct path of session `session`, whose answer
    /// stream takes `events`; `capabilities` are those the agent declared
    /// in its `initialize`.
    pub fn direct(
        session: Arc<str>,
        events: mpsc::UnboundedSender<ServerJsonRpcMessage>,
        capabilities: Option<Arc<ClientCapabilities>>,
    ) -> Self {
        Self {
            session,
            target: LinkTarget::Direct {
                events,
                capabilities,
            },
        }
    }

    /// The agent session.
    pub fn session(&self) -> &str {
        &self.session
    }

    /// Whether the agent declared what `request` needs; `Err` names it.
    fn check_capability(&self, request: &ServerRequest) -> Result<(), &'static str> {
        let declared = match &self.target {
            LinkTarget::Peer { peer, .. } => peer.peer_info().map(|info| info.capabilities.clone()),
            LinkTarget::Direct { capabilities, .. } => capabilities.as_deref().cloned(),
        };
        let capabilities = declared.unwrap_or_default();
        match request {
            ServerRequest::CreateMessageRequest(_) if capabilities.sampling.is_none() => {
                Err("sampling")
            }
            ServerRequest::ListRootsRequest(_) if capabilities.roots.is_none() => Err("roots"),
            ServerRequest::ElicitRequest(elicit) => {
                match (&capabilities.elicitation, &elicit.params) {
                    (None, _) => Err("elicitation"),
                    (Some(declared), ElicitRequestParams::UrlElicitationParams { .. })
                        if declared.url.is_none() =>
                    {
                        Err("elicitation (url mode)")
                    }
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }
}

/// Where one backend request made on an agent's behalf comes from: the
/// agent's end and, when the agent asked for progress, its token.
#[derive(Clone, Debug)]
pub struct CallOrigin {
    pub link: AgentLink,
    pub progress_token: Option<ProgressToken>,
}

/// Attached to a backend request (in its extensions) made on an agent's
/// behalf: the connection keeps the link while the request is pending, so
/// the backend's requests during it reach that agent, and queues the
/// request's progress on the sink.
#[derive(Clone)]
pub(crate) struct RouteAttachment {
    pub(crate) link: AgentLink,
    pub(crate) progress: Option<ProgressSink>,
}

/// Put on a backend's request to the client (in its extensions) by the
/// connection that read it: the agent it is relayed to.
#[derive(Clone, Debug)]
pub(crate) struct RelayTarget(pub(crate) AgentLink);

/// The agent links of one backend connection's requests in flight, by
/// backend request id: both rmcp's requests (kept by the connection's
/// [`ProgressOrderingTransport`]) and a stdio process's lane calls
/// (`stdio_link`). Shared (`Arc`) by the two.
#[derive(Default)]
pub(crate) struct ConnectionRoutes {
    links: Mutex<HashMap<RequestId, AgentLink>>,
}

impl ConnectionRoutes {
    pub(crate) fn insert(&self, id: RequestId, link: AgentLink) {
        self.links.lock().insert(id, link);
    }

    pub(crate) fn remove(&self, id: &RequestId) {
        self.links.lock().remove(id);
    }

    /// The agent a backend request read by this connection goes to.
    ///
    /// - It arrived on the stream of one of our requests (HTTP): that
    ///   request's agent, or none when that request is not an agent's.
    /// - Otherwise (stdio, which cannot say; the HTTP standalone stream):
    ///   the agent session whose calls are in flight on this connection
    ///   when there is exactly one such session; else none, as asking an
    ///   agent that did not cause the request would leak it there.
    pub(crate) fn target_for(&self, origin: Option<&InboundStreamOrigin>) -> Option<AgentLink> {
        let links = self.links.lock();
        if let Some(InboundStreamOrigin::OutboundRequest(id)) = origin {
            return links.get(id).cloned();
        }
        let mut found: Option<&AgentLink> = None;
        for link in links.values() {
            match found {
                Some(first) if first.session != link.session => return None,
                Some(_) => {}
                None => found = Some(link),
            }
        }
        found.cloned()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.links.lock().len()
    }
}

/// What an agent answered to a backend request relayed on the direct path.
type DirectAnswer = Result<ClientResult, ErrorData>;

/// Backend requests relayed on the direct path and not answered yet, by
/// (session, the id the agent was given): where their answers go.
type DirectWaiters = HashMap<(Arc<str>, RequestId), oneshot::Sender<DirectAnswer>>;

/// Shared by every backend connection and agent session of one gateway.
///
/// Thread-safe; held in an `Arc`.
pub struct NotificationRelay {
    /// Routes of pending calls not dropped yet.
    live_routes: AtomicUsize,
    /// Progress queues that backend connections still feed (sent calls
    /// neither answered nor cancelled yet).
    open_queues: AtomicUsize,
    agents: Mutex<Vec<(AgentScope, Peer<RoleServer>)>>,
    /// Backend requests being relayed to agents right now.
    relayed: AtomicUsize,
    /// Backend requests relayed on the direct path and not answered yet,
    /// by (session, the id the agent was given).
    direct_requests: Mutex<DirectWaiters>,
    next_direct_id: AtomicI64,
}

impl Default for NotificationRelay {
    fn default() -> Self {
        Self {
            live_routes: AtomicUsize::new(0),
            open_queues: AtomicUsize::new(0),
            agents: Mutex::new(Vec::new()),
            relayed: AtomicUsize::new(0),
            direct_requests: Mutex::new(HashMap::new()),
            next_direct_id: AtomicI64::new(DIRECT_FIRST_ID),
        }
    }
}

/// The first id of a backend request relayed on the direct path: rmcp's
/// server peer numbers its own requests to an agent from 0, so the two
/// never meet in one session.
const DIRECT_FIRST_ID: i64 = 1 << 30;

impl std::fmt::Debug for NotificationRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationRelay")
            .field("progress_routes", &self.pending_progress_routes())
            .field("relayed_requests", &self.pending_relayed_requests())
            .field("agents", &self.agents.lock().len())
            .finish()
    }
}

/// The route of one pending backend call made on an agent's behalf: its
/// agent link and, when the agent asked for progress, its progress queue.
///
/// Leaves the relay's count when dropped (the call ended, failed or was
/// cancelled); progress queued but not relayed by then is discarded.
pub struct CallRoute<'a> {
    relay: &'a NotificationRelay,
    link: AgentLink,
    progress: Option<RouteProgress>,
}

struct RouteProgress {
    sink: ProgressSink,
    queue: mpsc::UnboundedReceiver<ProgressNotificationParam>,
    agent_token: ProgressToken,
}

impl Drop for CallRoute<'_> {
    fn drop(&mut self) {
        self.relay.live_routes.fetch_sub(1, Ordering::Relaxed);
    }
}

impl CallRoute<'_> {
    /// What to attach to the backend request (in its extensions, before it
    /// is sent): its connection keeps the link while the request is
    /// pending and queues the request's progress here.
    pub(crate) fn attachment(&self) -> RouteAttachment {
        RouteAttachment {
            link: self.link.clone(),
            progress: self.sink(),
        }
    }

    /// The agent end of the call.
    pub fn link(&self) -> &AgentLink {
        &self.link
    }

    /// The progress queue, when the agent asked for progress.
    pub fn sink(&self) -> Option<ProgressSink> {
        self.progress.as_ref().map(|p| p.sink.clone())
    }

    /// The next queued progress notification, waiting for one if none is
    /// queued (forever when the agent asked for no progress). Cancel-safe:
    /// use it in a `select!` with the response and
    /// [`deliver`](Self::deliver) what it returns.
    pub async fn next(&mut self) -> Option<ProgressNotificationParam> {
        match self.progress.as_mut() {
            Some(progress) => progress.queue.recv().await,
            None => std::future::pending().await,
        }
    }

    /// Relays everything queued so far, in order. Called once the backend's
    /// response has arrived: every progress notification the backend sent
    /// before it has been queued by then.
    pub async fn relay_queued(&mut self) {
        loop {
            let Some(param) = self
                .progress
                .as_mut()
                .and_then(|progress| progress.queue.try_recv().ok())
            else {
                return;
            };
            self.deliver(param).await;
        }
    }

    /// Sends one progress notification to the agent under its own token.
    pub async fn deliver(&self, mut param: ProgressNotificationParam) {
        let Some(progress) = &self.progress else {
            return;
        };
        param.progress_token = progress.agent_token.clone();
        match &self.link.target {
            LinkTarget::Peer { peer, .. } => {
                if let Err(error) = peer.notify_progress(param).await {
                    tracing::debug!(%error, "cannot relay progress to the agent");
                }
            }
            LinkTarget::Direct { events, .. } => {
                let message = ServerJsonRpcMessage::notification(
                    ServerNotification::ProgressNotification(ProgressNotification::new(param)),
                );
                if events.send(message).is_err() {
                    tracing::debug!("cannot relay progress to the agent: its answer is gone");
                }
            }
        }
    }
}

/// Counts one backend request being relayed to an agent while it lives.
struct Relaying<'a>(&'a AtomicUsize);

impl<'a> Relaying<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for Relaying<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Removes a direct-path request from the pending table however the relay
/// ends (answered, cancelled, timed out, dropped).
struct DirectPending<'a> {
    relay: &'a NotificationRelay,
    key: (Arc<str>, RequestId),
}

impl Drop for DirectPending<'_> {
    fn drop(&mut self) {
        self.relay.direct_requests.lock().remove(&self.key);
    }
}

/// The JSON-RPC method of a backend request, for messages.
fn method_of(request: &ServerRequest) -> &str {
    match request {
        ServerRequest::PingRequest(_) => "ping",
        ServerRequest::CreateMessageRequest(_) => "sampling/createMessage",
        ServerRequest::ListRootsRequest(_) => "roots/list",
        ServerRequest::ElicitRequest(_) => "elicitation/create",
        ServerRequest::CustomRequest(custom) => &custom.method,
        _ => "request",
    }
}

impl NotificationRelay {
    /// A route for one backend call made for the agent of `origin`, until
    /// it drops. Create it before sending the backend request and attach
    /// its [`attachment`](CallRoute::attachment) to the request's
    /// extensions: the backend connection keeps it from the moment the
    /// request goes out.
    pub fn route_call(&self, origin: CallOrigin) -> CallRoute<'_> {
        let progress = origin.progress_token.map(|agent_token| {
            let (sink, queue) = progress_queue();
            RouteProgress {
                sink,
                queue,
                agent_token,
            }
        });
        self.live_routes.fetch_add(1, Ordering::Relaxed);
        CallRoute {
            relay: self,
            link: origin.link,
            progress,
        }
    }

    /// Relays `request`, a backend's request to its client read by a
    /// connection of `server`, to the agent `target` (`None`: no agent
    /// caused it) and returns the agent's answer. Refused when no agent
    /// caused it or the agent did not declare the capability it needs.
    /// Ends when the agent answers, `cancelled` fires (the backend
    /// cancelled) or `timeout` passes; the agent is told when its answer
    /// is no longer wanted.
    pub async fn relay_request(
        &self,
        server: &str,
        target: Option<AgentLink>,
        request: ServerRequest,
        cancelled: &CancellationToken,
        timeout: Duration,
    ) -> Result<ClientResult, ErrorData> {
        let method = method_of(&request).to_owned();
        let Some(link) = target else {
            tracing::warn!(
                server,
                method,
                "backend request refused: no agent call it belongs to"
            );
            return Err(ErrorData::invalid_request(
                format!("{method} refused: no agent session to relay it to"),
                None,
            ));
        };
        if let Err(capability) = link.check_capability(&request) {
            tracing::info!(server, method, session = %link.session, "backend request refused: the agent lacks the capability");
            return Err(ErrorData::invalid_request(
                format!("{method} refused: the agent did not declare the {capability} capability"),
                None,
            ));
        }
        let _relaying = Relaying::enter(&self.relayed);
        tracing::debug!(server, method, session = %link.session, "relaying a backend request to the agent");
        match &link.target {
            LinkTarget::Peer {
                peer,
                request: agent_request,
            } => relay_on_peer(peer, agent_request, request, cancelled, timeout, &method).await,
            LinkTarget::Direct { events, .. } => {
                self.relay_direct(&link.session, events, request, cancelled, timeout, &method)
                    .await
            }
        }
    }

    async fn relay_direct(
        &self,
        session: &Arc<str>,
        events: &mpsc::UnboundedSender<ServerJsonRpcMessage>,
        request: ServerRequest,
        cancelled: &CancellationToken,
        timeout: Duration,
        method: &str,
    ) -> Result<ClientResult, ErrorData> {
        let id = RequestId::Number(self.next_direct_id.fetch_add(1, Ordering::Relaxed));
        let (answer, answered) = oneshot::channel();
        let key = (session.clone(), id.clone());
        self.direct_requests.lock().insert(key.clone(), answer);
        let _pending = DirectPending { relay: self, key };
        if events
            .send(ServerJsonRpcMessage::request(request, id.clone()))
            .is_err()
        {
            return Err(agent_gone(method));
        }
        let reason = tokio::select! {
            answer = answered => return answer.unwrap_or_else(|_| Err(agent_gone(method))),
            () = cancelled.cancelled() => "cancelled by the backend",
            () = tokio::time::sleep(timeout) => "request timeout",
        };
        let _ = events.send(ServerJsonRpcMessage::notification(
            ServerNotification::CancelledNotification(CancelledNotification::new(
                CancelledNotificationParam::new(Some(id), Some(reason.to_owned())),
            )),
        ));
        Err(ErrorData::internal_error(
            format!("{method} to the agent: {reason}"),
            None,
        ))
    }

    /// Takes an agent's POSTed answer (a response or an error) to a backend
    /// request relayed on the direct path of `session`; gives the message
    /// back when it answers none.
    pub fn answer_direct(
        &self,
        session: &str,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Box<ClientJsonRpcMessage>> {
        let (id, answer) = match message {
            JsonRpcMessage::Response(response) => (response.id.clone(), Ok(response)),
            JsonRpcMessage::Error(error) => match error.id.clone() {
                Some(id) => (id, Err(error)),
                None => return Err(Box::new(JsonRpcMessage::Error(error))),
            },
            other => return Err(Box::new(other)),
        };
        let key: (Arc<str>, RequestId) = (Arc::from(session), id);
        let Some(waiting) = self.direct_requests.lock().remove(&key) else {
            return Err(Box::new(match answer {
                Ok(response) => JsonRpcMessage::Response(response),
                Err(error) => JsonRpcMessage::Error(error),
            }));
        };
        let _ = waiting.send(answer.map(|r| r.result).map_err(|e| e.error));
        Ok(())
    }

    /// Backend requests being relayed to agents (for tests and
    /// diagnostics): zero once every relayed request was answered,
    /// refused or cancelled.
    pub fn pending_relayed_requests(&self) -> usize {
        self.relayed.load(Ordering::Relaxed) + self.direct_requests.lock().len()
    }

    /// Remembers a connected agent for broadcast notifications.
    pub fn register_agent(&self, scope: AgentScope, peer: Peer<RoleServer>) {
        let mut agents = self.agents.lock();
        agents.retain(|(_, p)| !p.is_transport_closed());
        agents.push((scope, peer));
    }

    fn agents_for(&self, server: &str) -> Vec<Peer<RoleServer>> {
        let mut agents = self.agents.lock();
        agents.retain(|(_, p)| !p.is_transport_closed());
        agents
            .iter()
            .filter(|(scope, _)| match scope {
                AgentScope::Unified => true,
                AgentScope::Routed(id) => id == server,
            })
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// Tells every agent that sees `server`'s tools that the list changed.
    pub async fn tools_changed(&self, server: &str) {
        for peer in self.agents_for(server) {
            let _ = peer.notify_tool_list_changed().await;
        }
    }

    /// Tells every agent that sees `server`'s prompts that the list changed.
    pub async fn prompts_changed(&self, server: &str) {
        for peer in self.agents_for(server) {
            let _ = peer.notify_prompt_list_changed().await;
        }
    }

    /// Tells routed agents of `server` that its resources changed.
    pub async fn resources_changed(&self, server: &str) {
        for peer in self.agents_for(server) {
            let _ = peer.notify_resource_list_changed().await;
        }
    }

    /// Relays a backend log message to the agents that see `server`.
    #[allow(deprecated)]
    pub async fn log_message(&self, server: &str, param: LoggingMessageNotificationParam) {
        for peer in self.agents_for(server) {
            let _ = peer.notify_logging_message(param.clone()).await;
        }
    }

    /// Routes of calls not finished yet plus progress queues that backend
    /// connections still feed (for tests and diagnostics): zero once every
    /// call has ended and its response or cancellation has passed through
    /// its connection.
    pub fn pending_progress_routes(&self) -> usize {
        self.live_routes.load(Ordering::Relaxed) + self.open_queues.load(Ordering::Relaxed)
    }
}

fn agent_gone(method: &str) -> ErrorData {
    ErrorData::internal_error(
        format!("{method}: the agent's call ended before it answered"),
        None,
    )
}

/// Relays one backend request through an agent session served by rmcp, on
/// the stream of agent request `agent_request` (rmcp's streamable-HTTP
/// server sends a request carrying [`OriginatingRequestId`] there, or on
/// the session's standalone stream once that request is answered).
async fn relay_on_peer(
    peer: &Peer<RoleServer>,
    agent_request: &RequestId,
    mut request: ServerRequest,
    cancelled: &CancellationToken,
    timeout: Duration,
    method: &str,
) -> Result<ClientResult, ErrorData> {
    request
        .extensions_mut()
        .insert(OriginatingRequestId(agent_request.clone()));
    // rmcp replaces that marker with the request its handler task serves:
    // here the backend's request, unknown to the agent. A task of its own
    // has none.
    let sending = {
        let peer = peer.clone();
        tokio::spawn(async move {
            peer.send_request_with_option(request, PeerRequestOptions::with_timeout(timeout))
                .await
        })
    };
    let handle = match sending.await {
        Ok(Ok(handle)) => handle,
        Ok(Err(error)) => return Err(peer_error(method, error)),
        Err(_) => return Err(agent_gone(method)),
    };
    let id = handle.id.clone();
    tokio::select! {
        answer = handle.await_response() => answer.map_err(|error| peer_error(method, error)),
        () = cancelled.cancelled() => {
            let _ = peer
                .notify_cancelled(CancelledNotificationParam::new(
                    Some(id),
                    Some("cancelled by the backend".to_owned()),
                ))
                .await;
            Err(ErrorData::internal_error(format!("{method} to the agent: cancelled by the backend"), None))
        }
    }
}

/// An agent's failure to answer, for the backend: the agent's own error
/// unchanged, anything else an internal error saying what happened.
fn peer_error(method: &str, error: ServiceError) -> ErrorData {
    match error {
        ServiceError::McpError(error) => error,
        other => ErrorData::internal_error(format!("{method} to the agent: {other}"), None),
    }
}

/// The sessions subscribed to one URI: each session's key and peer.
type Subscribers = Vec<(u64, Peer<RoleServer>)>;

/// Resource subscriptions of one backend, kept for the agent sessions that
/// made them: the backend is subscribed to a URI once, while at least one
/// session is, and its updates go to those sessions only.
///
/// Thread-safe.
#[derive(Default)]
pub struct Subscriptions {
    /// By URI: the subscribed sessions (their key and peer).
    table: Mutex<HashMap<String, Subscribers>>,
    /// Serialises subscribe and unsubscribe with the backend requests they
    /// make, so that the table and the backend agree.
    changes: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Subscriptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriptions")
            .field("uris", &self.table.lock().len())
            .finish()
    }
}

impl Subscriptions {
    /// Held while a subscription changes and the backend is told.
    pub async fn lock_changes(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.changes.lock().await
    }

    /// Adds session `key` to `uri`'s subscribers; true when it is the first
    /// (the backend must be subscribed). Closed sessions are dropped first.
    pub fn add(&self, uri: &str, key: u64, peer: Peer<RoleServer>) -> bool {
        let mut table = self.table.lock();
        let sessions = table.entry(uri.to_owned()).or_default();
        sessions.retain(|(k, p)| *k != key && !p.is_transport_closed());
        let first = sessions.is_empty();
        sessions.push((key, peer));
        first
    }

    /// Removes session `key` from `uri`'s subscribers; true when none is
    /// left and there was one (the backend must be unsubscribed).
    pub fn remove(&self, uri: &str, key: u64) -> bool {
        let mut table = self.table.lock();
        let Some(sessions) = table.get_mut(uri) else {
            return false;
        };
        let before = sessions.len();
        sessions.retain(|(k, p)| *k != key && !p.is_transport_closed());
        if sessions.is_empty() {
            table.remove(uri);
            return before > 0;
        }
        false
    }

    /// The live sessions subscribed to `uri`; closed ones are dropped.
    pub fn subscribers(&self, uri: &str) -> Vec<Peer<RoleServer>> {
        let mut table = self.table.lock();
        let Some(sessions) = table.get_mut(uri) else {
            return Vec::new();
        };
        sessions.retain(|(_, p)| !p.is_transport_closed());
        sessions.iter().map(|(_, p)| p.clone()).collect()
    }

    /// Drops the sessions that ended; returns the URIs nobody is
    /// subscribed to any more (the backend must be unsubscribed).
    pub fn drop_closed(&self) -> Vec<String> {
        let mut table = self.table.lock();
        let mut emptied = Vec::new();
        table.retain(|uri, sessions| {
            sessions.retain(|(_, p)| !p.is_transport_closed());
            if sessions.is_empty() {
                emptied.push(uri.clone());
                false
            } else {
                true
            }
        });
        emptied
    }

    /// Every URI with a subscriber (to subscribe a new backend session).
    pub fn uris(&self) -> Vec<String> {
        self.table.lock().keys().cloned().collect()
    }
}

/// A new progress queue: the sink for the backend connection and the
/// receiving end for the call.
fn progress_queue() -> (
    ProgressSink,
    mpsc::UnboundedReceiver<ProgressNotificationParam>,
) {
    let (sender, receiver) = mpsc::unbounded_channel();
    (ProgressSink { sender }, receiver)
}

/// A backend transport that queues the backend's progress notifications on
/// their pending calls' [`ProgressSink`]s as each one is read, before
/// `rmcp` sees the message, so that they keep their order relative to the
/// responses read after them; keeps the agent link of each request sent on
/// an agent's behalf until it is answered, and marks each request the
/// backend sends with the agent it goes to ([`RelayTarget`]). Messages
/// pass through otherwise unchanged.
///
/// Each wrapped connection keeps its own map from progress token to queue,
/// so connections that choose the same tokens never share a queue.
pub struct ProgressOrderingTransport<T> {
    inner: T,
    server: String,
    relay: Arc<NotificationRelay>,
    /// The agent links of this connection's requests in flight.
    routes: Arc<ConnectionRoutes>,
    /// Requests sent with an agent link and not answered yet.
    routed: HashSet<RequestId>,
    /// Requests sent with a progress sink and not answered yet, with
    /// their tokens.
    calls: HashMap<RequestId, ProgressToken>,
    /// The queues of those calls, by the token this connection gave them.
    queues: HashMap<ProgressToken, ProgressSink>,
}

impl<T> ProgressOrderingTransport<T> {
    /// Wraps `inner`, the transport of backend `server`, whose requests in
    /// flight are kept in `routes`.
    pub(crate) fn new(
        inner: T,
        server: impl Into<String>,
        relay: Arc<NotificationRelay>,
        routes: Arc<ConnectionRoutes>,
    ) -> Self {
        Self {
            inner,
            server: server.into(),
            relay,
            routes,
            routed: HashSet::new(),
            calls: HashMap::new(),
            queues: HashMap::new(),
        }
    }
}

impl<T> ProgressOrderingTransport<T> {
    /// Starts queueing progress under `token` for request `id`.
    fn call_sent(&mut self, id: RequestId, token: ProgressToken, sink: ProgressSink) {
        if let Some(previous) = self.calls.insert(id, token.clone()) {
            // A request id reused while pending (rmcp does not): the old
            // call's queue is closed.
            self.close_queue(&previous);
        }
        if self.queues.insert(token, sink).is_none() {
            self.relay.open_queues.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn close_queue(&mut self, token: &ProgressToken) {
        if self.queues.remove(token).is_some() {
            self.relay.open_queues.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Closes a call's progress queue to new progress: its response was
    /// read or it was cancelled. What is queued stays with the call.
    fn call_ended(&mut self, id: &RequestId) {
        if self.routed.remove(id) {
            self.routes.remove(id);
        }
        if let Some(token) = self.calls.remove(id) {
            self.close_queue(&token);
        }
    }

    fn all_calls_ended(&mut self) {
        for id in self.routed.drain() {
            self.routes.remove(&id);
        }
        self.calls.clear();
        let closed = self.queues.len();
        self.queues.clear();
        self.relay.open_queues.fetch_sub(closed, Ordering::Relaxed);
    }

    /// Queues one progress notification this connection read on its
    /// pending call; progress for no pending call is dropped.
    fn queue_progress(&self, param: &ProgressNotificationParam) -> bool {
        match self.queues.get(&param.progress_token) {
            Some(sink) => sink.queue(param.clone()),
            None => {
                tracing::debug!(server = %self.server, "progress for no pending call dropped");
                false
            }
        }
    }
}

impl<T: Transport<RoleClient>> Transport<RoleClient> for ProgressOrderingTransport<T> {
    type Error = T::Error;

    fn name() -> Cow<'static, str> {
        T::name()
    }

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        match &item {
            JsonRpcMessage::Request(request) => {
                if let Some(route) = request.request.extensions().get::<RouteAttachment>() {
                    let route = route.clone();
                    self.routes.insert(request.id.clone(), route.link);
                    self.routed.insert(request.id.clone());
                    if let Some(sink) = route.progress
                        && let Some(token) = request.request.get_meta().get_progress_token()
                    {
                        self.call_sent(request.id.clone(), token, sink);
                    }
                }
            }
            JsonRpcMessage::Notification(notification) => {
                if let ClientNotification::CancelledNotification(cancelled) =
                    &notification.notification
                    && let Some(id) = &cancelled.params.request_id
                {
                    self.call_ended(id);
                }
            }
            _ => {}
        }
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        let Some(mut message) = self.inner.receive().await else {
            // The backend is gone: no answer will come to the calls sent.
            self.all_calls_ended();
            return None;
        };
        match &mut message {
            JsonRpcMessage::Notification(notification) => {
                if let ServerNotification::ProgressNotification(progress) =
                    &notification.notification
                {
                    self.queue_progress(&progress.params);
                }
            }
            JsonRpcMessage::Response(response) => self.call_ended(&response.id),
            JsonRpcMessage::Error(error) => {
                if let Some(id) = &error.id {
                    self.call_ended(id);
                }
            }
            JsonRpcMessage::Request(request) => {
                // The agent this request goes to, for the connection's
                // handler (`BackendClient`).
                let origin = request.request.extensions().get::<InboundStreamOrigin>();
                if let Some(link) = self.routes.target_for(origin) {
                    request.request.extensions_mut().insert(RelayTarget(link));
                }
            }
        }
        Some(message)
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.all_calls_ended();
        self.inner.close().await
    }
}

impl<T> Drop for ProgressOrderingTransport<T> {
    fn drop(&mut self) {
        self.all_calls_ended();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use rmcp::model::{
        CallToolRequest, CallToolRequestParams, ClientRequest, EmptyResult, GetMeta,
        NumberOrString, ProgressNotification, ServerResult,
    };

    use super::*;

    fn token(n: i64) -> ProgressToken {
        ProgressToken(NumberOrString::Number(n))
    }

    /// A backend connection that reads a fixed script and accepts every
    /// message sent.
    struct ScriptedBackend {
        script: VecDeque<RxJsonRpcMessage<RoleClient>>,
    }

    impl ScriptedBackend {
        /// Progress `values` under `token`, then the response to `id`.
        fn progress_then_result(id: i64, token_value: i64, values: &[f64]) -> Self {
            let mut script: VecDeque<_> = values
                .iter()
                .map(|value| {
                    JsonRpcMessage::notification(ServerNotification::ProgressNotification(
                        ProgressNotification::new(ProgressNotificationParam::new(
                            token(token_value),
                            *value,
                        )),
                    ))
                })
                .collect();
            script.push_back(JsonRpcMessage::response(
                ServerResult::EmptyResult(EmptyResult {}),
                RequestId::Number(id),
            ));
            Self { script }
        }
    }

    impl Transport<RoleClient> for ScriptedBackend {
        type Error = std::io::Error;

        fn send(
            &mut self,
            _item: TxJsonRpcMessage<RoleClient>,
        ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
            std::future::ready(Ok(()))
        }

        async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
            self.script.pop_front()
        }

        async fn close(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    /// A tools/call request `id` with progress token `token_value`, whose
    /// progress goes to `sink` when given.
    fn call(id: i64, token_value: i64, sink: Option<ProgressSink>) -> TxJsonRpcMessage<RoleClient> {
        let mut request = CallToolRequest::new(CallToolRequestParams::new("steps"));
        if let Some(sink) = sink {
            request.extensions.insert(RouteAttachment {
                link: direct_link("session").0,
                progress: Some(sink),
            });
        }
        let mut request = ClientRequest::CallToolRequest(request);
        request
            .get_meta_mut()
            .set_progress_token(token(token_value));
        JsonRpcMessage::request(request, RequestId::Number(id))
    }

    /// A direct-path link of `session` and the receiving end of its
    /// answer stream.
    fn direct_link(session: &str) -> (AgentLink, mpsc::UnboundedReceiver<ServerJsonRpcMessage>) {
        let (events, received) = mpsc::unbounded_channel();
        let capabilities = ClientCapabilities::builder()
            .enable_sampling()
            .enable_elicitation()
            .build();
        (
            AgentLink::direct(Arc::from(session), events, Some(Arc::new(capabilities))),
            received,
        )
    }

    fn sampling() -> ServerRequest {
        serde_json::from_value(serde_json::json!({
            "method": "sampling/createMessage",
            "params": {"messages": [], "maxTokens": 10}
        }))
        .unwrap()
    }

    #[test]
    fn a_backend_request_goes_to_the_session_whose_call_it_came_with() {
        let routes = ConnectionRoutes::default();
        assert!(routes.target_for(None).is_none(), "no call in flight");
        routes.insert(RequestId::Number(1), direct_link("ann").0);
        routes.insert(RequestId::Number(2), direct_link("ann").0);
        // stdio: no stream to tell; the one session with calls in flight.
        assert_eq!(routes.target_for(None).unwrap().session(), "ann");
        routes.insert(RequestId::Number(3), direct_link("bob").0);
        assert!(
            routes.target_for(None).is_none(),
            "two sessions in flight: nobody is asked"
        );
        assert!(
            routes
                .target_for(Some(&InboundStreamOrigin::Unassociated))
                .is_none()
        );
        // HTTP: the stream of the call names it.
        let on_stream = |id| {
            routes
                .target_for(Some(&InboundStreamOrigin::OutboundRequest(
                    RequestId::Number(id),
                )))
                .map(|link| link.session().to_owned())
        };
        assert_eq!(on_stream(3).as_deref(), Some("bob"));
        assert_eq!(on_stream(1).as_deref(), Some("ann"));
        assert_eq!(on_stream(9), None, "not a call made for an agent");
        routes.remove(&RequestId::Number(3));
        assert_eq!(routes.target_for(None).unwrap().session(), "ann");
        assert_eq!(routes.len(), 2);
    }

    #[tokio::test]
    async fn a_request_relayed_on_the_direct_path_is_answered_by_the_agents_post() {
        let relay = Arc::new(NotificationRelay::default());
        let (link, mut stream) = direct_link("ann");
        let never = CancellationToken::new();
        let relaying = {
            let relay = relay.clone();
            let never = never.clone();
            tokio::spawn(async move {
                relay
                    .relay_request(
                        "alpha",
                        Some(link),
                        sampling(),
                        &never,
                        Duration::from_secs(30),
                    )
                    .await
            })
        };
        let Some(JsonRpcMessage::Request(asked)) = stream.recv().await else {
            panic!("no request on the answer stream");
        };
        assert!(matches!(
            asked.request,
            ServerRequest::CreateMessageRequest(_)
        ));
        assert_eq!(relay.pending_relayed_requests(), 2);
        let answer = |session: &str, id: RequestId| -> ClientJsonRpcMessage {
            serde_json::from_value(serde_json::json!({
                "jsonrpc": "2.0", "id": id, "result": {
                    "role": "assistant", "model": "m", "content": {"type": "text", "text": session}
                }
            }))
            .unwrap()
        };
        // Another session's answer under the same id is not taken.
        assert!(
            relay
                .answer_direct("bob", answer("bob", asked.id.clone()))
                .is_err()
        );
        assert!(
            relay
                .answer_direct("ann", answer("ann", asked.id.clone()))
                .is_ok()
        );
        let result = relaying.await.unwrap().unwrap();
        let ClientResult::CreateMessageResult(result) = result else {
            panic!("not a sampling result: {result:?}");
        };
        assert_eq!(result.model, "m");
        assert_eq!(relay.pending_relayed_requests(), 0);
        // Answered once only.
        assert!(relay.answer_direct("ann", answer("ann", asked.id)).is_err());
    }

    #[tokio::test]
    async fn a_relayed_request_the_backend_cancels_is_cancelled_at_the_agent() {
        let relay = NotificationRelay::default();
        let (link, mut stream) = direct_link("ann");
        let cancelled = CancellationToken::new();
        cancelled.cancel();
        let outcome = relay
            .relay_request(
                "alpha",
                Some(link),
                sampling(),
                &cancelled,
                Duration::from_secs(30),
            )
            .await;
        assert!(outcome.is_err());
        assert!(matches!(
            stream.recv().await,
            Some(JsonRpcMessage::Request(_))
        ));
        let Some(JsonRpcMessage::Notification(notification)) = stream.recv().await else {
            panic!("the agent was not told");
        };
        assert!(matches!(
            notification.notification,
            ServerNotification::CancelledNotification(_)
        ));
        assert_eq!(relay.pending_relayed_requests(), 0);
    }

    #[tokio::test]
    async fn requests_nobody_caused_or_the_agent_cannot_take_are_refused() {
        let relay = NotificationRelay::default();
        let never = CancellationToken::new();
        let timeout = Duration::from_secs(30);
        let refused = relay
            .relay_request("alpha", None, sampling(), &never, timeout)
            .await
            .unwrap_err();
        assert!(refused.message.contains("no agent session"), "{refused:?}");
        let (events, mut stream) = mpsc::unbounded_channel();
        let bare = AgentLink::direct(Arc::from("ann"), events, None);
        let refused = relay
            .relay_request("alpha", Some(bare), sampling(), &never, timeout)
            .await
            .unwrap_err();
        assert!(
            refused
                .message
                .contains("did not declare the sampling capability"),
            "{refused:?}"
        );
        assert!(stream.try_recv().is_err(), "the agent was asked");
    }

    fn drain(queue: &mut mpsc::UnboundedReceiver<ProgressNotificationParam>) -> Vec<f64> {
        let mut values = Vec::new();
        while let Ok(param) = queue.try_recv() {
            values.push(param.progress);
        }
        values
    }

    #[tokio::test]
    async fn connections_using_the_same_token_keep_their_own_progress() {
        let relay = Arc::new(NotificationRelay::default());
        for round in 0..5_i64 {
            // Two connections to one server (two agents' processes), each
            // sending its first call under the same request id and token.
            let first_values: Vec<f64> = (1..=3).map(|v| v as f64).collect();
            let second_values: Vec<f64> = (1..=5).map(|v| 100.0 + v as f64).collect();
            let mut first = ProgressOrderingTransport::new(
                ScriptedBackend::progress_then_result(round, round, &first_values),
                "alpha",
                relay.clone(),
                Arc::default(),
            );
            let mut second = ProgressOrderingTransport::new(
                ScriptedBackend::progress_then_result(round, round, &second_values),
                "alpha",
                relay.clone(),
                Arc::default(),
            );
            let (first_sink, mut first_queue) = progress_queue();
            let (second_sink, mut second_queue) = progress_queue();
            first
                .send(call(round, round, Some(first_sink)))
                .await
                .unwrap();
            second
                .send(call(round, round, Some(second_sink)))
                .await
                .unwrap();
            assert_eq!(relay.pending_progress_routes(), 2);
            // The two backends' messages are read interleaved.
            let mut first_open = true;
            let mut second_open = true;
            while first_open || second_open {
                if first_open {
                    first_open = first.receive().await.is_some();
                }
                if second_open {
                    second_open = second.receive().await.is_some();
                }
            }
            assert_eq!(drain(&mut first_queue), first_values);
            assert_eq!(drain(&mut second_queue), second_values);
            assert_eq!(relay.pending_progress_routes(), 0);
        }
    }

    #[tokio::test]
    async fn progress_is_queued_only_while_its_call_is_pending() {
        let relay = Arc::new(NotificationRelay::default());
        let (sink, mut queue) = progress_queue();
        let mut script = ScriptedBackend::progress_then_result(7, 3, &[1.0, 2.0]);
        // Progress under another token, and after the response.
        script.script.push_front(JsonRpcMessage::notification(
            ServerNotification::ProgressNotification(ProgressNotification::new(
                ProgressNotificationParam::new(token(4), 9.0),
            )),
        ));
        script.script.push_back(JsonRpcMessage::notification(
            ServerNotification::ProgressNotification(ProgressNotification::new(
                ProgressNotificationParam::new(token(3), 5.0),
            )),
        ));
        let mut transport =
            ProgressOrderingTransport::new(script, "alpha", relay.clone(), Arc::default());
        // A call without a sink opens no queue.
        transport.send(call(6, 4, None)).await.unwrap();
        assert_eq!(relay.pending_progress_routes(), 0);
        transport.send(call(7, 3, Some(sink))).await.unwrap();
        assert_eq!(relay.pending_progress_routes(), 1);
        while transport.receive().await.is_some() {}
        assert_eq!(drain(&mut queue), vec![1.0, 2.0]);
        assert_eq!(relay.pending_progress_routes(), 0);
    }

    #[tokio::test]
    async fn queues_of_unanswered_calls_close_with_the_connection() {
        let relay = Arc::new(NotificationRelay::default());
        let (sink, _queue) = progress_queue();
        let mut transport = ProgressOrderingTransport::new(
            ScriptedBackend {
                script: VecDeque::new(),
            },
            "alpha",
            relay.clone(),
            Arc::default(),
        );
        transport.send(call(1, 1, Some(sink))).await.unwrap();
        assert_eq!(relay.pending_progress_routes(), 1);
        drop(transport);
        assert_eq!(relay.pending_progress_routes(), 0);
    }
}
