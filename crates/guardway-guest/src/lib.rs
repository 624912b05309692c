//! SDK for writing guardway DIFC guards in Rust for `wasm32-wasip1`.
//!
//! A guard implements [`Guard`] (three functions taking and returning
//! `serde_json::Value`) and exports it with [`export_guard!`]:
//!
//! ```ignore
//! #[derive(Default)]
//! struct MyGuard { policy: Option<serde_json::Value> }
//!
//! impl guardway_guest::Guard for MyGuard {
//!     fn label_agent(&mut self, policy: Value) -> Result<Value, GuardError> { /* … */ }
//!     fn label_resource(&mut self, input: Value) -> Result<Value, GuardError> { /* … */ }
//!     fn label_response(&mut self, input: Value) -> Result<Option<Value>, GuardError> { /* … */ }
//! }
//!
//! guardway_guest::export_guard!(MyGuard);
//! ```
//!
//! The macro generates, on `wasm32` only, the exports the host calls:
//! `label_agent`, `label_resource` and `label_response` with the
//! `(input_ptr, input_len, output_ptr, output_size) -> i32` signature, plus
//! `alloc` and `dealloc`. Output that does not fit the host's buffer is
//! answered with `-2` and the needed size as a little-endian u32 in the first
//! four bytes; the computed output is kept for the host's immediate retry.
//!
//! [`log`] functions wrap the `env.host_log` import and [`call_backend`]
//! wraps `env.call_backend` (retrying once with the host's size hint when
//! the result does not fit). On other targets both are stand-ins (see
//! [`testing`]) so guard logic builds and is unit-tested on the host.

mod error;
mod export;
mod guard;
mod host;
pub mod log;
pub mod mcp;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use error::{BackendError, GuardError};
pub use export::{Export, GuardCell};
pub use guard::Guard;
pub use host::call_backend;
pub use log::LogLevel;

/// Re-export so guards need no direct dependency to name JSON values.
pub use serde_json;

/// Glue used by [`export_guard!`]; not part of the stable API.
#[doc(hidden)]
pub mod __private {
    #[cfg(target_arch = "wasm32")]
    pub use crate::export::wasm::{alloc, call_export, dealloc};
}

/// Exports a [`Guard`] type as a guardway guard module.
///
/// Generates (only when compiling for `wasm32`) the `label_agent`,
/// `label_resource`, `label_response`, `alloc` and `dealloc` exports. The
/// guard value is created with `Default` on the first call and lives in a
/// static [`GuardCell`] for the life of the instance. Invoke it once per
/// cdylib crate.
#[macro_export]
macro_rules! export_guard {
    // One `label_*` export calling `call_export` on the guard cell.
    (@export $cell:ident, $name:ident, $export:ident) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn $name(
            input_ptr: i32,
            input_len: i32,
            output_ptr: i32,
            output_size: i32,
        ) -> i32 {
            $crate::__private::call_export(
                &$cell,
                $crate::Export::$export,
                input_ptr,
                input_len,
                output_ptr,
                output_size,
            )
        }
    };
    ($guard:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            static GUARDWAY_GUARD_CELL: $crate::GuardCell<$guard> = $crate::GuardCell::new();

    $crate::export_guard!(@export GUARDWAY_GUARD_CELL, label_agent, LabelAgent);
    $crate::export_guard!(@export GUARDWAY_GUARD_CELL, label_resource, LabelResource);
    $crate::export_guard!(@export GUARDWAY_GUARD_CELL, label_response, LabelResponse);

            #[unsafe(no_mangle)]
            pub extern "C" fn alloc(size: i32) -> i32 {
                $crate::__private::alloc(size)
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn dealloc(ptr: i32, size: i32) {
                $crate::__private::dealloc(ptr, size)
            }
        };
    };
}
