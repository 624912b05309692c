//! The soak test (ignored by default; `scripts/soak.sh` runs it): many
//! concurrent agent sessions make guarded calls through a real gateway to
//! real backends (the demo backend behind the sample guard, the Python echo
//! backend, the demo backend behind a trapping and a looping guard and
//! behind a guard that traps or loops depending on the call's arguments,
//! and a Python MCP server over streamable HTTP) while faults are injected
//! at random from a seeded generator: stdio backend processes are killed,
//! the HTTP backend is killed and restarted on its port, clients drop
//! requests mid-call, slow calls run alongside, poisoned calls make a guard
//! fault between good ones, and agents abandon sessions to the session
//! timeout. It checks that every request that completes has exactly one
//! answer with its own id and its own session's data, that denials and
//! filtering hold throughout, that a guard fault denies only its own call
//! (and a quarantine exactly the calls during it), that the HTTP backend is
//! reached again after every restart, that abandoned sessions expire (404),
//! that no child process or file descriptor leaks, and that resident memory
//! stays bounded and comes back after the sessions end.
//!
//! `SOAK_AGENTS` (default 20), `SOAK_OPS` (operations per agent, default
//! 60) and `SOAK_SEED` (default fixed) tune a run.

use crate::common;
use crate::guarded_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
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
/// (compiling the guards, for one): sampled every 2 s until two samples in
/// a row are within 512 kB of each other (the allocator purges what was
/// freed gradually over its 10 s decay time), for at most `limit`.
async fn settled_rss_kb(limit: Duration) -> u64 {
    let end = Instant::now() + limit;
    let mut last = rss_kb();
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = rss_kb();
        if now.abs_diff(last) < 512 || Instant::now() > end {
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
    /// Good calls through the fault guard: served with their data, or
    /// denied while the guard was quarantined; then served again.
    faulty_served: u64,
    faulty_quarantined: u64,
    faulty_served_after_quarantine: u64,
    /// Poisoned calls through the fault guard (all denied), and how many of
    /// them met the quarantine rather than the fault itself.
    poisoned: u64,
    poisoned_quarantined: u64,
    /// Calls to the HTTP backend: served, answered with an error (killed,
    /// restarting), and the slowest answer.
    web_ok: u64,
    web_errors: u64,
    web_slowest: Duration,
    /// Sessions left without DELETE: on purpose, and because they had been
    /// idle for about the session timeout; expired ones checked for 404.
    sessions_abandoned: u64,
    sessions_idle: u64,
    /// Every session left without DELETE (the two above, and those idle
    /// for about the timeout when the agent finished), and how many of
    /// them were checked: each must answer 404 once expired.
    sessions_left: u64,
    expired_checked: u64,
    /// Abandoned sessions not yet checked when the agent finished.
    unchecked: Vec<Abandoned>,
    /// Error answers by their first words, for the summary.
    error_kinds: BTreeMap<String, u64>,
    /// Anything that breaks a promise: lost answers, wrong ids, another
    /// session's data, a denial or filter not applied.
    violations: Vec<String>,
}

impl Tally {
    fn add(&mut self, t: Tally) {
        self.requests += t.requests;
        self.answers += t.answers;
        self.ok += t.ok;
        self.errors += t.errors;
        self.abandoned += t.abandoned;
        self.lost += t.lost;
        self.denied += t.denied;
        self.filtered_lists += t.filtered_lists;
        self.guard_faults += t.guard_faults;
        self.slow += t.slow;
        self.faulty_served += t.faulty_served;
        self.faulty_quarantined += t.faulty_quarantined;
        self.faulty_served_after_quarantine += t.faulty_served_after_quarantine;
        self.poisoned += t.poisoned;
        self.poisoned_quarantined += t.poisoned_quarantined;
        self.web_ok += t.web_ok;
        self.web_errors += t.web_errors;
        self.web_slowest = self.web_slowest.max(t.web_slowest);
        self.sessions_abandoned += t.sessions_abandoned;
        self.sessions_idle += t.sessions_idle;
        self.sessions_left += t.sessions_left;
        self.expired_checked += t.expired_checked;
        self.unchecked.extend(t.unchecked);
        self.violations.extend(t.violations);
        for (kind, n) in t.error_kinds {
            *self.error_kinds.entry(kind).or_default() += n;
        }
    }
}

/// The gateway's session idle timeout in the soak, and the margin either
/// side of it within which a session's fate is left open (the gateway's
/// idle clock starts when a request arrives, the agent's when it sends).
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
const EXPIRY_MARGIN: Duration = Duration::from_secs(3);

/// One open agent session.
#[derive(Debug)]
struct Session {
    url: String,
    id: String,
    /// When the agent last sent a request in it, and when that request
    /// ended (answered, or dropped by the agent). The gateway's idle clock
    /// restarts in between: the session is surely live while the first is
    /// recent, surely expired once the second is old enough.
    last_sent: Instant,
    last_done: Instant,
}

/// A session its agent left without DELETE: once idle for longer than the
/// session timeout (and the margin), a request naming it must get 404.
#[derive(Debug)]
struct Abandoned {
    route: &'static str,
    session: Session,
}

impl Abandoned {
    fn expired_at(&self) -> Instant {
        self.session.last_sent.max(self.session.last_done) + SESSION_TIMEOUT + EXPIRY_MARGIN
    }

    /// Sends a request naming the session; a description of the answer if
    /// it is not the 404 `session not found` of an expired session.
    async fn check_expired(&self, client: &reqwest::Client) -> Result<(), String> {
        let resp = with_agent_id(self.route, client.post(&self.session.url))
            .header("accept", common::ACCEPT)
            .header("content-type", "application/json")
            .header("authorization", common::API_KEY)
            .header("mcp-session-id", &self.session.id)
            .json(&common::tool_call(
                json!(0),
                "echo",
                json!({"text": "late"}),
            ))
            .send()
            .await
            .map_err(|e| format!("expired session on {}: no answer: {e}", self.route))?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if status == 404 && body == "session not found" {
            Ok(())
        } else {
            Err(format!(
                "session on {} idle for {:.1} s (timeout {SESSION_TIMEOUT:?}): HTTP {status}: {body}",
                self.route,
                self.session.last_done.elapsed().as_secs_f64()
            ))
        }
    }
}

/// One agent: a session on each of its routes, ids unique across agents.
struct Agent {
    index: u64,
    client: reqwest::Client,
    sessions: BTreeMap<&'static str, Session>,
    /// Sessions left without DELETE, not yet checked.
    abandoned: Vec<Abandoned>,
    /// How many sessions it left without DELETE in all.
    left: u64,
    next_id: u64,
}

/// The echo, fault-guard and HTTP routes' requests come from agents of
/// their own (`X-Agent-ID`): agent labels are per agent across servers,
/// and the sample guard's policy would otherwise taint the agent that
/// reads those backends (one shared agent process serves every echo
/// session).
fn with_agent_id(route: &str, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match route {
        "echo" => request.header("x-agent-id", "soak-echo"),
        "faulty" => request.header("x-agent-id", "soak-faulty"),
        "web" => request.header("x-agent-id", "soak-web"),
        _ => request,
    }
}

const ROUTES: [&str; 6] = ["github", "echo", "trapper", "looper", "faulty", "web"];

/// Opens a session on `url` (`initialize`, then `notifications/initialized`).
async fn open_session(route: &'static str, url: String) -> Result<Session, String> {
    let resp = with_agent_id(route, common::post(&url))
        .json(&common::initialize_request("soak"))
        .send()
        .await
        .map_err(|e| format!("initialize on {route}: {e}"))?;
    if resp.status() != 200 {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        return Err(format!("initialize on {route}: HTTP {status}: {body}"));
    }
    let id = common::session_id(&resp);
    let resp = with_agent_id(route, common::session_post(&url, &id))
        .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()
        .await
        .map_err(|e| format!("initialized on {route}: {e}"))?;
    if resp.status() != 202 {
        return Err(format!("initialized on {route}: HTTP {}", resp.status()));
    }
    let now = Instant::now();
    Ok(Session {
        url,
        id,
        last_sent: now,
        last_done: now,
    })
}

impl Agent {
    async fn open(base: &str, index: u64, routes: &[&'static str]) -> Self {
        let mut sessions = BTreeMap::new();
        for &route in routes {
            let session = open_session(route, format!("{base}/mcp/{route}"))
                .await
                .unwrap();
            sessions.insert(route, session);
        }
        Self {
            index,
            client: reqwest::Client::new(),
            sessions,
            abandoned: Vec::new(),
            left: 0,
            next_id: 0,
        }
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.index * 1_000_000 + self.next_id
    }

    /// Leaves the session on `route` without DELETE and opens a new one.
    async fn abandon(&mut self, route: &'static str) -> Result<(), String> {
        let url = self.sessions[route].url.clone();
        let fresh = open_session(route, url).await?;
        if let Some(session) = self.sessions.insert(route, fresh) {
            self.leave(route, session);
        }
        Ok(())
    }

    fn leave(&mut self, route: &'static str, session: Session) {
        self.left += 1;
        self.abandoned.push(Abandoned { route, session });
    }

    /// Makes sure the session on `route` is surely live: one idle for about
    /// the session timeout (whether it expired is left open) is abandoned
    /// for a new one. Whether it did.
    async fn keep_live(&mut self, route: &'static str) -> Result<bool, String> {
        if self.sessions[route].last_sent.elapsed() < SESSION_TIMEOUT - EXPIRY_MARGIN {
            return Ok(false);
        }
        self.abandon(route).await.map(|()| true)
    }

    /// Checks the abandoned sessions that have surely expired by now.
    async fn check_expired(&mut self, tally: &mut Tally) {
        let now = Instant::now();
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.abandoned)
            .into_iter()
            .partition(|a| a.expired_at() <= now);
        self.abandoned = waiting;
        for abandoned in due {
            match abandoned.check_expired(&self.client).await {
                Ok(()) => tally.expired_checked += 1,
                Err(violation) => tally.violations.push(violation),
            }
        }
    }

    /// Notes that the request in flight on `route` ended now.
    fn done(&mut self, route: &str) {
        if let Some(session) = self.sessions.get_mut(route) {
            session.last_done = Instant::now();
        }
    }

    /// Sends `tools/call name(args)` on `route` with id `id`; the single
    /// answer carrying that id, or a description of what was wrong.
    async fn call(
        &mut self,
        route: &str,
        id: u64,
        name: &str,
        args: Value,
    ) -> Result<Answer, String> {
        let answer = self.send_call(route, id, name, args).await;
        self.done(route);
        answer
    }

    async fn send_call(
        &mut self,
        route: &str,
        id: u64,
        name: &str,
        args: Value,
    ) -> Result<Answer, String> {
        let session = self
            .sessions
            .get_mut(route)
            .ok_or_else(|| format!("no session on {route}"))?;
        session.last_sent = Instant::now();
        let resp = with_agent_id(route, self.client.post(&session.url))
            .header("accept", common::ACCEPT)
            .header("content-type", "application/json")
            .header("authorization", common::API_KEY)
            .header("mcp-session-id", &session.id)
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

    /// Deletes the sessions still surely live; the others (idle for about
    /// the session timeout) join the abandoned ones, which are returned
    /// unchecked with the number of sessions left in all.
    async fn close(mut self) -> (Vec<Abandoned>, u64) {
        for (route, session) in std::mem::take(&mut self.sessions) {
            if session.last_sent.elapsed() >= SESSION_TIMEOUT - EXPIRY_MARGIN {
                self.leave(route, session);
                continue;
            }
            let resp = with_agent_id(route, self.client.delete(&session.url))
                .header("authorization", common::API_KEY)
                .header("mcp-session-id", &session.id)
                .send()
                .await
                .unwrap();
            assert!(
                resp.status().is_success(),
                "DELETE {}: {}",
                session.url,
                resp.status()
            );
        }
        (self.abandoned, self.left)
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

/// The HTTP backend's tool timeout: no call to it may hang much longer.
const WEB_TOOL_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether an error answer is the fault guard's quarantine denial.
fn is_quarantine_denial(text: &str) -> bool {
    text.contains("quarantined")
}

/// One agent's run: `ops` operations chosen by its own generator.
async fn run_agent(mut agent: Agent, ops: u64, seed: u64, expected: Arc<Expected>) -> Tally {
    let mut rng = Rng(seed ^ (agent.index.wrapping_mul(0xA24B_AED4_963E_E407)));
    let mut tally = Tally::default();
    let own_issue = expected.approved[(agent.index as usize) % expected.approved.len()];
    let read_own = json!({"method": "get", "owner": "octo-org", "repo": "api",
                          "issue_number": own_issue});
    // Whether this agent's last answer from the fault guard's server was a
    // quarantine denial.
    let mut saw_quarantine = false;
    for op in 0..ops {
        agent.check_expired(&mut tally).await;
        let roll = rng.below(100);
        if roll >= 97 {
            // An agent that leaves a session without DELETE.
            let route = ROUTES[rng.below(ROUTES.len() as u64) as usize];
            match agent.abandon(route).await {
                Ok(()) => tally.sessions_abandoned += 1,
                Err(violation) => tally.violations.push(violation),
            }
            continue;
        }
        let id = agent.fresh_id();
        tally.requests += 1;
        if roll < 8 {
            // A client that goes away mid-call: the request future is dropped.
            let wait = Duration::from_millis(5 + rng.below(300));
            let (route, name, args) = if rng.below(2) == 0 {
                ("echo", "sleep", json!({"seconds": 1.0}))
            } else {
                ("github", "issue_read", read_own.clone())
            };
            match agent.keep_live(route).await {
                Ok(reopened) => tally.sessions_idle += u64::from(reopened),
                Err(violation) => {
                    tally.lost += 1;
                    tally.violations.push(violation);
                    continue;
                }
            }
            let call = tokio::time::timeout(wait, agent.call(route, id, name, args)).await;
            agent.done(route);
            match call {
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
        // For the fault guard's server: the marker of a poisoned call.
        let mut marker = None;
        let (route, name, args) = match roll {
            8..=34 => ("github", "issue_read", read_own.clone()),
            35..=44 => ("github", "list_issues", list_args()),
            45..=50 => (
                "github",
                "create_issue",
                json!({"owner": "octo-org", "repo": "api",
                       "title": format!("soak {} {op}", agent.index)}),
            ),
            51..=64 => {
                let nonce = format!("agent {} op {op} nonce {:016x}", agent.index, rng.next());
                ("echo", "echo", json!({"text": nonce}))
            }
            65..=68 => {
                tally.slow += 1;
                let seconds = 0.2 + rng.below(10) as f64 / 10.0;
                ("echo", "sleep", json!({"seconds": seconds}))
            }
            69..=71 => ("trapper", "list_issues", list_args()),
            72..=73 => ("looper", "list_issues", list_args()),
            74..=84 => {
                let mut args = read_own.clone();
                marker = match rng.below(20) {
                    0..=2 => Some("trap"),
                    3..=4 => Some("loop"),
                    _ => None,
                };
                if let Some(marker) = marker {
                    args["note"] = json!(marker);
                }
                ("faulty", "issue_read", args)
            }
            _ => {
                let nonce = format!("agent {} op {op} nonce {:016x}", agent.index, rng.next());
                ("web", "echo", json!({"text": nonce}))
            }
        };
        match agent.keep_live(route).await {
            Ok(reopened) => tally.sessions_idle += u64::from(reopened),
            Err(violation) => {
                tally.lost += 1;
                tally.violations.push(violation);
                continue;
            }
        }
        let sent = Instant::now();
        let answer = match agent.call(route, id, name, args.clone()).await {
            Ok(answer) => answer,
            Err(violation) => {
                tally.lost += 1;
                tally.violations.push(violation);
                continue;
            }
        };
        let took = sent.elapsed();
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
            (answer, "faulty", _) => match (answer, marker) {
                (Answer::Ok(text), Some(marker)) => tally.violations.push(format!(
                    "{what}: a call poisoned with {marker:?} got through: {text}"
                )),
                (Answer::Err(text), Some(_)) => {
                    tally.poisoned += 1;
                    tally.poisoned_quarantined += u64::from(is_quarantine_denial(text));
                    saw_quarantine = is_quarantine_denial(text);
                }
                (Answer::Ok(text), None) => {
                    if issue_number(text) == Some(own_issue) {
                        tally.faulty_served += 1;
                        tally.faulty_served_after_quarantine += u64::from(saw_quarantine);
                    } else {
                        tally
                            .violations
                            .push(format!("{what}: issue {own_issue} expected, got {text}"));
                    }
                    saw_quarantine = false;
                }
                (Answer::Err(text), None) => {
                    if is_quarantine_denial(text) {
                        tally.faulty_quarantined += 1;
                        saw_quarantine = true;
                    } else {
                        tally.violations.push(format!(
                            "{what}: a good call was denied outside a quarantine: {text}"
                        ));
                    }
                }
            },
            (answer, "web", _) => {
                tally.web_slowest = tally.web_slowest.max(took);
                if took > WEB_TOOL_TIMEOUT + Duration::from_secs(10) {
                    tally.violations.push(format!(
                        "{what}: answered after {took:?}, past the tool timeout {WEB_TOOL_TIMEOUT:?}"
                    ));
                }
                match answer {
                    Answer::Ok(text) => {
                        let sent = args["text"].as_str().unwrap_or_default();
                        if *text == format!("web: {sent}") {
                            tally.web_ok += 1;
                        } else {
                            tally
                                .violations
                                .push(format!("{what}: sent {sent:?}, got {text:?}"));
                        }
                    }
                    Answer::Err(_) => tally.web_errors += 1,
                }
            }
            _ => {}
        }
        match answer {
            Answer::Ok(_) => tally.ok += 1,
            Answer::Err(text) => {
                tally.errors += 1;
                // Up to the first figure (retry delays differ call to call).
                let mut kind: String = text
                    .chars()
                    .take(48)
                    .take_while(|c| !c.is_ascii_digit())
                    .collect();
                if is_quarantine_denial(&text) {
                    kind.push_str(" [quarantined]");
                }
                *tally
                    .error_kinds
                    .entry(format!("{route}/{name}: {kind}"))
                    .or_default() += 1;
            }
        }
    }
    agent.check_expired(&mut tally).await;
    (tally.unchecked, tally.sessions_left) = agent.close().await;
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

/// The fault guard (`guards/fault-guard`), built with
/// scripts/build-guards.sh when missing.
fn fault_guard() -> PathBuf {
    let wasm = guarded_support::repo_root()
        .join("guards/fault-guard/target/wasm32-wasip1/release/fault_guard.wasm");
    if !wasm.exists() {
        let status = std::process::Command::new("bash")
            .arg(guarded_support::repo_root().join("scripts/build-guards.sh"))
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "scripts/build-guards.sh failed");
    }
    assert!(wasm.exists(), "{} missing", wasm.display());
    wasm
}

/// The Python MCP server over streamable HTTP (`http_server.py web`),
/// optionally on a given port.
const WEB_SCRIPT: &str = "http_server.py";
const WEB_ARGS: [&str; 2] = ["web", "streamable-http"];

async fn start_web_backend(port: Option<u16>) -> common::PythonBackend {
    let port = port.map(|p| p.to_string());
    let mut args = WEB_ARGS.to_vec();
    if let Some(port) = &port {
        args.extend(["--port", port]);
    }
    common::PythonBackend::start(WEB_SCRIPT, &args).await
}

fn web_server(url: String) -> ServerConfig {
    let mut server = common::stdio_server(String::new(), Vec::new());
    server.transport = ServerTransport::Http {
        url,
        headers: BTreeMap::new(),
    };
    server.connect_timeout = Duration::from_secs(10);
    server.tool_timeout = Some(WEB_TOOL_TIMEOUT);
    server
}

/// Sleeps for `total` in short naps; whether `done` was set meanwhile.
async fn nap(done: &AtomicBool, total: Duration) -> bool {
    let end = Instant::now() + total;
    while Instant::now() < end {
        if done.load(Ordering::Relaxed) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done.load(Ordering::Relaxed)
}

/// The value of the `/metrics` sample `name{labels}` (labels as written,
/// e.g. `server="faulty",kind="trap"`), 0 when absent.
fn metric(text: &str, name: &str, labels: &str) -> u64 {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Faults injected, by kind, and what the HTTP backend's restarts showed.
#[derive(Default)]
struct Faults {
    demo_killed: AtomicU64,
    echo_killed: AtomicU64,
    web_killed: AtomicU64,
    /// Restarts killed again at once, while the gateway reconnected.
    web_flaps: AtomicU64,
    /// Restarts after which a call through the gateway was served again,
    /// and the longest wait for that (ms).
    web_recovered: AtomicU64,
    web_recovery_ms: AtomicU64,
    /// Calls of the restart checks (answered with an error until served).
    web_probes: AtomicU64,
    violations: parking_lot::Mutex<Vec<String>>,
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
    let fault = fault_guard();
    let dir = tempfile::tempdir().unwrap();
    let call_log = dir.path().join("github-calls.jsonl");
    let faulty_log = dir.path().join("faulty-calls.jsonl");
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

    let mut web_backend = start_web_backend(None).await;
    let web_port = web_backend.port;
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
        (
            "faulty".to_owned(),
            guarded(demo_server(Some(&faulty_log)), "fault", None),
        ),
        (
            "web".to_owned(),
            guarded(web_server(web_backend.url("/mcp")), "none", None),
        ),
    ]);
    let mut options = common::options(servers, RoutingMode::Routed);
    options.session_timeout = SESSION_TIMEOUT;
    options.config.guards = BTreeMap::from([
        ("sample".to_owned(), wasm_guard(&sample)),
        ("trap".to_owned(), wasm_guard(&trap)),
        ("loop".to_owned(), wasm_guard(&looping)),
        ("fault".to_owned(), wasm_guard(&fault)),
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
    // A guard that faults 4 times within 10 s is quarantined for 2 s: the
    // failing guards and the poisoned calls open it now and then, so good
    // calls through the fault guard meet it too.
    // Optimised code from the start: no compilation runs in the background
    // while the idle memory figure is taken (tiering has its own tests).
    let guard_options = GuardOptions::default()
        .with_compiler(guardway_wasm::GuardCompiler::Cranelift)
        .with_call_timeout(Duration::from_secs(3))
        .with_quarantine(QuarantineOptions {
            failures: 4,
            window: Duration::from_secs(10),
            cool_down: Duration::from_secs(2),
        });
    let pipeline = Arc::new(GuardPipeline::new(&options).with_guard_options(guard_options));
    let gateway = Gateway::start_with_interceptor(options, pipeline.clone())
        .await
        .unwrap();
    let base = format!("http://{}", gateway.local_addr());

    // Warm-up: what the policy lets through, and a round on every route.
    let mut probe = Agent::open(&base, 999, &ROUTES).await;
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
    let read = json!({"method": "get", "owner": "octo-org", "repo": "api",
                      "issue_number": filtered.first().copied()});
    let faulty = probe.call("faulty", 4, "issue_read", read).await;
    assert!(matches!(&faulty, Ok(Answer::Ok(_))), "{faulty:?}");
    let web = probe.call("web", 5, "echo", json!({"text": "warm"})).await;
    assert!(
        matches!(&web, Ok(Answer::Ok(t)) if t == "web: warm"),
        "{web:?}"
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
    // The HTTP backend: killed (SIGKILL) every 1-5 s, restarted on its port
    // after up to 1 s (plus its start-up), and each time reached again
    // through the gateway within 30 s.
    let web_faults = tokio::spawn({
        let (done, faults, base) = (done.clone(), faults.clone(), base.clone());
        async move {
            let mut rng = Rng(seed ^ 0x00AE_B0AC_CE55);
            let mut prober = Agent::open(&base, 997, &["web"]).await;
            while !nap(&done, Duration::from_millis(1000 + rng.below(4000))).await {
                web_backend.kill().await;
                faults.web_killed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(rng.below(1000))).await;
                web_backend = start_web_backend(Some(web_port)).await;
                if rng.below(3) == 0 {
                    // A flap: killed again within 300 ms, while the first
                    // call after the restart re-initialises the gateway's
                    // session with it; that call gets an answer either way.
                    let id = prober.fresh_id();
                    let text = format!("flap {id}");
                    let delay = Duration::from_millis(rng.below(300));
                    let answer = match prober.keep_live("web").await {
                        Ok(_) => {
                            let (answer, ()) = tokio::join!(
                                prober.call("web", id, "echo", json!({"text": text})),
                                async {
                                    tokio::time::sleep(delay).await;
                                    web_backend.kill().await;
                                }
                            );
                            answer
                        }
                        Err(violation) => Err(violation),
                    };
                    faults.web_flaps.fetch_add(1, Ordering::Relaxed);
                    match answer {
                        Ok(Answer::Ok(t)) if t == format!("web: {text}") => {}
                        Ok(Answer::Err(_)) => {}
                        other => faults
                            .violations
                            .lock()
                            .push(format!("web flap call: {other:?}")),
                    }
                    tokio::time::sleep(Duration::from_millis(rng.below(1000))).await;
                    web_backend = start_web_backend(Some(web_port)).await;
                }
                let restarted = Instant::now();
                loop {
                    let id = prober.fresh_id();
                    faults.web_probes.fetch_add(1, Ordering::Relaxed);
                    let text = format!("probe {id}");
                    let answer = match prober.keep_live("web").await {
                        Ok(_) => prober.call("web", id, "echo", json!({"text": text})).await,
                        Err(violation) => Err(violation),
                    };
                    match answer {
                        Ok(Answer::Ok(t)) if t == format!("web: {text}") => {
                            faults.web_recovered.fetch_add(1, Ordering::Relaxed);
                            let ms = restarted.elapsed().as_millis() as u64;
                            faults.web_recovery_ms.fetch_max(ms, Ordering::Relaxed);
                            break;
                        }
                        Ok(Answer::Err(_)) => {}
                        other => faults
                            .violations
                            .lock()
                            .push(format!("web restart check: {other:?}")),
                    }
                    if restarted.elapsed() > Duration::from_secs(30) {
                        faults.violations.lock().push(format!(
                            "the HTTP backend was not reached again within 30 s of restart {}",
                            faults.web_killed.load(Ordering::Relaxed)
                        ));
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            let _ = prober.close().await;
            web_backend
        }
    });

    let started = Instant::now();
    let mut runs = Vec::new();
    for index in 0..agents {
        let agent = Agent::open(&base, index, &ROUTES).await;
        runs.push(tokio::spawn(run_agent(agent, ops, seed, expected.clone())));
    }
    let mut total = Tally::default();
    for run in runs {
        total.add(run.await.unwrap());
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    killer.await.unwrap();
    sampler.await.unwrap();
    let mut web_backend = web_faults.await.unwrap();

    // The gateway came back from every kill: the backends answer again,
    // and the fault guard serves good calls once its quarantine is over.
    let mut last = Agent::open(&base, 998, &ROUTES).await;
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
        let read = json!({"method": "get", "owner": "octo-org", "repo": "api",
                          "issue_number": expected.approved[0]});
        let faulty = last.call("faulty", 200 + attempt, "issue_read", read).await;
        let web = last
            .call("web", 300 + attempt, "echo", json!({"text": "after"}))
            .await;
        if matches!(github, Ok(Answer::Ok(_)))
            && matches!(&echo, Ok(Answer::Ok(t)) if t == "echo: after")
            && matches!(&faulty, Ok(Answer::Ok(t)) if issue_number(t) == Some(expected.approved[0]))
            && matches!(&web, Ok(Answer::Ok(t)) if t == "web: after")
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (unchecked, left) = last.close().await;
    total.unchecked.extend(unchecked);
    total.sessions_left += left;
    let launches = |id: &str| gateway.backend(id).map_or(0, |b| b.health().launches);
    let (github_launches, echo_launches) = (launches("github"), launches("echo"));

    // The sessions left without DELETE, still unchecked, have expired by
    // now or soon: each answers 404.
    if let Some(latest) = total.unchecked.iter().map(Abandoned::expired_at).max() {
        tokio::time::sleep_until(latest.into()).await;
    }
    let client = reqwest::Client::new();
    for abandoned in std::mem::take(&mut total.unchecked) {
        match abandoned.check_expired(&client).await {
            Ok(()) => total.expired_checked += 1,
            Err(violation) => total.violations.push(violation),
        }
    }
    let metrics = client
        .get(format!("{base}/metrics"))
        .header("authorization", common::API_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

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
    // Poisoned calls never reached the fault guard's backend; good ones did.
    let faulty_reached = std::fs::read_to_string(&faulty_log).unwrap_or_default();
    let poisoned_reached = faulty_reached
        .lines()
        .filter(|l| l.contains("\"note\""))
        .count();
    let good_reached = faulty_reached.lines().count() - poisoned_reached;
    let guard_figure = |server: &str| {
        let labels = |kind: &str| format!("server=\"{server}\",kind=\"{kind}\"");
        (
            metric(&metrics, "guardway_guard_faults_total", &labels("trap")),
            metric(&metrics, "guardway_guard_faults_total", &labels("timeout")),
            metric(
                &metrics,
                "guardway_guard_quarantine_denials_total",
                &format!("server=\"{server}\""),
            ),
        )
    };
    let (faulty_traps, faulty_timeouts, faulty_quarantine_denials) = guard_figure("faulty");
    let (trapper_traps, _, trapper_quarantine_denials) = guard_figure("trapper");
    let (_, looper_timeouts, looper_quarantine_denials) = guard_figure("looper");
    let web_launches = launches("web");

    // The pipeline (guards, log files) ends with the gateway.
    drop(pipeline);
    gateway.shutdown().await;
    web_backend.kill().await;
    drop(web_backend);
    let children_gone = eventually(Duration::from_secs(10), || {
        children().is_subset(&children_before)
    })
    .await;
    // The process-wide compilation cache keeps one memory image per guard
    // module (four here) for the next gateway; anything else must close.
    let mut fds_after = open_fds();
    let fds_back = eventually(Duration::from_secs(10), || {
        fds_after = open_fds();
        let images = fd_targets()
            .iter()
            .filter(|t| t.starts_with("/memfd:wasm-memory-image"))
            .count();
        images <= 4 && fds_after - images <= fds_before + 1
    })
    .await;

    total.violations.extend(faults.violations.lock().drain(..));
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
    let web_killed = faults.web_killed.load(Ordering::Relaxed);
    let web_recovered = faults.web_recovered.load(Ordering::Relaxed);
    println!(
        "soak: fault guard: good calls served {} (after a quarantine denial {}), denied while \
         quarantined {}; poisoned calls {} all denied ({} by the quarantine), reached the \
         backend {poisoned_reached} (good calls reached {good_reached}); guard faults: fault \
         guard {faulty_traps} traps, {faulty_timeouts} timeouts, {faulty_quarantine_denials} \
         quarantine denials; trapping guard {trapper_traps} traps, \
         {trapper_quarantine_denials} quarantine denials; looping guard {looper_timeouts} \
         timeouts, {looper_quarantine_denials} quarantine denials",
        total.faulty_served,
        total.faulty_served_after_quarantine,
        total.faulty_quarantined,
        total.poisoned,
        total.poisoned_quarantined,
    );
    println!(
        "soak: HTTP backend: killed and restarted {web_killed} (and {} times killed again at \
         once), reached again after {web_recovered} (slowest {} ms, {} check calls), launches \
         {web_launches}; agents' calls served {}, \
         error answers {}, slowest answer {} ms (tool timeout {} s); sessions: abandoned \
         without DELETE {}, left idle for about the timeout {}, left in all {}, expired and \
         answered 404 {}",
        faults.web_flaps.load(Ordering::Relaxed),
        faults.web_recovery_ms.load(Ordering::Relaxed),
        faults.web_probes.load(Ordering::Relaxed),
        total.web_ok,
        total.web_errors,
        total.web_slowest.as_millis(),
        WEB_TOOL_TIMEOUT.as_secs(),
        total.sessions_abandoned,
        total.sessions_idle,
        total.sessions_left,
        total.expired_checked,
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
    assert_eq!(poisoned_reached, 0, "a poisoned call reached the backend");
    assert!(
        total.poisoned > 0 && faulty_traps > 0 && faulty_timeouts > 0,
        "the fault guard did not both trap and loop: the run was too short to inject faults"
    );
    assert!(total.faulty_served > 0 && good_reached > 0);
    // A quarantine seen by an agent ended for it: served again later (or,
    // for the last ones, in the recovery check above).
    assert!(total.faulty_quarantined == 0 || total.faulty_served_after_quarantine > 0);
    assert!(
        web_killed > 0,
        "the HTTP backend was never killed: the run was too short to inject faults"
    );
    assert_eq!(
        web_recovered, web_killed,
        "the HTTP backend was not reached again after every restart"
    );
    assert!(total.web_ok > 0);
    assert!(
        total.sessions_abandoned > 0,
        "no session was abandoned: the run was too short"
    );
    assert_eq!(
        total.expired_checked, total.sessions_left,
        "every session left without DELETE is checked once expired"
    );
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
