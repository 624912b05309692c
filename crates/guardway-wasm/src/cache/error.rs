//! Errors of the compilation cache: loading a module, disk failures, closing.

use std::fmt;
use std::path::PathBuf;

/// Why [`CompilationCache::get_or_compile`](super::CompilationCache::get_or_compile)
/// produced no module. Cheap to clone (every thread waiting on the same
/// compilation receives a copy).
#[derive(Debug, Clone, thiserror::Error)]
pub enum CacheError {
    /// The bytes are not a valid module for this engine.
    #[error("failed to compile wasm module {module_hash}: {message}")]
    Compile {
        /// BLAKE3 hash (hex) of the module bytes.
        module_hash: String,
        /// The compiler's error, with its causes.
        message: String,
    },
    /// The thread compiling this module panicked before finishing.
    #[error("compilation of wasm module {module_hash} was abandoned")]
    Abandoned { module_hash: String },
}

/// A disk tier failure. Each one is logged once, counted in
/// [`CacheStats::disk_errors`](super::CacheStats::disk_errors) and reported
/// again by [`close`](super::CompilationCache::close).
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The cache directory could not be created or used; the cache continues
    /// in memory only. The message is the reference gateway's warning, word
    /// for word.
    #[error("Falling back to in-memory WASM compilation cache after \"{}\" failed: {cause}", dir.display())]
    Unusable { dir: PathBuf, cause: String },
    /// A directory or file that other users could modify was refused.
    #[error("refusing {path:?}: {reason}")]
    Insecure { path: PathBuf, reason: String },
    #[error("failed to read cached artifact {path:?}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write cached artifact {path:?}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to delete cached artifact {path:?}: {source}")]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to list cache directory {path:?}: {source}")]
    Scan {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to serialise compiled module {module_hash}: {message}")]
    Serialize {
        module_hash: String,
        message: String,
    },
}

/// Every failure a cache met, returned by
/// [`close`](super::CompilationCache::close).
#[derive(Debug)]
pub struct CacheCloseError {
    /// The failures, oldest first; never empty.
    pub errors: Vec<DiskError>,
}

impl fmt::Display for CacheCloseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the WASM compilation cache met {} error{}",
            self.errors.len(),
            if self.errors.len() == 1 { "" } else { "s" }
        )?;
        for (index, error) in self.errors.iter().enumerate() {
            write!(f, "{}{error}", if index == 0 { ": " } else { "; " })?;
        }
        Ok(())
    }
}

impl std::error::Error for CacheCloseError {}

/// [`CompilationCache::configure_global`](super::CompilationCache::configure_global)
/// came too late: the process-wide cache was already configured or in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the process-wide WASM compilation cache is already configured or in use")]
pub struct AlreadyInitialised;
