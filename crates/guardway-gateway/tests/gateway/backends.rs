//! Backend kinds and recovery: a streamable-HTTP backend (another gateway,
//! reached with static headers), a stdio backend whose first launch fails
//! and which is relaunched on use, announcing its tools to agents, and
//! progress reaching the agent in order and before the result over both.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use guardway_gateway::config::{RoutingMode, ServerTransport};
use guardway_gateway::{BackendStatus, Gateway};
use rmcp::service::NotificationContext;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::json;

/// Counts list-changed notifications.
#[derive(Clone, Default)]
struct Counter {
    tools_changed: Arc<AtomicUsize>,
}

impl ClientHandler for Counter {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.tools_changed.fetch_add(1, Ordering::SeqCst);
    }
}

async fn client_with(
    url: &str,
    handler: Counter,
) -> rmcp::service::RunningService<RoleClient, Counter> {
    let headers = std::collections::HashMap::from([(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_static(common::API_KEY),
    )]);
    handler
        .serve(StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(url).custom_headers(headers),
        ))
        .await
        .unwrap()
}

fn http_server(url: String, key: &str) -> guardway_gateway::config::ServerConfig {
    let mut server = common::stdio_server(String::new(), vec![]);
    server.transport = ServerTransport::Http {
        url,
        headers: BTreeMap::from([("Authorization".to_owned(), key.to_owned())]),
    };
    server.connect_timeout = Duration::from_secs(10);
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamable_http_backend_with_headers() {
    common::init_tracing();
    let inner = Gateway::start(common::options(
        BTreeMap::from([("alpha".to_owned(), common::echo_backend("alpha"))]),
        RoutingMode::Routed,
    ))
    .await
    .unwrap();
    let inner_url = format!("http://{}/mcp/alpha", inner.local_addr());
    let outer = Gateway::start(common::options(
        BTreeMap::from([
            (
                "remote".to_owned(),
                http_server(inner_url.clone(), common::API_KEY),
            ),
            ("badkey".to_owned(), http_server(inner_url, "wrong-key")),
        ]),
        RoutingMode::Routed,
    ))
    .await
    .unwrap();
    assert_eq!(
        outer.backend("remote").unwrap().health().status,
        BackendStatus::Running
    );
    // The inner gateway refused the wrong key, so that backend is in error.
    assert_eq!(
        outer.backend("badkey").unwrap().health().status,
        BackendStatus::Error
    );

    let progress = common::ProgressLog::default();
    let agent = common::progress_logging_client(
        &format!("http://{}/mcp/remote", outer.local_addr()),
        &progress,
    )
    .await;
    let tools = agent.list_all_tools().await.unwrap();
    let echo = tools.iter().find(|t| t.name == "echo").unwrap();
    assert_eq!(
        echo.description.as_deref(),
        Some("[remote] [alpha] Echo the text back, tagged with the server name.")
    );
    let r = agent
        .call_tool(common::call("echo", json!({"text": "two hops"})))
        .await
        .unwrap();
    assert_eq!(common::text_of(&r), "alpha: two hops");
    // Progress crosses both gateways.
    let r = agent
        .call_tool(common::call("count", json!({"steps": 3})))
        .await
        .unwrap();
    assert_eq!(common::text_of(&r), "counted 3");
    assert_eq!(progress.take(), vec![1.0, 2.0, 3.0]);
    agent.cancel().await.unwrap();
    outer.shutdown().await;
    inner.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_backend_is_relaunched_on_use_and_its_tools_announced() {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("flaky.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nif [ ! -f \"$MARK\" ]; then touch \"$MARK\"; echo 'first launch fails' >&2; exit 1; fi\nexec \"$PY\" \"$ECHO\" gamma\n",
    )
    .unwrap();
    let mut gamma = common::stdio_server("sh".into(), vec![script.to_string_lossy().into_owned()]);
    gamma.transport = match gamma.transport {
        ServerTransport::Stdio { command, args, .. } => ServerTransport::Stdio {
            command,
            args,
            env: BTreeMap::from([
                (
                    "MARK".to_owned(),
                    dir.path().join("launched").to_string_lossy().into_owned(),
                ),
                (
                    "PY".to_owned(),
                    common::python().to_string_lossy().into_owned(),
                ),
                (
                    "ECHO".to_owned(),
                    common::repo_root()
                        .join("tests/python/backends/echo_server.py")
                        .to_string_lossy()
                        .into_owned(),
                ),
            ]),
        },
        other => other,
    };
    let gw = Gateway::start(common::options(
        BTreeMap::from([
            ("alpha".to_owned(), common::echo_backend("alpha")),
            ("gamma".to_owned(), gamma),
        ]),
        RoutingMode::Unified,
    ))
    .await
    .unwrap();
    assert_eq!(
        gw.backend("gamma").unwrap().health().status,
        BackendStatus::Error
    );

    let counter = Counter::default();
    let agent = client_with(&format!("http://{}/mcp", gw.local_addr()), counter.clone()).await;
    let before = agent.list_all_tools().await.unwrap();
    assert!(before.iter().all(|t| !t.name.starts_with("gamma___")));

    // Past the first backoff the next call relaunches the backend.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let r = agent
        .call_tool(common::call("gamma___echo", json!({"text": "back"})))
        .await
        .unwrap();
    assert_eq!(common::text_of(&r), "gamma: back");
    let health = gw.backend("gamma").unwrap().health();
    assert_eq!(health.status, BackendStatus::Running);
    assert_eq!(health.launches, 2);

    // Connected agents were told, and now see the tools.
    for _ in 0..100 {
        if counter.tools_changed.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(counter.tools_changed.load(Ordering::SeqCst) >= 1);
    let after = agent.list_all_tools().await.unwrap();
    assert!(after.iter().any(|t| t.name == "gamma___echo"));
    agent.cancel().await.unwrap();
    gw.shutdown().await;
}

/// A backend that reports many progress steps and answers right after the
/// last one, reached directly (stdio) and through another gateway
/// (streamable HTTP): on every call the agent has all the steps, in order,
/// by the time it has the result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_reaches_the_agent_in_order_before_the_result() {
    const STEPS: usize = 40;
    const CALLS: usize = 15;
    common::init_tracing();
    let everything = || {
        common::stdio_server(
            "node".into(),
            vec![
                common::everything_server().to_string_lossy().into_owned(),
                "stdio".into(),
            ],
        )
    };
    let inner = Gateway::start(common::options(
        BTreeMap::from([("everything".to_owned(), everything())]),
        RoutingMode::Routed,
    ))
    .await
    .unwrap();
    let inner_url = format!("http://{}/mcp/everything", inner.local_addr());
    let outer = Gateway::start(common::options(
        BTreeMap::from([
            ("everything".to_owned(), everything()),
            ("remote".to_owned(), http_server(inner_url, common::API_KEY)),
        ]),
        RoutingMode::Routed,
    ))
    .await
    .unwrap();

    let expected: Vec<f64> = (1..=STEPS).map(|i| i as f64).collect();
    for route in ["everything", "remote"] {
        let progress = common::ProgressLog::default();
        let agent = common::progress_logging_client(
            &format!("http://{}/mcp/{route}", outer.local_addr()),
            &progress,
        )
        .await;
        for call in 0..CALLS {
            // No delay between steps: the result follows the last step at once.
            let r = agent
                .call_tool(common::call(
                    "trigger-long-running-operation",
                    json!({"duration": 0, "steps": STEPS}),
                ))
                .await
                .unwrap();
            assert!(common::text_of(&r).contains("completed"), "{r:?}");
            assert_eq!(progress.take(), expected, "{route}: call {call}");
        }
        agent.cancel().await.unwrap();
    }
    assert_eq!(outer.pending_progress_routes(), 0);
    assert_eq!(inner.pending_progress_routes(), 0);
    outer.shutdown().await;
    inner.shutdown().await;
}
