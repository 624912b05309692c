//! The soak test (ignored by default; `scripts/soak.sh` runs it): many
//! concurrent agent sessions make guarded calls through a real gateway to
//! real stdio backends (the demo backend behind the sample guard, the
//! Python echo backend, the demo backend behind a trapping and a looping
//! guard) while faults are injected at random from a seeded generator:
//! backend processes are killed, clients drop requests mid-call, slow calls
//! run alongside. It checks that every request that completes has exactly
//! one answer with its own id and its own session's data, that denials and
//! filtering hold throughout, that no child process or file descriptor
//! leaks, and that resident memory stays bounded and comes back after the
//! sessions end.
//!
//! `SOAK_AGENTS` (default 20), `SOAK_OPS` (operations per agent, default
//! 60) and `SOAK_SEED` (default fixed) tune a run.

use crate::common;
use crate::guarded_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use guardway_gateway::config::{GuardConfig, RoutingMode, ServerConfig, ServerTransport};
use guardway_gateway::{Gateway, GuardPipeline};
use guardway_wasm::{GuardOptions, QuarantineOptions};
use serde_json::{Value, json};

/// SplitMix64: a small seeded generator, so a run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The pids of this process's children (every thread's).
fn children() -> BTreeSet<u32> {
    let mut pids = BTreeSet::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            pids.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    pids
}

/// The command line of process `pid`, arguments joined by spaces.
fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Whether process `pid` runs with `VAR=value` in its environment.
fn has_env(pid: u32, entry: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|b| b.split(|&c| c == 0).any(|e| e == entry.as_bytes()))
        .unwrap_or(false)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// What this process's descriptors point at (`readlink /proc/self/fd/N`).
fn fd_targets() -> Vec<String> {
    let mut targets: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|t| t.to_string_lossy().into_owned())
        .collect();
    targets.sort();
    targets
}

/// Resident memory of this process in kB (`VmRSS`).
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// How far above the idle figure resident memory may stay once the sessions
/// have ended (the guards' pooled instances, the allocator's caches).
const RSS_MARGIN_KB: u64 = 8 * 1024;

/// Resident memory once the allocator has given back what start-up freed
/// (compiling the guards, for one): sampled every second until two samples
/// in a row are within 1 MB of each other, for at most `limit`.
async fn settled_rss_kb(limit: Duration) -> u64 {
    let end = Instant::now() + limit;
    let mut last = rss_kb();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = rss_kb();
        if now.abs_diff(last) < 1024 || Instant::now() > end {
            return now;
        }
        last = now;
    }
}

/// Polls `check` every 50 ms for up to `limit`; whether it held.
async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The answer to one request: a tool result's text, or an error's text
/// (a JSON-RPC error or a tool result flagged `isError`).
#[derive(Debug)]
enum Answer {
    Ok(String),
    Err(String),
}

/// The counts of one agent's run (and, summed, of the whole run).
#[derive(Debug, Default)]
struct Tally {
    requests: u64,
    answers: u64,
    ok: u64,
    errors: u64,
    abandoned: u64,
    /// Requests that got no well-formed answer of their own.
    lost: u64,
    denied: u64,
    filtered_lists: u64,
    guard_faults: u64,
    slow: u64,
    /// Error answers by their first words, for the summary.
    error_kinds: BTreeMap<String, u64>,
    /// Anything that breaks a promise: lost answers, wrong ids, another
    /// session's data, a denial or filter not applied.
    violations: Vec<String>,
}

/// One agent: a session on every route, ids unique across agents.
struct Agent {
    index: u64,
    client: reqwest::Client,
    sessions: BTreeMap<&'static str, (String, String)>,
    next_id: u64,
}

/// The echo route's requests come from an agent of their own
/// (`X-Agent-ID`): agent labels are per agent across servers, and the
/// sample guard's policy would otherwise taint the agent that reads the
/// echo backend (one shared agent process serves every echo session).
fn with_agent_id(route: &str, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    if route == "echo" {
        request.header("x-agent-id", "soak-echo")
    } else {
        request
    }
}

const ROUTES: [&str; 4] = ["github", "echo", "trapper", "looper"];

impl Agent {
    async fn open(base: &str, index: u64) -> Self {
        let mut sessions = BTreeMap::new();
        for route in ROUTES {
            let url = format!("{base}/mcp/{route}");
            let resp = with_agent_id(route, common::post(&url))
                .json(&common::initialize_request("soak"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let session = common::session_id(&resp);
            let resp = with_agent_id(route, common::session_post(&url, &session))
                .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 202);
            sessions.insert(route, (url, session));
        }
        Self {
            index,
            client: reqwest::Client::new(),
            sessions,
            next_id: 0,
        }
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.index * 1_000_000 + self.next_id
    }

    /// Sends `tools/call name(args)` on `route` with id `id`; the single
    /// answer carrying that id, or a description of what was wrong.
    async fn call(&self, route: &str, id: u64, name: &str, args: Value) -> Result<Answer, String> {
        let (url, session) = &self.sessions[route];
        let resp = with_agent_id(route, self.client.post(url))
            .header("accept", common::ACCEPT)
            .header("content-type", "application/json")
            .header("authorization", common::API_KEY)
            .header("mcp-session-id", session)
            .json(&common::tool_call(json!(id), name, args))
            .send()
            .await
            .map_err(|e| format!("{route}/{name} id {id}: no answer: {e}"))?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .map_err(|e| format!("{route}/{name} id {id}: body lost: {e}"))?;
        if status != 200 {
            return Err(format!("{route}/{name} id {id}: HTTP {status}: {body}"));
        }
        let answers: Vec<Value> = common::messages(&body)
            .into_iter()
            .filter(|m| m.get("result").is_some() || m.get("error").is_some())
            .collect();
        if answers.len() != 1 || answers[0]["id"] != json!(id) {
            return Err(format!(
                "{route}/{name} id {id}: expected one answer with its id, got {body}"
            ));
        }
        let answer = &answers[0];
        if let Some(error) = answer.get("error") {
            return Ok(Answer::Err(error["message"].as_str().unwrap_or("").into()));
        }
        let result = &answer["result"];
        let text: String = result["content"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n");
        if result["isError"] == json!(true) {
            Ok(Answer::Err(text))
        } else {
            Ok(Answer::Ok(text))
        }
    }

    async fn close(self) {
        for (url, session) in self.sessions.values() {
            let route = url.rsplit('/').next().unwrap_or_default();
            let resp = with_agent_id(route, self.client.delete(url))
                .header("authorization", common::API_KEY)
                .header("mcp-session-id", session)
                .send()
                .await
                .unwrap();
            assert!(
                resp.status().is_success(),
                "DELETE {url}: {}",
                resp.status()
            );
        }
    }
}

/// What the warm-up learnt: the filtered list every agent must keep
/// seeing, and the approved issues agents read as their own data.
struct Expected {
    filtered: BTreeSet<u64>,
    approved: Vec<u64>,
}

/// The notice a filtered list answer carries after its items.
const FILTERED_NOTICE: &str = "item(s) in this response were removed by integrity policy";

fn list_args() -> Value {
    json!({"owner": "octo-org", "repo": "api", "perPage": 100})
}

/// The number of the issue a read answer carries: the issue itself, or
/// the guard's rewrapped form (`[{"content": [{"text": <issue>}]}]`).
fn issue_number(text: &str) -> Option<u64> {
    let v: Value = serde_json::Deserializer::from_str(text)
        .into_iter()
        .next()?
        .ok()?;
    if let Some(number) = v["number"].as_u64() {
        return Some(number);
    }
    let inner: Value = serde_json::from_str(v[0]["content"][0]["text"].as_str()?).ok()?;
    inner["number"].as_u64()
}

/// The issue numbers of a list answer (its first text item).
fn issue_numbers(text: &str) -> Option<BTreeSet<u64>> {
    let v: Value = serde_json::Deserializer::from_str(text)
        .into_iter()
        .next()?
        .ok()?;
    let items = v.get("issues").unwrap_or(&v).as_array()?;
    items.iter().map(|i| i["number"].as_u64()).collect()
}

/// One agent's run: `ops` operations chosen by its own generator.
async fn run_agent(mut agent: Agent, ops: u64, seed: u64, expected: Arc<Expected>) -> Tally {
    let mut rng = Rng(seed ^ (agent.index.wrapping_mul(0xA24B_AED4_963E_E407)));
    let mut tally = Tally::default();
    let own_issue = expected.approved[(agent.index as usize) % expected.approved.len()];
    for op in 0..ops {
        let id = agent.fresh_id();
        let roll = rng.below(100);
        tally.requests += 1;
        if roll < 10 {
            // A client that goes away mid-call: the request future is dropped.
            let wait = Duration::from_millis(5 + rng.below(300));
            let call = if rng.below(2) == 0 {
                agent.call("echo", id, "sleep", json!({"seconds": 1.0}))
            } else {
                agent.call(
                    "github",
                    id,
                    "issue_read",
                    json!({"method": "get", "owner": "octo-org", "repo": "api",
                           "issue_number": own_issue}),
                )
            };
            match tokio::time::timeout(wait, call).await {
                Err(_) => tally.abandoned += 1,
                // Answered before the client gave up.
                Ok(Ok(_)) => tally.answers += 1,
                Ok(Err(violation)) => {
                    tally.lost += 1;
                    tally.violations.push(violation);
                }
            }
            continue;
        }
        let (route, name, args) = match roll {
            10..=44 => (
                "github",
                "issue_read",
                json!({"method": "get", "owner": "octo-org", "repo": "api",
                       "issue_number": own_issue}),
            ),
            45..=59 => ("github", "list_issues", list_args()),
            60..=67 => (
                "github",
                "create_issue",
                json!({"owner": "octo-org", "repo": "api",
                       "title": format!("soak {} {op}", agent.index)}),
            ),
            68..=87 => {
                let nonce = format!("agent {} op {op} nonce {:016x}", agent.index, rng.next());
                ("echo", "echo", json!({"text": nonce}))
            }
            88..=92 => {
                tally.slow += 1;
                let seconds = 0.2 + rng.below(10) as f64 / 10.0;
                ("echo", "sleep", json!({"seconds": seconds}))
            }
            93..=96 => ("trapper", "list_issues", list_args()),
            _ => ("looper", "list_issues", list_args()),
        };
        let answer = match agent.call(route, id, name, args.clone()).await {
            Ok(answer) => answer,
            Err(violation) => {
                tally.lost += 1;
                tally.violations.push(violation);
                continue;
            }
        };
        tally.answers += 1;
        let what = format!("agent {} {route}/{name} id {id}", agent.index);
        match (&answer, route, name) {
            (Answer::Ok(text), "github", "issue_read") => {
                let number = issue_number(text);
                if number != Some(own_issue) {
                    tally
                        .violations
                        .push(format!("{what}: issue {own_issue} expected, got {text}"));
                }
            }
            (Answer::Ok(text), "github", "list_issues") => {
                if issue_numbers(text).as_ref() != Some(&expected.filtered)
                    || !text.contains(FILTERED_NOTICE)
                {
                    tally
                        .violations
                        .push(format!("{what}: the filtered list changed: {text}"));
                } else {
                    tally.filtered_lists += 1;
                }
            }
            (Answer::Ok(text), "github", "create_issue") => {
                tally
                    .violations
                    .push(format!("{what}: a denied write succeeded: {text}"));
            }
            (Answer::Err(_), "github", "create_issue") => tally.denied += 1,
            (Answer::Ok(text), "echo", "echo") => {
                let sent = args["text"].as_str().unwrap_or_default();
                if *text != format!("echo: {sent}") {
                    tally
                        .violations
                        .push(format!("{what}: sent {sent:?}, got {text:?}"));
                }
            }
            (Answer::Ok(text), "echo", "sleep") if text != "slept" => {
                tally.violations.push(format!("{what}: got {text:?}"));
            }
            (Answer::Ok(text), "trapper" | "looper", _) => {
                tally.violations.push(format!(
                    "{what}: a failing guard let a call through: {text}"
                ));
            }
            (Answer::Err(_), "trapper" | "looper", _) => tally.guard_faults += 1,
            _ => {}
        }
        match answer {
            Answer::Ok(_) => tally.ok += 1,
            Answer::Err(text) => {
                tally.errors += 1;
                // Up to the first figure (retry delays differ call to call).
                let kind: String = text
                    .chars()
                    .take(48)
                    .take_while(|c| !c.is_ascii_digit())
                    .collect();
                *tally
                    .error_kinds
                    .entry(format!("{route}/{name}: {kind}"))
                    .or_default() += 1;
            }
        }
    }
    agent.close().await;
    tally
}

fn demo_server(call_log: Option<&std::path::Path>) -> ServerConfig {
    let mut server = guarded_support::demo_stdio_server();
    if let (Some(log), ServerTransport::Stdio { env, .. }) = (call_log, &mut server.transport) {
        env.insert(
            "GUARDWAY_DEMO_CALL_LOG".into(),
            log.to_string_lossy().into_owned(),
        );
    }
    server
}

fn guarded(mut server: ServerConfig, guard: &str, policy: Option<Value>) -> ServerConfig {
    server.guard = Some(guard.to_owned());
    server.guard_policies = policy;
    server
}

fn wasm_guard(path: &std::path::Path) -> GuardConfig {
    GuardConfig {
        kind: "wasm".into(),
        path: Some(path.to_owned()),
        policy: Some(json!({"allow-only": {"repos": "all", "min-integrity": "none"}})),
        config: None,
    }
}

/// Backend kills injected, by backend.
#[derive(Default)]
struct Faults {
    demo_killed: AtomicU64,
    echo_killed: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak test (minutes under load): scripts/soak.sh"]
async fn soak_guarded_sessions_under_faults() {
    common::init_tracing();
    // As `guardway serve` does at start-up (crates/guardway/src/memory.rs).
    tikv_jemalloc_ctl::background_thread::write(true).unwrap();
    let agents = env_or("SOAK_AGENTS", 20);
    let ops = env_or("SOAK_OPS", 60);
    let seed = env_or("SOAK_SEED", 0x5EED_0022);
    // Real parts first (builds, interpreter checks), so that the figures
    // taken next are of this process alone.
    let sample = guarded_support::sample_guard();
    let _ = guarded_support::demo_backend();
    let _ = common::python();
    let dir = tempfile::tempdir().unwrap();
    let call_log = dir.path().join("github-calls.jsonl");
    let trap = guarded_support::write_file(
        dir.path(),
        "trap.wasm",
        &guarded_support::wat_guard("unreachable"),
    );
    let looping = guarded_support::write_file(
        dir.path(),
        "loop.wasm",
        &guarded_support::wat_guard("(loop $spin (br $spin)) (i32.const 0)"),
    );
    let children_before = children();
    let fds_before = open_fds();
    let fd_targets_before = fd_targets();
    let rss_start = rss_kb();

    let servers = BTreeMap::from([
        (
            "github".to_owned(),
            guarded(
                demo_server(Some(&call_log)),
                "sample",
                Some(json!({"allow-only": {"repos": ["octo-org/*"], "min-integrity": "approved"}})),
            ),
        ),
        (
            "echo".to_owned(),
            guarded(common::echo_backend("echo"), "none", None),
        ),
        (
            "trapper".to_owned(),
            guarded(demo_server(None), "trap", None),
        ),
        (
            "looper".to_owned(),
            guarded(demo_server(None), "loop", None),
        ),
    ]);
    let mut options = common::options(servers, RoutingMode::Routed);
    options.config.guards = BTreeMap::from([
        ("sample".to_owned(), wasm_guard(&sample)),
        ("trap".to_owned(), wasm_guard(&trap)),
        ("loop".to_owned(), wasm_guard(&looping)),
        (
            "none".to_owned(),
            GuardConfig {
                kind: "noop".into(),
                path: None,
                policy: None,
                config: None,
            },
        ),
    ]);
    let guard_options = GuardOptions::default()
        .with_call_timeout(Duration::from_secs(3))
        .with_quarantine(QuarantineOptions {
            failures: 1_000_000,
            window: Duration::from_secs(60),
            cool_down: Duration::from_secs(1),
        });
    let pipeline = Arc::new(GuardPipeline::new(&options).with_guard_options(guard_options));
    let gateway = Gateway::start_with_interceptor(options, pipeline.clone())
        .await
        .unwrap();
    let base = format!("http://{}", gateway.local_addr());

    // Warm-up: what the policy lets through, and a round on every route.
    let probe = Agent::open(&base, 999).await;
    let listed = match probe.call("github", 1, "list_issues", list_args()).await {
        Ok(Answer::Ok(text)) => text,
        other => panic!("warm-up list_issues: {other:?}"),
    };
    let filtered = issue_numbers(&listed).expect("a list of issues");
    assert!(!filtered.is_empty(), "{listed}");
    assert!(
        filtered.len() < 100 && listed.contains(FILTERED_NOTICE),
        "the policy filters octo-org/api's list: {} of 100 kept",
        filtered.len()
    );
    let create = json!({"owner": "octo-org", "repo": "api", "title": "warm-up"});
    assert!(matches!(
        probe.call("github", 2, "create_issue", create).await,
        Ok(Answer::Err(_))
    ));
    let echoed = probe.call("echo", 3, "echo", json!({"text": "warm"})).await;
    assert!(
        matches!(&echoed, Ok(Answer::Ok(t)) if t == "echo: warm"),
        "{echoed:?}"
    );
    probe.close().await;
    let expected = Arc::new(Expected {
        approved: filtered.iter().copied().collect(),
        filtered,
    });
    let rss_warm = settled_rss_kb(Duration::from_secs(30)).await;

    // Sampling resident memory and injecting backend kills until the
    // agents are done.
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(rss_warm));
    let sampler = tokio::spawn({
        let (done, peak) = (done.clone(), peak.clone());
        async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kb(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let faults = Arc::new(Faults::default());
    let demo_binary = guarded_support::demo_backend();
    let demo_name = demo_binary.to_string_lossy().into_owned();
    let log_entry = format!("GUARDWAY_DEMO_CALL_LOG={}", call_log.display());
    let killer = tokio::spawn({
        let (done, faults) = (done.clone(), faults.clone());
        let pids_before = children_before.clone();
        async move {
            let mut rng = Rng(seed);
            while !done.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(500 + rng.below(2500))).await;
                let echo = rng.below(2) == 0;
                let victim = children().difference(&pids_before).copied().find(|&pid| {
                    if echo {
                        cmdline(pid).contains("echo_server.py")
                    } else {
                        cmdline(pid).starts_with(&demo_name) && has_env(pid, &log_entry)
                    }
                });
                let Some(pid) = victim else { continue };
                let killed = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status()
                    .is_ok_and(|s| s.success());
                if killed {
                    let counter = if echo {
                        &faults.echo_killed
                    } else {
                        &faults.demo_killed
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });

    let started = Instant::now();
    let mut runs = Vec::new();
    for index in 0..agents {
        let agent = Agent::open(&base, index).await;
        runs.push(tokio::spawn(run_agent(agent, ops, seed, expected.clone())));
    }
    let mut total = Tally::default();
    for run in runs {
        let t = run.await.unwrap();
        total.requests += t.requests;
        total.answers += t.answers;
        total.ok += t.ok;
        total.errors += t.errors;
        total.abandoned += t.abandoned;
        total.lost += t.lost;
        total.denied += t.denied;
        total.filtered_lists += t.filtered_lists;
        total.guard_faults += t.guard_faults;
        total.slow += t.slow;
        total.violations.extend(t.violations);
        for (kind, n) in t.error_kinds {
            *total.error_kinds.entry(kind).or_default() += n;
        }
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    killer.await.unwrap();
    sampler.await.unwrap();

    // The gateway came back from every kill: both backends answer again.
    let last = Agent::open(&base, 998).await;
    let mut recovered = false;
    for attempt in 0..40 {
        let github = last
            .call(
                "github",
                10 + attempt,
                "issue_read",
                json!({"method": "get", "owner": "octo-org", "repo": "api",
                       "issue_number": expected.approved[0]}),
            )
            .await;
        let echo = last
            .call("echo", 100 + attempt, "echo", json!({"text": "after"}))
            .await;
        if matches!(github, Ok(Answer::Ok(_)))
            && matches!(&echo, Ok(Answer::Ok(t)) if t == "echo: after")
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    last.close().await;
    let launches = |id: &str| gateway.backend(id).map_or(0, |b| b.health().launches);
    let (github_launches, echo_launches) = (launches("github"), launches("echo"));

    // Sessions have ended: memory comes back near the idle figure taken
    // after the warm-up, within the allocator's decay time (10 s) and a
    // little more.
    let peak = peak.load(Ordering::Relaxed);
    let bound = rss_warm + RSS_MARGIN_KB;
    let ended = Instant::now();
    let mut rss_after = rss_kb();
    eventually(Duration::from_secs(40), || {
        rss_after = rss_kb();
        rss_after <= bound
    })
    .await;
    let returned_in = ended.elapsed();
    let peak = peak.max(rss_after);

    let reached = std::fs::read_to_string(&call_log).unwrap_or_default();
    let writes_reached = reached
        .lines()
        .filter(|l| l.contains("create_issue"))
        .count();
    let denials = pipeline.metrics().counter(
        "guardway_denials_total",
        &["github", "create_issue", "coarse"],
    );

    // The pipeline (guards, log files) ends with the gateway.
    drop(pipeline);
    gateway.shutdown().await;
    let children_gone = eventually(Duration::from_secs(10), || {
        children().is_subset(&children_before)
    })
    .await;
    // The process-wide compilation cache keeps one memory image per guard
    // module (three here) for the next gateway; anything else must close.
    let mut fds_after = open_fds();
    let fds_back = eventually(Duration::from_secs(10), || {
        fds_after = open_fds();
        let images = fd_targets()
            .iter()
            .filter(|t| t.starts_with("/memfd:wasm-memory-image"))
            .count();
        images <= 3 && fds_after - images <= fds_before + 1
    })
    .await;

    let lost = total.lost;
    assert_eq!(total.requests, total.answers + total.abandoned + lost);
    println!(
        "soak: seed {seed:#x}, {agents} agents x {ops} ops in {:.1} s: requests {}, answers {} \
         ({} ok, {} errors), abandoned by the client {}, answers lost {}, violations {}; \
         faults injected: demo backend killed {}, echo backend killed {}, client disconnects {}, \
         slow calls {}, guard traps/loops {}; denied writes {} (metric {denials}), filtered \
         lists {}; launches github {github_launches}, echo {echo_launches}; RSS start {} MB, \
         idle after warm-up {} MB, peak {} MB, after sessions {} MB (bound {} MB, {:.1} s after the end); fds {fds_before} \
         -> {fds_after}; children left {}",
        elapsed.as_secs_f64(),
        total.requests,
        total.answers,
        total.ok,
        total.errors,
        total.abandoned,
        lost,
        total.violations.len(),
        faults.demo_killed.load(Ordering::Relaxed),
        faults.echo_killed.load(Ordering::Relaxed),
        total.abandoned,
        total.slow,
        total.guard_faults,
        total.denied,
        total.filtered_lists,
        rss_start / 1024,
        rss_warm / 1024,
        peak / 1024,
        rss_after / 1024,
        bound / 1024,
        returned_in.as_secs_f64(),
        children().difference(&children_before).count(),
    );
    let mut still_open = fd_targets();
    for target in &fd_targets_before {
        if let Some(i) = still_open.iter().position(|t| t == target) {
            still_open.remove(i);
        }
    }
    println!("soak: descriptors opened since the start and still open: {still_open:?}");
    for (kind, n) in &total.error_kinds {
        println!("soak: error answers: {n} x {kind}");
    }
    assert!(
        total.violations.is_empty(),
        "{} violations, first: {:#?}",
        total.violations.len(),
        &total.violations[..total.violations.len().min(10)]
    );
    assert_eq!(lost, 0);
    assert!(recovered, "the backends did not come back after the kills");
    assert!(
        faults.demo_killed.load(Ordering::Relaxed) + faults.echo_killed.load(Ordering::Relaxed) > 0,
        "no backend was killed: the run was too short to inject faults"
    );
    assert_eq!(writes_reached, 0, "a denied write reached the backend");
    assert!(total.denied > 0 && total.filtered_lists > 0);
    assert!(
        rss_after <= bound,
        "memory did not come back: {rss_after} kB > {bound} kB"
    );
    assert!(children_gone, "child processes left after shutdown");
    assert!(
        fds_back,
        "file descriptors leaked: {fds_before} -> {fds_after}: {fd_targets_before:?} -> {:?}",
        fd_targets()
    );
}
