//! Counters of the compilation cache and the snapshot (`CacheStats`) they produce.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A snapshot of a [`CompilationCache`](super::CompilationCache)'s counters.
///
/// All counts are since the cache was created. Plain data; cheap to copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Requests served from the memory tier.
    pub memory_hits: u64,
    /// Requests that waited for another thread's in-flight load of the same
    /// key and shared its result (single flight).
    pub shared_loads: u64,
    /// Requests served by deserialising a verified artifact from disk.
    pub disk_hits: u64,
    /// Requests found in neither tier, which therefore compiled.
    pub misses: u64,
    /// Compilations performed (successful or not).
    pub compilations: u64,
    /// Compilations that failed (their error was reported, nothing cached).
    pub compile_failures: u64,
    /// Of `compilations`, those by the baseline (Winch) engine of tiered compilation (kept
    /// in memory only).
    pub baseline_compilations: u64,
    /// Wall time spent compiling.
    pub compile_time: Duration,
    /// Estimated compile time avoided: for every hit, the time the artifact
    /// originally took to compile.
    pub compile_time_saved: Duration,
    /// Modules dropped from the memory tier to respect its bound.
    pub memory_evictions: u64,
    /// Artifacts deleted from the disk tier to respect its bound.
    pub disk_evictions: u64,
    /// Modules currently held in memory.
    pub memory_entries: u64,
    /// Estimated size of the modules held in memory (their code images).
    pub memory_bytes: u64,
    /// Bytes of artifacts in the cache directory after the last write or scan.
    pub disk_bytes: u64,
    /// Artifacts written to disk.
    pub disk_writes: u64,
    /// Recovered disk problems: unusable artifacts (truncated, corrupted,
    /// foreign, older format, insecure) that were ignored and recompiled.
    pub disk_warnings: u64,
    /// Of `disk_hits`, artifacts compiled for a CPU baseline by another engine
    /// (`guardway cache warm --cpu-baseline`) that this CPU accepted.
    pub disk_portable_hits: u64,
    /// Artifacts compiled for a CPU baseline that this CPU refused (it lacks a feature);
    /// the module was compiled here instead and the artifact left in place.
    pub disk_portable_refused: u64,
    /// Disk failures (directory unusable, write or delete failed); each one is
    /// also reported by [`close`](super::CompilationCache::close).
    pub disk_errors: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub memory_hits: AtomicU64,
    pub shared_loads: AtomicU64,
    pub disk_hits: AtomicU64,
    pub misses: AtomicU64,
    pub compilations: AtomicU64,
    pub compile_failures: AtomicU64,
    pub baseline_compilations: AtomicU64,
    pub compile_nanos: AtomicU64,
    pub saved_nanos: AtomicU64,
    pub memory_evictions: AtomicU64,
    pub disk_evictions: AtomicU64,
    pub disk_bytes: AtomicU64,
    pub disk_writes: AtomicU64,
    pub disk_warnings: AtomicU64,
    pub disk_portable_hits: AtomicU64,
    pub disk_portable_refused: AtomicU64,
    pub disk_errors: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, amount: u64) {
        counter.fetch_add(amount, Ordering::Relaxed);
    }

    pub fn add_duration(counter: &AtomicU64, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        counter.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn snapshot(&self, memory_entries: u64, memory_bytes: u64) -> CacheStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CacheStats {
            memory_hits: load(&self.memory_hits),
            shared_loads: load(&self.shared_loads),
            disk_hits: load(&self.disk_hits),
            misses: load(&self.misses),
            compilations: load(&self.compilations),
            compile_failures: load(&self.compile_failures),
            baseline_compilations: load(&self.baseline_compilations),
            compile_time: Duration::from_nanos(load(&self.compile_nanos)),
            compile_time_saved: Duration::from_nanos(load(&self.saved_nanos)),
            memory_evictions: load(&self.memory_evictions),
            disk_evictions: load(&self.disk_evictions),
            memory_entries,
            memory_bytes,
            disk_bytes: load(&self.disk_bytes),
            disk_writes: load(&self.disk_writes),
            disk_warnings: load(&self.disk_warnings),
            disk_portable_hits: load(&self.disk_portable_hits),
            disk_portable_refused: load(&self.disk_portable_refused),
            disk_errors: load(&self.disk_errors),
        }
    }
}
