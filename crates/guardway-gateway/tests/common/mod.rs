//! Shared scaffolding of the gateway integration tests: the repository's
//! test peers (Python venv, Node packages) and gateway options built directly.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use guardway_gateway::config::{
    GatewayConfig, GatewaySettings, RoutingMode, ServeOptions, ServerConfig, ServerTransport,
};

pub const API_KEY: &str = "test-agent-key";

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

const SETUP_HINT: &str = "run scripts/setup-test-env.sh from the repository root to create it";

/// `$GUARDWAY_PYTHON`, else `.venv/bin/python`; panics with setup
/// instructions when it is missing or lacks the MCP SDK.
pub fn python() -> PathBuf {
    let python = std::env::var_os("GUARDWAY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    assert!(
        python.exists(),
        "the Python test environment is missing ({}): {SETUP_HINT}",
        python.display()
    );
    let ok = std::process::Command::new(&python)
        .args(["-c", "import mcp, pytest"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{} cannot import mcp and pytest: {SETUP_HINT}",
        python.display()
    );
    python
}

/// A major version of the official Python MCP SDK that test agents run
/// with: each has its own environment (`scripts/setup-test-env.sh`), since
/// the 2.x client API changed (httpx2, `MCPError`, snake_case fields).
/// Backends stay on 1.x ([`python`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PythonSdk {
    /// `mcp` 1.x: `$GUARDWAY_PYTHON`, else `.venv/bin/python`.
    V1,
    /// `mcp` 2.x: `$GUARDWAY_PYTHON_MCP2`, else `.venv-mcp2/bin/python`.
    V2,
}

impl PythonSdk {
    /// Both SDKs, for tests that run their Python agent with each.
    pub const ALL: [PythonSdk; 2] = [PythonSdk::V1, PythonSdk::V2];

    /// The major version of `mcp` this environment must hold.
    pub fn major(self) -> u32 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
        }
    }

    /// The interpreter of this SDK's environment; panics with setup
    /// instructions when it is missing or holds another major version.
    pub fn python(self) -> PathBuf {
        static CHECKED: [std::sync::OnceLock<PathBuf>; 2] =
            [std::sync::OnceLock::new(), std::sync::OnceLock::new()];
        CHECKED[self.major() as usize - 1]
            .get_or_init(|| {
                let (var, venv) = match self {
                    Self::V1 => ("GUARDWAY_PYTHON", ".venv"),
                    Self::V2 => ("GUARDWAY_PYTHON_MCP2", ".venv-mcp2"),
                };
                let python = std::env::var_os(var)
                    .map(PathBuf::from)
                    .unwrap_or_else(|| repo_root().join(venv).join("bin/python"));
                let output = std::process::Command::new(&python)
                    .args([
                        "-c",
                        "import importlib.metadata as m; print(m.version('mcp'))",
                    ])
                    .output();
                let found = output
                    .ok()
                    .filter(|o| o.status.success())
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                    .unwrap_or_default();
                assert!(
                    found.split('.').next() == Some(&self.major().to_string()),
                    "{} should hold mcp {}.x (found {found:?}): {SETUP_HINT}",
                    python.display(),
                    self.major()
                );
                python
            })
            .clone()
    }
}

/// The entry script of `@modelcontextprotocol/server-everything`; panics
/// with setup instructions when it is missing.
pub fn everything_server() -> PathBuf {
    let script = repo_root()
        .join("tests/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        script.exists(),
        "server-everything is not installed ({}): {SETUP_HINT}",
        script.display()
    );
    script
}

/// A stdio server running the Python echo backend named `name`.
pub fn echo_backend(name: &str) -> ServerConfig {
    stdio_server(
        python().to_string_lossy().into_owned(),
        vec![
            repo_root()
                .join("tests/python/backends/echo_server.py")
                .to_string_lossy()
                .into_owned(),
            name.to_owned(),
        ],
    )
}

pub fn stdio_server(command: String, args: Vec<String>) -> ServerConfig {
    ServerConfig {
        transport: ServerTransport::Stdio {
            command,
            args,
            env: BTreeMap::new(),
        },
        tools: None,
        tool_timeout: None,
        connect_timeout: Duration::from_secs(30),
        guard: None,
        guard_policies: None,
        tool_response_filters: BTreeMap::new(),
        rate_limit_threshold: 3,
        rate_limit_cooldown: Duration::from_secs(60),
        registry: None,
        ..ServerConfig::default()
    }
}

pub fn options(servers: BTreeMap<String, ServerConfig>, mode: RoutingMode) -> ServeOptions {
    ServeOptions {
        config: GatewayConfig {
            gateway: GatewaySettings {
                port: None,
                api_key: Some(API_KEY.to_owned()),
                domain: None,
                startup_timeout: Duration::from_secs(30),
                tool_timeout: Duration::from_secs(60),
                keepalive_interval: None,
                payload_dir: "/tmp/jq-payloads".into(),
                payload_path_prefix: None,
                // No spill unless a test asks for it (tests/gateway/postprocess.rs):
                // large results must pass through unchanged here.
                payload_size_threshold: u64::MAX,
                trusted_bots: Vec::new(),
                force_public_repos: true,
                sink_visibility_exempt_servers: Vec::new(),
                ..GatewaySettings::default()
            },
            servers,
            guards: BTreeMap::new(),
            guards_mode: None,
            sequential_launch: false,
        },
        listen: "127.0.0.1:0".parse().unwrap(),
        mode,
        stdio: false,
        log_dir: test_log_dir(),
        shutdown_timeout: Duration::from_secs(5),
        session_timeout: Duration::from_secs(3600),
        guards_mode: None,
        wasm_cache_dir: None,
        no_wasm_cache: true,
        wasm_cache_max_bytes: None,
        wasm_guards_dir: None,
        require_guards: false,
        enforce_tool_call_limits: false,
        // No workflow repository, whatever the environment running the
        // tests says: no GitHub look-up, no security-by-default override.
        extra: guardway_gateway::config::ExtraServeOptions {
            env_overrides: BTreeMap::from([("GITHUB_REPOSITORY".to_owned(), String::new())]),
            ..Default::default()
        },
    }
}

/// A fresh log directory for one test gateway:
/// `<tmp>/guardway-test-logs/<pid>/<n>`. The first call of a test process
/// removes the directories of earlier test processes that have ended, so
/// log files do not pile up from run to run.
pub fn test_log_dir() -> PathBuf {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let run = RUN.get_or_init(|| {
        let parent = std::env::temp_dir().join("guardway-test-logs");
        if let Ok(entries) = std::fs::read_dir(&parent) {
            for entry in entries.flatten() {
                let ended = entry
                    .file_name()
                    .to_str()
                    .and_then(|name| name.parse::<u32>().ok())
                    .is_some_and(|pid| !PathBuf::from(format!("/proc/{pid}")).exists());
                if ended && cfg!(target_os = "linux") {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        parent.join(std::process::id().to_string())
    });
    let dir = run.join(NEXT.fetch_add(1, Ordering::Relaxed).to_string());
    std::fs::create_dir_all(&dir).expect("a test log directory");
    dir
}

/// Logs of the gateway under test go to the test output (`RUST_LOG`).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,guardway=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// An `rmcp` client session on `url` sending `key` as `Authorization`.
pub async fn rmcp_client(
    url: &str,
    key: &str,
) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    use rmcp::ServiceExt;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let headers = std::collections::HashMap::from([(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_str(key).unwrap(),
    )]);
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url).custom_headers(headers),
    );
    ().serve(transport).await.unwrap()
}

/// `tools/call` parameters with JSON arguments.
pub fn call(name: &str, args: serde_json::Value) -> rmcp::model::CallToolRequestParams {
    let params = rmcp::model::CallToolRequestParams::new(name.to_owned());
    match args {
        serde_json::Value::Object(map) => params.with_arguments(map),
        _ => params,
    }
}

/// The concatenated text items of a tool result.
pub fn text_of(result: &rmcp::model::CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

/// The JSON-RPC error of a failed client call.
pub fn mcp_error(error: rmcp::ServiceError) -> rmcp::ErrorData {
    match error {
        rmcp::ServiceError::McpError(e) => e,
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

/// The `Accept` header MCP clients send on POST.
pub const ACCEPT: &str = "application/json, text/event-stream";

/// Options of a routed gateway in front of one echo backend `alpha`
/// (tracing initialised).
pub fn echo_alpha_options() -> ServeOptions {
    init_tracing();
    let servers = BTreeMap::from([("alpha".to_owned(), echo_backend("alpha"))]);
    options(servers, RoutingMode::Routed)
}

/// The JSON-RPC `initialize` request (id 1) of a client named `client`.
pub fn initialize_request(client: &str) -> serde_json::Value {
    serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": client, "version": "0"}}
    })
}

/// The `mcp-session-id` header of a response.
pub fn session_id(response: &reqwest::Response) -> String {
    response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// `POST {base}/close` with the test API key.
pub async fn post_close(base: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/close"))
        .header("authorization", API_KEY)
        .send()
        .await
        .unwrap()
}

/// A POST to the gateway with the MCP headers and the test API key.
pub fn post(url: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(url)
        .header("accept", ACCEPT)
        .header("content-type", "application/json")
        .header("authorization", API_KEY)
}

/// A POST to the gateway within the raw session `session`.
pub fn session_post(url: &str, session: &str) -> reqwest::RequestBuilder {
    post(url).header("mcp-session-id", session)
}

/// The JSON-RPC `tools/call` request `id` of tool `name` with `arguments`.
pub fn tool_call(
    id: serde_json::Value,
    name: &str,
    arguments: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                       "params": {"name": name, "arguments": arguments}})
}

/// The `notifications/initialized` POST of `session`.
pub async fn post_initialized(url: &str, session: &str) -> reqwest::Response {
    session_post(url, session)
        .json(&serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()
        .await
        .unwrap()
}

/// Opens a raw session (initialize + initialized) and returns its id.
pub async fn open_session(url: &str) -> String {
    let resp = post(url)
        .json(&initialize_request("raw"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let session = session_id(&resp);
    assert_eq!(post_initialized(url, &session).await.status(), 202);
    session
}

/// The JSON-RPC messages of an SSE (or plain JSON) response body.
pub fn messages(body: &str) -> Vec<serde_json::Value> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        return vec![v];
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}

/// The progress values a test agent received, in the order its transport
/// read them. Counted as messages are read (not in `rmcp`'s notification
/// handler, which runs on a task of its own and may lag behind the result),
/// so when a call returns, every notification sent before its result is
/// already here.
#[derive(Clone, Default)]
pub struct ProgressLog(std::sync::Arc<parking_lot::Mutex<Vec<ProgressSeen>>>);

/// (progress, total) of one progress notification.
pub type ProgressSeen = (f64, Option<f64>);

impl ProgressLog {
    /// Removes and returns the progress values received so far.
    pub fn take(&self) -> Vec<f64> {
        self.take_with_totals()
            .into_iter()
            .map(|(progress, _)| progress)
            .collect()
    }

    /// Removes and returns the (progress, total) pairs received so far.
    pub fn take_with_totals(&self) -> Vec<ProgressSeen> {
        std::mem::take(&mut *self.0.lock())
    }

    /// Wraps an agent-side transport so that it records progress here.
    pub fn wrap<T>(&self, inner: T) -> ProgressLogTransport<T> {
        ProgressLogTransport {
            inner,
            log: self.clone(),
        }
    }
}

/// See [`ProgressLog::wrap`].
pub struct ProgressLogTransport<T> {
    inner: T,
    log: ProgressLog,
}

impl<T> rmcp::transport::Transport<rmcp::RoleClient> for ProgressLogTransport<T>
where
    T: rmcp::transport::Transport<rmcp::RoleClient>,
{
    type Error = T::Error;

    fn send(
        &mut self,
        item: rmcp::service::TxJsonRpcMessage<rmcp::RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<rmcp::service::RxJsonRpcMessage<rmcp::RoleClient>> {
        let message = self.inner.receive().await?;
        if let rmcp::model::JsonRpcMessage::Notification(n) = &message
            && let rmcp::model::ServerNotification::ProgressNotification(p) = &n.notification
        {
            self.log.0.lock().push((p.params.progress, p.params.total));
        }
        Some(message)
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.inner.close().await
    }
}

/// An `rmcp` agent on `url` (with [`API_KEY`]) whose progress goes to `log`.
pub async fn progress_logging_client(
    url: &str,
    log: &ProgressLog,
) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    progress_logging_agent(url, None, log).await
}

/// An `rmcp` agent on `url` (with [`API_KEY`], and `X-Agent-ID: agent_id`
/// when given) whose progress goes to `log`.
pub async fn progress_logging_agent(
    url: &str,
    agent_id: Option<&str>,
    log: &ProgressLog,
) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    progress_logging_agent_with(url, agent_id, log, ()).await
}

/// [`progress_logging_agent`] whose requests from the server are answered
/// by `handler` (which also declares the agent's capabilities).
pub async fn progress_logging_agent_with<H: rmcp::ClientHandler>(
    url: &str,
    agent_id: Option<&str>,
    log: &ProgressLog,
    handler: H,
) -> rmcp::service::RunningService<rmcp::RoleClient, H> {
    use rmcp::ServiceExt;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let mut headers = std::collections::HashMap::from([(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_static(API_KEY),
    )]);
    if let Some(agent_id) = agent_id {
        headers.insert(
            http::HeaderName::from_static("x-agent-id"),
            http::HeaderValue::from_str(agent_id).unwrap(),
        );
    }
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url).custom_headers(headers),
    );
    handler.serve(log.wrap(transport)).await.unwrap()
}

/// A Python backend process serving HTTP on 127.0.0.1; killed on drop.
pub struct PythonBackend {
    child: tokio::process::Child,
    pub port: u16,
}

impl PythonBackend {
    /// Runs `tests/python/backends/<script>` with `args` and waits for its
    /// `PORT <n>` line.
    pub async fn start(script: &str, args: &[&str]) -> Self {
        let mut child = tokio::process::Command::new(python())
            .arg(repo_root().join("tests/python/backends").join(script))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("backend did not print its port")
            .unwrap()
            .expect("backend exited before printing its port");
        let port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        // Keep draining stdout so the backend never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, port }
    }

    /// The URL of `path` on this backend.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Kills this backend and runs `script` with `args` again on the same
    /// port: a new process that knows no session.
    pub async fn restart(&mut self, script: &str, args: &[&str]) -> Self {
        let port = self.port.to_string();
        self.kill().await;
        let mut args = args.to_vec();
        args.extend(["--port", &port]);
        Self::start(script, &args).await
    }
}
