//! `guardway guard check|call|test|bench`: inspect a guard file, call it once, run its case
//! files, or measure it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use guardway_difc::{LabelResourceInput, LabelResponseInput, prepare_label_agent_policy};
use guardway_wasm::{
    CacheConfig, CodeTier, CompilationCache, GUARD_COMPILER_ENV, Guard, GuardCompiler, GuardModule,
    GuardOptions,
};
use serde_json::Value;
use wasmtime::ExternType;

mod bench;
mod harness;
mod test;

/// `guardway guard …`
#[derive(Debug, clap::Subcommand)]
pub enum GuardCommand {
    /// Print a guard's exports, imports, allocator and memory limits, and whether it is a valid guard (exit 0/1).
    Check {
        /// The guard's `.wasm` file.
        file: PathBuf,
        #[command(flatten)]
        compiler: CompilerArgs,
    },
    /// Call one label function of a guard and print its output JSON.
    Call(CallArgs),
    /// Run a guard's case files (expected labels for given inputs) and report the differences.
    Test(test::TestArgs),
    /// Measure a guard: load (cold and cached), instantiation, per-call latency, throughput, memory.
    Bench(bench::BenchArgs),
}

/// `--guard-compiler`, shared by the subcommands that load a guard.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct CompilerArgs {
    /// Which compiler turns the guard into machine code: `auto` (Winch first, then
    /// Cranelift in the background: tiered), `cranelift` or `winch`.
    #[arg(
        long = "guard-compiler",
        value_name = "auto|cranelift|winch",
        env = GUARD_COMPILER_ENV,
        default_value = "auto",
        value_parser = parse_compiler
    )]
    pub compiler: GuardCompiler,
}

pub(crate) fn parse_compiler(text: &str) -> Result<GuardCompiler, String> {
    text.parse()
        .map_err(|e: guardway_wasm::UnknownName| e.to_string())
}

/// Arguments of `guardway guard call`.
#[derive(Debug, clap::Args)]
pub struct CallArgs {
    /// The guard's `.wasm` file.
    file: PathBuf,
    /// The session policy given to `label_agent`: JSON, or `@file`.
    #[arg(long)]
    policy: String,
    /// Which function to call.
    #[arg(long, value_enum)]
    call: LabelCall,
    /// The call's input JSON (`{"tool_name", "tool_args"}` or `{"tool_name", "tool_result", …}`), or `@file`.
    /// Not used by `--call label_agent`, which labels the `--policy`.
    #[arg(long)]
    input: Option<String>,
    /// Canned backend for the guard's `call_backend`: a JSON object mapping a tool name to
    /// the result returned for it, or `@file`. Any other tool answers -1.
    #[arg(long)]
    backend: Option<String>,
    /// Print each `host_log` line and each `call_backend` (tool, arguments, answer size or
    /// error code) to stderr, in order.
    #[arg(long)]
    trace: bool,
    /// Time limit of one guard call, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Also keep the compiled guard in this disk cache directory, and load it from there
    /// when it is already compiled (default: compile in memory only).
    #[arg(long, value_name = "DIR")]
    wasm_cache_dir: Option<PathBuf>,
    #[command(flatten)]
    compiler: CompilerArgs,
}

/// The label function `guard call` runs after `label_agent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LabelCall {
    #[value(name = "label_agent", alias = "label-agent")]
    Agent,
    #[value(name = "label_resource", alias = "label-resource")]
    Resource,
    #[value(name = "label_response", alias = "label-response")]
    Response,
}

pub fn run(command: GuardCommand) -> anyhow::Result<ExitCode> {
    // One-shot commands create a few instances: no instance pool to set up. `bench`
    // measures the gateway's set-up, the pool included.
    if !matches!(command, GuardCommand::Bench(_)) {
        let _ = guardway_wasm::configure_instance_allocation(
            guardway_wasm::InstanceAllocation::OnDemand,
        );
    }
    // Every subcommand loads a guard: the engine's set-up overlaps with reading it.
    guardway_wasm::prepare_engine();
    // `guard test` and `guard call --trace` report the guard's own lines themselves.
    let traced = match &command {
        GuardCommand::Test(_) => true,
        GuardCommand::Call(args) => args.trace,
        _ => false,
    };
    crate::logging::init_stderr(if traced {
        "warn,guardway::guard=off"
    } else {
        "warn"
    });
    match command {
        GuardCommand::Check { file, compiler } => check(&file, compiler.compiler),
        GuardCommand::Call(args) => call(args),
        GuardCommand::Test(args) => test::run(args),
        GuardCommand::Bench(args) => bench::run(args),
    }
}

/// Reads `JSON` or `@file` into a JSON value; `what` names the flag in errors.
pub(crate) fn json_arg(text: &str, what: &str) -> anyhow::Result<Value> {
    let (source, content) = match text.strip_prefix('@') {
        Some(path) => (
            format!("{what} file {path}"),
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {what} file {path}"))?,
        ),
        None => (what.to_owned(), text.to_owned()),
    };
    serde_json::from_str(&content).with_context(|| format!("{source} is not valid JSON"))
}

/// Validates the policy as the gateway does before `label_agent`.
pub(crate) fn policy_arg(text: &str) -> anyhow::Result<Value> {
    let policy = json_arg(text, "--policy")?;
    prepare_label_agent_policy(policy).context("invalid --policy")
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Gives the process-wide compilation cache a disk directory, when one is asked for.
pub(crate) fn use_disk_cache(dir: Option<&Path>) {
    if let Some(dir) = dir {
        // Only fails when the process-wide cache was configured before, which nothing here does.
        let _ = CompilationCache::configure_global(CacheConfig::with_disk_dir(dir));
    }
}

/// Before a one-shot command exits: a guard still on baseline code is moved to optimised
/// code when a disk cache is in use, so that the next run finds the optimised artifact.
pub(crate) fn finish_tier_up(module: &GuardModule, disk_cache: bool) {
    if disk_cache
        && module.tier() == CodeTier::Baseline
        && let Err(error) = module.tier_up()
    {
        eprintln!("warning: {error}");
    }
}

fn check(file: &Path, compiler: GuardCompiler) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    outln!("file:      {} ({} bytes)", file.display(), bytes.len());
    let engine = guardway_wasm::engine()?;
    let options = GuardOptions::default()
        .with_compiler(compiler)
        .with_background_tier_up(false);
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "guard".to_owned());
    let loaded = GuardModule::from_bytes(&name, &bytes, &options);
    match wasmtime::Module::validate(engine, &bytes) {
        Ok(()) => match &loaded {
            Ok(guard) => print_module(&guard.module()),
            // Not a guard, but a module: its exports and imports say why.
            Err(_) => {
                if let Ok(module) = wasmtime::Module::new(engine, &bytes) {
                    print_module(&module);
                }
            }
        },
        Err(err) => outln!("module:    not a valid WebAssembly module ({err:#})"),
    }
    match loaded {
        Ok(module) => {
            outln!(
                "allocator: {}",
                if module.has_allocator() {
                    "alloc/dealloc exported (buffers from the guard's allocator)"
                } else {
                    "missing (the host places buffers at the end of memory)"
                }
            );
            outln!(
                "limits:    memory cap {} MiB per instance, {} ms per call, {} backend calls per call",
                options.memory_limit / guardway_wasm::MIB,
                options.call_timeout.as_millis(),
                options.max_backend_calls
            );
            outln!("compiler:  {} ({} code)", options.compiler, module.tier());
            outln!("valid:     yes");
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            outln!("valid:     no: {err}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn print_module(module: &wasmtime::Module) {
    outln!("exports:");
    for export in module.exports() {
        outln!("  {:<16} {}", export.name(), describe(&export.ty()));
    }
    outln!("imports:");
    for import in module.imports() {
        outln!(
            "  {:<40} {}",
            format!("{}.{}", import.module(), import.name()),
            describe(&import.ty())
        );
    }
}

fn describe(ty: &ExternType) -> String {
    match ty {
        ExternType::Func(f) => {
            let params: Vec<String> = f.params().map(|p| p.to_string()).collect();
            let results: Vec<String> = f.results().map(|r| r.to_string()).collect();
            format!("func ({}) -> ({})", params.join(", "), results.join(", "))
        }
        ExternType::Memory(m) => {
            let max = m
                .maximum()
                .map(|pages| format!("{} pages ({} KiB)", pages, pages * 64))
                .unwrap_or_else(|| "none".to_owned());
            format!(
                "memory min {} pages ({} KiB), max {max}",
                m.minimum(),
                m.minimum() * 64
            )
        }
        ExternType::Global(g) => format!("global {}", g.content()),
        ExternType::Table(t) => format!("table {}", t.element()),
        ExternType::Tag(_) => "tag".to_owned(),
    }
}

fn call(args: CallArgs) -> anyhow::Result<ExitCode> {
    let policy = policy_arg(&args.policy)?;
    let input = match &args.input {
        Some(input) => json_arg(input, "--input")?,
        None if args.call == LabelCall::Agent => Value::Null,
        None => bail!("--input is required for label_resource and label_response"),
    };
    let backend: Option<Arc<dyn guardway_wasm::Backend>> = match &args.backend {
        Some(text) => {
            let backend = harness::CannedBackend::from_value(json_arg(text, "--backend")?)
                .map_err(|reason| anyhow::anyhow!("--backend {reason}"))?;
            Some(Arc::new(backend))
        }
        None => None,
    };
    use_disk_cache(args.wasm_cache_dir.as_deref());
    let mut options = GuardOptions::default()
        .with_call_timeout(std::time::Duration::from_millis(args.timeout_ms))
        .with_compiler(args.compiler.compiler)
        .with_background_tier_up(false)
        .with_pool_size(1);
    if args.trace {
        options = options.with_observer(Arc::new(harness::TraceRecorder::new(true)));
    }
    let module = GuardModule::from_file(&args.file, &options)?;
    // One call: one thread is enough, and starts faster than a pool of workers.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let called = module.clone();
    let output = rt.block_on(async move {
        let guard = Guard::new(called, &policy, options, backend).await?;
        let value = match args.call {
            LabelCall::Agent => serde_json::to_value(agent_json(&guard))?,
            LabelCall::Resource => {
                let input: LabelResourceInput = serde_json::from_value(input)
                    .context("--input for label_resource needs {\"tool_name\", \"tool_args\"}")?;
                let bytes = serde_json::to_vec(&input)?;
                let raw = guard
                    .call(guardway_wasm::GuardExport::LabelResource, &bytes)
                    .await?;
                // Parse with the gateway's rules so a malformed answer is reported here too.
                guardway_difc::ResourceLabels::parse(&raw)
                    .context("the guard's label_resource output is not usable")?;
                raw_json(&raw)?
            }
            LabelCall::Response => {
                let input: LabelResponseInput = serde_json::from_value(input)
                    .context("--input for label_response needs {\"tool_name\", \"tool_result\"}")?;
                let bytes = serde_json::to_vec(&input)?;
                let raw = guard
                    .call(guardway_wasm::GuardExport::LabelResponse, &bytes)
                    .await?;
                guardway_difc::ResponseLabels::parse(&raw)
                    .context("the guard's label_response output is not usable")?;
                raw_json(&raw)?
            }
        };
        anyhow::Ok(value)
    })?;
    outln!("{}", serde_json::to_string_pretty(&output)?);
    finish_tier_up(&module, args.wasm_cache_dir.is_some());
    Ok(ExitCode::SUCCESS)
}

/// The labels `label_agent` gave, as JSON.
fn agent_json(guard: &Guard) -> Value {
    let labels = guard.agent_labels();
    serde_json::json!({
        "agent": {
            "secrecy": labels.secrecy.iter().collect::<Vec<_>>(),
            "integrity": labels.integrity.iter().collect::<Vec<_>>(),
        },
        "difc_mode": labels.difc_mode.to_string(),
        "normalized_policy": labels.normalized_policy,
    })
}

/// A guard's raw output as JSON (`null` for "no output").
fn raw_json(raw: &[u8]) -> anyhow::Result<Value> {
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    match serde_json::from_slice(raw) {
        Ok(value) => Ok(value),
        Err(err) => bail!("the guard's output is not JSON: {err}"),
    }
}
