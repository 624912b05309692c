//! Added latency of the gateway on `tools/call`: the same echo call made
//! directly to a stdio backend and through a routed gateway (streamable
//! HTTP in, stdio out), p50 and p99 of each. A plain harness (not
//! criterion) because percentiles are the point.
//!
//! `cargo bench -p guardway-gateway --bench call_latency` (needs the test
//! environment: scripts/setup-test-env.sh). `GUARDWAY_BENCH_CALLS` sets the
//! number of measured calls per side (default 300).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use guardway_gateway::Gateway;
use guardway_gateway::config::{RoutingMode, ServerTransport};
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

fn report(label: &str, samples: &[Duration]) -> (Duration, Duration) {
    let (p50, p99) = (percentile(samples, 0.50), percentile(samples, 0.99));
    println!(
        "{label:<18} n={:<5} p50={:>9.3?} p99={:>9.3?} min={:>9.3?} max={:>9.3?}",
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
        let added =
            |via: Duration, direct: Duration| (via.as_secs_f64() - direct.as_secs_f64()) * 1e6;
        println!(
            "added by the gateway: p50 {:+.0}µs, p99 {:+.0}µs",
            added(g50, d50),
            added(g99, d99)
        );
        direct.cancel().await.unwrap();
        via.cancel().await.unwrap();
        gw.shutdown().await;
    });
}
