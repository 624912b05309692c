//! Reference-compatible HTTP behaviour (gateway.md §3): auto-initialise of a
//! session-less `tools/call`, `/close`, the `Accept` and
//! `MCP-Protocol-Version` checks, and the DNS-rebinding `Host` check.

use crate::common;

use common::{messages, post};

use guardway_gateway::{Gateway, RunningGateway};
use serde_json::{Value, json};

async fn gateway() -> RunningGateway {
    let mut options = common::echo_alpha_options();
    options.log_dir = common::test_log_dir();
    Gateway::start(options).await.unwrap()
}

fn echo_call(id: i64, text: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": "echo", "arguments": {"text": text}}})
}

fn initialize() -> Value {
    common::initialize_request("raw")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_less_tool_call_is_auto_initialised() {
    let gw = gateway().await;
    let url = format!("http://{}/mcp/alpha", gw.local_addr());
    let resp = post(&url).json(&echo_call(7, "hi")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let session = common::session_id(&resp);
    let body = resp.text().await.unwrap();
    let answer = messages(&body)
        .into_iter()
        .find(|m| m["id"] == 7)
        .unwrap_or_else(|| panic!("no answer in {body}"));
    assert_eq!(
        answer["result"]["content"][0]["text"], "alpha: hi",
        "{answer}"
    );
    // The session the gateway made stays usable.
    let resp = post(&url)
        .header("mcp-session-id", &session)
        .json(&echo_call(8, "again"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    assert!(
        messages(&body)
            .iter()
            .any(|m| m["id"] == 8 && m["result"]["content"][0]["text"] == "alpha: again"),
        "{body}"
    );
    // Other session-less requests are not auto-initialised.
    let list = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"});
    let resp = post(&url).json(&list).send().await.unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_shuts_the_gateway_down_once() {
    let gw = gateway().await;
    let base = format!("http://{}", gw.local_addr());
    let client = reqwest::Client::new();
    let resp = client
        .get(format!("{base}/close"))
        .header("authorization", common::API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let resp = client.post(format!("{base}/close")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(!gw.close_requested().is_cancelled());

    let resp = common::post_close(&base).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"status": "closed", "message": "Gateway shutdown initiated", "serversTerminated": 1})
    );
    assert!(gw.close_requested().is_cancelled());
    let resp = post(&format!("{base}/mcp/alpha"))
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let resp = common::post_close(&base).await;
    assert_eq!(resp.status(), 410);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"error": "Gateway has already been closed"})
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_protocol_version_and_host_checks_answer_like_the_reference() {
    let gw = gateway().await;
    let url = format!("http://{}/mcp/alpha", gw.local_addr());
    let resp = reqwest::Client::new()
        .post(&url)
        .header("authorization", common::API_KEY)
        .header("accept", "application/json")
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let resp = post(&url)
        .header("mcp-protocol-version", "2026-07-28")
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("2026-07-28"));

    let resp = post(&url)
        .header("host", "evil.example")
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.text().await.unwrap(), "Forbidden: invalid Host header");

    // The same checks hold for a tool call on a live session.
    let session = common::open_session(&url).await;
    let call = |headers: &[(&str, &str)]| {
        let mut request = common::session_post(&url, &session);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.json(&common::tool_call(json!(2), "echo", json!({"text": "hi"})))
    };
    let resp = call(&[("host", "evil.example")]).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let resp = call(&[("mcp-protocol-version", "2026-07-28")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = call(&[]).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        common::messages(&resp.text().await.unwrap())[0]["result"]["content"][0]["text"],
        "alpha: hi"
    );

    // A well-formed request with a listed version still opens a session.
    let resp = post(&url)
        .header("mcp-protocol-version", "2025-06-18")
        .header("host", format!("localhost:{}", gw.local_addr().port()))
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("mcp-session-id"));
    gw.shutdown().await;
}
