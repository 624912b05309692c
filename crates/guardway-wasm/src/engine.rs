//! The process's `wasmtime::Engine`s: the optimising one (Cranelift, pooling allocator), the
//! baseline one (Winch) of tiered compilation, the portable ones that compile artifacts for a
//! CPU baseline, and the one epoch ticker thread that drives them all.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use parking_lot::Mutex;
use wasmtime::{
    Config, Engine, EngineWeak, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig,
};

use crate::error::GuardError;

/// Interval of the epoch ticker; guard code yields to the async executor and checks its
/// deadline at this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Largest linear memory any instance may have; per-guard caps (`GuardOptions::memory_limit`)
/// must be at most this.
pub const MAX_MEMORY_LIMIT: usize = 1024 * 1024 * 1024;

/// Concurrent instances the pooling allocator provides slots for (virtual reservations only).
const POOLED_INSTANCES: u32 = 1000;
/// The cores this process may use, read once (every read costs a few system calls).
pub(crate) fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    })
}

/// Which compiler turns a guard into machine code.
///
/// `Auto` (the default) is tiered compilation: a guard that is in neither cache tier is
/// compiled first by the baseline compiler (Winch, fast to compile, slower code), serves
/// calls from that at once, and is compiled again by the optimising compiler (Cranelift)
/// in the background; new instances then use the optimised code. Only optimised code is
/// ever written to the disk cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GuardCompiler {
    /// Baseline first, optimised in the background (tiered compilation).
    #[default]
    Auto,
    /// The optimising compiler only (Cranelift).
    Cranelift,
    /// The baseline compiler only (Winch); nothing is written to the disk cache.
    Winch,
}

/// The names accepted by `--guard-compiler` and `GUARDWAY_GUARD_COMPILER`.
pub const GUARD_COMPILER_NAMES: [&str; 3] = ["auto", "cranelift", "winch"];

/// The environment variable naming the guard compiler (`auto`, `cranelift` or `winch`).
pub const GUARD_COMPILER_ENV: &str = "GUARDWAY_GUARD_COMPILER";

impl GuardCompiler {
    /// `auto`, `cranelift` or `winch`.
    pub fn as_str(self) -> &'static str {
        match self {
            GuardCompiler::Auto => "auto",
            GuardCompiler::Cranelift => "cranelift",
            GuardCompiler::Winch => "winch",
        }
    }

    /// The compiler [`crate::GuardOptions::default`] uses: [`GuardCompiler::Auto`] unless
    /// [`GuardCompiler::set_process_default`] chose another.
    pub fn process_default() -> GuardCompiler {
        *PROCESS_DEFAULT_COMPILER
            .get()
            .unwrap_or(&GuardCompiler::Auto)
    }

    /// Sets the compiler of every `GuardOptions::default()` made afterwards in this process
    /// (the binary calls it once, from `--guard-compiler`).
    ///
    /// # Errors
    /// Returns the compiler already in force when it was set before.
    pub fn set_process_default(compiler: GuardCompiler) -> Result<(), GuardCompiler> {
        PROCESS_DEFAULT_COMPILER
            .set(compiler)
            .map_err(|_| GuardCompiler::process_default())
    }
}

static PROCESS_DEFAULT_COMPILER: OnceLock<GuardCompiler> = OnceLock::new();

impl fmt::Display for GuardCompiler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of [`GUARD_COMPILER_NAMES`] or [`CPU_BASELINE_NAMES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {found:?}; expected one of: {}", expected.join(", "))]
pub struct UnknownName {
    /// What was being named (`guard compiler`, `CPU baseline`).
    pub what: &'static str,
    /// The text given.
    pub found: String,
    /// The accepted names.
    pub expected: &'static [&'static str],
}

impl FromStr for GuardCompiler {
    type Err = UnknownName;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(GuardCompiler::Auto),
            "cranelift" => Ok(GuardCompiler::Cranelift),
            "winch" => Ok(GuardCompiler::Winch),
            _ => Err(UnknownName {
                what: "guard compiler",
                found: text.to_owned(),
                expected: &GUARD_COMPILER_NAMES,
            }),
        }
    }
}

/// Which tier of code a guard module runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodeTier {
    /// Compiled by the baseline compiler (Winch): ready fast, slower per call.
    Baseline,
    /// Compiled by the optimising compiler (Cranelift).
    Optimised,
}

impl CodeTier {
    /// `baseline` or `optimised`.
    pub fn as_str(self) -> &'static str {
        match self {
            CodeTier::Baseline => "baseline",
            CodeTier::Optimised => "optimised",
        }
    }
}

impl fmt::Display for CodeTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The CPU features compiled code may use.
///
/// `Native` uses every feature of the CPU compiling it; an artifact compiled that way may
/// not run elsewhere. The `X86_64V*` levels are the x86-64 micro-architecture levels, so an
/// artifact made while building a container image runs on any machine of that level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum CpuBaseline {
    /// Every feature of the compiling CPU.
    #[default]
    Native,
    /// x86-64-v2: SSE4.2, SSSE3, POPCNT, CMPXCHG16B.
    X86_64V2,
    /// x86-64-v3: v2 plus AVX, AVX2, BMI1, BMI2, FMA, LZCNT.
    X86_64V3,
}

/// The names accepted by `--cpu-baseline`.
pub const CPU_BASELINE_NAMES: [&str; 3] = ["native", "x86-64-v2", "x86-64-v3"];

impl CpuBaseline {
    /// `native`, `x86-64-v2` or `x86-64-v3` (also the Cranelift preset of the level).
    pub fn as_str(self) -> &'static str {
        match self {
            CpuBaseline::Native => "native",
            CpuBaseline::X86_64V2 => "x86-64-v2",
            CpuBaseline::X86_64V3 => "x86-64-v3",
        }
    }

    /// The code stored in an artifact header (0 native, else the level's number).
    pub(crate) fn code(self) -> u32 {
        match self {
            CpuBaseline::Native => 0,
            CpuBaseline::X86_64V2 => 2,
            CpuBaseline::X86_64V3 => 3,
        }
    }

    /// The baseline of a header code; `None` for a code this build does not know.
    pub(crate) fn from_code(code: u32) -> Option<CpuBaseline> {
        match code {
            0 => Some(CpuBaseline::Native),
            2 => Some(CpuBaseline::X86_64V2),
            3 => Some(CpuBaseline::X86_64V3),
            _ => None,
        }
    }

    /// Whether code of this baseline may run on other CPUs than the one that compiled it.
    pub fn is_portable(self) -> bool {
        self != CpuBaseline::Native
    }
}

impl fmt::Display for CpuBaseline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CpuBaseline {
    type Err = UnknownName;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "native" => Ok(CpuBaseline::Native),
            "x86-64-v2" => Ok(CpuBaseline::X86_64V2),
            "x86-64-v3" => Ok(CpuBaseline::X86_64V3),
            _ => Err(UnknownName {
                what: "CPU baseline",
                found: text.to_owned(),
                expected: &CPU_BASELINE_NAMES,
            }),
        }
    }
}

/// The engine configuration of the optimising engine (Cranelift, epoch interruption, async
/// calls, pooling allocator with copy-on-write memory images).
///
/// Tests and the compilation cache build identical engines from it.
pub fn engine_config() -> Config {
    let mut config = base_config();
    let mut pooling = PoolingAllocationConfig::new();
    pooling
        .total_core_instances(POOLED_INSTANCES)
        .total_memories(POOLED_INSTANCES)
        .total_tables(POOLED_INSTANCES)
        .total_stacks(POOLED_INSTANCES)
        .max_memory_size(MAX_MEMORY_LIMIT)
        // Keep a little of each memory resident so reused slots skip page faults.
        .linear_memory_keep_resident(64 * 1024)
        .max_unused_warm_slots(100);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    config
}

/// Everything but the allocation strategy; also used for the on-demand fallback.
fn base_config() -> Config {
    let mut config = Config::new();
    config
        .strategy(wasmtime::Strategy::Cranelift)
        .cranelift_opt_level(OptLevel::Speed)
        .epoch_interruption(true)
        .memory_init_cow(true);
    config
}

/// The configuration of the baseline engine: Winch, same wasm features and limits, and the
/// on-demand allocator (its instances live only until the optimised code lands, so it does
/// not reserve a second pool of a thousand slots).
pub fn baseline_engine_config() -> Config {
    let mut config = base_config();
    config.strategy(wasmtime::Strategy::Winch);
    config
}

/// A Cranelift configuration whose code uses only the features of `cpu` (on-demand
/// allocation; such engines compile artifacts, the optimising engine runs them).
///
/// For [`CpuBaseline::Native`] it is the optimising engine's configuration without the pool.
///
/// # Errors
/// [`GuardError::Engine`] when this build cannot target `cpu` (a non-x86-64 host).
pub fn portable_engine_config(cpu: CpuBaseline) -> Result<Config, GuardError> {
    let mut config = base_config();
    if cpu.is_portable() {
        if !cfg!(target_arch = "x86_64") {
            return Err(GuardError::Engine {
                message: format!("CPU baseline {cpu} needs an x86-64 host"),
            });
        }
        // Naming the target explicitly turns off the detection of the host's CPU features;
        // the preset then enables exactly the level's features.
        let triple = target_lexicon::HOST.to_string();
        config.target(&triple).map_err(|e| GuardError::Engine {
            message: format!("cannot target {triple}: {e:#}"),
        })?;
        // SAFETY: the preset only selects which instructions generated code may use. Code
        // compiled this way is never run here directly: it is serialised, and wasmtime
        // checks every enabled feature against the CPU of the process that loads it.
        #[allow(unsafe_code)]
        unsafe {
            config.cranelift_flag_enable(cpu.as_str());
        }
    }
    Ok(config)
}

static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
static BASELINE_ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
static PORTABLE_ENGINES: [OnceLock<Result<Engine, String>>; 2] = [OnceLock::new(), OnceLock::new()];

/// The process-wide optimising engine, created on first use; its epoch is ticked.
///
/// `Engine` is `Send + Sync`; clones are cheap reference-count bumps.
///
/// # Errors
///
/// [`GuardError::Engine`] when neither the pooling nor the on-demand configuration can be
/// built on this machine (the outcome of the first attempt is remembered).
pub fn engine() -> Result<&'static Engine, GuardError> {
    ENGINE
        .get_or_init(|| {
            let allocation = *ALLOCATION.get_or_init(InstanceAllocation::default);
            if allocation == InstanceAllocation::OnDemand {
                let engine = Engine::new(&base_config()).map_err(|e| e.to_string())?;
                start_epoch_ticker(&engine);
                return Ok(engine);
            }
            let engine = match Engine::new(&engine_config()) {
                Ok(engine) => engine,
                Err(pooling_error) => {
                    tracing::warn!(
                        error = %pooling_error,
                        "pooling allocator unavailable; using on-demand instance allocation"
                    );
                    Engine::new(&base_config()).map_err(|e| e.to_string())?
                }
            };
            start_epoch_ticker(&engine);
            Ok(engine)
        })
        .as_ref()
        .map_err(|message| engine_error(message))
}

/// How the process-wide optimising engine allocates instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InstanceAllocation {
    /// A pool of a thousand pre-reserved instance slots (memories, tables, fiber stacks):
    /// instances are created fast and reuse warm slots, for a long-running gateway. Setting
    /// the pool up takes about a millisecond and a half (a guard page per fiber stack).
    #[default]
    Pooling,
    /// Memory mapped per instance: nothing to set up, slower instances. For one-shot
    /// commands that create a few instances (`guardway guard call`, `guard test`). The code
    /// compiled is the same, so are the disk cache's artifacts.
    OnDemand,
}

static ALLOCATION: OnceLock<InstanceAllocation> = OnceLock::new();

/// Chooses how the process-wide optimising engine allocates instances; call it before the
/// engine is first used.
///
/// # Errors
/// Returns the allocation in force when it was chosen before or the engine already exists.
pub fn configure_instance_allocation(
    allocation: InstanceAllocation,
) -> Result<(), InstanceAllocation> {
    ALLOCATION
        .set(allocation)
        .map_err(|_| *ALLOCATION.get_or_init(InstanceAllocation::default))
}

/// Starts creating the process-wide optimising engine on a background thread and returns
/// at once. The engine's pooling allocator reserves and protects a thousand instance slots,
/// which takes a few milliseconds; a process that calls this first (before it reads its
/// configuration, a guard and its cached artifact) overlaps that work with its own.
/// [`engine`] then returns the engine, waiting for the thread if it has not finished.
pub fn prepare_engine() {
    if ENGINE.get().is_some() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("guardway-engine".into())
        .spawn(|| {
            let _ = engine();
        });
    if let Err(error) = spawned {
        tracing::debug!(%error, "cannot create the engine in the background; it is created on first use");
    }
}

/// The process-wide baseline (Winch) engine of tiered compilation, created on first use;
/// its epoch is ticked by the same thread as the optimising engine's.
///
/// # Errors
///
/// [`GuardError::Engine`] when Winch cannot target this machine (remembered); callers then
/// compile with the optimising engine only.
pub fn baseline_engine() -> Result<&'static Engine, GuardError> {
    BASELINE_ENGINE
        .get_or_init(|| {
            let engine = Engine::new(&baseline_engine_config()).map_err(|e| format!("{e:#}"))?;
            start_epoch_ticker(&engine);
            Ok(engine)
        })
        .as_ref()
        .map_err(|message| engine_error(message))
}

/// The process-wide engine compiling artifacts for `cpu` (see [`portable_engine_config`]);
/// for [`CpuBaseline::Native`], the optimising engine itself.
///
/// # Errors
///
/// [`GuardError::Engine`] when this build cannot target `cpu`.
pub fn portable_engine(cpu: CpuBaseline) -> Result<&'static Engine, GuardError> {
    let slot = match cpu {
        CpuBaseline::Native => return engine(),
        CpuBaseline::X86_64V2 => &PORTABLE_ENGINES[0],
        CpuBaseline::X86_64V3 => &PORTABLE_ENGINES[1],
    };
    slot.get_or_init(|| {
        let config = portable_engine_config(cpu).map_err(|e| e.to_string())?;
        let engine = Engine::new(&config).map_err(|e| format!("{e:#}"))?;
        start_epoch_ticker(&engine);
        Ok(engine)
    })
    .as_ref()
    .map_err(|message| engine_error(message))
}

/// The CPU baseline `engine` compiles for: the level of a [`portable_engine`], else native.
pub fn cpu_baseline_of(engine: &Engine) -> CpuBaseline {
    for (slot, cpu) in PORTABLE_ENGINES
        .iter()
        .zip([CpuBaseline::X86_64V2, CpuBaseline::X86_64V3])
    {
        if let Some(Ok(portable)) = slot.get()
            && Engine::same(portable, engine)
        {
            return cpu;
        }
    }
    CpuBaseline::Native
}

/// Whether `engine` is the process's baseline (Winch) engine, whose code is never stored on
/// disk.
pub fn is_baseline_engine(engine: &Engine) -> bool {
    matches!(BASELINE_ENGINE.get(), Some(Ok(baseline)) if Engine::same(baseline, engine))
}

fn engine_error(message: &str) -> GuardError {
    GuardError::Engine {
        message: message.to_owned(),
    }
}

/// Engines whose epoch the ticker thread increments, and whether the thread runs.
struct Ticked {
    engines: Vec<EngineWeak>,
    running: bool,
}

static TICKED: Mutex<Ticked> = Mutex::new(Ticked {
    engines: Vec::new(),
    running: false,
});

/// Increments `engine`'s epoch every [`EPOCH_TICK`] until the engine is dropped.
///
/// One thread ticks every engine registered this way; it starts with the first and stops
/// when the last one is gone.
pub fn start_epoch_ticker(engine: &Engine) {
    let mut ticked = TICKED.lock();
    let known = ticked
        .engines
        .iter()
        .any(|weak| weak.upgrade().is_some_and(|e| Engine::same(&e, engine)));
    if !known {
        ticked.engines.push(engine.weak());
    }
    if ticked.running {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("guardway-epoch".into())
        .spawn(tick_forever);
    match spawned {
        Ok(_) => ticked.running = true,
        Err(error) => {
            tracing::error!(%error, "cannot start the epoch ticker; guard time limits will not fire");
        }
    }
}

fn tick_forever() {
    loop {
        std::thread::sleep(EPOCH_TICK);
        let mut ticked = TICKED.lock();
        ticked.engines.retain(|weak| match weak.upgrade() {
            Some(engine) => {
                engine.increment_epoch();
                true
            }
            None => false,
        });
        if ticked.engines.is_empty() {
            ticked.running = false;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_engine_is_created_once() {
        let first: *const Engine = engine().unwrap();
        let second: *const Engine = engine().unwrap();
        assert_eq!(first, second);
    }

    #[test]
    fn the_shared_config_builds_compatible_engines() {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let fingerprint = |engine: &Engine| {
            let mut hasher = DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut hasher);
            hasher.finish()
        };
        let other = Engine::new(&engine_config()).unwrap();
        // Same fingerprint: artifacts compiled by one load in the other (what the cache relies on).
        assert_eq!(fingerprint(&other), fingerprint(engine().unwrap()));
        // The pool does not change what code is compiled.
        let on_demand = Engine::new(&portable_engine_config(CpuBaseline::Native).unwrap()).unwrap();
        assert_eq!(fingerprint(&on_demand), fingerprint(engine().unwrap()));
    }

    #[test]
    fn names_parse_and_print() {
        for name in GUARD_COMPILER_NAMES {
            assert_eq!(name.parse::<GuardCompiler>().unwrap().as_str(), name);
        }
        for name in CPU_BASELINE_NAMES {
            let cpu: CpuBaseline = name.parse().unwrap();
            assert_eq!(cpu.as_str(), name);
            assert_eq!(CpuBaseline::from_code(cpu.code()), Some(cpu));
        }
        assert_eq!(" Winch ".parse::<GuardCompiler>(), Ok(GuardCompiler::Winch));
        assert_eq!(
            "x86_64_v3".parse::<CpuBaseline>(),
            Ok(CpuBaseline::X86_64V3)
        );
        let err = "fast".parse::<GuardCompiler>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown guard compiler \"fast\"; expected one of: auto, cranelift, winch"
        );
        assert_eq!(CpuBaseline::from_code(1), None);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn portable_engines_differ_from_the_native_one_and_are_recognised() {
        let v2 = portable_engine(CpuBaseline::X86_64V2).unwrap();
        let v3 = portable_engine(CpuBaseline::X86_64V3).unwrap();
        assert_eq!(cpu_baseline_of(v2), CpuBaseline::X86_64V2);
        assert_eq!(cpu_baseline_of(v3), CpuBaseline::X86_64V3);
        assert_eq!(cpu_baseline_of(engine().unwrap()), CpuBaseline::Native);
        let hash = |engine: &Engine| crate::cache::EngineFingerprint::of(engine);
        assert_ne!(hash(v2), hash(v3));
        assert_ne!(hash(v3), hash(engine().unwrap()));
    }
}
