//! guardway proxy mode: an HTTP(S) forward proxy in front of the GitHub
//! REST and GraphQL API that maps each request to a guard tool name and
//! runs it through the same WebAssembly guard and DIFC pipeline as the MCP
//! gateway, so that `gh`, `gh api` and `curl` see only what the policy
//! allows.
//!
//! - [`routes`] and [`graphql`]: request → guard tool and arguments.
//! - [`graphql_rewrite`]: the fields the guard needs, added to queries.
//! - [`upstream`]: the GitHub API the proxy forwards to.
//! - [`pipeline`]: what the proxy asks of the DIFC pipeline, served by
//!   [`GatewayPipeline`] (the gateway's transport-neutral pipeline).
//! - [`shape`]: the filtered answer in the upstream's shape.
//! - [`rest_backend`]: the guard's `call_backend` answered over REST.
//! - [`tls`]: the generated CA and server certificate of `--tls`.
//! - [`handler`] and [`server`]: the HTTP side.

mod body;
mod gateway_pipeline;
pub mod graphql;
pub mod graphql_rewrite;
pub mod handler;
pub mod headers;
pub mod metrics;
pub mod pipeline;
pub mod rest_backend;
pub mod routes;
pub mod server;
pub mod shape;
pub mod tls;
pub mod upstream;

pub use gateway_pipeline::{
    GatewayPipeline, GatewayPipelineOptions, PROXY_AGENT_ID, PROXY_SERVER_ID,
};
pub use handler::{ProxyState, error_response, router};
pub use metrics::ProxyMetrics;
pub use pipeline::{
    FilteredAnswer, ForwardContext, ForwardStep, ForwardStop, GuardedCall, PipelineOutcome,
    PipelineRefusal, ProxyPipeline,
};
pub use rest_backend::RestBackend;
pub use server::{RunningProxy, ServeError, client_address, serve};
pub use tls::{GeneratedTls, TlsSetupError, generate_self_signed};
pub use upstream::{DEFAULT_GITHUB_API_URL, DEFAULT_UPSTREAM_TIMEOUT, Upstream, UpstreamError};
