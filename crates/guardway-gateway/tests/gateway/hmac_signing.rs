//! HMAC-signed MCP requests (gateway.md §3.3) through reqwest: a full
//! session of signed requests, each failure text, replay refusal, the order
//! of the key and HMAC checks, and the open endpoints staying unsigned.

use crate::common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::ACCEPT;
use guardway_gateway::hmac::{NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use guardway_gateway::{Gateway, RunningGateway};
use serde_json::{Value, json};

const SECRET: &str = "hmac-test-secret";

async fn gateway() -> RunningGateway {
    let mut options = common::echo_alpha_options();
    options.extra.hmac_secret = Some(SECRET.to_owned());
    Gateway::start(options).await.unwrap()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn nonce() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "nonce-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// A signed POST of `body` to `path` (timestamp now, fresh nonce).
fn signed_post(
    base: &str,
    path: &str,
    body: &Value,
    session: Option<&str>,
) -> reqwest::RequestBuilder {
    let body = body.to_string();
    signed_post_with(
        base,
        path,
        &body,
        &now().to_string(),
        &nonce(),
        SECRET,
        session,
    )
}

fn signed_post_with(
    base: &str,
    path: &str,
    body: &str,
    timestamp: &str,
    nonce: &str,
    secret: &str,
    session: Option<&str>,
) -> reqwest::RequestBuilder {
    let request = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("authorization", common::API_KEY)
        .header("accept", ACCEPT)
        .header("content-type", "application/json");
    let mut request = with_signature(request, secret, timestamp, nonce, path, body.as_bytes())
        .body(body.to_owned());
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    request
}

fn initialize() -> Value {
    common::initialize_request("signed")
}

/// `request` with the HMAC headers of `timestamp`, `nonce` and a signature
/// of `signed_path` and `body` with `secret`.
fn with_signature(
    request: reqwest::RequestBuilder,
    secret: &str,
    timestamp: &str,
    nonce: &str,
    signed_path: &str,
    body: &[u8],
) -> reqwest::RequestBuilder {
    let signature = sign(secret.as_bytes(), timestamp, nonce, signed_path, body);
    request
        .header(TIMESTAMP_HEADER, timestamp)
        .header(NONCE_HEADER, nonce)
        .header(SIGNATURE_HEADER, signature)
}

/// An unsigned `initialize` POST to `/mcp/alpha`.
async fn unsigned_initialize(base: &str) -> reqwest::Response {
    common::post(&format!("{base}/mcp/alpha"))
        .json(&initialize())
        .send()
        .await
        .unwrap()
}

/// A signed `initialize` POST to `/mcp/alpha`, outside any session.
async fn signed_initialize(base: &str) -> reqwest::Response {
    signed_post(base, "/mcp/alpha", &initialize(), None)
        .send()
        .await
        .unwrap()
}

async fn expect_401(response: reqwest::Response, message: &str) {
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"error": "unauthorized", "message": message}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_of_signed_requests_is_served() {
    let gw = gateway().await;
    let base = format!("http://{}", gw.local_addr());
    let resp = signed_initialize(&base).await;
    assert_eq!(resp.status(), 200);
    let session = common::session_id(&resp);
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let resp = signed_post(&base, "/mcp/alpha", &initialized, Some(&session))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {"text": "signed"}}});
    let resp = signed_post(&base, "/mcp/alpha", &call, Some(&session))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("alpha: signed"));

    // DELETE is signed over an empty body.
    let delete = reqwest::Client::new()
        .delete(format!("{base}/mcp/alpha"))
        .header("authorization", common::API_KEY)
        .header("mcp-session-id", &session);
    let (ts, n) = (now().to_string(), nonce());
    let resp = with_signature(delete, SECRET, &ts, &n, "/mcp/alpha", b"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);

    // The open endpoints need no signature.
    let health = reqwest::get(format!("{base}/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    let reflect = reqwest::get(format!("{base}/reflect")).await.unwrap();
    assert_eq!(reflect.status(), 200);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failure_gets_its_own_401_text() {
    let gw = gateway().await;
    let base = format!("http://{}", gw.local_addr());
    let path = "/mcp/alpha";
    let body = initialize().to_string();

    // No signature headers at all (a plain MCP client).
    let resp = common::post(&format!("{base}{path}"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    expect_401(resp, "missing HMAC signature headers").await;

    let resp = signed_post_with(&base, path, &body, "yesterday", &nonce(), SECRET, None)
        .send()
        .await
        .unwrap();
    expect_401(resp, "invalid HMAC timestamp").await;

    let stale = (now() - 120).to_string();
    let resp = signed_post_with(&base, path, &body, &stale, &nonce(), SECRET, None)
        .send()
        .await
        .unwrap();
    expect_401(resp, "HMAC timestamp out of acceptable window").await;

    let resp = signed_post_with(
        &base,
        path,
        &body,
        &now().to_string(),
        &nonce(),
        "wrong",
        None,
    )
    .send()
    .await
    .unwrap();
    expect_401(resp, "invalid HMAC signature").await;

    // Signed for another path.
    let (ts, n) = (now().to_string(), nonce());
    let other = common::post(&format!("{base}{path}"));
    let resp = with_signature(other, SECRET, &ts, &n, "/mcp/other", body.as_bytes())
        .body(body.clone())
        .send()
        .await
        .unwrap();
    expect_401(resp, "invalid HMAC signature").await;

    // A replayed request: same timestamp, nonce and signature.
    let ts = now().to_string();
    let n = nonce();
    let first = signed_post_with(&base, path, &body, &ts, &n, SECRET, None)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let replay = signed_post_with(&base, path, &body, &ts, &n, SECRET, None)
        .send()
        .await
        .unwrap();
    expect_401(replay, "HMAC nonce already used (replay detected)").await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_check_comes_before_hmac() {
    let gw = gateway().await;
    let base = format!("http://{}", gw.local_addr());
    // Correctly signed, wrong key: the key check answers.
    let body = initialize().to_string();
    let (ts, n) = (now().to_string(), nonce());
    let wrong_key = reqwest::Client::new()
        .post(format!("{base}/mcp/alpha"))
        .header("authorization", "not-the-key")
        .header("accept", ACCEPT)
        .header("content-type", "application/json");
    let resp = with_signature(wrong_key, SECRET, &ts, &n, "/mcp/alpha", body.as_bytes())
        .body(body)
        .send()
        .await
        .unwrap();
    expect_401(resp, "invalid API key").await;
    // Right key, unsigned: HMAC answers, and the gateway keeps serving.
    let resp = unsigned_initialize(&base).await;
    expect_401(resp, "missing HMAC signature headers").await;
    let resp = signed_initialize(&base).await;
    assert_eq!(resp.status(), 200);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hmac_is_checked_before_the_shutdown_answer() {
    let gw = gateway().await;
    let base = format!("http://{}", gw.local_addr());
    let resp = common::post_close(&base).await;
    assert_eq!(resp.status(), 200);
    // Unsigned: refused by HMAC before the shutdown check.
    let resp = unsigned_initialize(&base).await;
    expect_401(resp, "missing HMAC signature headers").await;
    // Signed: passes HMAC, then the shutdown check answers.
    let resp = signed_initialize(&base).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"error": "Gateway is shutting down"})
    );
    gw.shutdown().await;
}
