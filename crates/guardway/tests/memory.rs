//! Memory the `guardway serve` process gives back: the real binary, the demo
//! backend behind the sample guard, forty concurrent agent sessions of the
//! official MCP Python SDK making guarded calls; once they have ended,
//! resident memory returns near the idle figure measured before them (the
//! allocator's background purging, crates/guardway/src/memory.rs) and the
//! gateway holds no session.

#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::{demo_backend, free_port, python, repo_root, sample_guard, toml_string};

const KEY: &str = "memory-test-key";
/// How far above the idle figure resident memory may stay once the sessions
/// have ended (guard instances kept warm, the allocator's caches).
const MARGIN_KB: u64 = 8 * 1024;
const SESSIONS: u32 = 40;
const CALLS: u32 = 25;

/// Resident memory of process `pid` in kB (`VmRSS`); 0 once it is gone.
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resident memory once start-up's freed memory has gone back: sampled
/// every 2 s until two samples in a row are within 512 kB (the allocator
/// purges what was freed gradually over its 10 s decay time), for at most
/// 30 s.
fn settled_rss_kb(pid: u32) -> u64 {
    let end = Instant::now() + Duration::from_secs(30);
    let mut last = rss_kb(pid);
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let now = rss_kb(pid);
        if now.abs_diff(last) < 512 || Instant::now() > end {
            return now;
        }
        last = now;
    }
}

/// A plain `GET` of `path` on 127.0.0.1:`port`: the body of a 200 answer,
/// or `None` when nothing answers (yet).
fn get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// The gateway's `guardway_mcp_sessions` sample for the `github` route.
fn live_sessions(port: u16) -> Option<u64> {
    get(port, "/metrics")?.lines().find_map(|line| {
        line.strip_prefix("guardway_mcp_sessions{endpoint=\"/mcp/github\"} ")
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Runs `concurrent_agents.py` and returns its JSON summary.
fn agents(port: u16, sessions: u32, calls: u32) -> serde_json::Value {
    let output = Command::new(python(1))
        .arg(repo_root().join("tests/python/concurrent_agents.py"))
        .args([
            format!("http://127.0.0.1:{port}/mcp/github"),
            KEY.to_owned(),
            sessions.to_string(),
            calls.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "agents failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn memory_comes_back_after_forty_concurrent_sessions_end() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "guards_mode = \"filter\"\n\
             [gateway]\nagent_id = \"{KEY}\"\n\
             [servers.github]\ncommand = {}\nguard = \"sample\"\n\
             [servers.github.guard_policies.allow-only]\n\
             repos = [\"octo-org/*\"]\nmin-integrity = \"approved\"\n\
             [guards.sample]\ntype = \"wasm\"\npath = {}\n",
            toml_string(&demo_backend()),
            toml_string(&sample_guard()),
        ),
    )
    .unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_guardway"))
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--log-dir"])
        .arg(dir.path().join("logs"))
        .env_remove("GUARDWAY_WASM_CACHE_DIR")
        .env_remove("MCP_GATEWAY_WASM_CACHE_DIR")
        .env_remove("RUST_LOG")
        .env_remove("GUARDWAY_LOG")
        .env_remove("GITHUB_REPOSITORY")
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Keep reading stderr so the gateway never blocks on a full pipe.
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || for _ in BufReader::new(stderr).lines() {});
    let pid = child.id();
    let gateway = Gateway(child);
    let started = Instant::now();
    while get(port, "/health").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the gateway did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Warm: the guard compiled, the backend started, one session served.
    let warm = agents(port, 1, 5);
    assert_eq!(warm["errors"], 0, "{warm}");
    let idle = settled_rss_kb(pid);

    let peak = Arc::new(AtomicU64::new(idle));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = std::thread::spawn({
        let (peak, done) = (peak.clone(), done.clone());
        move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kb(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    });
    let load = agents(port, SESSIONS, CALLS);
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = peak.load(Ordering::Relaxed);
    assert_eq!(load["answered"], SESSIONS * CALLS, "{load}");
    assert_eq!(load["errors"], 0, "{load}");
    assert_eq!(
        load["filtered"],
        SESSIONS * CALLS,
        "every list carries the guard's notice: {load}"
    );

    // The sessions have ended (each closed with DELETE).
    let ended = Instant::now();
    let bound = idle + MARGIN_KB;
    let mut after = rss_kb(pid);
    while after > bound && ended.elapsed() < Duration::from_secs(40) {
        std::thread::sleep(Duration::from_millis(250));
        after = rss_kb(pid);
    }
    println!(
        "memory: idle {} MB, peak {} MB during {SESSIONS} sessions x {CALLS} calls, {} MB {:.1} s \
         after they ended (bound {} MB)",
        idle / 1024,
        peak / 1024,
        after / 1024,
        ended.elapsed().as_secs_f64(),
        bound / 1024
    );
    assert_eq!(live_sessions(port), Some(0), "sessions still open");
    assert!(
        after <= bound,
        "memory did not come back: idle {idle} kB, peak {peak} kB, after {after} kB"
    );
    drop(gateway);
}
