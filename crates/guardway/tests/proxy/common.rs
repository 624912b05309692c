//! Shared scaffolding of the proxy tests: the mock GitHub API
//! (`tests/python/mock_github.py`, a real HTTP server in a child process),
//! the real `guardway proxy` binary in front of it with the real sample
//! guard, an HTTP client, and the mock's record of what reached it.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub use crate::support::{built_guard, repo_root, sample_guard};

/// The guard written against the raw ABI (`guards/raw-abi-guard`): it
/// labels every tool but the issue reads as a write with empty labels.
pub fn raw_abi_guard() -> PathBuf {
    built_guard("raw-abi-guard", "raw_abi_guard.wasm")
}

/// `$GUARDWAY_PYTHON`, else the test environment's `.venv/bin/python`,
/// else `python3` (the mock needs only the standard library).
fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("GUARDWAY_PYTHON") {
        return python.into();
    }
    let venv = repo_root().join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

/// A child process killed when dropped.
pub struct Process {
    child: Child,
    /// Everything it wrote on stderr so far.
    stderr: Arc<Mutex<String>>,
}

impl Process {
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies a child's stream into `sink` on a thread; lines are also sent to
/// `lines` until the receiver is dropped.
fn collect(
    stream: impl Read + Send + 'static,
    sink: Arc<Mutex<String>>,
    lines: std::sync::mpsc::Sender<String>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push_str(&line);
            sink.lock().unwrap().push('\n');
            let _ = lines.send(line);
        }
    });
}

/// Spawns `command` and waits for a line starting with `marker`; returns
/// the process and the rest of that line.
fn spawn_until(mut command: Command, marker: &str, on_stdout: bool) -> (Process, String) {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn");
    let stderr = Arc::new(Mutex::new(String::new()));
    let stdout = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let (out_tx, err_tx) = if on_stdout {
        (tx, std::sync::mpsc::channel().0)
    } else {
        (std::sync::mpsc::channel().0, tx)
    };
    collect(child.stdout.take().unwrap(), stdout, out_tx);
    collect(child.stderr.take().unwrap(), stderr.clone(), err_tx);
    let process = Process { child, stderr };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(rest) = line.trim_start().strip_prefix(marker) {
                    return (process, rest.trim().to_owned());
                }
            }
            Err(_) => panic!(
                "no {marker:?} line within 60 s; stderr:\n{}",
                process.stderr()
            ),
        }
    }
}

/// The mock GitHub API.
pub struct Mock {
    _process: Process,
    pub url: String,
    http: reqwest::blocking::Client,
}

impl Mock {
    pub fn start() -> Mock {
        let mut command = Command::new(python());
        command.arg(repo_root().join("tests/python/mock_github.py"));
        command.args(["--port", "0"]);
        let (process, port) = spawn_until(command, "MOCK_GITHUB_PORT=", true);
        Mock {
            _process: process,
            url: format!("http://127.0.0.1:{port}"),
            http: client(),
        }
    }

    /// The requests that reached the mock, oldest first.
    pub fn requests(&self) -> Vec<Value> {
        self.http
            .get(format!("{}/_mock/requests", self.url))
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    /// The requests whose path is `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["path"] == path)
            .collect()
    }

    pub fn clear(&self) {
        self.http
            .delete(format!("{}/_mock/requests", self.url))
            .send()
            .unwrap();
    }

    pub fn faults(&self, faults: Value) {
        let response = self
            .http
            .post(format!("{}/_mock/faults", self.url))
            .json(&json!({ "faults": faults }))
            .send()
            .unwrap();
        assert!(response.status().is_success());
    }
}

/// A running `guardway proxy`.
pub struct Proxy {
    pub process: Process,
    /// `http://127.0.0.1:port` or `https://…`.
    pub url: String,
    pub log_dir: PathBuf,
    pub tls_dir: PathBuf,
    _dir: tempfile::TempDir,
}

/// The scoped policy most tests use: every repository of `octo-org` at
/// `approved`, `mallory` blocked.
pub fn scoped_policy() -> Value {
    json!({"allow-only": {"repos": ["octo-org/*"], "min-integrity": "approved",
                          "blocked-users": ["mallory"]}})
}

/// A `guardway proxy` command scrubbed of the variables it reads.
pub fn proxy_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_guardway"));
    command.arg("proxy");
    for name in [
        "GITHUB_MCP_SERVER_TOKEN",
        "GITHUB_TOKEN",
        "GITHUB_PERSONAL_ACCESS_TOKEN",
        "GH_TOKEN",
        "GITHUB_API_URL",
        "GITHUB_SERVER_URL",
        "GITHUB_REPOSITORY",
        "MCP_GATEWAY_GUARD_POLICY_JSON",
        "MCP_GATEWAY_LOG_DIR",
        "MCP_GATEWAY_GUARDS_MODE",
        "MCP_GATEWAY_FORCE_PUBLIC_REPOS",
        "GUARDWAY_WASM_CACHE_DIR",
        "MCP_GATEWAY_WASM_CACHE_DIR",
        "RUST_LOG",
        "GUARDWAY_LOG",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "ALL_PROXY",
    ] {
        command.env_remove(name);
    }
    command.env("NO_PROXY", "*");
    command
}

impl Proxy {
    /// Starts the proxy in front of `mock` with the sample guard, `policy`
    /// and `extra` flags; waits for its banner.
    pub fn start(mock: &Mock, policy: Option<&Value>, extra: &[&str]) -> Proxy {
        Self::start_with(mock, policy, extra, |_| {})
    }

    pub fn start_with(
        mock: &Mock,
        policy: Option<&Value>,
        extra: &[&str],
        configure: impl FnOnce(&mut Command),
    ) -> Proxy {
        Self::launch(&sample_guard(), mock, policy, extra, configure)
    }

    /// Starts the proxy with another guard than the sample guard.
    pub fn start_guarded_by(
        guard: &Path,
        mock: &Mock,
        policy: Option<&Value>,
        extra: &[&str],
    ) -> Proxy {
        Self::launch(guard, mock, policy, extra, |_| {})
    }

    fn launch(
        guard: &Path,
        mock: &Mock,
        policy: Option<&Value>,
        extra: &[&str],
        configure: impl FnOnce(&mut Command),
    ) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let log_dir = dir.path().join("logs");
        let tls_dir = dir.path().join("tls");
        let mut command = proxy_command();
        command
            .arg("--guard-wasm")
            .arg(guard)
            .args(["--listen", "127.0.0.1:0", "--github-api-url", &mock.url])
            .arg("--log-dir")
            .arg(&log_dir)
            .arg("--tls-dir")
            .arg(&tls_dir)
            .arg("--wasm-cache-dir")
            .arg(dir.path().join("cache"));
        if let Some(policy) = policy {
            command.arg("--policy").arg(policy.to_string());
        }
        command.args(extra);
        configure(&mut command);
        let (process, url) = spawn_until(command, "Listening:", false);
        Proxy {
            process,
            url,
            log_dir,
            tls_dir,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// `proxy.log` once it contains `needle` (its lines are written by a
    /// thread of their own, a little after the event), or as it is after
    /// 10 s.
    pub fn log_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = std::fs::read_to_string(self.log_dir.join("proxy.log")).unwrap_or_default();
            if log.contains(needle) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .expect("port in the proxy URL")
    }
}

/// Installs `ring` as the tests' rustls provider (once).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A blocking HTTP client (no redirects followed, no proxy).
pub fn client() -> reqwest::blocking::Client {
    install_crypto_provider();
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// `GET url` with a client token.
pub fn get(url: &str) -> reqwest::blocking::Response {
    client()
        .get(url)
        .header("authorization", "token client-token")
        .send()
        .unwrap()
}

/// `POST url` of a GraphQL query.
pub fn graphql(url: &str, query: &str, variables: Value) -> reqwest::blocking::Response {
    client()
        .post(url)
        .header("authorization", "token client-token")
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .unwrap()
}

pub fn json_of(response: reqwest::blocking::Response) -> Value {
    let text = response.text().unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The `number` of each item of a JSON array.
pub fn numbers(items: &Value) -> Vec<u64> {
    items
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {items}"))
        .iter()
        .map(|item| item["number"].as_u64().unwrap())
        .collect()
}
