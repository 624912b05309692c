//! The MCP gateway: configuration, backends, sessions, routed and unified
//! modes, the tool-call hook guards plug into, auth (API key, HMAC, TLS),
//! health, the DIFC snapshot.
//!
//! Entry points: [`serve`] (what `guardway serve` runs) and
//! [`Gateway::start`] (an in-process gateway for tests and embedding).

mod auth;
mod backend;
mod breaker;
mod catalog;
mod compat;
pub mod config;
mod direct;
mod error;
mod gateway;
pub mod guards;
pub mod hmac;
mod http;
pub mod logfiles;
pub mod metrics;
mod pipeline;
pub mod postprocess;
mod relay;
mod server;
mod sessions;
mod tls;

pub use auth::{constant_time_eq, generate_api_key};
pub use backend::{
    Backend, BackendHealth, BackendStatus, HttpTransportKind, install_crypto_provider,
};
pub use breaker::{Admission, BreakerState, CircuitBreaker, detect_rate_limit};
pub use catalog::{UNIFIED_SEPARATOR, normalize_input_schema, unified_name};
pub use compat::{AUTO_INIT_CLIENT_NAME, SUPPORTED_PROTOCOL_VERSIONS};
pub use error::{BackendError, GatewayError};
pub use gateway::{Gateway, RunningGateway, serve};
pub use guards::GuardPipeline;
pub use http::{MAX_REQUEST_BODY_BYTES, SPEC_VERSION};
pub use pipeline::{BackendInvoker, CallInterceptor, PassThrough, ToolCall};
pub use server::gateway_error;
pub use tls::TlsError;
