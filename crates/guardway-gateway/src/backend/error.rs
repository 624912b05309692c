//! Why a call to one backend failed on the gateway's side
//! (`BackendError`); its text is what the agent sees (JSON-RPC code 0).

use std::time::Duration;

/// Why a call to one backend failed on the gateway's side. The text of each
/// variant names the backend, and is what the agent sees (JSON-RPC code 0).
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    #[error("backend \"{server}\" is unavailable: {reason}")]
    Unavailable { server: String, reason: String },
    #[error("backend \"{server}\" is unavailable (restart in {retry_in:?}): {reason}")]
    BackingOff {
        server: String,
        retry_in: Duration,
        reason: String,
    },
    #[error("backend \"{server}\" failed to start: {reason}")]
    Launch { server: String, reason: String },
    #[error("backend \"{server}\" did not answer {method} within {timeout:?}")]
    Timeout {
        server: String,
        method: String,
        timeout: Duration,
    },
    #[error("backend \"{server}\" closed the connection during {method}")]
    ConnectionClosed { server: String, method: String },
    #[error("backend \"{server}\" failed {method}: {reason}")]
    Transport {
        server: String,
        method: String,
        reason: String,
    },
    #[error("{message}")]
    CircuitOpen { server: String, message: String },
    #[error("backend \"{server}\" returned an unexpected answer to {method}")]
    UnexpectedResponse { server: String, method: String },
    #[error("gateway is shutting down")]
    ShuttingDown,
}
