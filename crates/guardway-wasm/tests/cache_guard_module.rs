//! Loading guards goes through the compilation cache their options select:
//! the process-wide cache by default, an injected one, or none. (Cranelift
//! only, so that every count is exact: no background compilation runs.)
//!
//! One test function, so that nothing else in this binary touches the
//! process-wide counters while it runs.

use std::path::PathBuf;
use std::sync::Arc;

use guardway_wasm::{
    CacheMode, CompilationCache, GuardCompiler, GuardModule, GuardOptions, uncached_compilations,
};

fn cranelift() -> GuardOptions {
    GuardOptions::default().with_compiler(GuardCompiler::Cranelift)
}

fn echo_guard() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/echo.wat");
    wat::parse_file(path).unwrap()
}

#[test]
fn ten_guard_modules_from_the_same_bytes_compile_once_unless_disabled() {
    let bytes = echo_guard();
    let global = CompilationCache::global();
    let before = global.stats();

    // The default options use the process-wide cache.
    let modules: Vec<GuardModule> = (0..10)
        .map(|_| GuardModule::from_bytes("echo", &bytes, &cranelift()).unwrap())
        .collect();
    let shared = global.stats();
    assert_eq!(shared.compilations - before.compilations, 1);
    assert_eq!(shared.memory_hits - before.memory_hits, 9);
    assert!(
        modules
            .iter()
            .all(|m| m.has_allocator() == modules[0].has_allocator())
    );

    // Disabled: ten compilations, the process-wide cache untouched.
    let uncached = uncached_compilations();
    let disabled = cranelift().with_cache(CacheMode::Disabled);
    for _ in 0..10 {
        GuardModule::from_bytes("echo", &bytes, &disabled).unwrap();
    }
    assert_eq!(uncached_compilations() - uncached, 10);
    assert_eq!(global.stats(), shared);

    // Injected: its own counters move, the process-wide ones do not.
    let injected = Arc::new(CompilationCache::in_memory(64 << 20));
    let options = cranelift().with_cache(CacheMode::Injected(injected.clone()));
    for _ in 0..10 {
        GuardModule::from_bytes("echo", &bytes, &options).unwrap();
    }
    assert_eq!(injected.stats().compilations, 1);
    assert_eq!(injected.stats().memory_hits, 9);
    assert_eq!(global.stats(), shared);

    // A module that does not compile is reported as a guard compile error.
    let broken = b"\0asm\x01\0\0\0\x01\xff".to_vec();
    let err = GuardModule::from_bytes("broken", &broken, &options).unwrap_err();
    assert!(err.to_string().contains("broken"), "{err}");

    injected.close().unwrap();
    global.close().unwrap();
}
