//! `guardway guard test GUARD CASES...`: runs case files (one label call with its policy,
//! input and canned backend answers, and the expected output) against a guard — compiled
//! once, each case on a fresh instance, cases in parallel — and reports structural diffs;
//! `--update` writes the actual results into the cases' `expect`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use guardway_difc::{LabelResourceInput, LabelResponseInput};
use guardway_wasm::{
    Backend, CodeTier, CompilationCache, GuardCompiler, GuardModule, GuardOptions,
};
use serde_json::{Map, Value, json};

use super::LabelCall;
use super::harness::{CannedBackend, Outcome, TraceEvent, TraceRecorder, kind, run_call};

mod diff;
mod update;

/// Exit code for a malformed case file (or no case file at all).
const EXIT_MALFORMED: u8 = 2;

/// Arguments of `guardway guard test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The guard's `.wasm` file.
    guard: PathBuf,
    /// Case files, or directories searched (recursively) for `*.json` case files.
    #[arg(required = true)]
    cases: Vec<PathBuf>,
    /// Write the actual results into each case's `expect` (snapshot testing); the rest of
    /// each file is left as it was.
    #[arg(long)]
    update: bool,
    /// Print a JSON report on stdout instead of the text report.
    #[arg(long)]
    json: bool,
    /// Show the guard's log lines and backend calls under each failed case.
    #[arg(long)]
    trace: bool,
    /// Time limit of one guard call, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Number of cases run at once (default: the number of cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Also keep the compiled guard in this disk cache directory (default: memory only).
    #[arg(long)]
    wasm_cache_dir: Option<PathBuf>,
    #[command(flatten)]
    compiler: super::CompilerArgs,
}

/// What a case expects.
#[derive(Debug, Clone, PartialEq)]
struct Expectation {
    /// `Some(output)`, or `None` for `"error": true`.
    output: Option<Value>,
    backend_calls: Option<Vec<String>>,
}

/// One parsed case file.
#[derive(Debug)]
struct Case {
    file: PathBuf,
    text: String,
    name: String,
    call: LabelCall,
    policy: Option<Value>,
    input: Value,
    backend: Option<Arc<CannedBackend>>,
    expect: Option<Expectation>,
}

#[derive(Debug)]
enum Status {
    Passed,
    Failed(Vec<String>),
    Updated,
}

#[derive(Debug)]
struct CaseResult {
    status: Status,
    outcome: Outcome,
    backend_calls: Vec<String>,
    trace: Vec<TraceEvent>,
    duration: Duration,
}

pub fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    let files = match find_case_files(&args.cases) {
        Ok(files) => files,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(ExitCode::from(EXIT_MALFORMED));
        }
    };
    let mut cases = Vec::new();
    let mut malformed = Vec::new();
    for file in files {
        match parse_case(&file, args.update) {
            Ok(case) => cases.push(case),
            Err(reason) => malformed.push(format!("{}: {reason}", file.display())),
        }
    }
    if !malformed.is_empty() {
        for line in &malformed {
            eprintln!("error: malformed case file {line}");
        }
        eprintln!(
            "{} malformed case file(s); no case was run",
            malformed.len()
        );
        return Ok(ExitCode::from(EXIT_MALFORMED));
    }

    super::use_disk_cache(args.wasm_cache_dir.as_deref());
    let cache = CompilationCache::global();
    let before = cache.stats();
    // No background compilation: every case runs on the code the guard was loaded with
    // (with `auto` on a cache miss, the baseline code).
    let options = GuardOptions::default()
        .with_call_timeout(Duration::from_millis(args.timeout_ms))
        .with_compiler(args.compiler.compiler)
        .with_background_tier_up(false);
    let load_started = Instant::now();
    let module = GuardModule::from_file(&args.guard, &options)
        .with_context(|| format!("cannot load the guard {}", args.guard.display()))?;
    let load_time = load_started.elapsed();
    let after = cache.stats();
    let tier = module.tier();

    let jobs = args
        .jobs
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        })
        .max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(jobs)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let run_started = Instant::now();
    let results = rt.block_on(run_cases(&module, &options, &cases, jobs));
    let run_time = run_started.elapsed();
    super::finish_tier_up(&module, args.wasm_cache_dir.is_some());

    let mut results: Vec<CaseResult> = results;
    if args.update {
        for (case, result) in cases.iter().zip(results.iter_mut()) {
            update_case(case, result)?;
        }
    }
    let passed = results
        .iter()
        .filter(|r| matches!(r.status, Status::Passed | Status::Updated))
        .count();
    let failed = results.len() - passed;
    let updated = results
        .iter()
        .filter(|r| matches!(r.status, Status::Updated))
        .count();
    let timing = Timing {
        load: load_time,
        compilations: after.compilations - before.compilations,
        memory_hits: after.memory_hits - before.memory_hits,
        disk_hits: after.disk_hits - before.disk_hits,
        run: run_time,
        jobs,
        compiler: args.compiler.compiler,
        tier,
    };
    if args.json {
        print_json(&cases, &results, passed, failed, updated, &timing)?;
    } else {
        print_text(
            &cases, &results, passed, failed, updated, &timing, args.trace,
        );
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

struct Timing {
    load: Duration,
    compilations: u64,
    memory_hits: u64,
    disk_hits: u64,
    run: Duration,
    jobs: usize,
    compiler: GuardCompiler,
    /// The code every case ran on.
    tier: CodeTier,
}

/// Runs every case, at most `jobs` at once, each on its own fresh instance.
async fn run_cases(
    module: &GuardModule,
    options: &GuardOptions,
    cases: &[Case],
    jobs: usize,
) -> Vec<CaseResult> {
    let permits = Arc::new(tokio::sync::Semaphore::new(jobs));
    let mut handles = Vec::with_capacity(cases.len());
    for case in cases {
        let module = module.clone();
        let options = options.clone();
        let permits = Arc::clone(&permits);
        let backend = case.backend.clone();
        let policy = case.policy.clone();
        let input = case.input.clone();
        let call = case.call;
        let expect = case.expect.clone();
        handles.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let recorder = Arc::new(TraceRecorder::new(false));
            let options = options.with_observer(recorder.clone());
            let backend = backend.map(|b| b as Arc<dyn Backend>);
            let started = Instant::now();
            let outcome = run_call(&module, &options, backend, policy.as_ref(), call, &input).await;
            let duration = started.elapsed();
            let backend_calls = recorder.backend_calls();
            let status = judge(expect.as_ref(), &outcome, &backend_calls);
            CaseResult {
                status,
                outcome,
                backend_calls,
                trace: recorder.events(),
                duration,
            }
        }));
    }
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(match handle.await {
            Ok(result) => result,
            Err(error) => CaseResult {
                status: Status::Failed(vec![format!("the case's task failed: {error}")]),
                outcome: Outcome::Fault(error.to_string()),
                backend_calls: Vec::new(),
                trace: Vec::new(),
                duration: Duration::ZERO,
            },
        });
    }
    results
}

/// Compares a case's result with its expectation.
fn judge(expect: Option<&Expectation>, outcome: &Outcome, backend_calls: &[String]) -> Status {
    let Some(expect) = expect else {
        let problem = match outcome {
            Outcome::Fault(message) => format!("the guard failed: {message}"),
            _ => "the case has no `expect` (run with --update)".to_owned(),
        };
        return Status::Failed(vec![problem]);
    };
    let mut problems = Vec::new();
    match (&expect.output, outcome) {
        (_, Outcome::Fault(message)) => problems.push(format!("the guard failed: {message}")),
        (Some(expected), Outcome::Output(actual)) => {
            diff::diff_values("$", expected, actual, &mut problems)
        }
        (Some(expected), Outcome::Refused(message)) => problems.push(format!(
            "expected output {}, but the guard refused: {message}",
            diff::compact(expected)
        )),
        (None, Outcome::Output(actual)) => problems.push(format!(
            "expected an error (refusal), but the guard answered {}",
            diff::compact(actual)
        )),
        (None, Outcome::Refused(_)) => {}
    }
    if let Some(expected) = &expect.backend_calls
        && expected.as_slice() != backend_calls
    {
        problems.push(format!(
            "backend_calls: expected {}, actual {}",
            diff::compact(&json!(expected)),
            diff::compact(&json!(backend_calls))
        ));
    }
    if problems.is_empty() {
        Status::Passed
    } else {
        Status::Failed(problems)
    }
}

/// With `--update`: writes the actual result into a case whose expectation differs.
fn update_case(case: &Case, result: &mut CaseResult) -> anyhow::Result<()> {
    if matches!(result.status, Status::Passed) {
        return Ok(());
    }
    let output = match &result.outcome {
        Outcome::Output(value) => Some(value.clone()),
        Outcome::Refused(_) => None,
        // A crash is not a snapshot: the case stays failed.
        Outcome::Fault(_) => return Ok(()),
    };
    let keep_calls = case
        .expect
        .as_ref()
        .is_some_and(|e| e.backend_calls.is_some());
    let mut expect = Map::new();
    match output {
        Some(output) => {
            expect.insert("output".to_owned(), output);
        }
        None => {
            expect.insert("error".to_owned(), Value::Bool(true));
        }
    }
    if keep_calls {
        expect.insert("backend_calls".to_owned(), json!(result.backend_calls));
    }
    let text = update::replace_expect(&case.text, &Value::Object(expect))
        .with_context(|| format!("cannot update {}", case.file.display()))?;
    std::fs::write(&case.file, text)
        .with_context(|| format!("cannot write {}", case.file.display()))?;
    result.status = Status::Updated;
    Ok(())
}

fn print_text(
    cases: &[Case],
    results: &[CaseResult],
    passed: usize,
    failed: usize,
    updated: usize,
    timing: &Timing,
    trace: bool,
) {
    for (case, result) in cases.iter().zip(results) {
        match result.status {
            Status::Passed => outln!("ok       {}", case.name),
            Status::Updated => outln!("updated  {}  ({})", case.name, case.file.display()),
            Status::Failed(_) => outln!("FAILED   {}  ({})", case.name, case.file.display()),
        }
    }
    let failures: Vec<_> = cases
        .iter()
        .zip(results)
        .filter_map(|(case, result)| match &result.status {
            Status::Failed(problems) => Some((case, result, problems)),
            _ => None,
        })
        .collect();
    if !failures.is_empty() {
        outln!("\nfailures:");
        for (case, result, problems) in failures {
            outln!("\nFAILED {}  ({})", case.name, case.file.display());
            for problem in problems {
                outln!("    {problem}");
            }
            if trace {
                outln!("  trace:");
                for event in &result.trace {
                    outln!("    {}", event.describe());
                }
            }
        }
    }
    outln!();
    if updated > 0 {
        outln!("{passed} passed, {failed} failed ({updated} updated)");
    } else {
        outln!("{passed} passed, {failed} failed");
    }
    let per_case = if results.is_empty() {
        0.0
    } else {
        timing.run.as_secs_f64() * 1e3 / results.len() as f64
    };
    outln!(
        "guard loaded in {:.1} ms ({} compilation(s), compiler {}, {} code); {} case(s) in {:.1} ms on {} thread(s) ({:.2} ms per case)",
        timing.load.as_secs_f64() * 1e3,
        timing.compilations,
        timing.compiler,
        timing.tier,
        results.len(),
        timing.run.as_secs_f64() * 1e3,
        timing.jobs,
        per_case
    );
}

fn print_json(
    cases: &[Case],
    results: &[CaseResult],
    passed: usize,
    failed: usize,
    updated: usize,
    timing: &Timing,
) -> anyhow::Result<()> {
    let entries: Vec<Value> = cases
        .iter()
        .zip(results)
        .map(|(case, result)| {
            let (status, problems) = match &result.status {
                Status::Passed => ("ok", Vec::new()),
                Status::Updated => ("updated", Vec::new()),
                Status::Failed(problems) => ("failed", problems.clone()),
            };
            let actual = match &result.outcome {
                Outcome::Output(value) => json!({"output": value}),
                Outcome::Refused(message) => json!({"error": true, "message": message}),
                Outcome::Fault(message) => json!({"fault": message}),
            };
            json!({
                "name": case.name,
                "file": case.file.display().to_string(),
                "status": status,
                "diff": problems,
                "actual": actual,
                "backend_calls": result.backend_calls,
                "duration_ms": result.duration.as_secs_f64() * 1e3,
            })
        })
        .collect();
    let report = json!({
        "passed": passed,
        "failed": failed,
        "updated": updated,
        "load_ms": timing.load.as_secs_f64() * 1e3,
        "cache": {
            "compilations": timing.compilations,
            "memory_hits": timing.memory_hits,
            "disk_hits": timing.disk_hits,
        },
        "run_ms": timing.run.as_secs_f64() * 1e3,
        "threads": timing.jobs,
        "compiler": timing.compiler.as_str(),
        "code_tier": timing.tier.as_str(),
        "cases": entries,
    });
    outln!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// The case files named by `paths`: files as given, directories searched recursively for
/// `*.json`; sorted, without duplicates.
fn find_case_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            collect_json(path, &mut files)?;
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            return Err(format!(
                "{}: no such case file or directory",
                path.display()
            ));
        }
    }
    files.sort();
    files.dedup();
    if files.is_empty() {
        return Err("no case files (*.json) found".to_owned());
    }
    Ok(files)
}

fn collect_json(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("{}: cannot read: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("{}: cannot read: {e}", dir.display()))?
            .path();
        if path.is_dir() {
            collect_json(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "json") {
            files.push(path);
        }
    }
    Ok(())
}

const CASE_KEYS: &[&str] = &[
    "name",
    "description",
    "call",
    "policy",
    "input",
    "backend",
    "expect",
];

/// Reads and validates one case file; the error is the reason it is malformed.
fn parse_case(file: &Path, allow_missing_expect: bool) -> Result<Case, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read: {e}"))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(fields) = doc else {
        return Err(format!("must be a JSON object, found {}", kind(&doc)));
    };
    if let Some(key) = fields.keys().find(|key| !CASE_KEYS.contains(&key.as_str())) {
        return Err(format!(
            "unknown key `{key}` (a case has {})",
            CASE_KEYS.join(", ")
        ));
    }
    let name = match fields.get("name") {
        None => file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        Some(Value::String(name)) => name.clone(),
        Some(other) => return Err(format!("`name` must be a string, found {}", kind(other))),
    };
    let call = match fields.get("call") {
        Some(Value::String(call)) => match call.as_str() {
            "label_agent" => LabelCall::Agent,
            "label_resource" => LabelCall::Resource,
            "label_response" => LabelCall::Response,
            other => {
                return Err(format!(
                    "`call` must be label_agent, label_resource or label_response, found \"{other}\""
                ));
            }
        },
        Some(other) => return Err(format!("`call` must be a string, found {}", kind(other))),
        None => {
            return Err("missing `call` (label_agent, label_resource or label_response)".into());
        }
    };
    let policy = match fields.get("policy") {
        None | Some(Value::Null) => None,
        Some(_) if call == LabelCall::Agent => {
            return Err(
                "a label_agent case gives the policy as `input`; leave `policy` out".to_owned(),
            );
        }
        Some(policy @ Value::Object(_)) => Some(policy.clone()),
        Some(other) => {
            return Err(format!(
                "`policy` must be an object or null, found {}",
                kind(other)
            ));
        }
    };
    let input = fields
        .get("input")
        .cloned()
        .ok_or_else(|| "missing `input`".to_owned())?;
    match call {
        LabelCall::Agent => {}
        LabelCall::Resource => {
            serde_json::from_value::<LabelResourceInput>(input.clone()).map_err(|e| {
                format!(
                    "`input` is not a label_resource input ({{\"tool_name\", \"tool_args\"}}): {e}"
                )
            })?;
        }
        LabelCall::Response => {
            serde_json::from_value::<LabelResponseInput>(input.clone()).map_err(|e| {
                format!(
                    "`input` is not a label_response input ({{\"tool_name\", \"tool_result\", \"tool_args\"?}}): {e}"
                )
            })?;
        }
    }
    let backend = match fields.get("backend") {
        None => None,
        Some(value) => Some(Arc::new(
            CannedBackend::from_value(value.clone())
                .map_err(|reason| format!("`backend` {reason}"))?,
        )),
    };
    let expect = match fields.get("expect") {
        None if allow_missing_expect => None,
        None => return Err("missing `expect` (write one, or run with --update)".to_owned()),
        Some(expect) => Some(parse_expect(expect)?),
    };
    Ok(Case {
        file: file.to_path_buf(),
        text,
        name,
        call,
        policy,
        input,
        backend,
        expect,
    })
}

fn parse_expect(expect: &Value) -> Result<Expectation, String> {
    let Value::Object(fields) = expect else {
        return Err(format!(
            "`expect` must be an object, found {}",
            kind(expect)
        ));
    };
    if let Some(key) = fields
        .keys()
        .find(|key| !["output", "error", "backend_calls"].contains(&key.as_str()))
    {
        return Err(format!(
            "unknown key `expect.{key}` (expect has output or error, and backend_calls)"
        ));
    }
    let output = match (fields.get("output"), fields.get("error")) {
        (Some(_), Some(_)) => {
            return Err("`expect` has both `output` and `error`; give one".to_owned());
        }
        (Some(output), None) => Some(output.clone()),
        (None, Some(Value::Bool(true))) => None,
        (None, Some(other)) => {
            return Err(format!(
                "`expect.error` must be true, found {}",
                diff::compact(other)
            ));
        }
        (None, None) => return Err("`expect` needs `output` or `error: true`".to_owned()),
    };
    let backend_calls = match fields.get("backend_calls") {
        None => None,
        Some(Value::Array(tools)) => Some(
            tools
                .iter()
                .map(|tool| match tool {
                    Value::String(tool) => Ok(tool.clone()),
                    other => Err(format!(
                        "`expect.backend_calls` must list tool names, found {}",
                        kind(other)
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(other) => {
            return Err(format!(
                "`expect.backend_calls` must be an array of tool names, found {}",
                kind(other)
            ));
        }
    };
    Ok(Expectation {
        output,
        backend_calls,
    })
}
