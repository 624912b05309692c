//! The tool-call lane of stdio backends (`backend/stdio_link.rs`), against
//! a backend written directly on JSON-RPC (`tests/python/backends/
//! raw_server.py`) so that it can send what an SDK would not: a tools/call
//! goes out with the lane's own ids and progress token; an answer without a
//! result fails the call at once; the backend's own request during a call,
//! stray lines, log messages and progress around an answer are all routed;
//! a process that ignores the end of its input gets SIGTERM when the
//! gateway stops.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use guardway_gateway::config::{RoutingMode, ServerConfig, ServerTransport};
use guardway_gateway::{Gateway, RunningGateway};
use serde_json::{Value, json};

/// The first id of the lane (`stdio_link::LANE_FIRST_ID`).
const LANE_FIRST_ID: i64 = 1 << 30;

fn raw_backend(args: &[&str], env: &[(&str, String)]) -> ServerConfig {
    let mut argv = vec![
        common::repo_root()
            .join("tests/python/backends/raw_server.py")
            .to_string_lossy()
            .into_owned(),
    ];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    let mut server = common::stdio_server(common::python().to_string_lossy().into_owned(), argv);
    if let ServerTransport::Stdio { env: vars, .. } = &mut server.transport {
        for (key, value) in env {
            vars.insert((*key).to_owned(), value.clone());
        }
    }
    server
}

async fn gateway_with(server: ServerConfig) -> RunningGateway {
    common::init_tracing();
    Gateway::start(common::options(
        BTreeMap::from([("raw".to_owned(), server)]),
        RoutingMode::Routed,
    ))
    .await
    .unwrap()
}

fn url(gateway: &RunningGateway) -> String {
    format!("http://{}/mcp/raw", gateway.local_addr())
}

type Agent = rmcp::service::RunningService<rmcp::RoleClient, ()>;

/// A gateway in front of the raw backend (with `args`, `env`) and an rmcp
/// agent on it.
async fn raw_gateway_and_agent(args: &[&str], env: &[(&str, String)]) -> (RunningGateway, Agent) {
    let gateway = gateway_with(raw_backend(args, env)).await;
    let agent = common::rmcp_client(&url(&gateway), common::API_KEY).await;
    (gateway, agent)
}

/// Calls `tool` (no arguments); panics when the call fails.
async fn call(agent: &Agent, tool: &str) -> rmcp::model::CallToolResult {
    agent
        .call_tool(common::call(tool, json!({})))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_go_out_with_the_lanes_ids_and_progress_tokens() {
    let (gateway, agent) = raw_gateway_and_agent(&[], &[]).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let result = call(&agent, "request_info").await;
        let info: Value = serde_json::from_str(&common::text_of(&result)).unwrap();
        let id = info["id"].as_i64().unwrap();
        assert!(id >= LANE_FIRST_ID, "{info}");
        // rmcp's client always asks for progress: the backend sees the
        // lane's token, which is the request id.
        assert_eq!(info["progressToken"].as_i64(), Some(id), "{info}");
        ids.push(id);
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    agent.cancel().await.unwrap();
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_without_a_result_fails_the_call_at_once() {
    // The tool timeout (60 s) is far beyond the test's: the call must end
    // because the answer came, not because the gateway stopped waiting.
    let (gateway, agent) = raw_gateway_and_agent(&[], &[]).await;
    let error = tokio::time::timeout(
        Duration::from_secs(30),
        agent.call_tool(common::call("no_result", json!({}))),
    )
    .await
    .expect("the call waited for another answer")
    .unwrap_err();
    let error = common::mcp_error(error);
    assert!(
        error.message.contains("not a valid JSON-RPC response"),
        "{}",
        error.message
    );
    // The connection goes on.
    let result = call(&agent, "request_info").await;
    assert!(common::text_of(&result).contains("progressToken"));
    agent.cancel().await.unwrap();
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backends_own_request_during_a_call_is_answered() {
    let (gateway, agent) = raw_gateway_and_agent(&[], &[]).await;
    let result = call(&agent, "ping_first").await;
    assert_eq!(common::text_of(&result), "ping answered");
    agent.cancel().await.unwrap();
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_around_an_answer_are_routed_and_progress_comes_first() {
    let gateway = gateway_with(raw_backend(&[], &[])).await;
    let progress = common::ProgressLog::default();
    let agent = common::progress_logging_client(&url(&gateway), &progress).await;
    for _ in 0..5 {
        let result = call(&agent, "chatter").await;
        assert_eq!(common::text_of(&result), "chattered");
        assert_eq!(progress.take(), vec![1.0, 2.0, 3.0]);
    }
    assert_eq!(gateway.pending_progress_routes(), 0);
    agent.cancel().await.unwrap();
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_ignoring_the_end_of_its_input_gets_sigterm_on_stop() {
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("terminated");
    let (gateway, agent) = raw_gateway_and_agent(
        &["--ignore-eof"],
        &[("TERM_MARK", mark.to_string_lossy().into_owned())],
    )
    .await;
    call(&agent, "request_info").await;
    agent.cancel().await.unwrap();
    gateway.shutdown().await;
    assert_eq!(
        std::fs::read_to_string(&mark).ok().as_deref(),
        Some("terminated"),
        "the backend was not sent SIGTERM"
    );
}
