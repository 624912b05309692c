//! Runs the Python MCP SDK client tests (tests/python/test_gateway.py)
//! against in-process gateways, routed and unified, whose backends are two
//! Python stdio MCP servers.

use crate::common;

use std::collections::BTreeMap;

use guardway_gateway::Gateway;
use guardway_gateway::config::RoutingMode;

fn servers() -> BTreeMap<String, guardway_gateway::config::ServerConfig> {
    let mut beta = common::echo_backend("beta");
    beta.tools = Some(vec![
        "echo".into(),
        "add".into(),
        "fail".into(),
        "count".into(),
        "big".into(),
    ]);
    BTreeMap::from([
        ("alpha".to_owned(), common::echo_backend("alpha")),
        ("beta".to_owned(), beta),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_client_against_routed_and_unified_gateways() {
    common::init_tracing();
    let python = common::python();
    let routed = Gateway::start(common::options(servers(), RoutingMode::Routed))
        .await
        .unwrap();
    let unified = Gateway::start(common::options(servers(), RoutingMode::Unified))
        .await
        .unwrap();

    let root = common::repo_root();
    let output = tokio::process::Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(root.join("tests/python/test_gateway.py"))
        .env(
            "GATEWAY_ROUTED_URL",
            format!("http://{}", routed.local_addr()),
        )
        .env(
            "GATEWAY_UNIFIED_URL",
            format!("http://{}", unified.local_addr()),
        )
        .env("GATEWAY_API_KEY", common::API_KEY)
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

    // Every relayed progress route was removed when its call ended.
    assert_eq!(routed.pending_progress_routes(), 0);
    assert_eq!(unified.pending_progress_routes(), 0);
    // The crash test restarted alpha behind the routed gateway.
    let health = routed.backend("alpha").unwrap().health();
    assert!(health.launches + health.agent_launches >= 2);
    routed.shutdown().await;
    unified.shutdown().await;
}
