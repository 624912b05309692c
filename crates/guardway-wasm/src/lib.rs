//! The guard host: loads WebAssembly DIFC guards and calls them through the guard ABI.
//!
//! - [`GuardModule`]: a compiled, validated, pre-linked guard (cheap to clone).
//! - [`Guard`]: a module plus a session policy, serving calls from a pool of instances.
//! - [`Backend`]: what a guard's `call_backend` reaches (implemented by the gateway).
//!
//! # Running guard calls
//!
//! The [`Guard`] API is async. WebAssembly runs inside the calling task (on a wasmtime
//! fiber): every [`engine::EPOCH_TICK`] the guard yields back to the executor, so a long
//! guard call never holds a tokio worker for more than about one tick, and `call_backend`
//! awaits the backend without blocking a thread. The gateway therefore calls guards
//! directly from its request tasks on the multi-threaded tokio runtime; no
//! `spawn_blocking` is needed. A call must run inside a tokio runtime (backend timeouts
//! use `tokio::time`).

mod abi;
mod engine;
mod error;
mod imports;
mod instance;
mod limits;
mod module;
mod options;
mod pool;
mod quarantine;

pub use abi::GuardExport;
pub use engine::{EPOCH_TICK, MAX_MEMORY_LIMIT, engine, engine_config, start_epoch_ticker};
pub use error::{BackendCallError, GuardError};
pub use imports::{Backend, BoxFuture, GUARD_LOG_TARGET};
pub use module::GuardModule;
pub use options::{GuardOptions, LogRateLimit, MIB, QuarantineOptions};
pub use pool::{Guard, GuardStats};
pub use quarantine::{Clock, GuardHealth, SystemClock};
