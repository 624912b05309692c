//! `serve --stdio`: one agent speaking MCP over a byte stream (an in-memory
//! pipe standing in for stdin/stdout) sees the unified tool table.

use crate::common;

use std::collections::BTreeMap;

use guardway_gateway::Gateway;
use guardway_gateway::config::RoutingMode;
use rmcp::ServiceExt;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_agent_uses_the_unified_table() {
    common::init_tracing();
    let servers = BTreeMap::from([
        ("alpha".to_owned(), common::echo_backend("alpha")),
        ("beta".to_owned(), common::echo_backend("beta")),
    ]);
    let mut options = common::options(servers, RoutingMode::Routed);
    options.stdio = true;
    let (agent_side, gateway_side) = tokio::io::duplex(1 << 20);
    let (gw_read, gw_write) = tokio::io::split(gateway_side);
    let gateway = tokio::spawn(Gateway::serve_stream(options, gw_read, gw_write));

    let agent = ().serve(tokio::io::split(agent_side)).await.unwrap();
    let info = agent.peer_info().unwrap();
    assert_eq!(info.server_info.as_ref().unwrap().name, "awmg-unified");
    let names: Vec<String> = agent
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(names.contains(&"alpha___echo".to_owned()));
    assert!(names.contains(&"beta___echo".to_owned()));
    let r = agent
        .call_tool(common::call("beta___echo", json!({"text": "over stdio"})))
        .await
        .unwrap();
    assert_eq!(common::text_of(&r), "beta: over stdio");
    let e = common::mcp_error(
        agent
            .call_tool(common::call("nope", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.message, "unknown tool \"nope\"");
    // Closing the agent's side ends the gateway.
    agent.cancel().await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(15), gateway)
        .await
        .expect("gateway ends when the agent leaves")
        .unwrap()
        .unwrap();
}
