//! Added latency of the gateway on `tools/call`, p50 and p99 of each series:
//! the same echo call made directly to a stdio backend and through a routed
//! gateway (streamable HTTP in, stdio out); then guarded calls (`issue_read`
//! of an approved octo-org issue, `list_issues` with 30 issues) made
//! directly to the demo backend and through a gateway whose DIFC pipeline
//! runs the sample guard in front of it. A plain harness (not criterion)
//! because percentiles are the point.
//!
//! `cargo bench -p guardway-gateway --bench call_latency` (needs the test
//! environment: scripts/setup-test-env.sh). `GUARDWAY_BENCH_CALLS` sets the
//! number of measured calls per side (default 300).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/guarded_support/mod.rs"]
mod guarded_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use guardway_gateway::config::{GuardConfig, RoutingMode, ServerTransport};
use guardway_gateway::{Gateway, GuardPipeline};
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::json;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

async fn measure(client: &RunningService<RoleClient, ()>, calls: usize) -> Vec<Duration> {
    let params = common::call("echo", json!({"text": "latency"}));
    for _ in 0..20 {
        client.call_tool(params.clone()).await.unwrap();
    }
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let params: CallToolRequestParams = params.clone();
        let start = Instant::now();
        let result = client.call_tool(params).await.unwrap();
        samples.push(start.elapsed());
        assert_eq!(common::text_of(&result), "bench: latency");
    }
    samples.sort();
    samples
}

/// Times `calls` successful calls of `params` (after 20 warm-up calls).
async fn measure_call(
    client: &RunningService<RoleClient, ()>,
    params: &CallToolRequestParams,
    calls: usize,
) -> Vec<Duration> {
    for _ in 0..20 {
        client.call_tool(params.clone()).await.unwrap();
    }
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let params = params.clone();
        let start = Instant::now();
        let result = client.call_tool(params).await.unwrap();
        samples.push(start.elapsed());
        assert_ne!(result.is_error, Some(true), "{}", common::text_of(&result));
    }
    samples.sort();
    samples
}

/// A client of the demo backend over stdio, spawned directly.
async fn direct_demo_client() -> RunningService<RoleClient, ()> {
    let cmd = tokio::process::Command::new(guarded_support::demo_backend());
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    ().serve(transport).await.unwrap()
}

/// The number of the first octo-org/api issue by an approved author, so that
/// the guarded `issue_read` is allowed.
async fn approved_issue(direct: &RunningService<RoleClient, ()>) -> u64 {
    let result = direct
        .call_tool(common::call(
            "list_issues",
            json!({"owner": "octo-org", "repo": "api", "perPage": 60}),
        ))
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&common::text_of(&result)).unwrap();
    body["issues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|issue| {
            matches!(
                issue["author_association"].as_str(),
                Some("OWNER" | "MEMBER" | "COLLABORATOR")
            )
        })
        .and_then(|issue| issue["number"].as_u64())
        .unwrap()
}

/// Direct and guarded series of `issue_read` and `list_issues`.
async fn guarded_series(calls: usize) {
    let direct = direct_demo_client().await;
    let number = approved_issue(&direct).await;
    let issue_read = common::call(
        "issue_read",
        json!({"method": "get", "owner": "octo-org", "repo": "api", "issue_number": number}),
    );
    let list_issues = common::call(
        "list_issues",
        json!({"owner": "octo-org", "repo": "api", "perPage": 30}),
    );
    let direct_read = measure_call(&direct, &issue_read, calls).await;
    let direct_list = measure_call(&direct, &list_issues, calls).await;

    let mut server = common::stdio_server(
        guarded_support::demo_backend()
            .to_string_lossy()
            .into_owned(),
        Vec::new(),
    );
    server.guard = Some("sample".to_owned());
    server.guard_policies =
        Some(json!({"allow-only": {"repos": ["octo-org/*"], "min-integrity": "approved"}}));
    let mut options = common::options(
        BTreeMap::from([("github".to_owned(), server)]),
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
    let pipeline = Arc::new(GuardPipeline::new(&options));
    let gw = Gateway::start_with_interceptor(options, pipeline)
        .await
        .unwrap();
    let via = common::rmcp_client(
        &format!("http://{}/mcp/github", gw.local_addr()),
        common::API_KEY,
    )
    .await;
    let via_read = measure_call(&via, &issue_read, calls).await;
    let via_list = measure_call(&via, &list_issues, calls).await;

    println!("guarded tools/call, demo backend (stdio) behind the sample guard:");
    let (d50, d99) = report(&format!("issue_read #{number} direct"), &direct_read);
    let (g50, g99) = report("issue_read guarded", &via_read);
    print_added(g50, d50, g99, d99);
    let (d50, d99) = report("list_issues 30 direct", &direct_list);
    let (g50, g99) = report("list_issues 30 guarded", &via_list);
    print_added(g50, d50, g99, d99);
    direct.cancel().await.unwrap();
    via.cancel().await.unwrap();
    gw.shutdown().await;
}

fn print_added(via50: Duration, direct50: Duration, via99: Duration, direct99: Duration) {
    let added = |via: Duration, direct: Duration| (via.as_secs_f64() - direct.as_secs_f64()) * 1e6;
    println!(
        "added by the gateway: p50 {:+.0}µs, p99 {:+.0}µs",
        added(via50, direct50),
        added(via99, direct99)
    );
}

fn report(label: &str, samples: &[Duration]) -> (Duration, Duration) {
    let (p50, p99) = (percentile(samples, 0.50), percentile(samples, 0.99));
    println!(
        "{label:<26} n={:<5} p50={:>9.3?} p99={:>9.3?} min={:>9.3?} max={:>9.3?}",
        samples.len(),
        p50,
        p99,
        samples[0],
        samples[samples.len() - 1]
    );
    (p50, p99)
}

fn main() {
    let calls: usize = std::env::var("GUARDWAY_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let backend = common::echo_backend("bench");
        let ServerTransport::Stdio { command, args, .. } = backend.transport.clone() else {
            unreachable!("the echo backend is a stdio server")
        };

        let mut cmd = tokio::process::Command::new(command);
        cmd.args(args);
        let (transport, _) = TokioChildProcess::builder(cmd)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let direct = ().serve(transport).await.unwrap();
        let direct_samples = measure(&direct, calls).await;

        let gw = Gateway::start(common::options(
            BTreeMap::from([("bench".to_owned(), backend)]),
            RoutingMode::Routed,
        ))
        .await
        .unwrap();
        let via = common::rmcp_client(
            &format!("http://{}/mcp/bench", gw.local_addr()),
            common::API_KEY,
        )
        .await;
        let via_samples = measure(&via, calls).await;

        println!("tools/call echo, Python FastMCP stdio backend:");
        let (d50, d99) = report("direct (stdio)", &direct_samples);
        let (g50, g99) = report("via gateway (http)", &via_samples);
        print_added(g50, d50, g99, d99);
        direct.cancel().await.unwrap();
        via.cancel().await.unwrap();
        gw.shutdown().await;

        guarded_series(calls).await;
    });
}
