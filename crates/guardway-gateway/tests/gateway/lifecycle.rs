//! Backend lifecycle through a running gateway, with an `rmcp` client as the
//! agent: failed launches, tool timeouts, the rate-limit circuit breaker,
//! the call interceptor hook, and graceful shutdown.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use guardway_gateway::config::RoutingMode;
use guardway_gateway::{
    BackendInvoker, BackendStatus, CallInterceptor, Gateway, RunningGateway, ToolCall,
    gateway_error,
};
use rmcp::ErrorData;
use rmcp::model::{CallToolResponse, ErrorCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_backend_is_skipped_and_calls_fail_fast_naming_it() {
    common::init_tracing();
    let servers = BTreeMap::from([
        ("alpha".to_owned(), common::echo_backend("alpha")),
        (
            "broken".to_owned(),
            common::stdio_server("/nonexistent/guardway-test-backend".into(), vec![]),
        ),
    ]);
    let gw = Gateway::start(common::options(servers, RoutingMode::Unified))
        .await
        .unwrap();
    assert_eq!(
        gw.backend("broken").unwrap().health().status,
        BackendStatus::Error
    );
    let client =
        common::rmcp_client(&format!("http://{}/mcp", gw.local_addr()), common::API_KEY).await;
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().all(|t| t.name.starts_with("alpha___")));
    assert!(!tools.is_empty());
    let error = common::mcp_error(
        client
            .call_tool(common::call("broken___anything", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code, ErrorCode(0));
    assert!(error.message.contains("\"broken\""), "{}", error.message);
    // The routed path of a failed backend exists, with no tools.
    let routed = Gateway::start(common::options(
        BTreeMap::from([(
            "broken".to_owned(),
            common::stdio_server("/nonexistent/guardway-test-backend".into(), vec![]),
        )]),
        RoutingMode::Routed,
    ))
    .await
    .unwrap();
    let rc = common::rmcp_client(
        &format!("http://{}/mcp/broken", routed.local_addr()),
        common::API_KEY,
    )
    .await;
    assert!(rc.list_all_tools().await.unwrap().is_empty());
    rc.cancel().await.unwrap();
    client.cancel().await.unwrap();
    routed.shutdown().await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_timeout_answers_with_an_error_and_the_backend_keeps_serving() {
    common::init_tracing();
    let mut alpha = common::echo_backend("alpha");
    // Long enough for the quick calls on a loaded machine, far shorter
    // than the slow tool.
    alpha.tool_timeout = Some(Duration::from_secs(3));
    let gw = Gateway::start(common::options(
        BTreeMap::from([("alpha".to_owned(), alpha)]),
        RoutingMode::Routed,
    ))
    .await
    .unwrap();
    let client = common::rmcp_client(
        &format!("http://{}/mcp/alpha", gw.local_addr()),
        common::API_KEY,
    )
    .await;
    // The tool timeout bounds the whole call, starting the agent's own
    // backend process included; start it first (importing the Python MCP
    // SDK alone can take longer than the timeout on a loaded machine), so
    // that the timeout below is the slow tool's.
    let warm = client
        .call_tool(common::call("echo", json!({"text": "warm"})))
        .await
        .unwrap();
    assert_eq!(common::text_of(&warm), "alpha: warm");
    assert_eq!(gw.backend("alpha").unwrap().health().agent_launches, 1);
    let error = common::mcp_error(
        client
            .call_tool(common::call("sleep", json!({"seconds": 30})))
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code, ErrorCode(0));
    assert!(error.message.contains("\"alpha\""), "{}", error.message);
    assert!(error.message.contains("within 3s"), "{}", error.message);
    let ok = client
        .call_tool(common::call("echo", json!({"text": "after"})))
        .await
        .unwrap();
    assert_eq!(common::text_of(&ok), "alpha: after");
    // The same processes served throughout: nothing was relaunched.
    let health = gw.backend("alpha").unwrap().health();
    assert_eq!(health.launches, 1);
    assert_eq!(health.agent_launches, 1);
    client.cancel().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_opens_after_consecutive_rate_limits() {
    common::init_tracing();
    let mut alpha = common::echo_backend("alpha");
    alpha.rate_limit_threshold = 2;
    alpha.rate_limit_cooldown = Duration::from_secs(2);
    let gw = Gateway::start(common::options(
        BTreeMap::from([("alpha".to_owned(), alpha)]),
        RoutingMode::Routed,
    ))
    .await
    .unwrap();
    let client = common::rmcp_client(
        &format!("http://{}/mcp/alpha", gw.local_addr()),
        common::API_KEY,
    )
    .await;
    // Rate-limited results pass through as tool errors until the threshold.
    for _ in 0..2 {
        let r = client
            .call_tool(common::call("limited", json!({})))
            .await
            .unwrap();
        assert_eq!(r.is_error, Some(true));
        assert!(common::text_of(&r).contains("rate limit exceeded"));
    }
    assert_eq!(gw.backend("alpha").unwrap().breaker_openings(), 1);
    // Open: every tool of the server is refused without a backend call.
    let error = common::mcp_error(
        client
            .call_tool(common::call("echo", json!({"text": "x"})))
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code, ErrorCode(0));
    assert_eq!(
        error.message,
        "rate limit circuit breaker is OPEN for server \"alpha\" — requests temporarily rejected"
    );
    // After the cooldown one probe goes through; success closes the breaker.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = client
        .call_tool(common::call("echo", json!({"text": "probe"})))
        .await
        .unwrap();
    assert_eq!(common::text_of(&r), "alpha: probe");
    let r = client
        .call_tool(common::call("echo", json!({"text": "closed"})))
        .await
        .unwrap();
    assert_eq!(common::text_of(&r), "alpha: closed");
    client.cancel().await.unwrap();
    gw.shutdown().await;
}

/// Refuses `secret`-looking calls, rewrites `echo` arguments, counts calls.
struct TestInterceptor {
    calls: AtomicUsize,
}

impl CallInterceptor for TestInterceptor {
    fn intercept<'a>(
        &'a self,
        mut call: ToolCall,
        backend: &'a dyn BackendInvoker,
    ) -> BoxFuture<'a, Result<CallToolResponse, ErrorData>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if call.tool == "add" {
                return Err(gateway_error(format!(
                    "denied {} on {} for {:?}",
                    call.tool, call.server, call.agent_id
                )));
            }
            if let Some(args) = call.params.arguments.as_mut() {
                args.insert("text".into(), json!("rewritten"));
            }
            backend.invoke(call.params).await
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interceptor_sees_and_controls_every_call() {
    common::init_tracing();
    let interceptor = Arc::new(TestInterceptor {
        calls: AtomicUsize::new(0),
    });
    let gw = Gateway::start_with_interceptor(
        common::options(
            BTreeMap::from([("alpha".to_owned(), common::echo_backend("alpha"))]),
            RoutingMode::Unified,
        ),
        interceptor.clone(),
    )
    .await
    .unwrap();
    let client =
        common::rmcp_client(&format!("http://{}/mcp", gw.local_addr()), common::API_KEY).await;
    let r = client
        .call_tool(common::call("alpha___echo", json!({"text": "original"})))
        .await
        .unwrap();
    assert_eq!(common::text_of(&r), "alpha: rewritten");
    let error = common::mcp_error(
        client
            .call_tool(common::call("alpha___add", json!({"a": 1, "b": 2})))
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code, ErrorCode(0));
    assert_eq!(
        error.message,
        format!("denied add on alpha for Some({:?})", common::API_KEY)
    );
    // Unknown tools never reach the interceptor.
    assert!(
        client
            .call_tool(common::call("alpha___nope", json!({})))
            .await
            .is_err()
    );
    assert_eq!(interceptor.calls.load(Ordering::SeqCst), 2);
    client.cancel().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_refuses_new_requests_and_finishes_in_flight_calls() {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started");
    let gw = Gateway::start(common::options(
        BTreeMap::from([("alpha".to_owned(), marking_echo_backend(&started))]),
        RoutingMode::Routed,
    ))
    .await
    .unwrap();
    let addr = gw.local_addr();
    let backend = gw.backend("alpha").unwrap().clone();
    let client = common::rmcp_client(&format!("http://{addr}/mcp/alpha"), common::API_KEY).await;
    // Start the agent's own backend process before the call that must be
    // in flight.
    client
        .call_tool(common::call("echo", json!({"text": "warm"})))
        .await
        .unwrap();
    let slow = tokio::spawn(async move {
        let r = client
            .call_tool(common::call("sleep", json!({"seconds": 2.0})))
            .await;
        (r, client)
    });
    // The backend is running the slow tool: the call is in flight.
    wait_for_file(&started).await;
    let shutdown = tokio::spawn(gw.shutdown());
    // New requests are refused once shutdown has begun.
    let ping = || {
        reqwest::Client::new()
            .post(format!("http://{addr}/mcp/alpha"))
            .header("authorization", common::API_KEY)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
            .send()
    };
    let mut resp = ping().await.unwrap();
    for _ in 0..100 {
        if resp.status() == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        resp = ping().await.unwrap();
    }
    assert_eq!(resp.status(), 503);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap(),
        json!({"error": "Gateway is shutting down"})
    );
    let (result, _client) = slow.await.unwrap();
    assert_eq!(common::text_of(&result.unwrap()), "slept");
    shutdown.await.unwrap();
    assert_eq!(backend.health().status, BackendStatus::Stopped);
    // The listener is gone.
    assert!(
        reqwest::get(format!("http://{addr}/health")).await.is_err(),
        "gateway still answering after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_cancellation_reaches_the_backend() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, started, mark) = cancel_marking_gateway(dir.path()).await;
    let client = common::rmcp_client(
        &format!("http://{}/mcp/alpha", gw.local_addr()),
        common::API_KEY,
    )
    .await;
    // The agent's own backend process is started by its first call.
    client
        .call_tool(common::call("echo", json!({"text": "warm"})))
        .await
        .unwrap();
    let handle = client
        .send_cancellable_request(
            rmcp::model::ClientRequest::CallToolRequest(rmcp::model::CallToolRequest::new(
                common::call("wait_for_cancel", json!({"seconds": 30})),
            )),
            rmcp::service::PeerRequestOptions::no_options(),
        )
        .await
        .unwrap();
    // Cancel once the backend is running the tool.
    wait_for_file(&started).await;
    handle.cancel(Some("agent gave up".into())).await.unwrap();
    let mut cancelled = false;
    for _ in 0..100 {
        if mark.exists() {
            cancelled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(cancelled, "the backend never saw the cancellation");
    assert_eq!(gw.pending_progress_routes(), 0);
    // The session and the backend go on serving.
    let r = client
        .call_tool(common::call("echo", json!({"text": "after cancel"})))
        .await
        .unwrap();
    assert_eq!(common::text_of(&r), "alpha: after cancel");
    client.cancel().await.unwrap();
    gw.shutdown().await;
}

/// An agent that keeps its call's stream open and sends
/// `notifications/cancelled` for it: the backend is told, the call's stream
/// ends without an answer (MCP cancellation), and the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_notification_stops_a_call_whose_stream_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, started, mark) = cancel_marking_gateway(dir.path()).await;
    let url = format!("http://{}/mcp/alpha", gw.local_addr());
    let session = common::open_session(&url).await;
    let call = {
        let (url, session) = (url.clone(), session.clone());
        tokio::spawn(async move {
            let resp = common::session_post(&url, &session)
                .json(&common::tool_call(
                    json!("slow-1"),
                    "wait_for_cancel",
                    json!({"seconds": 30}),
                ))
                .send()
                .await
                .unwrap();
            (resp.status(), resp.text().await.unwrap())
        })
    };
    wait_for_file(&started).await;
    let resp = common::session_post(&url, &session)
        .json(
            &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                      "params": {"requestId": "slow-1", "reason": "agent gave up"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let (status, body) = call.await.unwrap();
    assert_eq!(status, 200);
    assert!(
        common::messages(&body).is_empty(),
        "a cancelled call was answered: {body}"
    );
    wait_for_file(&mark).await;
    let resp = common::session_post(&url, &session)
        .json(&common::tool_call(
            json!(3),
            "echo",
            json!({"text": "after cancel"}),
        ))
        .send()
        .await
        .unwrap();
    let answer = common::messages(&resp.text().await.unwrap());
    assert_eq!(
        answer[0]["result"]["content"][0]["text"],
        "alpha: after cancel"
    );
    gw.shutdown().await;
}

/// A routed gateway in front of echo backend "alpha", which creates
/// `<dir>/started` when a slow tool begins and `<dir>/cancelled` when a
/// call is cancelled; returns the gateway and both paths.
async fn cancel_marking_gateway(
    dir: &std::path::Path,
) -> (RunningGateway, std::path::PathBuf, std::path::PathBuf) {
    common::init_tracing();
    let mark = dir.join("cancelled");
    let started = dir.join("started");
    let mut alpha = marking_echo_backend(&started);
    if let guardway_gateway::config::ServerTransport::Stdio { env, .. } = &mut alpha.transport {
        env.insert("CANCEL_MARK".into(), mark.to_string_lossy().into_owned());
    }
    let gw = Gateway::start(common::options(
        BTreeMap::from([("alpha".to_owned(), alpha)]),
        RoutingMode::Routed,
    ))
    .await
    .unwrap();
    (gw, started, mark)
}

/// The Python echo backend "alpha", touching `started` when a slow tool
/// (`sleep`, `wait_for_cancel`) begins.
fn marking_echo_backend(started: &std::path::Path) -> guardway_gateway::config::ServerConfig {
    let mut alpha = common::echo_backend("alpha");
    if let guardway_gateway::config::ServerTransport::Stdio { env, .. } = &mut alpha.transport {
        env.insert(
            "STARTED_MARK".into(),
            started.to_string_lossy().into_owned(),
        );
    }
    alpha
}

/// Waits (at most 30 s) until a backend has created `path`.
async fn wait_for_file(path: &std::path::Path) {
    for _ in 0..1500 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} never appeared", path.display());
}
