//! The gateway's HTTP surface with raw requests: authentication answers,
//! malformed JSON, wrong JSON-RPC, oversized bodies, unknown sessions and
//! servers, `/health`, the start-up document — and that the gateway keeps
//! serving a real session after each bad request.

use crate::common;
use crate::surface_peers;

use common::{ACCEPT, messages, post};

use std::collections::BTreeMap;

use guardway_gateway::config::RoutingMode;
use guardway_gateway::{Gateway, RunningGateway};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn gateway() -> RunningGateway {
    Gateway::start(common::echo_alpha_options()).await.unwrap()
}

fn initialize() -> Value {
    common::initialize_request("raw")
}

/// A full raw session: initialize, initialized, tools/call — proves the
/// gateway still serves after whatever the test did before.
async fn assert_still_serving(url: &str) {
    let resp = post(url).json(&initialize()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let session = common::session_id(&resp);
    let init = messages(&resp.text().await.unwrap());
    assert_eq!(init[0]["result"]["serverInfo"]["name"], "awmg-alpha");
    assert_eq!(common::post_initialized(url, &session).await.status(), 202);
    let resp = common::session_post(url, &session)
        .json(&common::tool_call(
            json!(2),
            "echo",
            json!({"text": "still here"}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let msgs = messages(&resp.text().await.unwrap());
    let last = msgs.last().unwrap();
    assert_eq!(last["id"], 2);
    assert_eq!(last["result"]["content"][0]["text"], "alpha: still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_a_parse_error() {
    let gw = gateway().await;
    let url = format!("http://{}/mcp/alpha", gw.local_addr());
    let resp = post(&url)
        .body("{\"jsonrpc\": \"2.0\", ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32700);
    assert_eq!(body["id"], Value::Null);
    assert_still_serving(&url).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_jsonrpc_is_an_invalid_request() {
    let gw = gateway().await;
    let url = format!("http://{}/mcp/alpha", gw.local_addr());
    for bad in [
        json!({"jsonrpc": "1.0", "id": 7, "method": "initialize"}),
        json!({"id": 7, "method": "tools/list"}),
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": 5}),
        json!([{"jsonrpc": "2.0", "id": 7, "method": "ping"}]),
        json!("just a string"),
    ] {
        let resp = post(&url).json(&bad).send().await.unwrap();
        assert_eq!(resp.status(), 400, "for {bad}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], -32600, "for {bad}");
        assert_eq!(body["jsonrpc"], "2.0");
    }
    // A well-formed request for a method nobody serves: method not found.
    let resp = post(&url).json(&initialize()).send().await.unwrap();
    let session = common::session_id(&resp);
    let resp = post(&url)
        .header("mcp-session-id", &session)
        .json(&json!({"jsonrpc": "2.0", "id": 3, "method": "no/such/method"}))
        .send()
        .await
        .unwrap();
    let msgs = messages(&resp.text().await.unwrap());
    assert_eq!(msgs.last().unwrap()["error"]["code"], -32601);
    assert_still_serving(&url).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_is_413() {
    let gw = gateway().await;
    let url = format!("http://{}/mcp/alpha", gw.local_addr());
    let huge = "x".repeat(guardway_gateway::MAX_REQUEST_BODY_BYTES + 1);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {"text": huge}}});
    let resp = post(&url).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    // Also when the length is not declared up front (chunked): raw TCP, as
    // the gateway answers before reading the whole body.
    let mut tcp = tokio::net::TcpStream::connect(gw.local_addr())
        .await
        .unwrap();
    let head = format!(
        "POST /mcp/alpha HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\
         Accept: {ACCEPT}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        common::API_KEY
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.to_string().into_bytes().chunks(1 << 20) {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        if tcp.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = tcp.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_still_serving(&url).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_session_server_and_path_are_404() {
    let gw = gateway().await;
    let base = format!("http://{}", gw.local_addr());
    let url = format!("{base}/mcp/alpha");
    let resp = post(&url)
        .header("mcp-session-id", "no-such-session")
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.text().await.unwrap(), "session not found");
    let resp = post(&format!("{base}/mcp/nope"))
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    // Routed mode has no unified endpoint.
    let resp = post(&format!("{base}/mcp"))
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_still_serving(&url).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_rules_wrong_content_type_and_accept() {
    let gw = gateway().await;
    let url = format!("http://{}/mcp/alpha", gw.local_addr());
    let resp = reqwest::Client::new()
        .post(&url)
        .header("authorization", common::API_KEY)
        .header("accept", ACCEPT)
        .header("content-type", "text/plain")
        .body(initialize().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let resp = reqwest::Client::new()
        .post(&url)
        .header("authorization", common::API_KEY)
        .header("accept", "application/json")
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error());
    assert_still_serving(&url).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_answers() {
    let gw = gateway().await;
    let url = format!("http://{}/mcp/alpha", gw.local_addr());
    let client = reqwest::Client::new();
    let resp = client
        .post(&url)
        .header("accept", ACCEPT)
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"error": "unauthorized", "message": "missing Authorization header"})
    );
    for wrong in [
        "nope".to_owned(),
        format!("Bearer {}", common::API_KEY),
        format!("{}x", common::API_KEY),
    ] {
        let resp = client
            .post(&url)
            .header("accept", ACCEPT)
            .header("authorization", wrong)
            .json(&initialize())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            json!({"error": "unauthorized", "message": "invalid API key"})
        );
    }
    // Control characters cannot be sent through an HTTP library: raw TCP.
    // The HTTP parser itself refuses them with 400 before any handler runs.
    let mut tcp = tokio::net::TcpStream::connect(gw.local_addr())
        .await
        .unwrap();
    tcp.write_all(
        b"POST /mcp/alpha HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: a\x01b\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // /health is open.
    let resp = client
        .get(format!("http://{}/health", gw.local_addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_still_serving(&url).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_document() {
    common::init_tracing();
    let servers = BTreeMap::from([
        ("alpha".to_owned(), common::echo_backend("alpha")),
        (
            "broken".to_owned(),
            common::stdio_server("/nonexistent/guardway-test-backend".into(), vec![]),
        ),
    ]);
    let gw = Gateway::start(common::options(servers, RoutingMode::Routed))
        .await
        .unwrap();
    let body: Value = reqwest::get(format!("http://{}/health", gw.local_addr()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["specVersion"], "1.14.0");
    assert_eq!(body["gatewayVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["servers"]["alpha"]["status"], "running");
    assert!(body["servers"]["alpha"]["uptime"].is_u64());
    assert_eq!(body["servers"]["broken"]["status"], "error");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_document_with_generated_key() {
    common::init_tracing();
    let mut alpha = common::echo_backend("alpha");
    alpha.tools = Some(vec!["echo".into()]);
    let servers = BTreeMap::from([("alpha".to_owned(), alpha)]);
    let mut options = common::options(servers, RoutingMode::Routed);
    options.config.gateway.api_key = None;
    let gw = Gateway::start(options).await.unwrap();
    let key = gw.api_key().to_owned();
    assert_eq!(key.len(), 64);
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    let doc = gw.startup_document();
    assert_eq!(
        doc,
        json!({"mcpServers": {"alpha": {
            "type": "http",
            "url": format!("http://{}/mcp/alpha", gw.local_addr()),
            "headers": {"Authorization": key},
            "tools": ["echo"],
        }}})
    );
    // The generated key is the one the gateway checks.
    let client = common::rmcp_client(&format!("http://{}/mcp/alpha", gw.local_addr()), &key).await;
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 1);
    client.cancel().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_agent_id_refuses_a_new_session() {
    let gw = gateway().await;
    let url = format!("http://{}/mcp/alpha", gw.local_addr());
    for bad in ["..", "a/b", "a\\b"] {
        let resp = post(&url)
            .header("x-agent-id", bad)
            .json(&initialize())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "for {bad:?}");
        assert_eq!(
            resp.json::<Value>().await.unwrap()["message"],
            "invalid agent id: must be one safe path segment"
        );
    }
    let resp = post(&url)
        .header("x-agent-id", "agent-7")
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_still_serving(&url).await;
    gw.shutdown().await;
}

fn delete(url: &str, session: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .delete(url)
        .header("authorization", common::API_KEY)
        .header("mcp-session-id", session)
}

fn tools_list(url: &str, session: &str) -> reqwest::RequestBuilder {
    post(url)
        .header("mcp-session-id", session)
        .json(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_ends_the_session_with_204_and_the_session_is_then_unknown() {
    let gw = gateway().await;
    let url = format!("http://{}/mcp/alpha", gw.local_addr());
    let session = common::open_session(&url).await;
    assert_eq!(
        tools_list(&url, &session).send().await.unwrap().status(),
        200
    );

    let resp = delete(&url, &session).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.text().await.unwrap(), "");

    for resp in [
        tools_list(&url, &session).send().await.unwrap(),
        delete(&url, &session).send().await.unwrap(),
        reqwest::Client::new()
            .get(&url)
            .header("authorization", common::API_KEY)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &session)
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.text().await.unwrap(), "session not found");
    }
    assert_still_serving(&url).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_ends_its_session_without_a_termination_warning() {
    let python = common::python();
    let gw = gateway().await;
    let url = format!("http://{}/mcp/alpha", gw.local_addr());
    let call = surface_peers::python_call(
        &python,
        &url,
        json!({"Authorization": common::API_KEY}),
        "echo",
        json!({"text": "bye"}),
        None,
    )
    .await;
    assert_eq!(call.output["texts"], json!(["alpha: bye"]));
    assert!(
        !call.stderr.contains("Session termination failed"),
        "{}",
        call.stderr
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_expire_after_the_session_timeout() {
    common::init_tracing();
    let servers = BTreeMap::from([("alpha".to_owned(), common::echo_backend("alpha"))]);
    let mut options = common::options(servers, RoutingMode::Routed);
    // Several times the gaps between `busy`'s messages, so that a loaded
    // machine's delays do not expire it early.
    options.session_timeout = std::time::Duration::from_secs(4);
    let gw = Gateway::start(options).await.unwrap();
    let url = format!("http://{}/mcp/alpha", gw.local_addr());
    let idle = common::open_session(&url).await;
    let busy = common::open_session(&url).await;
    let caller = common::open_session(&url).await;
    // `busy` sends a message every second, `caller` a tool call (served
    // on the direct path, outside rmcp's session worker); `idle` says
    // nothing.
    for round in 0..6 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert_eq!(tools_list(&url, &busy).send().await.unwrap().status(), 200);
        let resp = common::session_post(&url, &caller)
            .json(&common::tool_call(
                json!(10 + round),
                "echo",
                json!({"text": "tick"}),
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let answer = messages(&resp.text().await.unwrap());
        assert_eq!(answer[0]["result"]["content"][0]["text"], "alpha: tick");
    }
    let resp = tools_list(&url, &idle).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.text().await.unwrap(), "session not found");
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    for session in [&busy, &caller] {
        let resp = tools_list(&url, session).send().await.unwrap();
        assert_eq!(resp.status(), 404);
    }
    // New sessions are still served.
    let fresh = common::open_session(&url).await;
    assert_eq!(tools_list(&url, &fresh).send().await.unwrap().status(), 200);
    gw.shutdown().await;
}

/// The `guardway_mcp_sessions` sample of `endpoint` on `/metrics`.
async fn live_sessions(base: &str, endpoint: &str) -> Option<u64> {
    let body = reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let prefix = format!("guardway_mcp_sessions{{endpoint=\"{endpoint}\"}} ");
    body.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_sessions_are_closed_without_new_traffic() {
    common::init_tracing();
    let servers = BTreeMap::from([("alpha".to_owned(), common::echo_backend("alpha"))]);
    let mut options = common::options(servers, RoutingMode::Routed);
    options.session_timeout = std::time::Duration::from_secs(4);
    let gw = Gateway::start(options).await.unwrap();
    let base = format!("http://{}", gw.local_addr());
    let url = format!("{base}/mcp/alpha");
    let mut abandoned = Vec::new();
    for _ in 0..3 {
        abandoned.push(common::open_session(&url).await);
    }
    assert_eq!(live_sessions(&base, "/mcp/alpha").await, Some(3));
    // No MCP request and no new session from here on: only the sweeper can
    // close them (timeout 4 s, a sweep every second).
    let started = std::time::Instant::now();
    let mut live = None;
    while started.elapsed() < std::time::Duration::from_secs(60) {
        live = live_sessions(&base, "/mcp/alpha").await;
        if live == Some(0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(live, Some(0), "abandoned sessions are still open");
    for session in &abandoned {
        let resp = tools_list(&url, session).send().await.unwrap();
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.text().await.unwrap(), "session not found");
    }
    let fresh = common::open_session(&url).await;
    assert_eq!(tools_list(&url, &fresh).send().await.unwrap().status(), 200);
    assert_eq!(live_sessions(&base, "/mcp/alpha").await, Some(1));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_longer_than_the_session_timeout_keeps_its_session() {
    common::init_tracing();
    let servers = BTreeMap::from([("alpha".to_owned(), common::echo_backend("alpha"))]);
    let mut options = common::options(servers, RoutingMode::Routed);
    options.session_timeout = std::time::Duration::from_secs(2);
    let gw = Gateway::start(options).await.unwrap();
    let base = format!("http://{}", gw.local_addr());
    let url = format!("{base}/mcp/alpha");
    let session = common::open_session(&url).await;
    // Twice the timeout, and the sweeper runs every second meanwhile.
    let resp = common::session_post(&url, &session)
        .json(&common::tool_call(json!(7), "sleep", json!({"seconds": 4})))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer = messages(&resp.text().await.unwrap());
    assert_eq!(answer[0]["id"], 7);
    assert!(answer[0]["result"].is_object(), "{answer:?}");
    // The idle clock restarted when the answer was sent.
    let resp = tools_list(&url, &session).send().await.unwrap();
    assert_eq!(resp.status(), 200, "the session expired under its call");
    assert_eq!(live_sessions(&base, "/mcp/alpha").await, Some(1));
    // Idle now: it expires.
    let started = std::time::Instant::now();
    while live_sessions(&base, "/mcp/alpha").await != Some(0) {
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        tools_list(&url, &session).send().await.unwrap().status(),
        404
    );
    gw.shutdown().await;
}

/// Sends `head` and then a `len`-byte body in 64 KiB pieces with a pause
/// between them (a client still sending), like an ordinary HTTP client
/// that reads the answer only once its request is out, and returns what it
/// could read back. A write or read failure (a reset) is returned as such.
async fn slow_post(
    addr: std::net::SocketAddr,
    head: &str,
    len: usize,
) -> Result<String, std::io::Error> {
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.write_all(head.as_bytes()).await?;
    let piece = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < len {
        let n = piece.len().min(len - sent);
        tcp.write_all(&piece[..n]).await?;
        sent += n;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// A request refused from its headers alone (no key, a wrong key, an unsafe
/// agent id, an unknown endpoint) while its 2 MB body
/// is still arriving: the client reads the status instead of a reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_answered_while_the_body_is_still_arriving() {
    let gw = gateway().await;
    let len = 2 * 1024 * 1024;
    let cases = [
        ("/mcp/alpha", String::new(), "401"),
        (
            "/mcp/alpha",
            "Authorization: wrong-key\r\n".to_owned(),
            "401",
        ),
        (
            "/mcp/alpha",
            format!("Authorization: {}\r\nX-Agent-Id: ..\r\n", common::API_KEY),
            "400",
        ),
        // Read in full, then refused: not JSON.
        (
            "/mcp/alpha",
            format!("Authorization: {}\r\n", common::API_KEY),
            "400",
        ),
        ("/nowhere", String::new(), "404"),
        ("/close", "Authorization: wrong-key\r\n".to_owned(), "401"),
    ];
    for (path, extra, status) in cases {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Accept: {ACCEPT}\r\n\
             Content-Type: application/json\r\nContent-Length: {len}\r\n\
             Connection: close\r\n\r\n"
        );
        let answer = slow_post(gw.local_addr(), &head, len).await;
        let answer = answer.unwrap_or_else(|e| panic!("{path} {extra:?}: {e}"));
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{path} {extra:?}: {answer}"
        );
    }
    let url = format!("http://{}/mcp/alpha", gw.local_addr());
    assert_still_serving(&url).await;
    gw.shutdown().await;
}

/// A client that sends `Expect: 100-continue` and waits is refused at once,
/// without being asked for its body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_client_waiting_for_100_continue_is_not_asked_for_its_body() {
    let gw = gateway().await;
    let mut tcp = tokio::net::TcpStream::connect(gw.local_addr())
        .await
        .unwrap();
    let head = format!(
        "POST /mcp/alpha HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: wrong-key\r\n\
         Accept: {ACCEPT}\r\nContent-Type: application/json\r\n\
         Content-Length: 2097152\r\nExpect: 100-continue\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tcp.read_to_end(&mut answer),
    )
    .await
    .expect("the connection is closed after the answer")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let url = format!("http://{}/mcp/alpha", gw.local_addr());
    assert_still_serving(&url).await;
    gw.shutdown().await;
}
