//! The guard host: loads WebAssembly DIFC guards and calls them through the guard ABI.

mod cache;

pub use cache::{
    ARTIFACT_EXTENSION, ARTIFACT_FORMAT_VERSION, ARTIFACT_HEADER_LEN, AlreadyInitialised,
    CacheCloseError, CacheConfig, CacheError, CacheKey, CacheMode, CacheStats, ClearReport,
    CompilationCache, DEFAULT_DISK_MAX_BYTES, DEFAULT_MEMORY_MAX_BYTES, DiskError, DiskUsage,
    EngineFingerprint, FingerprintUsage, REFERENCE_WASM_CACHE_DIR_ENV, WASM_CACHE_DIR_ENV,
    clear_disk_cache, compile_uncached, default_cache_dir, disk_usage, resolve_cache_dir,
    resolve_cache_dir_with, uncached_compilations,
};
