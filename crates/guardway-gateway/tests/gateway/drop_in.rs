//! The wire as the reference's clients see it (gateway.md §3.4): a minimal
//! HTTP client that decodes the first `data:` line of an SSE answer gets
//! the JSON-RPC message (the empty priming event of SSE polling belongs to
//! sessions that asked for protocol 2025-11-25 or later), and a request
//! without `Mcp-Session-Id` is served in its agent's session, whatever its
//! method. The official Python SDKs (1.x and 2.x) work either way.

use crate::common;
use crate::surface_peers;

use common::post;

use guardway_gateway::{Gateway, RunningGateway};
use serde_json::{Value, json};

/// A routed gateway in front of the echo backend `alpha`, logging into a
/// directory of its own (kept as long as the returned guard lives).
async fn gateway() -> (RunningGateway, tempfile::TempDir) {
    let logs = tempfile::tempdir().unwrap();
    let mut options = common::echo_alpha_options();
    options.log_dir = logs.path().to_path_buf();
    (Gateway::start(options).await.unwrap(), logs)
}

/// What a minimal SSE client does: the text after the first `data:` of
/// the answer (the whole body for a JSON answer), decoded as JSON.
fn first_data(body: &str) -> Result<Value, String> {
    let data = match body.lines().find_map(|line| line.strip_prefix("data:")) {
        Some(data) => data.trim(),
        None => body.trim(),
    };
    serde_json::from_str(data)
        .map_err(|e| format!("first data {data:?} is not JSON ({e}); body:\n{body}"))
}

/// `initialize` (id 1) asking for protocol `version`.
fn initialize(version: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
           "params": {"protocolVersion": version, "capabilities": {},
                      "clientInfo": {"name": "minimal", "version": "0"}}})
}

fn echo_call(id: i64, text: &str) -> Value {
    common::tool_call(json!(id), "echo", json!({"text": text}))
}

/// Opens a session asking for `version`; its id and the first `data:` of
/// the `initialize` answer (as raw text, the priming event may be empty).
async fn open(url: &str, version: &str) -> (String, String) {
    let resp = post(url).json(&initialize(version)).send().await.unwrap();
    assert_eq!(resp.status(), 200, "initialize {version}");
    let session = common::session_id(&resp);
    let body = resp.text().await.unwrap();
    assert_eq!(
        common::post_initialized(url, &session).await.status(),
        202,
        "initialized {version}"
    );
    (session, body)
}

/// Sessions that asked for 2025-06-18, 2025-03-26, 2024-11-05 or an
/// unknown version string, auto-initialised calls and session-less
/// requests: the first `data:` line is the answer. A 2025-11-25 session
/// keeps the priming event (an empty `data:` with an event id and `retry`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_data_line_is_the_answer_unless_the_client_asked_for_sse_polling() {
    let (gw, _logs) = gateway().await;
    let url = format!("http://{}/mcp/alpha", gw.local_addr());
    for version in ["2025-06-18", "2025-03-26", "2024-11-05", "1.0.0"] {
        let (session, body) = open(&url, version).await;
        let init = first_data(&body).unwrap_or_else(|e| panic!("initialize {version}: {e}"));
        assert_eq!(init["id"], 1, "{version}: {init}");
        assert_eq!(init["result"]["serverInfo"]["name"], "awmg-alpha", "{init}");
        let resp = common::session_post(&url, &session)
            .json(&echo_call(2, version))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.text().await.unwrap();
        let answer = first_data(&body).unwrap_or_else(|e| panic!("tools/call {version}: {e}"));
        assert_eq!(answer["id"], 2, "{version}: {answer}");
        assert_eq!(
            answer["result"]["content"][0]["text"],
            format!("alpha: {version}"),
            "{answer}"
        );
        // A request rmcp's session worker answers.
        let resp = common::session_post(&url, &session)
            .json(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.text().await.unwrap();
        let answer = first_data(&body).unwrap_or_else(|e| panic!("tools/list {version}: {e}"));
        assert_eq!(answer["id"], 3, "{version}: {answer}");
    }

    // Auto-initialised (session-less tools/call of a new agent).
    let resp = post(&url)
        .header("x-agent-id", "fresh-agent")
        .json(&echo_call(5, "auto"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer = first_data(&resp.text().await.unwrap()).unwrap();
    assert_eq!(
        answer["result"]["content"][0]["text"], "alpha: auto",
        "{answer}"
    );

    // 2025-11-25 asked for SSE polling: the priming event comes first (on
    // the answers rmcp's session streams carry; a plain tools/call takes
    // the direct path, whose one-event answer has none).
    let (session, body) = open(&url, "2025-11-25").await;
    assert_primed(&body);
    let resp = common::session_post(&url, &session)
        .json(&json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    let body = resp.text().await.unwrap();
    assert_primed(&body);
    assert!(
        common::messages(&body)
            .iter()
            .any(|m| m["id"] == 4 && m["result"]["tools"].is_array()),
        "{body}"
    );

    // The official SDKs, whichever version they ask for, are served.
    surface_peers::echo_with_every_sdk(&url, "sdk", "alpha: sdk").await;
    gw.shutdown().await;
}

/// The body starts with the empty priming event of SSE polling.
fn assert_primed(body: &str) {
    let event: Vec<&str> = body
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .lines()
        .collect();
    assert!(
        event
            .iter()
            .any(|l| l.trim_end() == "data:" || l.trim_end() == "data: ")
            && event.iter().any(|l| l.starts_with("id:"))
            && event.iter().any(|l| l.starts_with("retry:")),
        "no priming event first:\n{body}"
    );
}

/// After an agent opened a session, its requests without `Mcp-Session-Id`
/// are served in that session (the reference keys sessions by the agent
/// id), for every method; another agent's session is not used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_less_requests_are_served_in_the_agents_session() {
    let (gw, _logs) = gateway().await;
    let url = format!("http://{}/mcp/alpha", gw.local_addr());
    // The default agent (identified by its Authorization) and a named one.
    for agent in [None, Some("agent-a")] {
        let with_agent = |request: reqwest::RequestBuilder| match agent {
            Some(id) => request.header("x-agent-id", id),
            None => request,
        };
        let resp = with_agent(post(&url))
            .json(&initialize("2025-06-18"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let session = common::session_id(&resp);
        let resp = with_agent(common::session_post(&url, &session))
            .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);

        let requests = [
            json!({"jsonrpc": "2.0", "id": 10, "method": "tools/list"}),
            json!({"jsonrpc": "2.0", "id": 11, "method": "ping"}),
            echo_call(12, "no session header"),
            json!({"jsonrpc": "2.0", "id": 13, "method": "prompts/list"}),
        ];
        for request in requests {
            let method = request["method"].as_str().unwrap().to_owned();
            let resp = with_agent(post(&url)).json(&request).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{agent:?} {method}");
            if let Some(id) = resp.headers().get("mcp-session-id") {
                assert_eq!(
                    id.to_str().unwrap(),
                    session,
                    "{agent:?} {method}: another session"
                );
            }
            let body = resp.text().await.unwrap();
            let answer = common::messages(&body)
                .into_iter()
                .find(|m| m["id"] == request["id"])
                .unwrap_or_else(|| panic!("{agent:?} {method}: no answer in {body}"));
            match method.as_str() {
                "tools/list" => assert!(
                    answer["result"]["tools"]
                        .as_array()
                        .is_some_and(|t| t.iter().any(|t| t["name"] == "echo")),
                    "{answer}"
                ),
                "ping" => assert_eq!(answer["result"], json!({}), "{answer}"),
                "tools/call" => assert_eq!(
                    answer["result"]["content"][0]["text"], "alpha: no session header",
                    "{answer}"
                ),
                // Answered by the session (a result or a JSON-RPC error), not refused.
                _ => assert!(
                    answer.get("result").is_some() || answer.get("error").is_some(),
                    "{answer}"
                ),
            }
        }
        // The session the requests went to is still the agent's, and usable.
        let resp = with_agent(common::session_post(&url, &session))
            .json(&echo_call(14, "with header"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    gw.shutdown().await;
}

/// The OAuth discovery paths clients probe answer 404 without a key, as the
/// reference's do (it registers them unauthenticated).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_discovery_paths_are_404_without_a_key() {
    let (gw, _logs) = gateway().await;
    let base = format!("http://{}", gw.local_addr());
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-protected-resource",
        "/mcp/.well-known/oauth-authorization-server",
    ] {
        let resp = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
    gw.shutdown().await;
}
