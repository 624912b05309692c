//! Cost of the post-DIFC step on a `tools/call` result: the common case
//! (no jq filter, result under the spill threshold), the size bound on a
//! text too large for the quick bound, a jq reshaping filter, and a spill.
//! A plain harness printing the mean time per call of each series.
//!
//! `cargo bench -p guardway-gateway --bench postprocess`
//! (`GUARDWAY_BENCH_CALLS` sets the iterations, default 2000).

use std::time::{Duration, Instant};

use guardway_gateway::config::GatewaySettings;
use guardway_gateway::postprocess::{JqFilter, ResultPostProcessor, may_exceed};
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock};
use serde_json::json;

fn list_result(issues: usize) -> CallToolResult {
    let items: Vec<_> = (0..issues)
        .map(|n| {
            json!({"number": n, "title": format!("Issue number {n} about something"),
                "state": if n % 3 == 0 { "CLOSED" } else { "OPEN" },
                "body": "Lorem ipsum dolor sit amet, \"quoted\" text\nwith a newline. ".repeat(8),
                "user": {"login": format!("user{n}"), "type": "User"},
                "labels": ["bug", "p1"], "author_association": "MEMBER"})
        })
        .collect();
    let text = json!({"issues": items, "totalCount": issues}).to_string();
    CallToolResult::success(vec![ContentBlock::text(text)])
}

fn mean(total: Duration, calls: u32) -> String {
    format!("{:.2} µs", total.as_secs_f64() * 1e6 / f64::from(calls))
}

fn main() {
    let calls: u32 = std::env::var("GUARDWAY_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = GatewaySettings {
        payload_dir: dir.path().to_string_lossy().into_owned(),
        ..GatewaySettings::default()
    };
    let post = ResultPostProcessor::new(&settings);
    let result = list_result(30);
    let size = serde_json::to_string(&result).unwrap().len();

    runtime.block_on(async {
        let mut total = Duration::ZERO;
        for _ in 0..calls {
            let response = Ok(CallToolResponse::Complete(result.clone()));
            let start = Instant::now();
            let out = post.apply("github", response, None, || None).await;
            total += start.elapsed();
            std::hint::black_box(out).ok();
        }
        println!(
            "no filter, {size} B result (no spill): {} per call",
            mean(total, calls)
        );

        let big = list_result(400);
        let big_size = serde_json::to_string(&big).unwrap().len();
        let start = Instant::now();
        for _ in 0..calls {
            std::hint::black_box(may_exceed(&big, 524_288));
        }
        println!(
            "size bound of a {big_size} B result (byte scan): {} per call",
            mean(start.elapsed(), calls)
        );

        let filter = JqFilter::compile(
            "{total: .totalCount, open: [.issues[] | select(.state == \"OPEN\") | .number]}",
        )
        .unwrap();
        let jq_calls = calls.min(500);
        let mut total = Duration::ZERO;
        for _ in 0..jq_calls {
            let response = Ok(CallToolResponse::Complete(result.clone()));
            let start = Instant::now();
            let out = post.apply("github", response, Some(&filter), || None).await;
            total += start.elapsed();
            std::hint::black_box(out).ok();
        }
        println!(
            "jq reshape of the {size} B result: {} per call",
            mean(total, jq_calls)
        );

        let spilling = ResultPostProcessor::new(&GatewaySettings {
            payload_size_threshold: 4096,
            ..settings.clone()
        });
        let spill_calls = calls.min(200);
        let mut total = Duration::ZERO;
        for _ in 0..spill_calls {
            let response = Ok(CallToolResponse::Complete(result.clone()));
            let start = Instant::now();
            let out = spilling
                .apply("github", response, None, || Some("bench".into()))
                .await;
            total += start.elapsed();
            std::hint::black_box(out).ok();
        }
        println!(
            "spill of the {size} B result: {} per call",
            mean(total, spill_calls)
        );
    });
}
