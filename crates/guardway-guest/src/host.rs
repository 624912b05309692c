//! The host imports (`env.host_log`, `env.call_backend`) and their host-side
//! stand-ins, plus the `-2` retry protocol of `call_backend`.

use serde_json::Value;

use crate::{BackendError, LogLevel};

/// First result buffer offered to `call_backend`.
pub(crate) const INITIAL_RESULT_BUFFER: usize = 64 * 1024;
/// Largest result buffer the guard agrees to allocate.
pub(crate) const MAX_RESULT_BUFFER: usize = 64 * 1024 * 1024;

#[cfg(target_arch = "wasm32")]
mod imports {
    #[link(wasm_import_module = "env")]
    unsafe extern "C" {
        pub fn call_backend(
            tool_ptr: i32,
            tool_len: i32,
            args_ptr: i32,
            args_len: i32,
            result_ptr: i32,
            result_size: i32,
        ) -> i32;
        pub fn host_log(level: i32, msg_ptr: i32, msg_len: i32);
    }
}

/// Sends a log line to the host (wasm) or to the test capture (host).
pub(crate) fn log_raw(level: LogLevel, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        let Ok(len) = i32::try_from(message.len()) else {
            return;
        };
        // SAFETY: the pointer and length describe a live, initialised byte
        // slice in this instance's linear memory for the duration of the
        // call; the host only reads it.
        unsafe { imports::host_log(level as i32, message.as_ptr() as i32, len) };
    }
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::record_log(level, message);
}

/// Makes a read-only MCP tool call on the backend this guard guards and
/// returns the host's JSON (normally the `CallToolResult`; see
/// [`crate::mcp::tool_result_json`] to reach the JSON inside its text).
///
/// Starts with a 64 KiB result buffer; when the host answers `-2` it retries
/// once with the size the host wrote into the buffer (or double the size
/// when it wrote none). On non-wasm targets the call goes to the stub
/// installed with [`crate::testing::set_backend`], through the same
/// protocol, or fails with [`BackendError::Unavailable`].
///
/// # Errors
/// [`BackendError`] on a negative host code, a result too large or not
/// JSON, or when no backend is reachable.
pub fn call_backend(tool: &str, args: &Value) -> Result<Value, BackendError> {
    let args_bytes = serde_json::to_vec(args).map_err(|err| BackendError::InvalidResult {
        tool: tool.to_owned(),
        reason: err.to_string(),
    })?;
    let bytes = raw_call(tool, &args_bytes)?;
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|err| BackendError::InvalidResult {
        tool: tool.to_owned(),
        reason: err.to_string(),
    })
}

#[cfg(target_arch = "wasm32")]
fn raw_call(tool: &str, args: &[u8]) -> Result<Vec<u8>, BackendError> {
    let too_large = |len: usize| BackendError::RequestTooLarge {
        tool: tool.to_owned(),
        len,
    };
    let tool_len = i32::try_from(tool.len()).map_err(|_| too_large(tool.len()))?;
    let args_len = i32::try_from(args.len()).map_err(|_| too_large(args.len()))?;
    call_with_retry(tool, INITIAL_RESULT_BUFFER, |buffer| {
        let Ok(size) = i32::try_from(buffer.len()) else {
            return -1;
        };
        // SAFETY: every pointer/length pair describes a live slice of this
        // instance's linear memory: `tool` and `args` are only read by the
        // host, `buffer` is exclusively borrowed for the call and the host
        // writes at most `size` bytes into it.
        unsafe {
            imports::call_backend(
                tool.as_ptr() as i32,
                tool_len,
                args.as_ptr() as i32,
                args_len,
                buffer.as_mut_ptr() as i32,
                size,
            )
        }
    })
}

#[cfg(not(target_arch = "wasm32"))]
fn raw_call(tool: &str, args: &[u8]) -> Result<Vec<u8>, BackendError> {
    crate::testing::stub_call(tool, args)
}

/// Runs one `call_backend` through the `-2` protocol: `raw` is called with a
/// zeroed buffer and returns the host's code; on `-2` the call is repeated
/// once with a buffer of the hinted size (LE u32 in the first four bytes;
/// double the size without a hint).
pub(crate) fn call_with_retry(
    tool: &str,
    initial_size: usize,
    mut raw: impl FnMut(&mut [u8]) -> i32,
) -> Result<Vec<u8>, BackendError> {
    let mut size = initial_size;
    let mut retried = false;
    loop {
        let mut buffer = zeroed_buffer(tool, size)?;
        let code = raw(&mut buffer);
        if code >= 0 {
            let len = code as usize;
            if len > buffer.len() {
                return Err(BackendError::LengthOutOfRange {
                    tool: tool.to_owned(),
                    len,
                    size: buffer.len(),
                });
            }
            buffer.truncate(len);
            return Ok(buffer);
        }
        if code != -2 {
            return Err(BackendError::Failed {
                tool: tool.to_owned(),
                code,
            });
        }
        let hint = buffer
            .get(..4)
            .map(|head| u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize)
            .unwrap_or(0);
        let needed = if hint > 0 {
            hint
        } else {
            size.saturating_mul(2)
        };
        if retried || needed <= size || needed > MAX_RESULT_BUFFER {
            return Err(BackendError::ResultTooLarge {
                tool: tool.to_owned(),
                size,
                needed,
            });
        }
        crate::log::debug(&format!(
            "call_backend {tool}: result needs {needed} bytes, retrying"
        ));
        size = needed;
        retried = true;
    }
}

/// A zero-filled buffer of `size` bytes, failing instead of aborting when
/// memory is exhausted.
fn zeroed_buffer(tool: &str, size: usize) -> Result<Vec<u8>, BackendError> {
    let mut buffer = Vec::new();
    buffer
        .try_reserve_exact(size)
        .map_err(|_| BackendError::OutOfMemory {
            tool: tool.to_owned(),
            size,
        })?;
    buffer.resize(size, 0);
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A raw host that answers `payload`, honouring the `-2` protocol.
    fn host_answering(payload: &[u8], hint: bool) -> impl FnMut(&mut [u8]) -> i32 + '_ {
        move |buffer: &mut [u8]| {
            if payload.len() > buffer.len() {
                if hint && buffer.len() >= 4 {
                    buffer[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
                }
                return -2;
            }
            buffer[..payload.len()].copy_from_slice(payload);
            payload.len() as i32
        }
    }

    /// `call_with_retry` from `first_size` against [`host_answering`]; also
    /// the buffer size of every host call.
    fn retry_against(
        payload: &[u8],
        hint: bool,
        first_size: usize,
    ) -> (Result<Vec<u8>, BackendError>, Vec<usize>) {
        let mut sizes = Vec::new();
        let mut host = host_answering(payload, hint);
        let result = call_with_retry("t", first_size, |b| {
            sizes.push(b.len());
            host(b)
        });
        (result, sizes)
    }

    #[test]
    fn fitting_result_is_returned_after_one_call() {
        let (out, sizes) = retry_against(b"{\"ok\":true}", true, 64);
        assert_eq!(out.unwrap(), b"{\"ok\":true}");
        assert_eq!(sizes.len(), 1);
    }

    #[test]
    fn minus_two_with_hint_retries_once_with_the_hinted_size() {
        let payload = vec![b'x'; 1000];
        let (out, sizes) = retry_against(&payload, true, 16);
        assert_eq!(out.unwrap().len(), 1000);
        assert_eq!(sizes, vec![16, 1000]);
    }

    #[test]
    fn minus_two_without_hint_doubles() {
        let payload = vec![b'x'; 30];
        let (out, sizes) = retry_against(&payload, false, 16);
        assert_eq!(out.unwrap().len(), 30);
        assert_eq!(sizes, vec![16, 32]);
    }

    #[test]
    fn second_minus_two_gives_up() {
        let payload = vec![b'x'; 100];
        let (out, sizes) = retry_against(&payload, false, 16);
        let err = out.unwrap_err();
        assert_eq!(sizes.len(), 2);
        assert!(matches!(err, BackendError::ResultTooLarge { size: 32, .. }));
    }

    #[test]
    fn absurd_hint_is_refused_without_allocating() {
        let err = call_with_retry("t", 16, |b| {
            b[..4].copy_from_slice(&u32::MAX.to_le_bytes());
            -2
        })
        .unwrap_err();
        assert!(matches!(err, BackendError::ResultTooLarge { .. }));
    }

    #[test]
    fn other_negative_codes_and_bad_lengths_are_errors() {
        let err = call_with_retry("lookup", 16, |_| -1).unwrap_err();
        assert_eq!(
            err,
            BackendError::Failed {
                tool: "lookup".into(),
                code: -1
            }
        );
        assert_eq!(err.to_string(), "call_backend lookup failed with code -1");
        let err = call_with_retry("t", 16, |_| 17).unwrap_err();
        assert!(matches!(
            err,
            BackendError::LengthOutOfRange {
                len: 17,
                size: 16,
                ..
            }
        ));
    }

    #[test]
    fn call_backend_without_stub_is_unavailable() {
        let err = call_backend("search_repositories", &json!({})).unwrap_err();
        assert!(matches!(err, BackendError::Unavailable { .. }));
    }

    #[test]
    fn call_backend_through_stub_parses_json_even_when_large() {
        let big = "y".repeat(200 * 1024);
        crate::testing::set_backend(move |tool, args| {
            assert_eq!(tool, "search_repositories");
            assert_eq!(args["query"], "repo:o/r");
            Ok(json!({ "big": big }))
        });
        let value = call_backend("search_repositories", &json!({"query": "repo:o/r"})).unwrap();
        assert_eq!(value["big"].as_str().unwrap().len(), 200 * 1024);
        assert_eq!(crate::testing::backend_calls(), 1);
        crate::testing::clear_backend();
    }
}
