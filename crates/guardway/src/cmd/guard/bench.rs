//! `guardway guard bench`: measures one guard end to end — the first decision (cold with
//! tiered and Cranelift-only compilation, a new process with a warm disk cache, a new guard
//! from the memory cache), module load (cold and cached), instantiation, per-call latency
//! of each label function, throughput at 1..N threads, host overhead (a built-in no-op
//! guard) and resident memory per instance.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use guardway_difc::{LabelResourceInput, LabelResponseInput};
use guardway_wasm::{
    Backend, BackendCallError, BoxFuture, CacheConfig, CacheMode, CodeTier, CompilationCache,
    DEFAULT_MEMORY_MAX_BYTES, Guard, GuardCompiler, GuardExport, GuardModule, GuardOptions,
};
use serde::Serialize;
use serde_json::{Value, json};

use super::{json_arg, policy_arg, runtime};

/// Arguments of `guardway guard bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The guard's `.wasm` file.
    file: PathBuf,
    /// The session policy given to `label_agent`: JSON, or `@file`.
    #[arg(long)]
    policy: String,
    /// The `label_resource` input (`{"tool_name", "tool_args"}`): JSON, or `@file`.
    #[arg(long)]
    input: String,
    /// The `label_response` input (`{"tool_name", "tool_result", "tool_args"?}`): JSON, or
    /// `@file`. Default: a GitHub `list_issues` result of 30 issues in MCP text content.
    #[arg(long)]
    response_input: Option<String>,
    /// Highest number of threads of the throughput run (default: the number of cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Seconds of each measurement (each latency run and each throughput level).
    #[arg(long, default_value_t = 1.0)]
    duration: f64,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    json: bool,
    /// New processes started for the warm-disk first decision (0 skips it).
    #[arg(long, default_value_t = 20)]
    processes: usize,
    /// Cold first decisions timed per compiler (each compiles the guard from scratch).
    #[arg(long, default_value_t = 5)]
    cold_samples: usize,
    /// The compiler of the code measured by the latency, throughput and memory sections
    /// (`auto` measures the optimised code it ends on). The first-decision section measures
    /// tiered and Cranelift-only compilation whatever this says.
    #[command(flatten)]
    compiler: super::CompilerArgs,
}

/// Most threads accepted by `--threads`.
const MAX_THREADS: usize = 256;
/// Longest `--duration` accepted, in seconds.
const MAX_DURATION_S: f64 = 3600.0;
/// Live instances at which resident memory is sampled.
const MEMORY_LEVELS: [usize; 3] = [1, 10, 50];
/// Cached loads timed after the first (which fills the cache).
const CACHED_LOADS: usize = 20;
/// Fewest and most samples of one latency run.
const MIN_SAMPLES: usize = 20;
const MAX_SAMPLES: usize = 200_000;
/// Input size of the host-overhead measurement.
const OVERHEAD_INPUT_BYTES: usize = 1024;
/// Issues in the default `label_response` input.
const DEFAULT_LIST_ITEMS: usize = 30;
/// Most cold samples accepted by `--cold-samples`.
const MAX_COLD_SAMPLES: usize = 100;
/// Most new processes accepted by `--processes`.
const MAX_PROCESSES: usize = 1000;

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let settings = Settings::from_args(&args)?;
    let report = runtime()?.block_on(measure(&settings))?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_tables(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// Validated command-line settings and inputs.
struct Settings {
    file: PathBuf,
    bytes: Vec<u8>,
    name: String,
    policy: Value,
    resource_input: LabelResourceInput,
    response_input: LabelResponseInput,
    response_is_default: bool,
    threads: usize,
    duration: Duration,
    processes: usize,
    cold_samples: usize,
    compiler: GuardCompiler,
}

impl Settings {
    fn from_args(args: &BenchArgs) -> anyhow::Result<Settings> {
        if !args.duration.is_finite() || args.duration <= 0.0 || args.duration > MAX_DURATION_S {
            bail!(
                "--duration must be a number of seconds above 0 and at most {MAX_DURATION_S}, got {}",
                args.duration
            );
        }
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let threads = args.threads.unwrap_or(cores);
        if threads == 0 || threads > MAX_THREADS {
            bail!("--threads must be between 1 and {MAX_THREADS}, got {threads}");
        }
        if args.cold_samples == 0 || args.cold_samples > MAX_COLD_SAMPLES {
            bail!(
                "--cold-samples must be between 1 and {MAX_COLD_SAMPLES}, got {}",
                args.cold_samples
            );
        }
        if args.processes > MAX_PROCESSES {
            bail!(
                "--processes must be at most {MAX_PROCESSES}, got {}",
                args.processes
            );
        }
        let policy = policy_arg(&args.policy)?;
        let resource_input: LabelResourceInput =
            serde_json::from_value(json_arg(&args.input, "--input")?).context(
                "--input must be a label_resource input {\"tool_name\": …, \"tool_args\": …}",
            )?;
        let (response_input, response_is_default) = match &args.response_input {
            Some(text) => (
                serde_json::from_value(json_arg(text, "--response-input")?).context(
                    "--response-input must be a label_response input {\"tool_name\": …, \"tool_result\": …}",
                )?,
                false,
            ),
            None => (default_response_input(&resource_input.tool_args), true),
        };
        let bytes = std::fs::read(&args.file)
            .with_context(|| format!("cannot read {}", args.file.display()))?;
        let name = args
            .file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "guard".to_owned());
        Ok(Settings {
            file: args.file.clone(),
            bytes,
            name,
            policy,
            resource_input,
            response_input,
            response_is_default,
            threads,
            duration: Duration::from_secs_f64(args.duration),
            processes: args.processes,
            cold_samples: args.cold_samples,
            compiler: args.compiler.compiler,
        })
    }

    /// Options of the measured code; the optimised compilation is started explicitly.
    fn options(&self, pool_size: usize) -> GuardOptions {
        GuardOptions::default()
            .with_name(self.name.clone())
            .with_pool_size(pool_size)
            .with_compiler(self.compiler)
            .with_background_tier_up(false)
    }
}

// ---------------------------------------------------------------------------------------
// Report (the `--json` document; field names are stable, units in the names)
// ---------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct Report {
    guard: GuardInfo,
    machine: MachineInfo,
    settings: SettingsInfo,
    first_decision: FirstDecisionReport,
    load: LoadReport,
    instantiation: InstantiationReport,
    latency: LatencyReport,
    host_overhead: HostOverheadReport,
    throughput: ThroughputReport,
    memory: MemoryReport,
    targets: Vec<TargetReport>,
}

#[derive(Debug, Serialize)]
struct GuardInfo {
    file: String,
    name: String,
    size_bytes: usize,
    has_allocator: bool,
    memory_cap_bytes: usize,
}

#[derive(Debug, Serialize)]
struct MachineInfo {
    cores: usize,
    /// 1, 5 and 15 minute load averages when the start of the run (Linux only).
    load_average: Option<[f64; 3]>,
}

#[derive(Debug, Serialize)]
struct SettingsInfo {
    threads: usize,
    duration_per_run_s: f64,
    resource_input_bytes: usize,
    response_input_bytes: usize,
    response_input: &'static str,
    backend: &'static str,
}

#[derive(Debug, Serialize)]
struct FirstDecisionReport {
    /// What one cold sample is.
    cold_method: &'static str,
    /// Tiered compilation (`auto`): baseline code decides while Cranelift compiles.
    cold_tiered: ColdRuns,
    /// Cranelift only.
    cold_cranelift: ColdRuns,
    /// Cranelift-only p50 / tiered p50.
    cold_tiered_speedup: f64,
    /// From the start of a tiered sample until the optimised code took over (p50).
    tiered_optimised_after_ms: f64,
    warm_disk_new_process: Option<ProcessRuns>,
    /// `GuardModule::from_file` of a module in the memory cache plus `Guard::new` (one
    /// instance + label_agent).
    memory_warm_new_guard: Summary,
    memory_warm_method: &'static str,
}

/// Cold first decisions, in milliseconds.
#[derive(Debug, Serialize)]
struct ColdRuns {
    compiler: &'static str,
    samples: usize,
    p50_ms: f64,
    min_ms: f64,
    max_ms: f64,
}

impl ColdRuns {
    fn of(compiler: GuardCompiler, samples: &[Duration]) -> ColdRuns {
        let summary = Summary::of(samples);
        ColdRuns {
            compiler: compiler.as_str(),
            samples: summary.samples,
            p50_ms: round3(summary.p50_us / 1e3),
            min_ms: round3(summary.min_us / 1e3),
            max_ms: round3(summary.max_us / 1e3),
        }
    }
}

/// New `guardway` processes run to their first decision, in milliseconds.
#[derive(Debug, Serialize)]
struct ProcessRuns {
    command: String,
    processes: usize,
    p50_ms: f64,
    mean_ms: f64,
    min_ms: f64,
    max_ms: f64,
}

#[derive(Debug, Serialize)]
struct LoadReport {
    /// Compile, validate exports and pre-link with no cache.
    cold_ms: f64,
    /// The same bytes through an in-memory compilation cache that already holds them.
    cached: Summary,
    cache: &'static str,
    cache_memory_hits: u64,
    cache_compilations: u64,
    cold_over_cached: f64,
}

#[derive(Debug, Serialize)]
struct InstantiationReport {
    method: &'static str,
    /// The first `Guard::new` of the module (one instance + `label_agent`).
    first_guard_us: f64,
    /// Each further instance (a new `Guard` of the same module: instance + `label_agent`).
    extra_instance: Summary,
}

#[derive(Debug, Serialize)]
struct LatencyReport {
    label_agent: CallLatency,
    label_resource: CallLatency,
    label_response: CallLatency,
}

#[derive(Debug, Serialize)]
struct CallLatency {
    what: &'static str,
    input_bytes: usize,
    #[serde(flatten)]
    summary: Summary,
}

#[derive(Debug, Serialize)]
struct HostOverheadReport {
    method: &'static str,
    input_bytes: usize,
    /// `Guard::call` of the no-op guard's `label_resource`.
    call: Summary,
    /// A ready instance of the no-op guard (`Guard::new`: instance + trivial `label_agent`).
    instantiation: Summary,
}

#[derive(Debug, Serialize)]
struct ThroughputReport {
    function: &'static str,
    pool_size: usize,
    levels: Vec<ThroughputLevel>,
}

#[derive(Debug, Serialize)]
struct ThroughputLevel {
    threads: usize,
    calls: u64,
    seconds: f64,
    calls_per_s: f64,
    speedup: f64,
}

#[derive(Debug, Serialize)]
struct MemoryReport {
    method: &'static str,
    /// VmRSS before any guard instance exists (module loaded).
    baseline_rss_bytes: Option<u64>,
    levels: Vec<MemoryLevel>,
    /// (RSS at the most instances − RSS at one instance) / (the difference in instances).
    per_extra_instance_bytes: Option<u64>,
    memory_cap_bytes: usize,
}

#[derive(Debug, Serialize)]
struct MemoryLevel {
    instances: usize,
    rss_bytes: Option<u64>,
}

#[derive(Debug, Serialize)]
struct TargetReport {
    name: &'static str,
    target: String,
    measured: Option<f64>,
    unit: &'static str,
    met: Option<bool>,
}

/// Statistics of recorded samples, in microseconds. Percentiles are nearest-rank.
#[derive(Debug, Clone, Serialize)]
struct Summary {
    samples: usize,
    mean_us: f64,
    p50_us: f64,
    p99_us: f64,
    min_us: f64,
    max_us: f64,
}

impl Summary {
    fn of(samples: &[Duration]) -> Summary {
        let mut us: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
        us.sort_by(f64::total_cmp);
        let mean = if us.is_empty() {
            0.0
        } else {
            us.iter().sum::<f64>() / us.len() as f64
        };
        Summary {
            samples: us.len(),
            mean_us: round3(mean),
            p50_us: round3(nearest_rank(&us, 50.0)),
            p99_us: round3(nearest_rank(&us, 99.0)),
            min_us: round3(us.first().copied().unwrap_or(0.0)),
            max_us: round3(us.last().copied().unwrap_or(0.0)),
        }
    }
}

/// The nearest-rank `p`-th percentile of sorted samples (0 for none).
fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

// ---------------------------------------------------------------------------------------
// Measurement
// ---------------------------------------------------------------------------------------

async fn measure(settings: &Settings) -> anyhow::Result<Report> {
    let load_average = load_average();
    let options = settings.options(1);
    let memory_cap = options.memory_limit;

    let backend: Arc<dyn Backend> = Arc::new(CannedBackend);
    let first_decision = measure_first_decision(settings, &backend).await?;
    let (load, module) = measure_load(settings)?;

    // Memory and instantiation first, while no other instance has touched the pool slots.
    let (memory, instantiation) = measure_instances(settings, &module, &backend).await?;

    let host_overhead = measure_host_overhead(settings.duration).await?;

    let guard = Guard::new(
        module.clone(),
        &settings.policy,
        settings.options(1),
        Some(Arc::clone(&backend)),
    )
    .await
    .context("the guard refused the policy")?;
    let latency = measure_latency(settings, &guard).await?;
    drop(guard);

    let throughput = measure_throughput(settings, &module, &backend).await?;

    let resource_input_bytes = serde_json::to_vec(&settings.resource_input)?.len();
    let response_input_bytes = serde_json::to_vec(&settings.response_input)?.len();
    let targets = targets(
        &first_decision,
        &instantiation,
        &host_overhead,
        &throughput,
        &memory,
    );
    Ok(Report {
        guard: GuardInfo {
            file: settings.file.display().to_string(),
            name: settings.name.clone(),
            size_bytes: settings.bytes.len(),
            has_allocator: module.has_allocator(),
            memory_cap_bytes: memory_cap,
        },
        machine: MachineInfo {
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            load_average,
        },
        settings: SettingsInfo {
            threads: settings.threads,
            duration_per_run_s: settings.duration.as_secs_f64(),
            resource_input_bytes,
            response_input_bytes,
            response_input: if settings.response_is_default {
                "built-in list_issues result (30 issues, MCP text content)"
            } else {
                "--response-input"
            },
            backend: "in-process: answers search_repositories with a public repository",
        },
        first_decision,
        load,
        instantiation,
        latency,
        host_overhead,
        throughput,
        memory,
        targets,
    })
}

/// One cold first decision: compile with `compiler` (no cache), one ready instance, one
/// `label_resource`. Returns the time to the decision and, for tiered compilation, the time
/// until the optimised code took over (waited for, so that the next sample starts alone).
async fn cold_first_decision(
    settings: &Settings,
    backend: &Arc<dyn Backend>,
    compiler: GuardCompiler,
) -> anyhow::Result<(Duration, Option<Duration>)> {
    let options = GuardOptions::default()
        .with_name(settings.name.clone())
        .with_pool_size(1)
        .with_cache(CacheMode::Disabled)
        .with_compiler(compiler);
    let start = Instant::now();
    let module = GuardModule::from_bytes(&settings.name, &settings.bytes, &options)?;
    let guard = Guard::new(
        module.clone(),
        &settings.policy,
        options,
        Some(Arc::clone(backend)),
    )
    .await
    .context("the guard refused the policy")?;
    guard
        .label_resource(&settings.resource_input)
        .await
        .context("label_resource failed on --input")?;
    let decided = start.elapsed();
    let optimised = match module.tier() {
        CodeTier::Optimised => None,
        CodeTier::Baseline => {
            module.optimised().await?;
            Some(start.elapsed())
        }
    };
    Ok((decided, optimised))
}

async fn measure_first_decision(
    settings: &Settings,
    backend: &Arc<dyn Backend>,
) -> anyhow::Result<FirstDecisionReport> {
    // Both engines exist before the clock starts: their creation is a once-per-process
    // cost, measured by the new-process run.
    guardway_wasm::engine()?;
    guardway_wasm::baseline_engine()?;
    let mut tiered = Vec::with_capacity(settings.cold_samples);
    let mut optimised_after = Vec::with_capacity(settings.cold_samples);
    let mut cranelift = Vec::with_capacity(settings.cold_samples);
    for _ in 0..settings.cold_samples {
        let (decided, optimised) =
            cold_first_decision(settings, backend, GuardCompiler::Auto).await?;
        tiered.push(decided);
        optimised_after.extend(optimised);
        let (decided, _) = cold_first_decision(settings, backend, GuardCompiler::Cranelift).await?;
        cranelift.push(decided);
    }
    let cold_tiered = ColdRuns::of(GuardCompiler::Auto, &tiered);
    let cold_cranelift = ColdRuns::of(GuardCompiler::Cranelift, &cranelift);
    let cold_tiered_speedup = if cold_tiered.p50_ms > 0.0 {
        round3(cold_cranelift.p50_ms / cold_tiered.p50_ms)
    } else {
        0.0
    };
    let warm_disk_new_process = if settings.processes > 0 {
        Some(measure_new_processes(settings)?)
    } else {
        None
    };
    let memory_warm_new_guard = measure_memory_warm_guard(settings, backend).await?;
    Ok(FirstDecisionReport {
        cold_method: "no cache: GuardModule::from_bytes + Guard::new (one instance + label_agent) + one label_resource, engines already created",
        cold_tiered,
        cold_cranelift,
        cold_tiered_speedup,
        tiered_optimised_after_ms: round3(Summary::of(&optimised_after).p50_us / 1e3),
        warm_disk_new_process,
        memory_warm_new_guard,
        memory_warm_method: "GuardModule::from_file (module in an in-memory cache, file hash remembered) + Guard::new (one instance + label_agent)",
    })
}

/// Starts `guardway guard call … --call label_resource --wasm-cache-dir DIR` again and
/// again with the optimised artifact already on disk, and times each whole process, from
/// spawn to exit.
fn measure_new_processes(settings: &Settings) -> anyhow::Result<ProcessRuns> {
    let dir = tempfile::tempdir().context("cannot create a temporary cache directory")?;
    let cache = Arc::new(CompilationCache::new(CacheConfig::with_disk_dir(
        dir.path(),
    )));
    let options = GuardOptions::default()
        .with_cache(CacheMode::Injected(Arc::clone(&cache)))
        .with_compiler(GuardCompiler::Cranelift);
    GuardModule::from_bytes(&settings.name, &settings.bytes, &options)?;
    if cache.disk_dir().is_none() || cache.stats().disk_writes != 1 {
        bail!(
            "cannot fill the temporary disk cache {}",
            dir.path().display()
        );
    }
    let exe = std::env::current_exe().context("cannot find the guardway executable")?;
    let policy = serde_json::to_string(&settings.policy)?;
    let input = serde_json::to_string(&settings.resource_input)?;
    let backend = serde_json::to_string(&json!({
        "search_repositories": CannedBackend::answer(&settings.resource_input.tool_args),
    }))?;
    let args = |cache_dir: &Path| -> Vec<String> {
        vec![
            "guard".into(),
            "call".into(),
            settings.file.display().to_string(),
            "--policy".into(),
            policy.clone(),
            "--call".into(),
            "label_resource".into(),
            "--input".into(),
            input.clone(),
            "--backend".into(),
            backend.clone(),
            "--wasm-cache-dir".into(),
            cache_dir.display().to_string(),
        ]
    };
    let run = || -> anyhow::Result<Duration> {
        let start = Instant::now();
        let output = Command::new(&exe)
            .args(args(dir.path()))
            .env_remove("RUST_LOG")
            .env_remove(guardway_wasm::GUARD_COMPILER_ENV)
            .stdin(Stdio::null())
            .output()
            .context("cannot start guardway guard call")?;
        let took = start.elapsed();
        if !output.status.success() {
            bail!(
                "guardway guard call failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(took)
    };
    // The first run brings the executable and the artifact into the page cache.
    run()?;
    let mut samples = Vec::with_capacity(settings.processes);
    for _ in 0..settings.processes {
        samples.push(run()?);
    }
    if cache.stats().disk_writes != 1 || guardway_wasm::disk_usage(dir.path())?.artifacts() != 1 {
        bail!("the new processes compiled the guard instead of loading it from disk");
    }
    let summary = Summary::of(&samples);
    Ok(ProcessRuns {
        command: format!(
            "{} guard call GUARD --call label_resource --wasm-cache-dir DIR (artifact on disk)",
            exe.display()
        ),
        processes: summary.samples,
        p50_ms: round3(summary.p50_us / 1e3),
        mean_ms: round3(summary.mean_us / 1e3),
        min_ms: round3(summary.min_us / 1e3),
        max_ms: round3(summary.max_us / 1e3),
    })
}

/// A new guard of a module the memory cache holds, loaded from its file as the gateway
/// would: no compilation, no hashing (the file's hash is remembered), one ready instance.
async fn measure_memory_warm_guard(
    settings: &Settings,
    backend: &Arc<dyn Backend>,
) -> anyhow::Result<Summary> {
    let cache = Arc::new(CompilationCache::in_memory(DEFAULT_MEMORY_MAX_BYTES));
    let options = GuardOptions::default()
        .with_name(settings.name.clone())
        .with_pool_size(1)
        .with_cache(CacheMode::Injected(Arc::clone(&cache)))
        .with_compiler(GuardCompiler::Cranelift);
    GuardModule::from_file(&settings.file, &options)?;
    sample_calls(settings.duration / 2, || async {
        let module = GuardModule::from_file(&settings.file, &options)?;
        Guard::new(
            module,
            &settings.policy,
            options.clone(),
            Some(Arc::clone(backend)),
        )
        .await
        .map(|_| ())
        .context("the guard refused the policy")
    })
    .await
}

fn measure_load(settings: &Settings) -> anyhow::Result<(LoadReport, GuardModule)> {
    let cold_options = settings.options(1).with_cache(CacheMode::Disabled);
    let start = Instant::now();
    GuardModule::from_bytes(&settings.name, &settings.bytes, &cold_options)?;
    let cold = start.elapsed();

    let cache = Arc::new(CompilationCache::in_memory(DEFAULT_MEMORY_MAX_BYTES));
    let cached_options = settings
        .options(1)
        .with_cache(CacheMode::Injected(Arc::clone(&cache)));
    // The first load through the cache compiles and fills it; with `auto` the optimised
    // code is then compiled too, and measured.
    let module = GuardModule::from_bytes(&settings.name, &settings.bytes, &cached_options)?;
    if settings.compiler == GuardCompiler::Auto {
        module.tier_up()?;
    }
    let mut samples = Vec::with_capacity(CACHED_LOADS);
    for _ in 0..CACHED_LOADS {
        let start = Instant::now();
        let loaded = GuardModule::from_bytes(&settings.name, &settings.bytes, &cached_options)?;
        samples.push(start.elapsed());
        drop(loaded);
    }
    let stats = cache.stats();
    let cached = Summary::of(&samples);
    let cold_ms = cold.as_secs_f64() * 1e3;
    let cold_over_cached = if cached.p50_us > 0.0 {
        round3(cold_ms * 1e3 / cached.p50_us)
    } else {
        0.0
    };
    Ok((
        LoadReport {
            cold_ms: round3(cold_ms),
            cached,
            cache: "in-memory CompilationCache (injected), already holding the module",
            cache_memory_hits: stats.memory_hits,
            cache_compilations: stats.compilations,
            cold_over_cached,
        },
        module,
    ))
}

async fn measure_instances(
    settings: &Settings,
    module: &GuardModule,
    backend: &Arc<dyn Backend>,
) -> anyhow::Result<(MemoryReport, InstantiationReport)> {
    let most = MEMORY_LEVELS[MEMORY_LEVELS.len() - 1];
    let baseline = rss_bytes();
    let mut guards = Vec::with_capacity(most);
    let mut creation = Vec::with_capacity(most);
    let mut levels = Vec::new();
    while guards.len() < most {
        let start = Instant::now();
        let guard = Guard::new(
            module.clone(),
            &settings.policy,
            settings.options(1),
            Some(Arc::clone(backend)),
        )
        .await
        .context("the guard refused the policy")?;
        creation.push(start.elapsed());
        // One call, so the instance holds its buffers and memoised facts as in service.
        guard
            .label_resource(&settings.resource_input)
            .await
            .context("label_resource failed on --input")?;
        guards.push(guard);
        if MEMORY_LEVELS.contains(&guards.len()) {
            levels.push(MemoryLevel {
                instances: guards.len(),
                rss_bytes: rss_bytes(),
            });
        }
    }
    let live: u64 = guards.iter().map(|g| g.stats().live_instances).sum();
    if live != most as u64 {
        bail!("expected {most} live instances, the guards report {live}");
    }
    drop(guards);
    let per_extra = match (levels.first(), levels.last()) {
        (Some(first), Some(last)) if last.instances > first.instances => {
            match (first.rss_bytes, last.rss_bytes) {
                (Some(a), Some(b)) => {
                    Some(b.saturating_sub(a) / (last.instances - first.instances) as u64)
                }
                _ => None,
            }
        }
        _ => None,
    };
    let memory = MemoryReport {
        method: "N Guards built from one GuardModule, each holding one idle instance after one label_resource call",
        baseline_rss_bytes: baseline,
        levels,
        per_extra_instance_bytes: per_extra,
        memory_cap_bytes: settings.options(1).memory_limit,
    };
    let instantiation = InstantiationReport {
        method: "Guard::new from the loaded module: one instance + label_agent",
        first_guard_us: round3(creation[0].as_secs_f64() * 1e6),
        extra_instance: Summary::of(&creation[1..]),
    };
    Ok((memory, instantiation))
}

async fn measure_latency(settings: &Settings, guard: &Guard) -> anyhow::Result<LatencyReport> {
    let policy_bytes = serde_json::to_vec(&settings.policy)?;
    let agent = sample_calls(settings.duration, || async {
        guard
            .call(GuardExport::LabelAgent, &policy_bytes)
            .await
            .map(|_| ())
            .context("label_agent failed")
    })
    .await?;
    let resource = sample_calls(settings.duration, || async {
        guard
            .label_resource(&settings.resource_input)
            .await
            .map(|_| ())
            .context("label_resource failed on --input")
    })
    .await?;
    let response = sample_calls(settings.duration, || async {
        guard
            .label_response(&settings.response_input)
            .await
            .map(|_| ())
            .context("label_response failed on the response input")
    })
    .await?;
    Ok(LatencyReport {
        label_agent: CallLatency {
            what: "Guard::call(label_agent): a one-off instance + label_agent, as for a policy other than the guard's own",
            input_bytes: policy_bytes.len(),
            summary: agent,
        },
        label_resource: CallLatency {
            what: "Guard::label_resource: encode, call on a pooled instance, parse the labels",
            input_bytes: serde_json::to_vec(&settings.resource_input)?.len(),
            summary: resource,
        },
        label_response: CallLatency {
            what: "Guard::label_response: encode, call on a pooled instance, parse the labels",
            input_bytes: serde_json::to_vec(&settings.response_input)?.len(),
            summary: response,
        },
    })
}

/// Runs `call` for `duration` (at least [`MIN_SAMPLES`], at most [`MAX_SAMPLES`] times) and
/// summarises the per-call times. One warm-up call is not recorded.
async fn sample_calls<F, Fut>(duration: Duration, mut call: F) -> anyhow::Result<Summary>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    call().await?;
    let mut samples = Vec::new();
    let started = Instant::now();
    while samples.len() < MAX_SAMPLES
        && (samples.len() < MIN_SAMPLES || started.elapsed() < duration)
    {
        let start = Instant::now();
        call().await?;
        samples.push(start.elapsed());
    }
    Ok(Summary::of(&samples))
}

async fn measure_host_overhead(duration: Duration) -> anyhow::Result<HostOverheadReport> {
    let bytes = wat::parse_str(NOOP_GUARD_WAT).context("the built-in no-op guard is invalid")?;
    let options = GuardOptions::default()
        .with_name("noop")
        .with_pool_size(1)
        .with_cache(CacheMode::Disabled);
    let module = GuardModule::from_bytes("noop", &bytes, &options)?;
    let policy = json!({"allow-only": {"repos": "public", "min-integrity": "none"}});
    let instantiation = sample_calls(duration / 2, || async {
        Guard::new(module.clone(), &policy, options.clone(), None)
            .await
            .map(|_| ())
            .context("the no-op guard failed")
    })
    .await?;
    let guard = Guard::new(module.clone(), &policy, options.clone(), None).await?;
    let mut input = serde_json::to_vec(&json!({"tool_name": "issue_read", "tool_args": {
        "owner": "octo-org", "repo": "api", "issue_number": 42, "padding": ""}}))?;
    // Pad the JSON string to exactly the measured size.
    let pad = OVERHEAD_INPUT_BYTES.saturating_sub(input.len());
    let insert_at = input.len() - 3;
    input.splice(insert_at..insert_at, std::iter::repeat_n(b'x', pad));
    let call = sample_calls(duration, || async {
        guard
            .call(GuardExport::LabelResource, &input)
            .await
            .map(|_| ())
            .context("the no-op guard failed")
    })
    .await?;
    Ok(HostOverheadReport {
        method: "built-in no-op guard (answers a constant, reads nothing): host cost of one call",
        input_bytes: input.len(),
        call,
        instantiation,
    })
}

async fn measure_throughput(
    settings: &Settings,
    module: &GuardModule,
    backend: &Arc<dyn Backend>,
) -> anyhow::Result<ThroughputReport> {
    let pool_size = settings.threads;
    let guard = Guard::new(
        module.clone(),
        &settings.policy,
        settings.options(pool_size),
        Some(Arc::clone(backend)),
    )
    .await
    .context("the guard refused the policy")?;
    let warm_up = (settings.duration / 5).min(Duration::from_millis(200));
    let mut levels: Vec<ThroughputLevel> = Vec::new();
    for threads in 1..=settings.threads {
        let guard = guard.clone();
        let input = settings.resource_input.clone();
        let duration = settings.duration;
        // Plain threads with one single-threaded runtime each: exactly `threads` calls in flight.
        let results = tokio::task::spawn_blocking(move || {
            run_threads(&guard, &input, threads, warm_up, duration)
        })
        .await
        .context("the throughput run panicked")??;
        let calls: u64 = results.iter().map(|(c, _)| c).sum();
        let calls_per_s: f64 = results
            .iter()
            .map(|(c, secs)| if *secs > 0.0 { *c as f64 / secs } else { 0.0 })
            .sum();
        let seconds = results.iter().map(|(_, s)| *s).fold(0.0, f64::max);
        let base = levels.first().map_or(calls_per_s, |l| l.calls_per_s);
        levels.push(ThroughputLevel {
            threads,
            calls,
            seconds: round3(seconds),
            calls_per_s: round3(calls_per_s),
            speedup: if base > 0.0 {
                round3(calls_per_s / base)
            } else {
                0.0
            },
        });
    }
    Ok(ThroughputReport {
        function: "label_resource",
        pool_size,
        levels,
    })
}

/// Runs `threads` threads calling `label_resource` in a loop; returns (calls, seconds) of
/// each thread's measured window (after `warm_up`).
fn run_threads(
    guard: &Guard,
    input: &LabelResourceInput,
    threads: usize,
    warm_up: Duration,
    duration: Duration,
) -> anyhow::Result<Vec<(u64, f64)>> {
    let barrier = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let barrier = &barrier;
                scope.spawn(move || -> anyhow::Result<(u64, f64)> {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .context("cannot start a runtime for a throughput thread")?;
                    rt.block_on(async {
                        barrier.wait();
                        let warm_end = Instant::now() + warm_up;
                        while Instant::now() < warm_end {
                            guard.label_resource(input).await?;
                        }
                        let start = Instant::now();
                        let mut calls = 0u64;
                        let mut now = start;
                        while now - start < duration {
                            guard.label_resource(input).await?;
                            calls += 1;
                            now = Instant::now();
                        }
                        Ok((calls, (now - start).as_secs_f64()))
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(result) => result,
                Err(_) => bail!("a throughput thread panicked"),
            })
            .collect()
    })
}

fn targets(
    first: &FirstDecisionReport,
    instantiation: &InstantiationReport,
    overhead: &HostOverheadReport,
    throughput: &ThroughputReport,
    memory: &MemoryReport,
) -> Vec<TargetReport> {
    let new_process = first.warm_disk_new_process.as_ref().map(|p| p.p50_ms);
    let first_decision = [
        TargetReport {
            name: "cold_first_decision_tiered_speedup",
            target: ">= 3 (Cranelift-only p50 / tiered p50)".to_owned(),
            measured: Some(first.cold_tiered_speedup),
            unit: "x",
            met: Some(first.cold_tiered_speedup >= 3.0),
        },
        TargetReport {
            name: "warm_disk_new_process_first_decision_p50_ms",
            target: "< 5 (whole process, artifact on disk)".to_owned(),
            measured: new_process,
            unit: "ms",
            met: new_process.map(|ms| ms < 5.0),
        },
        TargetReport {
            name: "memory_warm_new_guard_p50_us",
            target: "< 100 (from_file from the memory cache + Guard::new)".to_owned(),
            measured: Some(first.memory_warm_new_guard.p50_us),
            unit: "us",
            met: Some(first.memory_warm_new_guard.p50_us < 100.0),
        },
    ];
    let speedup = throughput
        .levels
        .iter()
        .find(|l| l.threads == 2)
        .map(|l| l.speedup);
    let cap_tenth = memory.memory_cap_bytes as f64 / 10.0;
    let per_instance = memory.per_extra_instance_bytes.map(|b| b as f64);
    first_decision
        .into_iter()
        .chain([
            TargetReport {
                name: "throughput_speedup_2_threads",
                target: ">= 1.8".to_owned(),
                measured: speedup,
                unit: "x",
                met: speedup.map(|s| s >= 1.8),
            },
            TargetReport {
                name: "warm_instantiation_p50_us",
                target: "<= 50 (ready instance of this guard, label_agent included)".to_owned(),
                measured: Some(instantiation.extra_instance.p50_us),
                unit: "us",
                met: Some(instantiation.extra_instance.p50_us <= 50.0),
            },
            TargetReport {
                name: "warm_instantiation_noop_p50_us",
                target: "<= 50 (instance + trivial label_agent)".to_owned(),
                measured: Some(overhead.instantiation.p50_us),
                unit: "us",
                met: Some(overhead.instantiation.p50_us <= 50.0),
            },
            TargetReport {
                name: "host_overhead_per_call_1kib_p50_us",
                target: "<= 2".to_owned(),
                measured: Some(overhead.call.p50_us),
                unit: "us",
                met: Some(overhead.call.p50_us <= 2.0),
            },
            TargetReport {
                name: "rss_per_extra_idle_instance_bytes",
                target: format!("<= {} (a tenth of the memory cap)", cap_tenth as u64),
                measured: per_instance,
                unit: "bytes",
                met: per_instance.map(|b| b <= cap_tenth),
            },
        ])
        .collect()
}

// ---------------------------------------------------------------------------------------
// Inputs, the canned backend, the no-op guard, /proc readers
// ---------------------------------------------------------------------------------------

/// A `list_issues` result of [`DEFAULT_LIST_ITEMS`] GitHub-shaped issues of the repository
/// named by `tool_args` (`owner`/`repo`, else `octo-org/api`), inside MCP text content.
fn default_response_input(tool_args: &Value) -> LabelResponseInput {
    let owner = tool_args
        .get("owner")
        .and_then(Value::as_str)
        .unwrap_or("octo-org");
    let repo = tool_args
        .get("repo")
        .and_then(Value::as_str)
        .unwrap_or("api");
    let associations = [
        "OWNER",
        "MEMBER",
        "CONTRIBUTOR",
        "NONE",
        "FIRST_TIME_CONTRIBUTOR",
    ];
    let issues: Vec<Value> = (1..=DEFAULT_LIST_ITEMS)
        .map(|n| {
            let login = format!("user{}", n % 7);
            json!({
                "id": 2_000_000_000u64 + n as u64,
                "node_id": format!("I_kwDOAbCdEf{n:06}"),
                "url": format!("https://api.github.com/repos/{owner}/{repo}/issues/{n}"),
                "repository_url": format!("https://api.github.com/repos/{owner}/{repo}"),
                "html_url": format!("https://github.com/{owner}/{repo}/issues/{n}"),
                "number": n,
                "state": if n % 4 == 0 { "closed" } else { "open" },
                "title": format!("Request handler returns 500 when the payload has field {n}"),
                "body": format!("Steps to reproduce:\n1. POST /v1/items with field {n}\n2. Observe the 500.\n\nExpected: 400 with a validation message. Seen on version 2.{n}.0 and later; the stack trace points at the decoder."),
                "user": {"login": login, "id": 1000 + n % 7, "type": "User",
                         "html_url": format!("https://github.com/{login}")},
                "labels": [{"name": "bug", "color": "d73a4a"}, {"name": "triage", "color": "ededed"}],
                "assignees": [],
                "comments": n % 5,
                "created_at": "2026-10-01T12:00:00Z",
                "updated_at": "2026-11-20T08:30:00Z",
                "closed_at": null,
                "author_association": associations[n % associations.len()],
                "reactions": {"total_count": n % 3, "+1": n % 3},
            })
        })
        .collect();
    let text = Value::Array(issues).to_string();
    LabelResponseInput {
        tool_name: "list_issues".to_owned(),
        tool_result: json!({"content": [{"type": "text", "text": text}], "isError": false}),
        tool_args: Some(
            json!({"owner": owner, "repo": repo, "state": "OPEN", "perPage": DEFAULT_LIST_ITEMS}),
        ),
        capabilities: None,
    }
}

/// What a guard's `call_backend` reaches during the bench: repository look-ups
/// (`search_repositories` `repo:o/r`) answer a public repository; other tools are refused.
struct CannedBackend;

impl Backend for CannedBackend {
    fn call_tool<'a>(
        &'a self,
        tool: &'a str,
        args: Value,
    ) -> BoxFuture<'a, Result<Value, BackendCallError>> {
        Box::pin(async move {
            if tool != "search_repositories" {
                return Err(BackendCallError::ToolNotAllowed {
                    tool: tool.to_owned(),
                });
            }
            let query = args.get("query").and_then(Value::as_str).unwrap_or("");
            Ok(repository_page(query.trim_start_matches("repo:")))
        })
    }
}

impl CannedBackend {
    /// The answer to the look-up of the repository named by `tool_args` (`owner`/`repo`),
    /// for `guard call --backend`, which answers one result per tool.
    fn answer(tool_args: &Value) -> Value {
        let owner = tool_args
            .get("owner")
            .and_then(Value::as_str)
            .unwrap_or("octo-org");
        let repo = tool_args
            .get("repo")
            .and_then(Value::as_str)
            .unwrap_or("api");
        repository_page(&format!("{owner}/{repo}"))
    }
}

/// A `search_repositories` result naming one public repository.
fn repository_page(full_name: &str) -> Value {
    let page = json!({"total_count": 1, "incomplete_results": false,
        "items": [{"full_name": full_name, "private": false, "visibility": "public"}]});
    json!({"content": [{"type": "text", "text": page.to_string()}], "isError": false})
}

/// A guard that reads nothing and answers constants, with a bump allocator: what remains of
/// a call's time is the host's.
const NOOP_GUARD_WAT: &str = r#"
(module
  (memory (export "memory") 1)
  (global $top (mut i32) (i32.const 4096))
  (data (i32.const 0) "{\"agent\":{\"secrecy\":[],\"integrity\":[]},\"difc_mode\":\"filter\"}")
  (data (i32.const 1024) "{\"resource\":{\"description\":\"noop\",\"secrecy\":[],\"integrity\":[]},\"operation\":\"read\"}")
  (func (export "alloc") (param $size i32) (result i32)
    (local $ptr i32) (local $end i32) (local $have i32)
    (local.set $ptr (global.get $top))
    (local.set $end (i32.and (i32.add (i32.add (local.get $ptr) (local.get $size)) (i32.const 7))
                             (i32.const -8)))
    (local.set $have (i32.mul (memory.size) (i32.const 65536)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.eq (memory.grow (i32.shr_u (i32.add (i32.sub (local.get $end) (local.get $have))
                                                     (i32.const 65535))
                                            (i32.const 16)))
                    (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $top (local.get $end))
    (local.get $ptr))
  (func (export "dealloc") (param i32 i32))
  (func $answer (param $out i32) (param $size i32) (param $src i32) (param $len i32) (result i32)
    (if (i32.lt_u (local.get $size) (local.get $len)) (then (return (i32.const -2))))
    (memory.copy (local.get $out) (local.get $src) (local.get $len))
    (local.get $len))
  (func (export "label_agent") (param i32 i32 i32 i32) (result i32)
    (call $answer (local.get 2) (local.get 3) (i32.const 0) (i32.const 60)))
  (func (export "label_resource") (param i32 i32 i32 i32) (result i32)
    (call $answer (local.get 2) (local.get 3) (i32.const 1024) (i32.const 82)))
  (func (export "label_response") (param i32 i32 i32 i32) (result i32)
    (i32.const 0))
)
"#;

/// VmRSS of this process, from `/proc/self/status` (None where unavailable).
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

// ---------------------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------------------

fn print_tables(r: &Report) {
    outln!(
        "guard {} ({}, {} bytes); {} cores{}",
        r.guard.name,
        r.guard.file,
        r.guard.size_bytes,
        r.machine.cores,
        r.machine
            .load_average
            .map(|l| format!(", load average {:.2} {:.2} {:.2}", l[0], l[1], l[2]))
            .unwrap_or_default()
    );
    outln!();
    let first = &r.first_decision;
    outln!("first decision (module + ready instance + one label_resource)");
    for cold in [&first.cold_tiered, &first.cold_cranelift] {
        outln!(
            "  cold, {:<9} p50 / min / max  {:>9.3} ms / {:.3} ms / {:.3} ms  ({} samples)",
            cold.compiler,
            cold.p50_ms,
            cold.min_ms,
            cold.max_ms,
            cold.samples
        );
    }
    outln!(
        "  tiered speed-up                 {:>12.2}x  (optimised code took over after {:.1} ms)",
        first.cold_tiered_speedup,
        first.tiered_optimised_after_ms
    );
    match &first.warm_disk_new_process {
        Some(p) => outln!(
            "  new process, warm disk p50/min  {:>9.3} ms / {:.3} ms  ({} processes)",
            p.p50_ms,
            p.min_ms,
            p.processes
        ),
        None => outln!("  new process, warm disk         skipped (--processes 0)"),
    }
    outln!(
        "  new guard, memory-warm p50/p99  {:>9.3} us / {:.3} us",
        first.memory_warm_new_guard.p50_us,
        first.memory_warm_new_guard.p99_us
    );
    outln!();
    outln!("module load");
    outln!(
        "  cold (compile, no cache)        {:>12.3} ms",
        r.load.cold_ms
    );
    outln!(
        "  cached (memory hit) p50 / p99   {:>12.3} us / {:.3} us  ({:.0}x faster than cold)",
        r.load.cached.p50_us,
        r.load.cached.p99_us,
        r.load.cold_over_cached
    );
    outln!();
    outln!("instantiation (instance + label_agent)");
    outln!(
        "  first Guard::new                {:>12.3} us",
        r.instantiation.first_guard_us
    );
    summary_row("  extra instance", &r.instantiation.extra_instance);
    summary_row("  no-op guard instance", &r.host_overhead.instantiation);
    outln!();
    outln!("per-call latency                       samples      mean       p50       p99   (us)");
    for (name, call) in [
        ("label_agent", &r.latency.label_agent),
        ("label_resource", &r.latency.label_resource),
        ("label_response", &r.latency.label_response),
    ] {
        summary_row(
            &format!("  {name} ({} B in)", call.input_bytes),
            &call.summary,
        );
    }
    summary_row(
        &format!("  host overhead ({} B in)", r.host_overhead.input_bytes),
        &r.host_overhead.call,
    );
    outln!();
    outln!(
        "throughput of {} (one Guard, pool {})",
        r.throughput.function,
        r.throughput.pool_size
    );
    outln!("  threads       calls     calls/s   speed-up");
    for level in &r.throughput.levels {
        outln!(
            "  {:>7} {:>11} {:>11.0} {:>9.2}x",
            level.threads,
            level.calls,
            level.calls_per_s,
            level.speedup
        );
    }
    outln!();
    outln!("resident memory ({})", r.memory.method);
    outln!(
        "  baseline                        {:>12}",
        bytes_cell(r.memory.baseline_rss_bytes)
    );
    for level in &r.memory.levels {
        outln!(
            "  {:>3} instance(s)                 {:>12}",
            level.instances,
            bytes_cell(level.rss_bytes)
        );
    }
    outln!(
        "  per extra instance              {:>12}   (memory cap {})",
        bytes_cell(r.memory.per_extra_instance_bytes),
        bytes_cell(Some(r.memory.memory_cap_bytes as u64))
    );
    outln!();
    outln!("targets");
    for t in &r.targets {
        outln!(
            "  {:<36} {:>14} {:<5} target {:<50} {}",
            t.name,
            t.measured
                .map(|m| format!("{m:.3}"))
                .unwrap_or("n/a".into()),
            t.unit,
            t.target,
            match t.met {
                Some(true) => "met",
                Some(false) => "missed",
                None => "n/a",
            }
        );
    }
}

fn summary_row(label: &str, s: &Summary) {
    outln!(
        "{label:<38} {:>7} {:>9.2} {:>9.2} {:>9.2}",
        s.samples,
        s.mean_us,
        s.p50_us,
        s.p99_us
    );
}

fn bytes_cell(bytes: Option<u64>) -> String {
    match bytes {
        Some(b) => format!("{:.2} MiB", b as f64 / (1024.0 * 1024.0)),
        None => "n/a".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&sorted, 50.0), 50.0);
        assert_eq!(nearest_rank(&sorted, 99.0), 99.0);
        assert_eq!(nearest_rank(&[7.0], 99.0), 7.0);
        assert_eq!(nearest_rank(&[1.0, 2.0, 3.0], 50.0), 2.0);
        assert_eq!(nearest_rank(&[], 50.0), 0.0);
    }

    #[test]
    fn default_response_is_a_thirty_item_list_in_text_content() {
        let input = default_response_input(&json!({"owner": "acme", "repo": "web"}));
        let text = input.tool_result["content"][0]["text"].as_str().unwrap();
        let items: Vec<Value> = serde_json::from_str(text).unwrap();
        assert_eq!(items.len(), DEFAULT_LIST_ITEMS);
        assert_eq!(
            items[0]["repository_url"],
            "https://api.github.com/repos/acme/web"
        );
    }

    #[test]
    fn noop_guard_is_valid_wasm() {
        let bytes = wat::parse_str(NOOP_GUARD_WAT).unwrap();
        assert_eq!(&bytes[..4], b"\0asm");
    }
}
