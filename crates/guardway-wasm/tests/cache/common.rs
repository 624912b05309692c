//! Helpers shared by the cache tests: small distinct modules, checking a module works.

use std::path::{Path, PathBuf};

use guardway_wasm::{CacheKey, EngineFingerprint};
use wasmtime::{Engine, Instance, Module, Store};

/// A small module whose export `value` returns `n`; distinct `n`, distinct bytes.
pub fn module_bytes(n: u32) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
             (memory (export "memory") 1)
             (func (export "value") (result i32) i32.const {n}))"#
    ))
    .unwrap()
}

/// Instantiates the module and checks that `value` returns `n`.
pub fn assert_returns(engine: &Engine, module: &Module, n: u32) {
    let mut store = Store::new(engine, ());
    let instance = Instance::new(&mut store, module, &[]).unwrap();
    let value = instance
        .get_typed_func::<(), i32>(&mut store, "value")
        .unwrap();
    assert_eq!(value.call(&mut store, ()).unwrap(), n as i32);
}

pub fn engine() -> Engine {
    Engine::new(&wasmtime::Config::new()).unwrap()
}

/// `<dir>/<engine fingerprint>/<blake3 of bytes>.cwasm`, computed independently.
pub fn expected_artifact_path(dir: &Path, engine: &Engine, bytes: &[u8]) -> PathBuf {
    dir.join(EngineFingerprint::of(engine).to_string())
        .join(format!("{}.cwasm", blake3::hash(bytes).to_hex()))
}

pub fn key(engine: &Engine, bytes: &[u8]) -> CacheKey {
    CacheKey::new(engine, bytes)
}
