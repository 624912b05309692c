//! Artifacts compiled for a CPU baseline (`guardway cache warm --cpu-baseline`): a process
//! whose own engine has no artifact of the module finds them, loads one when this CPU has
//! the level's features, and refuses it cleanly (one warning, compiled here, the artifact
//! left for other machines) when the CPU lacks one.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use guardway_wasm::{
    CacheConfig, CompilationCache, CpuBaseline, portable_engine, portable_engine_config,
};
use parking_lot::Mutex;
use wasmtime::{Engine, Instance, Module, Store};

use crate::common::*;

/// Compiles module `n` for `cpu` into the disk cache at `dir`.
fn warm(dir: &Path, cpu: CpuBaseline, n: u32) {
    let cache = CompilationCache::new(CacheConfig::with_disk_dir(dir));
    cache
        .get_or_compile(portable_engine(cpu).unwrap(), &module_bytes(n))
        .unwrap();
    assert_eq!(cache.stats().disk_writes, 1);
    cache.close().unwrap();
}

/// Runs `value` of a module compiled for an engine with epoch interruption.
fn assert_returns_interruptible(engine: &Engine, module: &Module, n: u32) {
    let mut store = Store::new(engine, ());
    store.set_epoch_deadline(1_000_000);
    let instance = Instance::new(&mut store, module, &[]).unwrap();
    let value = instance
        .get_typed_func::<(), i32>(&mut store, "value")
        .unwrap();
    assert_eq!(value.call(&mut store, ()).unwrap(), n as i32);
}

fn has_v3_features() -> bool {
    std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("bmi1")
        && std::is_x86_feature_detected!("bmi2")
        && std::is_x86_feature_detected!("fma")
        && std::is_x86_feature_detected!("lzcnt")
}

#[test]
fn a_portable_artifact_loads_where_the_cpu_has_its_features() {
    if !has_v3_features() {
        eprintln!("*** skipped: this CPU is below x86-64-v3 ***");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    warm(dir.path(), CpuBaseline::X86_64V3, 21);
    let usage = guardway_wasm::disk_usage(dir.path()).unwrap();
    let (_, entry) = usage.by_fingerprint.iter().next().unwrap();
    assert_eq!(entry.cpu_baseline, Some(CpuBaseline::X86_64V3));

    // Another process, with this CPU's engine: nothing in its own directory, the
    // portable artifact is loaded instead of compiling.
    let engine = Engine::new(&portable_engine_config(CpuBaseline::Native).unwrap()).unwrap();
    let cache = CompilationCache::new(CacheConfig::with_disk_dir(dir.path()));
    let module = cache.get_or_compile(&engine, &module_bytes(21)).unwrap();
    assert_returns_interruptible(&engine, &module, 21);
    let stats = cache.stats();
    assert_eq!(
        (
            stats.disk_hits,
            stats.disk_portable_hits,
            stats.compilations
        ),
        (1, 1, 0),
        "{stats:?}"
    );
    cache.close().unwrap();
}

/// This CPU seen as one without the x86-64-v3 features: the v2 features as detected, the
/// v3 ones absent.
fn cpu_without_v3(feature: &str) -> Option<bool> {
    match feature {
        "avx" | "avx2" | "bmi1" | "bmi2" | "fma" | "lzcnt" => Some(false),
        "sse3" => Some(std::is_x86_feature_detected!("sse3")),
        "ssse3" => Some(std::is_x86_feature_detected!("ssse3")),
        "sse4.1" => Some(std::is_x86_feature_detected!("sse4.1")),
        "sse4.2" => Some(std::is_x86_feature_detected!("sse4.2")),
        "popcnt" => Some(std::is_x86_feature_detected!("popcnt")),
        "cmpxchg16b" => Some(std::is_x86_feature_detected!("cmpxchg16b")),
        _ => None,
    }
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn an_artifact_for_another_cpu_baseline_is_refused_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    warm(dir.path(), CpuBaseline::X86_64V3, 22);
    warm(dir.path(), CpuBaseline::X86_64V3, 23);

    // A machine of level v2: its engine compiles for v2 and its CPU has no AVX2.
    let mut config = portable_engine_config(CpuBaseline::X86_64V2).unwrap();
    // SAFETY: the probe only ever reports features absent that this CPU may have, or
    // reports what the CPU really has; code it admits runs here.
    #[allow(unsafe_code)]
    unsafe {
        config.detect_host_feature(cpu_without_v3);
    }
    let host = Engine::new(&config).unwrap();

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let cache = CompilationCache::new(CacheConfig::with_disk_dir(dir.path()));
    for n in [22, 23] {
        let module = cache.get_or_compile(&host, &module_bytes(n)).unwrap();
        assert_returns_interruptible(&host, &module, n);
    }
    let stats = cache.stats();
    assert_eq!(
        (
            stats.disk_portable_refused,
            stats.disk_portable_hits,
            stats.compilations
        ),
        (2, 0, 2),
        "{stats:?}"
    );
    // Not a defect of the cache: no damaged-artifact warning, no error.
    assert_eq!(
        (stats.disk_warnings, stats.disk_errors),
        (0, 0),
        "{stats:?}"
    );
    cache.close().unwrap();
    let text = String::from_utf8(captured.0.lock().clone()).unwrap();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("cannot run on this machine"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(warnings[0].contains("CPU baseline x86-64-v3"), "{text}");

    // The portable artifacts stay for machines that can use them; this machine's own
    // (native to its engine) are beside them, and its next process loads those.
    let usage = guardway_wasm::disk_usage(dir.path()).unwrap();
    let mut levels: Vec<(Option<CpuBaseline>, u64)> = usage
        .by_fingerprint
        .values()
        .map(|entry| (entry.cpu_baseline, entry.artifacts))
        .collect();
    levels.sort();
    assert_eq!(
        levels,
        vec![
            (Some(CpuBaseline::Native), 2),
            (Some(CpuBaseline::X86_64V3), 2)
        ]
    );
    let next = CompilationCache::new(CacheConfig::with_disk_dir(dir.path()));
    for n in [22, 23] {
        next.get_or_compile(&host, &module_bytes(n)).unwrap();
    }
    let stats = next.stats();
    assert_eq!(
        (
            stats.disk_hits,
            stats.disk_portable_refused,
            stats.compilations
        ),
        (2, 0, 0),
        "{stats:?}"
    );
}
