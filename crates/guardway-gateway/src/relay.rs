//! Routes notifications between agents and backends: backend progress goes
//! back to the agent request that caused it (under the agent's own progress
//! token); list-changed and logging notifications go to connected agents.

// MCP logging is deprecated by the newest protocol revision but still
// carried for agents and backends that speak older ones.
#![allow(deprecated)]

use std::collections::HashMap;

use parking_lot::Mutex;
use rmcp::model::{LoggingMessageNotificationParam, ProgressNotificationParam, ProgressToken};
use rmcp::{Peer, RoleServer};

/// Which agents a backend notification concerns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AgentScope {
    /// An agent connected to `/mcp/<server>`.
    Routed(String),
    /// An agent connected to `/mcp` or `--stdio`.
    Unified,
}

struct ProgressRoute {
    peer: Peer<RoleServer>,
    token: ProgressToken,
}

/// Shared by every backend connection and agent session of one gateway.
///
/// Thread-safe; held in an `Arc`.
#[derive(Default)]
pub struct NotificationRelay {
    /// (server id, the gateway's progress token on that backend) → agent.
    progress: Mutex<HashMap<(String, ProgressToken), ProgressRoute>>,
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

/// Removes a progress route when the call it serves ends (even on panic or
/// cancellation).
pub struct ProgressRouteGuard<'a> {
    relay: &'a NotificationRelay,
    key: Option<(String, ProgressToken)>,
}

impl Drop for ProgressRouteGuard<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.relay.progress.lock().remove(&key);
        }
    }
}

impl NotificationRelay {
    /// Sends progress that `server` reports under `backend_token` to `peer`
    /// under `agent_token`, until the returned guard drops.
    pub fn route_progress(
        &self,
        server: &str,
        backend_token: ProgressToken,
        peer: Peer<RoleServer>,
        agent_token: ProgressToken,
    ) -> ProgressRouteGuard<'_> {
        let key = (server.to_owned(), backend_token);
        self.progress.lock().insert(
            key.clone(),
            ProgressRoute {
                peer,
                token: agent_token,
            },
        );
        ProgressRouteGuard {
            relay: self,
            key: Some(key),
        }
    }

    /// Forwards one backend progress notification; unknown tokens are dropped.
    pub async fn forward_progress(&self, server: &str, mut param: ProgressNotificationParam) {
        let key = (server.to_owned(), param.progress_token.clone());
        let route = {
            let routes = self.progress.lock();
            routes.get(&key).map(|r| (r.peer.clone(), r.token.clone()))
        };
        let Some((peer, token)) = route else {
            tracing::debug!(server, "progress for no pending call dropped");
            return;
        };
        param.progress_token = token;
        if let Err(error) = peer.notify_progress(param).await {
            tracing::debug!(server, %error, "cannot relay progress to the agent");
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
