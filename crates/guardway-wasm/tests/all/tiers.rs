//! Tiered compilation: the sample guard's case files answer the same on baseline (Winch) and
//! optimised (Cranelift) code, a move between tiers while calls run loses no call and
//! changes no answer, faults (traps, loops, memory bombs) fail closed on baseline code
//! exactly as on optimised code, and baseline code never reaches the disk cache.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use guardway_difc::{LabelResourceInput, LabelResponseInput};
use guardway_wasm::{
    Backend, BackendCallError, BoxFuture, CacheConfig, CacheMode, CodeTier, CompilationCache,
    EngineFingerprint, FreshInstance, Guard, GuardCompiler, GuardError, GuardExport, GuardModule,
    GuardOptions,
};
use serde_json::{Value, json};

use crate::common::*;
use crate::sample_guard::sample_guard_wasm;

/// Canned answers per tool, as in a case file's `backend`; other tools fail.
struct CannedBackend(BTreeMap<String, Value>);

impl Backend for CannedBackend {
    fn call_tool<'a>(
        &'a self,
        tool: &'a str,
        _args: Value,
    ) -> BoxFuture<'a, Result<Value, BackendCallError>> {
        Box::pin(async move {
            self.0
                .get(tool)
                .cloned()
                .ok_or_else(|| BackendCallError::ToolNotAllowed {
                    tool: tool.to_owned(),
                })
        })
    }
}

/// One case file of the sample guard: its call, policy, input and canned backend.
struct Case {
    file: String,
    export: GuardExport,
    policy: Option<Value>,
    input: Value,
    backend: BTreeMap<String, Value>,
}

fn cases() -> Vec<Case> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../guards/sample-guard/tests/cases");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let doc: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let export = match doc["call"].as_str().unwrap() {
                "label_agent" => GuardExport::LabelAgent,
                "label_resource" => GuardExport::LabelResource,
                _ => GuardExport::LabelResponse,
            };
            let backend = doc["backend"]
                .as_object()
                .map(|map| map.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            Case {
                file: path.file_name().unwrap().to_string_lossy().into_owned(),
                export,
                policy: doc.get("policy").filter(|p| !p.is_null()).cloned(),
                input: doc["input"].clone(),
                backend,
            }
        })
        .collect()
}

/// The raw answers of one case on a fresh instance: `label_agent` of the policy (if any),
/// then the call; errors as their messages.
async fn run_case(module: &GuardModule, case: &Case) -> Vec<Result<Vec<u8>, String>> {
    let backend: Arc<dyn Backend> = Arc::new(CannedBackend(case.backend.clone()));
    let mut instance = FreshInstance::new(module, &options(), Some(backend))
        .await
        .unwrap();
    let mut answers = Vec::new();
    if let Some(policy) = &case.policy {
        let bytes = serde_json::to_vec(policy).unwrap();
        answers.push(
            instance
                .call(GuardExport::LabelAgent, &bytes)
                .await
                .map_err(|e| e.to_string()),
        );
    }
    let bytes = serde_json::to_vec(&case.input).unwrap();
    answers.push(
        instance
            .call(case.export, &bytes)
            .await
            .map_err(|e| e.to_string()),
    );
    answers
}

fn sample_on(compiler: GuardCompiler) -> Option<GuardModule> {
    let bytes = sample_guard_wasm()?;
    let options = GuardOptions::default()
        .with_compiler(compiler)
        .with_background_tier_up(false);
    Some(GuardModule::from_bytes("sample-guard", &bytes, &options).unwrap())
}

#[tokio::test]
async fn the_sample_guard_cases_answer_the_same_on_every_tier() {
    let (Some(optimised), Some(baseline)) = (
        sample_on(GuardCompiler::Cranelift),
        sample_on(GuardCompiler::Winch),
    ) else {
        return;
    };
    assert_eq!(optimised.tier(), CodeTier::Optimised);
    assert_eq!(baseline.tier(), CodeTier::Baseline);
    let cases = cases();
    assert!(cases.len() >= 30, "{} case files", cases.len());
    for case in &cases {
        let expected = run_case(&optimised, case).await;
        assert!(
            expected.iter().any(|answer| answer.is_ok()),
            "{}: {expected:?}",
            case.file
        );
        let actual = run_case(&baseline, case).await;
        assert_eq!(actual, expected, "{} differs between tiers", case.file);
    }
}

fn issue(repo: &str, number: u64, login: &str, association: &str) -> Value {
    json!({"number": number, "title": "t", "state": "open", "user": {"login": login},
           "author_association": association,
           "repository_url": format!("https://api.github.com/repos/{repo}"),
           "html_url": format!("https://github.com/{repo}/issues/{number}"), "labels": []})
}

fn search_backend() -> Arc<dyn Backend> {
    let page = json!({"items": [{"full_name": "octo-org/secret", "private": true}]});
    MockBackend::new(
        json!({"content": [{"type": "text", "text": page.to_string()}],
                            "isError": false}),
    ) as Arc<dyn Backend>
}

/// Call `n` of a stream of calls: alternately a resource and a response, varying inputs.
fn call_of(n: u64) -> (GuardExport, Vec<u8>) {
    if n.is_multiple_of(2) {
        let input = LabelResourceInput {
            tool_name: "issue_read".into(),
            tool_args: json!({"method": "get", "owner": "octo-org", "repo": "secret",
                              "issue_number": n % 7}),
            capabilities: None,
        };
        (
            GuardExport::LabelResource,
            serde_json::to_vec(&input).unwrap(),
        )
    } else {
        let list = json!([
            issue("octo-org/secret", n % 5, "alice", "MEMBER"),
            issue("octo-org/secret", 100 + n % 3, "bob", "NONE"),
        ]);
        let input = LabelResponseInput {
            tool_name: "list_issues".into(),
            tool_result: json!({"content": [{"type": "text", "text": list.to_string()}],
                                "isError": false}),
            tool_args: Some(json!({"owner": "octo-org", "repo": "secret"})),
            capabilities: None,
        };
        (
            GuardExport::LabelResponse,
            serde_json::to_vec(&input).unwrap(),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tier_switch_while_calls_run_loses_no_call_and_changes_no_output() {
    let Some(bytes) = sample_guard_wasm() else {
        return;
    };
    // Expected answers from optimised code.
    let reference = Guard::new(
        sample_on(GuardCompiler::Cranelift).unwrap(),
        &policy(),
        options().with_pool_size(1),
        Some(search_backend()),
    )
    .await
    .unwrap();
    let mut expected = Vec::new();
    for n in 0..14 {
        let (export, input) = call_of(n);
        expected.push(reference.call(export, &input).await.unwrap());
    }
    let expected = Arc::new(expected);

    // The guard under test starts on baseline code; its own cache, so that nothing else
    // has the optimised code ready.
    let cache = Arc::new(CompilationCache::in_memory(256 << 20));
    let options = options()
        .with_pool_size(3)
        .with_cache(CacheMode::Injected(cache.clone()))
        .with_compiler(GuardCompiler::Auto)
        .with_background_tier_up(false);
    let module = GuardModule::from_bytes("sample-guard", &bytes, &options).unwrap();
    assert_eq!(module.tier(), CodeTier::Baseline);
    let guard = Guard::new(module.clone(), &policy(), options, Some(search_backend()))
        .await
        .unwrap();

    let completed = Arc::new(AtomicU64::new(0));
    let switched = Arc::new(AtomicBool::new(false));
    let mut callers = Vec::new();
    for task in 0..4u64 {
        let guard = guard.clone();
        let expected = Arc::clone(&expected);
        let completed = Arc::clone(&completed);
        let switched = Arc::clone(&switched);
        callers.push(tokio::spawn(async move {
            let mut made = 0u64;
            let mut after_switch = 0u64;
            // Until the switch, then 20 more calls each started on the new code (a call
            // under way at the switch finishes on the baseline code).
            while after_switch < 20 {
                let started_after_switch = switched.load(Ordering::SeqCst);
                let n = (task * 1000 + made) % 14;
                let (export, input) = call_of(n);
                let answer = guard.call(export, &input).await.unwrap();
                assert_eq!(answer, expected[n as usize], "call {n}");
                made += 1;
                completed.fetch_add(1, Ordering::SeqCst);
                if started_after_switch {
                    after_switch += 1;
                }
                tokio::task::yield_now().await;
            }
            made
        }));
    }
    // Switch once calls are under way, from a blocking thread (compiling is CPU-bound).
    while completed.load(Ordering::SeqCst) < 20 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let tiering = module.clone();
    let moved = tokio::task::spawn_blocking(move || tiering.tier_up())
        .await
        .unwrap()
        .unwrap();
    assert!(moved);
    switched.store(true, Ordering::SeqCst);
    module.optimised().await.unwrap();
    assert_eq!(module.tier(), CodeTier::Optimised);

    let mut made = 0;
    for caller in callers {
        made += caller.await.unwrap();
    }
    let stats = guard.stats();
    // Every call answered (the `+ 1` is label_agent when the guard was created).
    assert_eq!(made, completed.load(Ordering::SeqCst));
    assert_eq!(stats.failures, 0, "{stats:?}");
    assert!(stats.calls > made, "{stats:?}");
    // Both tiers served calls; baseline instances were retired, none failed.
    assert!(stats.baseline_calls >= 20, "{stats:?}");
    assert!(stats.calls - stats.baseline_calls >= 80, "{stats:?}");
    assert!(stats.instances_retired >= 1, "{stats:?}");
    assert_eq!(
        stats.traps + stats.timeouts + stats.cancelled,
        0,
        "{stats:?}"
    );
    // The baseline code left the memory cache; the optimised code is in it.
    let cache_stats = cache.stats();
    assert_eq!(cache_stats.baseline_compilations, 1, "{cache_stats:?}");
    assert_eq!(cache_stats.compilations, 2, "{cache_stats:?}");
    assert_eq!(cache_stats.memory_entries, 1, "{cache_stats:?}");
    // Idle instances now all run the optimised code: a new call creates none on baseline.
    let before = guard.stats().baseline_calls;
    let (export, input) = call_of(3);
    assert_eq!(guard.call(export, &input).await.unwrap(), expected[3]);
    assert_eq!(guard.stats().baseline_calls, before);
}

#[tokio::test]
async fn a_second_load_during_the_baseline_phase_shares_the_baseline_code() {
    let Some(bytes) = sample_guard_wasm() else {
        return;
    };
    let cache = Arc::new(CompilationCache::in_memory(256 << 20));
    let options = GuardOptions::default()
        .with_cache(CacheMode::Injected(cache.clone()))
        .with_background_tier_up(false);
    let first = GuardModule::from_bytes("sample-guard", &bytes, &options).unwrap();
    let second = GuardModule::from_bytes("sample-guard", &bytes, &options).unwrap();
    assert_eq!(
        (first.tier(), second.tier()),
        (CodeTier::Baseline, CodeTier::Baseline)
    );
    assert_eq!(cache.stats().compilations, 1);
    assert!(first.tier_up().unwrap());
    assert!(!first.tier_up().unwrap(), "a module moves once");
    // The second module's optimised compilation finds the code in the cache.
    assert!(second.tier_up().unwrap());
    let stats = cache.stats();
    assert_eq!((stats.compilations, stats.baseline_compilations), (2, 1));
    // From now on a load starts on optimised code.
    let third = GuardModule::from_bytes("sample-guard", &bytes, &options).unwrap();
    assert_eq!(third.tier(), CodeTier::Optimised);
    assert_eq!(cache.stats().compilations, 2);
}

#[tokio::test]
async fn the_time_limit_fires_on_baseline_code() {
    let options = options()
        .with_call_timeout(Duration::from_millis(200))
        .with_compiler(GuardCompiler::Winch);
    let module = GuardModule::from_bytes("loop", &fixture("infinite_loop"), &options).unwrap();
    assert_eq!(module.tier(), CodeTier::Baseline);
    // Winch only: it never moves.
    let err = module.optimised().await.unwrap_err();
    assert!(err.to_string().contains("winch"), "{err}");
    let guard = Guard::new(module, &policy(), options, None).await.unwrap();
    let err = resource_error(&guard, b"{}").await;
    assert!(matches!(err, GuardError::Timeout { .. }), "{err:?}");
}

#[test]
fn baseline_code_never_reaches_the_disk_cache() {
    let Some(bytes) = sample_guard_wasm() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let disk = || {
        Arc::new(CompilationCache::new(CacheConfig::with_disk_dir(
            dir.path(),
        )))
    };
    let artifacts = || guardway_wasm::disk_usage(dir.path()).unwrap().artifacts();

    // Winch only: compiled, used, never written.
    let cache = disk();
    let winch = GuardOptions::default()
        .with_cache(CacheMode::Injected(cache.clone()))
        .with_compiler(GuardCompiler::Winch);
    let module = GuardModule::from_bytes("sample-guard", &bytes, &winch).unwrap();
    assert_eq!(module.tier(), CodeTier::Baseline);
    assert_eq!((cache.stats().disk_writes, artifacts()), (0, 0));

    // Tiered: nothing on disk until the optimised code lands, then exactly that.
    let auto = GuardOptions::default()
        .with_cache(CacheMode::Injected(cache.clone()))
        .with_background_tier_up(false);
    let module = GuardModule::from_bytes("sample-guard", &bytes, &auto).unwrap();
    assert_eq!(module.tier(), CodeTier::Baseline);
    assert_eq!((cache.stats().disk_writes, artifacts()), (0, 0));
    assert!(module.tier_up().unwrap());
    assert_eq!((cache.stats().disk_writes, artifacts()), (1, 1));
    let usage = guardway_wasm::disk_usage(dir.path()).unwrap();
    let optimising = EngineFingerprint::of(guardway_wasm::engine().unwrap());
    assert_eq!(
        usage.by_fingerprint.keys().copied().collect::<Vec<_>>(),
        vec![optimising]
    );

    // A new process (a new cache on the directory) starts on optimised code, from disk.
    let cache = disk();
    let auto = auto.with_cache(CacheMode::Injected(cache.clone()));
    let module = GuardModule::from_bytes("sample-guard", &bytes, &auto).unwrap();
    assert_eq!(module.tier(), CodeTier::Optimised);
    let stats = cache.stats();
    assert_eq!((stats.disk_hits, stats.compilations), (1, 0));
}

#[test]
fn loading_a_file_again_from_the_memory_cache_needs_no_compilation_and_sees_changes() {
    let Some(bytes) = sample_guard_wasm() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guard.wasm");
    std::fs::write(&path, &bytes).unwrap();
    // Old enough for its hash to be remembered.
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(60))
        .unwrap();
    let cache = Arc::new(CompilationCache::in_memory(256 << 20));
    let options = GuardOptions::default()
        .with_cache(CacheMode::Injected(cache.clone()))
        .with_compiler(GuardCompiler::Cranelift);
    GuardModule::from_file(&path, &options).unwrap();
    for _ in 0..3 {
        let module = GuardModule::from_file(&path, &options).unwrap();
        assert_eq!(module.name(), "guard");
    }
    let stats = cache.stats();
    assert_eq!((stats.compilations, stats.memory_hits), (1, 3));

    // Another module at the same path is noticed.
    std::fs::write(&path, fixture("echo")).unwrap();
    let module = GuardModule::from_file(&path, &options).unwrap();
    assert!(module.has_allocator());
    assert_eq!(cache.stats().compilations, 2);

    // Shared bytes: the same buffer again costs a memory hit.
    let shared: Arc<[u8]> = Arc::from(bytes.as_slice());
    GuardModule::from_shared_bytes("sample-guard", shared.clone(), &options).unwrap();
    let hits = cache.stats().memory_hits;
    GuardModule::from_shared_bytes("sample-guard", shared, &options).unwrap();
    assert_eq!(cache.stats().memory_hits, hits + 1);
}

/// What a faulting guard shows of one call: the error's text and the guard's counters of
/// faults and instances after it.
async fn fault_of(name: &str, compiler: GuardCompiler) -> (String, [u64; 6]) {
    let input = br#"{"tool_name":"issue_read","tool_args":{}}"#;
    let options = options()
        .with_compiler(compiler)
        .with_pool_size(1)
        .with_call_timeout(Duration::from_millis(200))
        .with_memory_limit(8 * guardway_wasm::MIB);
    let module = GuardModule::from_bytes(name, &fixture(name), &options).unwrap();
    let tier = match compiler {
        GuardCompiler::Winch => CodeTier::Baseline,
        _ => CodeTier::Optimised,
    };
    assert_eq!(module.tier(), tier, "{name} on {compiler:?}");
    let guard = Guard::new(module, &policy(), options, None).await.unwrap();
    let err = resource_error(&guard, input).await;
    let s = guard.stats();
    let counters = [
        s.failures,
        s.traps,
        s.timeouts,
        s.memory_limits,
        s.instances_discarded,
        s.instances_retired,
    ];
    (err.to_string(), counters)
}

/// A trapping, looping or memory-hungry guard fails closed on baseline (Winch) code exactly
/// as on optimised (Cranelift) code: the same error, the same counters, the faulty instance
/// discarded (not retired), and the next call fails the same way on a fresh instance.
#[tokio::test]
async fn faults_are_the_same_on_baseline_code() {
    for name in [
        "trap_unreachable",
        "trap_out_of_bounds",
        "memory_growth",
        "infinite_loop",
    ] {
        let optimised = fault_of(name, GuardCompiler::Cranelift).await;
        let baseline = fault_of(name, GuardCompiler::Winch).await;
        assert_eq!(baseline, optimised, "{name}");
        let (message, [failures, traps, timeouts, memory_limits, discarded, retired]) = baseline;
        let expected = match name {
            "trap_unreachable" => "unreachable",
            "trap_out_of_bounds" => "out of bounds",
            "memory_growth" => "memory",
            _ => "time limit",
        };
        assert!(message.contains(expected), "{name}: {message}");
        assert_eq!(failures, 1, "{name}");
        assert_eq!(traps + timeouts + memory_limits, 1, "{name}");
        assert_eq!((discarded, retired), (1, 0), "{name}");
    }
}

/// The errors of six calls to a guard that always traps, and its counters after them.
async fn trapping_sequence(compiler: GuardCompiler) -> (Vec<String>, [u64; 4]) {
    // A clock that stands still: the denial's remaining cool-down reads the same.
    let options = options()
        .with_compiler(compiler)
        .with_pool_size(2)
        .with_clock(ManualClock::new());
    let module =
        GuardModule::from_bytes("trap_unreachable", &fixture("trap_unreachable"), &options)
            .unwrap();
    let guard = Guard::new(module, &policy(), options, None).await.unwrap();
    let mut errors = Vec::new();
    for _ in 0..6 {
        errors.push(resource_error(&guard, b"{}").await.to_string());
    }
    let s = guard.stats();
    assert!(s.live_instances <= 2, "{s:?}");
    let counters = [
        s.traps,
        s.denied,
        s.instances_discarded,
        s.instances_retired,
    ];
    (errors, counters)
}

/// A guard that keeps trapping on baseline code fails closed call after call and is then
/// quarantined, exactly as on optimised code: five traps (each on a fresh instance), then a
/// denial.
#[tokio::test]
async fn a_faulty_guard_on_baseline_code_is_quarantined_as_on_optimised_code() {
    let optimised = trapping_sequence(GuardCompiler::Cranelift).await;
    let baseline = trapping_sequence(GuardCompiler::Winch).await;
    assert_eq!(baseline, optimised);
    let (errors, counters) = baseline;
    assert!(
        errors[..5].iter().all(|e| e.contains("unreachable")),
        "{errors:?}"
    );
    assert!(errors[5].contains("quarantined"), "{errors:?}");
    assert_eq!(counters, [5, 1, 5, 0]);
}
