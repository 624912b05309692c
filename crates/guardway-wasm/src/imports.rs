//! Host imports of a guard: `env.call_backend` (through the [`Backend`] trait), `env.host_log`,
//! the guard's stdout/stderr routed to `tracing`, and the per-instance host state they share.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tracing::Level;
use wasmtime::{Caller, Linker, Memory};

use crate::error::BackendCallError;
use crate::instance::StoreState;
use crate::limits::LogBucket;
use crate::options::LogRateLimit;
use crate::quarantine::Clock;

/// `tracing` target of every line a guard logs.
pub const GUARD_LOG_TARGET: &str = "guardway::guard";

/// Longest guard log line emitted; longer lines are cut.
const MAX_LOG_LINE: usize = 16 * 1024;
/// Longest "last error" line kept for error reports.
const MAX_LAST_ERROR: usize = 1024;

/// A boxed, sendable future, as returned by [`Backend::call_tool`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The backend MCP server a guard may query through `env.call_backend`.
///
/// Implemented by the gateway. Object-safe; shared as `Arc<dyn Backend>` by every
/// instance of a guard, so implementations must be `Send + Sync`.
pub trait Backend: Send + Sync + 'static {
    /// Calls `tool` with `args` (a JSON object; `{}` when the guard passed none) and
    /// returns the tool result as JSON.
    fn call_tool<'a>(
        &'a self,
        tool: &'a str,
        args: serde_json::Value,
    ) -> BoxFuture<'a, Result<serde_json::Value, BackendCallError>>;
}

/// Severity of a guard log line, as given to `host_log` (0 debug, 1 info, 2 warn, 3 error;
/// any other value is debug) or implied by the stream (stdout info, stderr warn).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GuardLogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl GuardLogLevel {
    /// `debug`, `info`, `warn` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            GuardLogLevel::Debug => "debug",
            GuardLogLevel::Info => "info",
            GuardLogLevel::Warn => "warn",
            GuardLogLevel::Error => "error",
        }
    }

    fn of(level: Level) -> Self {
        match level {
            Level::ERROR => GuardLogLevel::Error,
            Level::WARN => GuardLogLevel::Warn,
            Level::INFO => GuardLogLevel::Info,
            _ => GuardLogLevel::Debug,
        }
    }
}

/// One `call_backend` call as the host answered it, reported to a [`GuardObserver`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackendCallRecord {
    /// The tool name; `None` when the guard's pointers or UTF-8 could not be read.
    pub tool: Option<String>,
    /// The arguments as the guard passed them (JSON text; empty means none).
    pub args: String,
    /// What `call_backend` returned to the guard: bytes written, `-2` (buffer too small)
    /// or `-1` (failed).
    pub code: i32,
    /// Size in bytes of the serialised backend answer, when there was one.
    pub answer_bytes: Option<usize>,
    /// Why the call failed (`code == -1`).
    pub error: Option<String>,
    /// Whether the answer came from the result kept after a `-2`, without asking the
    /// backend again.
    pub retry: bool,
}

/// Watches what a guard does through its host imports, in the order it happens: every
/// `host_log` line and stdout/stderr line (whatever the log level and rate limit) and every
/// `call_backend`. For tools that trace guard calls (`guardway guard call --trace`,
/// `guard test`); the gateway sets none.
///
/// Shared by every instance created with the options that carry it, so implementations
/// must be `Send + Sync`; calls come from the thread running the guard, one at a time per
/// instance.
pub trait GuardObserver: Send + Sync + 'static {
    /// A log line: `stream` is `host_log`, `stdout` or `stderr`.
    fn log(&self, level: GuardLogLevel, stream: &str, message: &str) {
        let _ = (level, stream, message);
    }
    /// A `call_backend` call and its answer.
    fn backend_call(&self, record: &BackendCallRecord) {
        let _ = record;
    }
}

/// The summary of a guard's log lines dropped by the rate limit: one warning per
/// `interval` at most, for all the guard's instances together, counting the lines dropped
/// since the previous one. Lines dropped since the last warning are reported when the
/// guard goes away.
pub(crate) struct LogDropSummary {
    name: Arc<str>,
    interval: Duration,
    clock: Arc<dyn Clock>,
    state: Mutex<DropState>,
    reports: AtomicU64,
}

#[derive(Debug, Default)]
struct DropState {
    /// Lines dropped and not reported yet.
    pending: u64,
    /// When the last warning was emitted.
    last_report: Option<Instant>,
}

impl std::fmt::Debug for LogDropSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogDropSummary")
            .field("name", &self.name)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl LogDropSummary {
    pub(crate) fn new(name: Arc<str>, interval: Duration, clock: Arc<dyn Clock>) -> Self {
        LogDropSummary {
            name,
            interval,
            clock,
            state: Mutex::new(DropState::default()),
            reports: AtomicU64::new(0),
        }
    }

    /// Counts `dropped` more lines and warns if the interval since the last warning passed.
    pub(crate) fn add(&self, dropped: u64) {
        let now = self.clock.now();
        let mut state = self.state.lock();
        state.pending += dropped;
        let due = state
            .last_report
            .is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if state.pending == 0 || !due {
            return;
        }
        let dropped = std::mem::take(&mut state.pending);
        let since = state.last_report.replace(now);
        drop(state);
        self.warn(
            dropped,
            since.map(|last| now.saturating_duration_since(last)),
        );
    }

    /// Warnings emitted so far.
    pub(crate) fn reports(&self) -> u64 {
        self.reports.load(Ordering::Relaxed)
    }

    fn warn(&self, dropped: u64, since: Option<Duration>) {
        self.reports.fetch_add(1, Ordering::Relaxed);
        let since_s = since.map(|since| since.as_secs_f64());
        tracing::warn!(target: GUARD_LOG_TARGET, guard = %self.name, dropped, since_last_report_s = since_s,
            "guard log lines dropped by the rate limit");
    }
}

impl Drop for LogDropSummary {
    fn drop(&mut self) {
        let state = std::mem::take(self.state.get_mut());
        if state.pending > 0 {
            let now = self.clock.now();
            self.warn(
                state.pending,
                state
                    .last_report
                    .map(|last| now.saturating_duration_since(last)),
            );
        }
    }
}

/// A guard's log sink: name, rate limit, last error line. One per instance, shared with
/// that instance's stdout/stderr streams.
#[derive(Debug)]
pub(crate) struct GuardLog {
    name: Arc<str>,
    bucket: Mutex<LogBucket>,
    last_error: Mutex<Option<String>>,
    dropped_total: Arc<AtomicU64>,
    drops: Arc<LogDropSummary>,
    observer: Option<Arc<dyn GuardObserver>>,
}

impl std::fmt::Debug for dyn GuardObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GuardObserver")
    }
}

impl GuardLog {
    pub(crate) fn new(
        name: Arc<str>,
        rate: LogRateLimit,
        dropped_total: Arc<AtomicU64>,
        drops: Arc<LogDropSummary>,
    ) -> Self {
        GuardLog {
            name,
            bucket: Mutex::new(LogBucket::new(rate, Instant::now())),
            last_error: Mutex::new(None),
            dropped_total,
            drops,
            observer: None,
        }
    }

    /// Reports every line and backend call of this instance to `observer` as well.
    pub(crate) fn with_observer(mut self, observer: Option<Arc<dyn GuardObserver>>) -> Self {
        self.observer = observer;
        self
    }

    fn observe_line(&self, level: Level, stream: &str, message: &str) {
        if let Some(observer) = &self.observer {
            observer.log(
                GuardLogLevel::of(level),
                stream,
                truncate(message, MAX_LOG_LINE),
            );
        }
    }

    fn observe_backend_call(&self, record: impl FnOnce() -> BackendCallRecord) {
        if let Some(observer) = &self.observer {
            observer.backend_call(&record());
        }
    }

    /// Whether a line passes the rate limit.
    fn admit(&self) -> bool {
        if self.bucket.lock().try_take(Instant::now()) {
            true
        } else {
            self.dropped_total.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// Hands the lines dropped during the call that just ended to the guard's summary
    /// (which warns at most once per interval).
    pub(crate) fn report_dropped(&self) {
        let dropped = std::mem::take(&mut self.bucket.lock().dropped_unreported);
        if dropped > 0 {
            self.drops.add(dropped);
        }
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    pub(crate) fn clear_last_error(&self) {
        *self.last_error.lock() = None;
    }

    fn set_last_error(&self, message: &str) {
        *self.last_error.lock() = Some(truncate(message, MAX_LAST_ERROR).to_owned());
    }

    fn emit(&self, level: Level, stream: &'static str, message: &str) {
        let name = &*self.name;
        let message = truncate(message, MAX_LOG_LINE);
        match level {
            Level::ERROR => {
                tracing::error!(target: GUARD_LOG_TARGET, guard = %name, stream, "{message}")
            }
            Level::WARN => {
                tracing::warn!(target: GUARD_LOG_TARGET, guard = %name, stream, "{message}")
            }
            Level::INFO => {
                tracing::info!(target: GUARD_LOG_TARGET, guard = %name, stream, "{message}")
            }
            _ => tracing::debug!(target: GUARD_LOG_TARGET, guard = %name, stream, "{message}"),
        }
    }
}

fn level_enabled(level: Level) -> bool {
    match level {
        Level::ERROR => tracing::enabled!(target: GUARD_LOG_TARGET, Level::ERROR),
        Level::WARN => tracing::enabled!(target: GUARD_LOG_TARGET, Level::WARN),
        Level::INFO => tracing::enabled!(target: GUARD_LOG_TARGET, Level::INFO),
        _ => tracing::enabled!(target: GUARD_LOG_TARGET, Level::DEBUG),
    }
}

fn truncate(message: &str, max: usize) -> &str {
    if message.len() <= max {
        return message;
    }
    let mut end = max;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// A result kept after `call_backend` answered `-2`, served to an immediate retry.
#[derive(Debug)]
struct PendingResult {
    tool: String,
    args: Vec<u8>,
    result: Vec<u8>,
}

/// Host-side state of one instance used by the imports.
pub(crate) struct HostState {
    pub(crate) log: Arc<GuardLog>,
    pub(crate) memory: Option<Memory>,
    backend: Option<Arc<dyn Backend>>,
    max_backend_calls: u32,
    backend_calls: u32,
    backend_calls_total: Arc<AtomicU64>,
    pending: Option<PendingResult>,
    /// Deadline of the current guard call.
    pub(crate) deadline: Instant,
}

impl HostState {
    pub(crate) fn new(
        log: Arc<GuardLog>,
        backend: Option<Arc<dyn Backend>>,
        max_backend_calls: u32,
        backend_calls_total: Arc<AtomicU64>,
    ) -> Self {
        HostState {
            log,
            memory: None,
            backend,
            max_backend_calls,
            backend_calls: 0,
            backend_calls_total,
            pending: None,
            deadline: Instant::now(),
        }
    }

    /// Resets the per-call state before a guard function runs.
    pub(crate) fn begin_call(&mut self, deadline: Instant) {
        self.backend_calls = 0;
        self.pending = None;
        self.deadline = deadline;
        self.log.clear_last_error();
    }
}

/// Adds `env.call_backend` and `env.host_log` to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "host_log",
        |mut caller: Caller<'_, StoreState>, level: i32, ptr: i32, len: i32| {
            host_log(&mut caller, level, ptr, len);
        },
    )?;
    linker.func_wrap_async(
        "env",
        "call_backend",
        |mut caller: Caller<'_, StoreState>,
         (tool_ptr, tool_len, args_ptr, args_len, result_ptr, result_size): (
            i32,
            i32,
            i32,
            i32,
            i32,
            i32,
        )| {
            Box::new(async move {
                let regions = BackendCallRegions {
                    tool: (tool_ptr, tool_len),
                    args: (args_ptr, args_len),
                    result: (result_ptr, result_size),
                };
                Ok(call_backend(&mut caller, regions).await)
            })
        },
    )?;
    Ok(())
}

/// Bounds-checked range of guard memory; `None` when out of bounds or negative length.
pub(crate) fn guest_range(data_len: usize, ptr: i32, len: i32) -> Option<std::ops::Range<usize>> {
    let len = usize::try_from(len).ok()?;
    let start = ptr as u32 as usize;
    let end = start.checked_add(len)?;
    (end <= data_len).then_some(start..end)
}

fn host_log(caller: &mut Caller<'_, StoreState>, level: i32, ptr: i32, len: i32) {
    let level = match level {
        1 => Level::INFO,
        2 => Level::WARN,
        3 => Level::ERROR,
        _ => Level::DEBUG,
    };
    let enabled = level_enabled(level);
    let observed = caller.data().host.log.observer.is_some();
    // Filtered-out lines stop here, before the message is read; error lines are always
    // read so that the last one can be attached to error reports.
    if !enabled && !observed && level != Level::ERROR {
        return;
    }
    let state = caller.data();
    let Some(memory) = state.host.memory else {
        return;
    };
    let log = Arc::clone(&state.host.log);
    if enabled && !observed && level != Level::ERROR && !log.admit() {
        return;
    }
    let data = memory.data(&*caller);
    let Some(range) = guest_range(data.len(), ptr, len) else {
        log.observe_line(
            Level::WARN,
            "host_log",
            "host_log called with an out-of-bounds message",
        );
        if enabled {
            log.emit(
                Level::WARN,
                "host_log",
                "host_log called with an out-of-bounds message",
            );
        }
        return;
    };
    let bytes = &data[range][..(len as usize).min(MAX_LOG_LINE)];
    let message = String::from_utf8_lossy(bytes);
    log.observe_line(level, "host_log", &message);
    if observed && level != Level::ERROR {
        if enabled && log.admit() {
            log.emit(level, "host_log", &message);
        }
        return;
    }
    if level == Level::ERROR {
        log.set_last_error(&message);
        if !enabled || !log.admit() {
            return;
        }
    }
    log.emit(level, "host_log", &message);
}

struct BackendCallRegions {
    tool: (i32, i32),
    args: (i32, i32),
    result: (i32, i32),
}

/// `call_backend` failure code for everything but "buffer too small".
const BACKEND_FAILED: i32 = -1;
/// `call_backend` code for "result does not fit".
const BACKEND_TOO_SMALL: i32 = -2;

async fn call_backend(caller: &mut Caller<'_, StoreState>, regions: BackendCallRegions) -> i32 {
    let log = Arc::clone(&caller.data().host.log);
    let refuse = |tool: Option<&str>, args: &[u8], reason: &str| {
        log.observe_backend_call(|| BackendCallRecord {
            tool: tool.map(str::to_owned),
            args: String::from_utf8_lossy(args).into_owned(),
            code: BACKEND_FAILED,
            answer_bytes: None,
            error: Some(reason.to_owned()),
            retry: false,
        });
        if level_enabled(Level::WARN) && log.admit() {
            log.emit(
                Level::WARN,
                "call_backend",
                &format!("call_backend refused: {reason}"),
            );
        }
        BACKEND_FAILED
    };
    let Some(memory) = caller.data().host.memory else {
        return refuse(None, &[], "guard has no memory");
    };
    // Copy the request out of guard memory (bounds-checked) before awaiting anything.
    let (tool, args_bytes, result_range) = {
        let data = memory.data(&*caller);
        let (Some(tool), Some(args), Some(result)) = (
            guest_range(data.len(), regions.tool.0, regions.tool.1),
            guest_range(data.len(), regions.args.0, regions.args.1),
            guest_range(data.len(), regions.result.0, regions.result.1),
        ) else {
            return refuse(None, &[], "pointer or length out of bounds");
        };
        let Ok(tool) = std::str::from_utf8(&data[tool]) else {
            return refuse(None, &data[args], "tool name is not UTF-8");
        };
        (tool.to_owned(), data[args].to_vec(), result)
    };

    let host = &mut caller.data_mut().host;
    // A pending result serves only an immediate retry of the same call.
    if let Some(pending) = host.pending.take()
        && pending.tool == tool
        && pending.args == args_bytes
    {
        let code = write_result(caller, memory, result_range, &pending.result);
        log.observe_backend_call(|| BackendCallRecord {
            tool: Some(tool.clone()),
            args: String::from_utf8_lossy(&args_bytes).into_owned(),
            code,
            answer_bytes: Some(pending.result.len()),
            error: None,
            retry: true,
        });
        if code == BACKEND_TOO_SMALL {
            caller.data_mut().host.pending = Some(pending);
        }
        return code;
    }

    if host.backend_calls >= host.max_backend_calls {
        let limit = host.max_backend_calls;
        return refuse(
            Some(&tool),
            &args_bytes,
            &format!("more than {limit} backend calls in one guard call"),
        );
    }
    let Some(backend) = host.backend.clone() else {
        return refuse(
            Some(&tool),
            &args_bytes,
            "no backend is attached to this guard",
        );
    };
    let args = if args_bytes.is_empty() {
        serde_json::Value::Object(serde_json::Map::new())
    } else {
        match serde_json::from_slice(&args_bytes) {
            Ok(args) => args,
            Err(error) => {
                return refuse(
                    Some(&tool),
                    &args_bytes,
                    &format!("arguments are not JSON: {error}"),
                );
            }
        }
    };
    host.backend_calls += 1;
    host.backend_calls_total.fetch_add(1, Ordering::Relaxed);
    let remaining = host.deadline.saturating_duration_since(Instant::now());
    let outcome = tokio::time::timeout(remaining, backend.call_tool(&tool, args)).await;
    let value = match outcome {
        Ok(Ok(value)) => value,
        Ok(Err(error)) => {
            return refuse(Some(&tool), &args_bytes, &format!("backend error: {error}"));
        }
        Err(_) => {
            return refuse(
                Some(&tool),
                &args_bytes,
                &format!("backend call to {tool} timed out"),
            );
        }
    };
    let result = match serde_json::to_vec(&value) {
        Ok(result) => result,
        Err(error) => {
            return refuse(
                Some(&tool),
                &args_bytes,
                &format!("cannot serialise the backend result: {error}"),
            );
        }
    };
    let code = write_result(caller, memory, result_range, &result);
    log.observe_backend_call(|| BackendCallRecord {
        tool: Some(tool.clone()),
        args: String::from_utf8_lossy(&args_bytes).into_owned(),
        code,
        answer_bytes: Some(result.len()),
        error: None,
        retry: false,
    });
    if code == BACKEND_TOO_SMALL {
        caller.data_mut().host.pending = Some(PendingResult {
            tool,
            args: args_bytes,
            result,
        });
    }
    code
}

/// Writes `result` into the guard's result buffer, or answers -2 with the size hint.
fn write_result(
    caller: &mut Caller<'_, StoreState>,
    memory: Memory,
    range: std::ops::Range<usize>,
    result: &[u8],
) -> i32 {
    let data = memory.data_mut(&mut *caller);
    // The range was checked against this memory, which cannot shrink.
    let Some(buffer) = data.get_mut(range) else {
        return BACKEND_FAILED;
    };
    if result.len() > buffer.len() {
        if let Some(head) = buffer.get_mut(..4) {
            let needed = u32::try_from(result.len()).unwrap_or(u32::MAX);
            head.copy_from_slice(&needed.to_le_bytes());
        }
        return BACKEND_TOO_SMALL;
    }
    let Ok(written) = i32::try_from(result.len()) else {
        return BACKEND_FAILED;
    };
    buffer[..result.len()].copy_from_slice(result);
    written
}

/// A guard's stdout or stderr: complete lines go to `tracing` (info for stdout, warn for
/// stderr) through the instance's rate limit.
#[derive(Clone)]
pub(crate) struct GuardOutputStream {
    log: Arc<GuardLog>,
    stream: &'static str,
    level: Level,
    partial: Arc<Mutex<Vec<u8>>>,
}

impl GuardOutputStream {
    pub(crate) fn stdout(log: Arc<GuardLog>) -> Self {
        Self::new(log, "stdout", Level::INFO)
    }
    pub(crate) fn stderr(log: Arc<GuardLog>) -> Self {
        Self::new(log, "stderr", Level::WARN)
    }
    fn new(log: Arc<GuardLog>, stream: &'static str, level: Level) -> Self {
        GuardOutputStream {
            log,
            stream,
            level,
            partial: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn write_bytes(&self, bytes: &[u8]) {
        if !level_enabled(self.level) && self.log.observer.is_none() {
            return;
        }
        let mut partial = self.partial.lock();
        partial.extend_from_slice(bytes);
        while let Some(newline) = partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = partial.drain(..=newline).collect();
            self.emit_line(&line[..line.len() - 1]);
        }
        if partial.len() > MAX_LOG_LINE {
            let line = std::mem::take(&mut *partial);
            self.emit_line(&line);
        }
    }

    fn emit_line(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        self.log.observe_line(self.level, self.stream, line);
        if level_enabled(self.level) && self.log.admit() {
            self.log.emit(self.level, self.stream, line);
        }
    }
}

impl wasmtime_wasi::cli::IsTerminal for GuardOutputStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for GuardOutputStream {
    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl wasmtime_wasi::p2::Pollable for GuardOutputStream {
    async fn ready(&mut self) {}
}

impl wasmtime_wasi::p2::OutputStream for GuardOutputStream {
    fn write(&mut self, bytes: bytes::Bytes) -> wasmtime_wasi::p2::StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> wasmtime_wasi::p2::StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> wasmtime_wasi::p2::StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for GuardOutputStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
