//! What the gateway relays besides tool calls, driven by the official
//! Python MCP SDK as the agent (tests/python/test_relay.py): the backend's
//! requests to the agent during a tool call (sampling, elicitation, roots,
//! ping) answered by the agent's callbacks, completions, and resource
//! subscriptions with their updates. Routed and unified gateways in front
//! of the conformance backend (tests/python/backends/conformance_server.py)
//! over stdio and over streamable HTTP; and the same sampling relay inside
//! a guarded call.

use crate::common;
use crate::guarded_support;

use std::collections::BTreeMap;

use guardway_gateway::Gateway;
use guardway_gateway::config::{GuardConfig, RoutingMode, ServerConfig, ServerTransport};
use serde_json::json;

/// The conformance backend over stdio.
fn stdio_backend() -> ServerConfig {
    common::stdio_server(
        common::python().to_string_lossy().into_owned(),
        vec![
            common::repo_root()
                .join("tests/python/backends/conformance_server.py")
                .to_string_lossy()
                .into_owned(),
            "stdio".to_owned(),
        ],
    )
}

/// The conformance backend at `url` (streamable HTTP).
fn http_backend(url: String) -> ServerConfig {
    let mut server = common::stdio_server(String::new(), Vec::new());
    server.transport = ServerTransport::Http {
        url,
        headers: BTreeMap::new(),
    };
    server
}

/// Runs `tests/python/<file>` with pytest, the gateways' URLs in its
/// environment; fails the test with pytest's output when it fails.
async fn pytest(file: &str, select: &str, env: &[(&str, String)]) {
    let root = common::repo_root();
    let output = tokio::process::Command::new(common::python())
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", select])
        .arg(root.join("tests/python").join(file))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_agent_gets_backend_requests_completions_and_updates() {
    common::init_tracing();
    let backend = common::PythonBackend::start("conformance_server.py", &["streamable-http"]).await;
    let servers = || {
        BTreeMap::from([
            ("stdio".to_owned(), stdio_backend()),
            ("http".to_owned(), http_backend(backend.url("/mcp"))),
        ])
    };
    let routed = Gateway::start(common::options(servers(), RoutingMode::Routed))
        .await
        .unwrap();
    let unified = Gateway::start(common::options(servers(), RoutingMode::Unified))
        .await
        .unwrap();
    pytest(
        "test_relay.py",
        "not guarded",
        &[
            (
                "RELAY_ROUTED_URL",
                format!("http://{}", routed.local_addr()),
            ),
            (
                "RELAY_UNIFIED_URL",
                format!("http://{}", unified.local_addr()),
            ),
            ("RELAY_API_KEY", common::API_KEY.to_owned()),
        ],
    )
    .await;
    // Every relayed request ended with its call.
    assert_eq!(routed.pending_relayed_requests(), 0);
    assert_eq!(unified.pending_relayed_requests(), 0);
    routed.shutdown().await;
    unified.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guarded_call_relays_the_backends_requests() {
    common::init_tracing();
    let mut server = stdio_backend();
    server.guard = Some("sample".to_owned());
    server.guard_policies =
        Some(json!({"allow-only": {"repos": "public", "min-integrity": "none"}}));
    let mut options = common::options(
        BTreeMap::from([("guarded".to_owned(), server)]),
        RoutingMode::Routed,
    );
    options.config.guards = BTreeMap::from([(
        "sample".to_owned(),
        GuardConfig {
            kind: "wasm".into(),
            path: Some(guarded_support::sample_guard()),
            policy: None,
            config: None,
        },
    )]);
    let (gateway, pipeline) = guarded_support::start_guarded(options).await;
    pytest(
        "test_relay.py",
        "guarded",
        &[
            (
                "RELAY_GUARDED_URL",
                format!("http://{}", gateway.local_addr()),
            ),
            ("RELAY_API_KEY", common::API_KEY.to_owned()),
        ],
    )
    .await;
    // Both calls went through the guard.
    let mut metrics = String::new();
    pipeline.metrics().render(&mut metrics);
    for tool in ["test_sampling", "test_elicitation"] {
        assert!(
            metrics.contains(&format!("tool=\"{tool}\"")),
            "{tool} did not go through the guard:\n{metrics}"
        );
    }
    assert_eq!(gateway.pending_relayed_requests(), 0);
    gateway.shutdown().await;
}
