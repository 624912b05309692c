//! The log directory of a running gateway (gateway.md §7): `tools.json`,
//! `rpc-messages.jsonl` records of a real tool call, the backend's stderr
//! in `<id>.log`, and redaction of a token the backend prints.

use crate::common;

use std::collections::BTreeMap;

use guardway_gateway::Gateway;
use guardway_gateway::config::RoutingMode;
use serde_json::{Value, json};

const TOKEN: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_directory_holds_tools_rpc_records_and_backend_stderr() {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("logs");
    let script = format!("echo \"alpha starting with {TOKEN}\" >&2; exec \"$0\" \"$@\"",);
    let python = common::python().to_string_lossy().into_owned();
    let echo = common::repo_root()
        .join("tests/python/backends/echo_server.py")
        .to_string_lossy()
        .into_owned();
    let backend = common::stdio_server(
        "sh".into(),
        vec!["-c".into(), script, python, echo, "alpha".into()],
    );
    let mut options = common::options(
        BTreeMap::from([("alpha".to_owned(), backend)]),
        RoutingMode::Routed,
    );
    options.log_dir = log_dir.clone();
    let gw = Gateway::start(options).await.unwrap();

    let tools: Value =
        serde_json::from_str(&std::fs::read_to_string(log_dir.join("tools.json")).unwrap())
            .unwrap();
    let alpha = tools["servers"]["alpha"].as_array().unwrap();
    assert!(
        alpha.contains(&json!({"name": "echo", "description": "Echo the text back, tagged with the server name."})),
        "{tools}"
    );

    let client = common::rmcp_client(
        &format!("http://{}/mcp/alpha", gw.local_addr()),
        common::API_KEY,
    )
    .await;
    let text = format!("hello Bearer {TOKEN}");
    let result = client
        .call_tool(common::call("echo", json!({"text": text})))
        .await
        .unwrap();
    assert!(common::text_of(&result).contains(TOKEN));
    client.cancel().await.unwrap();
    gw.shutdown().await;

    let rpc = std::fs::read_to_string(log_dir.join("rpc-messages.jsonl")).unwrap();
    assert!(!rpc.contains(TOKEN), "token leaked into rpc log: {rpc}");
    let records: Vec<Value> = rpc
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let calls: Vec<&Value> = records
        .iter()
        .filter(|r| r["method"] == "tools/call")
        .collect();
    assert_eq!(calls.len(), 2, "{rpc}");
    let (request, response) = (calls[0], calls[1]);
    assert_eq!(request["event"], "rpc_request");
    assert_eq!(request["direction"], "OUT");
    assert_eq!(request["_schema"], "rpc-message/v2");
    assert_eq!(request["server_id"], "alpha");
    assert_eq!(request["payload"]["name"], "echo");
    assert_eq!(
        request["payload"]["arguments"]["text"],
        "hello Bearer [REDACTED]"
    );
    assert!(request["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(response["event"], "rpc_response");
    assert_eq!(response["direction"], "IN");
    assert_eq!(response["error"], Value::Null);
    assert!(response["payload"]["content"].is_array(), "{response}");

    let backend_log = std::fs::read_to_string(log_dir.join("alpha.log")).unwrap();
    assert!(
        backend_log.contains("[INFO] [backend] [stderr] alpha starting with [REDACTED]"),
        "{backend_log}"
    );
    assert!(!backend_log.contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_backend_call_is_logged_with_its_error() {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut options = common::options(
        BTreeMap::from([("alpha".to_owned(), common::echo_backend("alpha"))]),
        RoutingMode::Routed,
    );
    options.log_dir = dir.path().to_path_buf();
    let gw = Gateway::start(options).await.unwrap();
    let client = common::rmcp_client(
        &format!("http://{}/mcp/alpha", gw.local_addr()),
        common::API_KEY,
    )
    .await;
    // The child exits mid-call: the gateway logs the transport error.
    let _ = client.call_tool(common::call("crash", json!({}))).await;
    client.cancel().await.unwrap();
    gw.shutdown().await;
    let rpc = std::fs::read_to_string(dir.path().join("rpc-messages.jsonl")).unwrap();
    let last: Value = serde_json::from_str(rpc.lines().last().unwrap()).unwrap();
    assert_eq!(last["direction"], "IN");
    assert_eq!(last["method"], "tools/call");
    assert!(
        last["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{rpc}"
    );
    let backend_log = std::fs::read_to_string(dir.path().join("alpha.log")).unwrap();
    assert!(
        backend_log.contains("[stderr] alpha crashing on request"),
        "{backend_log}"
    );
}
