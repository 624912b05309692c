//! The agent-facing HTTP surface: a request with an arbitrary method, path,
//! headers and body goes into the gateway's router in-process (no socket),
//! with a real stdio MCP backend (the Python echo server) behind it. Every
//! request must get exactly one well-formed HTTP answer, promptly, never a
//! panic; JSON answers must be JSON; the gateway keeps answering `/health`.
//!
//! Input layout: byte 0 picks the method, byte 1 the path, byte 2 the
//! `Authorization` (right key, wrong key, none) and whether the session
//! opened at start-up is named; then `0xFF`-separated parts: the headers
//! (`name: value` lines), a free path suffix, the body.

#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use guardway_gateway::config::{
    GatewayConfig, GatewaySettings, RoutingMode, ServeOptions, ServerConfig, ServerTransport,
};
use guardway_gateway::{Gateway, InProcessGateway};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const API_KEY: &str = "fuzz-agent-key";

const METHODS: [&str; 9] = [
    "POST", "GET", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD", "TRACE", "FROB",
];

const PATHS: [&str; 9] = [
    "/mcp/echo",
    "/mcp/echo/",
    "/mcp/nope",
    "/mcp",
    "/health",
    "/metrics",
    "/reflect",
    "/close",
    "/",
];

/// How long one answer (status line and whole body) may take; a request
/// that gets no answer in this time is a finding. An SSE stream that stays
/// open (a GET on a live session) is only required to start.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

struct Harness {
    gateway: InProcessGateway,
    session: String,
}

fn repo_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `<tmp>/guardway-fuzz-http/<pid>`; directories of fuzzing processes that
/// have ended are removed first, so logs do not pile up from run to run.
fn log_dir() -> std::path::PathBuf {
    let parent = std::env::temp_dir().join("guardway-fuzz-http");
    if let Ok(entries) = std::fs::read_dir(&parent) {
        for entry in entries.flatten() {
            let ended = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<u32>().ok())
                .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists());
            if ended {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = parent.join(std::process::id().to_string());
    let _ = std::fs::create_dir_all(&dir);
    dir
}

fn options() -> ServeOptions {
    let root = repo_root();
    let python = std::env::var_os("GUARDWAY_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/python"));
    let log_dir = log_dir();
    let echo = ServerConfig {
        transport: ServerTransport::Stdio {
            command: python.to_string_lossy().into_owned(),
            args: vec![
                root.join("tests/python/backends/echo_server.py")
                    .to_string_lossy()
                    .into_owned(),
                "echo".to_owned(),
            ],
            env: BTreeMap::new(),
        },
        connect_timeout: Duration::from_secs(30),
        ..ServerConfig::default()
    };
    ServeOptions {
        config: GatewayConfig {
            gateway: GatewaySettings {
                api_key: Some(API_KEY.to_owned()),
                startup_timeout: Duration::from_secs(30),
                tool_timeout: Duration::from_secs(10),
                payload_dir: log_dir.join("payloads").to_string_lossy().into_owned(),
                payload_size_threshold: u64::MAX,
                ..GatewaySettings::default()
            },
            servers: BTreeMap::from([("echo".to_owned(), echo)]),
            guards: BTreeMap::new(),
            guards_mode: None,
            sequential_launch: false,
        },
        listen: "127.0.0.1:0".parse().expect("an address"),
        mode: RoutingMode::Routed,
        stdio: false,
        log_dir,
        shutdown_timeout: Duration::from_secs(1),
        session_timeout: Duration::from_secs(3600),
        guards_mode: None,
        wasm_cache_dir: None,
        no_wasm_cache: true,
        wasm_cache_max_bytes: None,
        wasm_guards_dir: None,
        require_guards: false,
        enforce_tool_call_limits: false,
        extra: Default::default(),
    }
}

fn base_request(method: &str, path: &str) -> http::request::Builder {
    http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        guardway_fuzz::runtime().block_on(async {
            let gateway = Gateway::in_process(options())
                .await
                .expect("the gateway assembles");
            let init = serde_json::json!({
                "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "fuzz", "version": "0"}}
            });
            let request = base_request("POST", "/mcp/echo")
                .header("authorization", API_KEY)
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "application/json")
                .body(Body::from(init.to_string()))
                .expect("a request");
            let response = gateway.router().oneshot(request).await.expect("infallible");
            assert_eq!(response.status(), 200, "initialize succeeds");
            let session = response.headers()["mcp-session-id"]
                .to_str()
                .expect("a session id")
                .to_owned();
            Harness { gateway, session }
        })
    })
}

fn is_json(content_type: Option<&http::HeaderValue>) -> bool {
    content_type
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

async fn answer(router: axum::Router, request: http::Request<Body>) {
    let response = tokio::time::timeout(ANSWER_TIMEOUT, router.oneshot(request))
        .await
        .expect("the request is answered in time")
        .expect("the router is infallible");
    let status = response.status();
    assert!(
        (200..600).contains(&status.as_u16()),
        "a final status, not {status}"
    );
    assert_ne!(status, 500, "no internal server error");
    let content_type = response.headers().get("content-type").cloned();
    let streaming = content_type
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let mut body = response.into_body();
    if streaming {
        // An SSE stream may stay open for the session's life: the answer has
        // started, which is all that can be asked of it here.
        return;
    }
    let bytes = tokio::time::timeout(ANSWER_TIMEOUT, (&mut body).collect())
        .await
        .expect("the body ends in time")
        .expect("the body is readable")
        .to_bytes();
    if is_json(content_type.as_ref()) && !bytes.is_empty() {
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .unwrap_or_else(|e| panic!("a JSON answer parses ({e}): {bytes:?}"));
    }
}

fuzz_target!(|data: &[u8]| {
    let harness = harness();
    let mut head = guardway_fuzz::Bytes::new(data);
    let method = METHODS[usize::from(head.u8()) % METHODS.len()];
    let path = PATHS[usize::from(head.u8()) % PATHS.len()];
    let flags = head.u8();
    let [headers, suffix, body] = guardway_fuzz::split::<3>(head.rest());

    let mut uri = path.to_owned();
    uri.push_str(&String::from_utf8_lossy(suffix));
    let mut builder = base_request(method, path);
    if http::Uri::try_from(uri.as_str()).is_ok() {
        builder = builder.uri(uri.as_str());
    }
    // A granted `POST /close` would shut the gateway down for every later
    // input: `/close` is fuzzed with a wrong key or none.
    match flags % 3 {
        0 if path != "/close" => builder = builder.header("authorization", API_KEY),
        0 | 1 => builder = builder.header("authorization", "wrong-key"),
        _ => {}
    }
    if flags & 0x4 != 0 {
        builder = builder.header("mcp-session-id", harness.session.as_str());
    }
    if flags & 0x8 != 0 {
        builder = builder
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json");
    }
    for line in headers.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = http::HeaderName::from_bytes(&line[..colon]);
        let value = http::HeaderValue::from_bytes(line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) = (name, value) {
            builder = builder.header(name, value);
        }
    }
    let Ok(request) = builder.body(Body::from(body.to_vec())) else {
        return;
    };
    let router = harness.gateway.router();
    guardway_fuzz::runtime().block_on(async move {
        answer(router.clone(), request).await;
        // The gateway still serves its health document.
        let health = base_request("GET", "/health")
            .body(Body::empty())
            .expect("a request");
        let response = tokio::time::timeout(ANSWER_TIMEOUT, router.oneshot(health))
            .await
            .expect("/health answers in time")
            .expect("infallible");
        assert!(
            response.status() == 200,
            "/health answers 200, not {}",
            response.status()
        );
    });
});
