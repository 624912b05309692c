//! The MCP gateway. An agent's `tools/call` crosses the crate one way, one
//! folder per stage, and no folder imports one above it
//! (tests/gateway/layering.rs checks it):
//!
//! ```text
//! agent ──▶ pipeline ──▶ backend ──▶ backend MCP server
//!   └───────────┴────────────┴──▶ observe, config
//! ```
//!
//! - `agent/`: where a request enters: the HTTP surface (routed and
//!   unified MCP endpoints, `/health`, `/metrics`, `/reflect`), API key,
//!   HMAC, the TLS listener, sessions, the direct call path and the rmcp
//!   server handler.
//! - [`pipeline`]: what happens to the call: the interceptor around it,
//!   the DIFC guard pipeline ([`pipeline::difc`], transport-neutral, with
//!   its MCP adapter [`GuardPipeline`]) and the post-processing of results.
//! - `backend/`: where it leaves: stdio and HTTP connections, their
//!   lifecycle and circuit breaker, and the relay of their notifications
//!   back to agents.
//! - [`github`]: what GitHub says about the workflow repository (its
//!   visibility, looked up once at start-up), for the security-by-default
//!   rules of the pipeline and of proxy mode.
//! - [`observe`] (log files, metrics, the start-up digest) and [`config`]
//!   are leaves, reached through handles passed down.
//! - `gateway.rs` starts and stops the whole, wiring the stages together.
//!
//! Entry points: [`serve`] (what `guardway serve` runs),
//! [`Gateway::start`] (an in-process gateway for tests and embedding) and
//! [`DifcPipeline`] (the same DIFC pipeline for another transport).

mod agent;
mod backend;
pub mod config;
mod error;
mod gateway;
pub mod github;
pub mod observe;
pub mod pipeline;

pub use agent::auth::{constant_time_eq, generate_api_key};
pub use agent::catalog::{UNIFIED_SEPARATOR, normalize_input_schema, unified_name};
pub use agent::compat::{AUTO_INIT_CLIENT_NAME, SUPPORTED_PROTOCOL_VERSIONS};
pub use agent::http::{MAX_REQUEST_BODY_BYTES, SPEC_VERSION};
pub use agent::tls::TlsError;
pub use agent::{hmac, tls};
pub use backend::breaker::{Admission, BreakerState, CircuitBreaker, detect_rate_limit};
pub use backend::error::BackendError;
pub use backend::{
    Backend, BackendHealth, BackendStatus, HttpTransportKind, install_crypto_provider,
};
pub use error::GatewayError;
pub use gateway::{Gateway, InProcessGateway, RunningGateway, serve};
pub use pipeline::difc::{DifcPipeline, GuardPipeline};
pub use pipeline::{BackendInvoker, CallInterceptor, PassThrough, ToolCall, gateway_error};

// The paths these modules had before they moved into a stage's folder.
pub use observe::{logfiles, metrics};
pub use pipeline::difc as guards;
pub use pipeline::postprocess;
