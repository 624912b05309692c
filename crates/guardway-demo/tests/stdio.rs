//! The demo backend as a real child process, spoken to over stdio with
//! rmcp's client: tool listing, GitHub result shapes, pagination, writes,
//! large results, errors and the call log.

use std::path::Path;

use rmcp::RoleClient;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock, ResourceContents};
use rmcp::service::RunningService;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::{Value, json};

type Client = RunningService<RoleClient, ()>;

async fn start(call_log: Option<&Path>) -> Client {
    let command = tokio::process::Command::new(env!("CARGO_BIN_EXE_guardway-demo-backend"))
        .configure(|cmd| {
            cmd.env_remove("GUARDWAY_DEMO_CALL_LOG");
            if let Some(path) = call_log {
                cmd.env("GUARDWAY_DEMO_CALL_LOG", path);
            }
        });
    ().serve(TokioChildProcess::new(command).unwrap())
        .await
        .unwrap()
}

async fn call(client: &Client, tool: &'static str, args: Value) -> CallToolResult {
    let Value::Object(args) = args else {
        panic!("arguments must be an object")
    };
    client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(args))
        .await
        .unwrap()
}

/// The JSON in the result's first text block.
fn text_json(result: &CallToolResult) -> Value {
    assert_ne!(result.is_error, Some(true), "tool error: {result:?}");
    match &result.content[0] {
        ContentBlock::Text(text) => serde_json::from_str(&text.text).unwrap(),
        other => panic!("not text: {other:?}"),
    }
}

fn error_text(result: &CallToolResult) -> String {
    assert_eq!(result.is_error, Some(true));
    match &result.content[0] {
        ContentBlock::Text(text) => text.text.clone(),
        other => panic!("not text: {other:?}"),
    }
}

#[tokio::test]
async fn lists_the_github_tools_with_input_schemas() {
    let client = start(None).await;
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for expected in [
        "issue_read",
        "list_issues",
        "search_issues",
        "pull_request_read",
        "list_pull_requests",
        "get_file_contents",
        "list_commits",
        "get_commit",
        "search_repositories",
        "search_code",
        "create_issue",
        "issue_write",
        "add_issue_comment",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let issue_read = tools.iter().find(|t| t.name == "issue_read").unwrap();
    assert_eq!(issue_read.input_schema["type"], "object");
    assert_eq!(
        issue_read.input_schema["required"],
        json!(["method", "owner", "repo", "issue_number"])
    );
    assert_eq!(
        issue_read.annotations.as_ref().unwrap().read_only_hint,
        Some(true)
    );
    let create = tools.iter().find(|t| t.name == "create_issue").unwrap();
    assert_eq!(
        create.annotations.as_ref().unwrap().read_only_hint,
        Some(false)
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn issue_read_returns_a_github_shaped_issue() {
    let client = start(None).await;
    let result = call(
        &client,
        "issue_read",
        json!({"method": "get", "owner": "octo-org", "repo": "secret", "issue_number": 4}),
    )
    .await;
    let issue = text_json(&result);
    assert_eq!(issue["number"], 4);
    assert_eq!(issue["user"]["login"], "bob");
    assert_eq!(issue["author_association"], "CONTRIBUTOR");
    assert_eq!(
        issue["html_url"],
        "https://github.com/octo-org/secret/issues/4"
    );
    assert!(issue["labels"].is_array());
    let repos = text_json(
        &call(
            &client,
            "search_repositories",
            json!({"query": "repo:octo-org/secret"}),
        )
        .await,
    );
    assert_eq!(repos["total_count"], 1);
    assert_eq!(repos["items"][0]["full_name"], "octo-org/secret");
    assert_eq!(repos["items"][0]["private"], true);
    assert_eq!(repos["items"][0]["visibility"], "private");
    assert_eq!(repos["items"][0]["owner"]["login"], "octo-org");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn list_issues_and_search_paginate() {
    let client = start(None).await;
    let mut numbers = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut args = json!({"owner": "octo-org", "repo": "api", "perPage": 50});
        if let Some(cursor) = &after {
            args["after"] = json!(cursor);
        }
        let page = text_json(&call(&client, "list_issues", args).await);
        pages += 1;
        numbers.extend(
            page["issues"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["number"].as_u64().unwrap()),
        );
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = Some(page["pageInfo"]["endCursor"].as_str().unwrap().to_owned());
    }
    assert_eq!(pages, 3);
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), 150);

    let first = text_json(
        &call(
            &client,
            "search_issues",
            json!({"query": "repo:octo-org/api", "perPage": 100}),
        )
        .await,
    );
    let second = text_json(
        &call(
            &client,
            "search_issues",
            json!({"query": "repo:octo-org/api", "perPage": 100, "page": 2}),
        )
        .await,
    );
    assert_eq!(first["total_count"], 150);
    assert_eq!(first["items"].as_array().unwrap().len(), 100);
    assert_eq!(second["items"].as_array().unwrap().len(), 50);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn large_results_reach_the_client_whole() {
    let client = start(None).await;
    let result = call(
        &client,
        "get_file_contents",
        json!({"owner": "octo-org", "repo": "api", "path": "data/large.json"}),
    )
    .await;
    assert_ne!(result.is_error, Some(true));
    let ContentBlock::Resource(resource) = &result.content[1] else {
        panic!("no resource block")
    };
    let ResourceContents::TextResourceContents { text, .. } = &resource.resource else {
        panic!("not text")
    };
    assert!(text.len() >= 1024 * 1024);
    assert!(serde_json::from_str::<Value>(text).unwrap().is_array());

    let page = call(
        &client,
        "list_issues",
        json!({"owner": "octo-org", "repo": "firehose", "perPage": 100}),
    )
    .await;
    let ContentBlock::Text(text) = &page.content[0] else {
        panic!("not text")
    };
    assert!(
        text.text.len() >= 1024 * 1024,
        "page of {} bytes",
        text.text.len()
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn writes_change_what_later_reads_see() {
    let client = start(None).await;
    let created = text_json(
        &call(
            &client,
            "create_issue",
            json!({"owner": "acme", "repo": "internal", "title": "Rotate keys", "body": "soon"}),
        )
        .await,
    );
    let number = created["number"].as_u64().unwrap();
    assert_eq!(created["user"]["login"], "octocat");
    text_json(
        &call(
            &client,
            "add_issue_comment",
            json!({"owner": "acme", "repo": "internal", "issue_number": number, "body": "done"}),
        )
        .await,
    );
    let comments = text_json(&call(&client, "issue_read",
        json!({"method": "get_comments", "owner": "acme", "repo": "internal", "issue_number": number})).await);
    assert_eq!(comments[0]["body"], "done");
    let closed = text_json(&call(&client, "issue_write",
        json!({"method": "update", "owner": "acme", "repo": "internal", "issue_number": number, "state": "closed"})).await);
    assert_eq!(closed["state"], "closed");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn bad_calls_are_tool_errors_and_unknown_tools_protocol_errors() {
    let client = start(None).await;
    let missing = call(
        &client,
        "issue_read",
        json!({"method": "get", "owner": "nobody", "repo": "x", "issue_number": 1}),
    )
    .await;
    assert!(error_text(&missing).contains("404 Not Found"));
    let bad = call(&client, "list_issues", json!({"owner": "octo-org"})).await;
    assert_eq!(error_text(&bad), "missing required parameter: repo");
    let unknown = client
        .call_tool(CallToolRequestParams::new("no_such_tool"))
        .await;
    assert!(unknown.is_err());
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn call_log_records_every_call_as_one_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.jsonl");
    let client = start(Some(&log)).await;
    call(
        &client,
        "issue_read",
        json!({"method": "get", "owner": "acme", "repo": "web", "issue_number": 2}),
    )
    .await;
    call(
        &client,
        "create_issue",
        json!({"owner": "acme", "repo": "web", "title": "x"}),
    )
    .await;
    let _ = client
        .call_tool(CallToolRequestParams::new("no_such_tool"))
        .await;
    // Listing tools is not a call.
    client.list_all_tools().await.unwrap();
    client.cancel().await.unwrap();
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        lines,
        vec![
            json!({"tool": "issue_read", "arguments": {"method": "get", "owner": "acme", "repo": "web", "issue_number": 2}}),
            json!({"tool": "create_issue", "arguments": {"owner": "acme", "repo": "web", "title": "x"}}),
            json!({"tool": "no_such_tool", "arguments": {}}),
        ]
    );
}
