//! `GET /reflect` (difc.md §6): the DIFC snapshot after a guarded call made
//! with the Python MCP SDK client through the sample guard in front of the
//! demo backend, and the answer of a gateway without DIFC.

use crate::common;
use crate::guarded_support;
use crate::surface_peers;

use std::collections::BTreeMap;

use guardway_gateway::Gateway;
use guardway_gateway::config::RoutingMode;
use serde_json::{Value, json};

async fn reflect(base: &str) -> Value {
    let resp = reqwest::get(format!("{base}/reflect")).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn assert_timestamp(doc: &Value) {
    let ts = doc["timestamp"].as_str().unwrap();
    assert_eq!(ts.len(), "2026-01-01T00:00:00.000Z".len(), "{ts}");
    assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflect_shows_the_labels_of_an_agent_after_a_guarded_call() {
    common::init_tracing();
    let python = common::python();
    let mut github = guarded_support::demo_stdio_server();
    github.guard = Some("sample".into());
    github.guard_policies =
        Some(json!({"allow-only": {"repos": ["octo-org/*"], "min-integrity": "approved"}}));
    let servers = BTreeMap::from([("github".to_owned(), github)]);
    let mut options = common::options(servers, RoutingMode::Routed);
    options.guards_mode = Some("filter".into());
    options.config.guards = BTreeMap::from([(
        "sample".to_owned(),
        guarded_support::plain_wasm_guard(guarded_support::sample_guard()),
    )]);
    let (gw, _) = guarded_support::start_guarded(options).await;
    let base = format!("http://{}", gw.local_addr());

    let before = reflect(&base).await;
    assert_eq!(before["agents"], json!({}));
    assert_eq!(before["mode"], "filter");
    assert_timestamp(&before);

    let call = surface_peers::python_call(
        &python,
        &format!("{base}/mcp/github"),
        json!({"Authorization": common::API_KEY, "X-Agent-Id": "agent-reflect"}),
        "list_issues",
        json!({"owner": "octo-org", "repo": "api", "perPage": 5}),
        None,
    )
    .await;
    assert_eq!(call.output["isError"], json!(false), "{}", call.output);

    let after = reflect(&base).await;
    assert_eq!(
        after["agents"],
        json!({"agent-reflect": {
            "secrecy": ["private:octo-org"],
            "integrity": ["approved:octo-org/*", "none:octo-org/*", "unapproved:octo-org/*"],
        }})
    );
    assert_eq!(after["mode"], "filter");
    assert_timestamp(&after);
    let keys: Vec<&String> = after.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["agents", "mode", "timestamp"]);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflect_without_difc() {
    common::init_tracing();
    let servers = BTreeMap::from([("alpha".to_owned(), common::echo_backend("alpha"))]);
    let gw = Gateway::start(common::options(servers, RoutingMode::Routed))
        .await
        .unwrap();
    let doc = reflect(&format!("http://{}", gw.local_addr())).await;
    assert_eq!(doc["agents"], json!({}));
    assert_eq!(doc["mode"], "disabled");
    assert_timestamp(&doc);
    // No key needed, and only GET.
    let resp = reqwest::Client::new()
        .post(format!("http://{}/reflect", gw.local_addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    gw.shutdown().await;
}
