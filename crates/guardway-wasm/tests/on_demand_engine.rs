//! A process engine with on-demand instance allocation (one-shot commands) compiles the same
//! code as the pooling one: it loads the pooling engine's artifacts from disk and runs
//! them. (A test binary of its own: the choice is process-wide and made once.)

use std::path::PathBuf;
use std::sync::Arc;

use guardway_wasm::{
    CacheConfig, CacheMode, CompilationCache, EngineFingerprint, Guard, GuardCompiler, GuardExport,
    GuardModule, GuardOptions, InstanceAllocation, configure_instance_allocation, engine,
    engine_config,
};
use serde_json::json;

#[tokio::test]
async fn an_on_demand_engine_loads_and_runs_the_pooling_engines_artifacts() {
    configure_instance_allocation(InstanceAllocation::OnDemand).unwrap();
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/echo.wat");
    let bytes = wat::parse_file(fixture).unwrap();
    let dir = tempfile::tempdir().unwrap();

    // A gateway process (pooling engine) compiled the guard into the disk cache.
    let pooling = wasmtime::Engine::new(&engine_config()).unwrap();
    let writer = CompilationCache::new(CacheConfig::with_disk_dir(dir.path()));
    writer.get_or_compile(&pooling, &bytes).unwrap();
    assert_eq!(writer.stats().disk_writes, 1);

    // A one-shot process loads it without compiling.
    let process = engine().unwrap();
    assert_eq!(
        EngineFingerprint::of(process),
        EngineFingerprint::of(&pooling)
    );
    let cache = Arc::new(CompilationCache::new(CacheConfig::with_disk_dir(
        dir.path(),
    )));
    let options = GuardOptions::default()
        .with_cache(CacheMode::Injected(cache.clone()))
        .with_compiler(GuardCompiler::Auto)
        .with_pool_size(2);
    let module = GuardModule::from_bytes("echo", &bytes, &options).unwrap();
    let stats = cache.stats();
    assert_eq!((stats.disk_hits, stats.compilations), (1, 0), "{stats:?}");
    let policy = json!({"allow-only": {"repos": ["octo-org/*"], "min-integrity": "approved"}});
    let guard = Guard::new(module, &policy, options, None).await.unwrap();
    for _ in 0..3 {
        let out = guard
            .call(GuardExport::LabelResponse, br#"{"echo":1}"#)
            .await
            .unwrap();
        assert_eq!(out, br#"{"echo":1}"#);
    }

    // Chosen once: a later choice is refused and says what is in force.
    assert_eq!(
        configure_instance_allocation(InstanceAllocation::Pooling),
        Err(InstanceAllocation::OnDemand)
    );
}
