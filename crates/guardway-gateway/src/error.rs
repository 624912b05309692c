//! Errors of the gateway runtime: start-up failures (`GatewayError`) and
//! per-backend failures (`BackendError`) that become MCP errors for agents.

use std::time::Duration;

/// A failure that stops the gateway from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot write the start-up document to stdout: {source}")]
    StartupDocument { source: std::io::Error },
    #[error("cannot serve over stdin/stdout: {message}")]
    Stdio { message: String },
    #[error("http server failed: {source}")]
    Serve { source: std::io::Error },
    #[error("cannot generate an api key: {message}")]
    KeyGeneration { message: String },
    #[error("{message}")]
    Guards { message: String },
    #[error(transparent)]
    Tls {
        #[from]
        source: crate::agent::tls::TlsError,
    },
}

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
