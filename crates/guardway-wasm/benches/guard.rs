//! Guard host benchmarks: instantiation (a ready instance including `label_agent`), small
//! `label_resource` latency, host overhead with the echo guard at 1 KiB / 64 KiB / 1 MiB,
//! the cost of guard log lines filtered out by the log level, and throughput of one
//! `Guard` from one and two threads.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use guardway_difc::LabelResourceInput;
use guardway_wasm::{
    Backend, BackendCallError, BoxFuture, Guard, GuardCompiler, GuardExport, GuardModule,
    GuardOptions,
};
use serde_json::{Value, json};

/// Options that load optimised code at once (what serves calls in steady state).
fn optimised() -> GuardOptions {
    GuardOptions::default().with_compiler(GuardCompiler::Cranelift)
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn echo_module() -> GuardModule {
    let bytes = wat::parse_file(manifest_dir().join("tests/fixtures/echo.wat")).unwrap();
    GuardModule::from_bytes("echo", &bytes, &optimised()).unwrap()
}

/// The sample guard, if it has been built (`scripts/build-guards.sh`).
fn sample_module() -> Option<GuardModule> {
    let path = manifest_dir()
        .join("../../guards/sample-guard/target/wasm32-wasip1/release/sample_guard.wasm");
    match GuardModule::from_file(&path, &optimised()) {
        Ok(module) => Some(module),
        Err(error) => {
            eprintln!(
                "*** sample guard benchmarks skipped: {error} (run scripts/build-guards.sh) ***"
            );
            None
        }
    }
}

struct SearchBackend;

impl Backend for SearchBackend {
    fn call_tool<'a>(
        &'a self,
        _tool: &'a str,
        _args: Value,
    ) -> BoxFuture<'a, Result<Value, BackendCallError>> {
        Box::pin(async {
            let text =
                json!({"items": [{"full_name": "octo-org/api", "private": true}]}).to_string();
            Ok(json!({"content": [{"type": "text", "text": text}], "isError": false}))
        })
    }
}

fn policy() -> Value {
    json!({"allow-only": {"repos": ["octo-org/*"], "min-integrity": "approved"}})
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn new_guard(rt: &tokio::runtime::Runtime, module: &GuardModule, pool_size: usize) -> Guard {
    let options = GuardOptions::default().with_pool_size(pool_size);
    rt.block_on(Guard::new(
        module.clone(),
        &policy(),
        options,
        Some(Arc::new(SearchBackend)),
    ))
    .unwrap()
}

/// Runs `iters` calls in one task and returns the elapsed time.
fn time_calls(
    rt: &tokio::runtime::Runtime,
    guard: &Guard,
    export: GuardExport,
    input: &[u8],
    iters: u64,
) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let out = guard.call(export, input).await.unwrap();
            std::hint::black_box(out);
        }
        start.elapsed()
    })
}

fn instantiate(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("instantiate");
    let mut modules = vec![("echo", echo_module())];
    if let Some(sample) = sample_module() {
        modules.push(("sample_guard", sample));
    }
    for (name, module) in &modules {
        group.bench_function(BenchmarkId::new("ready_instance", name), |b| {
            b.iter(|| std::hint::black_box(new_guard(&rt, module, 1)));
        });
    }
    group.finish();
}

fn label_resource(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("label_resource");
    let echo = new_guard(&rt, &echo_module(), 1);
    let small = br#"{"tool_name":"issue_read","tool_args":{"owner":"octo-org","repo":"api","issue_number":12}}"#;
    group.bench_function("echo_small_raw", |b| {
        b.iter_custom(|iters| time_calls(&rt, &echo, GuardExport::LabelResource, small, iters));
    });
    if let Some(sample) = sample_module() {
        let guard = new_guard(&rt, &sample, 1);
        let input = LabelResourceInput {
            tool_name: "issue_read".into(),
            tool_args: json!({"method": "get", "owner": "octo-org", "repo": "api", "issue_number": 12}),
            capabilities: None,
        };
        group.bench_function("sample_guard_typed", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        std::hint::black_box(guard.label_resource(&input).await.unwrap());
                    }
                    start.elapsed()
                })
            });
        });
    }
    group.finish();
}

fn echo_overhead(c: &mut Criterion) {
    let rt = runtime();
    let guard = new_guard(&rt, &echo_module(), 1);
    let mut group = c.benchmark_group("echo");
    for size in [1024usize, 64 * 1024, 1024 * 1024] {
        let input = vec![b'x'; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &input, |b, input| {
            b.iter_custom(|iters| {
                time_calls(&rt, &guard, GuardExport::LabelResource, input, iters)
            });
        });
    }
    group.finish();
}

/// `chatty`'s `label_resource` makes 2000 `host_log` calls (1000 info, 1000 debug) and
/// writes one stdout line, then echoes; with no subscriber every line is filtered out.
/// Compared with the echo guard's call, the difference is the cost of 2000 filtered lines.
fn host_log_filtered(c: &mut Criterion) {
    let rt = runtime();
    let bytes = wat::parse_file(manifest_dir().join("tests/fixtures/chatty.wat")).unwrap();
    let chatty = GuardModule::from_bytes("chatty", &bytes, &optimised()).unwrap();
    let chatty = new_guard(&rt, &chatty, 1);
    let echo = new_guard(&rt, &echo_module(), 1);
    let mut group = c.benchmark_group("host_log_filtered");
    for (name, guard) in [("echo_no_lines", &echo), ("chatty_2000_lines", &chatty)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| time_calls(&rt, guard, GuardExport::LabelResource, b"{}", iters));
        });
    }
    group.finish();
}

fn parallel(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("parallel");
    let mut modules = vec![("echo", echo_module())];
    if let Some(sample) = sample_module() {
        modules.push(("sample_guard", sample));
    }
    let input = br#"{"tool_name":"issue_read","tool_args":{"method":"get","owner":"octo-org","repo":"api","issue_number":12}}"#;
    for (name, module) in &modules {
        let guard = new_guard(&rt, module, 2);
        for threads in [1usize, 2] {
            // Throughput in calls: each iteration is one call, spread over `threads` tasks.
            group.throughput(Throughput::Elements(1));
            group.bench_function(BenchmarkId::new(*name, format!("{threads}_threads")), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let start = Instant::now();
                        let per_task = iters.div_ceil(threads as u64);
                        let mut tasks = Vec::new();
                        for _ in 0..threads {
                            let guard = guard.clone();
                            tasks.push(tokio::spawn(async move {
                                for _ in 0..per_task {
                                    guard.call(GuardExport::LabelResource, input).await.unwrap();
                                }
                            }));
                        }
                        for task in tasks {
                            task.await.unwrap();
                        }
                        start.elapsed()
                    })
                });
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(20);
    targets = instantiate, label_resource, echo_overhead, host_log_filtered, parallel
}
criterion_main!(benches);
