//! Demo MCP backend (GitHub-shaped tools over an embedded data set).
//!
//! `guardway-demo-backend` serves the GitHub MCP server's tool names,
//! argument names and result shapes over stdio (default) or streamable HTTP
//! (`--http ADDR`, at `/mcp`). With `GUARDWAY_DEMO_CALL_LOG=<path>` every
//! `tools/call` is appended to that file as one JSON line
//! `{"tool", "arguments"}`.

mod data;
mod server;
mod tools;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};

use crate::data::DemoData;
use crate::server::{CallLog, DemoServer};

/// Environment variable naming the JSONL call log.
const CALL_LOG_ENV: &str = "GUARDWAY_DEMO_CALL_LOG";

/// A demo GitHub MCP server for guardway.
#[derive(Debug, Parser)]
#[command(name = "guardway-demo-backend", version)]
struct Args {
    /// Serve streamable HTTP at ADDR (path /mcp) instead of stdio. Port 0
    /// picks a free port; the URL is printed on stdout.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let call_log = std::env::var_os(CALL_LOG_ENV)
        .filter(|path| !path.is_empty())
        .map(|path| CallLog::new(PathBuf::from(path)));
    let server = DemoServer::new(DemoData::generate(), call_log);
    match args.http {
        None => {
            let running = server
                .serve(rmcp::transport::stdio())
                .await
                .context("starting the MCP session on stdio")?;
            running.waiting().await.context("serving MCP on stdio")?;
        }
        Some(addr) => serve_http(server, addr).await?,
    }
    Ok(())
}

async fn serve_http(server: DemoServer, addr: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    println!("listening on http://{local}/mcp");
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving MCP over HTTP")
}
