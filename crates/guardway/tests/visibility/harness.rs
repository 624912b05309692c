//! The real parts of the repository-visibility tests: a spawned `guardway
//! serve` with a scrubbed environment, the demo backend, the sample guard,
//! the mock GitHub API (`tests/python/mock_github_api.py`) and the Python
//! MCP SDK agent (`agent_calls.py`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub use crate::support::{demo_backend, repo_root, sample_guard};

/// The agent key of every configuration here.
pub const KEY: &str = "visibility-test-key";
/// The workflow repository the tests claim to run in.
pub const REPOSITORY: &str = "test-owner/test-repo";
/// The token the tests hand to guardway.
pub const TOKEN: &str = "mock-token-for-testing";

/// `$GUARDWAY_PYTHON`, else `.venv/bin/python` (scripts/setup-test-env.sh).
pub fn python() -> PathBuf {
    let python = std::env::var_os("GUARDWAY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-test-env.sh",
        python.display()
    );
    python
}

/// A compilation cache shared by the tests, so the sample guard is compiled
/// once for the whole run.
fn wasm_cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("visibility-wasm-cache")
}

/// Reads the first line of `child`'s stdout that starts with `prefix`.
fn read_prefixed_line(child: &mut Child, prefix: &str, timeout: Duration) -> String {
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    let wanted = prefix.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with(&wanted) {
                let _ = sender.send(line);
                break;
            }
        }
    });
    receiver
        .recv_timeout(timeout)
        .unwrap_or_else(|_| panic!("no line starting with {prefix:?} on stdout"))
}

/// How the mock GitHub API answers `GET /repos/{owner}/{repo}`.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Public,
    Private,
    Internal,
    Status(u16),
    /// Accepts the request and never answers.
    Hang,
}

impl Answer {
    fn mode(self) -> String {
        match self {
            Answer::Public => "public".into(),
            Answer::Private => "private".into(),
            Answer::Internal => "internal".into(),
            Answer::Status(code) => format!("status:{code}"),
            Answer::Hang => "hang".into(),
        }
    }
}

/// The mock GitHub API process; killed when dropped.
pub struct MockGitHub {
    child: Child,
    pub url: String,
    log: PathBuf,
}

impl MockGitHub {
    pub fn start(dir: &Path, answer: Answer) -> Self {
        let log = dir.join("github-api-requests.jsonl");
        let mut child = Command::new(python())
            .arg(repo_root().join("tests/python/mock_github_api.py"))
            .args(["--mode", &answer.mode()])
            .arg("--log")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let line = read_prefixed_line(&mut child, "PORT ", Duration::from_secs(30));
        let port = line.trim_start_matches("PORT ").trim().to_owned();
        MockGitHub {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Value> {
        match std::fs::read_to_string(&self.log) {
            Ok(text) => text
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for MockGitHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The demo backend serving streamable HTTP; killed when dropped.
pub struct DemoHttpBackend {
    child: Child,
    pub url: String,
}

impl DemoHttpBackend {
    pub fn start() -> Self {
        let mut child = Command::new(demo_backend())
            .args(["--http", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let line = read_prefixed_line(&mut child, "listening on ", Duration::from_secs(30));
        let url = line.trim_start_matches("listening on ").trim().to_owned();
        DemoHttpBackend { child, url }
    }
}

impl Drop for DemoHttpBackend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The gateway's configuration: a TOML file, or JSON on stdin.
pub enum Config {
    Toml(String),
    JsonStdin(String),
}

/// The TOML of a `github` server (demo backend, sample guard) with the
/// given allow-only `repos` (a TOML value) and min-integrity `none`.
pub fn github_server_toml(repos: &str) -> String {
    format!(
        r#"
[servers.github]
command = {backend:?}
guard = "sample"
[servers.github.guard_policies.allow-only]
repos = {repos}
min-integrity = "none"

[guards.sample]
type = "wasm"
path = {guard:?}
"#,
        backend = demo_backend().to_string_lossy(),
        guard = sample_guard().to_string_lossy(),
    )
}

/// The TOML of a write-sink server `id` (demo backend) accepting `accept`
/// (a TOML array), with `sink-visibility` when given.
pub fn sink_server_toml(id: &str, accept: &str, visibility: Option<&str>) -> String {
    let visibility = visibility
        .map(|v| format!("sink-visibility = {v:?}\n"))
        .unwrap_or_default();
    format!(
        r#"
[servers.{id}]
command = {backend:?}
[servers.{id}.guard_policies.write-sink]
accept = {accept}
{visibility}"#,
        backend = demo_backend().to_string_lossy(),
    )
}

/// The `[gateway]` table with the test key and `extra` lines.
pub fn gateway_toml(extra: &str) -> String {
    format!("[gateway]\nagent_id = {KEY:?}\n{extra}\n")
}

/// A spawned `guardway serve`; terminated (then killed) when dropped.
pub struct Gateway {
    child: Child,
    pub base: String,
    pub log_dir: PathBuf,
}

/// The environment of a run: the variables set on top of a cleared
/// environment (only `PATH` and `HOME` are kept).
pub type Env<'a> = &'a [(&'a str, &'a str)];

impl Gateway {
    /// Starts guardway in routed mode with `config` and `env`; waits for
    /// its stdout document.
    pub fn start(dir: &Path, config: Config, env: Env<'_>) -> Self {
        Self::start_with_args(dir, config, env, &[])
    }

    /// [`Gateway::start`] with extra `serve` arguments.
    pub fn start_with_args(dir: &Path, config: Config, env: Env<'_>, args: &[&str]) -> Self {
        let log_dir = dir.join("logs");
        let mut command = Command::new(env!("CARGO_BIN_EXE_guardway"));
        command
            .env_clear()
            .envs(
                ["PATH", "HOME"]
                    .iter()
                    .filter_map(|k| std::env::var_os(k).map(|v| (*k, v))),
            )
            .envs(env.iter().copied())
            .arg("serve")
            .args(["--routed", "--listen", "127.0.0.1:0"])
            .arg("--log-dir")
            .arg(&log_dir)
            .arg("--wasm-cache-dir")
            .arg(wasm_cache_dir())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let input = match config {
            Config::Toml(text) => {
                let path = dir.join("config.toml");
                std::fs::write(&path, text).unwrap();
                command.arg("--config").arg(path).stdin(Stdio::null());
                None
            }
            Config::JsonStdin(text) => {
                command.arg("--config-stdin").stdin(Stdio::piped());
                Some(text)
            }
        };
        let mut child = command.spawn().unwrap();
        if let Some(text) = input {
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(text.as_bytes()).unwrap();
        }
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                text.push_str(&line);
                text.push('\n');
                if let Ok(document) = serde_json::from_str::<Value>(&text) {
                    let _ = sender.send(document);
                    text.clear();
                }
            }
        });
        let document = match receiver.recv_timeout(Duration::from_secs(90)) {
            Ok(document) => document,
            Err(_) => {
                let _ = child.kill();
                let log =
                    std::fs::read_to_string(log_dir.join("mcp-gateway.log")).unwrap_or_default();
                panic!("guardway printed no start-up document; mcp-gateway.log:\n{log}");
            }
        };
        let url = document["mcpServers"]
            .as_object()
            .and_then(|servers| servers.values().next())
            .and_then(|server| server["url"].as_str())
            .unwrap_or_else(|| panic!("no server url in {document}"))
            .to_owned();
        let base = url
            .split("/mcp")
            .next()
            .map(str::to_owned)
            .unwrap_or_default();
        Gateway {
            child,
            base,
            log_dir,
        }
    }

    /// The routed URL of server `id`.
    pub fn url(&self, id: &str) -> String {
        format!("{}/mcp/{id}", self.base)
    }

    /// Runs `calls` (server, tool, arguments) in order, each in a session
    /// of its own, as agent `agent`; returns one outcome per call.
    pub fn calls(&self, agent: &str, calls: &[(&str, &str, Value)]) -> Vec<Value> {
        let calls: Vec<Value> = calls
            .iter()
            .map(
                |(server, tool, args)| json!({"url": self.url(server), "tool": tool, "args": args}),
            )
            .collect();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/visibility/agent_calls.py");
        let output = Command::new(python())
            .arg(script)
            .env("MCP_KEY", KEY)
            .env("MCP_AGENT", agent)
            .env("MCP_CALLS", Value::Array(calls).to_string())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "agent failed:\n{stdout}\n{stderr}");
        let line = stdout.lines().last().unwrap_or_default();
        match serde_json::from_str(line) {
            Ok(Value::Array(outcomes)) => outcomes,
            _ => panic!("bad agent output {stdout:?}\n{stderr}"),
        }
    }

    /// `GET /reflect`.
    pub fn reflect(&self) -> Value {
        let addr = self.base.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "GET /reflect HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
    }

    /// SIGTERM, a bounded wait for the exit, then the log files.
    pub fn stop(mut self) -> Logs {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "guardway did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
        Logs {
            dir: self.log_dir.clone(),
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The log directory of a stopped gateway.
pub struct Logs {
    pub dir: PathBuf,
}

impl Logs {
    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// `mcp-gateway.log`.
    pub fn main(&self) -> String {
        self.read("mcp-gateway.log")
    }

    /// `<id>.log`.
    pub fn server(&self, id: &str) -> String {
        self.read(&format!("{id}.log"))
    }

    /// `gateway.md`.
    pub fn digest(&self) -> String {
        self.read("gateway.md")
    }

    /// The lines of `mcp-gateway.log` at `level` (`INFO`, `WARN`) in
    /// category `difc` that contain `text`.
    pub fn difc_lines(&self, level: &str, text: &str) -> Vec<String> {
        let tag = format!("[{level}] [difc] ");
        self.main()
            .lines()
            .filter(|line| line.contains(&tag) && line.contains(text))
            .map(str::to_owned)
            .collect()
    }

    /// Asserts that exactly `count` `difc` lines at `level` hold `text`.
    pub fn assert_difc(&self, level: &str, text: &str, count: usize) {
        let lines = self.difc_lines(level, text);
        assert_eq!(
            lines.len(),
            count,
            "expected {count} [{level}] [difc] line(s) with {text:?}; mcp-gateway.log:\n{}",
            self.main()
        );
    }

    /// Asserts that no line of `mcp-gateway.log` holds `text`.
    pub fn assert_absent(&self, text: &str) {
        let log = self.main();
        assert!(
            !log.contains(text),
            "{text:?} should not be logged; mcp-gateway.log:\n{log}"
        );
    }
}

/// The outcome of one agent call was a result (not an error), with
/// `isError` false.
pub fn assert_allowed(outcome: &Value) {
    assert_eq!(outcome["ok"], json!(true), "expected a result: {outcome}");
    assert_eq!(outcome["isError"], json!(false), "{outcome}");
}

/// The outcome of one agent call was a DIFC refusal: a JSON-RPC error with
/// code 0, either a coarse denial (`DIFC Violation: …`) or a result whose
/// only item was withheld (`[Filtered] … is not accessible …`).
pub fn assert_denied(outcome: &Value) {
    assert_eq!(outcome["ok"], json!(false), "expected a denial: {outcome}");
    assert_eq!(outcome["code"], json!(0), "{outcome}");
    let message = outcome["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("DIFC Violation:") || message.contains("is not accessible"),
        "not a DIFC refusal: {outcome}"
    );
}
