//! `guardway guard check|call|test|bench`: inspect a guard file, call it once, run its case
//! files, or measure it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use guardway_difc::{LabelResourceInput, LabelResponseInput, prepare_label_agent_policy};
use guardway_wasm::{Guard, GuardModule, GuardOptions};
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
    },
    /// Call one label function of a guard and print its output JSON.
    Call(CallArgs),
    /// Run a guard's case files (expected labels for given inputs) and report the differences.
    Test(test::TestArgs),
    /// Measure a guard: load (cold and cached), instantiation, per-call latency, throughput, memory.
    Bench(bench::BenchArgs),
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
    /// Also keep the compiled guard in this disk cache directory (default: memory only),
    /// as `guard test` and `serve` do.
    #[arg(long)]
    wasm_cache_dir: Option<PathBuf>,
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
        GuardCommand::Check { file } => check(&file),
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

/// Makes the process-wide compilation cache keep compiled guards in `dir` as
/// well as in memory (`--wasm-cache-dir` of `guard call` and `guard test`).
pub(crate) fn use_disk_cache(dir: &Path) {
    // Only fails when the process-wide cache was configured before, which
    // nothing in these commands does.
    let _ = guardway_wasm::CompilationCache::configure_global(
        guardway_wasm::CacheConfig::with_disk_dir(dir),
    );
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn check(file: &Path) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    println!("file:      {} ({} bytes)", file.display(), bytes.len());
    let engine = guardway_wasm::engine()?;
    match wasmtime::Module::validate(engine, &bytes) {
        Ok(()) => {
            if let Ok(module) = wasmtime::Module::new(engine, &bytes) {
                print_module(&module);
            }
        }
        Err(err) => println!("module:    not a valid WebAssembly module ({err:#})"),
    }
    let options = GuardOptions::default();
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "guard".to_owned());
    match GuardModule::from_bytes(&name, &bytes, &options) {
        Ok(module) => {
            println!(
                "allocator: {}",
                if module.has_allocator() {
                    "alloc/dealloc exported (buffers from the guard's allocator)"
                } else {
                    "missing (the host places buffers at the end of memory)"
                }
            );
            println!(
                "limits:    memory cap {} MiB per instance, {} ms per call, {} backend calls per call",
                options.memory_limit / guardway_wasm::MIB,
                options.call_timeout.as_millis(),
                options.max_backend_calls
            );
            println!("valid:     yes");
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            println!("valid:     no: {err}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn print_module(module: &wasmtime::Module) {
    println!("exports:");
    for export in module.exports() {
        println!("  {:<16} {}", export.name(), describe(&export.ty()));
    }
    println!("imports:");
    for import in module.imports() {
        println!(
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
    if let Some(dir) = &args.wasm_cache_dir {
        use_disk_cache(dir);
    }
    let mut options = GuardOptions::default()
        .with_call_timeout(std::time::Duration::from_millis(args.timeout_ms));
    if args.trace {
        options = options.with_observer(Arc::new(harness::TraceRecorder::new(true)));
    }
    let module = GuardModule::from_file(&args.file, &options)?;
    let rt = runtime()?;
    let output = rt.block_on(async move {
        let guard = Guard::new(module, &policy, options, backend).await?;
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
    println!("{}", serde_json::to_string_pretty(&output)?);
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
