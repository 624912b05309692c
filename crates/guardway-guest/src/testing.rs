//! Host-side stand-ins for the guard host (non-wasm targets only): a
//! capture for `host_log` lines and an installable `call_backend` stub, so
//! guard logic is unit-tested with `cargo test` on the host.
//!
//! Both are thread-local: each test thread sees only its own logs and stub.

use std::cell::{Cell, RefCell};

use serde_json::Value;

use crate::{BackendError, LogLevel};

type BackendStub = Box<dyn FnMut(&str, &Value) -> Result<Value, BackendError>>;

thread_local! {
    static LOG_CAPTURE: RefCell<Option<Vec<(LogLevel, String)>>> = const { RefCell::new(None) };
    static BACKEND: RefCell<Option<BackendStub>> = const { RefCell::new(None) };
    static BACKEND_CALLS: Cell<usize> = const { Cell::new(0) };
}

/// Runs `f` and returns the log lines it sent, in order.
pub fn capture_logs(f: impl FnOnce()) -> Vec<(LogLevel, String)> {
    with_captured_logs(f).1
}

/// Runs `f` and returns its result with the log lines it sent.
pub fn with_captured_logs<R>(f: impl FnOnce() -> R) -> (R, Vec<(LogLevel, String)>) {
    let previous = LOG_CAPTURE.with(|capture| capture.replace(Some(Vec::new())));
    let result = f();
    let lines = LOG_CAPTURE
        .with(|capture| capture.replace(previous))
        .unwrap_or_default();
    (result, lines)
}

pub(crate) fn record_log(level: LogLevel, message: &str) {
    LOG_CAPTURE.with(|capture| {
        if let Some(lines) = capture.borrow_mut().as_mut() {
            lines.push((level, message.to_owned()));
        }
    });
}

/// Installs the function that answers `call_backend` on this thread and
/// resets the call counter. Its result goes through the same `-2` buffer
/// protocol as on wasm (computed once, as the host keeps it for the retry).
pub fn set_backend(stub: impl FnMut(&str, &Value) -> Result<Value, BackendError> + 'static) {
    BACKEND.with(|backend| *backend.borrow_mut() = Some(Box::new(stub)));
    BACKEND_CALLS.with(|calls| calls.set(0));
}

/// Removes the stub: `call_backend` fails with [`BackendError::Unavailable`].
pub fn clear_backend() {
    BACKEND.with(|backend| *backend.borrow_mut() = None);
    BACKEND_CALLS.with(|calls| calls.set(0));
}

/// How many times the stub answered since [`set_backend`].
pub fn backend_calls() -> usize {
    BACKEND_CALLS.with(Cell::get)
}

pub(crate) fn stub_call(tool: &str, args: &[u8]) -> Result<Vec<u8>, BackendError> {
    let args: Value = if args.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(args).map_err(|err| BackendError::InvalidResult {
            tool: tool.to_owned(),
            reason: err.to_string(),
        })?
    };
    // Taken out for the call so a stub may itself log or call back.
    let Some(mut stub) = BACKEND.with(|backend| backend.borrow_mut().take()) else {
        return Err(BackendError::Unavailable {
            tool: tool.to_owned(),
        });
    };
    BACKEND_CALLS.with(|calls| calls.set(calls.get() + 1));
    let answer = stub(tool, &args);
    BACKEND.with(|backend| {
        let mut slot = backend.borrow_mut();
        if slot.is_none() {
            *slot = Some(stub);
        }
    });
    let payload = serde_json::to_vec(&answer?).map_err(|err| BackendError::InvalidResult {
        tool: tool.to_owned(),
        reason: err.to_string(),
    })?;
    crate::host::call_with_retry(tool, crate::host::INITIAL_RESULT_BUFFER, |buffer| {
        if payload.len() > buffer.len() {
            if let Some(head) = buffer.get_mut(..4) {
                head.copy_from_slice(&(payload.len() as u32).to_le_bytes());
            }
            return -2;
        }
        buffer[..payload.len()].copy_from_slice(&payload);
        payload.len() as i32
    })
}
