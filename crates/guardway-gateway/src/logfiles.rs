//! The files in the log directory (gateway.md §7): `mcp-gateway.log`,
//! `<id>.log` per backend, `rpc-messages.jsonl`, `tools.json`, and the
//! redaction of secrets in everything written there.
//!
//! [`LogFiles`] is the handle the gateway writes through; when the
//! directory cannot be created, log lines go to stderr instead and the
//! JSON files are not written. [`LogFileLayer`] is the `tracing` layer that
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
/// `Arc<LogFiles>`; every line is written with one `write_all` on a file
/// opened for appending.
#[derive(Debug)]
pub struct LogFiles {
    /// `None` when the directory could not be created (stderr fallback).
    dir: Option<PathBuf>,
    main: Mutex<Option<File>>,
    backends: Mutex<HashMap<String, File>>,
    rpc: Mutex<Option<File>>,
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
    /// Opens (creating if needed) `dir` and its main and RPC files. Never
    /// fails: without a usable directory the handle writes lines to stderr.
    pub fn open(dir: &Path) -> Arc<Self> {
        let usable = std::fs::create_dir_all(dir).is_ok();
        let main = if usable {
            open_append(&dir.join(MAIN_LOG_FILE))
        } else {
            None
        };
        if main.is_none() {
            eprintln!(
                "guardway: cannot write log directory {}; logging to stderr",
                dir.display()
            );
            return Arc::new(Self {
                dir: None,
                main: Mutex::new(None),
                backends: Mutex::new(HashMap::new()),
                rpc: Mutex::new(None),
            });
        }
        Arc::new(Self {
            dir: Some(dir.to_path_buf()),
            main: Mutex::new(main),
            backends: Mutex::new(HashMap::new()),
            rpc: Mutex::new(open_append(&dir.join(RPC_LOG_FILE))),
        })
    }

    /// The log directory, if it is usable.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// One `mcp-gateway.log` line (redacted).
    pub fn main_line(&self, level: &str, category: &str, message: &str) {
        let line = format_line(level, category, message);
        match self.main.lock().as_mut() {
            Some(file) => {
                let _ = file.write_all(line.as_bytes());
            }
            None => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }

    /// One line of `<server>.log` (redacted).
    pub fn backend_line(&self, server: &str, level: &str, category: &str, message: &str) {
        let line = format_line(level, category, message);
        let Some(dir) = &self.dir else {
            let _ = std::io::stderr().write_all(format!("[{server}] {line}").as_bytes());
            return;
        };
        let mut files = self.backends.lock();
        if !files.contains_key(server) {
            match open_append(&dir.join(backend_file_name(server))) {
                Some(file) => {
                    files.insert(server.to_owned(), file);
                }
                None => return,
            }
        }
        if let Some(file) = files.get_mut(server) {
            let _ = file.write_all(line.as_bytes());
        }
    }

    /// One `rpc-messages.jsonl` record for a message to or from `server`.
    pub fn rpc(
        &self,
        server: &str,
        direction: RpcDirection,
        method: &str,
        payload: Option<&Value>,
        error: Option<&str>,
    ) {
        let mut guard = self.rpc.lock();
        let Some(file) = guard.as_mut() else {
            return;
        };
        let event = match direction {
            RpcDirection::Out => "rpc_request",
            RpcDirection::In => "rpc_response",
        };
        let record = json!({
            "timestamp": utc_timestamp(SystemTime::now()),
            "event": event,
            "_schema": RPC_SCHEMA,
            "direction": direction.as_str(),
            "server_id": server,
            "method": method,
            "error": error.map(redact),
            "payload": payload.map(sanitize_payload),
        });
        let mut text = record.to_string();
        text.push('\n');
        let _ = file.write_all(text.as_bytes());
    }

    /// Writes `tools.json`: `{"servers": {id: [{"name","description"}]}}`
    /// from `(name, description)` pairs per server (redacted).
    pub fn write_tools(&self, servers: &BTreeMap<String, Vec<(String, String)>>) {
        let Some(dir) = &self.dir else {
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

fn format_line(level: &str, category: &str, message: &str) -> String {
    let mut line = format!(
        "[{}] [{level}] [{category}] {}",
        utc_timestamp(SystemTime::now()),
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
                    let key = k.to_ascii_lowercase();
                    let secret_key = ["token", "secret", "password", "authorization", "api_key"]
                        .iter()
                        .any(|s| key.contains(s));
                    if secret_key && v.is_string() {
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

/// A payload as `rpc-messages.jsonl` stores it: secrets redacted, and cut
/// to a string preview when its JSON text exceeds
/// [`MAX_RPC_PAYLOAD_CHARS`].
pub fn sanitize_payload(payload: &Value) -> Value {
    let clean = redact_value(payload);
    let text = clean.to_string();
    if text.len() <= MAX_RPC_PAYLOAD_CHARS {
        return clean;
    }
    let cut: String = text.chars().take(MAX_RPC_PAYLOAD_CHARS).collect();
    Value::String(format!("{cut}… [truncated]"))
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

#[derive(Default)]
struct EventText {
    message: String,
    fields: String,
    server: Option<String>,
}

impl tracing::field::Visit for EventText {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            "server" => self.server = Some(value.to_owned()),
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
        self.files.main_line(level, category, &message);
        if let Some(server) = &text.server
            && meta.target() != STDERR_TARGET
        {
            self.files.backend_line(server, level, category, &message);
        }
    }
}

/// Installs the global `tracing` subscriber of `guardway serve`: a stderr
/// logger filtered by `GUARDWAY_LOG`/`RUST_LOG` (default `default_level`)
/// plus [`LogFileLayer`] on `log_dir`. Returns `false` when a global
/// subscriber was already installed (then nothing changes).
pub fn install_global_logging(log_dir: &Path, default_level: &str) -> bool {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = std::env::var("GUARDWAY_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|spec| tracing_subscriber::EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default_level));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(LogFileLayer::new(LogFiles::open(log_dir)))
        .try_init()
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        });
        let main = std::fs::read_to_string(dir.path().join(MAIN_LOG_FILE)).unwrap();
        let lines: Vec<&str> = main.lines().collect();
        assert_eq!(lines.len(), 2, "{main}");
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
        let alpha = std::fs::read_to_string(dir.path().join("alpha.log")).unwrap();
        assert_eq!(alpha.lines().count(), 1, "{alpha}");
        assert!(alpha.contains("[WARN] [backend] backend failed"), "{alpha}");
    }

    #[test]
    fn unusable_directory_falls_back_to_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "x").unwrap();
        let files = LogFiles::open(&blocker.join("logs"));
        assert!(files.dir().is_none());
        files.main_line("INFO", "test", "still logged");
        files.rpc("s", RpcDirection::Out, "tools/call", None, None);
        files.write_tools(&BTreeMap::new());
    }

    #[test]
    fn backend_file_names_are_one_segment() {
        assert_eq!(backend_file_name("github"), "github.log");
        assert_eq!(backend_file_name("../x"), ".._x.log");
        assert_eq!(backend_file_name(".."), "_...log");
    }
}
