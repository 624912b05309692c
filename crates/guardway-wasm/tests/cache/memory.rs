//! The memory tier: hits, LRU eviction by bytes, single flight, failures, engines.

use std::sync::{Arc, Barrier};
use std::thread;

use guardway_wasm::{CacheError, CacheMode, CompilationCache};

use crate::common::{assert_returns, engine, key, module_bytes};

#[test]
fn ten_loads_of_the_same_bytes_compile_once() {
    let engine = engine();
    let cache = Arc::new(CompilationCache::in_memory(64 << 20));
    let mode = CacheMode::Injected(cache.clone());
    let bytes = module_bytes(1);
    for _ in 0..10 {
        let module = mode.get_or_compile(&engine, &bytes).unwrap();
        assert_returns(&engine, &module, 1);
    }
    let stats = cache.stats();
    assert_eq!(stats.compilations, 1);
    assert_eq!(stats.misses, 1);
    assert_eq!(stats.memory_hits, 9);
    assert_eq!(stats.memory_entries, 1);
    assert!(stats.memory_bytes > 0);
    assert!(stats.compile_time_saved >= stats.compile_time * 9);
    cache.close().unwrap();
}

#[test]
fn eight_threads_loading_one_uncached_module_compile_once() {
    let engine = engine();
    let cache = Arc::new(CompilationCache::in_memory(64 << 20));
    // Many functions so that compiling takes a while and the threads overlap.
    let mut text = String::from("(module (func (export \"value\") (result i32) i32.const 88)");
    for i in 0..300 {
        text.push_str(&format!(
            "(func (export \"f{i}\") (param i32) (result i32) local.get 0 i32.const {i} i32.mul i32.const 7 i32.add)"
        ));
    }
    text.push(')');
    let bytes = wat::parse_str(text).unwrap();
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (cache, engine, bytes, barrier) = (
                cache.clone(),
                engine.clone(),
                bytes.clone(),
                barrier.clone(),
            );
            thread::spawn(move || {
                barrier.wait();
                cache.get_or_compile(&engine, &bytes).unwrap()
            })
        })
        .collect();
    for thread in threads {
        let module = thread.join().unwrap();
        assert_returns(&engine, &module, 88);
    }
    let stats = cache.stats();
    assert_eq!(stats.compilations, 1);
    assert_eq!(stats.misses, 1);
    assert_eq!(stats.shared_loads + stats.memory_hits, 7);
}

#[test]
fn a_failed_compilation_reaches_every_waiter_and_is_not_cached() {
    let engine = engine();
    let cache = Arc::new(CompilationCache::in_memory(64 << 20));
    let bytes = b"\0asm\x01\0\0\0\x01\xff garbage".to_vec();
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (cache, engine, bytes, barrier) = (
                cache.clone(),
                engine.clone(),
                bytes.clone(),
                barrier.clone(),
            );
            thread::spawn(move || {
                barrier.wait();
                cache.get_or_compile(&engine, &bytes)
            })
        })
        .collect();
    for thread in threads {
        let err = thread.join().unwrap().unwrap_err();
        match err {
            CacheError::Compile {
                module_hash,
                message,
            } => {
                assert_eq!(module_hash, blake3::hash(&bytes).to_hex().to_string());
                assert!(!message.is_empty());
            }
            other => panic!("unexpected error {other:?}"),
        }
    }
    let stats = cache.stats();
    assert!(stats.compile_failures >= 1);
    assert_eq!(stats.compile_failures, stats.compilations);
    assert_eq!(stats.memory_entries, 0);
    assert!(!cache.contains_in_memory(&key(&engine, &bytes)));

    // Not cached: the next request compiles (and fails) again.
    let before = cache.stats().compilations;
    assert!(cache.get_or_compile(&engine, &bytes).is_err());
    assert_eq!(cache.stats().compilations, before + 1);
}

#[test]
fn the_memory_bound_evicts_the_least_recently_used() {
    let engine = engine();
    let modules: Vec<Vec<u8>> = (100..104).map(module_bytes).collect();

    // Measure what each module costs in memory.
    let scratch = CompilationCache::in_memory(u64::MAX);
    let mut sizes = Vec::new();
    for bytes in &modules {
        let before = scratch.stats().memory_bytes;
        scratch.get_or_compile(&engine, bytes).unwrap();
        sizes.push(scratch.stats().memory_bytes - before);
    }
    assert!(sizes.iter().all(|&size| size > 0 && size == sizes[0]));

    // Room for exactly three.
    let cache = CompilationCache::in_memory(sizes[0] * 3 + sizes[0] / 2);
    for bytes in &modules[..3] {
        cache.get_or_compile(&engine, bytes).unwrap();
    }
    // Use the first again: the second becomes the least recently used.
    cache.get_or_compile(&engine, &modules[0]).unwrap();
    cache.get_or_compile(&engine, &modules[3]).unwrap();

    let stats = cache.stats();
    assert_eq!(stats.memory_evictions, 1);
    assert_eq!(stats.memory_entries, 3);
    assert_eq!(stats.memory_bytes, sizes[0] * 3);
    let present: Vec<bool> = modules
        .iter()
        .map(|bytes| cache.contains_in_memory(&key(&engine, bytes)))
        .collect();
    assert_eq!(present, [true, false, true, true]);

    // The evicted one compiles again; the survivors are hits.
    let compilations = stats.compilations;
    cache.get_or_compile(&engine, &modules[2]).unwrap();
    assert_eq!(cache.stats().compilations, compilations);
    let module = cache.get_or_compile(&engine, &modules[1]).unwrap();
    assert_eq!(cache.stats().compilations, compilations + 1);
    assert_returns(&engine, &module, 101);
}

#[test]
fn a_module_larger_than_the_bound_is_compiled_but_not_kept() {
    let engine = engine();
    let cache = CompilationCache::in_memory(16);
    let bytes = module_bytes(5);
    for _ in 0..2 {
        let module = cache.get_or_compile(&engine, &bytes).unwrap();
        assert_returns(&engine, &module, 5);
    }
    let stats = cache.stats();
    assert_eq!(stats.compilations, 2);
    assert_eq!(stats.memory_entries, 0);
    assert_eq!(stats.memory_bytes, 0);
}

#[test]
fn another_engine_with_the_same_configuration_gets_its_own_module() {
    let first = engine();
    let second = engine();
    let cache = CompilationCache::in_memory(64 << 20);
    let bytes = module_bytes(9);
    let a = cache.get_or_compile(&first, &bytes).unwrap();
    let b = cache.get_or_compile(&second, &bytes).unwrap();
    assert_returns(&first, &a, 9);
    assert_returns(&second, &b, 9);
    assert_eq!(cache.stats().compilations, 2);
    // Same fingerprint, same key.
    assert_eq!(key(&first, &bytes), key(&second, &bytes));
}

#[test]
fn a_changed_engine_configuration_is_a_different_key() {
    let plain = engine();
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(true);
    let interruptible = wasmtime::Engine::new(&config).unwrap();
    let bytes = module_bytes(3);
    assert_ne!(key(&plain, &bytes), key(&interruptible, &bytes));
}
