//! Routes notifications between agents and backends: backend progress goes
//! back to the agent request that caused it (under the agent's own progress
//! token) in the order the backend sent it and before that request's result;
//! list-changed and logging notifications go to connected agents.
//!
//! Ordering: `rmcp` runs every incoming notification handler on its own task,
//! so a handler may run after the response that followed the notification
//! has already been returned. Backend progress therefore does not go through
//! the handler: [`ProgressOrderingTransport`] wraps each backend transport
//! and, as each message is read, queues progress on the pending call's
//! [`ProgressRoute`]. The call relays its queue while it waits and drains it
//! once the response arrives, so everything read before the response reaches
//! the agent before the result. The queue of a `tools/call` exists from the
//! moment the transport sends the request (the call may claim it later), so
//! progress sent at once is not lost, and it stops taking progress when the
//! response (or the gateway's cancellation) passes through the transport.

// MCP logging is deprecated by the newest protocol revision but still
// carried for agents and backends that speak older ones.
#![allow(deprecated)]

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use rmcp::model::{
    ClientNotification, ClientRequest, GetMeta, JsonRpcMessage, LoggingMessageNotificationParam,
    ProgressNotificationParam, ProgressToken, RequestId, ServerNotification,
};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::{Peer, RoleClient, RoleServer};
use tokio::sync::mpsc;

/// Which agents a backend notification concerns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AgentScope {
    /// An agent connected to `/mcp/<server>`.
    Routed(String),
    /// An agent connected to `/mcp` or `--stdio`.
    Unified,
}

/// (server id, the gateway's progress token on that backend).
type RouteKey = (String, ProgressToken);

/// The progress queue of one pending backend call.
struct ProgressQueue {
    sender: mpsc::UnboundedSender<ProgressNotificationParam>,
    /// Until the call claims it with [`NotificationRelay::route_progress`].
    unclaimed: Option<mpsc::UnboundedReceiver<ProgressNotificationParam>>,
}

impl ProgressQueue {
    fn new() -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        Self {
            sender,
            unclaimed: Some(receiver),
        }
    }
}

/// Shared by every backend connection and agent session of one gateway.
///
/// Thread-safe; held in an `Arc`.
#[derive(Default)]
pub struct NotificationRelay {
    /// Pending calls: where progress read from a backend is queued.
    progress: Mutex<HashMap<RouteKey, ProgressQueue>>,
    agents: Mutex<Vec<(AgentScope, Peer<RoleServer>)>>,
}

impl std::fmt::Debug for NotificationRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationRelay")
            .field("progress_routes", &self.progress.lock().len())
            .field("agents", &self.agents.lock().len())
            .finish()
    }
}

/// The progress of one pending backend call, on its way to the agent.
///
/// Removes itself from the relay when dropped (the call ended, failed or
/// was cancelled); progress queued but not relayed by then is discarded.
pub struct ProgressRoute<'a> {
    relay: &'a NotificationRelay,
    key: Option<RouteKey>,
    queue: mpsc::UnboundedReceiver<ProgressNotificationParam>,
    agent: Peer<RoleServer>,
    agent_token: ProgressToken,
}

impl Drop for ProgressRoute<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.relay.progress.lock().remove(&key);
        }
    }
}

impl ProgressRoute<'_> {
    /// The next queued progress notification, waiting for one if none is
    /// queued. Cancel-safe: use it in a `select!` with the response and
    /// [`deliver`](Self::deliver) what it returns.
    pub async fn next(&mut self) -> Option<ProgressNotificationParam> {
        self.queue.recv().await
    }

    /// Relays everything queued so far, in order. Called once the backend's
    /// response has arrived: every progress notification the backend sent
    /// before it has been queued by then.
    pub async fn relay_queued(&mut self) {
        while let Ok(param) = self.queue.try_recv() {
            self.deliver(param).await;
        }
    }

    /// Sends one progress notification to the agent under its own token.
    pub async fn deliver(&self, mut param: ProgressNotificationParam) {
        param.progress_token = self.agent_token.clone();
        if let Err(error) = self.agent.notify_progress(param).await {
            tracing::debug!(%error, "cannot relay progress to the agent");
        }
    }
}

impl NotificationRelay {
    /// Sends progress that `server` reports under `backend_token` to `agent`
    /// under `agent_token`, through the returned route, until it drops.
    pub fn route_progress(
        &self,
        server: &str,
        backend_token: ProgressToken,
        agent: Peer<RoleServer>,
        agent_token: ProgressToken,
    ) -> ProgressRoute<'_> {
        let key = (server.to_owned(), backend_token);
        let queue = {
            let mut queues = self.progress.lock();
            let pending = queues.entry(key.clone()).or_insert_with(ProgressQueue::new);
            if pending.unclaimed.is_none() {
                // Claimed twice (the gateway does not): start afresh.
                *pending = ProgressQueue::new();
            }
            pending
                .unclaimed
                .take()
                .unwrap_or_else(|| mpsc::unbounded_channel().1)
        };
        ProgressRoute {
            relay: self,
            key: Some(key),
            queue,
            agent,
            agent_token,
        }
    }

    /// Opens the progress queue of a call `server` was just sent, for the
    /// call to claim.
    fn open_progress(&self, server: &str, backend_token: ProgressToken) {
        self.progress
            .lock()
            .entry((server.to_owned(), backend_token))
            .or_insert_with(ProgressQueue::new);
    }

    /// Closes a call's progress queue to new progress: its response was read
    /// or it was cancelled. What is queued stays with the call's route.
    fn close_progress(&self, server: &str, backend_token: ProgressToken) {
        self.progress
            .lock()
            .remove(&(server.to_owned(), backend_token));
    }

    /// Queues one backend progress notification on its pending call, in the
    /// order the backend connection read it; unknown tokens are dropped.
    /// Returns whether a pending call took it.
    pub fn queue_progress(&self, server: &str, param: ProgressNotificationParam) -> bool {
        let key = (server.to_owned(), param.progress_token.clone());
        let routes = self.progress.lock();
        match routes.get(&key) {
            Some(queue) => queue.sender.send(param).is_ok(),
            None => {
                tracing::debug!(server, "progress for no pending call dropped");
                false
            }
        }
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

    /// Number of pending progress routes (for tests and diagnostics).
    pub fn pending_progress_routes(&self) -> usize {
        self.progress.lock().len()
    }
}

/// A backend transport that queues the backend's progress notifications on
/// their pending calls ([`NotificationRelay::queue_progress`]) as each one is
/// read, before `rmcp` sees the message, so that they keep their order
/// relative to the responses read after them. Messages pass through
/// unchanged.
pub struct ProgressOrderingTransport<T> {
    inner: T,
    server: String,
    relay: Arc<NotificationRelay>,
    /// `tools/call` requests sent and not answered yet, with their tokens.
    calls: HashMap<RequestId, ProgressToken>,
}

impl<T> ProgressOrderingTransport<T> {
    /// Wraps `inner`, the transport of backend `server`.
    pub fn new(inner: T, server: impl Into<String>, relay: Arc<NotificationRelay>) -> Self {
        Self {
            inner,
            server: server.into(),
            relay,
            calls: HashMap::new(),
        }
    }
}

impl<T> ProgressOrderingTransport<T> {
    fn call_ended(&mut self, id: &RequestId) {
        if let Some(token) = self.calls.remove(id) {
            self.relay.close_progress(&self.server, token);
        }
    }

    fn all_calls_ended(&mut self) {
        for (_, token) in self.calls.drain() {
            self.relay.close_progress(&self.server, token);
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
                if let ClientRequest::CallToolRequest(_) = &request.request
                    && let Some(token) = request.request.get_meta().get_progress_token()
                {
                    self.relay.open_progress(&self.server, token.clone());
                    self.calls.insert(request.id.clone(), token);
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
        let Some(message) = self.inner.receive().await else {
            // The backend is gone: no answer will come to the calls sent.
            self.all_calls_ended();
            return None;
        };
        match &message {
            JsonRpcMessage::Notification(notification) => {
                if let ServerNotification::ProgressNotification(progress) =
                    &notification.notification
                {
                    self.relay
                        .queue_progress(&self.server, progress.params.clone());
                }
            }
            JsonRpcMessage::Response(response) => self.call_ended(&response.id),
            JsonRpcMessage::Error(error) => {
                if let Some(id) = &error.id {
                    self.call_ended(id);
                }
            }
            JsonRpcMessage::Request(_) => {}
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
    use super::*;

    fn progress(token: u32, value: f64) -> ProgressNotificationParam {
        ProgressNotificationParam::new(
            ProgressToken(rmcp::model::NumberOrString::Number(token.into())),
            value,
        )
    }

    #[test]
    fn progress_is_queued_only_for_a_pending_call_of_the_same_server() {
        let relay = NotificationRelay::default();
        assert!(!relay.queue_progress("alpha", progress(1, 1.0)));
        // Opened when the request is sent, before any call claims it.
        let token = progress(1, 0.0).progress_token;
        relay.open_progress("alpha", token.clone());
        assert!(relay.queue_progress("alpha", progress(1, 1.0)));
        assert!(relay.queue_progress("alpha", progress(1, 2.0)));
        assert!(!relay.queue_progress("beta", progress(1, 3.0)));
        assert!(!relay.queue_progress("alpha", progress(2, 4.0)));
        relay.close_progress("alpha", token.clone());
        assert!(!relay.queue_progress("alpha", progress(1, 5.0)));
        assert_eq!(relay.pending_progress_routes(), 0);
        // (Claiming needs an agent peer, which only a running session has;
        // the integration tests cover it.)
    }
}
