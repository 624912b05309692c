//! The process-wide compilation cache: shared by default, untouched by injected
//! caches and by disabled caching, closed cleanly at the end.
//!
//! One test function, so that nothing else in this binary touches the
//! process-wide counters while it runs.

use std::sync::Arc;

use guardway_wasm::{CacheConfig, CacheMode, CompilationCache, uncached_compilations};
use wasmtime::{Engine, Instance, Module, Store};

fn module_bytes(n: u32) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module (func (export "value") (result i32) i32.const {n}))"#
    ))
    .unwrap()
}

fn assert_returns(engine: &Engine, module: &Module, n: u32) {
    let mut store = Store::new(engine, ());
    let instance = Instance::new(&mut store, module, &[]).unwrap();
    let value = instance
        .get_typed_func::<(), i32>(&mut store, "value")
        .unwrap();
    assert_eq!(value.call(&mut store, ()).unwrap(), n as i32);
}

#[test]
fn the_process_wide_cache_is_shared_injectable_and_disableable() {
    CompilationCache::configure_global(CacheConfig {
        memory_max_bytes: 32 << 20,
        ..CacheConfig::default()
    })
    .unwrap();
    let engine = Engine::default();
    let global = CompilationCache::global();
    assert!(Arc::ptr_eq(&global, &CompilationCache::global()));
    assert_eq!(global.config().memory_max_bytes, 32 << 20);
    // Configuring again is refused.
    assert!(CompilationCache::configure_global(CacheConfig::default()).is_err());

    // Shared (the default): ten loads, one compilation.
    let bytes = module_bytes(10);
    for _ in 0..10 {
        let module = CacheMode::default()
            .get_or_compile(&engine, &bytes)
            .unwrap();
        assert_returns(&engine, &module, 10);
    }
    let shared = global.stats();
    assert_eq!(shared.compilations, 1);
    assert_eq!(shared.memory_hits, 9);

    // Disabled: ten loads, ten compilations, none in the shared cache.
    let before = uncached_compilations();
    for _ in 0..10 {
        let module = CacheMode::Disabled.get_or_compile(&engine, &bytes).unwrap();
        assert_returns(&engine, &module, 10);
    }
    assert_eq!(uncached_compilations() - before, 10);
    assert_eq!(global.stats(), shared);

    // Injected: its own counters move, the shared ones do not.
    let injected = Arc::new(CompilationCache::in_memory(8 << 20));
    let mode = CacheMode::Injected(injected.clone());
    for n in [10, 11, 11] {
        let module = mode.get_or_compile(&engine, &module_bytes(n)).unwrap();
        assert_returns(&engine, &module, n);
    }
    assert_eq!(injected.stats().compilations, 2);
    assert_eq!(injected.stats().memory_hits, 1);
    assert_eq!(global.stats(), shared);
    injected.close().unwrap();

    global.close().unwrap();
}
