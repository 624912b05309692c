//! The stdio connection of one backend process, shared by two clients.
//!
//! - rmcp's client (the handshake, discovery, prompts, resources, pings,
//!   the backend's own requests and notifications) speaks to the process
//!   through [`LinkTransport`]: rmcp's own newline-delimited transport over
//!   two in-process pipes, so its framing, line limit and parsing rules are
//!   unchanged.
//! - The tool-call lane ([`StdioLink::send_request`]) writes a `tools/call`
//!   request to the process from the calling task, and the reader task hands
//!   the answer to that task directly. A call through rmcp's client costs
//!   two task hand-offs more (the caller's request goes to rmcp's service
//!   loop, which writes it; the loop reads the answer and passes it back).
//!
//! One reader task reads the process's stdout line by line. An answer or a
//! progress notification of a lane call is taken by the lane (progress
//! first, in the order read, so it reaches the agent before the result);
//! every other line goes to rmcp. One writer task copies rmcp's lines to the
//! process's stdin; lane requests are written between whole lines under the
//! same lock. When the process closes stdout the lane's pending calls end
//! with [`ServiceError::TransportClosed`] and rmcp sees the end of its
//! input, as with rmcp's own child-process transport. When rmcp closes the
//! connection, stdin is closed and the process gets the MCP stdio shutdown
//! sequence (end of input, then SIGTERM, then SIGKILL).
//!
//! Lane request ids and progress tokens are numbers from [`LANE_FIRST_ID`]
//! up; rmcp numbers its own requests and tokens of a connection from 0.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rmcp::model::{
    CancelledNotification, CancelledNotificationParam, ClientJsonRpcMessage, ClientNotification,
    ClientRequest, GetMeta, JsonRpcMessage, NumberOrString, ProgressNotificationParam,
    ProgressToken, RequestId, ServerJsonRpcMessage, ServerResult,
};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::transport::async_rw::{AsyncRwTransport, DEFAULT_MAX_LINE_LENGTH};
use rmcp::{RoleClient, ServiceError};
use serde::Deserialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::oneshot;

use crate::backend::relay::ProgressSink;

/// The first request id (and progress token) of the lane.
pub(crate) const LANE_FIRST_ID: i64 = 1 << 30;

/// Capacity of each in-process pipe to and from rmcp's transport.
const PIPE_CAPACITY: usize = 64 * 1024;

/// A line buffer that grew past this for one large message is given back
/// to the allocator once the message is through.
const KEEP_CAPACITY: usize = 1024 * 1024;

/// How long the process may take to exit after its stdin closes, and again
/// after SIGTERM: the whole sequence fits in the time a stopping gateway
/// gives each connection, so a process that ignores the end of its input
/// still has time to handle SIGTERM before SIGKILL.
const EXIT_WAIT: Duration = Duration::from_secs(1);
const _: () = assert!(2 * EXIT_WAIT.as_millis() < super::CLOSE_TIMEOUT.as_millis());

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The connection to one backend process. Shared (`Arc`) by the reader and
/// writer tasks, rmcp's transport and the lane's calls.
pub(crate) struct StdioLink {
    server: String,
    stdin: tokio::sync::Mutex<Stdin>,
    calls: Mutex<LaneCalls>,
    next_id: AtomicI64,
}

/// The process's input.
struct Stdin {
    /// `None` once closed (rmcp closed the connection or a write failed).
    pipe: Option<ChildStdin>,
    /// Bytes queued and not written yet. A writer whose task is dropped
    /// in the middle of a line leaves the rest here, and the next writer
    /// sends it first, so lines never interleave.
    unsent: Vec<u8>,
}

#[derive(Default)]
struct LaneCalls {
    pending: HashMap<i64, Pending>,
    /// The process closed its stdout: no answer will come.
    closed: bool,
}

struct Pending {
    answer: oneshot::Sender<Vec<u8>>,
    progress: Option<ProgressSink>,
}

/// What the reader needs to know of a line to route it.
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default, borrow)]
    method: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ProgressMessage {
    params: ProgressNotificationParam,
}

impl StdioLink {
    /// Takes over `child`'s stdin and stdout (both must be piped) and
    /// returns the link and rmcp's transport for it. Starts the reader and
    /// writer tasks (needs a Tokio runtime).
    pub(crate) fn attach(
        server: &str,
        mut child: Child,
    ) -> std::io::Result<(Arc<Self>, LinkTransport)> {
        let missing =
            |what: &str| std::io::Error::other(format!("the process's {what} is not piped"));
        let stdin = child.stdin.take().ok_or_else(|| missing("stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| missing("stdout"))?;
        let (rmcp_read, to_rmcp) = tokio::io::duplex(PIPE_CAPACITY);
        let (rmcp_write, from_rmcp) = tokio::io::duplex(PIPE_CAPACITY);
        let link = Arc::new(Self {
            server: server.to_owned(),
            stdin: tokio::sync::Mutex::new(Stdin {
                pipe: Some(stdin),
                unsent: Vec::new(),
            }),
            calls: Mutex::new(LaneCalls::default()),
            next_id: AtomicI64::new(LANE_FIRST_ID),
        });
        tokio::spawn(read_process(link.clone(), stdout, to_rmcp));
        tokio::spawn(write_rmcp_lines(link.clone(), from_rmcp));
        let transport = LinkTransport {
            inner: AsyncRwTransport::new_client(rmcp_read, rmcp_write),
            link: link.clone(),
            child: Some(child),
        };
        Ok((link, transport))
    }

    /// Sends `request` (a tools/call) on the lane and returns the pending
    /// call. Its progress notifications go to `progress` (under a token of the lane)
    /// until the answer arrives.
    ///
    /// # Errors
    ///
    /// [`ServiceError::TransportClosed`] when the process's input or output
    /// is closed.
    pub(crate) async fn send_request(
        self: &Arc<Self>,
        mut request: ClientRequest,
        progress: Option<ProgressSink>,
    ) -> Result<LaneCall, ServiceError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        request
            .get_meta_mut()
            .set_progress_token(ProgressToken(NumberOrString::Number(id)));
        let message = ClientJsonRpcMessage::request(request, RequestId::Number(id));
        let mut line = serde_json::to_vec(&message).map_err(|error| {
            ServiceError::TransportSend(rmcp::transport::DynamicTransportError::new::<
                LinkTransport,
                _,
            >(std::io::Error::other(error)))
        })?;
        line.push(b'\n');
        let (sender, answer) = oneshot::channel();
        {
            let mut calls = self.calls.lock();
            if calls.closed {
                return Err(ServiceError::TransportClosed);
            }
            calls.pending.insert(
                id,
                Pending {
                    answer: sender,
                    progress,
                },
            );
        }
        // From here on the call is forgotten (and the backend told) if the
        // caller goes away.
        let mut call = LaneCall {
            link: self.clone(),
            id,
            answer,
            open: true,
        };
        if self.write_line(&line).await.is_err() {
            call.open = false;
            self.forget(id);
            return Err(ServiceError::TransportClosed);
        }
        Ok(call)
    }

    /// Writes one whole line to the process (after what an earlier,
    /// interrupted writer left unsent). Cancel-safe: bytes leave the queue
    /// only once written.
    async fn write_line(&self, line: &[u8]) -> std::io::Result<()> {
        let mut stdin = self.stdin.lock().await;
        let Stdin { pipe, unsent } = &mut *stdin;
        let Some(writer) = pipe.as_mut() else {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        };
        unsent.extend_from_slice(line);
        let mut failure = None;
        while !unsent.is_empty() {
            match writer.write(unsent).await {
                Ok(0) => {
                    failure = Some(std::io::ErrorKind::WriteZero.into());
                    break;
                }
                Ok(written) => {
                    unsent.drain(..written);
                }
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        match failure {
            None => {
                empty(unsent);
                Ok(())
            }
            Some(error) => {
                // A broken pipe stays broken; later writers fail fast.
                *pipe = None;
                unsent.clear();
                Err(error)
            }
        }
    }

    /// Closes the process's stdin (the first step of its shutdown).
    async fn close_stdin(&self) {
        let mut stdin = self.stdin.lock().await;
        stdin.unsent.clear();
        if let Some(mut pipe) = stdin.pipe.take() {
            let _ = pipe.shutdown().await;
        }
    }

    fn forget(&self, id: i64) {
        self.calls.lock().pending.remove(&id);
    }

    /// Tells the backend that lane call `id` is cancelled.
    async fn send_cancelled(&self, id: i64, reason: &str) {
        let message =
            ClientJsonRpcMessage::notification(ClientNotification::CancelledNotification(
                CancelledNotification::new(CancelledNotificationParam::new(
                    Some(RequestId::Number(id)),
                    Some(reason.to_owned()),
                )),
            ));
        let Ok(mut line) = serde_json::to_vec(&message) else {
            return;
        };
        line.push(b'\n');
        if let Err(error) = self.write_line(&line).await {
            tracing::debug!(server = %self.server, %error, "cannot send the cancellation to the backend");
        }
    }

    /// Takes `line` if it is the answer or progress of a lane call (or of
    /// one that was cancelled). Returns whether it was taken.
    fn take_lane_message(&self, line: &mut Vec<u8>) -> bool {
        if self.next_id.load(Ordering::Relaxed) == LANE_FIRST_ID {
            // The lane was never used: everything is rmcp's.
            return false;
        }
        let Ok(peek) = serde_json::from_slice::<Peek>(message_bytes(line)) else {
            return false;
        };
        match peek.method.as_deref() {
            None => {
                let Some(id) = peek.id.as_ref().and_then(serde_json::Value::as_i64) else {
                    return false;
                };
                if id < LANE_FIRST_ID {
                    return false;
                }
                match self.calls.lock().pending.remove(&id) {
                    Some(pending) => {
                        let _ = pending.answer.send(std::mem::take(line));
                    }
                    None => {
                        tracing::debug!(server = %self.server, id, "answer to a cancelled call dropped");
                    }
                }
                true
            }
            Some("notifications/progress") => {
                let Ok(progress) = serde_json::from_slice::<ProgressMessage>(message_bytes(line))
                else {
                    return false;
                };
                let NumberOrString::Number(token) = progress.params.progress_token.0 else {
                    return false;
                };
                if token < LANE_FIRST_ID {
                    return false;
                }
                let sink = self
                    .calls
                    .lock()
                    .pending
                    .get(&token)
                    .and_then(|pending| pending.progress.clone());
                let queued = sink.is_some_and(|sink| sink.queue(progress.params));
                if !queued {
                    tracing::debug!(server = %self.server, "progress for no pending call dropped");
                }
                true
            }
            Some(_) => false,
        }
    }

    /// The process closed its stdout: pending calls end without an answer.
    fn close_lane(&self) {
        let mut calls = self.calls.lock();
        calls.closed = true;
        calls.pending.clear();
    }
}

/// Empties a line buffer, keeping at most [`KEEP_CAPACITY`] of its memory.
fn empty(buffer: &mut Vec<u8>) {
    buffer.clear();
    if buffer.capacity() > KEEP_CAPACITY {
        buffer.shrink_to(PIPE_CAPACITY);
    }
}

/// A line without its line end and byte-order mark.
fn message_bytes(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.strip_prefix(UTF8_BOM).unwrap_or(line)
}

/// A tools/call sent on the lane and not answered yet.
///
/// Dropped before its answer, it is forgotten and the backend is sent
/// `notifications/cancelled` (from a task of its own: `Drop` cannot await).
pub(crate) struct LaneCall {
    link: Arc<StdioLink>,
    id: i64,
    answer: oneshot::Receiver<Vec<u8>>,
    /// Sent and neither answered nor cancelled.
    open: bool,
}

impl LaneCall {
    /// Waits for the answer. Cancel-safe: use it in a `select!`.
    ///
    /// # Errors
    ///
    /// [`ServiceError::TransportClosed`] when the process closed its output
    /// first, [`ServiceError::McpError`] for a JSON-RPC error answer or an
    /// answer that is not a valid response,
    /// [`ServiceError::UnexpectedResponse`] for one that is not a server
    /// result.
    pub(crate) async fn answer(&mut self) -> Result<ServerResult, ServiceError> {
        let line = (&mut self.answer).await;
        self.open = false;
        let line = line.map_err(|_| ServiceError::TransportClosed)?;
        match serde_json::from_slice::<ServerJsonRpcMessage>(message_bytes(&line)) {
            Ok(JsonRpcMessage::Response(response)) => Ok(response.result),
            Ok(JsonRpcMessage::Error(error)) => Err(ServiceError::McpError(error.error)),
            Ok(_) => Err(ServiceError::UnexpectedResponse),
            Err(error) => Err(ServiceError::McpError(rmcp::ErrorData::internal_error(
                format!("its answer is not a valid JSON-RPC response: {error}"),
                None,
            ))),
        }
    }

    /// Forgets the call and tells the backend it is cancelled.
    pub(crate) async fn cancel(mut self, reason: &str) {
        self.open = false;
        self.link.forget(self.id);
        self.link.send_cancelled(self.id, reason).await;
    }
}

impl Drop for LaneCall {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        self.link.forget(self.id);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        tracing::debug!(
            request = self.id,
            "caller went away; cancelling the backend request"
        );
        let link = self.link.clone();
        let id = self.id;
        runtime.spawn(async move { link.send_cancelled(id, super::AGENT_GONE).await });
    }
}

/// How a bounded line read ended.
#[derive(Debug, PartialEq, Eq)]
enum LineEnd {
    /// A whole line (with its `\n`) is in the buffer.
    Line,
    /// A line longer than the limit was skipped; the buffer is empty.
    Oversized,
    /// End of input; an unterminated last line is dropped.
    Eof,
}

/// Reads one `\n`-terminated line into `line` (empty on entry), never
/// holding more than `max` bytes of it.
async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<LineEnd> {
    let mut oversized = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            line.clear();
            return Ok(LineEnd::Eof);
        }
        let newline = available.iter().position(|b| *b == b'\n');
        let take = newline.map_or(available.len(), |at| at + 1);
        if !oversized && line.len().saturating_add(take) > max {
            oversized = true;
            line.clear();
        }
        if !oversized {
            line.extend_from_slice(&available[..take]);
        }
        reader.consume(take);
        if newline.is_some() {
            return Ok(if oversized {
                LineEnd::Oversized
            } else {
                LineEnd::Line
            });
        }
    }
}

/// The reader task: routes each line of the process's stdout to the lane
/// or to rmcp until the process closes it.
async fn read_process(link: Arc<StdioLink>, stdout: ChildStdout, mut to_rmcp: DuplexStream) {
    let mut reader = BufReader::with_capacity(PIPE_CAPACITY, stdout);
    let mut line = Vec::new();
    let mut rmcp_reads = true;
    loop {
        empty(&mut line);
        match read_line_bounded(&mut reader, &mut line, DEFAULT_MAX_LINE_LENGTH).await {
            Ok(LineEnd::Line) => {}
            Ok(LineEnd::Oversized) => {
                tracing::error!(
                    server = %link.server,
                    max_line_length = DEFAULT_MAX_LINE_LENGTH,
                    "the backend wrote a message longer than the line limit; discarded"
                );
                continue;
            }
            Ok(LineEnd::Eof) => break,
            Err(error) => {
                tracing::error!(server = %link.server, %error, "cannot read from the backend");
                break;
            }
        }
        if link.take_lane_message(&mut line) {
            continue;
        }
        if rmcp_reads && to_rmcp.write_all(&line).await.is_err() {
            // rmcp's side of the connection is gone; lane calls go on
            // until the process ends.
            rmcp_reads = false;
        }
    }
    link.close_lane();
}

/// The writer task: copies rmcp's lines to the process's stdin; when rmcp
/// closes its side, closes stdin.
async fn write_rmcp_lines(link: Arc<StdioLink>, from_rmcp: DuplexStream) {
    let mut reader = BufReader::with_capacity(PIPE_CAPACITY, from_rmcp);
    let mut line = Vec::new();
    loop {
        empty(&mut line);
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if link.write_line(&line).await.is_err() {
                    break;
                }
            }
        }
    }
    link.close_stdin().await;
}

/// rmcp's transport over a [`StdioLink`]: rmcp's own newline-delimited
/// transport on the link's pipes, plus the process's shutdown on close.
pub(crate) struct LinkTransport {
    inner: AsyncRwTransport<RoleClient, DuplexStream, DuplexStream>,
    link: Arc<StdioLink>,
    /// Killed when dropped (spawned with `kill_on_drop`).
    child: Option<Child>,
}

impl LinkTransport {
    /// The MCP stdio shutdown: close the process's input and wait; then
    /// SIGTERM and wait; then kill.
    async fn shut_down(&mut self) -> std::io::Result<()> {
        self.link.close_stdin().await;
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        if tokio::time::timeout(EXIT_WAIT, child.wait()).await.is_ok() {
            self.child = None;
            return Ok(());
        }
        #[cfg(unix)]
        if let Some(pid) = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            if let Err(error) = rustix::process::kill_process(pid, rustix::process::Signal::TERM) {
                tracing::warn!(server = %self.link.server, %error, "cannot send SIGTERM to the backend");
            } else if tokio::time::timeout(EXIT_WAIT, child.wait()).await.is_ok() {
                self.child = None;
                return Ok(());
            }
        }
        let killed = child.kill().await;
        self.child = None;
        killed
    }
}

impl Transport<RoleClient> for LinkTransport {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleClient>>> + Send {
        self.inner.receive()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        let closed = self.inner.close().await;
        let shut = self.shut_down().await;
        closed.and(shut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(input: &[u8], max: usize) -> Vec<(LineEnd, Vec<u8>)> {
        // A tiny buffer so that lines span several reads.
        let mut reader = BufReader::with_capacity(4, input);
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            let end = read_line_bounded(&mut reader, &mut line, max)
                .await
                .unwrap();
            let done = end == LineEnd::Eof;
            out.push((end, line));
            if done {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn lines_are_read_whole_and_oversized_ones_skipped() {
        let input = b"{\"a\":1}\nthis line is far too long\n{\"b\":2}\npartial";
        let lines = read_all(input, 12).await;
        assert_eq!(
            lines,
            vec![
                (LineEnd::Line, b"{\"a\":1}\n".to_vec()),
                (LineEnd::Oversized, Vec::new()),
                (LineEnd::Line, b"{\"b\":2}\n".to_vec()),
                (LineEnd::Eof, Vec::new()),
            ]
        );
    }

    fn log_line(data: &str) -> Vec<u8> {
        let message = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/message",
            "params": {"level": "info", "data": data}});
        let mut line = serde_json::to_vec(&message).unwrap();
        line.push(b'\n');
        line
    }

    fn logged_data(message: Option<RxJsonRpcMessage<RoleClient>>) -> String {
        match message {
            Some(JsonRpcMessage::Notification(notification)) => match notification.notification {
                rmcp::model::ServerNotification::LoggingMessageNotification(log) => {
                    log.params.data.as_str().unwrap_or_default().to_owned()
                }
                other => panic!("not a log message: {other:?}"),
            },
            other => panic!("not a notification: {other:?}"),
        }
    }

    /// A writer dropped in the middle of a line (the process is not reading
    /// and the pipe is full) leaves the rest for the next writer: the
    /// process still reads two whole lines, in order.
    #[cfg(unix)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_dropped_mid_line_is_finished_by_the_next_writer() {
        // `cat` starts reading after a second, and echoes what it reads:
        // the link's reader hands every line to rmcp's side.
        let child = tokio::process::Command::new("sh")
            .args(["-c", "sleep 1; exec cat"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let (link, mut transport) = StdioLink::attach("cat", child).unwrap();
        let big = "x".repeat(512 * 1024);
        let interrupted =
            tokio::time::timeout(Duration::from_millis(100), link.write_line(&log_line(&big)))
                .await;
        assert!(interrupted.is_err(), "the pipe took the whole line at once");
        link.write_line(&log_line("next")).await.unwrap();
        let first = tokio::time::timeout(Duration::from_secs(30), transport.receive())
            .await
            .unwrap();
        assert_eq!(logged_data(first).len(), big.len());
        let second = tokio::time::timeout(Duration::from_secs(30), transport.receive())
            .await
            .unwrap();
        assert_eq!(logged_data(second), "next");
        transport.close().await.unwrap();
    }

    #[test]
    fn emptied_buffers_give_back_what_one_large_line_took() {
        let mut large = vec![b'x'; 4 * KEEP_CAPACITY];
        empty(&mut large);
        assert!(large.is_empty());
        assert!(large.capacity() <= KEEP_CAPACITY, "{}", large.capacity());
        let mut small = Vec::with_capacity(PIPE_CAPACITY);
        small.extend_from_slice(b"{}\n");
        empty(&mut small);
        assert!(small.is_empty());
        assert!(small.capacity() >= PIPE_CAPACITY);
    }

    #[test]
    fn message_bytes_drop_the_line_end_and_bom() {
        assert_eq!(message_bytes(b"\xEF\xBB\xBF{}\r\n"), b"{}");
        assert_eq!(message_bytes(b"{}"), b"{}");
    }
}
