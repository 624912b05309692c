//! The MCP gateway: configuration, backends, sessions, routed and unified
//! modes, the tool-call hook guards plug into, auth (API key, HMAC, TLS),
//! health, the DIFC snapshot.
//!
//! Entry points: [`serve`] (what `guardway serve` runs) and
//! [`Gateway::start`] (an in-process gateway for tests and embedding).

mod agent;
mod backend;
pub mod config;
mod error;
mod gateway;
pub mod observe;
pub mod pipeline;

pub use agent::auth::{constant_time_eq, generate_api_key};
pub use agent::catalog::{UNIFIED_SEPARATOR, normalize_input_schema, unified_name};
pub use agent::compat::{AUTO_INIT_CLIENT_NAME, SUPPORTED_PROTOCOL_VERSIONS};
pub use agent::hmac;
pub use agent::http::{MAX_REQUEST_BODY_BYTES, SPEC_VERSION};
pub use agent::server::gateway_error;
pub use agent::tls::TlsError;
pub use backend::breaker::{Admission, BreakerState, CircuitBreaker, detect_rate_limit};
pub use backend::{
    Backend, BackendHealth, BackendStatus, HttpTransportKind, install_crypto_provider,
};
pub use error::{BackendError, GatewayError};
pub use gateway::{Gateway, RunningGateway, serve};
pub use observe::{logfiles, metrics};
pub use pipeline::difc as guards;
pub use pipeline::difc::GuardPipeline;
pub use pipeline::postprocess;
pub use pipeline::{BackendInvoker, CallInterceptor, PassThrough, ToolCall};
