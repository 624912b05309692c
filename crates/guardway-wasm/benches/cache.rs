//! Benchmarks of the compilation cache: cold compile, memory hit (+ instantiation),
//! disk hit in a fresh cache.
//!
//! The guard is the file named by `GUARDWAY_BENCH_GUARD`, else the sample
//! guard if it was built, else a generated module.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use guardway_wasm::{CacheConfig, CompilationCache, compile_uncached};
use wasmtime::{Engine, Linker, Module, Store};

fn guard_bytes() -> (String, Vec<u8>) {
    if let Ok(path) = std::env::var("GUARDWAY_BENCH_GUARD") {
        let bytes = std::fs::read(&path).expect("GUARDWAY_BENCH_GUARD names a readable file");
        return (path, bytes);
    }
    let sample = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../guards/sample-guard/target/wasm32-wasip1/release/sample_guard.wasm");
    if let Ok(bytes) = std::fs::read(&sample) {
        return (sample.display().to_string(), bytes);
    }
    let mut text = String::from("(module (memory (export \"memory\") 1)");
    for i in 0..500 {
        text.push_str(&format!(
            "(func (export \"f{i}\") (param i32) (result i32) local.get 0 i32.const {i} i32.mul i32.const 7 i32.add)"
        ));
    }
    text.push(')');
    (
        "generated (500 functions)".to_owned(),
        wat::parse_str(text).unwrap(),
    )
}

fn instantiate(runtime: &tokio::runtime::Runtime, engine: &Engine, module: &Module) {
    let mut linker: Linker<()> = Linker::new(engine);
    linker.define_unknown_imports_as_traps(module).unwrap();
    let mut store = Store::new(engine, ());
    store.set_epoch_deadline(1_000_000);
    runtime
        .block_on(linker.instantiate_async(&mut store, module))
        .unwrap();
}

fn bench_cache(c: &mut Criterion) {
    let engine = guardway_wasm::engine().unwrap().clone();
    let (name, bytes) = guard_bytes();
    eprintln!("guard: {name} ({} bytes)", bytes.len());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    let mut group = c.benchmark_group("cache");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("cold_compile", |b| {
        b.iter(|| compile_uncached(&engine, &bytes).unwrap())
    });
    group.finish();

    let mut group = c.benchmark_group("cache");
    let memory = CompilationCache::in_memory(256 << 20);
    memory.get_or_compile(&engine, &bytes).unwrap();
    group.bench_function("memory_hit", |b| {
        b.iter(|| memory.get_or_compile(&engine, &bytes).unwrap())
    });
    group.bench_function("memory_hit_and_instantiate", |b| {
        b.iter(|| {
            let module = memory.get_or_compile(&engine, &bytes).unwrap();
            instantiate(&runtime, &engine, &module);
        })
    });

    let dir = tempfile::tempdir().unwrap();
    let config = CacheConfig::with_disk_dir(dir.path());
    let warm = Arc::new(CompilationCache::new(config.clone()));
    warm.get_or_compile(&engine, &bytes).unwrap();
    assert_eq!(warm.stats().disk_writes, 1, "the disk tier must be usable");
    group.bench_function("disk_hit_fresh_cache", |b| {
        b.iter(|| {
            let fresh = CompilationCache::new(config.clone());
            let module = fresh.get_or_compile(&engine, &bytes).unwrap();
            debug_assert_eq!(fresh.stats().disk_hits, 1);
            module
        })
    });
    group.finish();
}

criterion_group!(benches, bench_cache);
criterion_main!(benches);
