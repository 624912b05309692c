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
//! number of measured calls per side (default 300); `GUARDWAY_BENCH_SERIES`
//! = `echo` or `guarded` runs only those series (default both);
//! `GUARDWAY_BENCH_GUARD` = a `.wasm` path replaces the sample guard (to
//! compare two builds of it). The `guard` series times the guard alone
//! (`label_resource` / `label_response` on the demo backend's real results,
//! p50 of 1000 calls each, no HTTP or backend); with
//! `GUARDWAY_BENCH_BASELINE_GUARD` = another `.wasm` it alternates calls of
//! both builds so that they see the same machine load.
//! `GUARDWAY_BENCH_WORKERS` sets the tokio worker threads shared by the
//! client and the in-process gateway (default 2).
//! `GUARDWAY_BENCH_LOGGING` (any value) installs the logging of
//! `guardway serve` (stderr and a log directory) for the whole run.
//!
//! The guarded and unguarded series are measured twice: with rmcp's
//! clients on both sides (stdio direct, streamable HTTP through the
//! gateway), which is what an agent built on rmcp sees, and with minimal
//! clients on both sides (`support/lean.rs`: the request written and the
//! answer read in the bench's own task), which leaves only what the gateway
//! itself adds: rmcp's HTTP client alone costs several task hand-offs per
//! call.

/// The allocator of the `guardway` binary, whose gateway this bench measures.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/guarded_support/mod.rs"]
mod guarded_support;
#[path = "support/lean.rs"]
mod lean;

use std::collections::BTreeMap;
use std::sync::Arc;
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

/// Times `calls` pairs of the same call, first `direct` then `via` (after
/// 20 warm-up pairs): both sorted series and the sorted differences
/// (via − direct, µs) of each pair.
async fn measure_pairs(
    direct: &RunningService<RoleClient, ()>,
    via: &RunningService<RoleClient, ()>,
    params: &CallToolRequestParams,
    calls: usize,
) -> (Vec<Duration>, Vec<Duration>, Vec<f64>) {
    for _ in 0..20 {
        direct.call_tool(params.clone()).await.unwrap();
        via.call_tool(params.clone()).await.unwrap();
    }
    let mut direct_samples = Vec::with_capacity(calls);
    let mut via_samples = Vec::with_capacity(calls);
    let mut differences = Vec::with_capacity(calls);
    for _ in 0..calls {
        let mut pair = [Duration::ZERO; 2];
        for (side, client) in [direct, via].into_iter().enumerate() {
            let start = Instant::now();
            let result = client.call_tool(params.clone()).await.unwrap();
            pair[side] = start.elapsed();
            assert_ne!(result.is_error, Some(true), "{}", common::text_of(&result));
        }
        direct_samples.push(pair[0]);
        via_samples.push(pair[1]);
        differences.push((pair[1].as_secs_f64() - pair[0].as_secs_f64()) * 1e6);
    }
    direct_samples.sort();
    via_samples.sort();
    differences.sort_by(f64::total_cmp);
    (direct_samples, via_samples, differences)
}

/// Like [`measure_pairs`], with the minimal clients: `calls` pairs of the
/// same call (after 20 warm-up pairs), direct then through the gateway.
async fn measure_pairs_lean(
    direct: &mut lean::LeanStdio,
    via: &mut lean::LeanHttp,
    name: &str,
    arguments: &serde_json::Value,
    calls: usize,
) -> (Vec<Duration>, Vec<Duration>, Vec<f64>) {
    for _ in 0..20 {
        direct.call(name, arguments).await;
        via.call(name, arguments).await;
    }
    let mut direct_samples = Vec::with_capacity(calls);
    let mut via_samples = Vec::with_capacity(calls);
    let mut differences = Vec::with_capacity(calls);
    for _ in 0..calls {
        let start = Instant::now();
        let answer = direct.call(name, arguments).await;
        let direct_time = start.elapsed();
        assert!(lean::is_success(&answer), "{answer}");
        let start = Instant::now();
        let answer = via.call(name, arguments).await;
        let via_time = start.elapsed();
        assert!(lean::is_success(&answer), "{answer}");
        direct_samples.push(direct_time);
        via_samples.push(via_time);
        differences.push((via_time.as_secs_f64() - direct_time.as_secs_f64()) * 1e6);
    }
    direct_samples.sort();
    via_samples.sort();
    differences.sort_by(f64::total_cmp);
    (direct_samples, via_samples, differences)
}

/// The lean-client series of `issue_read` and `list_issues` against the
/// gateway at `addr` (endpoint `/mcp/github`), labelled `label`.
async fn lean_series(
    addr: std::net::SocketAddr,
    label: &str,
    issue_read: &CallToolRequestParams,
    list_issues: &CallToolRequestParams,
    calls: usize,
) {
    let mut direct = lean::LeanStdio::spawn(&guarded_support::demo_backend()).await;
    let mut via = lean::LeanHttp::connect(addr, "/mcp/github", common::API_KEY).await;
    println!("{label}, minimal clients on both sides:");
    for (params, name) in [(issue_read, "issue_read"), (list_issues, "list_issues 30")] {
        let arguments = serde_json::Value::Object(params.arguments.clone().unwrap_or_default());
        let (direct_samples, via_samples, pairs) =
            measure_pairs_lean(&mut direct, &mut via, &params.name, &arguments, calls).await;
        let (d50, d99) = report(&format!("{name} direct"), &direct_samples);
        let (g50, g99) = report(&format!("{name} via gateway"), &via_samples);
        print_added(g50, d50, g99, d99);
        print_paired(&pairs);
    }
}

fn print_paired(differences: &[f64]) {
    let at = |p: f64| {
        let rank = ((differences.len() as f64 - 1.0) * p).round() as usize;
        differences[rank.min(differences.len() - 1)]
    };
    println!(
        "added, paired (median of via − direct per pair): p50 {:+.0}µs, p90 {:+.0}µs",
        at(0.5),
        at(0.9)
    );
}

/// The sample guard build under test (`GUARDWAY_BENCH_GUARD`, else the
/// repository's).
fn bench_guard() -> std::path::PathBuf {
    std::env::var_os("GUARDWAY_BENCH_GUARD")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(guarded_support::sample_guard)
}

/// Answers the guard's repository look-ups (`search_repositories`
/// `repo:o/r`) with a public repository, as the demo backend does.
struct PublicRepos;

impl guardway_wasm::Backend for PublicRepos {
    fn call_tool<'a>(
        &'a self,
        tool: &'a str,
        args: serde_json::Value,
    ) -> guardway_wasm::BoxFuture<'a, Result<serde_json::Value, guardway_wasm::BackendCallError>>
    {
        Box::pin(async move {
            if tool != "search_repositories" {
                return Err(guardway_wasm::BackendCallError::ToolNotAllowed {
                    tool: tool.to_owned(),
                });
            }
            let query = args.get("query").and_then(|q| q.as_str()).unwrap_or("");
            let page = json!({"total_count": 1, "items": [{
                "full_name": query.trim_start_matches("repo:"), "private": false,
                "visibility": "public"}]});
            Ok(json!({"content": [{"type": "text", "text": page.to_string()}]}))
        })
    }
}

/// A ready `Guard` of the wasm file at `path` with the bench policy.
async fn bench_guard_pool(path: &std::path::Path) -> guardway_wasm::Guard {
    let options = guardway_wasm::GuardOptions::default();
    let module = guardway_wasm::GuardModule::from_file(path, &options).unwrap();
    guardway_wasm::Guard::new(
        module,
        &json!({"allow-only": {"repos": ["octo-org/*"], "min-integrity": "approved"}}),
        options,
        Some(Arc::new(PublicRepos)),
    )
    .await
    .unwrap()
}

/// The guard alone: label_resource of issue_read, label_response of
/// issue_read and of list_issues (30), on the demo backend's results.
async fn guard_series() {
    const CALLS: usize = 1000;
    let direct = direct_demo_client().await;
    let number = approved_issue(&direct).await;
    let read_args =
        json!({"method": "get", "owner": "octo-org", "repo": "api", "issue_number": number});
    let list_args = json!({"owner": "octo-org", "repo": "api", "perPage": 30});
    let read_result = direct
        .call_tool(common::call("issue_read", read_args.clone()))
        .await
        .unwrap();
    let list_result = direct
        .call_tool(common::call("list_issues", list_args.clone()))
        .await
        .unwrap();
    direct.cancel().await.unwrap();
    let resource = guardway_difc::LabelResourceInput {
        tool_name: "issue_read".into(),
        tool_args: read_args.clone(),
        capabilities: Some(json!({})),
    };
    let response = |tool: &str, args: &serde_json::Value, result: &rmcp::model::CallToolResult| {
        guardway_difc::LabelResponseInput {
            tool_name: tool.into(),
            tool_result: serde_json::to_value(result).unwrap(),
            tool_args: Some(args.clone()),
            capabilities: Some(json!({})),
        }
    };
    let read_response = response("issue_read", &read_args, &read_result);
    let list_response = response("list_issues", &list_args, &list_result);
    // A write tool gets no response labels: the guest only reads its input
    // (parses the JSON and the text content inside), the floor of the list.
    let list_unlabelled = response("create_issue", &list_args, &list_result);

    let mut builds = vec![("guard", bench_guard_pool(&bench_guard()).await)];
    if let Some(baseline) = std::env::var_os("GUARDWAY_BENCH_BASELINE_GUARD") {
        builds.push((
            "baseline",
            bench_guard_pool(std::path::Path::new(&baseline)).await,
        ));
    }
    println!("guard alone (p50 of {CALLS} calls each):");
    type Step<'a> = (
        &'a str,
        Box<dyn Fn(&'a guardway_wasm::Guard) -> futures::future::BoxFuture<'a, ()> + 'a>,
    );
    let steps: Vec<Step<'_>> = vec![
        (
            "label_resource issue_read",
            Box::new(|g| {
                Box::pin(async {
                    g.label_resource(&resource).await.unwrap();
                })
            }),
        ),
        (
            "label_response issue_read",
            Box::new(|g| {
                Box::pin(async {
                    g.label_response(&read_response).await.unwrap();
                })
            }),
        ),
        (
            "label_response list 30, input only",
            Box::new(|g| {
                Box::pin(async {
                    g.label_response(&list_unlabelled).await.unwrap();
                })
            }),
        ),
        (
            "label_response list 30",
            Box::new(|g| {
                Box::pin(async {
                    g.label_response(&list_response).await.unwrap();
                })
            }),
        ),
    ];
    for (label, step) in &steps {
        let mut samples = vec![Vec::with_capacity(CALLS); builds.len()];
        for round in 0..CALLS + 50 {
            for (index, (_, guard)) in builds.iter().enumerate() {
                let start = Instant::now();
                step(guard).await;
                if round >= 50 {
                    samples[index].push(start.elapsed());
                }
            }
        }
        for ((name, _), mut series) in builds.iter().zip(samples) {
            series.sort();
            report(&format!("{label} ({name})"), &series);
        }
    }
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

    let mut server = guarded_support::demo_stdio_server();
    server.guard = Some("sample".to_owned());
    server.guard_policies =
        Some(json!({"allow-only": {"repos": ["octo-org/*"], "min-integrity": "approved"}}));
    let mut options = common::options(
        BTreeMap::from([("github".to_owned(), server)]),
        RoutingMode::Routed,
    );
    options.config.guards = BTreeMap::from([(
        "sample".to_owned(),
        guarded_support::plain_wasm_guard(
            std::env::var_os("GUARDWAY_BENCH_GUARD")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(guarded_support::sample_guard),
        ),
    )]);
    let (gw, pipeline) = guarded_support::start_guarded(options).await;
    let via = common::rmcp_client(
        &format!("http://{}/mcp/github", gw.local_addr()),
        common::API_KEY,
    )
    .await;
    // Direct and guarded calls alternate, so that both sides of a
    // comparison see the same machine load.
    let (direct_read, via_read, pairs_read) =
        measure_pairs(&direct, &via, &issue_read, calls).await;
    let (direct_list, via_list, pairs_list) =
        measure_pairs(&direct, &via, &list_issues, calls).await;

    println!("guarded tools/call, demo backend (stdio) behind the sample guard:");
    let (d50, d99) = report(&format!("issue_read #{number} direct"), &direct_read);
    let (g50, g99) = report("issue_read guarded", &via_read);
    print_added(g50, d50, g99, d99);
    print_paired(&pairs_read);
    let (d50, d99) = report("list_issues 30 direct", &direct_list);
    let (g50, g99) = report("list_issues 30 guarded", &via_list);
    print_added(g50, d50, g99, d99);
    print_paired(&pairs_list);
    via.cancel().await.unwrap();
    lean_series(
        gw.local_addr(),
        "guarded tools/call (sample guard)",
        &issue_read,
        &list_issues,
        calls,
    )
    .await;
    print_guard_time(&*pipeline);
    gw.shutdown().await;
    unguarded_demo_series(&direct, &issue_read, &list_issues, calls).await;
    direct.cancel().await.unwrap();
}

/// The same calls through a gateway without a guard in front of the demo
/// backend: what the HTTP layer and the relay add without the DIFC pipeline.
async fn unguarded_demo_series(
    direct: &RunningService<RoleClient, ()>,
    issue_read: &CallToolRequestParams,
    list_issues: &CallToolRequestParams,
    calls: usize,
) {
    let server = guarded_support::demo_stdio_server();
    let gw = Gateway::start(common::options(
        BTreeMap::from([("github".to_owned(), server)]),
        RoutingMode::Routed,
    ))
    .await
    .unwrap();
    let via = common::rmcp_client(
        &format!("http://{}/mcp/github", gw.local_addr()),
        common::API_KEY,
    )
    .await;
    let (direct_read, via_read, pairs_read) = measure_pairs(direct, &via, issue_read, calls).await;
    let (direct_list, via_list, pairs_list) = measure_pairs(direct, &via, list_issues, calls).await;
    println!("the same calls through a gateway without a guard:");
    let (d50, d99) = report("issue_read direct", &direct_read);
    let (g50, g99) = report("issue_read unguarded", &via_read);
    print_added(g50, d50, g99, d99);
    print_paired(&pairs_read);
    let (d50, d99) = report("list_issues 30 direct", &direct_list);
    let (g50, g99) = report("list_issues 30 unguarded", &via_list);
    print_added(g50, d50, g99, d99);
    print_paired(&pairs_list);
    via.cancel().await.unwrap();
    lean_series(
        gw.local_addr(),
        "unguarded tools/call",
        issue_read,
        list_issues,
        calls,
    )
    .await;
    gw.shutdown().await;
}

/// The mean time of each guard function over every call of the series
/// (the gateway's own histogram), to set against the added latency.
fn print_guard_time(pipeline: &dyn guardway_gateway::CallInterceptor) {
    let mut text = String::new();
    pipeline.render_metrics(&mut text);
    let value = |line: &str| line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
    for function in ["label_resource", "label_response"] {
        let series = format!("function=\"{function}\"");
        let find = |suffix: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with(&format!("guardway_guard_call_duration_seconds_{suffix}"))
                        && l.contains(&series)
                })
                .and_then(value)
        };
        if let (Some(sum), Some(count)) = (find("sum"), find("count"))
            && count > 0.0
        {
            println!(
                "guard {function}: {count} calls, mean {:.1}µs",
                sum / count * 1e6
            );
        }
    }
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
    // As `guardway serve` does: freed memory goes back to the system in the background.
    let _ = tikv_jemalloc_ctl::background_thread::write(true);
    let calls: usize = std::env::var("GUARDWAY_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let workers = std::env::var("GUARDWAY_BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    let series = std::env::var("GUARDWAY_BENCH_SERIES").unwrap_or_default();
    let (echo, guarded) = match series.as_str() {
        "echo" => (true, false),
        "guarded" => (false, true),
        "guard" => (false, false),
        _ => (true, true),
    };
    let guard_only = matches!(series.as_str(), "guard" | "");
    // The logging of `guardway serve` (stderr and the log directory), to
    // measure what it costs a call; send stderr somewhere cheap.
    let _log_dir = std::env::var_os("GUARDWAY_BENCH_LOGGING").map(|_| {
        let dir = tempfile::tempdir().unwrap();
        guardway_gateway::logfiles::install_global_logging(dir.path(), "info");
        dir
    });
    runtime.block_on(async move {
        if echo {
            echo_series(calls).await;
        }
        if guarded {
            guarded_series(calls).await;
        }
        if guard_only {
            guard_series().await;
        }
    });
}

/// Direct and routed series of the Python echo backend's `echo`.
async fn echo_series(calls: usize) {
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
}
