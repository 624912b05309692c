//! The compilation cache: never compile the same guard twice.
//!
//! A [`CompilationCache`] maps (engine fingerprint, BLAKE3 of the module
//! bytes) to a compiled [`wasmtime::Module`] through two tiers: memory (LRU,
//! bounded by bytes, single flight) and, optionally, a directory on disk
//! (verified artifacts, see [`ARTIFACT_FORMAT_VERSION`]). One process-wide
//! cache ([`CompilationCache::global`]) serves every guard unless its
//! [`CacheMode`] says otherwise. Code of the baseline (Winch) engine is kept
//! in memory only, never on disk.

mod dir;
mod disk;
mod error;
mod key;
mod memory;
mod stats;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};
use wasmtime::{Engine, Module};

pub use dir::{
    REFERENCE_WASM_CACHE_DIR_ENV, WASM_CACHE_DIR_ENV, default_cache_dir, resolve_cache_dir,
    resolve_cache_dir_with,
};
pub use disk::{
    ARTIFACT_EXTENSION, ARTIFACT_FORMAT_VERSION, ARTIFACT_HEADER_LEN, ClearReport, DiskUsage,
    FingerprintUsage, clear_disk_cache, disk_usage,
};
use disk::{DiskRead, DiskTier};
pub use error::{AlreadyInitialised, CacheCloseError, CacheError, DiskError};
pub use key::{CacheKey, EngineFingerprint};
use memory::MemoryTier;
pub use stats::CacheStats;
use stats::Counters;

use crate::engine::{CpuBaseline, cpu_baseline_of, is_baseline_engine};

/// Default bound of the memory tier: 256 MiB of compiled code.
pub const DEFAULT_MEMORY_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Default bound of the disk tier: 1 GiB of artifacts.
pub const DEFAULT_DISK_MAX_BYTES: u64 = 1024 * 1024 * 1024;
/// At most this many disk failures are kept for [`CompilationCache::close`];
/// later ones are still logged and counted.
const MAX_KEPT_ERRORS: usize = 256;

/// How a [`CompilationCache`] is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Bound of the memory tier, in bytes of compiled code.
    pub memory_max_bytes: u64,
    /// Directory of the disk tier; `None` keeps the cache in memory only.
    pub disk_dir: Option<PathBuf>,
    /// Bound of the disk tier, in bytes of artifact files (all engine
    /// fingerprints together).
    pub disk_max_bytes: u64,
}

impl Default for CacheConfig {
    /// Memory only, default bounds.
    fn default() -> Self {
        Self {
            memory_max_bytes: DEFAULT_MEMORY_MAX_BYTES,
            disk_dir: None,
            disk_max_bytes: DEFAULT_DISK_MAX_BYTES,
        }
    }
}

impl CacheConfig {
    /// The default configuration with a disk tier in `dir`.
    pub fn with_disk_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            disk_dir: Some(dir.into()),
            ..Self::default()
        }
    }
}

/// Which cache a guard compiles through.
///
/// Cloning is cheap (at most an `Arc` clone).
#[derive(Clone, Default)]
pub enum CacheMode {
    /// The process-wide cache, [`CompilationCache::global`].
    #[default]
    Shared,
    /// A cache of the caller's own (tests, tuning).
    Injected(Arc<CompilationCache>),
    /// No cache: compile every time.
    Disabled,
}

impl std::fmt::Debug for CacheMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Shared => f.write_str("Shared"),
            Self::Injected(_) => f.write_str("Injected(..)"),
            Self::Disabled => f.write_str("Disabled"),
        }
    }
}

impl CacheMode {
    /// Compiles `bytes` for `engine` through the cache this mode selects.
    ///
    /// # Errors
    /// [`CacheError::Compile`] when the bytes are not a valid module.
    pub fn get_or_compile(&self, engine: &Engine, bytes: &[u8]) -> Result<Module, CacheError> {
        match self {
            Self::Shared => CompilationCache::global().get_or_compile(engine, bytes),
            Self::Injected(cache) => cache.get_or_compile(engine, bytes),
            Self::Disabled => compile_uncached(engine, bytes),
        }
    }

    /// The module of `key` if either tier holds it; never compiles.
    pub(crate) fn lookup(&self, engine: &Engine, key: &CacheKey) -> Option<Module> {
        match self {
            Self::Shared => CompilationCache::global().lookup(engine, key),
            Self::Injected(cache) => cache.lookup(engine, key),
            Self::Disabled => None,
        }
    }

    /// [`CompilationCache::get_or_compile`] with the key known (the bytes are not hashed).
    pub(crate) fn get_or_compile_key(
        &self,
        engine: &Engine,
        key: CacheKey,
        bytes: &[u8],
    ) -> Result<Module, CacheError> {
        match self {
            Self::Shared => CompilationCache::global().get_or_compile_key(engine, key, bytes),
            Self::Injected(cache) => cache.get_or_compile_key(engine, key, bytes),
            Self::Disabled => compile_uncached(engine, bytes),
        }
    }

    /// Drops `key` from the memory tier (baseline code replaced by optimised code).
    pub(crate) fn forget(&self, key: &CacheKey) {
        match self {
            Self::Shared => CompilationCache::global().forget(key),
            Self::Injected(cache) => cache.forget(key),
            Self::Disabled => {}
        }
    }
}

static UNCACHED_COMPILATIONS: AtomicU64 = AtomicU64::new(0);

/// Compiles without any cache (what [`CacheMode::Disabled`] does), counted
/// by [`uncached_compilations`].
///
/// # Errors
/// [`CacheError::Compile`] when the bytes are not a valid module.
pub fn compile_uncached(engine: &Engine, bytes: &[u8]) -> Result<Module, CacheError> {
    UNCACHED_COMPILATIONS.fetch_add(1, Ordering::Relaxed);
    Module::new(engine, bytes).map_err(|err| compile_error(bytes, &err))
}

/// How many compilations this process made without a cache.
pub fn uncached_compilations() -> u64 {
    UNCACHED_COMPILATIONS.load(Ordering::Relaxed)
}

fn compile_error(bytes: &[u8], err: &wasmtime::Error) -> CacheError {
    CacheError::Compile {
        module_hash: blake3::hash(bytes).to_hex().to_string(),
        message: format!("{err:#}"),
    }
}

type LoadOutcome = Result<(Module, Duration), CacheError>;

/// One in-progress load that other threads can wait for.
struct Flight {
    outcome: Mutex<Option<LoadOutcome>>,
    done: Condvar,
}

impl Flight {
    fn wait(&self) -> LoadOutcome {
        let mut outcome = self.outcome.lock();
        loop {
            if let Some(outcome) = outcome.as_ref() {
                return outcome.clone();
            }
            self.done.wait(&mut outcome);
        }
    }
}

/// Publishes the leader's outcome to the waiting threads, also when the
/// leader unwinds (they then receive [`CacheError::Abandoned`]).
struct FlightLeader<'a> {
    cache: &'a CompilationCache,
    key: CacheKey,
    flight: Arc<Flight>,
    published: bool,
}

impl FlightLeader<'_> {
    fn publish(&mut self, outcome: LoadOutcome) {
        self.cache.in_flight.lock().remove(&self.key);
        *self.flight.outcome.lock() = Some(outcome);
        self.flight.done.notify_all();
        self.published = true;
    }
}

impl Drop for FlightLeader<'_> {
    fn drop(&mut self) {
        if !self.published {
            self.publish(Err(CacheError::Abandoned {
                module_hash: self.key.module_hash_hex(),
            }));
        }
    }
}

/// Compiled guard modules keyed by engine fingerprint and module bytes, in
/// memory and optionally on disk.
///
/// Thread safety: all methods take `&self` and may be called from any number
/// of threads at once; share it as `Arc<CompilationCache>`. Several
/// processes may share one disk directory. Loads of different keys proceed
/// in parallel; loads of the same key wait for a single compilation.
///
/// The cache never creates an [`Engine`]: every call takes the engine to
/// compile with, and a module is only returned to the engine that made it.
pub struct CompilationCache {
    memory: Mutex<MemoryTier>,
    disk: RwLock<Option<Arc<DiskTier>>>,
    in_flight: Mutex<HashMap<CacheKey, Arc<Flight>>>,
    counters: Counters,
    /// Whether `counters.disk_bytes` holds the directory's size (scanned or written).
    disk_bytes_known: AtomicBool,
    /// CPU baselines whose artifacts this CPU refused (warned about once each).
    refused_baselines: Mutex<HashSet<CpuBaseline>>,
    errors: Mutex<Vec<DiskError>>,
    config: CacheConfig,
}

impl std::fmt::Debug for CompilationCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompilationCache")
            .field("config", &self.config)
            .field("disk_dir", &self.disk_dir())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

static GLOBAL_CONFIG: OnceLock<CacheConfig> = OnceLock::new();
static GLOBAL_CACHE: OnceLock<Arc<CompilationCache>> = OnceLock::new();

impl CompilationCache {
    /// Creates a cache. A disk directory that cannot be created, written or
    /// trusted (another user could modify it) is not fatal: the cache logs
    /// `Falling back to in-memory WASM compilation cache after "<dir>"
    /// failed: <cause>` once, records the error for [`close`](Self::close)
    /// and works in memory only.
    pub fn new(config: CacheConfig) -> Self {
        let cache = Self {
            memory: Mutex::new(MemoryTier::new(config.memory_max_bytes)),
            disk: RwLock::new(None),
            in_flight: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            disk_bytes_known: AtomicBool::new(false),
            refused_baselines: Mutex::new(HashSet::new()),
            errors: Mutex::new(Vec::new()),
            config,
        };
        if let Some(dir) = cache.config.disk_dir.clone() {
            // The directory's size is counted when first asked for (`stats`) or after the
            // first write, not here: opening stays cheap for a process that only reads.
            match DiskTier::open(dir, cache.config.disk_max_bytes) {
                Ok(tier) => *cache.disk.write() = Some(Arc::new(tier)),
                Err(err) => cache.record(err),
            }
        }
        // The commands say where their process-wide cache lives, once, among their
        // start-up facts; a library cache only notes it.
        tracing::debug!(
            "WASM compilation cache directory: {}",
            cache
                .disk_dir()
                .map(|dir| dir.display().to_string())
                .unwrap_or_default()
        );
        cache
    }

    /// A cache in memory only, with a bound of `memory_max_bytes`.
    pub fn in_memory(memory_max_bytes: u64) -> Self {
        Self::new(CacheConfig {
            memory_max_bytes,
            ..CacheConfig::default()
        })
    }

    /// The process-wide cache, created on first use from the configuration
    /// given to [`configure_global`](Self::configure_global) (or the default:
    /// memory only, 256 MiB). Cheap after the first call (an `Arc` clone).
    pub fn global() -> Arc<CompilationCache> {
        GLOBAL_CACHE
            .get_or_init(|| {
                let config = GLOBAL_CONFIG.get_or_init(CacheConfig::default).clone();
                Arc::new(CompilationCache::new(config))
            })
            .clone()
    }

    /// Sets the configuration of the process-wide cache.
    ///
    /// # Errors
    /// [`AlreadyInitialised`] if it was configured before or is already in
    /// use; the configuration in force is then unchanged.
    pub fn configure_global(config: CacheConfig) -> Result<(), AlreadyInitialised> {
        GLOBAL_CONFIG.set(config).map_err(|_| AlreadyInitialised)
    }

    /// The configuration this cache was created with.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// The disk directory in use; `None` when in memory only (never
    /// configured, or fallen back after a failure).
    pub fn disk_dir(&self) -> Option<PathBuf> {
        self.disk_tier().map(|tier| tier.root().to_owned())
    }

    fn disk_tier(&self) -> Option<Arc<DiskTier>> {
        self.disk.read().clone()
    }

    /// The fingerprint of `engine`, remembered per engine.
    pub fn fingerprint(&self, engine: &Engine) -> EngineFingerprint {
        EngineFingerprint::remembered(engine)
    }

    /// The key of `bytes` compiled by `engine`.
    pub fn key(&self, engine: &Engine, bytes: &[u8]) -> CacheKey {
        CacheKey::with_fingerprint(self.fingerprint(engine), bytes)
    }

    /// Whether the memory tier holds `key` (does not count as a use).
    pub fn contains_in_memory(&self, key: &CacheKey) -> bool {
        self.memory.lock().contains(key)
    }

    /// Where the artifact of `key` is (or would be) stored on disk; `None`
    /// when the cache is in memory only.
    pub fn artifact_path(&self, key: &CacheKey) -> Option<PathBuf> {
        self.disk_tier().map(|tier| tier.artifact_path(key))
    }

    /// The module compiled from `bytes` by `engine`: from memory, else from
    /// disk, else compiled now (and then stored in both tiers). Concurrent
    /// calls for the same uncached bytes compile once and share the result;
    /// a failed compilation is returned to all of them and not cached.
    ///
    /// Compiling is CPU-bound and synchronous; async callers should run this
    /// on a blocking thread.
    ///
    /// # Errors
    /// [`CacheError::Compile`] when the bytes are not a valid module;
    /// [`CacheError::Abandoned`] when the thread compiling them panicked.
    /// Disk problems are never errors here (see [`close`](Self::close)).
    pub fn get_or_compile(&self, engine: &Engine, bytes: &[u8]) -> Result<Module, CacheError> {
        let key = self.key(engine, bytes);
        self.get_or_compile_key(engine, key, bytes)
    }

    /// The module of `key` compiled by `engine` if the memory tier holds it or the disk
    /// tier has a usable artifact (then also kept in memory); never compiles. Counts as a
    /// hit when found and as nothing otherwise.
    pub fn lookup(&self, engine: &Engine, key: &CacheKey) -> Option<Module> {
        if let Some(module) = self.memory_hit(key, engine) {
            return Some(module);
        }
        if is_baseline_engine(engine) {
            return None;
        }
        let (module, compile_time) = self.load_from_disk(engine, key)?;
        Counters::bump(&self.counters.disk_hits);
        Counters::add_duration(&self.counters.saved_nanos, compile_time);
        self.remember(*key, module.clone(), compile_time);
        Some(module)
    }

    /// Drops `key` from the memory tier (no effect on disk).
    pub fn forget(&self, key: &CacheKey) {
        self.memory.lock().remove(key);
    }

    fn memory_hit(&self, key: &CacheKey, engine: &Engine) -> Option<Module> {
        let hit = self.memory.lock().get(key, engine)?;
        Counters::bump(&self.counters.memory_hits);
        Counters::add_duration(&self.counters.saved_nanos, hit.compile_time);
        Some(hit.module)
    }

    /// [`get_or_compile`](Self::get_or_compile) with the key already known: `key` must be
    /// the key of `bytes` compiled by `engine` (see [`CacheKey::from_parts`]).
    ///
    /// # Errors
    /// As [`get_or_compile`](Self::get_or_compile).
    pub fn get_or_compile_key(
        &self,
        engine: &Engine,
        key: CacheKey,
        bytes: &[u8],
    ) -> Result<Module, CacheError> {
        if let Some(module) = self.memory_hit(&key, engine) {
            return Ok(module);
        }
        let (flight, leading) = {
            let mut in_flight = self.in_flight.lock();
            // A leader stores its module in memory before it leaves
            // `in_flight`, so a load that just finished is found here.
            if let Some(module) = self.memory_hit(&key, engine) {
                return Ok(module);
            }
            match in_flight.get(&key) {
                Some(flight) => (flight.clone(), false),
                None => {
                    let flight = Arc::new(Flight {
                        outcome: Mutex::new(None),
                        done: Condvar::new(),
                    });
                    in_flight.insert(key, flight.clone());
                    (flight, true)
                }
            }
        };
        if leading {
            let mut leader = FlightLeader {
                cache: self,
                key,
                flight,
                published: false,
            };
            let outcome = self.load_uncached(engine, &key, bytes);
            leader.publish(outcome.clone());
            return outcome.map(|(module, _)| module);
        }
        let (module, compile_time) = flight.wait()?;
        if !Engine::same(module.engine(), engine) {
            // Another engine with the same configuration loaded it; this
            // engine needs its own copy.
            return self.load_uncached(engine, &key, bytes).map(|(m, _)| m);
        }
        Counters::bump(&self.counters.shared_loads);
        Counters::add_duration(&self.counters.saved_nanos, compile_time);
        Ok(module)
    }

    /// Disk, else compile; then remember in memory. Baseline (Winch) code never touches
    /// the disk.
    fn load_uncached(&self, engine: &Engine, key: &CacheKey, bytes: &[u8]) -> LoadOutcome {
        let baseline = is_baseline_engine(engine);
        if !baseline && let Some((module, compile_time)) = self.load_from_disk(engine, key) {
            Counters::bump(&self.counters.disk_hits);
            Counters::add_duration(&self.counters.saved_nanos, compile_time);
            self.remember(*key, module.clone(), compile_time);
            return Ok((module, compile_time));
        }
        Counters::bump(&self.counters.misses);
        Counters::bump(&self.counters.compilations);
        if baseline {
            Counters::bump(&self.counters.baseline_compilations);
        }
        let started = Instant::now();
        let compiled = Module::new(engine, bytes);
        let compile_time = started.elapsed();
        Counters::add_duration(&self.counters.compile_nanos, compile_time);
        let module = match compiled {
            Ok(module) => module,
            Err(err) => {
                Counters::bump(&self.counters.compile_failures);
                return Err(compile_error(bytes, &err));
            }
        };
        if !baseline {
            self.store_on_disk(engine, key, &module, compile_time);
        }
        self.remember(*key, module.clone(), compile_time);
        Ok((module, compile_time))
    }

    fn remember(&self, key: CacheKey, module: Module, compile_time: Duration) {
        let evicted = self.memory.lock().insert(key, module, compile_time);
        Counters::add(&self.counters.memory_evictions, evicted);
    }

    fn load_from_disk(&self, engine: &Engine, key: &CacheKey) -> Option<(Module, Duration)> {
        let tier = self.disk_tier()?;
        let (path, defect) = match tier.read(key) {
            DiskRead::Missing => return self.load_portable(&tier, engine, key),
            DiskRead::Failed(err) => {
                self.disk_failed(&tier, err);
                return None;
            }
            DiskRead::Defective { path, defect } => (path, defect),
            DiskRead::Found(verified) => {
                // SAFETY: `Module::deserialize` runs the artifact's machine
                // code, so it must be exactly what `Module::serialize`
                // produced. The file lives in a directory only the current
                // user can modify (checked when opened), is itself owned by
                // the current user and not writable by others, and its
                // header matched this engine's fingerprint, this module's
                // hash, the artifact length and the artifact's BLAKE3
                // checksum, which guardway wrote after serialising.
                #[allow(unsafe_code)]
                let loaded = unsafe { Module::deserialize(engine, verified.artifact()) };
                match loaded {
                    Ok(module) => return Some((module, verified.compile_time)),
                    Err(err) => (
                        tier.artifact_path(key),
                        disk::ArtifactDefect::Rejected {
                            message: format!("{err:#}"),
                        },
                    ),
                }
            }
        };
        Counters::bump(&self.counters.disk_warnings);
        tracing::warn!(
            path = %path.display(),
            "ignoring unusable cached WASM artifact ({defect}); recompiling"
        );
        if let Err(err) = tier.remove(&path) {
            self.record(err);
        }
        None
    }

    /// An artifact of the module compiled for a CPU baseline by another engine (`cache
    /// warm --cpu-baseline`), if this CPU runs it. A refused one stays on disk (another
    /// machine may use it) and is reported once per baseline.
    fn load_portable(
        &self,
        tier: &DiskTier,
        engine: &Engine,
        key: &CacheKey,
    ) -> Option<(Module, Duration)> {
        for (path, artifact) in tier.read_portable(key) {
            let cpu = artifact.cpu.unwrap_or_default();
            // SAFETY: as in `load_from_disk`: the file is private to this user, its
            // header matched the module hash, length and checksum that guardway wrote
            // after serialising it with the engine whose fingerprint names its
            // directory. wasmtime then checks that the artifact's target, flags, tunables
            // and wasm features are compatible with `engine`, and that every CPU feature
            // it was compiled to use is present on this CPU; it refuses the artifact
            // otherwise.
            #[allow(unsafe_code)]
            let loaded = unsafe { Module::deserialize(engine, artifact.artifact()) };
            match loaded {
                Ok(module) => {
                    Counters::bump(&self.counters.disk_portable_hits);
                    return Some((module, artifact.compile_time));
                }
                Err(err) => {
                    Counters::bump(&self.counters.disk_portable_refused);
                    if self.refused_baselines.lock().insert(cpu) {
                        tracing::warn!(
                            path = %path.display(),
                            "cached guard artifacts for CPU baseline {cpu} cannot run on this machine ({err:#}); compiling for this CPU"
                        );
                    }
                }
            }
        }
        None
    }

    fn store_on_disk(
        &self,
        engine: &Engine,
        key: &CacheKey,
        module: &Module,
        compile_time: Duration,
    ) {
        let Some(tier) = self.disk_tier() else {
            return;
        };
        let artifact = match module.serialize() {
            Ok(artifact) => artifact,
            Err(err) => {
                self.record(DiskError::Serialize {
                    module_hash: key.module_hash_hex(),
                    message: format!("{err:#}"),
                });
                return;
            }
        };
        if (artifact.len() + ARTIFACT_HEADER_LEN) as u64 > tier.max_bytes() {
            // It would be evicted at once.
            return;
        }
        match tier.write(key, &artifact, compile_time, cpu_baseline_of(engine)) {
            Ok(_) => Counters::bump(&self.counters.disk_writes),
            Err(err) => {
                self.disk_failed(&tier, err);
                return;
            }
        }
        let report = tier.enforce_bound();
        Counters::add(&self.counters.disk_evictions, report.evicted);
        self.counters
            .disk_bytes
            .store(report.total_bytes, Ordering::Relaxed);
        self.disk_bytes_known.store(true, Ordering::Relaxed);
        for err in report.errors {
            self.record(err);
        }
    }

    /// A disk failure: a directory or write failure makes the cache fall
    /// back to memory only (logged once); a read failure is only recorded.
    fn disk_failed(&self, tier: &Arc<DiskTier>, err: DiskError) {
        let fall_back = match &err {
            DiskError::Unusable { .. } => Some(err),
            DiskError::Write { .. } => Some(DiskError::Unusable {
                dir: tier.root().to_owned(),
                cause: err.to_string(),
            }),
            _ => {
                self.record(err);
                None
            }
        };
        let Some(err) = fall_back else { return };
        let mut disk = self.disk.write();
        // Only the first thread to fail switches the tier off and reports.
        if disk
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, tier))
        {
            *disk = None;
            drop(disk);
            self.record(err);
        }
    }

    fn record(&self, err: DiskError) {
        tracing::warn!("{err}");
        Counters::bump(&self.counters.disk_errors);
        let mut errors = self.errors.lock();
        if errors.len() < MAX_KEPT_ERRORS {
            errors.push(err);
        }
    }

    /// A snapshot of the counters. The first call on a cache that has written nothing yet
    /// counts the bytes in its directory.
    pub fn stats(&self) -> CacheStats {
        if !self.disk_bytes_known.load(Ordering::Relaxed)
            && let Some(tier) = self.disk_tier()
        {
            match tier.current_bytes() {
                Ok(bytes) => {
                    self.counters.disk_bytes.store(bytes, Ordering::Relaxed);
                    self.disk_bytes_known.store(true, Ordering::Relaxed);
                }
                Err(err) => {
                    self.disk_bytes_known.store(true, Ordering::Relaxed);
                    self.record(err);
                }
            }
        }
        let (entries, bytes) = {
            let memory = self.memory.lock();
            (memory.len(), memory.bytes())
        };
        self.counters.snapshot(entries, bytes)
    }

    /// Drops every module held in memory (the disk tier is unchanged).
    pub fn clear_memory(&self) {
        self.memory.lock().clear();
    }

    /// Finishes the cache's work and reports every disk failure met since
    /// the previous `close` (or creation). Writes are synchronous, so there
    /// is nothing left to flush. The cache stays usable; closing again
    /// reports only failures met in between (none: `Ok`).
    ///
    /// # Errors
    /// [`CacheCloseError`] carrying every recorded failure, oldest first (up
    /// to 256; [`CacheStats::disk_errors`] counts them all).
    pub fn close(&self) -> Result<(), CacheCloseError> {
        let errors = std::mem::take(&mut *self.errors.lock());
        if errors.is_empty() {
            Ok(())
        } else {
            Err(CacheCloseError { errors })
        }
    }

    /// The directory holding `engine`'s artifacts; `None` in memory only.
    pub fn fingerprint_dir(&self, engine: &Engine) -> Option<PathBuf> {
        let root = self.disk_dir()?;
        Some(root.join(self.fingerprint(engine).to_string()))
    }
}
