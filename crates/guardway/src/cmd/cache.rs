//! `guardway cache stats|clear|warm`: inspect, empty and fill the guard compilation
//! cache directory; also how `serve` sets up the process-wide cache.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use guardway_wasm::{
    CacheConfig, CacheMode, CompilationCache, CpuBaseline, DEFAULT_DISK_MAX_BYTES,
    EngineFingerprint, GuardCompiler, GuardModule, GuardOptions,
};

#[derive(Debug, clap::Subcommand)]
pub enum CacheCommand {
    /// Show what the cache directory holds.
    Stats(DirArgs),
    /// Delete every compiled guard from the cache directory.
    Clear(DirArgs),
    /// Compile guards into the cache directory ahead of time.
    Warm(WarmArgs),
}

/// Which cache directory to use.
#[derive(Debug, clap::Args)]
pub struct DirArgs {
    /// Cache directory [default: $GUARDWAY_WASM_CACHE_DIR, else
    /// $MCP_GATEWAY_WASM_CACHE_DIR, else $XDG_CACHE_HOME/guardway/wasm or
    /// ~/.cache/guardway/wasm].
    #[arg(long, value_name = "DIR", visible_alias = "wasm-cache-dir")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct WarmArgs {
    /// Guard files, or directories searched for `*.wasm` files.
    #[arg(required = true, value_name = "FILE|DIR")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub dir: DirArgs,
    /// Bound of the cache directory in bytes (least recently used guards are
    /// deleted beyond it).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_DISK_MAX_BYTES)]
    pub max_bytes: u64,
    /// CPU features the compiled code may use: `native` (this CPU's), or an x86-64 level
    /// (`x86-64-v2`, `x86-64-v3`) so that artifacts made while building an image load on
    /// any machine of that level. A machine lacking a feature compiles the guard itself.
    #[arg(
        long,
        value_name = "native|x86-64-v2|x86-64-v3",
        default_value = "native",
        value_parser = parse_cpu_baseline
    )]
    pub cpu_baseline: CpuBaseline,
}

fn parse_cpu_baseline(text: &str) -> Result<CpuBaseline, String> {
    text.parse()
        .map_err(|e: guardway_wasm::UnknownName| e.to_string())
}

pub fn run(command: CacheCommand) -> anyhow::Result<ExitCode> {
    // These commands compile or fingerprint; they run no guard: no instance pool.
    let _ =
        guardway_wasm::configure_instance_allocation(guardway_wasm::InstanceAllocation::OnDemand);
    init_stderr_logging();
    match command {
        CacheCommand::Stats(args) => stats(&resolve_dir(&args)?),
        CacheCommand::Clear(args) => clear(&resolve_dir(&args)?),
        CacheCommand::Warm(args) => warm(&args),
    }
}

/// Configures the process-wide guard compilation cache of a serving command
/// (`serve`, `proxy`) before any guard is loaded and returns its disk
/// directory: `flag_dir` > `GUARDWAY_WASM_CACHE_DIR` >
/// `MCP_GATEWAY_WASM_CACHE_DIR` > `<parent of log_dir>/wazero-cache`; none
/// (memory only) with `no_disk`. `disk_max_bytes` bounds the directory.
pub fn configure_serving_cache(
    flag_dir: Option<&Path>,
    log_dir: &Path,
    no_disk: bool,
    disk_max_bytes: Option<u64>,
) -> Option<PathBuf> {
    let disk_dir = if no_disk {
        None
    } else {
        guardway_wasm::resolve_cache_dir_with(
            flag_dir,
            |name| std::env::var_os(name),
            log_dir.parent().map(|parent| parent.join("wazero-cache")),
        )
    };
    let defaults = CacheConfig::default();
    let config = CacheConfig {
        disk_dir: disk_dir.clone(),
        disk_max_bytes: disk_max_bytes.unwrap_or(defaults.disk_max_bytes),
        ..defaults
    };
    if CompilationCache::configure_global(config).is_err() {
        tracing::warn!("the WASM compilation cache was already configured");
    }
    disk_dir
}

/// Sets up the process-wide compilation cache from `serve`'s settings and
/// returns the mode guards should load with: `--no-wasm-cache` disables it;
/// otherwise the directory is `--wasm-cache-dir` > `GUARDWAY_WASM_CACHE_DIR` >
/// `MCP_GATEWAY_WASM_CACHE_DIR` > `default_dir`, bounded by
/// `--wasm-cache-max-bytes` (memory and disk). An unusable directory is a
/// warning, never an error: the cache then works in memory.
#[allow(dead_code)] // The entry point for `serve`.
pub fn configure_process_cache(
    flag_dir: Option<&Path>,
    no_cache: bool,
    max_bytes: Option<u64>,
    default_dir: Option<PathBuf>,
) -> CacheMode {
    if no_cache {
        return CacheMode::Disabled;
    }
    let config = process_cache_config(flag_dir, max_bytes, default_dir);
    if let Err(err) = CompilationCache::configure_global(config) {
        tracing::warn!("{err}; keeping its current configuration");
    }
    // Create it now, so that directory problems are reported at start-up.
    CompilationCache::global();
    CacheMode::Shared
}

/// The configuration [`configure_process_cache`] uses.
#[allow(dead_code)] // The entry point for `serve`.
pub fn process_cache_config(
    flag_dir: Option<&Path>,
    max_bytes: Option<u64>,
    default_dir: Option<PathBuf>,
) -> CacheConfig {
    let dir =
        guardway_wasm::resolve_cache_dir_with(flag_dir, |name| std::env::var_os(name), default_dir);
    let defaults = CacheConfig::default();
    CacheConfig {
        memory_max_bytes: max_bytes.unwrap_or(defaults.memory_max_bytes),
        disk_max_bytes: max_bytes.unwrap_or(defaults.disk_max_bytes),
        disk_dir: dir,
    }
}

fn resolve_dir(args: &DirArgs) -> anyhow::Result<PathBuf> {
    guardway_wasm::resolve_cache_dir(args.dir.as_deref())
        .context("no cache directory: pass --dir, set GUARDWAY_WASM_CACHE_DIR, or set HOME")
}

/// Warnings of the cache (unusable directory, damaged artifacts) go to
/// stderr; `RUST_LOG` can change the level.
fn init_stderr_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn current_fingerprint() -> anyhow::Result<EngineFingerprint> {
    let engine = guardway_wasm::engine().context("cannot create the WebAssembly engine")?;
    Ok(EngineFingerprint::of(engine))
}

fn stats(dir: &Path) -> anyhow::Result<ExitCode> {
    let current = current_fingerprint()?;
    outln!("directory: {}", dir.display());
    outln!("engine fingerprint: {current}");
    if !dir.exists() {
        outln!("artifacts: 0 (the directory does not exist)");
        return Ok(ExitCode::SUCCESS);
    }
    let usage = guardway_wasm::disk_usage(dir)
        .with_context(|| format!("cannot read the cache directory {}", dir.display()))?;
    outln!(
        "artifacts: {} ({})",
        usage.artifacts(),
        human_bytes(usage.bytes())
    );
    for (fingerprint, entry) in &usage.by_fingerprint {
        let whose = match entry.cpu_baseline {
            _ if *fingerprint == current => "this engine".to_owned(),
            Some(cpu) if cpu.is_portable() => format!("portable, CPU baseline {cpu}"),
            _ => "another engine or version".to_owned(),
        };
        outln!(
            "  {fingerprint}  {:>5} artifacts  {:>10}  ({whose})",
            entry.artifacts,
            human_bytes(entry.bytes)
        );
    }
    if usage.temp_files > 0 {
        outln!(
            "temporary files: {} ({})",
            usage.temp_files,
            human_bytes(usage.temp_bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn clear(dir: &Path) -> anyhow::Result<ExitCode> {
    let report = guardway_wasm::clear_disk_cache(dir);
    outln!(
        "removed {} files ({}) from {}",
        report.removed_files,
        human_bytes(report.removed_bytes),
        dir.display()
    );
    for err in &report.errors {
        eprintln!("error: {err}");
    }
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

enum WarmOutcome {
    Compiled(Duration),
    Cached,
    Failed(String),
}

fn warm(args: &WarmArgs) -> anyhow::Result<ExitCode> {
    let dir = resolve_dir(&args.dir)?;
    let started = Instant::now();
    let files = collect_guard_files(&args.paths);
    let cache = Arc::new(CompilationCache::new(CacheConfig {
        disk_dir: Some(dir.clone()),
        disk_max_bytes: args.max_bytes,
        ..CacheConfig::default()
    }));
    // Only optimised code is stored: no tiers here.
    let options = GuardOptions::default()
        .with_cache(CacheMode::Injected(cache.clone()))
        .with_compiler(GuardCompiler::Cranelift)
        .with_cpu_baseline(args.cpu_baseline);
    let mut progress = Progress::new(files.len());
    let mut results = Vec::new();
    for (index, file) in files.iter().enumerate() {
        progress.show(index, file);
        let outcome = match file {
            Err(message) => WarmOutcome::Failed(message.clone()),
            Ok(path) => warm_one(&cache, &options, path),
        };
        results.push(outcome);
    }
    progress.finish();

    let (mut compiled, mut cached, mut failed) = (0, 0, 0);
    for (file, outcome) in files.iter().zip(&results) {
        let shown = match file {
            Ok(path) => path.display().to_string(),
            Err(_) => String::new(),
        };
        match outcome {
            WarmOutcome::Compiled(took) => {
                compiled += 1;
                outln!("compiled  {shown}  ({})", human_duration(*took));
            }
            WarmOutcome::Cached => {
                cached += 1;
                outln!("cached    {shown}");
            }
            WarmOutcome::Failed(message) => {
                failed += 1;
                outln!(
                    "failed    {shown}{}{message}",
                    if shown.is_empty() { "" } else { ": " }
                );
            }
        }
    }
    let stored = cache.disk_dir().is_some();
    outln!(
        "{compiled} compiled, {cached} already cached, {failed} failed in {} (cache: {}, CPU baseline {})",
        human_duration(started.elapsed()),
        dir.display(),
        args.cpu_baseline
    );
    let mut ok = failed == 0 && stored;
    if !stored {
        eprintln!("error: nothing was stored: the cache directory is unusable");
    }
    if let Err(err) = cache.close() {
        eprintln!("error: {err}");
        ok = false;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn warm_one(cache: &CompilationCache, options: &GuardOptions, path: &Path) -> WarmOutcome {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) => return WarmOutcome::Failed(format!("cannot read: {err}")),
    };
    let name = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "guard".to_owned());
    let before = cache.stats();
    if let Err(err) = GuardModule::from_bytes(&name, &bytes, options) {
        return WarmOutcome::Failed(err.to_string());
    }
    let after = cache.stats();
    if after.compilations > before.compilations {
        WarmOutcome::Compiled(after.compile_time.saturating_sub(before.compile_time))
    } else {
        WarmOutcome::Cached
    }
}

/// Files named directly, and the `*.wasm` files under named directories
/// (recursively, sorted). A path that does not exist is an `Err`.
fn collect_guard_files(paths: &[PathBuf]) -> Vec<Result<PathBuf, String>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            find_wasm_files(path, 0, &mut found);
            found.sort();
            if found.is_empty() {
                files.push(Err(format!("no .wasm files in {}", path.display())));
            }
            files.extend(found.into_iter().map(Ok));
        } else if path.exists() {
            files.push(Ok(path.clone()));
        } else {
            files.push(Err(format!(
                "{}: no such file or directory",
                path.display()
            )));
        }
    }
    files
}

fn find_wasm_files(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) {
    const MAX_DEPTH: usize = 8;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() && depth < MAX_DEPTH {
            find_wasm_files(&path, depth + 1, found);
        } else if path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("wasm"))
        {
            found.push(path);
        }
    }
}

/// A progress bar on stderr (redrawn in place on a terminal, one line per
/// step otherwise).
struct Progress {
    total: usize,
    terminal: bool,
}

impl Progress {
    const WIDTH: usize = 30;

    fn new(total: usize) -> Self {
        Self {
            total,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn show(&mut self, index: usize, file: &Result<PathBuf, String>) {
        let label = match file {
            Ok(path) => path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Err(_) => String::new(),
        };
        let done = index * Self::WIDTH / self.total.max(1);
        let bar = format!("{}{}", "#".repeat(done), "-".repeat(Self::WIDTH - done));
        let mut stderr = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(
                stderr,
                "\r\x1b[2K[{bar}] {}/{} {label}",
                index + 1,
                self.total
            );
            let _ = stderr.flush();
        } else {
            let _ = writeln!(stderr, "[{bar}] {}/{} {label}", index + 1, self.total);
        }
    }

    fn finish(&mut self) {
        let bar = "#".repeat(Self::WIDTH);
        let mut stderr = std::io::stderr().lock();
        if self.terminal {
            let _ = writeln!(
                stderr,
                "\r\x1b[2K[{bar}] {}/{} done",
                self.total, self.total
            );
        } else {
            let _ = writeln!(stderr, "[{bar}] {}/{} done", self.total, self.total);
        }
    }
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn human_duration(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{:.2} s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_applies_to_both_tiers_and_the_flag_names_the_directory() {
        let config = process_cache_config(Some(Path::new("/flag")), Some(1234), None);
        assert_eq!(config.disk_dir.as_deref(), Some(Path::new("/flag")));
        assert_eq!(config.memory_max_bytes, 1234);
        assert_eq!(config.disk_max_bytes, 1234);

        let config = process_cache_config(Some(Path::new("/flag")), None, None);
        assert_eq!(
            config.memory_max_bytes,
            CacheConfig::default().memory_max_bytes
        );
        assert_eq!(config.disk_max_bytes, DEFAULT_DISK_MAX_BYTES);
    }

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
        assert_eq!(human_duration(Duration::from_millis(42)), "42 ms");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.50 s");
    }

    #[test]
    fn directories_are_searched_for_wasm_files() {
        let temp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(temp.path().join("github")).unwrap();
        std::fs::write(temp.path().join("github").join("00-guard.WASM"), b"").unwrap();
        std::fs::write(temp.path().join("b.wasm"), b"").unwrap();
        std::fs::write(temp.path().join("notes.txt"), b"").unwrap();
        let files = collect_guard_files(&[temp.path().to_owned(), temp.path().join("missing")]);
        let names: Vec<String> = files
            .iter()
            .map(|file| match file {
                Ok(path) => path
                    .strip_prefix(temp.path())
                    .unwrap()
                    .display()
                    .to_string(),
                Err(message) => format!("error: {message}"),
            })
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(names[0], "b.wasm");
        assert_eq!(names[1], "github/00-guard.WASM");
        assert!(names[2].starts_with("error: "), "{names:?}");
    }
}
