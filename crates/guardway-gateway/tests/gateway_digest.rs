//! `gateway.md` in the log directory (gateway.md §7) as `guardway serve`
//! arranges it: the process-wide logging layer and the gateway share the
//! directory's log files. A gateway starts with a guarded demo backend, a
//! backend that cannot start and a guard that cannot load; the digest lists
//! them, then the warning of the failed launch, then a warning logged while
//! serving (a jq response filter failing on a call).

mod common;
mod guarded_support;

use std::collections::BTreeMap;

use guardway_gateway::config::RoutingMode;
use guardway_gateway::postprocess::JqFilter;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_shows_startup_and_the_problems_that_follow() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("logs");
    assert!(guardway_gateway::logfiles::install_global_logging(
        &log_dir, "info"
    ));

    let mut github = guarded_support::demo_stdio_server();
    github.guard = Some("sample".into());
    github.guard_policies = Some(json!({"allow-only": {"repos": "all", "min-integrity": "none"}}));
    github.tool_response_filters.insert(
        "list_issues".into(),
        JqFilter::compile("error(\"reshape failed\")").unwrap(),
    );
    let broken = common::stdio_server("/nonexistent/guardway-test-backend".into(), Vec::new());
    let mut unguarded = guarded_support::demo_stdio_server();
    unguarded.guard = Some("missing".into());
    unguarded.guard_policies = github.guard_policies.clone();

    let mut options = common::options(
        BTreeMap::from([
            ("github".to_owned(), github),
            ("broken".to_owned(), broken),
            ("lost".to_owned(), unguarded),
        ]),
        RoutingMode::Routed,
    );
    options.log_dir = log_dir.clone();
    options.config.guards = BTreeMap::from([
        (
            "sample".to_owned(),
            guarded_support::plain_wasm_guard(guarded_support::sample_guard()),
        ),
        (
            "missing".to_owned(),
            guarded_support::plain_wasm_guard(dir.path().join("no-such-guard.wasm")),
        ),
    ]);
    let (gw, _) = guarded_support::start_guarded(options).await;
    let digest_path = log_dir.join("gateway.md");
    let startup = std::fs::read_to_string(&digest_path).unwrap();
    let tools = gw.backend("github").unwrap().tools().len();
    assert!(tools > 5);

    assert!(startup.starts_with("# MCP Gateway\n"), "{startup}");
    for expected in [
        format!("| Version | guardway {} |", env!("CARGO_PKG_VERSION")),
        "| Mode | routed |".to_owned(),
        format!("| Listening on | {} |", gw.local_addr()),
        "| Guard compilation cache | disabled |".to_owned(),
        "## Servers (2 of 3 running)".to_owned(),
        format!(
            "| github | stdio `{}` | running | {tools} |  |",
            guarded_support::demo_backend().display()
        ),
        "| broken | stdio `/nonexistent/guardway-test-backend` | error | 0 |".to_owned(),
        "| Workflow repository | not set |".to_owned(),
        "| Force public repos | not applied (GITHUB_REPOSITORY not set) |".to_owned(),
        r#"| github | sample | wasm | healthy | `{"allow-only":{"repos":"all","min-integrity":"none"}}` |  |"#
            .to_owned(),
        "| lost | missing |  | failed-to-load |".to_owned(),
    ] {
        assert!(
            startup.contains(&expected),
            "missing {expected:?} in:\n{startup}"
        );
    }
    let broken_row = startup
        .lines()
        .find(|l| l.starts_with("| broken |"))
        .unwrap();
    assert!(
        broken_row.len()
            > "| broken | stdio `/nonexistent/guardway-test-backend` | error | 0 |  |".len(),
        "{broken_row}"
    );
    let lost_row = startup
        .lines()
        .find(|l| l.starts_with("| lost | missing"))
        .unwrap();
    assert!(lost_row.contains("no-such-guard.wasm"), "{lost_row}");

    // The warning about the failed launch came before the digest and is
    // listed under it.
    let (head, problems) = startup.split_once("## Errors and warnings").unwrap();
    assert!(head.contains("## Guards"));
    assert!(
        problems.lines().any(|l| l.contains("**WARN**")
            && l.contains("some backends failed to start")
            && l.contains("broken")),
        "{problems}"
    );

    // A warning while serving is appended.
    let client = common::rmcp_client(
        &format!("http://{}/mcp/github", gw.local_addr()),
        common::API_KEY,
    )
    .await;
    let result = client
        .call_tool(common::call(
            "list_issues",
            json!({"owner": "octo-org", "repo": "api", "perPage": 2}),
        ))
        .await
        .unwrap();
    // Unfiltered: the guard's list of issues (an array), not an error.
    assert_ne!(result.is_error, Some(true));
    assert!(common::text_of(&result).starts_with('['), "{result:?}");
    client.cancel().await.unwrap();
    let after = std::fs::read_to_string(&digest_path).unwrap();
    assert!(
        after.starts_with(&startup),
        "the digest was rewritten:\n{after}"
    );
    let appended = &after[startup.len()..];
    assert!(
        appended.contains("**WARN** [postprocess] tool response filter failed; returning the unfiltered result server=github")
            && appended.contains("reshape failed"),
        "{appended}"
    );
    gw.shutdown().await;
}
