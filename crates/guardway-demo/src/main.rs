//! Demo MCP backend (GitHub-shaped tools over an embedded data set).
fn main() {}
