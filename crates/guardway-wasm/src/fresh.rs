//! `FreshInstance`: one new instance of a guard driven directly, with no pool and no policy
//! replay, for tools that run a few calls exactly as a new session's first calls would run
//! (`guardway guard test`, `guardway guard call`).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::abi::GuardExport;
use crate::error::GuardError;
use crate::imports::{Backend, LogDropSummary};
use crate::instance::{GuardInstance, InstanceSettings};
use crate::module::GuardModule;
use crate::options::GuardOptions;

/// A single new instance of a guard. Nothing is called on creation: a caller that has a
/// policy calls `label_agent` first, as the gateway does before a session's first call.
///
/// Not `Clone`; one call at a time (`&mut self`). After a fault (trap, timeout, memory
/// cap) the instance refuses further calls, as the gateway discards such instances.
pub struct FreshInstance {
    instance: GuardInstance,
    name: Arc<str>,
}

impl std::fmt::Debug for FreshInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FreshInstance")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl FreshInstance {
    /// Instantiates `module` with the limits, log settings and observer of `options`;
    /// `backend` serves the guard's `call_backend` (`None`: every call answers `-1`).
    ///
    /// # Errors
    ///
    /// Instantiation errors ([`GuardError::Instantiate`], [`GuardError::MemoryLimit`],
    /// [`GuardError::Timeout`]).
    pub async fn new(
        module: &GuardModule,
        options: &GuardOptions,
        backend: Option<Arc<dyn Backend>>,
    ) -> Result<FreshInstance, GuardError> {
        let name: Arc<str> = match &options.name {
            Some(name) => Arc::from(name.as_str()),
            None => Arc::clone(&module.inner.name),
        };
        let initial = options.output_buffer_initial.max(1);
        let settings = Arc::new(InstanceSettings {
            name: Arc::clone(&name),
            memory_limit: options.memory_limit.min(crate::engine::MAX_MEMORY_LIMIT),
            call_timeout: options.call_timeout,
            output_buffer_initial: initial,
            output_buffer_max: options.output_buffer_max.max(initial),
            output_attempts: options.output_attempts.max(1),
            max_input: options.max_input,
            max_backend_calls: options.max_backend_calls,
            log_rate: options.log_rate,
            backend,
            log_lines_dropped: Arc::new(AtomicU64::new(0)),
            log_drops: Arc::new(LogDropSummary::new(
                Arc::clone(&name),
                options.log_drop_summary_interval,
                Arc::clone(&options.clock),
            )),
            backend_calls: Arc::new(AtomicU64::new(0)),
            observer: options.observer.clone(),
        });
        let instance = GuardInstance::new(module, &settings).await?;
        Ok(FreshInstance { instance, name })
    }

    /// The guard's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Calls `export` with raw input bytes and returns its raw output (empty when the
    /// guard returned 0).
    ///
    /// # Errors
    ///
    /// As [`crate::Guard::call`]; [`GuardError::Instantiate`] once the instance faulted.
    pub async fn call(&mut self, export: GuardExport, input: &[u8]) -> Result<Vec<u8>, GuardError> {
        if self.instance.is_poisoned() {
            return Err(GuardError::Instantiate {
                name: self.name.to_string(),
                message: "the instance faulted in an earlier call and cannot be called again"
                    .to_owned(),
            });
        }
        self.instance.call(export, input).await
    }
}
