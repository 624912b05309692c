//! Where a request enters: the HTTP surface (routed and unified MCP
//! endpoints, `/health`, `/metrics`, `/reflect`, the reference-compatible
//! answers), API key and HMAC checks, the TLS listener, agent sessions, the
//! direct path of a `tools/call` and the rmcp server handler. A call is
//! handed to the pipeline (`crate::pipeline`) from `server`.

pub mod auth;
pub mod catalog;
pub mod compat;
pub mod direct;
pub mod hmac;
pub mod http;
pub mod server;
pub mod sessions;
pub mod tls;

/// Sets TCP_NODELAY on an accepted agent connection (plain or TLS).
/// Answers leave in pieces (headers, then SSE events): without it the
/// second piece waits for the agent's delayed ACK, up to 40 ms.
pub(crate) fn set_nodelay(stream: &tokio::net::TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY");
    }
}
