//! Post-DIFC result processing end to end (gateway.md §6.2 step 8): the
//! official Python MCP SDK client calls the demo backend through gateways
//! configured from TOML with jq `tool_response_filters` (a reshaping filter,
//! a filter failing at run time, a filter that makes a large result small
//! enough to stay inline) and a payload threshold small enough for list
//! results to be spilled; plus filters refused at configuration load.

use crate::common;
use crate::guarded_support;

use std::path::Path;

use guardway_gateway::config::{Environment, RoutingMode, ServeOptions, parse_toml};
use guardway_gateway::postprocess::{PAYLOAD_INSTRUCTIONS, payload_preview, payload_schema};
use guardway_gateway::{Gateway, RunningGateway};
use serde_json::{Value, json};

/// Calls one tool with the Python MCP SDK client and prints the result as JSON.
const PYTHON_CALL: &str = r#"
import asyncio, json, sys
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

async def main():
    url, key, agent, tool, args = sys.argv[1:6]
    headers = {"Authorization": key, "X-Agent-Id": agent}
    async with streamablehttp_client(url, headers=headers) as (r, w, _):
        async with ClientSession(r, w) as session:
            await session.initialize()
            result = await session.call_tool(tool, json.loads(args))
            print(json.dumps(result.model_dump(mode="json", by_alias=True, exclude_none=True)))

asyncio.run(main())
"#;

const AGENT: &str = "agent-post";

/// The result of `tool` on `server` as the Python SDK client sees it.
async fn python_call(gw: &RunningGateway, server: &str, tool: &str, args: Value) -> Value {
    let output = tokio::process::Command::new(common::python())
        .arg("-c")
        .arg(PYTHON_CALL)
        .arg(format!("http://{}/mcp/{server}", gw.local_addr()))
        .arg(common::API_KEY)
        .arg(AGENT)
        .arg(tool)
        .arg(args.to_string())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python client failed:\n{stdout}\n{stderr}"
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

/// The JSON of the first text item of a result.
fn first_text_json(result: &Value) -> Value {
    serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap()
}

/// A TOML configuration with `servers` (TOML tables) after a gateway section.
fn toml_config(gateway_extra: &str, servers: &str) -> String {
    format!(
        "[gateway]\nagent_id = \"{key}\"\n{gateway_extra}\n{servers}",
        key = common::API_KEY
    )
}

fn demo_server_table(id: &str, filters: &[(&str, &str)]) -> String {
    let command = guarded_support::demo_backend();
    let mut table = format!(
        "[servers.{id}]\ncommand = {command:?}\nargs = []\n",
        command = command.to_string_lossy()
    );
    if !filters.is_empty() {
        table.push_str(&format!("[servers.{id}.tool_response_filters]\n"));
        for (tool, expression) in filters {
            table.push_str(&format!("{tool} = {}\n", toml_string(expression)));
        }
    }
    table
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

async fn start(text: &str, log_dir: &Path) -> RunningGateway {
    let parsed = parse_toml(
        text,
        &Environment::from_pairs(Vec::<(String, String)>::new()),
    )
    .unwrap_or_else(|e| panic!("configuration refused: {e}"));
    let mut options = ServeOptions::new(parsed.config);
    options.listen = "127.0.0.1:0".parse().unwrap();
    options.mode = RoutingMode::Routed;
    options.log_dir = log_dir.to_owned();
    options.no_wasm_cache = true;
    Gateway::start(options).await.unwrap()
}

const RESHAPE: &str = "{total: .totalCount, open: [.issues[] | select(.state == \"OPEN\") | .number], titles: (.issues | map(.title) | .[:2])}";

/// What `RESHAPE` computes, written out in Rust.
fn reshape(list: &Value) -> Value {
    let issues = list["issues"].as_array().unwrap();
    json!({
        "total": list["totalCount"],
        "open": issues.iter().filter(|i| i["state"] == "OPEN").map(|i| i["number"].clone()).collect::<Vec<_>>(),
        "titles": issues.iter().take(2).map(|i| i["title"].clone()).collect::<Vec<_>>(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jq_filters_reshape_results_and_fall_back_when_they_fail() {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let servers = format!(
        "{}{}",
        demo_server_table(
            "github",
            &[
                ("list_issues", RESHAPE),
                ("search_issues", "error(\"no search today\")"),
                ("issue_read", ".[]"),
            ],
        ),
        demo_server_table("raw", &[]),
    );
    let gw = start(&toml_config("", &servers), &dir.path().join("logs")).await;
    let args = json!({"owner": "octo-org", "repo": "api", "perPage": 10, "state": "all"});

    let raw = python_call(&gw, "raw", "list_issues", args.clone()).await;
    let filtered = python_call(&gw, "github", "list_issues", args).await;
    let raw_list = first_text_json(&raw);
    assert_eq!(raw_list["issues"].as_array().unwrap().len(), 10);
    // The exact text: the filter's output as compact JSON, keys in order.
    assert_eq!(
        filtered["content"][0]["text"].as_str().unwrap(),
        reshape(&raw_list).to_string()
    );
    assert_eq!(filtered["content"].as_array().unwrap().len(), 1);
    assert_eq!(filtered["isError"], json!(false));

    // A filter that fails at run time (error, several outputs): unfiltered.
    let search = json!({"query": "repo:octo-org/api is:issue", "perPage": 5});
    let raw_search = python_call(&gw, "raw", "search_issues", search.clone()).await;
    let unfiltered = python_call(&gw, "github", "search_issues", search).await;
    assert_eq!(unfiltered, raw_search);
    let read = json!({"method": "get", "owner": "octo-org", "repo": "api", "issue_number": 1});
    let raw_read = python_call(&gw, "raw", "issue_read", read.clone()).await;
    assert_eq!(
        python_call(&gw, "github", "issue_read", read).await,
        raw_read
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_results_are_spilled_after_the_filter() {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let payloads = dir.path().join("payloads");
    let gateway = format!(
        "payload_dir = {}\npayload_path_prefix = \"/workspace/payloads\"\npayload_size_threshold = 4000\n",
        toml_string(&payloads.to_string_lossy())
    );
    let servers = format!(
        "{}{}",
        demo_server_table(
            "github",
            &[("list_issues", "{numbers: [.issues[].number]}")]
        ),
        demo_server_table("raw", &[]),
    );
    let spilling = start(&toml_config(&gateway, &servers), &dir.path().join("logs")).await;
    let inline = start(
        &toml_config("", &demo_server_table("raw", &[])),
        &dir.path().join("logs2"),
    )
    .await;
    let args = json!({"owner": "octo-org", "repo": "api", "perPage": 30, "state": "all"});

    let original = python_call(&inline, "raw", "list_issues", args.clone()).await;
    let original_json = serde_json::to_string(&original).unwrap();
    assert!(original_json.len() > 4000, "{}", original_json.len());

    let spilled = python_call(&spilling, "raw", "list_issues", args.clone()).await;
    let content = spilled["content"].as_array().unwrap();
    assert_eq!(content.len(), 1, "{spilled}");
    let item = first_text_json(&spilled);
    let keys: Vec<&str> = item
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "agentInstructions",
            "payloadPath",
            "payloadPreview",
            "payloadSchema",
            "originalSize"
        ]
    );
    assert_eq!(item["agentInstructions"], PAYLOAD_INSTRUCTIONS);

    // <payloadDir>/<agent>/<32 hex>/payload.json, reported under the prefix.
    let agent_dir = payloads.join(AGENT);
    let ids: Vec<String> = std::fs::read_dir(&agent_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let id = &ids[0];
    assert_eq!(id.len(), 32);
    assert!(
        id.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_eq!(
        item["payloadPath"],
        format!("/workspace/payloads/{AGENT}/{id}/payload.json")
    );
    let file = agent_dir.join(id).join("payload.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&agent_dir.join(id)), 0o700);
        assert_eq!(mode(&agent_dir), 0o700);
    }
    let written = std::fs::read_to_string(&file).unwrap();
    let mut stored: Value = serde_json::from_str(&written).unwrap();
    // The protocol-level `resultType` is not part of what the agent saw.
    if let Some(map) = stored.as_object_mut() {
        map.remove("resultType");
    }
    assert_eq!(stored, original);
    assert_eq!(item["originalSize"], written.len());
    assert_eq!(item["payloadPreview"], payload_preview(&written));
    assert!(item["payloadPreview"].as_str().unwrap().ends_with("..."));
    assert_eq!(
        item["payloadSchema"],
        payload_schema(&serde_json::from_str(&written).unwrap())
    );
    assert_eq!(
        item["payloadSchema"]["content"],
        json!([{"type": "string", "text": "string"}])
    );

    // The filter runs first: its small output stays inline, no new file.
    let filtered = python_call(&spilling, "github", "list_issues", args).await;
    let numbers = first_text_json(&filtered)["numbers"].clone();
    let expected: Vec<Value> = first_text_json(&original)["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["number"].clone())
        .collect();
    assert_eq!(numbers, Value::Array(expected));
    assert_eq!(std::fs::read_dir(&agent_dir).unwrap().count(), 1);

    // A small result is returned as it is.
    let read = json!({"method": "get", "owner": "octo-org", "repo": "api", "issue_number": 1});
    let small = python_call(&spilling, "raw", "issue_read", read.clone()).await;
    assert_eq!(small, python_call(&inline, "raw", "issue_read", read).await);
    assert_eq!(std::fs::read_dir(&agent_dir).unwrap().count(), 1);

    spilling.shutdown().await;
    inline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_payload_directory_leaves_results_inline() {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, "x").unwrap();
    let gateway = format!(
        "payload_dir = {}\npayload_size_threshold = 1000\n",
        toml_string(&blocker.to_string_lossy())
    );
    let gw = start(
        &toml_config(&gateway, &demo_server_table("raw", &[])),
        &dir.path().join("logs"),
    )
    .await;
    let args = json!({"owner": "octo-org", "repo": "api", "perPage": 20});
    let result = python_call(&gw, "raw", "list_issues", args).await;
    assert_eq!(
        first_text_json(&result)["issues"].as_array().unwrap().len(),
        20
    );
    gw.shutdown().await;
}

#[test]
fn broken_filters_are_refused_at_load_with_their_field_path() {
    let env = Environment::from_pairs(Vec::<(String, String)>::new());
    let toml = toml_config(
        "",
        "[servers.github]\ncommand = \"x\"\n[servers.github.tool_response_filters]\nlist_issues = \".issues | map(.number\"\n",
    );
    let error = parse_toml(&toml, &env).unwrap_err().to_string();
    assert!(
        error.contains(
            "Configuration error at servers.github.tool_response_filters.list_issues: invalid jq expression for tool 'list_issues': unclosed '(': expected closing parenthesis at column 22"
        ),
        "{error}"
    );

    let json_config = json!({
        "gateway": {"port": 8080, "domain": "localhost", "agentId": "key"},
        "mcpServers": {"github": {"container": "img", "tool_response_filters": {
            "search_issues": ".items | no_such_function",
            "list_issues": "env.GITHUB_TOKEN",
        }}},
    });
    let error = guardway_gateway::config::parse_json(&json_config.to_string(), &env)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(
            "mcpServers.github.tool_response_filters.search_issues: invalid jq expression for tool 'search_issues': undefined filter 'no_such_function/0'"
        ),
        "{error}"
    );
    assert!(
        error.contains(
            "mcpServers.github.tool_response_filters.list_issues: invalid jq expression for tool 'list_issues': undefined filter 'env/0'"
        ),
        "{error}"
    );
}
