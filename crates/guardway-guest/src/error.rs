//! Errors of guard functions and of `call_backend`.

/// Why a guard function failed. The export glue logs the message at error
/// level through `host_log` and returns `-1` to the host.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// The host's input was not valid UTF-8 JSON.
    #[error("invalid {export} input: {reason}")]
    InvalidInput {
        export: &'static str,
        reason: String,
    },
    /// The guard refused to label (bad input shape, missing policy, …).
    #[error("{reason}")]
    Refused { reason: String },
    /// A backend look-up failed and the guard cannot label without it.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The output could not be encoded or is too large for the ABI.
    #[error("cannot encode {export} output: {reason}")]
    Output {
        export: &'static str,
        reason: String,
    },
}

impl GuardError {
    /// A refusal with the given reason.
    pub fn refused(reason: impl Into<String>) -> Self {
        Self::Refused {
            reason: reason.into(),
        }
    }
}

/// Why a `call_backend` failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BackendError {
    /// The host answered a negative code other than `-2` (bad request,
    /// backend error, call limit reached, timeout).
    #[error("call_backend {tool} failed with code {code}")]
    Failed { tool: String, code: i32 },
    /// The result did not fit even the buffer sized from the host's hint.
    #[error("call_backend {tool} result does not fit {size} bytes (needed {needed})")]
    ResultTooLarge {
        tool: String,
        size: usize,
        needed: usize,
    },
    /// The buffer for the result could not be allocated.
    #[error("call_backend {tool} cannot allocate a {size}-byte result buffer")]
    OutOfMemory { tool: String, size: usize },
    /// The host reported more bytes than the buffer holds.
    #[error("call_backend {tool} reported {len} bytes for a {size}-byte buffer")]
    LengthOutOfRange {
        tool: String,
        len: usize,
        size: usize,
    },
    /// The result was not JSON.
    #[error("call_backend {tool} returned invalid JSON: {reason}")]
    InvalidResult { tool: String, reason: String },
    /// The tool name or arguments are too long for the ABI.
    #[error("call_backend {tool} request too large ({len} bytes)")]
    RequestTooLarge { tool: String, len: usize },
    /// No backend is reachable (host builds without a stub installed).
    #[error("call_backend {tool} unavailable: not running inside a guard host")]
    Unavailable { tool: String },
}
