//! The TLS listener (gateway.md §3.3) with certificates generated at test
//! time: the Python MCP SDK client over https trusting the test CA, the
//! `https` start-up document, mutual TLS refusing a client without a
//! certificate, and unusable TLS files failing start-up.

use crate::common;
use crate::surface_peers;

use std::collections::BTreeMap;

use guardway_gateway::config::{RoutingMode, TlsOptions};
use guardway_gateway::{Gateway, GatewayError, RunningGateway};
use serde_json::json;
use surface_peers::TestPki;

async fn tls_gateway(pki: &TestPki, client_ca: bool) -> RunningGateway {
    common::init_tracing();
    let servers = BTreeMap::from([("alpha".to_owned(), common::echo_backend("alpha"))]);
    let mut options = common::options(servers, RoutingMode::Routed);
    options.extra.tls = Some(TlsOptions {
        cert: pki.server_cert.clone(),
        key: pki.server_key.clone(),
        client_ca: client_ca.then(|| pki.ca_cert.clone()),
    });
    Gateway::start(options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_client_over_https_with_the_ca_trusted() {
    let python = common::python();
    let pki = TestPki::generate();
    let gw = tls_gateway(&pki, false).await;
    let url = format!("https://127.0.0.1:{}/mcp/alpha", gw.local_addr().port());
    assert_eq!(gw.startup_document()["mcpServers"]["alpha"]["url"], url);
    let call = surface_peers::python_call(
        &python,
        &url,
        json!({"Authorization": common::API_KEY}),
        "echo",
        json!({"text": "over tls"}),
        Some(&pki.ca_cert),
    )
    .await;
    assert_eq!(call.output["texts"], json!(["alpha: over tls"]));
    assert!(
        call.output["tools"]
            .as_array()
            .unwrap()
            .contains(&json!("echo"))
    );
    assert!(
        !call.stderr.contains("Session termination failed"),
        "{}",
        call.stderr
    );

    let port = gw.local_addr().port();
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
    // A client that does not trust the CA refuses the server.
    let refused = TestPki::generate().https_get(port, "/health", None).await;
    assert!(refused.is_err(), "{refused:?}");
    // The listener keeps serving after failed handshakes.
    let (status, body) = pki.https_get(port, "/health", None).await.unwrap();
    assert_eq!(status, 200, "{body}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let pki = TestPki::generate();
    let gw = tls_gateway(&pki, true).await;
    let port = gw.local_addr().port();
    let without = pki.https_get(port, "/health", None).await;
    assert!(
        without.is_err(),
        "a client without certificate got {without:?}"
    );
    // A client certificate from another CA is refused too.
    let foreign = TestPki::generate();
    let refused = pki.https_get(port, "/health", Some(&foreign)).await;
    assert!(
        refused.is_err(),
        "a foreign client certificate got {refused:?}"
    );
    let (status, body) = pki.https_get(port, "/health", Some(&pki)).await.unwrap();
    assert_eq!(status, 200);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], "healthy");
    // An MCP request over mutual TLS still needs the API key.
    let (status, _) = pki
        .https_request(
            port,
            "POST",
            "/mcp/alpha",
            &[
                ("accept", common::ACCEPT),
                ("content-type", "application/json"),
            ],
            "{}",
            Some(&pki),
        )
        .await
        .unwrap();
    assert_eq!(status, 401);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_tls_files_stop_start_up() {
    let pki = TestPki::generate();
    let servers = BTreeMap::from([("alpha".to_owned(), common::echo_backend("alpha"))]);
    let mut options = common::options(servers, RoutingMode::Routed);
    // The key does not belong to the certificate.
    options.extra.tls = Some(TlsOptions {
        cert: pki.server_cert.clone(),
        key: pki.client_key.clone(),
        client_ca: None,
    });
    let err = Gateway::start(options.clone()).await.unwrap_err();
    assert!(matches!(err, GatewayError::Tls { .. }), "{err}");
    options.extra.tls = Some(TlsOptions {
        cert: pki.dir.path().join("absent.pem"),
        key: pki.server_key.clone(),
        client_ca: None,
    });
    let err = Gateway::start(options).await.unwrap_err().to_string();
    assert!(err.contains("absent.pem"), "{err}");
}
