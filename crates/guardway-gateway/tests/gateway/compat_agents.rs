//! Per-agent stdio processes (gateway.md §5.2): each agent id gets its own
//! process of a stdio backend on first use, keeps it across calls, and an
//! idle process is closed and replaced on the next call.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use guardway_gateway::Gateway;
use guardway_gateway::config::RoutingMode;
use serde_json::{Value, json};

const PID_SERVER: &str = r#"
import os
from mcp.server.fastmcp import FastMCP

mcp = FastMCP("pid")
calls = 0

@mcp.tool(description="The id of this server process.")
def pid() -> str:
    global calls
    calls += 1
    return str(os.getpid())

@mcp.tool(description="How many times this process ran pid.")
def pid_calls() -> str:
    return str(calls)

mcp.run()
"#;

const COUNTING_SERVER: &str = r#"
from mcp.server.fastmcp import FastMCP

mcp = FastMCP("counting")
calls = 0

@mcp.tool(description="How many times this tool ran in this process.")
def calls_so_far() -> str:
    global calls
    calls += 1
    return str(calls)

mcp.run()
"#;

/// One session-less `tools/call pid` (auto-initialised) as `agent`.
async fn pid_as(url: &str, agent: &str) -> u32 {
    call_as(url, agent, "pid").await
}

/// One session-less `tools/call` of `tool` (auto-initialised) as `agent`:
/// its text, parsed.
async fn call_as(url: &str, agent: &str, tool: &str) -> u32 {
    tool_text_as(url, agent, tool).await.parse().unwrap()
}

/// The text of one session-less `tools/call` of `tool` (auto-initialised)
/// as `agent`.
async fn tool_text_as(url: &str, agent: &str, tool: &str) -> String {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": tool, "arguments": {}}});
    let resp = reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("authorization", common::API_KEY)
        .header("x-agent-id", agent)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let answer: Value = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|m| m["id"] == 1)
        .unwrap_or_else(|| panic!("no answer in {text}"));
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {answer}"))
        .to_owned()
}

/// A session-less `tools/call` runs the tool once, in one process: the
/// session the gateway opens for it is initialised without running the call
/// (which used to run once more while the session was being initialised,
/// and, when the backend process took more than a second to start, was
/// dropped mid-launch, so that the call launched the agent's process twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_less_call_runs_the_tool_once() {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("counting_server.py");
    std::fs::write(&script, COUNTING_SERVER).unwrap();
    let backend = common::stdio_server(
        common::python().to_string_lossy().into_owned(),
        vec![script.to_string_lossy().into_owned()],
    );
    let mut options = common::options(
        BTreeMap::from([("counting".to_owned(), backend)]),
        RoutingMode::Routed,
    );
    options.log_dir = dir.path().join("logs");
    let gw = Gateway::start(options).await.unwrap();
    let url = format!("http://{}/mcp/counting", gw.local_addr());
    let backend = gw.backend("counting").unwrap().clone();
    for expected in ["1", "2", "3"] {
        assert_eq!(
            tool_text_as(&url, "agent-c", "calls_so_far").await,
            expected
        );
    }
    assert_eq!(tool_text_as(&url, "agent-d", "calls_so_far").await, "1");
    let health = backend.health();
    assert_eq!((health.launches, health.agent_launches), (1, 2));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_agent_gets_its_own_stdio_process() {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("pid_server.py");
    std::fs::write(&script, PID_SERVER).unwrap();
    let backend = common::stdio_server(
        common::python().to_string_lossy().into_owned(),
        vec![script.to_string_lossy().into_owned()],
    );
    let mut options = common::options(
        BTreeMap::from([("pids".to_owned(), backend)]),
        RoutingMode::Routed,
    );
    options.log_dir = dir.path().join("logs");
    let gw = Gateway::start(options).await.unwrap();
    let url = format!("http://{}/mcp/pids", gw.local_addr());
    let backend = gw.backend("pids").unwrap().clone();
    assert_eq!(backend.agent_process_count().await, 0);

    let a1 = pid_as(&url, "agent-a").await;
    let b1 = pid_as(&url, "agent-b").await;
    let a2 = pid_as(&url, "agent-a").await;
    assert_eq!(a1, a2, "one agent keeps its process");
    assert_ne!(a1, b1, "agents do not share a process");
    // Auto-initialise runs each session-less call once (its internal
    // requests do not carry the caller's call).
    assert_eq!(call_as(&url, "agent-a", "pid_calls").await, 2);
    assert_eq!(backend.agent_process_count().await, 2);

    // Recently used processes survive a sweep; idle ones are closed.
    assert_eq!(
        backend
            .close_idle_agent_processes(Duration::from_secs(3600))
            .await,
        0
    );
    assert_eq!(backend.close_idle_agent_processes(Duration::ZERO).await, 2);
    assert_eq!(backend.agent_process_count().await, 0);
    let a3 = pid_as(&url, "agent-a").await;
    assert_ne!(a3, a1, "a closed process is replaced");
    assert_eq!(backend.agent_process_count().await, 1);
    let health = backend.health();
    assert_eq!((health.launches, health.agent_launches), (1, 3));

    // The start-up process still serves discovery.
    let client = common::rmcp_client(&url, common::API_KEY).await;
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 2);
    client.cancel().await.unwrap();
    gw.shutdown().await;
    assert_eq!(backend.agent_process_count().await, 0);
}
