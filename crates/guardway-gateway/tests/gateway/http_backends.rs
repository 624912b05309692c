//! HTTP backends behind the gateway, each a real MCP peer: the Python SDK's
//! FastMCP server over streamable HTTP and over the legacy SSE transport, a
//! plain JSON-RPC-over-POST server, https with a CA made at test time, the
//! transport fallback's error when nothing answers, keep-alive pings, and
//! the reconnect after a backend lost the session.

use crate::common;
use crate::surface_peers;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use guardway_gateway::config::{RoutingMode, ServeOptions, ServerConfig, ServerTransport};
use guardway_gateway::{BackendStatus, Gateway, HttpTransportKind, RunningGateway};
use serde_json::json;

fn http_server(url: String) -> ServerConfig {
    let mut server = common::stdio_server(String::new(), Vec::new());
    server.transport = ServerTransport::Http {
        url,
        headers: BTreeMap::new(),
    };
    server.connect_timeout = Duration::from_secs(10);
    server
}

/// A routed gateway in front of one http backend `id` at `url`, logging
/// into `log_dir`.
async fn gateway_for(
    id: &str,
    server: ServerConfig,
    log_dir: &Path,
    keepalive: Option<Duration>,
) -> RunningGateway {
    let mut options = routed_options([(id, server)], log_dir);
    options.config.gateway.keepalive_interval = keepalive;
    Gateway::start(options).await.unwrap()
}

/// Options of a routed gateway in front of `servers`, logging into
/// `log_dir` (tracing initialised).
fn routed_options<const N: usize>(
    servers: [(&str, ServerConfig); N],
    log_dir: &Path,
) -> ServeOptions {
    common::init_tracing();
    let servers = servers
        .into_iter()
        .map(|(id, server)| (id.to_owned(), server))
        .collect();
    let mut options = common::options(servers, RoutingMode::Routed);
    options.log_dir = log_dir.to_path_buf();
    options
}

/// Starts `script` with `args` and a routed gateway in front of it as
/// backend `id` at `http://127.0.0.1:PORT{path}`, logging into a new
/// temporary directory.
async fn backend_behind_gateway(
    script: &str,
    args: &[&str],
    id: &str,
    path: &str,
    keepalive: Option<Duration>,
) -> (common::PythonBackend, tempfile::TempDir, RunningGateway) {
    let backend = common::PythonBackend::start(script, args).await;
    let logs = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}{path}", backend.port);
    let gw = gateway_for(id, http_server(url), logs.path(), keepalive).await;
    (backend, logs, gw)
}

/// Asserts backend `id` is running over the HTTP transport `kind`.
fn assert_running_over(gw: &RunningGateway, id: &str, kind: HttpTransportKind) {
    let b = gw.backend(id).unwrap();
    assert_eq!(
        b.health().status,
        BackendStatus::Running,
        "{:?}",
        b.health()
    );
    assert_eq!(b.http_transport(), Some(kind));
}

/// Runs the ignored test `name` of this module alone in a child process of
/// this test binary with `envs` added to its environment, and asserts it ran
/// and passed.
async fn run_child_test(name: &str, envs: &[(&str, &std::ffi::OsStr)]) {
    // libtest names a test by its module path without the crate's name.
    let name = match module_path!().split_once("::") {
        Some((_, module)) => format!("{module}::{name}"),
        None => name.to_owned(),
    };
    let output = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(envs.iter().copied())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}\n{stderr}");
}

async fn agent(
    gw: &RunningGateway,
    id: &str,
) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    common::rmcp_client(
        &format!("http://{}/mcp/{id}", gw.local_addr()),
        common::API_KEY,
    )
    .await
}

async fn call_text(
    agent: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    tool: &str,
    args: serde_json::Value,
) -> String {
    let result = agent.call_tool(common::call(tool, args)).await.unwrap();
    assert_ne!(result.is_error, Some(true), "{tool}: {result:?}");
    common::text_of(&result)
}

/// The `<id>.log` file of `gw`'s log directory `dir`, everything handed
/// to the log writer so far included.
fn backend_log(gw: &RunningGateway, dir: &Path, id: &str) -> String {
    gw.flush_logs();
    std::fs::read_to_string(dir.join(format!("{id}.log"))).unwrap_or_default()
}

/// Lists and calls the echo and add tools of `id` through the gateway.
async fn assert_tools_work(gw: &RunningGateway, id: &str) {
    let agent = agent(gw, id).await;
    let tools = agent.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(
        names.contains(&"echo") && names.contains(&"add"),
        "{names:?}"
    );
    assert_eq!(
        call_text(&agent, "echo", json!({"text": "hello"})).await,
        format!("{id}: hello")
    );
    assert_eq!(
        call_text(&agent, "add", json!({"a": 2, "b": 40})).await,
        "42"
    );
    agent.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamable_http_backend_is_tried_first() {
    let (_backend, logs, gw) = backend_behind_gateway(
        "http_server.py",
        &["fast", "streamable-http"],
        "fast",
        "/mcp",
        None,
    )
    .await;
    assert_running_over(&gw, "fast", HttpTransportKind::StreamableHttp);
    assert_tools_work(&gw, "fast").await;
    let log = backend_log(&gw, logs.path(), "fast");
    assert!(log.contains("over streamable HTTP"), "{log}");
    assert!(!log.contains("failed"), "{log}");
    gw.shutdown().await;
}

/// A backend answering the `notifications/initialized` POST with 200 and an
/// empty `text/event-stream` body instead of 202 is healthy, as for the
/// reference: any 2xx acknowledges a notification. Agents of both Python
/// SDKs reach its tools through the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_acknowledging_a_notification_with_empty_sse_is_healthy() {
    let (_backend, _logs, gw) = backend_behind_gateway(
        "http_server.py",
        &["lenient", "streamable-http", "--notifications-as-empty-sse"],
        "lenient",
        "/mcp",
        None,
    )
    .await;
    let health = gw.backend("lenient").unwrap().health();
    assert_eq!(health.status, BackendStatus::Running, "{health:?}");
    let answer: serde_json::Value = reqwest::get(format!("http://{}/health", gw.local_addr()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["status"], "healthy", "{answer}");
    assert_eq!(
        answer["servers"]["lenient"]["status"], "running",
        "{answer}"
    );
    let url = format!("http://{}/mcp/lenient", gw.local_addr());
    surface_peers::echo_with_every_sdk(&url, "hi", "lenient: hi").await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_backend_is_reached_by_fallback() {
    let (_backend, logs, gw) =
        backend_behind_gateway("http_server.py", &["legacy", "sse"], "legacy", "/sse", None).await;
    assert_running_over(&gw, "legacy", HttpTransportKind::Sse);
    assert_tools_work(&gw, "legacy").await;

    // Progress and a large result travel over the event stream.
    let agent = agent(&gw, "legacy").await;
    assert_eq!(
        call_text(&agent, "count", json!({"steps": 3})).await,
        "counted 3"
    );
    let big = call_text(&agent, "big", json!({"n": 300_000})).await;
    assert_eq!(big.len(), 300_000);
    agent.cancel().await.unwrap();

    let log = backend_log(&gw, logs.path(), "legacy");
    assert!(log.contains("streamable HTTP to"), "{log}");
    assert!(log.contains("over SSE"), "{log}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_post_backend_is_reached_by_fallback() {
    let (_backend, logs, gw) =
        backend_behind_gateway("json_post_server.py", &["plain"], "plain", "/rpc", None).await;
    assert_running_over(&gw, "plain", HttpTransportKind::JsonPost);
    // The server refuses any request without the session id it first saw,
    // so these calls also show the client-generated id is sent throughout.
    assert_tools_work(&gw, "plain").await;
    let log = backend_log(&gw, logs.path(), "plain");
    assert!(log.contains("SSE to"), "{log}");
    assert!(log.contains("over plain JSON-RPC POST"), "{log}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_session_means_one_reconnect_and_one_retry() {
    let (_backend, logs, gw) = backend_behind_gateway(
        "json_post_server.py",
        &["plain", "--issue-session"],
        "plain",
        "/",
        None,
    )
    .await;
    let b = gw.backend("plain").unwrap().clone();
    assert_eq!(b.http_transport(), Some(HttpTransportKind::JsonPost));
    let agent = agent(&gw, "plain").await;
    // One initialize from the streamable-HTTP attempt (refused for its
    // content type), one from the plain POST transport.
    assert_eq!(
        call_text(&agent, "stats", json!({})).await,
        "initializes=2 pings=0"
    );
    assert_eq!(
        call_text(&agent, "forget_sessions", json!({})).await,
        "forgotten"
    );
    // The backend answers 404 "Session not found"; the gateway reconnects
    // (one more initialize: the known transport is tried first) and
    // retries the call once.
    assert_eq!(
        call_text(&agent, "echo", json!({"text": "again"})).await,
        "plain: again"
    );
    assert_eq!(b.session_reconnects(), 1);
    assert_eq!(
        call_text(&agent, "stats", json!({})).await,
        "initializes=3 pings=0"
    );
    assert_eq!(b.session_reconnects(), 1);
    let log = backend_log(&gw, logs.path(), "plain");
    assert!(log.contains("lost the session"), "{log}");
    agent.cancel().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_streamable_backend_is_reached_again() {
    let (mut backend, _logs, gw) = backend_behind_gateway(
        "http_server.py",
        &["fast", "streamable-http"],
        "fast",
        "/mcp",
        None,
    )
    .await;
    let agent = agent(&gw, "fast").await;
    let first_pid = call_text(&agent, "pid", json!({})).await;
    let _restarted = backend
        .restart("http_server.py", &["fast", "streamable-http"])
        .await;
    let second_pid = call_text(&agent, "pid", json!({})).await;
    assert_ne!(first_pid, second_pid);
    assert_eq!(
        call_text(&agent, "echo", json!({"text": "back"})).await,
        "fast: back"
    );
    agent.cancel().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_sse_backend_is_reached_again() {
    let (mut backend, _logs, gw) =
        backend_behind_gateway("http_server.py", &["legacy", "sse"], "legacy", "/sse", None).await;
    let b = gw.backend("legacy").unwrap().clone();
    let agent = agent(&gw, "legacy").await;
    let first_pid = call_text(&agent, "pid", json!({})).await;
    let _restarted = backend.restart("http_server.py", &["legacy", "sse"]).await;
    // Either the ended event stream or the new server's 404 for the old
    // session makes the gateway reconnect; the agent sees a normal answer.
    let second_pid = call_text(&agent, "pid", json!({})).await;
    assert_ne!(first_pid, second_pid);
    assert_eq!(b.http_transport(), Some(HttpTransportKind::Sse));
    assert_eq!(b.health().launches, 2);
    assert_eq!(
        call_text(&agent, "echo", json!({"text": "back"})).await,
        "legacy: back"
    );
    agent.cancel().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_pings_the_backend_and_logs_failures() {
    let (mut backend, logs, gw) = backend_behind_gateway(
        "json_post_server.py",
        &["plain"],
        "plain",
        "/",
        Some(Duration::from_secs(1)),
    )
    .await;
    let b = gw.backend("plain").unwrap().clone();
    let agent = agent(&gw, "plain").await;
    let mut pings = 0;
    for _ in 0..60 {
        let stats = call_text(&agent, "stats", json!({})).await;
        pings = stats
            .rsplit("pings=")
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap();
        if pings >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(pings >= 2, "the backend saw {pings} pings");
    assert_eq!(b.keepalive_failures(), 0);

    backend.kill().await;
    for _ in 0..60 {
        if b.keepalive_failures() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(b.keepalive_failures() > 0);
    let log = backend_log(&gw, logs.path(), "plain");
    assert!(log.contains("keep-alive ping failed"), "{log}");
    agent.cancel().await.unwrap();
    gw.shutdown().await;
}

/// An HTTP server on 127.0.0.1 that answers every request with a 404 page.
async fn not_found_server() -> std::net::SocketAddr {
    let app = axum::Router::new().fallback(|| async {
        (
            http::StatusCode::NOT_FOUND,
            [(http::header::CONTENT_TYPE, "text/html")],
            "<html><body>nothing here</body></html>",
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A listener that accepts connections and never answers.
async fn silent_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_answering_no_transport_fails_naming_the_backend() {
    let not_found = not_found_server().await;
    let (silent, _task) = silent_server().await;
    let logs = tempfile::tempdir().unwrap();
    let mut nowhere = http_server(format!("http://{not_found}/mcp"));
    nowhere.connect_timeout = Duration::from_secs(2);
    let mut mute = http_server(format!("http://{silent}/mcp"));
    mute.connect_timeout = Duration::from_secs(1);
    let options = routed_options([("nowhere", nowhere), ("mute", mute)], logs.path());
    // Start-up finishes although neither backend connects (each attempt
    // is bounded by connectTimeout; the outer bound only guards a hang).
    let gw = tokio::time::timeout(Duration::from_secs(120), Gateway::start(options))
        .await
        .expect("start-up hung")
        .unwrap();

    for (id, why) in [("nowhere", "HTTP 404"), ("mute", "no answer within 1s")] {
        let b = gw.backend(id).unwrap();
        let health = b.health();
        assert_eq!(health.status, BackendStatus::Error);
        assert_eq!(b.http_transport(), None);
        let reason = health.last_error.unwrap();
        for kind in HttpTransportKind::ORDER {
            assert!(reason.contains(&format!("{kind}: ")), "{reason}");
        }
        assert!(
            reason.contains("answers none of the MCP HTTP transports"),
            "{reason}"
        );
        assert!(reason.contains(why), "{reason}");
        // A direct launch reports the same, naming the backend.
        let error = tokio::time::timeout(Duration::from_secs(120), b.start())
            .await
            .expect("launch hung")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(&format!("backend \"{id}\" failed to start: ")),
            "{error}"
        );
        let log = backend_log(&gw, logs.path(), id);
        // Three failed attempts at start-up, three at the direct launch.
        let failures = log.lines().filter(|l| l.contains("[WARN]")).count();
        assert_eq!(failures, 6, "{log}");
    }
    gw.shutdown().await;
}

/// The https case runs in a child test process so that `SSL_CERT_FILE`
/// is set from its start (the gateway reads it when it loads its roots).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_backend_trusted_through_ssl_cert_file() {
    let tls = tempfile::tempdir().unwrap();
    let tls_dir = tls.path().to_string_lossy().into_owned();
    let backend = common::PythonBackend::start(
        "http_server.py",
        &["secure", "streamable-http", "--tls-dir", &tls_dir],
    )
    .await;
    let url = format!("https://127.0.0.1:{}/mcp", backend.port);
    let ca = tls.path().join("ca.pem");
    run_child_test(
        "https_child",
        &[
            ("SSL_CERT_FILE", ca.as_os_str()),
            ("GUARDWAY_TEST_HTTPS_URL", url.as_ref()),
        ],
    )
    .await;
}

/// Run by `https_backend_trusted_through_ssl_cert_file`; skips when
/// started on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by https_backend_trusted_through_ssl_cert_file"]
async fn https_child() {
    let Ok(url) = std::env::var("GUARDWAY_TEST_HTTPS_URL") else {
        return;
    };
    let logs = tempfile::tempdir().unwrap();
    let gw = gateway_for("secure", http_server(url.clone()), logs.path(), None).await;
    assert_running_over(&gw, "secure", HttpTransportKind::StreamableHttp);
    assert_tools_work(&gw, "secure").await;
    gw.shutdown().await;
}

/// A fake GitHub Actions OIDC token endpoint: checks the request token,
/// records the audiences, and returns JWTs (unsigned, with `aud`, `exp` and
/// a serial `n`) expiring in an hour, or in 62 s for the audience `short`.
async fn oidc_token_endpoint() -> (String, std::sync::Arc<parking_lot::Mutex<Vec<String>>>) {
    use base64::Engine;
    use std::collections::HashMap;
    let audiences = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let seen = audiences.clone();
    let app = axum::Router::new().route(
        "/token",
        axum::routing::get(
            move |headers: http::HeaderMap,
                  query: axum::extract::Query<HashMap<String, String>>| {
                let seen = seen.clone();
                async move {
                    if headers.get("authorization").and_then(|v| v.to_str().ok())
                        != Some("Bearer request-token")
                    {
                        return (http::StatusCode::UNAUTHORIZED, String::new());
                    }
                    let audience = query.get("audience").cloned().unwrap_or_default();
                    let n = {
                        let mut seen = seen.lock();
                        seen.push(audience.clone());
                        seen.len()
                    };
                    let lifetime = if audience == "short" { 62 } else { 3600 };
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs();
                    let enc = |v: serde_json::Value| {
                        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
                    };
                    let jwt = format!(
                        "{}.{}.sig",
                        enc(json!({"alg": "none"})),
                        enc(json!({"aud": audience, "exp": now + lifetime, "n": n}))
                    );
                    (
                        http::StatusCode::OK,
                        json!({"count": 1, "value": jwt}).to_string(),
                    )
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/token?api-version=2.0"), audiences)
}

/// github-oidc runs in a child test process, whose environment carries the
/// Actions variables from its start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_oidc_token_replaces_authorization() {
    let backend =
        common::PythonBackend::start("json_post_server.py", &["plain", "--issue-session"]).await;
    let (token_url, audiences) = oidc_token_endpoint().await;
    let backend_url = format!("http://127.0.0.1:{}/", backend.port);
    run_child_test(
        "github_oidc_child",
        &[
            ("ACTIONS_ID_TOKEN_REQUEST_URL", token_url.as_ref()),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token".as_ref()),
            ("GUARDWAY_TEST_OIDC_BACKEND", backend_url.as_ref()),
        ],
    )
    .await;
    let audiences = audiences.lock().clone();
    // One token for `api://steady` (cached across its uses), and for
    // `short` the first one plus at least one renewal.
    assert_eq!(
        audiences.iter().filter(|a| *a == "api://steady").count(),
        1,
        "{audiences:?}"
    );
    assert!(
        audiences.iter().filter(|a| *a == "short").count() >= 2,
        "{audiences:?}"
    );
}

/// The claims of the bearer JWT in an `Authorization` value.
fn bearer_claims(authorization: &str) -> serde_json::Value {
    use base64::Engine;
    let jwt = authorization.strip_prefix("Bearer ").unwrap();
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Run by `github_oidc_token_replaces_authorization`; skips when started
/// on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by github_oidc_token_replaces_authorization"]
async fn github_oidc_child() {
    use guardway_gateway::config::ServerAuth;
    let Ok(url) = std::env::var("GUARDWAY_TEST_OIDC_BACKEND") else {
        return;
    };
    let mut steady = http_server(url.clone());
    steady.auth = Some(ServerAuth::GithubOidc {
        audience: "api://steady".into(),
    });
    if let ServerTransport::Http { headers, .. } = &mut steady.transport {
        headers.insert("Authorization".into(), "static-value".into());
        headers.insert("X-Extra".into(), "kept".into());
    }
    let mut short = http_server(url);
    short.auth = Some(ServerAuth::GithubOidc {
        audience: "short".into(),
    });
    let logs = tempfile::tempdir().unwrap();
    let options = routed_options([("steady", steady), ("short", short)], logs.path());
    let gw = Gateway::start(options).await.unwrap();

    let agent_steady = agent(&gw, "steady").await;
    let auth = call_text(&agent_steady, "authorization", json!({})).await;
    assert_eq!(bearer_claims(&auth)["aud"], "api://steady", "{auth}");
    assert_eq!(
        call_text(&agent_steady, "echo", json!({"text": "oidc"})).await,
        "plain: oidc"
    );

    // `short` tokens expire 62 s after issue: renewed (with a reconnect)
    // 60 s early, so about 2 s after each connection.
    let b = gw.backend("short").unwrap().clone();
    let agent_short = agent(&gw, "short").await;
    let first = call_text(&agent_short, "authorization", json!({})).await;
    assert_eq!(bearer_claims(&first)["aud"], "short");
    for _ in 0..120 {
        if b.token_renewals() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(b.token_renewals() > 0);
    let mut renewed = first.clone();
    for _ in 0..40 {
        renewed = call_text(&agent_short, "authorization", json!({})).await;
        if renewed != first {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_ne!(renewed, first);
    assert_eq!(bearer_claims(&renewed)["aud"], "short");
    let log = backend_log(&gw, logs.path(), "short");
    assert!(log.contains("renewing the github-oidc token"), "{log}");
    agent_steady.cancel().await.unwrap();
    agent_short.cancel().await.unwrap();
    gw.shutdown().await;
}
