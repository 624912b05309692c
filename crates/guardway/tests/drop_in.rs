//! guardway in place of the reference gateway, run as a real process the
//! way deployment scripts run it: they wait for `Starting MCPG` on stderr,
//! read the stdout document, connect agents (the official Python MCP SDK,
//! 1.x and 2.x), scrape `mcp-gateway.log`, and expect a bad guard policy to
//! stop start-up with exit 1. Also runs the README's Python example, as
//! written, with both SDKs against the demo set-up.
//!
//! The exact strings come from the reference's source (its `internal/cmd`,
//! `internal/server` and `internal/logger`; `docs/compatibility.md`).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "support/mod.rs"]
mod support;
use support::{free_port, python, repo_root, toml_string};

const KEY: &str = "drop-in-key";
/// Longest wait for a gateway to start or stop (its Python backends start
/// in about a second; the machine may be busy).
const PATIENCE: Duration = Duration::from_secs(90);

/// A `[servers.<id>]` table running the Python echo backend.
fn echo_server_toml(id: &str) -> String {
    let backend = repo_root().join("tests/python/backends/echo_server.py");
    format!(
        "[servers.{id}]\ncommand = {}\nargs = [{}, \"{id}\"]\n",
        toml_string(&python(1)),
        toml_string(&backend)
    )
}

/// Text written to stderr so far, and a signal for each new line.
#[derive(Default)]
struct Captured {
    text: Mutex<String>,
    grew: Condvar,
}

/// A `guardway` process started with piped stdio.
struct Served {
    child: Child,
    stderr: Arc<Captured>,
    document: mpsc::Receiver<Value>,
}

impl Served {
    /// Runs `guardway ARGS` (with `input` on stdin when given).
    fn start(args: &[&str], input: Option<&str>) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_guardway"))
            .args(args)
            .current_dir(repo_root())
            .env_remove("RUST_LOG")
            .env_remove("GUARDWAY_LOG")
            .env_remove("MCP_GATEWAY_GUARDS_MODE")
            .env_remove("MCP_GATEWAY_WASM_GUARDS_DIR")
            .env_remove("GITHUB_REPOSITORY")
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = input {
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(input.as_bytes()).unwrap();
        }
        let stderr = Arc::new(Captured::default());
        let (source, sink) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(source).lines() {
                let Ok(line) = line else { break };
                let mut text = sink.text.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
                sink.grew.notify_all();
            }
        });
        // The stdout document: lines until they parse as one JSON value.
        let (send, document) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                text.push_str(&line);
                text.push('\n');
                if let Ok(value) = serde_json::from_str::<Value>(&text) {
                    let _ = send.send(value);
                    text.clear();
                }
            }
        });
        Self {
            child,
            stderr,
            document,
        }
    }

    fn stderr_text(&self) -> String {
        self.stderr.text.lock().unwrap().clone()
    }

    /// Waits until stderr holds a line containing `needle`; that line.
    fn wait_for_stderr(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut text = self.stderr.text.lock().unwrap();
        loop {
            if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
            let now = Instant::now();
            let exited = self.child.try_wait().unwrap();
            if now >= deadline || exited.is_some() {
                let stderr = text.clone();
                drop(text);
                self.kill();
                panic!("no line with {needle:?} on stderr (exit: {exited:?}):\n{stderr}");
            }
            text = self
                .stderr
                .grew
                .wait_timeout(text, Duration::from_millis(200))
                .unwrap()
                .0;
        }
    }

    /// The start-up document printed on stdout.
    fn document(&mut self) -> Value {
        match self.document.recv_timeout(PATIENCE) {
            Ok(document) => document,
            Err(_) => {
                let stderr = self.stderr_text();
                self.kill();
                panic!("no start-up document on stdout:\n{stderr}");
            }
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit by itself; `None` (and killed) when it
    /// still runs after `timeout`.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill();
        None
    }

    /// SIGTERM, as a supervisor stops it: the gateway stops and exits 0.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.wait_exit(PATIENCE);
        let stderr = self.stderr_text();
        assert!(
            status.is_some_and(|s| s.success()),
            "gateway did not stop with exit 0 on SIGTERM ({status:?}):\n{stderr}"
        );
        stderr
    }
}

/// One agent session with the Python SDK `major`.x through
/// `crates/guardway-gateway/tests/surface_peers/mcp_call.py`: initialize,
/// tools/list, one tools/call; what the script printed.
fn python_agent(major: u32, url: &str, tool: &str, args: Value) -> Value {
    let script = repo_root().join("crates/guardway-gateway/tests/surface_peers/mcp_call.py");
    let output = Command::new(python(major))
        .arg(script)
        .env("MCP_URL", url)
        .env("MCP_HEADERS", json!({"Authorization": KEY}).to_string())
        .env("MCP_TOOL", tool)
        .env("MCP_ARGS", args.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "mcp {major}.x agent failed:\n{stdout}\n{stderr}"
    );
    let answer: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("bad agent output {stdout:?}: {e}"));
    assert_eq!(answer["sdk"], major, "{answer}");
    answer
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The line of `log` holding `wanted` (after its timestamp); panics with
/// the whole log otherwise.
fn log_line<'a>(log: &'a str, wanted: &str) -> &'a str {
    log.lines()
        .find(|line| line.contains(wanted))
        .unwrap_or_else(|| panic!("no line with {wanted:?} in:\n{log}"))
}

/// Deployment scripts wait for `Starting MCPG` on stderr before they read
/// the stdout document and connect; the reference also writes the banner
/// to `mcp-gateway.log` under `startup`. guardway's own lines stay.
#[test]
fn start_up_banner_on_stderr_and_in_the_log_then_agents_connect() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nagent_id = \"{KEY}\"\n\n{}",
            echo_server_toml("alpha")
        ),
    )
    .unwrap();
    for (mode, banner_mode) in [("--routed", "ROUTED"), ("--unified", "UNIFIED")] {
        let logs = dir.path().join(format!("logs{mode}"));
        let listen = format!("127.0.0.1:{}", free_port());
        let config_arg = config.to_str().unwrap();
        let mut served = Served::start(
            &[
                "--config",
                config_arg,
                mode,
                "--listen",
                &listen,
                "--log-dir",
                logs.to_str().unwrap(),
            ],
            None,
        );
        let banner = format!("Starting MCPG in {banner_mode} mode on {listen}");
        served.wait_for_stderr(&banner);
        let document = served.document();
        let (url, tool) = if mode == "--routed" {
            let url = document["mcpServers"]["alpha"]["url"].as_str().unwrap();
            (url.to_owned(), "echo")
        } else {
            let url = document["mcpServers"].as_object().unwrap().values().next();
            (
                url.unwrap()["url"].as_str().unwrap().to_owned(),
                "alpha___echo",
            )
        };
        for major in [1, 2] {
            let answer = python_agent(major, &url, tool, json!({"text": "hi"}));
            assert_eq!(answer["texts"], json!(["alpha: hi"]), "{answer}");
        }
        let stderr = served.stop();

        let log = read(&logs.join("mcp-gateway.log"));
        let with_config = log_line(
            &log,
            &format!(
                "] [INFO] [startup] Starting MCPG with config: {config_arg}, listen: {listen}, log-dir: {}",
                logs.display()
            ),
        );
        let in_mode = log_line(&log, &format!("] [INFO] [startup] {banner}"));
        assert!(
            log.find(with_config) < log.find(in_mode),
            "banner lines out of order:\n{log}"
        );
        let routes = if mode == "--routed" {
            "Routes: /mcp/<server> where <server> is one of: [alpha]"
        } else {
            "Endpoint: /mcp"
        };
        let tls = format!(
            "TLS not configured — listening on http://{listen} (set --tls-cert/--tls-key to enable)"
        );
        // The banner's lines: on stderr and in the log, in this order.
        let mut last = log.find(in_mode);
        for line in [routes, &tls] {
            assert!(stderr.contains(line), "{line:?} not on stderr:\n{stderr}");
            let at = log.find(log_line(&log, &format!("] [INFO] [startup] {line}")));
            assert!(last < at, "banner lines out of order:\n{log}");
            last = at;
        }
        // The facts the reference writes to the log only.
        for line in [
            format!(
                "MCPG Gateway version: guardway {}",
                env!("CARGO_PKG_VERSION")
            ),
            "Loaded 1 MCP server(s): [alpha]".to_owned(),
        ] {
            log_line(&log, &format!("] [INFO] [startup] {line}"));
            assert!(!stderr.contains(&line), "{line:?} on stderr:\n{stderr}");
        }
        assert!(!stderr.contains("Starting MCPG with config"), "{stderr}");
        // guardway's own lines are kept, on stderr and in the log.
        log_line(&log, "] [INFO] [gateway] gateway listening");
        assert!(stderr.contains("gateway listening"), "{stderr}");
        // The cache directory is a start-up fact, said once.
        let cache_lines = stderr.matches("WASM compilation cache directory").count();
        assert_eq!(cache_lines, 1, "{stderr}");
        // The MCP library's account of each session is not.
        for chatter in ["serve_inner", "create new session", "Service initialized"] {
            assert!(
                !stderr.contains(chatter),
                "{chatter:?} on stderr:\n{stderr}"
            );
            assert!(!log.contains(chatter), "{chatter:?} in the log:\n{log}");
        }
    }
}

/// `mcp-gateway.log` names the guard registered for each server, the
/// write-sink guard with its `sink-visibility`, and the DIFC mode, in the
/// reference's words (the server id in brackets before the message, as its
/// per-server lines are); `<server>.log` has the same line without the id;
/// guardway's structured `difc` decision lines stay.
#[test]
fn log_names_each_servers_guard_and_the_difc_mode() {
    let guard =
        repo_root().join("guards/sample-guard/target/wasm32-wasip1/release/sample_guard.wasm");
    assert!(
        guard.exists(),
        "{} is missing: run scripts/build-guards.sh",
        guard.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "guards_mode = \"filter\"\n\n[gateway]\nagent_id = \"{KEY}\"\n\n\
             {alpha}guard = \"sample\"\n\n\
             [servers.alpha.guard_policies.allow-only]\nrepos = [\"octo-org/*\"]\nmin-integrity = \"none\"\n\n\
             {sink}\n[servers.sink.guard_policies.write-sink]\naccept = [\"*\"]\nsink-visibility = \"private\"\n\n\
             {plain}\n\
             [guards.sample]\ntype = \"wasm\"\npath = {guard}\n",
            alpha = echo_server_toml("alpha"),
            sink = echo_server_toml("sink"),
            plain = echo_server_toml("plain"),
            guard = toml_string(&guard),
        ),
    )
    .unwrap();
    let logs = dir.path().join("logs");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut served = Served::start(
        &[
            "--config",
            config.to_str().unwrap(),
            "--listen",
            &listen,
            "--log-dir",
            logs.to_str().unwrap(),
        ],
        None,
    );
    let document = served.document();
    // Through the write-sink guard, which lets the write pass.
    let url = document["mcpServers"]["sink"]["url"].as_str().unwrap();
    for major in [1, 2] {
        let answer = python_agent(major, url, "echo", json!({"text": "hi"}));
        assert_eq!(answer["texts"], json!(["sink: hi"]), "{answer}");
    }
    served.stop();

    let log = read(&logs.join("mcp-gateway.log"));
    for wanted in [
        "] [INFO] [difc] [alpha] Guard policy: {\"allow-only\":",
        "] [INFO] [difc] [alpha] Registered guard 'sample'",
        "] [INFO] [difc] [sink] Created write-sink guard with 1 accept patterns, sink-visibility=\"private\"",
        "] [INFO] [difc] [sink] Registered guard 'write-sink'",
        "] [INFO] [difc] [plain] No guard policy was set",
        "] [INFO] [difc] [plain] Registered guard 'noop'",
        "] [INFO] [startup] Guards enforcement enabled with mode: filter",
    ] {
        log_line(&log, wanted);
    }
    let alpha = read(&logs.join("alpha.log"));
    log_line(&alpha, "] [INFO] [difc] Registered guard 'sample'");
    // The structured decision line of guardway's own `difc` target.
    let decision = log_line(&log, "] [INFO] [difc] difc decision");
    assert!(
        decision.contains("decision=allow") && decision.contains("server=sink"),
        "{decision}"
    );
}

/// The reference's `TestSinkVisibility_InvalidValue`, in both configuration
/// formats: an invalid `write-sink` `sink-visibility` stops start-up with
/// exit 1 and an error naming the field path; nothing is served.
#[test]
fn invalid_sink_visibility_stops_start_up_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    for (n, value) in [r#""foo""#, r#""restricted""#, "123", r#""123""#]
        .into_iter()
        .enumerate()
    {
        // JSON on stdin, as the reference's own test feeds it.
        let config = format!(
            r#"{{"mcpServers": {{"safe-outputs": {{"type": "http", "url": "http://127.0.0.1:9/mcp",
                 "guard-policies": {{"write-sink": {{"accept": ["*"], "sink-visibility": {value}}}}}}}}},
               "gateway": {{"port": 3000, "domain": "localhost", "agentId": "{KEY}"}}}}"#
        );
        let logs = dir.path().join(format!("json-logs-{n}"));
        let mut served = Served::start(
            &[
                "--config-stdin",
                "--listen",
                "127.0.0.1:0",
                "--log-dir",
                logs.to_str().unwrap(),
            ],
            Some(&config),
        );
        assert_refused(
            &mut served,
            value,
            "mcpServers.safe-outputs.guard-policies.write-sink.sink-visibility",
        );

        // The same policy in a TOML file.
        let toml = dir.path().join(format!("gateway-{n}.toml"));
        std::fs::write(
            &toml,
            format!(
                "[gateway]\nagent_id = \"{KEY}\"\n\n{}\n\
                 [servers.sink.guard_policies.write-sink]\naccept = [\"*\"]\nsink-visibility = {value}\n",
                echo_server_toml("sink")
            ),
        )
        .unwrap();
        let logs = dir.path().join(format!("toml-logs-{n}"));
        let mut served = Served::start(
            &[
                "--config",
                toml.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--log-dir",
                logs.to_str().unwrap(),
            ],
            None,
        );
        assert_refused(
            &mut served,
            value,
            "servers.sink.guard_policies.write-sink.sink-visibility",
        );
    }
}

/// Start-up stopped with exit 1, an error at `path` on stderr, and no
/// start-up document.
fn assert_refused(served: &mut Served, value: &str, path: &str) {
    let status = served.wait_exit(PATIENCE);
    let stderr = served.stderr_text();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(1),
        "sink-visibility {value}: start-up went on ({status:?}):\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("Configuration error at {path}")),
        "sink-visibility {value}:\n{stderr}"
    );
    if value.starts_with('"') {
        assert!(
            stderr.contains("must be one of: public, private, internal"),
            "sink-visibility {value}:\n{stderr}"
        );
    }
    assert!(
        served.document.try_recv().is_err(),
        "sink-visibility {value}: a start-up document was printed"
    );
}

/// The README's Python example, exactly as written except for the port,
/// runs with the current major version of the official SDK (2.x) as well
/// as 1.x, against `examples/guardway.toml` (the demo backend behind the
/// sample guard).
#[test]
fn readme_python_example_runs_with_mcp_1_and_2() {
    let root = repo_root();
    let readme = read(&root.join("README.md"));
    let example = readme
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("a python block in README.md");
    assert!(
        example.contains("http://127.0.0.1:3000/mcp/github"),
        "{example}"
    );

    let demo = Path::new(env!("CARGO_BIN_EXE_guardway")).with_file_name("guardway-demo-backend");
    assert!(
        demo.exists(),
        "{} is missing: run cargo build -p guardway-demo",
        demo.display()
    );
    let guard = root.join("guards/sample-guard/target/wasm32-wasip1/release/sample_guard.wasm");
    assert!(
        guard.exists(),
        "{} is missing: run scripts/build-guards.sh",
        guard.display()
    );
    // The example configuration with this build's paths.
    let config = read(&root.join("examples/guardway.toml"))
        .replace(
            "\"target/debug/guardway-demo-backend\"",
            &toml_string(&demo),
        )
        .replace(
            "\"guards/sample-guard/target/wasm32-wasip1/release/sample_guard.wasm\"",
            &toml_string(&guard),
        );
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("guardway.toml");
    std::fs::write(&config_path, config).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut served = Served::start(
        &[
            "serve",
            "--config",
            config_path.to_str().unwrap(),
            "--listen",
            &listen,
            "--log-dir",
            dir.path().join("logs").to_str().unwrap(),
        ],
        None,
    );
    let document = served.document();
    let url = document["mcpServers"]["github"]["url"].as_str().unwrap();
    let script = dir.path().join("example.py");
    std::fs::write(
        &script,
        example.replace("http://127.0.0.1:3000/mcp/github", url),
    )
    .unwrap();
    for major in [1, 2] {
        let output = Command::new(python(major)).arg(&script).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "mcp {major}.x:\n{stdout}\n{stderr}"
        );
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 2, "mcp {major}.x:\n{stdout}\n{stderr}");
        assert!(
            lines[0].starts_with("[Filtered] "),
            "mcp {major}.x: {stdout}"
        );
        assert!(
            lines[1].starts_with("0 DIFC Violation: "),
            "mcp {major}.x: {stdout}"
        );
    }
    served.stop();
}
