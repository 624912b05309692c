//! `guardway guard bench` run as a real process on the real sample guard: the JSON report
//! (every section present and plausible) and the errors for bad input.

use std::process::{Command, Output};

use serde_json::Value;

#[path = "support/mod.rs"]
mod support;
use support::sample_guard;

const POLICY: &str = r#"{"allow-only": {"repos": ["octo-org/*"], "min-integrity": "none"}}"#;
const INPUT: &str = r#"{"tool_name": "issue_read", "tool_args": {"method": "get", "owner": "octo-org", "repo": "api", "issue_number": 42}}"#;

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guardway"))
        .args(["guard", "bench"])
        .args(args)
        .env_remove("GUARDWAY_LOG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run guardway")
}

fn number(report: &Value, pointer: &str) -> f64 {
    report
        .pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{pointer} is not a number in {report:#}"))
}

fn assert_summary(report: &Value, pointer: &str) {
    let samples = number(report, &format!("{pointer}/samples"));
    assert!(samples >= 1.0, "{pointer}: no samples");
    let p50 = number(report, &format!("{pointer}/p50_us"));
    let p99 = number(report, &format!("{pointer}/p99_us"));
    let mean = number(report, &format!("{pointer}/mean_us"));
    let min = number(report, &format!("{pointer}/min_us"));
    let max = number(report, &format!("{pointer}/max_us"));
    assert!(p50 > 0.0 && mean > 0.0, "{pointer}: {p50} {mean}");
    assert!(
        min <= p50 && p50 <= p99 && p99 <= max,
        "{pointer}: {min} {p50} {p99} {max}"
    );
    assert!(min <= mean && mean <= max, "{pointer}: mean {mean}");
}

#[test]
fn json_report_has_every_section_with_plausible_figures() {
    let guard = sample_guard();
    let out = bench(&[
        guard.to_str().unwrap(),
        "--policy",
        POLICY,
        "--input",
        INPUT,
        "--duration",
        "0.2",
        "--threads",
        "2",
        "--cold-samples",
        "1",
        "--processes",
        "2",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");

    assert_eq!(report["guard"]["name"], "sample_guard");
    assert_eq!(report["guard"]["has_allocator"], true);
    assert!(number(&report, "/guard/size_bytes") > 0.0);

    // First decision: cold on both compilers, new processes loading from a warm disk
    // cache, new guards from the memory cache.
    let first = &report["first_decision"];
    assert_eq!(first["cold_tiered"]["compiler"], "auto");
    assert_eq!(first["cold_cranelift"]["compiler"], "cranelift");
    for cold in ["cold_tiered", "cold_cranelift"] {
        assert_eq!(number(first, &format!("/{cold}/samples")), 1.0);
        assert!(number(first, &format!("/{cold}/p50_ms")) > 0.0);
    }
    assert!(number(first, "/cold_tiered_speedup") > 0.0);
    // The optimised code lands after the baseline code decided.
    assert!(number(first, "/tiered_optimised_after_ms") >= number(first, "/cold_tiered/p50_ms"));
    assert_eq!(number(first, "/warm_disk_new_process/processes"), 2.0);
    assert!(number(first, "/warm_disk_new_process/p50_ms") > 0.0);
    assert_summary(first, "/memory_warm_new_guard");

    // Load: a cold compile and cached loads that really hit the cache (with `auto`, the
    // baseline compilation and then the optimised one).
    assert!(number(&report, "/load/cold_ms") > 0.0);
    assert_summary(&report, "/load/cached");
    assert_eq!(number(&report, "/load/cache_compilations"), 2.0);
    assert_eq!(
        number(&report, "/load/cache_memory_hits"),
        number(&report, "/load/cached/samples")
    );

    assert!(number(&report, "/instantiation/first_guard_us") > 0.0);
    assert_summary(&report, "/instantiation/extra_instance");
    assert_eq!(
        number(&report, "/instantiation/extra_instance/samples"),
        49.0
    );

    for function in ["label_agent", "label_resource", "label_response"] {
        assert_summary(&report, &format!("/latency/{function}"));
        assert!(number(&report, &format!("/latency/{function}/input_bytes")) > 0.0);
    }
    // The default response input: 30 GitHub issues, several KiB.
    assert!(number(&report, "/latency/label_response/input_bytes") > 10_000.0);

    assert_summary(&report, "/host_overhead/call");
    assert_summary(&report, "/host_overhead/instantiation");
    assert_eq!(number(&report, "/host_overhead/input_bytes"), 1024.0);

    let levels = report["throughput"]["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 2);
    assert_eq!(number(&report, "/throughput/pool_size"), 2.0);
    for (i, level) in levels.iter().enumerate() {
        assert_eq!(level["threads"], i + 1);
        assert!(level["calls"].as_u64().unwrap() > 0);
        assert!(level["calls_per_s"].as_f64().unwrap() > 0.0);
        assert!(level["speedup"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(levels[0]["speedup"], 1.0);

    let memory = report["memory"]["levels"].as_array().unwrap();
    let instances: Vec<u64> = memory
        .iter()
        .map(|l| l["instances"].as_u64().unwrap())
        .collect();
    assert_eq!(instances, [1, 10, 50]);
    let rss: Vec<u64> = memory
        .iter()
        .map(|l| l["rss_bytes"].as_u64().unwrap())
        .collect();
    // Resident memory is sampled, not ordered: under memory pressure the
    // kernel reclaims pages between samples, so later samples can be lower.
    assert!(rss.iter().all(|&bytes| bytes > 0), "{rss:?}");
    assert!(report["memory"]["per_extra_instance_bytes"].is_u64());
    assert_eq!(
        number(&report, "/memory/memory_cap_bytes"),
        32.0 * 1024.0 * 1024.0
    );

    let targets = report["targets"].as_array().unwrap();
    assert!(targets.len() >= 7);
    for name in [
        "cold_first_decision_tiered_speedup",
        "warm_disk_new_process_first_decision_p50_ms",
        "memory_warm_new_guard_p50_us",
    ] {
        assert!(
            targets.iter().any(|t| t["name"] == name),
            "no target {name}"
        );
    }
    for target in targets {
        assert!(target["met"].is_boolean(), "{target}");
    }
    assert!(number(&report, "/machine/cores") >= 1.0);
}

#[test]
fn table_output_names_every_section() {
    let guard = sample_guard();
    let out = bench(&[
        guard.to_str().unwrap(),
        "--policy",
        POLICY,
        "--input",
        INPUT,
        "--duration",
        "0.05",
        "--threads",
        "1",
        "--cold-samples",
        "1",
        "--processes",
        "1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for heading in [
        "first decision",
        "new process, warm disk",
        "new guard, memory-warm",
        "module load",
        "instantiation",
        "per-call latency",
        "label_response",
        "host overhead",
        "throughput of label_resource",
        "resident memory",
        "targets",
    ] {
        assert!(stdout.contains(heading), "missing {heading:?} in\n{stdout}");
    }
}

fn assert_fails_with(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected a failure; stderr: {stderr}"
    );
    assert!(stderr.contains(needle), "stderr lacks {needle:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty(), "no report on failure");
}

#[test]
fn bad_policy_fails_with_a_clear_message() {
    let guard = sample_guard();
    let out = bench(&[
        guard.to_str().unwrap(),
        "--policy",
        "{not json",
        "--input",
        INPUT,
    ]);
    assert_fails_with(&out, "--policy is not valid JSON");
    let out = bench(&[
        guard.to_str().unwrap(),
        "--policy",
        r#"{"policy": {"allow-only": {"repos": "all", "min-integrity": "none"}}}"#,
        "--input",
        INPUT,
    ]);
    assert_fails_with(&out, "invalid --policy");
}

#[test]
fn missing_file_fails_with_a_clear_message() {
    let out = bench(&[
        "/nonexistent/guard.wasm",
        "--policy",
        POLICY,
        "--input",
        INPUT,
    ]);
    assert_fails_with(&out, "cannot read /nonexistent/guard.wasm");
}

#[test]
fn non_wasm_file_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.wasm");
    std::fs::write(&file, "this is not a guard\n").unwrap();
    let out = bench(&[file.to_str().unwrap(), "--policy", POLICY, "--input", INPUT]);
    assert_fails_with(&out, "not a WebAssembly module");
}

#[test]
fn bad_numbers_and_inputs_fail_with_clear_messages() {
    let guard = sample_guard();
    let path = guard.to_str().unwrap();
    let out = bench(&[path, "--policy", POLICY, "--input", INPUT, "--threads", "0"]);
    assert_fails_with(&out, "--threads must be between 1");
    let out = bench(&[
        path,
        "--policy",
        POLICY,
        "--input",
        INPUT,
        "--duration",
        "-1",
    ]);
    assert!(!out.status.success());
    let out = bench(&[
        path,
        "--policy",
        POLICY,
        "--input",
        INPUT,
        "--duration",
        "NaN",
    ]);
    assert_fails_with(&out, "--duration must be");
    let out = bench(&[path, "--policy", POLICY, "--input", r#"{"tool": 1}"#]);
    assert_fails_with(&out, "--input must be a label_resource input");
    let out = bench(&[
        path,
        "--policy",
        POLICY,
        "--input",
        INPUT,
        "--response-input",
        "@/nonexistent/response.json",
    ]);
    assert_fails_with(&out, "cannot read --response-input file");
}
