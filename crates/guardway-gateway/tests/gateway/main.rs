//! The gateway's integration tests, built as one test binary: every test
//! binary links wasmtime, rmcp and axum, so one binary instead of eighteen
//! saves most of the suite's link time and disk. Each module is one area of
//! the gateway; `cargo test -p guardway-gateway --test gateway guarded::`
//! runs one of them. `gateway_digest` stays a binary of its own, because it
//! installs the process-wide logging.

/// The `guardway` binary's allocator: the soak test measures the memory the
/// gateway gives back, which depends on it (`soak` starts its background purging
/// as `guardway serve` does).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[path = "../common/mod.rs"]
mod common;
#[path = "../guarded_support/mod.rs"]
mod guarded_support;
#[path = "../surface_peers/mod.rs"]
mod surface_peers;

mod agent_progress;
mod backends;
mod compat_agents;
mod compat_http;
mod compat_logfiles;
mod config_parse;
mod drop_in;
mod everything;
mod guarded;
mod hmac_signing;
mod http_backends;
mod http_surface;
mod layering;
mod lifecycle;
mod postprocess;
mod python_client;
mod reflect;
mod relay;
mod soak;
mod stdio_agent;
mod stdio_lane;
mod tls_listener;
