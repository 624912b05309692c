//! The guard compilation cache survives a restart: a first `guardway serve`
//! process compiles the sample guard (tiered: baseline code first, then the
//! optimised code in the background, which alone is stored) in
//! `--wasm-cache-dir`; a second process with the same directory loads it from
//! disk without compiling, as its `/metrics` counters show.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[path = "support/mod.rs"]
mod support;
use support::{demo_backend, sample_guard};

/// A spawned `guardway serve`, terminated (then killed) when dropped.
struct ServeProcess {
    child: Child,
    addr: String,
}

impl ServeProcess {
    fn spawn(config: &Path, cache_dir: &Path, log_dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_guardway"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .arg("--wasm-cache-dir")
            .arg(cache_dir)
            .arg("--log-dir")
            .arg(log_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                text.push_str(&line);
                text.push('\n');
                if let Ok(document) = serde_json::from_str::<serde_json::Value>(&text) {
                    let _ = sender.send(document);
                    text.clear();
                }
            }
        });
        let mut process = ServeProcess {
            child,
            addr: String::new(),
        };
        let document = receiver
            .recv_timeout(Duration::from_secs(60))
            .expect("no start-up document on stdout");
        let url = document["mcpServers"]["github"]["url"]
            .as_str()
            .unwrap()
            .to_owned();
        let addr = url
            .strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .unwrap();
        process.addr = addr.to_owned();
        process
    }

    /// GET /metrics (no authentication) and return the body.
    fn metrics(&self) -> String {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        response
    }

    /// SIGTERM, then a bounded wait for a clean exit.
    fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "guardway serve exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "guardway serve did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The value of one sample line `name{labels} value` (or `name value`).
fn sample(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{metrics}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn second_process_loads_the_compiled_guard_from_disk() {
    let backend = demo_backend();
    let guard = sample_guard();
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("wasm-cache");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[servers.github]
command = {backend:?}
guard = "sample"
[servers.github.guard_policies.allow-only]
repos = ["octo-org/*"]
min-integrity = "approved"
[guards.sample]
type = "wasm"
path = {guard:?}
"#,
            backend = backend.to_string_lossy(),
            guard = guard.to_string_lossy(),
        ),
    )
    .unwrap();

    let first = ServeProcess::spawn(&config, &cache_dir, &dir.path().join("logs-1"));
    // Baseline code at once, then the optimised code from the background thread, which
    // alone goes to disk.
    let artifacts = || -> Vec<PathBuf> {
        std::fs::read_dir(&cache_dir)
            .into_iter()
            .flatten()
            .flat_map(|fingerprint| std::fs::read_dir(fingerprint.unwrap().path()).unwrap())
            .map(|artifact| artifact.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "cwasm"))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while artifacts().is_empty() {
        assert!(Instant::now() < deadline, "no optimised code on disk");
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = first.metrics();
    assert_eq!(
        sample(&metrics, "guardway_wasm_cache_compilations_total"),
        2,
        "{metrics}"
    );
    let artifacts = artifacts();
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    assert_eq!(
        sample(
            &metrics,
            "guardway_wasm_cache_lookups_total{result=\"disk_hit\"}"
        ),
        0
    );
    first.terminate();
    // Log lines are written by a thread of their own; the last ones, just
    // before the process exits, are not lost.
    let log = std::fs::read_to_string(dir.path().join("logs-1/mcp-gateway.log")).unwrap();
    assert!(
        log.lines()
            .last()
            .is_some_and(|l| l.ends_with("gateway stopped")),
        "{log}"
    );

    let second = ServeProcess::spawn(&config, &cache_dir, &dir.path().join("logs-2"));
    let metrics = second.metrics();
    assert_eq!(
        sample(&metrics, "guardway_wasm_cache_compilations_total"),
        0,
        "{metrics}"
    );
    assert!(
        sample(
            &metrics,
            "guardway_wasm_cache_lookups_total{result=\"disk_hit\"}"
        ) >= 1,
        "{metrics}"
    );
    second.terminate();
}
