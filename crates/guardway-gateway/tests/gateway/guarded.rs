//! End to end through the DIFC pipeline: the Python MCP SDK client
//! (tests/python/test_guarded.py) against an in-process gateway whose
//! backends are demo backends behind the sample guard, a trapping guard, a
//! looping guard, a guard that cannot load and no guard.

use crate::common;
use crate::guarded_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use guardway_gateway::config::{GuardConfig, RoutingMode, ServerConfig, ServerTransport};
use guardway_gateway::{Gateway, GuardPipeline};
use guardway_wasm::{GuardOptions, QuarantineOptions};
use serde_json::json;

fn demo_server(call_log: Option<&std::path::Path>) -> ServerConfig {
    let mut server = guarded_support::demo_stdio_server();
    if let (Some(log), ServerTransport::Stdio { env, .. }) = (call_log, &mut server.transport) {
        env.insert(
            "GUARDWAY_DEMO_CALL_LOG".into(),
            log.to_string_lossy().into_owned(),
        );
    }
    server
}

fn guarded(
    mut server: ServerConfig,
    guard: &str,
    policy: Option<serde_json::Value>,
) -> ServerConfig {
    server.guard = Some(guard.to_owned());
    server.guard_policies = policy;
    server
}

fn wasm_guard(path: &std::path::Path) -> GuardConfig {
    GuardConfig {
        kind: "wasm".into(),
        path: Some(path.to_owned()),
        policy: Some(json!({"allow-only": {"repos": "all", "min-integrity": "none"}})),
        config: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_client_through_the_difc_pipeline() {
    common::init_tracing();
    let python = common::python();
    let dir = tempfile::tempdir().unwrap();
    let call_log = dir.path().join("github-calls.jsonl");
    let trap = guarded_support::write_file(
        dir.path(),
        "trap.wasm",
        &guarded_support::wat_guard("unreachable"),
    );
    let looping = guarded_support::write_file(
        dir.path(),
        "loop.wasm",
        &guarded_support::wat_guard("(loop $spin (br $spin)) (i32.const 0)"),
    );
    let servers = BTreeMap::from([
        (
            "github".to_owned(),
            guarded(
                demo_server(Some(&call_log)),
                "sample",
                Some(json!({"allow-only": {"repos": ["octo-org/*"], "min-integrity": "approved"}})),
            ),
        ),
        (
            "github_low".to_owned(),
            guarded(
                demo_server(None),
                "sample",
                Some(json!({"allow-only": {"repos": "all", "min-integrity": "unapproved"}})),
            ),
        ),
        (
            "trapper".to_owned(),
            guarded(demo_server(None), "trap", None),
        ),
        (
            "looper".to_owned(),
            guarded(demo_server(None), "loop", None),
        ),
        (
            "broken".to_owned(),
            guarded(demo_server(None), "missing", None),
        ),
        ("plain".to_owned(), demo_server(None)),
    ]);
    let mut options = common::options(servers, RoutingMode::Routed);
    options.config.guards = BTreeMap::from([
        (
            "sample".to_owned(),
            wasm_guard(&guarded_support::sample_guard()),
        ),
        ("trap".to_owned(), wasm_guard(&trap)),
        ("loop".to_owned(), wasm_guard(&looping)),
        (
            "missing".to_owned(),
            wasm_guard(&dir.path().join("no-such-guard.wasm")),
        ),
    ]);
    // Generous enough for every legitimate guard call on a loaded machine
    // (2 cores, tests in parallel); the looping guard runs into it anyway.
    let guard_options = GuardOptions::default()
        .with_call_timeout(Duration::from_secs(3))
        .with_quarantine(QuarantineOptions {
            failures: 100,
            window: Duration::from_secs(60),
            cool_down: Duration::from_secs(1),
        });
    let pipeline = Arc::new(GuardPipeline::new(&options).with_guard_options(guard_options));
    let gateway = Gateway::start_with_interceptor(options, pipeline.clone())
        .await
        .unwrap();

    let root = common::repo_root();
    let output = tokio::process::Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(root.join("tests/python/test_guarded.py"))
        .env("GUARDED_URL", format!("http://{}", gateway.local_addr()))
        .env("GATEWAY_API_KEY", common::API_KEY)
        .env("DEMO_BACKEND", guarded_support::demo_backend())
        .env("GITHUB_CALL_LOG", &call_log)
        .current_dir(&root)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}\n{stderr}");
    assert!(
        output.status.success(),
        "pytest failed:\n{stdout}\n{stderr}"
    );

    // Counters: the denied write, the filtered list items, guard faults.
    let metrics = pipeline.metrics();
    assert_eq!(
        metrics.counter(
            "guardway_denials_total",
            &["github", "create_issue", "coarse"]
        ),
        1
    );
    assert!(metrics.counter("guardway_filtered_items_total", &["github", "list_issues"]) > 0);
    assert!(
        metrics.counter(
            "guardway_denials_total",
            &["trapper", "list_issues", "guard_error"]
        ) >= 1
    );
    let body = reqwest::get(format!("http://{}/metrics", gateway.local_addr()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("guardway_guard_faults_total{server=\"trapper\",kind=\"trap\"} "));
    // The looping guard was stopped by the call timeout (the agent got
    // the labeling error pytest checks), the others never were.
    let faults = |server: &str, kind: &str| -> u64 {
        let prefix = format!("guardway_guard_faults_total{{server=\"{server}\",kind=\"{kind}\"}} ");
        body.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map(|count| count.trim().parse().unwrap())
            .unwrap_or(0)
    };
    assert!(faults("looper", "timeout") >= 1, "{body}");
    for server in ["github", "github_low", "trapper", "plain"] {
        assert_eq!(faults(server, "timeout"), 0, "{server}: {body}");
    }
    assert!(body.contains("guardway_guard_loaded{server=\"broken\"} 0"));
    assert!(body.contains(
        "guardway_guard_call_duration_seconds_count{server=\"github\",function=\"label_resource\"}"
    ));
    assert!(!body.contains("guardway_guard_faults_total{server=\"trapper\",kind=\"trap\"} 0\n"));
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_guards_makes_a_load_failure_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let servers = BTreeMap::from([(
        "broken".to_owned(),
        guarded(demo_server(None), "missing", None),
    )]);
    let mut options = common::options(servers, RoutingMode::Routed);
    options.config.guards = BTreeMap::from([(
        "missing".to_owned(),
        wasm_guard(&dir.path().join("absent.wasm")),
    )]);
    options.require_guards = true;
    let pipeline = Arc::new(GuardPipeline::new(&options));
    let error = Gateway::start_with_interceptor(options, pipeline)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("broken"), "{error}");
    assert!(error.contains("absent.wasm"), "{error}");
}

/// The `/metrics` body of a running gateway.
async fn metrics_body(gateway: &guardway_gateway::RunningGateway) -> String {
    reqwest::get(format!("http://{}/metrics", gateway.local_addr()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_call_limits_per_session_through_the_python_sdk() {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let call_log = dir.path().join("github-calls.jsonl");
    let servers = BTreeMap::from([(
        "github".to_owned(),
        guarded(
            demo_server(Some(&call_log)),
            "sample",
            Some(
                json!({"allow-only": {"repos": ["octo-org/*"], "min-integrity": "approved",
                "tool-call-limits": {"issue_read": 2, "list_issues": 0}}}),
            ),
        ),
    )]);
    let mut options = common::options(servers, RoutingMode::Routed);
    options.config.guards = BTreeMap::from([(
        "sample".to_owned(),
        wasm_guard(&guarded_support::sample_guard()),
    )]);
    options.enforce_tool_call_limits = true;
    let (gateway, pipeline) = guarded_support::start_guarded(options).await;

    // An approved octo-org/api issue: the first item the filtered list keeps.
    let probe = common::rmcp_client(
        &format!("http://{}/mcp/github", gateway.local_addr()),
        common::API_KEY,
    )
    .await;
    let listed = probe
        .call_tool(common::call(
            "list_issues",
            json!({"owner": "octo-org", "repo": "api", "perPage": 60}),
        ))
        .await
        .unwrap();
    let listed: serde_json::Value = serde_json::from_str(
        listed.content[0]
            .as_text()
            .map(|t| t.text.as_str())
            .unwrap(),
    )
    .unwrap();
    let approved = listed[0]["number"].as_u64().unwrap();
    probe.cancel().await.unwrap();

    let output = tokio::process::Command::new(common::python())
        .arg(guarded_support::limits_client_script())
        .env("GUARDED_URL", format!("http://{}", gateway.local_addr()))
        .env("GATEWAY_API_KEY", common::API_KEY)
        .env("APPROVED_ISSUE", approved.to_string())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "client failed:\n{stdout}\n{stderr}"
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let refused = "0: tool call limit reached for \"issue_read\" (max: 2)";
    let expected = json!(["ok", "ok", refused, "ok", refused]);
    assert_eq!(seen["first"], expected, "{stderr}");
    assert_eq!(seen["second"], expected, "a new session starts from zero");

    // Refused calls never reach the backend: 2 reads per session.
    let log = std::fs::read_to_string(&call_log).unwrap();
    let reads = log.lines().filter(|l| l.contains("\"issue_read\"")).count();
    assert_eq!(reads, 4, "{log}");
    let metrics = pipeline.metrics();
    assert_eq!(
        metrics.counter("guardway_denials_total", &["github", "issue_read", "limit"]),
        4
    );
    let body = metrics_body(&gateway).await;
    assert!(
        body.contains(
            "guardway_denials_total{server=\"github\",tool=\"issue_read\",stage=\"limit\"} 4\n"
        ),
        "{body}"
    );
    gateway.shutdown().await;
}

/// Without `--enforce-tool-call-limits`, as in the reference (difc.md §8
/// quirk 4): the limits stay in a wasm guard's `label_agent` payload, whose
/// validation refuses them, so its calls fail closed; a server with the
/// noop guard enforces the same limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_call_limits_by_default_fail_a_wasm_guard_and_limit_a_noop_server() {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let call_log = dir.path().join("github-calls.jsonl");
    let plain_log = dir.path().join("plain-calls.jsonl");
    let policy = json!({"allow-only": {"repos": "all", "min-integrity": "none",
        "tool-call-limits": {"list_issues": 1}}});
    let servers = BTreeMap::from([
        (
            "github".to_owned(),
            guarded(demo_server(Some(&call_log)), "sample", Some(policy.clone())),
        ),
        (
            "plain".to_owned(),
            guarded(demo_server(Some(&plain_log)), "none", Some(policy)),
        ),
    ]);
    let mut options = common::options(servers, RoutingMode::Routed);
    options.config.guards = BTreeMap::from([
        (
            "sample".to_owned(),
            wasm_guard(&guarded_support::sample_guard()),
        ),
        (
            "none".to_owned(),
            GuardConfig {
                kind: "noop".into(),
                path: None,
                policy: None,
                config: None,
            },
        ),
    ]);
    let (gateway, _) = guarded_support::start_guarded(options).await;
    let list = || common::call("list_issues", json!({"owner": "octo-org", "repo": "api"}));

    let github = common::rmcp_client(
        &format!("http://{}/mcp/github", gateway.local_addr()),
        common::API_KEY,
    )
    .await;
    let error = github.call_tool(list()).await.unwrap_err().to_string();
    assert!(error.contains("tool-call-limits"), "{error}");
    github.cancel().await.unwrap();
    let reached = std::fs::read_to_string(&call_log).unwrap_or_default();
    assert!(!reached.contains("list_issues"), "{reached}");

    let plain = common::rmcp_client(
        &format!("http://{}/mcp/plain", gateway.local_addr()),
        common::API_KEY,
    )
    .await;
    plain.call_tool(list()).await.unwrap();
    let error = plain.call_tool(list()).await.unwrap_err().to_string();
    assert!(
        error.contains("tool call limit reached for \"list_issues\" (max: 1)"),
        "{error}"
    );
    plain.cancel().await.unwrap();
    let reached = std::fs::read_to_string(&plain_log).unwrap();
    assert_eq!(
        reached
            .lines()
            .filter(|l| l.contains("list_issues"))
            .count(),
        1,
        "{reached}"
    );
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_agent_trap_on_a_new_policy_counts_as_a_guard_fault() {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let trap = guarded_support::write_file(
        dir.path(),
        "agent-trap.wasm",
        &guarded_support::wat_guard_with_agent(Some("unreachable"), "(i32.const 0)"),
    );
    let servers = BTreeMap::from([(
        "agent_trap".to_owned(),
        guarded(demo_server(None), "agent_trap", None),
    )]);
    let mut options = common::options(servers, RoutingMode::Routed);
    options.config.guards = BTreeMap::from([("agent_trap".to_owned(), wasm_guard(&trap))]);
    let (gateway, pipeline) = guarded_support::start_guarded(options).await;
    // Start-up tried the policy once; the call tries it again.
    let client = common::rmcp_client(
        &format!("http://{}/mcp/agent_trap", gateway.local_addr()),
        common::API_KEY,
    )
    .await;
    let error = client
        .call_tool(common::call(
            "list_issues",
            json!({"owner": "o", "repo": "r"}),
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("guard session initialization failed: LabelAgent failed:"),
        "{error}"
    );
    client.cancel().await.unwrap();
    let body = metrics_body(&gateway).await;
    assert!(
        body.contains("guardway_guard_faults_total{server=\"agent_trap\",kind=\"trap\"} 2\n"),
        "{body}"
    );
    assert!(
        body.contains("guardway_guard_faults_total{server=\"agent_trap\",kind=\"timeout\"} 0\n"),
        "{body}"
    );
    assert_eq!(
        pipeline.metrics().counter(
            "guardway_denials_total",
            &["agent_trap", "list_issues", "guard_error"]
        ),
        1
    );
    gateway.shutdown().await;
}
