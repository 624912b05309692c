//! The guard host: loads WebAssembly DIFC guards and calls them through the guard ABI.
//!
//! - [`GuardModule`]: a compiled, validated, pre-linked guard (cheap to clone), on baseline
//!   or optimised code ([`GuardCompiler`], [`CodeTier`]: tiered compilation).
//! - [`Guard`]: a module plus a session policy, serving calls from a pool of instances.
//! - [`CompilationCache`]: compiled modules in memory and on disk, shared by every guard
//!   (see [`CacheMode`]).
//! - [`Backend`]: what a guard's `call_backend` reaches (implemented by the gateway).
//! - [`FreshInstance`]: one new instance driven directly (guard authors' tools), and
//!   [`GuardObserver`]: sees a guard's log lines and backend calls (tracing).
//!
//! # Running guard calls
//!
//! The [`Guard`] API is async. WebAssembly runs inside the calling task (on a wasmtime
//! fiber): every [`engine::EPOCH_TICK`] the guard yields back to the executor, so a long
//! guard call never holds a tokio worker for more than about one tick, and `call_backend`
//! awaits the backend without blocking a thread. The gateway therefore calls guards
//! directly from its request tasks on the multi-threaded tokio runtime; no
//! `spawn_blocking` is needed. A call must run inside a tokio runtime (backend timeouts
//! use `tokio::time`).

mod abi;
mod cache;
mod engine;
mod error;
mod fresh;
mod hash_memo;
mod imports;
mod instance;
mod limits;
mod module;
mod options;
mod pool;
mod quarantine;

pub use abi::GuardExport;
pub use cache::{
    ARTIFACT_EXTENSION, ARTIFACT_FORMAT_VERSION, ARTIFACT_HEADER_LEN, AlreadyInitialised,
    CacheCloseError, CacheConfig, CacheError, CacheKey, CacheMode, CacheStats, ClearReport,
    CompilationCache, DEFAULT_DISK_MAX_BYTES, DEFAULT_MEMORY_MAX_BYTES, DiskError, DiskUsage,
    EngineFingerprint, FingerprintUsage, REFERENCE_WASM_CACHE_DIR_ENV, WASM_CACHE_DIR_ENV,
    clear_disk_cache, compile_uncached, default_cache_dir, disk_usage, resolve_cache_dir,
    resolve_cache_dir_with, uncached_compilations,
};
pub use engine::{
    CPU_BASELINE_NAMES, CodeTier, CpuBaseline, EPOCH_TICK, GUARD_COMPILER_ENV,
    GUARD_COMPILER_NAMES, GuardCompiler, InstanceAllocation, MAX_MEMORY_LIMIT, UnknownName,
    baseline_engine, baseline_engine_config, configure_instance_allocation, cpu_baseline_of,
    engine, engine_config, is_baseline_engine, portable_engine, portable_engine_config,
    prepare_engine, start_epoch_ticker,
};
pub use error::{BackendCallError, GuardError};
pub use fresh::FreshInstance;
pub use imports::{
    Backend, BackendCallRecord, BoxFuture, GUARD_LOG_TARGET, GuardLogLevel, GuardObserver,
};
pub use module::GuardModule;
pub use options::{GuardOptions, LogRateLimit, MIB, QuarantineOptions};
pub use pool::{Guard, GuardStats};
pub use quarantine::{Clock, GuardHealth, SystemClock};
