//! The files in the log directory (gateway.md §7): `mcp-gateway.log`,
//! `<id>.log` per backend, `rpc-messages.jsonl`, `tools.json`, the
//! `gateway.md` digest (start-up, then errors and warnings as they
//! happen), and the redaction of secrets in everything written there.
//!
//! [`LogFiles`] is the handle the gateway writes through, one per log
//! directory and process (opening a directory again returns the live
//! handle, so the `tracing` layer and the gateway share the digest); when
//! the directory cannot be created, log lines go to stderr instead and the
//! JSON and markdown files are not written. [`LogFileLayer`] is the `tracing` layer that
//! turns the gateway's events into `mcp-gateway.log` (and `<id>.log` for
//! events carrying a `server` field); [`install_global_logging`] installs it
//! with a stderr logger for `guardway serve`.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde_json::{Value, json};

pub use super::digest::{DigestServer, StartupDigest};

/// Name of the main log file.
pub const MAIN_LOG_FILE: &str = "mcp-gateway.log";
/// Name of the JSON-lines file of backend messages.
pub const RPC_LOG_FILE: &str = "rpc-messages.jsonl";
/// Name of the tool table written at start-up.
pub const TOOLS_FILE: &str = "tools.json";
/// Schema tag of every `rpc-messages.jsonl` record.
pub const RPC_SCHEMA: &str = "rpc-message/v2";
/// Payloads longer than this (after redaction, as JSON text) are cut.
pub const MAX_RPC_PAYLOAD_CHARS: usize = 10_000;
/// Name of the markdown digest of start-up, errors and warnings.
pub const DIGEST_FILE: &str = "gateway.md";
/// `gateway.md` stops growing at about this size (one closing line says so).
pub const MAX_DIGEST_BYTES: u64 = 512 * 1024;
/// Errors and warnings kept in memory until the start-up digest is written.
const MAX_PENDING_PROBLEMS: usize = 200;
/// One error or warning line in `gateway.md` is cut to this many characters.
const MAX_DIGEST_LINE_CHARS: usize = 2_000;

/// Which text log files a log directory gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLayout {
    /// The main log file.
    pub main_file: &'static str,
    /// Whether events carrying a `server` field also go to `<server>.log`.
    pub per_server_files: bool,
}

impl LogLayout {
    /// `guardway serve`: `mcp-gateway.log` and `<id>.log` per backend.
    pub const GATEWAY: LogLayout = LogLayout {
        main_file: MAIN_LOG_FILE,
        per_server_files: true,
    };
    /// `guardway proxy`: `proxy.log` only, as the reference's proxy writes.
    pub const PROXY: LogLayout = LogLayout {
        main_file: PROXY_LOG_FILE,
        per_server_files: false,
    };
}

/// Name of the main log file of `guardway proxy`.
pub const PROXY_LOG_FILE: &str = "proxy.log";

/// Direction of a backend message: `OUT` to the backend, `IN` from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcDirection {
    Out,
    In,
}

impl RpcDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Out => "OUT",
            Self::In => "IN",
        }
    }
}

/// Open log files of one log directory. Thread-safe; shared as
/// `Arc<LogFiles>`. Lines are formatted by the caller and written by the
/// directory's log writer thread ([`LogWriter`]), each batch with one
/// `write_all` per file opened for appending; [`LogFiles::flush`] waits for
/// them.
#[derive(Debug)]
pub struct LogFiles {
    sinks: Arc<Sinks>,
    writer: Option<LogWriter>,
    digest: Mutex<DigestState>,
}

/// Where the log writer writes: the open files of one directory, and
/// stderr.
#[derive(Debug)]
struct Sinks {
    /// `None` when the directory is unusable: everything goes to stderr.
    dir: Option<PathBuf>,
    layout: LogLayout,
    main: Mutex<Option<File>>,
    backends: Mutex<HashMap<String, File>>,
    rpc: Option<Mutex<File>>,
}

/// The text of one batch of log jobs, by destination.
#[derive(Default)]
struct Batch {
    main: String,
    rpc: String,
    stderr: String,
    /// (server, line) in order.
    backends: Vec<(String, String)>,
}

impl Sinks {
    /// Writes a batch: one `write_all` per destination.
    fn write(&self, batch: Batch) {
        if !batch.stderr.is_empty() {
            let _ = std::io::stderr().lock().write_all(batch.stderr.as_bytes());
        }
        if !batch.main.is_empty() {
            match self.main.lock().as_mut() {
                Some(file) => {
                    let _ = file.write_all(batch.main.as_bytes());
                }
                None => {
                    let _ = std::io::stderr().lock().write_all(batch.main.as_bytes());
                }
            }
        }
        if !batch.rpc.is_empty()
            && let Some(rpc) = &self.rpc
        {
            let _ = rpc.lock().write_all(batch.rpc.as_bytes());
        }
        if batch.backends.is_empty() || !self.layout.per_server_files {
            return;
        }
        let Some(dir) = &self.dir else {
            let mut text = String::new();
            for (server, line) in &batch.backends {
                text.push_str(&format!("[{server}] {line}"));
            }
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
            return;
        };
        let mut by_server: Vec<(String, String)> = Vec::new();
        for (server, line) in batch.backends {
            match by_server.iter_mut().find(|(s, _)| *s == server) {
                Some((_, text)) => text.push_str(&line),
                None => by_server.push((server, line)),
            }
        }
        let mut files = self.backends.lock();
        for (server, text) in by_server {
            if !files.contains_key(&server) {
                match open_append(&dir.join(backend_file_name(&server))) {
                    Some(file) => {
                        files.insert(server.clone(), file);
                    }
                    None => continue,
                }
            }
            if let Some(file) = files.get_mut(&server) {
                let _ = file.write_all(text.as_bytes());
            }
        }
    }
}

/// Jobs waiting for the log writer at most; past this a job is run by the
/// caller itself.
const LOG_QUEUE: usize = 4096;
/// Longest wait of [`LogFiles::flush`].
const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A log line or record still to be built (redacting and bounding a
/// payload is done by the writer, not by the call that produced it) into
/// the batch being written.
type LogJob = Box<dyn FnOnce(&mut Batch) + Send>;

/// The log writer of one directory: one thread of its own builds the
/// lines and records handed to it and appends them, in the order they
/// were handed over, so that a tool call never waits for a disk or for
/// stderr. Handing a job over takes a lock and a push, and wakes the
/// thread only when it is idle: woken, the thread lets jobs gather for
/// [`LOG_BATCH`] and writes them in one go, so a busy gateway wakes it at
/// most once per period instead of several times per call (on a small
/// machine those wake-ups and writes cost the calls themselves CPU). When
/// [`LOG_QUEUE`] jobs wait (the disk cannot keep up) the caller runs its
/// job itself: nothing is dropped. The thread ends once the queue is
/// drained after the writer is dropped.
struct LogWriter {
    shared: Arc<WriterShared>,
}

struct WriterShared {
    queue: Mutex<JobQueue>,
    wake: parking_lot::Condvar,
    sinks: Arc<Sinks>,
}

#[derive(Default)]
struct JobQueue {
    jobs: Vec<LogJob>,
    /// Flushes waiting for the jobs queued before them.
    flushes: Vec<std::sync::mpsc::Sender<()>>,
    closed: bool,
}

/// How long the writer lets jobs gather once woken.
const LOG_BATCH: std::time::Duration = std::time::Duration::from_millis(10);

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter").finish_non_exhaustive()
    }
}

impl LogWriter {
    /// Starts the writer of `sinks`; `None` when no thread can be started.
    fn start(sinks: Arc<Sinks>) -> Option<Self> {
        let shared = Arc::new(WriterShared {
            queue: Mutex::new(JobQueue::default()),
            wake: parking_lot::Condvar::new(),
            sinks,
        });
        let writer = shared.clone();
        std::thread::Builder::new()
            .name("guardway-log".into())
            .spawn(move || writer.run())
            .ok()?;
        Some(Self { shared })
    }

    fn submit(&self, job: LogJob) {
        let mut queue = self.shared.queue.lock();
        if queue.jobs.len() >= LOG_QUEUE {
            drop(queue);
            run_inline(&self.shared.sinks, job);
            return;
        }
        let was_idle = queue.jobs.is_empty() && queue.flushes.is_empty();
        queue.jobs.push(job);
        drop(queue);
        if was_idle {
            self.shared.wake.notify_one();
        }
    }

    /// Waits (up to [`FLUSH_TIMEOUT`]) until every job handed over so far
    /// is written; with `close`, the thread then ends.
    fn wait_written(&self, close: bool) {
        let (done, wait) = std::sync::mpsc::channel();
        {
            let mut queue = self.shared.queue.lock();
            queue.closed |= close;
            queue.flushes.push(done);
        }
        self.shared.wake.notify_one();
        let _ = wait.recv_timeout(FLUSH_TIMEOUT);
    }
}

/// Runs one job and writes its text at once.
fn run_inline(sinks: &Sinks, job: LogJob) {
    let mut batch = Batch::default();
    job(&mut batch);
    sinks.write(batch);
}

impl Drop for LogWriter {
    /// Everything handed over is written (waiting up to 5 s), then the
    /// thread ends.
    fn drop(&mut self) {
        self.wait_written(true);
    }
}

impl WriterShared {
    /// The writer thread: sleeps until jobs arrive, lets more gather
    /// (unless a flush waits), then builds and writes them all.
    fn run(&self) {
        loop {
            let mut queue = self.queue.lock();
            while queue.jobs.is_empty() && queue.flushes.is_empty() {
                if queue.closed {
                    return;
                }
                self.wake.wait(&mut queue);
            }
            if queue.flushes.is_empty() && !queue.closed {
                // Flushes and the end notify; anything else waits its turn.
                let _ = self.wake.wait_for(&mut queue, LOG_BATCH);
            }
            let jobs = std::mem::take(&mut queue.jobs);
            let flushes = std::mem::take(&mut queue.flushes);
            drop(queue);
            let mut batch = Batch::default();
            for job in jobs {
                job(&mut batch);
            }
            self.sinks.write(batch);
            for done in flushes {
                let _ = done.send(());
            }
        }
    }
}

/// Where `gateway.md` stands: before the start-up digest, problems wait in
/// `pending`; after it, they are appended until the size bound.
#[derive(Debug, Default)]
struct DigestState {
    written: bool,
    pending: Vec<String>,
    dropped_pending: usize,
    bytes: u64,
    full: bool,
}

/// Live handles by log directory (see [`LogFiles::open`]).
fn open_handles() -> &'static Mutex<HashMap<PathBuf, std::sync::Weak<LogFiles>>> {
    static HANDLES: std::sync::OnceLock<Mutex<HashMap<PathBuf, std::sync::Weak<LogFiles>>>> =
        std::sync::OnceLock::new();
    HANDLES.get_or_init(|| Mutex::new(HashMap::new()))
}

fn open_append(path: &Path) -> Option<File> {
    OpenOptions::new().create(true).append(true).open(path).ok()
}

/// A file name for a backend id: characters outside `[A-Za-z0-9._-]`
/// become `_`, and names made only of dots are prefixed.
fn backend_file_name(server: &str) -> String {
    let mut name: String = server
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.chars().all(|c| c == '.') {
        name.insert(0, '_');
    }
    format!("{name}.log")
}

impl LogFiles {
    /// Opens (creating if needed) `dir` and its main and RPC files, or
    /// returns the handle of `dir` that is still alive in this process.
    /// Never fails: without a usable directory the handle writes lines to
    /// stderr.
    pub fn open(dir: &Path) -> Arc<Self> {
        Self::open_with(dir, LogLayout::GATEWAY)
    }

    /// [`LogFiles::open`] with the files of `layout` (a handle of `dir`
    /// still alive keeps its own layout).
    pub fn open_with(dir: &Path, layout: LogLayout) -> Arc<Self> {
        let usable = std::fs::create_dir_all(dir).is_ok();
        let key = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let mut handles = open_handles().lock();
        handles.retain(|_, handle| handle.strong_count() > 0);
        if let Some(live) = handles.get(&key).and_then(std::sync::Weak::upgrade) {
            return live;
        }
        let files = Self::open_new(dir, usable, layout);
        handles.insert(key, Arc::downgrade(&files));
        files
    }

    fn open_new(dir: &Path, usable: bool, layout: LogLayout) -> Arc<Self> {
        let main = if usable {
            open_append(&dir.join(layout.main_file))
        } else {
            None
        };
        let sinks = match main {
            Some(main) => Sinks {
                dir: Some(dir.to_path_buf()),
                layout,
                main: Mutex::new(Some(main)),
                backends: Mutex::new(HashMap::new()),
                rpc: open_append(&dir.join(RPC_LOG_FILE)).map(Mutex::new),
            },
            None => {
                eprintln!(
                    "guardway: cannot write log directory {}; logging to stderr",
                    dir.display()
                );
                Sinks {
                    dir: None,
                    layout,
                    main: Mutex::new(None),
                    backends: Mutex::new(HashMap::new()),
                    rpc: None,
                }
            }
        };
        let sinks = Arc::new(sinks);
        Arc::new(Self {
            writer: LogWriter::start(sinks.clone()),
            sinks,
            digest: Mutex::new(DigestState::default()),
        })
    }

    /// Hands a job to the writer (or runs it here when there is none).
    fn defer(&self, job: LogJob) {
        match &self.writer {
            Some(writer) => writer.submit(job),
            None => run_inline(&self.sinks, job),
        }
    }

    /// The log directory, if it is usable.
    pub fn dir(&self) -> Option<&Path> {
        self.sinks.dir.as_deref()
    }

    /// One `mcp-gateway.log` line (redacted), timestamped now.
    pub fn main_line(&self, level: &str, category: &str, message: &str) {
        self.main_line_for(None, level, category, message);
    }

    /// [`LogFiles::main_line`], and with `server` the same line in
    /// `<server>.log` too: one job, formatted and redacted once.
    pub fn main_line_for(&self, server: Option<&str>, level: &str, category: &str, message: &str) {
        let at = SystemTime::now();
        let (server, level, category, message) = (
            server.map(str::to_owned),
            level.to_owned(),
            category.to_owned(),
            message.to_owned(),
        );
        self.defer(Box::new(move |batch| {
            let line = format_line(at, &level, &category, &message);
            batch.main.push_str(&line);
            if let Some(server) = server {
                batch.backends.push((server, line));
            }
        }));
    }

    /// A line about `server` as the reference writes one: `main` in
    /// `mcp-gateway.log` (which names the server) and `message` in
    /// `<server>.log`, with one timestamp; one job.
    pub fn reference_server_line(
        &self,
        server: &str,
        level: &str,
        category: &str,
        main: &str,
        message: &str,
    ) {
        let at = SystemTime::now();
        let (server, level, category, main, message) = (
            server.to_owned(),
            level.to_owned(),
            category.to_owned(),
            main.to_owned(),
            message.to_owned(),
        );
        self.defer(Box::new(move |batch| {
            batch
                .main
                .push_str(&format_line(at, &level, &category, &main));
            batch
                .backends
                .push((server, format_line(at, &level, &category, &message)));
        }));
    }

    /// One line of `<server>.log` (redacted), timestamped now.
    pub fn backend_line(&self, server: &str, level: &str, category: &str, message: &str) {
        let at = SystemTime::now();
        let (server, level, category, message) = (
            server.to_owned(),
            level.to_owned(),
            category.to_owned(),
            message.to_owned(),
        );
        self.defer(Box::new(move |batch| {
            let line = format_line(at, &level, &category, &message);
            batch.backends.push((server, line));
        }));
    }

    /// Text for stderr, written in order with everything else.
    pub fn stderr_text(&self, text: String) {
        self.defer(Box::new(move |batch| batch.stderr.push_str(&text)));
    }

    /// One `rpc-messages.jsonl` record for a message to or from `server`,
    /// whose payload is made (serialised, then redacted and bounded) by the
    /// log writer, after the caller has moved on. The record's timestamp is
    /// taken now.
    pub fn rpc(
        &self,
        server: &str,
        direction: RpcDirection,
        method: &str,
        error: Option<String>,
        payload: impl FnOnce() -> Option<Value> + Send + 'static,
    ) {
        if self.sinks.rpc.is_none() {
            return;
        }
        let timestamp = SystemTime::now();
        let server = server.to_owned();
        let method = method.to_owned();
        self.defer(Box::new(move |batch| {
            let event = match direction {
                RpcDirection::Out => "rpc_request",
                RpcDirection::In => "rpc_response",
            };
            let record = json!({
                "timestamp": utc_timestamp(timestamp),
                "event": event,
                "_schema": RPC_SCHEMA,
                "direction": direction.as_str(),
                "server_id": server,
                "method": method,
                "error": error.as_deref().map(redact),
                "payload": payload().as_ref().map(sanitize_payload),
            });
            batch.rpc.push_str(&record.to_string());
            batch.rpc.push('\n');
        }));
    }

    /// One `rpc-messages.jsonl` record that is not a message (an event of
    /// proxy mode, for example): `timestamp` (now) then `fields` in their
    /// order, which carry the record's `event` and `_schema`.
    pub fn event_record(&self, fields: serde_json::Map<String, Value>) {
        if self.sinks.rpc.is_none() {
            return;
        }
        let timestamp = SystemTime::now();
        self.defer(Box::new(move |batch| {
            let mut record = serde_json::Map::new();
            record.insert("timestamp".into(), Value::String(utc_timestamp(timestamp)));
            record.extend(fields);
            batch.rpc.push_str(&Value::Object(record).to_string());
            batch.rpc.push('\n');
        }));
    }

    /// Waits (up to 5 s) until every line and record handed over so far
    /// is written. Called when a gateway stops and before the process
    /// exits.
    pub fn flush(&self) {
        if let Some(writer) = &self.writer {
            writer.wait_written(false);
        }
    }

    /// Writes `tools.json`: `{"servers": {id: [{"name","description"}]}}`
    /// from `(name, description)` pairs per server (redacted).
    pub fn write_tools(&self, servers: &BTreeMap<String, Vec<(String, String)>>) {
        let Some(dir) = &self.sinks.dir else {
            return;
        };
        let servers: serde_json::Map<String, Value> = servers
            .iter()
            .map(|(id, tools)| {
                let list = tools
                    .iter()
                    .map(|(name, description)| {
                        json!({"name": name, "description": redact(description)})
                    })
                    .collect();
                (id.clone(), Value::Array(list))
            })
            .collect();
        let document = json!({ "servers": servers });
        if let Ok(text) = serde_json::to_string_pretty(&document) {
            let _ = std::fs::write(dir.join(TOOLS_FILE), text);
        }
    }
}

impl LogFiles {
    /// Writes `gateway.md` afresh: the start-up digest, then the errors and
    /// warnings recorded so far; later ones are appended as they happen.
    pub fn write_startup_digest(&self, digest: &StartupDigest) {
        let Some(dir) = &self.sinks.dir else {
            return;
        };
        let mut state = self.digest.lock();
        let mut text = digest.render();
        text.push_str("\n## Errors and warnings\n\n");
        for line in state.pending.drain(..) {
            text.push_str(&line);
        }
        if state.dropped_pending > 0 {
            text.push_str(&format!(
                "- … {} more before start-up completed (see {})\n",
                state.dropped_pending, self.sinks.layout.main_file
            ));
            state.dropped_pending = 0;
        }
        state.written = std::fs::write(dir.join(DIGEST_FILE), text.as_bytes()).is_ok();
        state.bytes = text.len() as u64;
        state.full = false;
    }

    /// Records an error or warning in `gateway.md` (redacted, one line).
    pub fn digest_problem(&self, level: &str, category: &str, message: &str) {
        if self.sinks.dir.is_none() {
            return;
        }
        let line = digest_line(level, category, message);
        let mut state = self.digest.lock();
        if !state.written {
            if state.pending.len() < MAX_PENDING_PROBLEMS {
                state.pending.push(line);
            } else {
                state.dropped_pending += 1;
            }
            return;
        }
        if state.full {
            return;
        }
        let text = if state.bytes + line.len() as u64 > MAX_DIGEST_BYTES {
            state.full = true;
            format!(
                "- … further errors and warnings are only in {}\n",
                self.sinks.layout.main_file
            )
        } else {
            line
        };
        if let Some(dir) = &self.sinks.dir
            && let Some(mut file) = open_append(&dir.join(DIGEST_FILE))
            && file.write_all(text.as_bytes()).is_ok()
        {
            state.bytes += text.len() as u64;
        }
    }
}

/// `- `time` **LEVEL** [category] message` for `gateway.md`.
fn digest_line(level: &str, category: &str, message: &str) -> String {
    let mut message = redact(message).replace(['\n', '\r'], " ");
    if message.chars().count() > MAX_DIGEST_LINE_CHARS {
        message = message
            .chars()
            .take(MAX_DIGEST_LINE_CHARS)
            .collect::<String>()
            + "…";
    }
    format!(
        "- `{}` **{level}** [{category}] {message}\n",
        utc_timestamp(SystemTime::now())
    )
}

fn format_line(at: SystemTime, level: &str, category: &str, message: &str) -> String {
    let mut line = format!(
        "[{}] [{level}] [{category}] {}",
        utc_timestamp(at),
        redact(message)
    );
    // One record per line.
    line = line.replace('\n', "\\n");
    line.push('\n');
    line
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for `at` (UTC).
pub fn utc_timestamp(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let millis = since.subsec_millis();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

const REDACTED: &str = "[REDACTED]";
const TOKEN_PREFIXES: &[&str] = &[
    "github_pat_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "sk-",
];
/// Hex runs at least this long are taken for secrets.
const MIN_SECRET_HEX: usize = 32;

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+' | '/' | '=')
}

fn is_base64url(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '=' | '+' | '/'))
}

fn is_jwt(word: &str) -> bool {
    let parts: Vec<&str> = word.split('.').collect();
    parts.len() == 3 && word.starts_with("eyJ") && parts.iter().all(|p| is_base64url(p))
}

fn has_long_hex_run(word: &str) -> bool {
    let mut run = 0usize;
    for c in word.chars() {
        if c.is_ascii_hexdigit() {
            run += 1;
            if run >= MIN_SECRET_HEX {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

fn is_secret_word(word: &str) -> bool {
    let trimmed = word.trim_matches(|c| matches!(c, '.' | '=' | '/' | '+'));
    TOKEN_PREFIXES
        .iter()
        .any(|p| trimmed.starts_with(p) && trimmed.len() >= p.len() + 8)
        || is_jwt(trimmed)
        || has_long_hex_run(trimmed)
}

/// `text` with secrets replaced by `[REDACTED]`: GitHub and similar
/// tokens (`ghp_…`, `github_pat_…`, …), the value after `Bearer`, hex
/// runs of 32+ digits and JWTs.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut after_bearer = false;
    let mut rest = text;
    while !rest.is_empty() {
        let word_len: usize = rest
            .chars()
            .take_while(|c| is_word_char(*c))
            .map(char::len_utf8)
            .sum();
        if word_len == 0 {
            let Some(c) = rest.chars().next() else { break };
            if !c.is_whitespace() && c != ':' {
                after_bearer = false;
            }
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let word = &rest[..word_len];
        let names_header_value = word.eq_ignore_ascii_case("authorization")
            && rest[word_len..].trim_start().starts_with(':');
        if word.eq_ignore_ascii_case("bearer") || names_header_value {
            out.push_str(word);
            after_bearer = true;
        } else if after_bearer || is_secret_word(word) {
            out.push_str(REDACTED);
            after_bearer = false;
        } else {
            out.push_str(word);
        }
        rest = &rest[word_len..];
    }
    out
}

fn redact_value(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(redact(s)),
        Value::Array(items) => Value::Array(items.iter().map(redact_value).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    if is_secret_key(k) && v.is_string() {
                        (k.clone(), Value::String(REDACTED.into()))
                    } else {
                        (k.clone(), redact_value(v))
                    }
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Whether an object key names a secret, whose string value is replaced whole.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["token", "secret", "password", "authorization", "api_key"]
        .iter()
        .any(|s| key.contains(s))
}

/// A payload as `rpc-messages.jsonl` stores it: secrets redacted, and cut
/// to a string preview when its JSON text exceeds
/// [`MAX_RPC_PAYLOAD_CHARS`] bytes (the preview keeps that many characters).
///
/// Only the part of a large payload that the preview shows is redacted and
/// serialised: a 30-issue list result is ~30 KB of text, and redacting all
/// of it to keep 10,000 characters was most of the cost of logging it.
pub fn sanitize_payload(payload: &Value) -> Value {
    let mut preview = BoundedText::new(MAX_RPC_PAYLOAD_CHARS + 1);
    write_redacted(payload, &mut preview);
    if !preview.is_full() && preview.text.len() <= MAX_RPC_PAYLOAD_CHARS {
        return redact_value(payload);
    }
    let cut = match preview.text.char_indices().nth(MAX_RPC_PAYLOAD_CHARS) {
        Some((end, _)) => &preview.text[..end],
        None => preview.text.as_str(),
    };
    Value::String(format!("{cut}… [truncated]"))
}

/// Text that stops growing after `limit` characters.
struct BoundedText {
    text: String,
    chars: usize,
    limit: usize,
}

impl BoundedText {
    fn new(limit: usize) -> Self {
        Self {
            text: String::new(),
            chars: 0,
            limit,
        }
    }

    fn is_full(&self) -> bool {
        self.chars >= self.limit
    }

    fn room(&self) -> usize {
        self.limit.saturating_sub(self.chars)
    }

    /// Appends as much of `piece` as the limit allows.
    fn push(&mut self, piece: &str) {
        let room = self.room();
        let end = match piece.char_indices().nth(room) {
            Some((end, _)) => end,
            None => piece.len(),
        };
        let kept = &piece[..end];
        self.chars += kept.chars().count();
        self.text.push_str(kept);
    }
}

/// Writes `value` redacted as compact JSON (the text `redact_value(value)
/// .to_string()` starts with) into `out`, stopping once `out` is full.
fn write_redacted(value: &Value, out: &mut BoundedText) {
    if out.is_full() {
        return;
    }
    match value {
        Value::String(s) => write_redacted_string(s, out),
        Value::Array(items) => {
            out.push("[");
            for (index, item) in items.iter().enumerate() {
                if out.is_full() {
                    return;
                }
                if index > 0 {
                    out.push(",");
                }
                write_redacted(item, out);
            }
            out.push("]");
        }
        Value::Object(map) => {
            out.push("{");
            for (index, (key, item)) in map.iter().enumerate() {
                if out.is_full() {
                    return;
                }
                if index > 0 {
                    out.push(",");
                }
                out.push(&Value::String(key.clone()).to_string());
                out.push(":");
                if is_secret_key(key) && item.is_string() {
                    out.push(&Value::String(REDACTED.into()).to_string());
                } else {
                    write_redacted(item, out);
                }
            }
            out.push("}");
        }
        other => out.push(&other.to_string()),
    }
}

/// Writes the JSON string of `redact(text)`, redacting only a prefix of
/// `text` long enough to fill `out`. The prefix always ends where a word
/// ends, so each word in it is redacted exactly as in the whole text (a
/// word's fate depends only on itself and the words before it).
fn write_redacted_string(text: &str, out: &mut BoundedText) {
    let mut want = out.room().max(16);
    loop {
        let end = word_safe_end(text, want);
        let prefix = &text[..end];
        let quoted = Value::String(redact(prefix)).to_string();
        if end == text.len() {
            out.push(&quoted);
            return;
        }
        // Drop the closing quote: the string goes on past the prefix.
        let open = &quoted[..quoted.len() - 1];
        if open.chars().count() >= out.room() || want >= text.len() {
            out.push(open);
            return;
        }
        // Redaction shrank the prefix below what is needed: take more.
        want = want.saturating_mul(2);
    }
}

/// A byte offset of `text` at or after its `min_chars`-th character where
/// no word is cut (the end of the text at worst).
fn word_safe_end(text: &str, min_chars: usize) -> usize {
    let Some((start, _)) = text.char_indices().nth(min_chars) else {
        return text.len();
    };
    match text[start..]
        .char_indices()
        .find(|(_, c)| !is_word_char(*c))
    {
        Some((offset, _)) => start + offset,
        None => text.len(),
    }
}

/// Writes the gateway's `tracing` events to `mcp-gateway.log` (and those
/// with a `server` field also to `<server>.log`). Cheap to clone.
#[derive(Debug, Clone)]
pub struct LogFileLayer {
    files: Arc<LogFiles>,
}

impl LogFileLayer {
    pub fn new(files: Arc<LogFiles>) -> Self {
        Self { files }
    }
}

/// Target of the child-stderr events, which backend code writes to
/// `<id>.log` itself.
pub const STDERR_TARGET: &str = "guardway::backend::stderr";

/// Field of an event written as the reference gateway writes its
/// per-server lines: `[<id>] <message>` in `mcp-gateway.log` and
/// `<message>` in `<id>.log` (an event with a `server` field instead gets
/// ` server=<id>` after its message, in both files).
pub const REFERENCE_SERVER_FIELD: &str = "server_id";

#[derive(Default)]
struct EventText {
    message: String,
    fields: String,
    server: Option<String>,
    /// [`REFERENCE_SERVER_FIELD`].
    server_id: Option<String>,
}

impl tracing::field::Visit for EventText {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            "server" => self.server = Some(value.to_owned()),
            REFERENCE_SERVER_FIELD => self.server_id = Some(value.to_owned()),
            name => self.fields.push_str(&format!(" {name}={value}")),
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message.push_str(&format!("{value:?}")),
            "server" => {
                let text = format!("{value:?}");
                self.server = Some(text.trim_matches('"').to_owned());
            }
            REFERENCE_SERVER_FIELD => {
                let text = format!("{value:?}");
                self.server_id = Some(text.trim_matches('"').to_owned());
            }
            name => self.fields.push_str(&format!(" {name}={value:?}")),
        }
    }
}

fn level_name(level: &tracing::Level) -> &'static str {
    match *level {
        tracing::Level::ERROR => "ERROR",
        tracing::Level::WARN => "WARN",
        tracing::Level::INFO => "INFO",
        tracing::Level::DEBUG | tracing::Level::TRACE => "DEBUG",
    }
}

/// The category of an event: the last path segment of its target.
fn category(target: &str) -> &str {
    if target == STDERR_TARGET {
        return "backend";
    }
    target.rsplit("::").next().unwrap_or(target)
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogFileLayer {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut text = EventText::default();
        event.record(&mut text);
        let meta = event.metadata();
        let level = level_name(meta.level());
        let category = category(meta.target());
        let mut message = text.message;
        if let Some(server) = &text.server {
            message.push_str(&format!(" server={server}"));
        }
        message.push_str(&text.fields);
        if let Some(id) = &text.server_id {
            let main = format!("[{id}] {message}");
            self.files
                .reference_server_line(id, level, category, &main, &message);
            message = main;
        } else {
            // Child stderr lines are in `<id>.log` already (backend code
            // writes them there itself).
            let backend_log = text
                .server
                .as_deref()
                .filter(|_| meta.target() != STDERR_TARGET);
            self.files
                .main_line_for(backend_log, level, category, &message);
        }
        if matches!(*meta.level(), tracing::Level::ERROR | tracing::Level::WARN) {
            self.files.digest_problem(level, category, &message);
        }
    }
}

/// The log files behind the global subscriber, once installed.
static GLOBAL_LOG_FILES: std::sync::OnceLock<Arc<LogFiles>> = std::sync::OnceLock::new();

/// Installs the global `tracing` subscriber of `guardway serve`: a stderr
/// logger filtered by `GUARDWAY_LOG`/`RUST_LOG` (default `default_level`)
/// plus [`LogFileLayer`] on `log_dir`. Both are written by the directory's
/// log writer thread, never by the thread that logs; call
/// [`flush_global_logging`] before the process exits. Returns `false` when
/// a global subscriber was already installed (then nothing changes).
pub fn install_global_logging(log_dir: &Path, default_level: &str) -> bool {
    install_global_logging_with(log_dir, LogLayout::GATEWAY, default_level)
}

/// [`install_global_logging`] with the files of `layout` (`guardway proxy`
/// passes [`LogLayout::PROXY`]).
pub fn install_global_logging_with(log_dir: &Path, layout: LogLayout, default_level: &str) -> bool {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = std::env::var("GUARDWAY_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|spec| tracing_subscriber::EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| {
            // rmcp narrates every session at info (five lines per agent
            // session, on stderr and in the log); its warnings stay.
            tracing_subscriber::EnvFilter::new(format!("{default_level},rmcp=warn"))
        });
    let files = LogFiles::open_with(log_dir, layout);
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(DeferredStderr(files.clone()))
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(LogFileLayer::new(files.clone()))
        .try_init()
        .is_ok();
    if installed {
        let _ = GLOBAL_LOG_FILES.set(files);
    }
    installed
}

/// One `mcp-gateway.log` line that does not go to stderr (the reference
/// writes some start-up facts to its log files only), through the log files
/// of [`install_global_logging`]; a no-op before it installed them.
pub fn log_file_line(level: &str, category: &str, message: &str) {
    if let Some(files) = GLOBAL_LOG_FILES.get() {
        files.main_line(level, category, message);
    }
}

/// Waits (up to 5 s) until everything the global subscriber was handed is
/// written. A no-op when [`install_global_logging`] did not install it.
pub fn flush_global_logging() {
    if let Some(files) = GLOBAL_LOG_FILES.get() {
        files.flush();
    }
}

/// Stderr for the fmt layer: each event's text goes to the log writer.
struct DeferredStderr(Arc<LogFiles>);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for DeferredStderr {
    type Writer = StderrEvent<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        StderrEvent {
            files: &self.0,
            text: Vec::new(),
        }
    }
}

/// The text of one event, handed to the log writer when dropped.
struct StderrEvent<'a> {
    files: &'a LogFiles,
    text: Vec<u8>,
}

impl Write for StderrEvent<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for StderrEvent<'_> {
    fn drop(&mut self) {
        if !self.text.is_empty() {
            let text = String::from_utf8_lossy(&self.text).into_owned();
            self.files.stderr_text(text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn log_writer_keeps_every_line_past_its_queue_bound() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::open(dir.path());
        // Four threads hand over more than the queue holds between two
        // batches, so some lines are written by their callers.
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let files = &files;
                scope.spawn(move || {
                    for n in 0..LOG_QUEUE {
                        files.main_line("INFO", "test", &format!("{thread} {n}"));
                    }
                });
            }
        });
        files.flush();
        let text = std::fs::read_to_string(dir.path().join(MAIN_LOG_FILE)).unwrap();
        let mut lines: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split("[test] ").nth(1))
            .collect();
        assert_eq!(lines.len(), 4 * LOG_QUEUE);
        lines.sort_unstable();
        lines.dedup();
        assert_eq!(lines.len(), 4 * LOG_QUEUE, "a line was written twice");
        // Lines handed over after a flush are written by the next one.
        files.main_line("INFO", "test", "last");
        files.flush();
        let text = std::fs::read_to_string(dir.path().join(MAIN_LOG_FILE)).unwrap();
        assert!(text.ends_with("[test] last\n"), "{text}");
    }

    #[test]
    fn timestamps_are_utc_iso8601_with_millis() {
        let at = UNIX_EPOCH + Duration::from_millis(1_764_081_296_789);
        assert_eq!(utc_timestamp(at), "2025-11-25T14:34:56.789Z");
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(utc_timestamp(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn redaction_covers_tokens_bearer_hex_and_jwt() {
        let ghp = format!("ghp_{}", "a1B2".repeat(9));
        let pat = format!("github_pat_{}", "x9".repeat(20));
        let hex = "0123456789abcdef".repeat(4);
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlX3ZhbHVl";
        let text = format!(
            "token {ghp} and {pat}; Authorization: Bearer s3cr3t-v4lue hex={hex} jwt {jwt} ok"
        );
        let out = redact(&text);
        for secret in [ghp.as_str(), pat.as_str(), "s3cr3t-v4lue", &hex, jwt] {
            assert!(!out.contains(secret), "{secret} leaked in {out}");
        }
        assert!(out.ends_with(" ok"), "{out}");
        assert_eq!(
            redact("plain words, short ab12 hex"),
            "plain words, short ab12 hex"
        );
        assert_eq!(
            redact("missing Authorization header"),
            "missing Authorization header"
        );
        assert_eq!(
            redact("Authorization: my-agent-key"),
            "Authorization: [REDACTED]"
        );
    }

    /// `sanitize_payload` as it was before it learnt to stop early: redact
    /// everything, then cut. The bounded version must agree with it.
    fn sanitize_payload_whole(payload: &Value) -> Value {
        let clean = redact_value(payload);
        let text = clean.to_string();
        if text.len() <= MAX_RPC_PAYLOAD_CHARS {
            return clean;
        }
        let cut: String = text.chars().take(MAX_RPC_PAYLOAD_CHARS).collect();
        Value::String(format!("{cut}… [truncated]"))
    }

    #[test]
    fn bounded_payload_preview_matches_redacting_everything() {
        let words = [
            "plain",
            "Bearer",
            "tok",
            "ghp_abcdefghijklmnopqrstuvwxyz0123",
            "Authorization:",
            "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
            "é€😀",
            "\"quoted\"\n",
            "a.b/c+d=",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |bound: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % bound as u64) as usize
        };
        for round in 0..300 {
            let sizes = [10, 200, 1_500, 2_400, 2_600, 5_000];
            let target = sizes[round % sizes.len()];
            let mut make_text = |count: usize| {
                (0..count)
                    .map(|_| words[next(words.len())])
                    .collect::<Vec<_>>()
                    .join(if next(3) == 0 { "  " } else { " " })
            };
            let items: Vec<Value> = (0..(round % 4 + 1))
                .map(|index| {
                    json!({
                        "id": index,
                        "api_token": "short",
                        "body": make_text(target),
                        "tags": [make_text(3), null, true, 1.5],
                    })
                })
                .collect();
            let payload =
                json!({"content": [{"type": "text", "text": make_text(target)}], "items": items});
            assert_eq!(
                sanitize_payload(&payload),
                sanitize_payload_whole(&payload),
                "round {round}"
            );
        }
        let exact = json!("x".repeat(MAX_RPC_PAYLOAD_CHARS - 2));
        assert_eq!(sanitize_payload(&exact), sanitize_payload_whole(&exact));
        let wide = json!("é".repeat(MAX_RPC_PAYLOAD_CHARS));
        assert_eq!(sanitize_payload(&wide), sanitize_payload_whole(&wide));
        let shrinking = json!(format!(
            "{} end",
            "ghp_abcdefghijklmnopqrstuvwxyz0123 ".repeat(2_000)
        ));
        assert_eq!(
            sanitize_payload(&shrinking),
            sanitize_payload_whole(&shrinking)
        );
    }

    #[test]
    fn payload_redacts_secret_keys_and_truncates() {
        let payload = json!({"args": {"api_token": "short", "q": "Bearer abcdefgh"}});
        let clean = sanitize_payload(&payload);
        assert_eq!(clean["args"]["api_token"], "[REDACTED]");
        assert_eq!(clean["args"]["q"], "Bearer [REDACTED]");
        let big = json!({"text": "x".repeat(MAX_RPC_PAYLOAD_CHARS * 2)});
        let cut = sanitize_payload(&big);
        assert!(cut.as_str().unwrap().ends_with("[truncated]"));
    }

    #[test]
    fn layer_writes_main_and_backend_files() {
        use tracing_subscriber::layer::SubscriberExt;
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::open(dir.path());
        let subscriber = tracing_subscriber::registry().with(LogFileLayer::new(files));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "guardway_gateway::backend", server = "alpha", code = 7, "backend failed with ghp_abcdefghijklmnopqrstuvwxyz");
            tracing::info!(target: "guardway_gateway::gateway", "gateway listening");
            // A child's stderr line is written to `<id>.log` by backend
            // code itself: the layer puts it in the main log only.
            tracing::info!(target: STDERR_TARGET, server = "alpha", "[stderr] hello");
        });
        let main = std::fs::read_to_string(dir.path().join(MAIN_LOG_FILE)).unwrap();
        let lines: Vec<&str> = main.lines().collect();
        assert_eq!(lines.len(), 3, "{main}");
        assert!(lines[0].starts_with("[20"), "{main}");
        assert!(
            lines[0]
                .contains("Z] [WARN] [backend] backend failed with [REDACTED] server=alpha code=7"),
            "{main}"
        );
        assert!(
            lines[1].contains("] [INFO] [gateway] gateway listening"),
            "{main}"
        );
        assert!(
            lines[2].contains("] [INFO] [backend] [stderr] hello server=alpha"),
            "{main}"
        );
        let alpha = std::fs::read_to_string(dir.path().join("alpha.log")).unwrap();
        assert_eq!(alpha.lines().count(), 1, "{alpha}");
        assert!(alpha.contains("[WARN] [backend] backend failed"), "{alpha}");
    }

    #[test]
    fn reference_server_lines_name_the_server_before_the_message() {
        use tracing_subscriber::layer::SubscriberExt;
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::open(dir.path());
        let subscriber = tracing_subscriber::registry().with(LogFileLayer::new(files.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "guardway::difc", server_id = "alpha", "Registered guard 'noop'");
            tracing::warn!(target: "guardway::difc", server_id = %"beta", reason = "r", "Guard failed");
        });
        files.flush();
        let main = std::fs::read_to_string(dir.path().join(MAIN_LOG_FILE)).unwrap();
        let lines: Vec<&str> = main.lines().collect();
        assert!(
            lines[0].ends_with("] [INFO] [difc] [alpha] Registered guard 'noop'"),
            "{main}"
        );
        assert!(
            lines[1].ends_with("] [WARN] [difc] [beta] Guard failed reason=r"),
            "{main}"
        );
        let alpha = std::fs::read_to_string(dir.path().join("alpha.log")).unwrap();
        assert!(
            alpha
                .trim_end()
                .ends_with("] [INFO] [difc] Registered guard 'noop'"),
            "{alpha}"
        );
        let digest = std::fs::read_to_string(dir.path().join(DIGEST_FILE)).unwrap_or_default();
        assert!(!digest.contains("Registered guard"), "{digest}");
    }

    #[test]
    fn event_records_go_to_the_jsonl_file_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::open_with(dir.path(), LogLayout::PROXY);
        let mut fields = serde_json::Map::new();
        fields.insert("event".into(), json!("unrecognized_endpoint_passthrough"));
        fields.insert("_schema".into(), json!("difc-event/v1"));
        fields.insert("path".into(), json!("/x"));
        files.event_record(fields);
        files.flush();
        let text = std::fs::read_to_string(dir.path().join(RPC_LOG_FILE)).unwrap();
        let record: Value = serde_json::from_str(text.trim()).unwrap();
        let keys: Vec<&str> = record
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["timestamp", "event", "_schema", "path"]);
        assert!(record["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn the_proxy_layout_writes_proxy_log_only() {
        use tracing_subscriber::layer::SubscriberExt;
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::open_with(dir.path(), LogLayout::PROXY);
        let subscriber = tracing_subscriber::registry().with(LogFileLayer::new(files));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "guardway_gateway::difc", server = "github", "difc decision");
            tracing::info!(target: "guardway::proxy", "Proxy listening");
        });
        let main = std::fs::read_to_string(dir.path().join(PROXY_LOG_FILE)).unwrap();
        assert_eq!(main.lines().count(), 2, "{main}");
        assert!(
            main.contains("[WARN] [difc] difc decision server=github"),
            "{main}"
        );
        assert!(main.contains("[INFO] [proxy] Proxy listening"), "{main}");
        assert!(!dir.path().join(MAIN_LOG_FILE).exists());
        assert!(!dir.path().join("github.log").exists());
    }

    #[test]
    fn unusable_directory_falls_back_to_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "x").unwrap();
        let files = LogFiles::open(&blocker.join("logs"));
        assert!(files.dir().is_none());
        files.main_line("INFO", "test", "still logged");
        files.rpc("s", RpcDirection::Out, "tools/call", None, || None);
        files.write_tools(&BTreeMap::new());
    }

    #[test]
    fn backend_file_names_are_one_segment() {
        assert_eq!(backend_file_name("github"), "github.log");
        assert_eq!(backend_file_name("../x"), ".._x.log");
        assert_eq!(backend_file_name(".."), "_...log");
    }
}

#[cfg(test)]
mod digest_tests {
    use super::*;

    fn sample_digest() -> StartupDigest {
        StartupDigest {
            version: "1.2.3".into(),
            mode: "routed".into(),
            listen: "127.0.0.1:3000".into(),
            servers: vec![
                DigestServer {
                    id: "github".into(),
                    transport: "stdio `demo`".into(),
                    status: "running".into(),
                    tools: 12,
                    error: None,
                },
                DigestServer {
                    id: "broken".into(),
                    transport: "stdio `missing`".into(),
                    status: "error".into(),
                    tools: 0,
                    error: Some("spawn failed | no such file".into()),
                },
            ],
            guards: BTreeMap::from([(
                "github".to_owned(),
                json!({"name": "sample", "type": "wasm", "state": "healthy"}),
            )]),
            cache: "memory only".into(),
            policies: crate::observe::digest::StartupPolicies {
                workflow_repository: Some("acme/web (public)".into()),
                force_public_repos: None,
                policies: BTreeMap::from([(
                    "github".to_owned(),
                    r#"{"allow-only":{"repos":"public","min-integrity":"none"}}"#.to_owned(),
                )]),
            },
        }
    }

    #[test]
    fn one_handle_per_directory_while_alive() {
        let dir = tempfile::tempdir().unwrap();
        let a = LogFiles::open(dir.path());
        let b = LogFiles::open(&dir.path().join("."));
        assert!(Arc::ptr_eq(&a, &b));
        let other = tempfile::tempdir().unwrap();
        assert!(!Arc::ptr_eq(&a, &LogFiles::open(other.path())));
    }

    #[test]
    fn digest_lists_startup_then_problems_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::open(dir.path());
        files.digest_problem(
            "WARN",
            "gateway",
            "before start-up with ghp_abcdefghijklmnop",
        );
        assert!(!dir.path().join(DIGEST_FILE).exists());
        files.write_startup_digest(&sample_digest());
        files.digest_problem("ERROR", "backend", "after\nstart-up");
        let text = std::fs::read_to_string(dir.path().join(DIGEST_FILE)).unwrap();
        assert!(text.starts_with("# MCP Gateway\n"), "{text}");
        assert!(text.contains("| Version | guardway 1.2.3 |"), "{text}");
        assert!(text.contains("| Mode | routed |"), "{text}");
        assert!(text.contains("| Listening on | 127.0.0.1:3000 |"), "{text}");
        assert!(
            text.contains("| Guard compilation cache | memory only |"),
            "{text}"
        );
        assert!(text.contains("## Servers (1 of 2 running)"), "{text}");
        assert!(
            text.contains("| github | stdio `demo` | running | 12 |  |"),
            "{text}"
        );
        assert!(
            text.contains(
                "| broken | stdio `missing` | error | 0 | spawn failed \\| no such file |"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "| github | sample | wasm | healthy | `{\"allow-only\":{\"repos\":\"public\",\"min-integrity\":\"none\"}}` |  |"
            ),
            "{text}"
        );
        assert!(
            text.contains("| Workflow repository | acme/web (public) |"),
            "{text}"
        );
        assert!(!text.contains("| Force public repos |"), "{text}");
        let problems = text.split("## Errors and warnings").nth(1).unwrap();
        let lines: Vec<&str> = problems.lines().filter(|l| l.starts_with("- ")).collect();
        assert_eq!(lines.len(), 2, "{problems}");
        assert!(lines[0].contains("**WARN** [gateway] before start-up with [REDACTED]"));
        assert!(lines[1].contains("**ERROR** [backend] after start-up"));
    }

    #[test]
    fn digest_stops_growing_at_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::open(dir.path());
        files.write_startup_digest(&sample_digest());
        let message = "x".repeat(1_000);
        for _ in 0..1_000 {
            files.digest_problem("WARN", "test", &message);
        }
        let text = std::fs::read_to_string(dir.path().join(DIGEST_FILE)).unwrap();
        assert!(
            text.len() as u64 <= MAX_DIGEST_BYTES + 200,
            "{}",
            text.len()
        );
        assert!(text.len() as u64 > MAX_DIGEST_BYTES - 2_000);
        assert!(text.ends_with("further errors and warnings are only in mcp-gateway.log\n"));
        assert_eq!(text.matches("only in mcp-gateway.log").count(), 1);
    }

    #[test]
    fn long_problem_lines_are_cut() {
        let line = digest_line("WARN", "c", &"y".repeat(MAX_DIGEST_LINE_CHARS * 2));
        assert!(line.chars().count() < MAX_DIGEST_LINE_CHARS + 80);
        assert!(line.ends_with("…\n"));
    }
}
