//! The process-wide `wasmtime::Engine`: its configuration (one function) and the epoch ticker.

use std::sync::OnceLock;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use crate::error::GuardError;

/// Interval of the epoch ticker; guard code yields to the async executor and checks its
/// deadline at this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Largest linear memory any instance may have; per-guard caps (`GuardOptions::memory_limit`)
/// must be at most this.
pub const MAX_MEMORY_LIMIT: usize = 1024 * 1024 * 1024;

/// Concurrent instances the pooling allocator provides slots for (virtual reservations only).
const POOLED_INSTANCES: u32 = 1000;

/// The engine configuration every guardway engine uses (Cranelift, epoch interruption,
/// async calls, pooling allocator with copy-on-write memory images).
///
/// Tests and the compilation cache build identical engines from it.
pub fn engine_config() -> Config {
    let mut config = base_config();
    let mut pooling = PoolingAllocationConfig::new();
    pooling
        .total_core_instances(POOLED_INSTANCES)
        .total_memories(POOLED_INSTANCES)
        .total_tables(POOLED_INSTANCES)
        .total_stacks(POOLED_INSTANCES)
        .max_memory_size(MAX_MEMORY_LIMIT)
        // Keep a little of each memory resident so reused slots skip page faults.
        .linear_memory_keep_resident(64 * 1024)
        .max_unused_warm_slots(100);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    config
}

/// Everything but the allocation strategy; also used for the on-demand fallback.
fn base_config() -> Config {
    let mut config = Config::new();
    config
        .strategy(wasmtime::Strategy::Cranelift)
        .cranelift_opt_level(OptLevel::Speed)
        .epoch_interruption(true)
        .memory_init_cow(true);
    config
}

static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();

/// The process-wide engine, created on first use together with its epoch ticker thread.
///
/// `Engine` is `Send + Sync`; clones are cheap reference-count bumps.
///
/// # Errors
///
/// [`GuardError::Engine`] when neither the pooling nor the on-demand configuration can be
/// built on this machine (the outcome of the first attempt is remembered).
pub fn engine() -> Result<&'static Engine, GuardError> {
    ENGINE
        .get_or_init(|| {
            let engine = match Engine::new(&engine_config()) {
                Ok(engine) => engine,
                Err(pooling_error) => {
                    tracing::warn!(
                        error = %pooling_error,
                        "pooling allocator unavailable; using on-demand instance allocation"
                    );
                    Engine::new(&base_config()).map_err(|e| e.to_string())?
                }
            };
            start_epoch_ticker(&engine);
            Ok(engine)
        })
        .as_ref()
        .map_err(|message| GuardError::Engine {
            message: message.clone(),
        })
}

/// Starts a thread that increments `engine`'s epoch every [`EPOCH_TICK`] until the engine
/// is dropped.
pub fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("guardway-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the epoch ticker; guard time limits will not fire");
    }
}
