//! `@modelcontextprotocol/server-everything` (Node) as a stdio backend:
//! every tool it lists is listed by the gateway and answers through it as it
//! answers directly, progress notifications included, and a large result.
//! Its sampling, elicitation and roots tools ask the agent during the call:
//! the gateway relays those requests to the agent that made the call.

// Sampling and roots are deprecated in rmcp's model (SEP-2577); servers
// still send them, and the test agent answers them.
#![allow(deprecated)]

use crate::common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use guardway_gateway::config::RoutingMode;
use guardway_gateway::{Gateway, normalize_input_schema};
use rmcp::model::{
    CallToolResult, ClientCapabilities, ClientConfig, CreateMessageRequestParams,
    CreateMessageResult, ElicitRequestParams, ElicitResult, ElicitationAction, ErrorData,
    FormElicitationCapability, Implementation, ListRootsResult, Root, SamplingMessage, Tool,
    UrlElicitationCapability,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};

fn everything_command() -> (String, Vec<String>) {
    (
        "node".to_owned(),
        vec![
            common::everything_server().to_string_lossy().into_owned(),
            "stdio".to_owned(),
        ],
    )
}

/// An agent that answers the server's requests the same way whether it
/// talks to the server directly or through the gateway, and remembers what
/// it was asked. It declares what the gateway declares to its backends
/// (sampling, elicitation in form and url modes, roots): server-everything
/// lists its sampling, elicitation and roots tools only to clients that
/// declare them, so both sides see the same tools.
#[derive(Clone, Default)]
struct AnsweringAgent {
    asked: Arc<Mutex<Vec<&'static str>>>,
}

impl AnsweringAgent {
    fn asked(&self) -> Vec<&'static str> {
        self.asked.lock().unwrap().clone()
    }

    fn note(&self, method: &'static str) {
        self.asked.lock().unwrap().push(method);
    }
}

impl ClientHandler for AnsweringAgent {
    fn get_info(&self) -> ClientConfig {
        let mut capabilities = ClientCapabilities::builder()
            .enable_roots()
            .enable_sampling()
            .enable_elicitation()
            .build();
        if let Some(elicitation) = capabilities.elicitation.as_mut() {
            elicitation.form = Some(FormElicitationCapability::new());
            elicitation.url = Some(UrlElicitationCapability::new());
        }
        ClientConfig::new(capabilities, Implementation::new("everything-test", "1.0"))
    }

    async fn create_message(
        &self,
        _params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        self.note("sampling/createMessage");
        Ok(CreateMessageResult::new(
            SamplingMessage::assistant_text("sampled by the agent"),
            "agent-model".to_owned(),
        )
        .with_stop_reason("endTurn"))
    }

    async fn create_elicitation(
        &self,
        _params: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        self.note("elicitation/create");
        // Not rmcp's default answer (decline): only the agent gives this one.
        Ok(ElicitResult::new(ElicitationAction::Cancel))
    }

    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        self.note("roots/list");
        Ok(ListRootsResult::new(vec![
            Root::new("file:///work/agent-root").with_name("agent root"),
        ]))
    }
}

/// A client of server-everything run directly, whose progress goes to
/// `log` as its transport reads it.
async fn direct_client(
    log: &common::ProgressLog,
    agent: AnsweringAgent,
) -> RunningService<RoleClient, AnsweringAgent> {
    let (command, args) = everything_command();
    let mut cmd = tokio::process::Command::new(command);
    cmd.args(args);
    let (transport, _stderr) = TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    agent.serve(log.wrap(transport)).await.unwrap()
}

/// Incompressible bytes (so the gzip result stays large), deterministic.
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

const LARGE_INPUT_BYTES: usize = 1_500_000;

/// Arguments for one tool: fixed ones for the tools that need them, else
/// the schema's required properties filled from their types.
fn arguments_for(tool: &Tool) -> Value {
    match tool.name.as_ref() {
        "echo" => json!({"message": "hello through the gateway"}),
        "get-sum" => json!({"a": 2, "b": 40}),
        "trigger-url-elicitation" => json!({
            "url": "https://example.com/confirm",
            "elicitationId": "everything-test",
        }),
        "trigger-long-running-operation" => json!({"duration": 1, "steps": 4}),
        "gzip-file-as-resource" => json!({
            "name": "noise.gz",
            "data": format!("data:application/octet-stream;base64,{}", base64(&noise(LARGE_INPUT_BYTES))),
            "outputType": "resource",
        }),
        _ => {
            let schema = Value::Object((*tool.input_schema).clone());
            let mut args = serde_json::Map::new();
            let required = schema["required"].as_array().cloned().unwrap_or_default();
            for name in required.iter().filter_map(Value::as_str) {
                let prop = &schema["properties"][name];
                let value = if let Some(first) = prop["enum"].as_array().and_then(|e| e.first()) {
                    first.clone()
                } else {
                    match prop["type"].as_str() {
                        Some("number") | Some("integer") => json!(1),
                        Some("boolean") => json!(false),
                        Some("array") => json!([]),
                        Some("object") => json!({}),
                        _ => json!("test"),
                    }
                };
                args.insert(name.to_owned(), value);
            }
            Value::Object(args)
        }
    }
}

/// Replaces clock times (`3:43:09 PM`, `15:43:09`) by `<time>`: the
/// server stamps some resources with their creation time.
fn mask_times(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        let mut j = i;
        while j < chars.len() && chars[j].is_ascii_digit() {
            j += 1;
        }
        let mut groups = 0;
        while j > start
            && j + 2 < chars.len()
            && chars[j] == ':'
            && chars[j + 1].is_ascii_digit()
            && chars[j + 2].is_ascii_digit()
        {
            j += 3;
            groups += 1;
        }
        if j > start && groups >= 2 {
            let rest: String = chars[j..].iter().take(3).collect();
            if rest == " AM" || rest == " PM" {
                j += 3;
            }
            out.push_str("<time>");
            i = j;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn mask(value: &mut Value) {
    match value {
        Value::String(s) => *s = mask_times(s),
        Value::Array(items) => items.iter_mut().for_each(mask),
        Value::Object(map) => map.values_mut().for_each(mask),
        _ => {}
    }
}

/// A result as JSON without what legitimately differs per peer or per call.
fn comparable(result: &CallToolResult) -> Value {
    let mut value = serde_json::to_value(result).unwrap();
    if let Some(map) = value.as_object_mut() {
        map.remove("resultType");
        map.remove("_meta");
    }
    mask(&mut value);
    value
}

#[test]
fn time_masking() {
    assert_eq!(mask_times("created at 3:43:09 PM."), "created at <time>.");
    assert_eq!(mask_times("at 15:43:09 and 42"), "at <time> and 42");
    assert_eq!(mask_times("ratio 3:4"), "ratio 3:4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tool_of_server_everything_works_through_the_gateway() {
    common::init_tracing();
    let (command, args) = everything_command();
    let mut server = common::stdio_server(command, args);
    server.tool_timeout = Some(std::time::Duration::from_secs(30));
    let gw = Gateway::start(common::options(
        BTreeMap::from([("everything".to_owned(), server)]),
        RoutingMode::Routed,
    ))
    .await
    .unwrap();
    let direct_progress = common::ProgressLog::default();
    let direct_agent = AnsweringAgent::default();
    let direct = direct_client(&direct_progress, direct_agent.clone()).await;
    let via_progress = common::ProgressLog::default();
    let via_agent = AnsweringAgent::default();
    let via = common::progress_logging_agent_with(
        &format!("http://{}/mcp/everything", gw.local_addr()),
        None,
        &via_progress,
        via_agent.clone(),
    )
    .await;

    let direct_tools = direct.list_all_tools().await.unwrap();
    let via_tools: BTreeMap<String, Tool> = via
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.name.to_string(), t))
        .collect();
    assert!(
        direct_tools.len() >= 10,
        "server-everything lists {} tools",
        direct_tools.len()
    );
    assert_eq!(via_tools.len(), direct_tools.len());
    for tool in &direct_tools {
        let shown = &via_tools[tool.name.as_ref()];
        assert_eq!(
            shown.description.as_deref().unwrap_or_default(),
            format!(
                "[everything] {}",
                tool.description.as_deref().unwrap_or_default()
            )
        );
        assert_eq!(
            *shown.input_schema,
            normalize_input_schema(&tool.input_schema)
        );
        assert_eq!(shown.annotations, tool.annotations);
        assert_eq!(shown.output_schema, tool.output_schema);
    }

    let mut compared = 0;
    for tool in &direct_tools {
        let args = arguments_for(tool);
        let params = common::call(&tool.name, args);
        let expected = direct.call_tool(params.clone()).await;
        let got = via.call_tool(params).await;
        match (expected, got) {
            (Ok(expected), Ok(got)) => {
                assert_eq!(
                    comparable(&got),
                    comparable(&expected),
                    "tool {}",
                    tool.name
                );
                compared += 1;
            }
            (Err(expected), Err(got)) => {
                let (expected, got) = (common::mcp_error(expected), common::mcp_error(got));
                assert_eq!(got.code.0, 0, "tool {}", tool.name);
                println!("{}: error both ways: {}", tool.name, expected.message);
                assert!(
                    got.message.contains(expected.message.as_ref()),
                    "tool {}: {} vs {}",
                    tool.name,
                    got.message,
                    expected.message
                );
            }
            (expected, got) => panic!(
                "tool {}: direct {expected:?}, via gateway {got:?}",
                tool.name
            ),
        }
    }
    println!(
        "{compared} of {} tools answered identically",
        direct_tools.len()
    );
    assert!(compared >= 8, "only {compared} tools answered successfully");

    // The server's requests during the calls reached the agent through the
    // gateway, one each, as they reach a direct client; the gateway left
    // none pending.
    let mut via_asked = via_agent.asked();
    via_asked.sort_unstable();
    assert_eq!(
        via_asked,
        [
            "elicitation/create",
            "elicitation/create",
            "roots/list",
            "sampling/createMessage"
        ],
        "asked through the gateway (direct: {:?})",
        direct_agent.asked()
    );
    assert_eq!(gw.pending_relayed_requests(), 0);

    // The long-running operation's progress reached the agent, under the
    // agent's token, as often as it reaches a direct client.
    // Counted as each transport read them, so all are in by the time the
    // call returned.
    let steps =
        |seen: Vec<(f64, Option<f64>)>| seen.iter().filter(|(_, t)| *t == Some(4.0)).count();
    assert_eq!(steps(direct_progress.take_with_totals()), 4);
    assert_eq!(steps(via_progress.take_with_totals()), 4);
    assert_eq!(gw.pending_progress_routes(), 0);

    // The large result really was large.
    let big = via
        .call_tool(common::call(
            "gzip-file-as-resource",
            arguments_for(
                direct_tools
                    .iter()
                    .find(|t| t.name == "gzip-file-as-resource")
                    .unwrap(),
            ),
        ))
        .await
        .unwrap();
    assert!(serde_json::to_string(&big).unwrap().len() > LARGE_INPUT_BYTES);

    // Prompts pass through too (routed).
    let direct_prompts: Vec<String> = direct
        .list_all_prompts()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    let via_prompts: Vec<String> = via
        .list_all_prompts()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(via_prompts, direct_prompts);

    direct.cancel().await.unwrap();
    via.cancel().await.unwrap();
    gw.shutdown().await;
}
