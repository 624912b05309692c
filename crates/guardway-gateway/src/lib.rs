//! The MCP gateway: configuration, backends, sessions, routed and unified modes, the guard pipeline.
pub mod config;
