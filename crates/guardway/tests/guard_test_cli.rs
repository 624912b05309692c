//! `guardway guard test` and `guardway guard call --backend/--trace` run as real processes
//! on the real sample guard: the shipped suite passes with one compilation, on every
//! compiler tier (`--guard-compiler`, `GUARDWAY_GUARD_COMPILER`), a failing case
//! shows its diff (exit 1), a malformed case file exits 2, `--update` snapshots, canned
//! backend answers reach the guard, `backend_calls` is checked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

#[path = "support/mod.rs"]
mod support;
use support::{built_guard, repo_root, sample_guard};

fn sample_cases() -> PathBuf {
    repo_root().join("guards/sample-guard/tests/cases")
}

fn guardway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guardway"))
        .args(args)
        .env_remove("GUARDWAY_LOG")
        .env_remove("RUST_LOG")
        .env_remove("GUARDWAY_GUARD_COMPILER")
        .output()
        .expect("run guardway")
}

/// Runs `guardway guard test GUARD CASES EXTRA...`.
fn guard_test(guard: &Path, cases: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["guard", "test", path_str(guard), path_str(cases)];
    args.extend_from_slice(extra);
    guardway(&args)
}

/// Runs `guardway guard call GUARD` on `label_resource` for `list_issues` of acme/web
/// under a public-repositories policy, with `extra` arguments.
fn label_acme_web_issues(guard: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "guard",
        "call",
        path_str(guard),
        "--policy",
        r#"{"allow-only": {"repos": "public", "min-integrity": "none"}}"#,
        "--call",
        "label_resource",
        "--input",
        r#"{"tool_name": "list_issues", "tool_args": {"owner": "acme", "repo": "web"}}"#,
    ];
    args.extend_from_slice(extra);
    guardway(&args)
}

/// Runs `guardway guard test GUARD CASES --json EXTRA...`, asserts it succeeded (showing
/// stdout and stderr otherwise) and returns the parsed JSON report.
fn guard_test_json(guard: &Path, cases: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let out = guard_test(guard, cases, &args);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A search_repositories result stating the visibility of two repositories.
fn visibility_answer() -> Value {
    let page = json!({"total_count": 2, "incomplete_results": false, "items": [
        {"full_name": "octo-org/secret", "private": true},
        {"full_name": "acme/web", "private": false}]});
    json!({"content": [{"type": "text", "text": page.to_string()}], "isError": false})
}

fn resource_case(expect: Value) -> Value {
    json!({
        "name": "issue in a private repository",
        "call": "label_resource",
        "policy": {"allow-only": {"repos": ["octo-org/*"], "min-integrity": "none"}},
        "input": {"tool_name": "issue_read",
                  "tool_args": {"method": "get", "owner": "octo-org", "repo": "secret", "issue_number": 1}},
        "backend": {"search_repositories": visibility_answer()},
        "expect": expect,
    })
}

fn private_issue_output() -> Value {
    json!({"resource": {"description": "issue octo-org/secret#1",
                        "secrecy": ["private:octo-org"],
                        "integrity": ["none:octo-org/secret", "none:octo-org/*"]},
           "operation": "read"})
}

fn write_case(dir: &Path, name: &str, case: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(case).unwrap() + "\n").unwrap();
    path
}

#[test]
fn the_sample_guard_suite_passes_with_one_compilation() {
    let guard = sample_guard();
    let cases = sample_cases();
    let report = guard_test_json(&guard, &cases, &[]);
    let files = std::fs::read_dir(&cases).unwrap().count() as u64;
    assert!(files >= 20, "only {files} case files");
    assert_eq!(report["passed"], files);
    assert_eq!(report["failed"], 0);
    // Compiled once for the whole run, whatever the number of cases.
    assert_eq!(report["cache"]["compilations"], 1, "{report:#}");
    let entries = report["cases"].as_array().unwrap();
    assert_eq!(entries.len() as u64, files);
    assert!(entries.iter().all(|case| case["status"] == "ok"));
    // Every label function, refusals and backend look-ups are covered.
    let calls: Vec<String> = cases_of(&cases, "call");
    for call in ["label_agent", "label_resource", "label_response"] {
        assert!(calls.iter().any(|c| c == call), "no {call} case");
    }
    assert!(
        entries
            .iter()
            .any(|case| case["actual"]["error"] == json!(true))
    );
    assert!(entries.iter().any(|case| {
        case["backend_calls"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    }));
}

fn cases_of(dir: &Path, key: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let case: Value =
                serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap())
                    .unwrap();
            case[key].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

#[test]
fn a_passing_case_with_backend_calls_passes_in_text_mode() {
    let guard = sample_guard();
    let dir = tempfile::tempdir().unwrap();
    write_case(
        dir.path(),
        "private.json",
        &resource_case(
            json!({"output": private_issue_output(), "backend_calls": ["search_repositories"]}),
        ),
    );
    let out = guard_test(&guard, dir.path(), &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("ok       issue in a private repository"),
        "{stdout}"
    );
    assert!(stdout.contains("1 passed, 0 failed"), "{stdout}");
    assert!(
        stdout.contains("(1 compilation(s), compiler auto, baseline code)"),
        "{stdout}"
    );
}

#[test]
fn the_sample_guard_suite_passes_on_every_compiler_tier() {
    let guard = sample_guard();
    let cases = sample_cases();
    let files = std::fs::read_dir(&cases).unwrap().count() as u64;
    for (compiler, tier) in [
        ("cranelift", "optimised"),
        ("winch", "baseline"),
        // A cache miss in a one-shot run: every case on the baseline code.
        ("auto", "baseline"),
    ] {
        let report = guard_test_json(&guard, &cases, &["--guard-compiler", compiler]);
        assert_eq!(report["compiler"], compiler, "{report:#}");
        assert_eq!(report["code_tier"], tier, "{report:#}");
        assert_eq!(
            (report["passed"].as_u64(), report["failed"].as_u64()),
            (Some(files), Some(0)),
            "{compiler}: {report:#}"
        );
    }
    // The variable chooses too; a bad name is refused before anything runs.
    let out = Command::new(env!("CARGO_BIN_EXE_guardway"))
        .args([
            "guard",
            "test",
            "--json",
            path_str(&guard),
            path_str(&cases),
        ])
        .env("GUARDWAY_GUARD_COMPILER", "cranelift")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["code_tier"], "optimised", "{report:#}");
    let out = guard_test(&guard, &cases, &["--guard-compiler", "fastest"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown guard compiler \"fastest\""),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_failing_case_is_reported_with_its_diff_and_exit_1() {
    let guard = sample_guard();
    let dir = tempfile::tempdir().unwrap();
    let mut wrong = private_issue_output();
    wrong["resource"]["secrecy"] = json!(["private:someone-else"]);
    wrong["operation"] = json!("write");
    write_case(
        dir.path(),
        "wrong.json",
        &resource_case(json!({"output": wrong})),
    );
    write_case(
        dir.path(),
        "right.json",
        &resource_case(json!({"output": private_issue_output()})),
    );
    let out = guard_test(&guard, dir.path(), &["--trace"]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("FAILED   issue in a private repository"),
        "{stdout}"
    );
    assert!(stdout.contains("wrong.json"), "{stdout}");
    assert!(
        stdout.contains(
            "$.resource.secrecy[0]: expected \"private:someone-else\", actual \"private:octo-org\""
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("$.operation: expected \"write\", actual \"read\""),
        "{stdout}"
    );
    // --trace shows what the failing case's guard did.
    assert!(
        stdout
            .contains("call_backend search_repositories {\"query\":\"repo:octo-org/secret\"} -> "),
        "{stdout}"
    );
    assert!(
        stdout.contains("host_log debug: label_resource issue_read"),
        "{stdout}"
    );
    assert!(stdout.contains("1 passed, 1 failed"), "{stdout}");
}

#[test]
fn backend_calls_are_checked() {
    let guard = sample_guard();
    let dir = tempfile::tempdir().unwrap();
    write_case(
        dir.path(),
        "calls.json",
        &resource_case(json!({"output": private_issue_output(), "backend_calls": []})),
    );
    let out = guard_test(&guard, dir.path(), &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("backend_calls: expected [], actual [\"search_repositories\"]"),
        "{stdout}"
    );
}

#[test]
fn an_unlisted_backend_tool_answers_minus_one_and_changes_the_labels() {
    let guard = sample_guard();
    let dir = tempfile::tempdir().unwrap();
    // The guard asks for search_repositories; the canned backend only knows issue_read, so
    // the look-up fails (-1) and acme/web counts as private.
    let case = json!({
        "name": "unlisted tool",
        "call": "label_resource",
        "policy": {"allow-only": {"repos": "public", "min-integrity": "none"}},
        "input": {"tool_name": "list_issues", "tool_args": {"owner": "acme", "repo": "web"}},
        "backend": {"issue_read": {"content": []}},
        "expect": {"output": {"resource": {"description": "list_issues acme/web",
            "secrecy": [], "integrity": ["none:acme/web", "none:public"]}, "operation": "read"},
            "backend_calls": ["search_repositories"]},
    });
    write_case(dir.path(), "unlisted.json", &case);
    let out = guard_test(&guard, dir.path(), &["--trace"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("$.resource.secrecy: expected 0 element(s), actual 2"),
        "{stdout}"
    );
    assert!(
        stdout.contains("-> -1 (backend error: backend call to search_repositories failed: no canned answer for this tool)"),
        "{stdout}"
    );
    // With the answer listed, the same case passes: the answer reached the guard.
    let mut listed = case.clone();
    listed["backend"] = json!({"search_repositories": visibility_answer()});
    write_case(dir.path(), "unlisted.json", &listed);
    let out = guard_test(&guard, dir.path(), &[]);
    assert!(out.status.success(), "{}", text(&out.stdout));
}

#[test]
fn malformed_case_files_exit_2_naming_the_file_and_the_reason() {
    let guard = sample_guard();
    let checks: [(&str, &str, &str); 7] = [
        ("not-json.json", "{\"call\": ", "not valid JSON"),
        ("array.json", "[]", "must be a JSON object, found an array"),
        (
            "unknown-key.json",
            r#"{"call": "label_agent", "input": {}, "expected": {}}"#,
            "unknown key `expected`",
        ),
        (
            "bad-call.json",
            r#"{"call": "label_everything", "input": {}, "expect": {"error": true}}"#,
            "`call` must be label_agent, label_resource or label_response",
        ),
        (
            "no-expect.json",
            r#"{"call": "label_agent", "input": {}}"#,
            "missing `expect`",
        ),
        (
            "bad-input.json",
            r#"{"call": "label_resource", "input": {"tool_args": {}}, "expect": {"error": true}}"#,
            "`input` is not a label_resource input",
        ),
        (
            "bad-expect.json",
            r#"{"call": "label_agent", "input": {}, "expect": {"error": false}}"#,
            "`expect.error` must be true",
        ),
    ];
    for (name, content, reason) in checks {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(name);
        std::fs::write(&file, content).unwrap();
        // A good case beside it does not change the verdict.
        write_case(
            dir.path(),
            "good.json",
            &resource_case(json!({"output": private_issue_output()})),
        );
        let out = guard_test(&guard, dir.path(), &[]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(path_str(&file)), "{name}: {stderr}");
        assert!(stderr.contains(reason), "{name}: {stderr}");
    }
    let out = guard_test(&guard, Path::new("/nonexistent/cases"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/cases: no such case file or directory"));
}

#[test]
fn update_rewrites_only_expect_and_the_file_then_passes() {
    let guard = sample_guard();
    let dir = tempfile::tempdir().unwrap();
    // Hand-written layout: key order, a description and compact inner objects must survive.
    let head = r#"{
  "description": "kept as written",
  "call": "label_resource",
  "name": "snapshot me",
  "input": {"tool_name": "issue_read", "tool_args": {"method": "get", "owner": "octo-org", "repo": "secret", "issue_number": 1}},
  "policy": {"allow-only": {"repos": ["octo-org/*"], "min-integrity": "none"}},
"#;
    let backend = format!(
        "  \"backend\": {{\"search_repositories\": {}}}\n}}\n",
        visibility_answer()
    );
    let text_before = format!(
        "{head}  \"expect\": {{\"output\": {{\"resource\": {{}}}}, \"backend_calls\": [\"nothing\"]}},\n{backend}"
    );
    let file = dir.path().join("snap.json");
    std::fs::write(&file, &text_before).unwrap();
    let refused = dir.path().join("refused.json");
    std::fs::write(
        &refused,
        r#"{"call": "label_agent", "input": {"policy": {"allow-only": {"repos": "all", "min-integrity": "none"}}}}"#,
    )
    .unwrap();

    let out = guard_test(&guard, dir.path(), &["--update"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("2 passed, 0 failed (2 updated)"),
        "{stdout}"
    );

    let after = std::fs::read_to_string(&file).unwrap();
    assert!(after.starts_with(head), "{after}");
    assert!(after.ends_with(&backend), "{after}");
    let case: Value = serde_json::from_str(&after).unwrap();
    let keys: Vec<&str> = case
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "description",
            "call",
            "name",
            "input",
            "policy",
            "expect",
            "backend"
        ]
    );
    assert_eq!(case["expect"]["output"], private_issue_output());
    // backend_calls was in the expectation, so it is kept, with the actual calls.
    assert_eq!(
        case["expect"]["backend_calls"],
        json!(["search_repositories"])
    );
    let refused_case: Value =
        serde_json::from_str(&std::fs::read_to_string(&refused).unwrap()).unwrap();
    assert_eq!(refused_case["expect"], json!({"error": true}));

    let out = guard_test(&guard, dir.path(), &[]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("2 passed, 0 failed"));
    // A second --update has nothing to change and leaves the files alone.
    let out = guard_test(&guard, dir.path(), &["--update"]);
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), after);
}

#[test]
fn call_with_backend_and_trace_prints_logs_and_backend_calls_in_order() {
    let guard = sample_guard();
    let backend = json!({"search_repositories": visibility_answer()}).to_string();
    let out = label_acme_web_issues(&guard, &["--backend", &backend, "--trace"]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let output: Value = serde_json::from_str(&stdout).unwrap();
    // The canned answer says acme/web is public: no secrecy.
    assert_eq!(output["resource"]["secrecy"], json!([]));
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("[trace] "))
        .collect();
    let position = |needle: &str| {
        lines
            .iter()
            .position(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no trace line with {needle:?} in\n{stderr}"))
    };
    let agent = position("host_log info: label_agent: scope_kind=");
    let debug = position("host_log debug: label_resource input: {");
    let answer_len = visibility_answer().to_string().len();
    let backend_call = position(&format!(
        "call_backend search_repositories {{\"query\":\"repo:acme/web\"}} -> {answer_len} bytes"
    ));
    let summary = position("host_log debug: label_resource list_issues: read");
    assert!(
        agent < debug && debug < backend_call && backend_call < summary,
        "{stderr}"
    );
    // The guard's lines are not printed a second time by the log.
    assert!(!stderr.contains("guard=sample_guard"), "{stderr}");

    // Without --backend the guard's look-up fails with -1 and the repository counts as private.
    let out = label_acme_web_issues(&guard, &["--trace"]);
    assert!(out.status.success());
    let output: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        output["resource"]["secrecy"],
        json!(["private:acme", "private:acme/web"])
    );
    assert!(text(&out.stderr).contains(
        "[trace] call_backend search_repositories {\"query\":\"repo:acme/web\"} -> -1 (no backend is attached to this guard)"
    ));
}

#[test]
fn call_label_agent_prints_the_agent_labels_of_the_policy() {
    let guard = sample_guard();
    let out = guardway(&[
        "guard",
        "call",
        path_str(&guard),
        "--policy",
        r#"{"allow-only": {"repos": ["octo-org/*"], "min-integrity": "approved"}}"#,
        "--call",
        "label_agent",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let output: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(output["agent"]["secrecy"], json!(["private:octo-org"]));
    assert_eq!(output["difc_mode"], "filter");
    let out = guardway(&[
        "guard",
        "call",
        path_str(&guard),
        "--policy",
        r#"{"allow-only": {"repos": "all", "min-integrity": "none"}}"#,
        "--call",
        "label_resource",
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--input is required"));
}

#[test]
fn cases_of_a_guard_written_against_the_raw_abi_run_the_same_way() {
    // No guardway-guest: raw exports, its own allocator, host imports declared by hand,
    // -1 instead of -2 for a short buffer — as guards built for the reference gateway are.
    let root = repo_root();
    let guard = built_guard("raw-abi-guard", "raw_abi_guard.wasm");
    let cases = root.join("guards/raw-abi-guard/tests/cases");
    let report = guard_test_json(&guard, &cases, &[]);
    assert_eq!(report["failed"], 0);
    assert!(report["passed"].as_u64().unwrap() >= 6);
    assert_eq!(report["cache"]["compilations"], 1);
    let entries = report["cases"].as_array().unwrap();
    assert!(entries.iter().any(|c| c["actual"]["error"] == json!(true)));
    assert!(
        entries
            .iter()
            .any(|c| c["backend_calls"] == json!(["search_repositories"]))
    );
}

#[test]
fn a_trapping_guard_fails_its_case_and_update_does_not_snapshot_it() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = repo_root().join("crates/guardway-wasm/tests/fixtures/trap_unreachable.wat");
    let guard = dir.path().join("trap.wasm");
    std::fs::write(&guard, wat::parse_file(fixture).unwrap()).unwrap();
    let cases = dir.path().join("cases");
    std::fs::create_dir(&cases).unwrap();
    let case = json!({"call": "label_resource",
        "input": {"tool_name": "t", "tool_args": {}}, "expect": {"output": null}});
    let file = write_case(&cases, "trap.json", &case);
    let before = std::fs::read_to_string(&file).unwrap();
    for extra in [&[][..], &["--update"]] {
        let out = guard_test(&guard, &cases, extra);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        // Named after its file when it has no name.
        assert!(stdout.contains("FAILED   trap"), "{stdout}");
        assert!(
            stdout.contains("the guard failed: guard trap: label_resource trapped"),
            "{stdout}"
        );
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
}

#[test]
fn with_a_disk_cache_the_next_run_compiles_nothing() {
    let guard = sample_guard();
    let cases = sample_cases();
    let cache = tempfile::tempdir().unwrap();
    let run = || {
        guard_test_json(
            &guard,
            &cases,
            &["--wasm-cache-dir", path_str(cache.path())],
        )
    };
    let first = run();
    assert_eq!(first["cache"]["compilations"], 1);
    assert_eq!(first["code_tier"], "baseline");
    // The first run stored the optimised code (never the baseline code) before exiting.
    let usage = std::fs::read_dir(cache.path()).unwrap().count();
    assert_eq!(usage, 1);
    let second = run();
    assert_eq!(second["cache"]["compilations"], 0);
    assert_eq!(second["cache"]["disk_hits"], 1);
    assert_eq!(second["code_tier"], "optimised");
    assert_eq!(second["failed"], 0);
}

/// `guard call` takes `--wasm-cache-dir` as `guard test` and `serve` do: the
/// guard it compiles is kept there, and a `guard test` run on the same
/// directory then loads it from disk instead of compiling it.
#[test]
fn guard_call_keeps_the_compiled_guard_in_the_wasm_cache_dir() {
    let guard = sample_guard();
    let cache = tempfile::tempdir().unwrap();
    let plain = label_acme_web_issues(&guard, &[]);
    let cached = label_acme_web_issues(&guard, &["--wasm-cache-dir", path_str(cache.path())]);
    assert!(
        cached.status.success(),
        "{}\n{}",
        text(&cached.stdout),
        text(&cached.stderr)
    );
    assert_eq!(text(&cached.stdout), text(&plain.stdout));
    let artifacts: Vec<PathBuf> = std::fs::read_dir(cache.path())
        .unwrap()
        .flat_map(|fingerprint| std::fs::read_dir(fingerprint.unwrap().path()).unwrap())
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "cwasm"))
        .collect();
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");

    let report = guard_test_json(
        &guard,
        &sample_cases(),
        &["--wasm-cache-dir", path_str(cache.path())],
    );
    assert_eq!(report["cache"]["compilations"], 0, "{report}");
    assert_eq!(report["cache"]["disk_hits"], 1, "{report}");
}
