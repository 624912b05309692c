//! The export side of the ABI: running a guard function on the host's input
//! bytes, the `-2` answer when the output does not fit, and (on wasm) the
//! raw-pointer glue behind `export_guard!`, `alloc` and `dealloc`.

use std::sync::{Mutex, PoisonError};

use serde_json::Value;

use crate::{Guard, GuardError};

/// One of the three guard functions the host calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    LabelAgent,
    LabelResource,
    LabelResponse,
}

impl Export {
    /// The export's name in the wasm module.
    pub fn name(self) -> &'static str {
        match self {
            Export::LabelAgent => "label_agent",
            Export::LabelResource => "label_resource",
            Export::LabelResponse => "label_response",
        }
    }
}

/// The per-instance home of a guard value: created with `Default` on the
/// first call, kept for the life of the instance. Also keeps an output that
/// did not fit the host's buffer, so the host's immediate retry with the
/// same input gets it without recomputing.
///
/// Thread-safe (a mutex), though a wasm instance is single-threaded.
pub struct GuardCell<G> {
    state: Mutex<CellState<G>>,
}

struct CellState<G> {
    guard: Option<G>,
    pending: Option<PendingOutput>,
}

/// An output computed for an input whose buffer was too small.
struct PendingOutput {
    export: Export,
    input: Vec<u8>,
    output: Vec<u8>,
}

/// What a guard function call produced, before it is written to guard memory.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// These bytes fit the output buffer.
    Fits(Vec<u8>),
    /// The output needs `needed` bytes, more than the buffer holds.
    TooSmall { needed: usize },
    /// The function failed (already logged).
    Failed,
}

/// Return code for a failed guard function.
const CODE_FAILED: i32 = -1;
/// Return code for an output buffer too small.
const CODE_BUFFER_TOO_SMALL: i32 = -2;

impl<G: Guard> Default for GuardCell<G> {
    fn default() -> Self {
        Self::new()
    }
}

impl<G: Guard> GuardCell<G> {
    /// An empty cell (usable in a `static`).
    pub const fn new() -> Self {
        Self {
            state: Mutex::new(CellState {
                guard: None,
                pending: None,
            }),
        }
    }

    /// Runs `export` on `input` and writes the answer into `output`,
    /// returning the ABI code: the output length, `-2` (with the needed size
    /// as LE u32 in `output[..4]` when it has room) or `-1`.
    pub fn call(&self, export: Export, input: &[u8], output: &mut [u8]) -> i32 {
        let outcome = self.run(export, input, output.len());
        match outcome {
            Outcome::Fits(bytes) => {
                output[..bytes.len()].copy_from_slice(&bytes);
                code_for_len(bytes.len())
            }
            Outcome::TooSmall { needed } => {
                if let (Some(head), Ok(needed)) = (output.get_mut(..4), u32::try_from(needed)) {
                    head.copy_from_slice(&needed.to_le_bytes());
                }
                CODE_BUFFER_TOO_SMALL
            }
            Outcome::Failed => CODE_FAILED,
        }
    }

    /// Gives `f` the guard value (created if needed), e.g. to inspect state
    /// in tests.
    pub fn with_guard<R>(&self, f: impl FnOnce(&mut G) -> R) -> R {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(state.guard.get_or_insert_with(G::default))
    }

    pub(crate) fn run(&self, export: Export, input: &[u8], output_size: usize) -> Outcome {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let bytes = match state.pending.take() {
            Some(pending) if pending.export == export && pending.input == input => pending.output,
            _ => {
                let guard = state.guard.get_or_insert_with(G::default);
                match invoke(guard, export, input) {
                    Ok(bytes) => bytes,
                    Err(err) => {
                        crate::log::error(&format!("{} failed: {err}", export.name()));
                        return Outcome::Failed;
                    }
                }
            }
        };
        if i32::try_from(bytes.len()).is_err() {
            crate::log::error(&format!(
                "{} failed: output of {} bytes exceeds the ABI limit",
                export.name(),
                bytes.len()
            ));
            return Outcome::Failed;
        }
        if bytes.len() <= output_size {
            return Outcome::Fits(bytes);
        }
        crate::log::warn(&format!(
            "{}: output of {} bytes does not fit the {output_size}-byte buffer",
            export.name(),
            bytes.len()
        ));
        let needed = bytes.len();
        state.pending = Some(PendingOutput {
            export,
            input: input.to_vec(),
            output: bytes,
        });
        Outcome::TooSmall { needed }
    }
}

/// The return code for an output of `len` bytes (checked to fit by `run`).
fn code_for_len(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(CODE_FAILED)
}

/// Parses the input, calls the guard function, encodes its answer.
fn invoke<G: Guard>(guard: &mut G, export: Export, input: &[u8]) -> Result<Vec<u8>, GuardError> {
    let value: Value = if input.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(input).map_err(|err| GuardError::InvalidInput {
            export: export.name(),
            reason: err.to_string(),
        })?
    };
    let answer = match export {
        Export::LabelAgent => Some(guard.label_agent(value)?),
        Export::LabelResource => Some(guard.label_resource(value)?),
        Export::LabelResponse => guard.label_response(value)?,
    };
    match answer {
        None => Ok(Vec::new()),
        Some(answer) => serde_json::to_vec(&answer).map_err(|err| GuardError::Output {
            export: export.name(),
            reason: err.to_string(),
        }),
    }
}

/// Raw-pointer glue for `wasm32`: guard memory addresses arrive as `i32`.
#[cfg(target_arch = "wasm32")]
pub mod wasm {
    use std::alloc::Layout;

    use super::{CODE_BUFFER_TOO_SMALL, CODE_FAILED, Export, GuardCell, Outcome, code_for_len};
    use crate::Guard;

    /// Alignment of buffers handed out by [`alloc`].
    const BUFFER_ALIGN: usize = 8;

    fn buffer_layout(size: i32) -> Option<Layout> {
        let size = usize::try_from(size).ok()?;
        Layout::from_size_align(size.max(1), BUFFER_ALIGN).ok()
    }

    /// The `alloc` export: `size` bytes of guard memory, 0 on failure.
    pub fn alloc(size: i32) -> i32 {
        let Some(layout) = buffer_layout(size) else {
            return 0;
        };
        // SAFETY: the layout has a non-zero size (at least one byte).
        let ptr = unsafe { std::alloc::alloc(layout) };
        ptr as usize as i32
    }

    /// The `dealloc` export: frees what [`alloc`] returned for `size`.
    pub fn dealloc(ptr: i32, size: i32) {
        let Some(layout) = buffer_layout(size) else {
            return;
        };
        if ptr == 0 {
            return;
        }
        // SAFETY: the ABI requires the host to pass back exactly a pointer
        // returned by `alloc(size)` with the same size, once; `alloc` used
        // this same layout for that size.
        unsafe { std::alloc::dealloc(ptr as u32 as usize as *mut u8, layout) };
    }

    /// Runs one guard export on host-provided buffers in guard memory.
    pub fn call_export<G: Guard>(
        cell: &GuardCell<G>,
        export: Export,
        input_ptr: i32,
        input_len: i32,
        output_ptr: i32,
        output_size: i32,
    ) -> i32 {
        let (Ok(input_len), Ok(output_size)) =
            (usize::try_from(input_len), usize::try_from(output_size))
        else {
            crate::log::error(&format!("{}: negative buffer length", export.name()));
            return CODE_FAILED;
        };
        if (input_ptr == 0 && input_len > 0) || (output_ptr == 0 && output_size > 0) {
            crate::log::error(&format!("{}: null buffer pointer", export.name()));
            return CODE_FAILED;
        }
        let outcome = {
            let input: &[u8] = if input_len == 0 {
                &[]
            } else {
                // SAFETY: the host wrote `input_len` bytes of input at
                // `input_ptr` in this instance's memory and does not touch
                // them during the call; the slice is dropped before the
                // output buffer (which may be adjacent) is written.
                unsafe {
                    std::slice::from_raw_parts(input_ptr as u32 as usize as *const u8, input_len)
                }
            };
            cell.run(export, input, output_size)
        };
        let out = output_ptr as u32 as usize as *mut u8;
        match outcome {
            Outcome::Fits(bytes) => {
                // SAFETY: `bytes.len() <= output_size` (checked by `run`) and
                // the host reserved `output_size` writable bytes at
                // `output_ptr`; `bytes` is a separate heap allocation.
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), out, bytes.len()) };
                code_for_len(bytes.len())
            }
            Outcome::TooSmall { needed } => {
                if output_size >= 4
                    && let Ok(needed) = u32::try_from(needed)
                {
                    let hint = needed.to_le_bytes();
                    // SAFETY: the output buffer has at least 4 writable bytes.
                    unsafe { std::ptr::copy_nonoverlapping(hint.as_ptr(), out, 4) };
                }
                CODE_BUFFER_TOO_SMALL
            }
            Outcome::Failed => CODE_FAILED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LogLevel;
    use serde_json::json;

    /// Remembers the policy, echoes inputs, counts calls.
    #[derive(Default)]
    struct EchoGuard {
        policy: Option<Value>,
        calls: usize,
    }

    impl Guard for EchoGuard {
        fn label_agent(&mut self, policy: Value) -> Result<Value, GuardError> {
            self.calls += 1;
            if policy.get("reject").is_some() {
                return Err(GuardError::refused("policy rejected"));
            }
            self.policy = Some(policy);
            Ok(json!({"agent": {"secrecy": [], "integrity": []}, "difc_mode": "filter"}))
        }

        fn label_resource(&mut self, input: Value) -> Result<Value, GuardError> {
            self.calls += 1;
            Ok(json!({"policy": self.policy, "input": input}))
        }

        fn label_response(&mut self, input: Value) -> Result<Option<Value>, GuardError> {
            self.calls += 1;
            if input.is_null() {
                return Ok(None);
            }
            Ok(Some(input))
        }
    }

    #[test]
    fn output_that_fits_is_written_and_its_length_returned() {
        let cell = GuardCell::<EchoGuard>::new();
        let mut out = vec![0u8; 256];
        let n = cell.call(Export::LabelAgent, br#"{"repos":"all"}"#, &mut out);
        let answer: Value = serde_json::from_slice(&out[..n as usize]).unwrap();
        assert_eq!(answer["difc_mode"], "filter");
        // The guard kept its policy for later calls.
        let n = cell.call(Export::LabelResource, br#"{"tool_name":"t"}"#, &mut out);
        let answer: Value = serde_json::from_slice(&out[..n as usize]).unwrap();
        assert_eq!(answer["policy"], json!({"repos": "all"}));
    }

    #[test]
    fn too_small_buffer_answers_minus_two_with_size_hint_and_retry_reuses_output() {
        let cell = GuardCell::<EchoGuard>::new();
        let input = serde_json::to_vec(&json!({"big": "z".repeat(1000)})).unwrap();
        let mut small = vec![0u8; 64];
        assert_eq!(cell.call(Export::LabelResponse, &input, &mut small), -2);
        let needed = u32::from_le_bytes(small[..4].try_into().unwrap()) as usize;
        assert_eq!(needed, input.len());
        let mut big = vec![0u8; needed];
        let n = cell.call(Export::LabelResponse, &input, &mut big);
        assert_eq!(n as usize, needed);
        assert_eq!(&big[..], &input[..]);
        // The retry was served from the kept output: one guard call only.
        assert_eq!(cell.with_guard(|g| g.calls), 1);
    }

    #[test]
    fn buffer_smaller_than_four_bytes_gets_minus_two_without_hint() {
        let cell = GuardCell::<EchoGuard>::new();
        let mut tiny = [7u8; 3];
        assert_eq!(cell.call(Export::LabelResponse, b"[1,2,3]", &mut tiny), -2);
        assert_eq!(tiny, [7u8; 3]);
    }

    #[test]
    fn kept_output_is_dropped_when_the_next_input_differs() {
        let cell = GuardCell::<EchoGuard>::new();
        let mut small = vec![0u8; 4];
        assert_eq!(cell.call(Export::LabelResponse, b"[1,2,3]", &mut small), -2);
        let mut out = vec![0u8; 64];
        let n = cell.call(Export::LabelResponse, b"[4]", &mut out);
        assert_eq!(&out[..n as usize], b"[4]");
        assert_eq!(cell.with_guard(|g| g.calls), 2);
    }

    #[test]
    fn no_output_is_zero() {
        let cell = GuardCell::<EchoGuard>::new();
        let mut out = vec![0u8; 16];
        assert_eq!(cell.call(Export::LabelResponse, b"", &mut out), 0);
        assert_eq!(cell.call(Export::LabelResponse, b"null", &mut out), 0);
    }

    #[test]
    fn invalid_json_and_guard_errors_are_minus_one_with_an_error_log() {
        let cell = GuardCell::<EchoGuard>::new();
        let mut out = vec![0u8; 64];
        let (code, logs) = crate::testing::with_captured_logs(|| {
            cell.call(Export::LabelResource, b"{not json", &mut out)
        });
        assert_eq!(code, -1);
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].0, LogLevel::Error);
        assert!(
            logs[0]
                .1
                .starts_with("label_resource failed: invalid label_resource input")
        );

        let (code, logs) = crate::testing::with_captured_logs(|| {
            cell.call(Export::LabelAgent, br#"{"reject":true}"#, &mut out)
        });
        assert_eq!(code, -1);
        assert_eq!(
            logs,
            vec![(
                LogLevel::Error,
                "label_agent failed: policy rejected".to_owned()
            )]
        );
        let invalid_utf8 = [b'"', 0xff, b'"'];
        assert_eq!(cell.call(Export::LabelAgent, &invalid_utf8, &mut out), -1);
    }

    #[test]
    fn export_names_match_the_abi() {
        assert_eq!(Export::LabelAgent.name(), "label_agent");
        assert_eq!(Export::LabelResource.name(), "label_resource");
        assert_eq!(Export::LabelResponse.name(), "label_response");
    }
}
