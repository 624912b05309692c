//! `GuardOptions`: the per-guard limits and settings (memory, time, buffers, pool, quarantine, logs).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::cache::CacheMode;
use crate::engine::{CpuBaseline, GuardCompiler};
use crate::imports::GuardObserver;
use crate::quarantine::{Clock, SystemClock};

/// 1 MiB.
pub const MIB: usize = 1024 * 1024;

/// Settings for loading and running one guard. `Default` gives production values.
///
/// Cloning is cheap (a few words plus an `Arc` for the clock).
#[derive(Clone)]
#[non_exhaustive]
pub struct GuardOptions {
    /// Name used in errors, logs and stats; `None` uses the module's name.
    pub name: Option<String>,
    /// Hard cap on each instance's linear memory, in bytes (default 32 MiB).
    pub memory_limit: usize,
    /// Time limit of one guard function call, including the backend calls it makes (default 5 s).
    pub call_timeout: Duration,
    /// Maximum `call_backend` calls during one guard call (default 50).
    pub max_backend_calls: u32,
    /// Maximum number of instances serving calls in parallel (default: the number of cores).
    pub pool_size: usize,
    /// Largest input accepted; larger inputs are refused before the guard runs (default 8 MiB).
    pub max_input: usize,
    /// First output buffer size (default 4 MiB).
    pub output_buffer_initial: usize,
    /// Largest output buffer the `-2` protocol may reach (default 16 MiB).
    pub output_buffer_max: usize,
    /// Number of attempts of the `-2` protocol (default 3).
    pub output_attempts: u32,
    /// When a guard is quarantined.
    pub quarantine: QuarantineOptions,
    /// Per-instance rate limit of the guard's log lines.
    pub log_rate: LogRateLimit,
    /// Lines dropped by the rate limit are summarised in one warning per guard at most
    /// this often (default 10 s).
    pub log_drop_summary_interval: Duration,
    /// Time source of quarantine decisions and log-drop summaries (tests inject a manual
    /// clock).
    pub clock: Arc<dyn Clock>,
    /// Which compilation cache loading the guard uses (default: the
    /// process-wide one).
    pub cache: CacheMode,
    /// Which compiler loading the guard uses (default:
    /// [`GuardCompiler::process_default`], normally tiered compilation).
    pub compiler: GuardCompiler,
    /// Whether a guard loaded on baseline code starts its optimising compilation on a
    /// background thread (default true); when false the caller moves it with
    /// [`crate::GuardModule::tier_up`].
    pub background_tier_up: bool,
    /// CPU features the optimised code may use (default: this CPU's). Another baseline
    /// compiles with [`crate::portable_engine`], for artifacts that load on other machines
    /// (`guardway cache warm --cpu-baseline`).
    pub cpu_baseline: CpuBaseline,
    /// Sees every log line and `call_backend` of the guard's instances (default none;
    /// tracing tools set one).
    pub observer: Option<Arc<dyn GuardObserver>>,
}

/// Quarantine thresholds: `failures` instance faults within `window` deny calls for `cool_down`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuarantineOptions {
    /// Faults (traps, timeouts, memory caps, failed instance creation) that open the quarantine.
    pub failures: u32,
    /// Window in which the faults are counted.
    pub window: Duration,
    /// How long calls are denied once quarantined.
    pub cool_down: Duration,
}

impl Default for QuarantineOptions {
    fn default() -> Self {
        QuarantineOptions {
            failures: 5,
            window: Duration::from_secs(60),
            cool_down: Duration::from_secs(30),
        }
    }
}

/// Token bucket for guard log lines (host_log, stdout, stderr) of one instance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogRateLimit {
    /// Lines that may be emitted at once.
    pub burst: u32,
    /// Sustained lines per second.
    pub lines_per_second: f64,
}

impl Default for LogRateLimit {
    fn default() -> Self {
        LogRateLimit {
            burst: 200,
            lines_per_second: 100.0,
        }
    }
}

impl Default for GuardOptions {
    fn default() -> Self {
        GuardOptions {
            name: None,
            memory_limit: 32 * MIB,
            call_timeout: Duration::from_secs(5),
            max_backend_calls: 50,
            pool_size: crate::engine::cores(),
            max_input: 8 * MIB,
            output_buffer_initial: 4 * MIB,
            output_buffer_max: 16 * MIB,
            output_attempts: 3,
            quarantine: QuarantineOptions::default(),
            log_rate: LogRateLimit::default(),
            log_drop_summary_interval: Duration::from_secs(10),
            clock: Arc::new(SystemClock),
            cache: CacheMode::Shared,
            compiler: GuardCompiler::process_default(),
            background_tier_up: true,
            cpu_baseline: CpuBaseline::Native,
            observer: None,
        }
    }
}

impl GuardOptions {
    /// Sets the name used in errors, logs and stats.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Sets the per-instance memory cap in bytes.
    pub fn with_memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = bytes;
        self
    }
    /// Sets the per-call time limit.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }
    /// Sets the per-call limit of backend calls.
    pub fn with_max_backend_calls(mut self, calls: u32) -> Self {
        self.max_backend_calls = calls;
        self
    }
    /// Sets the maximum number of parallel instances (at least 1).
    pub fn with_pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }
    /// Sets the output buffer sizes of the `-2` protocol.
    pub fn with_output_buffers(mut self, initial: usize, max: usize) -> Self {
        self.output_buffer_initial = initial;
        self.output_buffer_max = max;
        self
    }
    /// Sets the quarantine thresholds.
    pub fn with_quarantine(mut self, quarantine: QuarantineOptions) -> Self {
        self.quarantine = quarantine;
        self
    }
    /// Sets the log rate limit.
    pub fn with_log_rate(mut self, log_rate: LogRateLimit) -> Self {
        self.log_rate = log_rate;
        self
    }
    /// Sets how often lines dropped by the rate limit are summarised (at most once per
    /// `interval` per guard).
    pub fn with_log_drop_summary_interval(mut self, interval: Duration) -> Self {
        self.log_drop_summary_interval = interval;
        self
    }
    /// Sets the compiler used when loading the guard.
    pub fn with_compiler(mut self, compiler: GuardCompiler) -> Self {
        self.compiler = compiler;
        self
    }
    /// Sets whether the optimising compilation of a guard loaded on baseline code runs on
    /// a background thread by itself.
    pub fn with_background_tier_up(mut self, background: bool) -> Self {
        self.background_tier_up = background;
        self
    }
    /// Sets the CPU features the optimised code may use.
    pub fn with_cpu_baseline(mut self, cpu: CpuBaseline) -> Self {
        self.cpu_baseline = cpu;
        self
    }
    /// Sets the compilation cache used when loading the guard.
    pub fn with_cache(mut self, cache: CacheMode) -> Self {
        self.cache = cache;
        self
    }
    /// Sets the observer of the guard's log lines and backend calls.
    pub fn with_observer(mut self, observer: Arc<dyn GuardObserver>) -> Self {
        self.observer = Some(observer);
        self
    }
    /// Sets the clock used for quarantine decisions.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

impl fmt::Debug for GuardOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardOptions")
            .field("name", &self.name)
            .field("memory_limit", &self.memory_limit)
            .field("call_timeout", &self.call_timeout)
            .field("max_backend_calls", &self.max_backend_calls)
            .field("pool_size", &self.pool_size)
            .field("max_input", &self.max_input)
            .field("output_buffer_initial", &self.output_buffer_initial)
            .field("output_buffer_max", &self.output_buffer_max)
            .field("output_attempts", &self.output_attempts)
            .field("quarantine", &self.quarantine)
            .field("log_rate", &self.log_rate)
            .field("log_drop_summary_interval", &self.log_drop_summary_interval)
            .field("cache", &self.cache)
            .field("compiler", &self.compiler)
            .field("background_tier_up", &self.background_tier_up)
            .field("cpu_baseline", &self.cpu_baseline)
            .field("observer", &self.observer.is_some())
            .finish_non_exhaustive()
    }
}
