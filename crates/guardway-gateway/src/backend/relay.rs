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
//! the agent before the result. The call creates its route before sending
//! the request and attaches the route's [`ProgressSink`] to it; the
//! transport keys the sink by the request's progress token in a map of its
//! own connection (tokens are chosen per connection, so several connections
//! to one server, such as per-agent stdio processes, reuse them), queues
//! progress from the moment the request is sent, and stops when the
//! response (or the gateway's cancellation) passes through.

// MCP logging is deprecated by the newest protocol revision but still
// carried for agents and backends that speak older ones.
#![allow(deprecated)]

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use rmcp::model::{
    ClientNotification, GetExtensions, GetMeta, JsonRpcMessage, LoggingMessageNotificationParam,
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

/// Where progress read by one backend connection for one pending call is
/// queued. The call creates it ([`NotificationRelay::route_progress`]) and
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

/// Shared by every backend connection and agent session of one gateway.
///
/// Thread-safe; held in an `Arc`.
#[derive(Default)]
pub struct NotificationRelay {
    /// Progress routes of pending calls not dropped yet.
    live_routes: AtomicUsize,
    /// Progress queues that backend connections still feed (sent calls
    /// neither answered nor cancelled yet).
    open_queues: AtomicUsize,
    agents: Mutex<Vec<(AgentScope, Peer<RoleServer>)>>,
}

impl std::fmt::Debug for NotificationRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationRelay")
            .field("progress_routes", &self.pending_progress_routes())
            .field("agents", &self.agents.lock().len())
            .finish()
    }
}

/// Where an agent's progress goes: its rmcp peer (a call served by rmcp's
/// session), or the SSE answer of a call served on the direct path
/// (`crate::agent::direct`), whose body sends what it receives before the result.
#[derive(Clone)]
pub enum AgentProgress {
    Peer(Peer<RoleServer>),
    Direct(mpsc::UnboundedSender<ProgressNotificationParam>),
}

/// The progress of one pending backend call, on its way to the agent.
///
/// Leaves the relay's count when dropped (the call ended, failed or was
/// cancelled); progress queued but not relayed by then is discarded.
pub struct ProgressRoute<'a> {
    relay: &'a NotificationRelay,
    sink: ProgressSink,
    queue: mpsc::UnboundedReceiver<ProgressNotificationParam>,
    agent: AgentProgress,
    agent_token: ProgressToken,
}

impl Drop for ProgressRoute<'_> {
    fn drop(&mut self) {
        self.relay.live_routes.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ProgressRoute<'_> {
    /// The queue to attach to the backend request (in its extensions,
    /// before it is sent) so that the connection queues the request's
    /// progress here.
    pub fn sink(&self) -> ProgressSink {
        self.sink.clone()
    }

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
        match &self.agent {
            AgentProgress::Peer(peer) => {
                if let Err(error) = peer.notify_progress(param).await {
                    tracing::debug!(%error, "cannot relay progress to the agent");
                }
            }
            AgentProgress::Direct(answer) => {
                if answer.send(param).is_err() {
                    tracing::debug!("cannot relay progress to the agent: its answer is gone");
                }
            }
        }
    }
}

impl NotificationRelay {
    /// A route sending progress to `agent` under `agent_token`, until it
    /// drops. Create it before sending the backend request and attach its
    /// [`sink`](ProgressRoute::sink) to the request's extensions: the
    /// backend connection queues the request's progress on it from the
    /// moment the request goes out.
    pub fn route_progress(
        &self,
        agent: AgentProgress,
        agent_token: ProgressToken,
    ) -> ProgressRoute<'_> {
        let (sink, queue) = progress_queue();
        self.live_routes.fetch_add(1, Ordering::Relaxed);
        ProgressRoute {
            relay: self,
            sink,
            queue,
            agent,
            agent_token,
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

    /// Progress routes of calls not finished yet plus progress queues
    /// that backend connections still feed (for tests and diagnostics):
    /// zero once every call has ended and its response or cancellation
    /// has passed through its connection.
    pub fn pending_progress_routes(&self) -> usize {
        self.live_routes.load(Ordering::Relaxed) + self.open_queues.load(Ordering::Relaxed)
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
/// responses read after them. Messages pass through unchanged.
///
/// Each wrapped connection keeps its own map from progress token to queue,
/// so connections that choose the same tokens never share a queue.
pub struct ProgressOrderingTransport<T> {
    inner: T,
    server: String,
    relay: Arc<NotificationRelay>,
    /// Requests sent with a progress sink and not answered yet, with
    /// their tokens.
    calls: HashMap<RequestId, ProgressToken>,
    /// The queues of those calls, by the token this connection gave them.
    queues: HashMap<ProgressToken, ProgressSink>,
}

impl<T> ProgressOrderingTransport<T> {
    /// Wraps `inner`, the transport of backend `server`.
    pub fn new(inner: T, server: impl Into<String>, relay: Arc<NotificationRelay>) -> Self {
        Self {
            inner,
            server: server.into(),
            relay,
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
        if let Some(token) = self.calls.remove(id) {
            self.close_queue(&token);
        }
    }

    fn all_calls_ended(&mut self) {
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
                if let Some(sink) = request.request.extensions().get::<ProgressSink>()
                    && let Some(token) = request.request.get_meta().get_progress_token()
                {
                    let sink = sink.clone();
                    self.call_sent(request.id.clone(), token, sink);
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
                    self.queue_progress(&progress.params);
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
            request.extensions.insert(sink);
        }
        let mut request = ClientRequest::CallToolRequest(request);
        request
            .get_meta_mut()
            .set_progress_token(token(token_value));
        JsonRpcMessage::request(request, RequestId::Number(id))
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
            );
            let mut second = ProgressOrderingTransport::new(
                ScriptedBackend::progress_then_result(round, round, &second_values),
                "alpha",
                relay.clone(),
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
        let mut transport = ProgressOrderingTransport::new(script, "alpha", relay.clone());
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
        );
        transport.send(call(1, 1, Some(sink))).await.unwrap();
        assert_eq!(relay.pending_progress_routes(), 1);
        drop(transport);
        assert_eq!(relay.pending_progress_routes(), 0);
    }
}
