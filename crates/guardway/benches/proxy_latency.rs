//! Added latency of `guardway proxy` per read: the same requests made
//! directly to the mock GitHub API (`tests/python/mock_github.py`) and
//! through a proxy running the sample guard in front of it, alternated
//! call by call so both sides see the same machine load; p50 and p99 of
//! each side and their difference. Series: a guarded REST list
//! (`list_issues`, 10 issues, 7 filtered), a guarded REST object
//! (`issue_read`), an unguarded metadata read (`/meta`), a guarded GraphQL
//! connection (`list_issues`, 10 nodes). A plain harness (not criterion)
//! because percentiles are the point. After the run the proxy's own
//! histogram (`guardway_proxy_guard_seconds`: the pipeline without the
//! upstream round trip) is printed too.
//!
//! `cargo bench -p guardway --bench proxy_latency`; `GUARDWAY_BENCH_CALLS`
//! sets the measured calls per side and series (default 300).

#[path = "../tests/proxy/common.rs"]
#[allow(dead_code)]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;

use common::{Mock, Proxy, client, scoped_policy};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// One request; panics on a failure status.
type Request<'a> = Box<dyn Fn(&str) -> reqwest::blocking::RequestBuilder + 'a>;

fn timed(request: &Request<'_>, base: &str) -> Duration {
    let started = Instant::now();
    let response = request(base).send().unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let _ = response.bytes().unwrap();
    started.elapsed()
}

fn main() {
    let calls: usize = std::env::var("GUARDWAY_BENCH_CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let mock = Mock::start();
    let proxy = Proxy::start(&mock, Some(&scoped_policy()), &[]);
    let http = client();
    let query = json!({"query": "query($owner: String!, $repo: String!) { repository(owner: $owner, name: $repo) { issues(first: 50) { totalCount nodes { number title author { login } authorAssociation } } } }",
                       "variables": {"owner": "octo-org", "repo": "api"}});
    let series: Vec<(&str, Request<'_>)> = vec![
        (
            "REST list_issues (10 issues, 7 filtered)",
            Box::new(|base: &str| {
                http.get(format!("{base}/repos/octo-org/api/issues"))
                    .header("authorization", "token bench")
            }),
        ),
        (
            "REST issue_read (one approved issue)",
            Box::new(|base: &str| {
                http.get(format!("{base}/repos/octo-org/api/issues/2"))
                    .header("authorization", "token bench")
            }),
        ),
        (
            "REST /meta (unguarded pass-through)",
            Box::new(|base: &str| {
                http.get(format!("{base}/meta"))
                    .header("authorization", "token bench")
            }),
        ),
        (
            "GraphQL list_issues (10 nodes, 7 filtered)",
            Box::new(|base: &str| {
                http.post(format!("{base}/graphql"))
                    .header("authorization", "token bench")
                    .json(&query)
            }),
        ),
    ];
    println!("proxy added latency, {calls} calls per side and series (alternated)\n");
    println!(
        "| series | direct p50 | proxy p50 | added p50 | direct p99 | proxy p99 | added p99 |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, request) in &series {
        for _ in 0..30 {
            timed(request, &mock.url);
            timed(request, &proxy.url);
        }
        let mut direct = Vec::with_capacity(calls);
        let mut proxied = Vec::with_capacity(calls);
        for _ in 0..calls {
            direct.push(timed(request, &mock.url));
            proxied.push(timed(request, &proxy.url));
        }
        direct.sort();
        proxied.sort();
        let (d50, p50) = (percentile(&direct, 0.5), percentile(&proxied, 0.5));
        let (d99, p99) = (percentile(&direct, 0.99), percentile(&proxied, 0.99));
        println!(
            "| {name} | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs |",
            micros(d50),
            micros(p50),
            micros(p50) - micros(d50),
            micros(d99),
            micros(p99),
            micros(p99) - micros(d99)
        );
    }
    let metrics = http
        .get(format!("{}/metrics", proxy.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let (sum, count) = (
        value("guardway_proxy_guard_seconds_sum "),
        value("guardway_proxy_guard_seconds_count "),
    );
    if count > 0.0 {
        println!(
            "\npipeline time per guarded read (guardway_proxy_guard_seconds, upstream excluded): mean {:.0} µs over {count} reads",
            sum / count * 1e6
        );
    }
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("guardway_proxy_guard_seconds_bucket"))
    {
        println!("  {line}");
    }
}
