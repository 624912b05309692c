//! `GuardModule`: loading a guard (magic check, compile through the cache on the chosen tier,
//! export validation, command-module detection), pre-linking it once against the host
//! imports, and moving it from baseline to optimised code (tiered compilation).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use wasmtime::{Engine, EngineWeak, ExternType, FuncType, InstancePre, Linker, Module, ValType};

use crate::cache::{CacheError, CacheKey, CacheMode, EngineFingerprint};
use crate::engine::{CodeTier, GuardCompiler, baseline_engine, portable_engine};
use crate::error::GuardError;
use crate::hash_memo;
use crate::imports;
use crate::instance::StoreState;
use crate::options::GuardOptions;

/// The three label functions every guard exports.
pub(crate) const LABEL_EXPORTS: [&str; 3] = ["label_agent", "label_resource", "label_response"];

const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// A compiled, validated and pre-linked guard.
///
/// `Send + Sync`; cloning is an `Arc` bump. Instances are created from it by [`crate::Guard`].
///
/// A module loaded by tiered compilation ([`GuardCompiler::Auto`] on a cache miss) starts on
/// baseline code and moves to optimised code when the background compilation lands; from
/// then on new instances run the optimised code, and instances already running finish
/// their call on the baseline code (see [`GuardModule::tier`]).
#[derive(Clone)]
pub struct GuardModule {
    pub(crate) inner: Arc<ModuleInner>,
}

pub(crate) struct ModuleInner {
    pub(crate) name: Arc<str>,
    pub(crate) has_allocator: bool,
    /// Set once the "no alloc/dealloc" warning was logged.
    pub(crate) fallback_warned: AtomicBool,
    /// The code new instances are created from.
    code: RwLock<Arc<LinkedCode>>,
    /// Bumped each time `code` changes; instances remember the generation they came from.
    generation: AtomicU64,
    /// Where the move to optimised code stands.
    tier_state: watch::Sender<TierState>,
    /// What the move to optimised code needs; taken by whoever performs it.
    pending: Mutex<Option<PendingTierUp>>,
}

/// Compiled code plus its imports resolved once. Instances keep the code they were
/// created from (a store belongs to one engine).
pub(crate) struct LinkedCode {
    pub(crate) module: Module,
    pub(crate) pre: InstancePre<StoreState>,
    pub(crate) tier: CodeTier,
}

/// The state of the move from baseline to optimised code.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TierState {
    /// Baseline code; the optimised compilation is pending or running.
    Baseline,
    /// Optimised code (from the start, or after the move).
    Optimised,
    /// Baseline code for good: the optimised compilation failed (the message says why) or
    /// was not asked for (`--guard-compiler winch`).
    BaselineOnly(String),
}

/// Everything the optimised compilation of a baseline module needs.
struct PendingTierUp {
    bytes: Arc<[u8]>,
    /// The optimising engine.
    engine: Engine,
    /// The key of the optimised code.
    key: CacheKey,
    /// The key of the baseline code (dropped from the memory tier after the move).
    baseline_key: CacheKey,
    cache: CacheMode,
}

impl std::fmt::Debug for GuardModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardModule")
            .field("name", &self.inner.name)
            .field("has_allocator", &self.inner.has_allocator)
            .field("tier", &self.tier())
            .finish_non_exhaustive()
    }
}

/// Where the bytes of a module come from, and what is known about them.
struct Source<'a> {
    bytes: SourceBytes<'a>,
    /// BLAKE3 of the bytes, when already known (remembered from an earlier load).
    hash: Option<[u8; 32]>,
}

enum SourceBytes<'a> {
    Borrowed(&'a [u8]),
    Shared(Arc<[u8]>),
}

impl SourceBytes<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            SourceBytes::Borrowed(bytes) => bytes,
            SourceBytes::Shared(bytes) => bytes,
        }
    }

    fn to_shared(&self) -> Arc<[u8]> {
        match self {
            SourceBytes::Borrowed(bytes) => Arc::from(*bytes),
            SourceBytes::Shared(bytes) => Arc::clone(bytes),
        }
    }
}

impl GuardModule {
    /// Loads a guard from wasm bytes (text format is not accepted).
    ///
    /// With [`GuardCompiler::Auto`] (the default) a module in neither cache tier is
    /// compiled by the baseline compiler and returned at once, and the optimising
    /// compilation runs on a background thread (see [`GuardModule::optimised`]).
    ///
    /// # Errors
    ///
    /// [`GuardError::NotWasm`], [`GuardError::Compile`], [`GuardError::CommandModule`],
    /// [`GuardError::MissingExports`], [`GuardError::BadExport`], [`GuardError::Link`].
    pub fn from_bytes(
        name: &str,
        bytes: &[u8],
        options: &GuardOptions,
    ) -> Result<GuardModule, GuardError> {
        let source = Source {
            bytes: SourceBytes::Borrowed(bytes),
            hash: None,
        };
        load(name, source, options)
    }

    /// Loads a guard from shared bytes. The hash of bytes loaded before through the same
    /// `Arc` is remembered, so loading them again from the memory cache costs no hashing.
    ///
    /// # Errors
    ///
    /// As [`GuardModule::from_bytes`].
    pub fn from_shared_bytes(
        name: &str,
        bytes: Arc<[u8]>,
        options: &GuardOptions,
    ) -> Result<GuardModule, GuardError> {
        let hash = hash_memo::hash_of_shared(&bytes);
        let source = Source {
            bytes: SourceBytes::Shared(bytes),
            hash: Some(hash),
        };
        load(name, source, options)
    }

    /// Loads a guard from a `.wasm` file; its name is the file stem.
    ///
    /// The hash of a file loaded before is remembered with its metadata (device, inode,
    /// size, modification and change times): loading an unchanged file whose module is in
    /// the memory cache reads only its metadata, neither its bytes nor their hash.
    ///
    /// # Errors
    ///
    /// [`GuardError::Io`] when the file cannot be read, else as [`GuardModule::from_bytes`].
    pub fn from_file(
        path: impl AsRef<Path>,
        options: &GuardOptions,
    ) -> Result<GuardModule, GuardError> {
        let path = path.as_ref();
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "guard".to_owned());
        let io_error = |source| GuardError::Io {
            name: name.clone(),
            path: path.display().to_string(),
            source,
        };
        let metadata = std::fs::metadata(path).map_err(io_error)?;
        let remembered = hash_memo::hash_of_file(path, &metadata);
        if let Some(hash) = remembered
            && let Some(module) = load_cached(&name, hash, options)?
        {
            return Ok(module);
        }
        let bytes = std::fs::read(path).map_err(io_error)?;
        let hash = match remembered {
            // The file is unchanged since it was hashed.
            Some(hash) => hash,
            None => {
                let hash = *blake3::hash(&bytes).as_bytes();
                hash_memo::remember_file(path, &metadata, hash);
                hash
            }
        };
        let source = Source {
            bytes: SourceBytes::Borrowed(&bytes),
            hash: Some(hash),
        };
        load(&name, source, options)
    }

    /// The guard's name (used in errors and logs).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Whether the guard exports `alloc` and `dealloc` (else the host uses the
    /// end-of-memory buffers).
    pub fn has_allocator(&self) -> bool {
        self.inner.has_allocator
    }

    /// The compiled module new instances are created from (cheap clone).
    pub fn module(&self) -> Module {
        self.current_code().module.clone()
    }

    /// The tier of the code new instances are created from.
    pub fn tier(&self) -> CodeTier {
        self.current_code().tier
    }

    /// Waits until the module runs optimised code.
    ///
    /// # Errors
    ///
    /// [`GuardError::Compile`] when it never will: the optimising compilation failed, or
    /// the module was loaded with [`GuardCompiler::Winch`]; calls keep running on the
    /// baseline code.
    pub async fn optimised(&self) -> Result<(), GuardError> {
        let mut state = self.inner.tier_state.subscribe();
        let settled = state
            .wait_for(|state| *state != TierState::Baseline)
            .await
            .map(|state| state.clone());
        match settled {
            Ok(TierState::Optimised) => Ok(()),
            Ok(TierState::BaselineOnly(message)) => Err(GuardError::Compile {
                name: self.name().to_owned(),
                message,
            }),
            // The sender lives as long as `self`.
            Ok(TierState::Baseline) | Err(_) => Err(GuardError::Compile {
                name: self.name().to_owned(),
                message: "the optimising compilation was abandoned".to_owned(),
            }),
        }
    }

    /// Compiles the optimised code now, on this thread, and moves the module to it; returns
    /// whether this call moved it (false when it already ran optimised code, runs baseline
    /// code only, or another thread is moving it).
    ///
    /// Modules loaded with `GuardOptions::background_tier_up` (the default) do this on a
    /// background thread by themselves; tools and tests that want to choose the moment
    /// turn that off and call this.
    ///
    /// # Errors
    ///
    /// [`GuardError::Compile`] when the optimising compilation fails (the module stays on
    /// baseline code).
    pub fn tier_up(&self) -> Result<bool, GuardError> {
        let Some(pending) = self.inner.pending.lock().take() else {
            return Ok(false);
        };
        tier_up(&self.inner, pending)
    }

    pub(crate) fn current_code(&self) -> Arc<LinkedCode> {
        Arc::clone(&self.inner.code.read())
    }

    /// The generation of [`GuardModule::current_code`]; it changes when the tier does.
    pub(crate) fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// The code new instances are created from and its generation, read together.
    pub(crate) fn current_code_and_generation(&self) -> (Arc<LinkedCode>, u64) {
        let code = self.inner.code.read();
        (
            Arc::clone(&code),
            self.inner.generation.load(Ordering::Acquire),
        )
    }
}

/// Checks the magic, compiles (or fetches) the code on the tier the options choose,
/// validates the exports and links.
fn load(name: &str, source: Source<'_>, options: &GuardOptions) -> Result<GuardModule, GuardError> {
    let bytes = source.bytes.as_slice();
    let optimising = portable_engine(options.cpu_baseline)?;
    if bytes.len() < 8 || &bytes[..4] != WASM_MAGIC {
        return Err(GuardError::NotWasm {
            name: name.to_owned(),
            found: bytes.iter().take(4).copied().collect(),
        });
    }
    let hash = source
        .hash
        .unwrap_or_else(|| *blake3::hash(bytes).as_bytes());
    let key = CacheKey::from_parts(EngineFingerprint::remembered(optimising), hash);
    let cache = &options.cache;
    let compile_error = |error: CacheError| GuardError::Compile {
        name: name.to_owned(),
        message: match error {
            CacheError::Compile { message, .. } => message,
            other => other.to_string(),
        },
    };
    let (module, tier, pending) = match options.compiler {
        GuardCompiler::Cranelift => {
            let module = cache
                .get_or_compile_key(optimising, key, bytes)
                .map_err(compile_error)?;
            (module, CodeTier::Optimised, None)
        }
        GuardCompiler::Winch => {
            let baseline = baseline_engine()?;
            let baseline_key = key.for_fingerprint(EngineFingerprint::remembered(baseline));
            let module = cache
                .get_or_compile_key(baseline, baseline_key, bytes)
                .map_err(compile_error)?;
            (module, CodeTier::Baseline, None)
        }
        GuardCompiler::Auto => match cache.lookup(optimising, &key) {
            Some(module) => (module, CodeTier::Optimised, None),
            None => match compile_baseline(cache, key, bytes) {
                Some((module, baseline_key)) => {
                    let pending = PendingTierUp {
                        bytes: source.bytes.to_shared(),
                        engine: optimising.clone(),
                        key,
                        baseline_key,
                        cache: cache.clone(),
                    };
                    (module, CodeTier::Baseline, Some(pending))
                }
                None => {
                    let module = cache
                        .get_or_compile_key(optimising, key, bytes)
                        .map_err(compile_error)?;
                    (module, CodeTier::Optimised, None)
                }
            },
        },
    };
    let module = finish(name, module, tier, options.compiler)?;
    if let Some(pending) = pending {
        if options.background_tier_up {
            spawn_tier_up(&module, pending);
        } else {
            *module.inner.pending.lock() = Some(pending);
        }
    }
    Ok(module)
}

/// The module from the cache (memory, else disk) on the tier the options choose, without
/// its bytes; `None` when it must be compiled.
fn load_cached(
    name: &str,
    hash: [u8; 32],
    options: &GuardOptions,
) -> Result<Option<GuardModule>, GuardError> {
    let (engine, tier) = match options.compiler {
        GuardCompiler::Auto | GuardCompiler::Cranelift => {
            (portable_engine(options.cpu_baseline)?, CodeTier::Optimised)
        }
        GuardCompiler::Winch => (baseline_engine()?, CodeTier::Baseline),
    };
    let key = CacheKey::from_parts(EngineFingerprint::remembered(engine), hash);
    match options.cache.lookup(engine, &key) {
        Some(module) => finish(name, module, tier, options.compiler).map(Some),
        None => Ok(None),
    }
}

/// Compiles `bytes` with the baseline engine through the cache (memory only); `None` when
/// there is no baseline engine on this machine or it cannot compile this module (the
/// optimising compiler then decides, and reports any error).
fn compile_baseline(cache: &CacheMode, key: CacheKey, bytes: &[u8]) -> Option<(Module, CacheKey)> {
    let baseline = match baseline_engine() {
        Ok(engine) => engine,
        Err(error) => {
            static WARNED: AtomicBool = AtomicBool::new(false);
            if !WARNED.swap(true, Ordering::Relaxed) {
                tracing::info!(%error, "no baseline compiler on this machine; guards compile with Cranelift only");
            }
            return None;
        }
    };
    let baseline_key = key.for_fingerprint(EngineFingerprint::remembered(baseline));
    match cache.get_or_compile_key(baseline, baseline_key, bytes) {
        Ok(module) => Some((module, baseline_key)),
        Err(error) => {
            tracing::debug!(%error, "the baseline compiler cannot compile this guard; using Cranelift");
            None
        }
    }
}

/// Validates the exports and links `module` into a new `GuardModule`.
fn finish(
    name: &str,
    module: Module,
    tier: CodeTier,
    compiler: GuardCompiler,
) -> Result<GuardModule, GuardError> {
    let has_allocator = validate_exports(name, &module)?;
    let pre = link(name, &module)?;
    let state = match (tier, compiler) {
        (CodeTier::Optimised, _) => TierState::Optimised,
        (CodeTier::Baseline, GuardCompiler::Winch) => {
            TierState::BaselineOnly("the guard compiler is winch (baseline only)".to_owned())
        }
        (CodeTier::Baseline, _) => TierState::Baseline,
    };
    Ok(GuardModule {
        inner: Arc::new(ModuleInner {
            name: Arc::from(name),
            has_allocator,
            fallback_warned: AtomicBool::new(false),
            code: RwLock::new(Arc::new(LinkedCode { module, pre, tier })),
            generation: AtomicU64::new(0),
            tier_state: watch::Sender::new(state),
            pending: Mutex::new(None),
        }),
    })
}

/// Runs [`tier_up`] on a background thread. The thread holds the module weakly: when every
/// handle is gone it still finishes, so that the optimised code reaches the caches.
fn spawn_tier_up(module: &GuardModule, pending: PendingTierUp) {
    let weak = Arc::downgrade(&module.inner);
    let name = Arc::clone(&module.inner.name);
    let spawned = std::thread::Builder::new()
        .name("guardway-tier-up".into())
        .spawn(move || match weak.upgrade() {
            Some(inner) => {
                let _ = tier_up(&inner, pending);
            }
            None => {
                // Nobody waits for the code, but the caches keep it.
                let _ = compile_optimised(&pending);
                pending.cache.forget(&pending.baseline_key);
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(guard = %name, %error, "cannot start the optimising compilation; the guard keeps baseline code");
        let _ = module
            .inner
            .tier_state
            .send_replace(TierState::BaselineOnly(format!(
                "cannot start a thread: {error}"
            )));
    }
}

/// The optimised code of a pending module; the error says why there is none.
fn compile_optimised(pending: &PendingTierUp) -> Result<Module, String> {
    pending
        .cache
        .get_or_compile_key(&pending.engine, pending.key, &pending.bytes)
        .map_err(|error| match error {
            CacheError::Compile { message, .. } => message,
            other => other.to_string(),
        })
}

/// Compiles the optimised code, links it and makes it the code of new instances.
fn tier_up(inner: &ModuleInner, pending: PendingTierUp) -> Result<bool, GuardError> {
    let linked = compile_optimised(&pending).and_then(|module| {
        let pre = link(&inner.name, &module).map_err(|error| error.to_string())?;
        Ok(LinkedCode {
            module,
            pre,
            tier: CodeTier::Optimised,
        })
    });
    match linked {
        Ok(code) => {
            {
                let mut current = inner.code.write();
                *current = Arc::new(code);
                inner.generation.fetch_add(1, Ordering::AcqRel);
            }
            pending.cache.forget(&pending.baseline_key);
            tracing::debug!(guard = %inner.name, "guard moved to optimised code");
            let _ = inner.tier_state.send_replace(TierState::Optimised);
            Ok(true)
        }
        Err(message) => {
            tracing::error!(guard = %inner.name, error = %message,
                "optimising compilation failed; the guard keeps running baseline code");
            let _ = inner
                .tier_state
                .send_replace(TierState::BaselineOnly(message.clone()));
            Err(GuardError::Compile {
                name: inner.name.to_string(),
                message,
            })
        }
    }
}

fn func_signature(params: &[ValType], results: &[ValType]) -> String {
    let list = |types: &[ValType]| {
        types
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    format!("({}) -> ({})", list(params), list(results))
}

fn describe(ty: &ExternType) -> String {
    match ty {
        ExternType::Func(f) => {
            let params: Vec<ValType> = f.params().collect();
            let results: Vec<ValType> = f.results().collect();
            format!("func {}", func_signature(&params, &results))
        }
        ExternType::Memory(_) => "memory".to_owned(),
        ExternType::Table(_) => "table".to_owned(),
        ExternType::Global(_) => "global".to_owned(),
        ExternType::Tag(_) => "tag".to_owned(),
    }
}

fn has_signature(ty: &FuncType, params: &[ValType], results: &[ValType]) -> bool {
    let same = |a: &mut dyn ExactSizeIterator<Item = ValType>, b: &[ValType]| {
        a.len() == b.len() && a.zip(b).all(|(x, y)| ValType::eq(&x, y))
    };
    same(&mut ty.params(), params) && same(&mut ty.results(), results)
}

/// Checks the guard exports; returns whether `alloc`/`dealloc` are both present.
fn validate_exports(name: &str, module: &Module) -> Result<bool, GuardError> {
    use ValType::I32;
    let find = |export: &str| module.get_export(export);
    let label_present = LABEL_EXPORTS.iter().any(|e| find(e).is_some());
    if !label_present && (find("_start").is_some() || find("_initialize").is_some()) {
        return Err(GuardError::CommandModule {
            name: name.to_owned(),
        });
    }
    let mut missing: Vec<String> = LABEL_EXPORTS
        .iter()
        .filter(|e| find(e).is_none())
        .map(|e| (*e).to_owned())
        .collect();
    if find("memory").is_none() {
        missing.push("memory".to_owned());
    }
    if !missing.is_empty() {
        return Err(GuardError::MissingExports {
            name: name.to_owned(),
            missing,
        });
    }
    let bad = |export: &str, expected: &str, ty: &ExternType| GuardError::BadExport {
        name: name.to_owned(),
        export: export.to_owned(),
        expected: expected.to_owned(),
        found: describe(ty),
    };
    for export in LABEL_EXPORTS {
        if let Some(ty) = find(export) {
            let ok = matches!(&ty, ExternType::Func(f) if has_signature(f, &[I32, I32, I32, I32], &[I32]));
            if !ok {
                return Err(bad(export, "func (i32,i32,i32,i32) -> (i32)", &ty));
            }
        }
    }
    if let Some(ty) = find("memory")
        && !matches!(ty, ExternType::Memory(_))
    {
        return Err(bad("memory", "memory", &ty));
    }
    let alloc = match find("alloc") {
        Some(ExternType::Func(f)) if has_signature(&f, &[I32], &[I32]) => true,
        Some(ty) => return Err(bad("alloc", "func (i32) -> (i32)", &ty)),
        None => false,
    };
    let dealloc = match find("dealloc") {
        Some(ExternType::Func(f)) if has_signature(&f, &[I32, I32], &[]) => true,
        Some(ty) => return Err(bad("dealloc", "func (i32,i32) -> ()", &ty)),
        None => false,
    };
    Ok(alloc && dealloc)
}

/// Linkers with the host imports defined, one per engine in use (defining the WASI
/// functions is most of the cost of linking; resolving a module's imports is a few look-ups).
const LINKER_MEMO_LEN: usize = 8;

type SharedLinker = Arc<Linker<StoreState>>;

static LINKERS: Mutex<Vec<(EngineWeak, SharedLinker)>> = Mutex::new(Vec::new());

/// The linker of `engine`, with WASI preview 1 plus `env.call_backend`/`env.host_log`.
fn linker(engine: &Engine) -> Result<SharedLinker, wasmtime::Error> {
    let mut memo = LINKERS.lock();
    if let Some((_, linker)) = memo
        .iter()
        .find(|(weak, _)| weak.upgrade().is_some_and(|e| Engine::same(&e, engine)))
    {
        return Ok(Arc::clone(linker));
    }
    let mut linker: Linker<StoreState> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |state: &mut StoreState| &mut state.wasi)?;
    imports::add_to_linker(&mut linker)?;
    let linker = Arc::new(linker);
    if memo.len() >= LINKER_MEMO_LEN {
        memo.remove(0);
    }
    memo.push((engine.weak(), Arc::clone(&linker)));
    Ok(linker)
}

/// Resolves the module's imports once against the host's linker.
fn link(name: &str, module: &Module) -> Result<InstancePre<StoreState>, GuardError> {
    let link_error = |error: wasmtime::Error| GuardError::Link {
        name: name.to_owned(),
        message: format!("{error:#}"),
    };
    linker(module.engine())
        .map_err(link_error)?
        .instantiate_pre(module)
        .map_err(link_error)
}
