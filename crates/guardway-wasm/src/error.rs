//! Typed errors of the guard host: loading a guard, calling it, and the backend calls it makes.

use std::time::{Duration, Instant};

/// Everything that can go wrong while loading or calling a guard.
///
/// Every variant names the guard; call-time variants also name the export.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// The bytes are not a WebAssembly binary (no `\0asm` magic).
    #[error(
        "guard {name}: not a WebAssembly module (expected the \\0asm magic, found {found:02x?})"
    )]
    NotWasm { name: String, found: Vec<u8> },
    /// Reading the guard file failed.
    #[error("guard {name}: cannot read {path}: {source}")]
    Io {
        name: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The process-wide engine could not be created.
    #[error("wasm engine unavailable: {message}")]
    Engine { message: String },
    /// The module failed to compile or validate.
    #[error("guard {name}: invalid module: {message}")]
    Compile { name: String, message: String },
    /// The module was built as a command (exports `_start` only).
    #[error(
        "guard {name}: module was built as a command (it exports `_start` and none of the guard functions); \
         build it as a library/reactor, e.g. with TinyGo instead of standard Go, or as a Rust cdylib"
    )]
    CommandModule { name: String },
    /// Required exports are missing.
    #[error("guard {name}: missing required exports: {}", missing.join(", "))]
    MissingExports { name: String, missing: Vec<String> },
    /// An export has the wrong type.
    #[error("guard {name}: export `{export}` has type {found}, expected {expected}")]
    BadExport {
        name: String,
        export: String,
        expected: String,
        found: String,
    },
    /// The module imports something the host does not provide.
    #[error("guard {name}: cannot link imports: {message}")]
    Link { name: String, message: String },
    /// Creating an instance failed.
    #[error("guard {name}: cannot create an instance: {message}")]
    Instantiate { name: String, message: String },
    /// The input exceeds the host's limit; the guard was not called.
    #[error("guard {name}: {export} input of {size} bytes exceeds the limit of {limit} bytes")]
    InputTooLarge {
        name: String,
        export: String,
        size: usize,
        limit: usize,
    },
    /// The guard trapped (unreachable, out-of-bounds access, stack overflow, panic, exit).
    #[error("guard {name}: {export} trapped: {message}")]
    Trap {
        name: String,
        export: String,
        message: String,
    },
    /// The guard call exceeded its time limit and was interrupted.
    #[error("guard {name}: {export} exceeded its time limit of {limit:?}")]
    Timeout {
        name: String,
        export: String,
        limit: Duration,
    },
    /// The guard hit its memory cap.
    #[error("guard {name}: {export} exceeded the memory limit of {limit} bytes")]
    MemoryLimit {
        name: String,
        export: String,
        limit: usize,
    },
    /// The guard kept answering `-2` (output buffer too small).
    #[error(
        "guard {name}: {export} output does not fit: tried buffers of {attempts:?} bytes{}, the host's limit is {max} bytes",
        required.map(|r| format!(", the guard asked for {r} bytes")).unwrap_or_default()
    )]
    BufferTooSmall {
        name: String,
        export: String,
        attempts: Vec<usize>,
        required: Option<usize>,
        max: usize,
    },
    /// The guard returned a length larger than its output buffer.
    #[error(
        "guard {name}: {export} returned {returned} bytes but the output buffer holds {buffer}"
    )]
    OutputOverrun {
        name: String,
        export: String,
        returned: usize,
        buffer: usize,
    },
    /// The guard passed or returned a pointer outside its memory.
    #[error(
        "guard {name}: {export}: {what} out of bounds (ptr {ptr}, len {len}, memory {memory} bytes)"
    )]
    OutOfBounds {
        name: String,
        export: String,
        what: String,
        ptr: u32,
        len: usize,
        memory: usize,
    },
    /// The guard's `alloc` could not provide a buffer.
    #[error("guard {name}: {export}: alloc({size}) failed")]
    AllocFailed {
        name: String,
        export: String,
        size: usize,
    },
    /// The guard returned a negative code other than `-2`.
    #[error("guard {name}: {export} failed with code {code}{}",
        last_error.as_ref().map(|e| format!(" (last guard error: {e})")).unwrap_or_default())]
    GuardFailed {
        name: String,
        export: String,
        code: i32,
        last_error: Option<String>,
    },
    /// The guard's output is not the JSON the ABI expects.
    #[error("guard {name}: {export} returned invalid output: {message}")]
    InvalidOutput {
        name: String,
        export: String,
        message: String,
    },
    /// The guard's output could not be parsed as the ABI's payload.
    #[error("guard {name}: {export} output unusable: {source}")]
    Labels {
        name: String,
        export: String,
        #[source]
        source: guardway_difc::LabelParseError,
    },
    /// The guard rejected the session policy in `label_agent`.
    #[error("guard {name}: policy rejected: {message}")]
    PolicyRejected { name: String, message: String },
    /// The guard failed repeatedly and is quarantined; calls are denied until `until`.
    #[error("guard {name}: quarantined ({reason}); calls are denied for another {remaining:?}")]
    Quarantined {
        name: String,
        reason: String,
        until: Instant,
        remaining: Duration,
    },
}

impl GuardError {
    /// Whether this error is a fault of the instance (trap, timeout, memory cap): the
    /// instance that produced it has been discarded.
    pub fn is_instance_fault(&self) -> bool {
        matches!(
            self,
            GuardError::Trap { .. } | GuardError::Timeout { .. } | GuardError::MemoryLimit { .. }
        )
    }
}

/// A failed backend tool call made on behalf of a guard (`env.call_backend`).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BackendCallError {
    /// The backend does not offer the tool, or refuses guard calls to it.
    #[error("tool {tool} is not available to guards")]
    ToolNotAllowed { tool: String },
    /// The backend answered with an error.
    #[error("backend call to {tool} failed: {message}")]
    Failed { tool: String, message: String },
    /// The backend is unreachable.
    #[error("backend unavailable: {message}")]
    Unavailable { message: String },
}
