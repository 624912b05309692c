//! Payload spill (gateway.md §6.2 step 8): a tool result whose JSON is
//! larger than the threshold is written to
//! `<payloadDir>/<session>/<32 hex>/payload.json` and replaced by one text
//! item describing the file (path, preview, schema, size).

use std::io::Write;
use std::path::{Path, PathBuf};

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Value, json};

/// Bytes of the result's JSON shown in `payloadPreview` (cut back to a
/// UTF-8 boundary, then `...` appended).
pub const PAYLOAD_PREVIEW_BYTES: usize = 500;

/// The file name inside each payload directory.
pub const PAYLOAD_FILE_NAME: &str = "payload.json";

/// Session directory used when a call carries no agent id (stdio agents).
pub const DEFAULT_SESSION_SEGMENT: &str = "default";

/// `agentInstructions` of a spilled result (the reference gateway's text).
pub const PAYLOAD_INSTRUCTIONS: &str = "The payload was too large for an MCP response. The complete original response data is saved as a JSON file at payloadPath. The file contains valid JSON that can be parsed directly. The payloadSchema shows the structure and types of fields in the full response, but not the actual values. To access the full data with all values, read and parse the JSON file at payloadPath.";

/// Envelope bytes allowed per content item and per result when the size of
/// a result is bounded without serialising it.
const ITEM_OVERHEAD: u64 = 64;
const RESULT_OVERHEAD: u64 = 128;

/// Where and above which size results are spilled. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpillSettings {
    /// `payloadDir`.
    pub dir: PathBuf,
    /// `payloadPathPrefix`: replaces `dir` in the path the agent is given.
    pub path_prefix: Option<String>,
    /// `payloadSizeThreshold`: results whose JSON is longer are spilled.
    pub threshold: u64,
}

/// Why a payload could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    #[error("cannot serialise the result: {message}")]
    Serialise { message: String },
    #[error("no random bytes for the payload id: {message}")]
    Random { message: String },
    #[error("cannot create payload directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write payload file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Counts bytes written, failing once more than `limit` were written.
struct SizeCounter {
    written: u64,
    limit: u64,
}

impl Write for SizeCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.written += buf.len() as u64;
        if self.written > self.limit {
            return Err(std::io::Error::other("over the limit"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The JSON length of `value` if it is at most `limit`, else `None`.
fn json_len_within(value: &impl serde::Serialize, limit: u64) -> Option<u64> {
    let mut counter = SizeCounter { written: 0, limit };
    serde_json::to_writer(&mut counter, value).ok()?;
    Some(counter.written)
}

/// Bytes `text` takes as a JSON string body, at most: control characters
/// may become six bytes, quotes and backslashes two.
fn escaped_len_bound(text: &str) -> u64 {
    let extra: u64 = text
        .bytes()
        .map(|b| match b {
            0..=0x1f => 5u64,
            b'"' | b'\\' => 1,
            _ => 0,
        })
        .sum();
    text.len() as u64 + extra
}

/// Whether the JSON of `result` may be longer than `threshold`, decided
/// without serialising plain text items (their length bounds their JSON).
/// `false` means certainly not longer.
pub fn may_exceed(result: &CallToolResult, threshold: u64) -> bool {
    let mut bound = RESULT_OVERHEAD;
    for item in &result.content {
        bound += ITEM_OVERHEAD;
        match item {
            ContentBlock::Text(text) if text.meta.is_none() && text.annotations.is_none() => {
                let cheap = (text.text.len() as u64).saturating_mul(6);
                bound += if bound + cheap <= threshold {
                    cheap
                } else {
                    escaped_len_bound(&text.text)
                };
            }
            other => match json_len_within(other, threshold) {
                Some(len) => bound += len,
                None => return true,
            },
        }
        if bound > threshold {
            return true;
        }
    }
    if let Some(structured) = &result.structured_content {
        match json_len_within(structured, threshold) {
            Some(len) => bound += len,
            None => return true,
        }
    }
    if let Some(meta) = &result.meta {
        match json_len_within(meta, threshold) {
            Some(len) => bound += len,
            None => return true,
        }
    }
    bound > threshold
}

/// `json` cut to at most [`PAYLOAD_PREVIEW_BYTES`] bytes on a character
/// boundary, with `...` appended when something was cut.
pub fn payload_preview(json: &str) -> String {
    if json.len() <= PAYLOAD_PREVIEW_BYTES {
        return json.to_owned();
    }
    let mut cut = PAYLOAD_PREVIEW_BYTES;
    while !json.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &json[..cut])
}

/// The shape of `value`: every leaf replaced by its jq type name (`null`,
/// `boolean`, `number`, `string`), objects kept key by key, arrays reduced
/// to the shape of their first element (`[]` when empty).
pub fn payload_schema(value: &Value) -> Value {
    match value {
        Value::Null => Value::String("null".into()),
        Value::Bool(_) => Value::String("boolean".into()),
        Value::Number(_) => Value::String("number".into()),
        Value::String(_) => Value::String("string".into()),
        Value::Array(items) => {
            Value::Array(items.first().map(payload_schema).into_iter().collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), payload_schema(v)))
                .collect(),
        ),
    }
}

/// Whether `segment` is one safe path component (gateway.md §3.2).
fn is_safe_segment(segment: &str) -> bool {
    !segment.is_empty() && segment != "." && segment != ".." && !segment.contains(['/', '\\', '\0'])
}

fn random_hex_id() -> Result<String, SpillError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| SpillError::Random {
        message: e.to_string(),
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(unix)]
fn create_private_dirs(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

#[cfg(not(unix))]
fn create_private_dirs(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)
}

#[cfg(unix)]
fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_data()
}

#[cfg(not(unix))]
fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(bytes)
}

/// A spill that failed: the untouched result and why.
#[derive(Debug)]
pub struct SpillFailure {
    pub result: CallToolResult,
    pub error: SpillError,
}

/// What a spill did.
#[derive(Debug)]
pub enum SpillOutcome {
    /// The result's JSON was within the threshold; it is returned unchanged.
    Kept(CallToolResult),
    /// The payload was written; the result is the replacement item.
    Spilled {
        result: CallToolResult,
        /// Where the file was written (not prefixed).
        file: PathBuf,
        original_size: usize,
    },
}

/// Spills `result` if its JSON is longer than the threshold.
///
/// # Errors
/// When the payload cannot be serialised or written; the caller then keeps
/// the original result, which is handed back with the error.
pub fn spill(
    result: CallToolResult,
    settings: &SpillSettings,
    session: Option<&str>,
) -> Result<SpillOutcome, Box<SpillFailure>> {
    let fail = |result, error| Box::new(SpillFailure { result, error });
    let json = match serde_json::to_string(&result) {
        Ok(json) => json,
        Err(e) => {
            return Err(fail(
                result,
                SpillError::Serialise {
                    message: e.to_string(),
                },
            ));
        }
    };
    if json.len() as u64 <= settings.threshold {
        return Ok(SpillOutcome::Kept(result));
    }
    let session = session
        .filter(|s| is_safe_segment(s))
        .unwrap_or(DEFAULT_SESSION_SEGMENT);
    let id = match random_hex_id() {
        Ok(id) => id,
        Err(e) => return Err(fail(result, e)),
    };
    let dir = settings.dir.join(session).join(&id);
    if let Err(source) = create_private_dirs(&dir) {
        return Err(fail(result, SpillError::CreateDir { path: dir, source }));
    }
    let file = dir.join(PAYLOAD_FILE_NAME);
    if let Err(source) = write_private_file(&file, json.as_bytes()) {
        return Err(fail(result, SpillError::Write { path: file, source }));
    }
    let agent_path = match settings.path_prefix.as_deref() {
        Some(prefix) if !prefix.is_empty() => Path::new(prefix)
            .join(session)
            .join(&id)
            .join(PAYLOAD_FILE_NAME),
        _ => file.clone(),
    };
    // The schema describes the file's content: the result's JSON.
    let schema = serde_json::from_str::<Value>(&json)
        .map(|v| payload_schema(&v))
        .unwrap_or(Value::Null);
    let description = json!({
        "agentInstructions": PAYLOAD_INSTRUCTIONS,
        "payloadPath": agent_path.to_string_lossy(),
        "payloadPreview": payload_preview(&json),
        "payloadSchema": schema,
        "originalSize": json.len(),
    });
    let mut replacement =
        CallToolResult::success(vec![ContentBlock::text(description.to_string())]);
    replacement.is_error = result.is_error;
    replacement.meta = result.meta;
    replacement.result_type = result.result_type;
    Ok(SpillOutcome::Spilled {
        result: replacement,
        file,
        original_size: json.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_keeps_short_json_whole() {
        let short = "{\"a\":1}";
        assert_eq!(payload_preview(short), short);
        let exact = "x".repeat(PAYLOAD_PREVIEW_BYTES);
        assert_eq!(payload_preview(&exact), exact);
    }

    #[test]
    fn preview_cuts_at_500_bytes_and_appends_dots() {
        let long = "y".repeat(PAYLOAD_PREVIEW_BYTES + 1);
        let preview = payload_preview(&long);
        assert_eq!(preview.len(), PAYLOAD_PREVIEW_BYTES + 3);
        assert!(preview.ends_with("y..."));
    }

    #[test]
    fn preview_never_splits_a_character() {
        // A 2-byte character straddling byte 500: cut before it.
        let two = format!("{}é{}", "a".repeat(499), "b".repeat(10));
        assert_eq!(payload_preview(&two), format!("{}...", "a".repeat(499)));
        // A 4-byte character starting at 498: bytes 498..502, cut at 498.
        let four = format!("{}😀{}", "a".repeat(498), "b".repeat(10));
        assert_eq!(payload_preview(&four), format!("{}...", "a".repeat(498)));
        // A character ending exactly at 500 is kept.
        let ends = format!("{}€{}", "a".repeat(497), "b".repeat(10));
        assert_eq!(payload_preview(&ends), format!("{}€...", "a".repeat(497)));
        // Only multi-byte characters.
        let all = "ж".repeat(400);
        let preview = payload_preview(&all);
        assert_eq!(preview, format!("{}...", "ж".repeat(250)));
    }

    #[test]
    fn schema_names_leaf_types_and_keeps_first_array_element() {
        let value = json!({
            "name": "x", "count": 3, "ratio": 0.5, "ok": true, "none": null,
            "items": [{"id": 1, "tags": ["a"]}, {"id": "two", "other": 1}],
            "empty": [], "nested": {"deep": [[1, 2], []]}
        });
        assert_eq!(
            payload_schema(&value),
            json!({
                "name": "string", "count": "number", "ratio": "number", "ok": "boolean",
                "none": "null",
                "items": [{"id": "number", "tags": ["string"]}],
                "empty": [], "nested": {"deep": [["number"]]}
            })
        );
        assert_eq!(payload_schema(&json!("s")), json!("string"));
        assert_eq!(payload_schema(&json!([])), json!([]));
    }

    #[test]
    fn segments_that_escape_the_directory_are_refused() {
        for bad in ["", ".", "..", "a/b", "a\\b", "a\0b"] {
            assert!(!is_safe_segment(bad), "{bad:?}");
        }
        assert!(is_safe_segment("agent-1"));
    }

    fn text_result(text: &str) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::text(text)])
    }

    #[test]
    fn size_bound_is_never_below_the_real_size() {
        for text in [
            "",
            "plain",
            "quotes \" and \\ back",
            "ctl \u{1}\u{2}\n\t",
            "ünï",
        ] {
            let result = text_result(&text.repeat(50));
            let real = serde_json::to_string(&result).unwrap().len() as u64;
            assert!(may_exceed(&result, real - 1), "{text:?}");
        }
        let small = text_result("hello");
        assert!(!may_exceed(&small, 1000));
        let mut structured = text_result("x");
        structured.structured_content = Some(json!({"big": "z".repeat(5000)}));
        assert!(may_exceed(&structured, 4000));
    }

    #[test]
    fn small_results_are_kept_and_large_ones_written_privately() {
        let dir = tempfile::tempdir().unwrap();
        let settings = SpillSettings {
            dir: dir.path().join("payloads"),
            path_prefix: Some("/workspace/payloads".into()),
            threshold: 100,
        };
        let small = text_result("tiny");
        assert!(matches!(
            spill(small, &settings, Some("agent")).unwrap(),
            SpillOutcome::Kept(_)
        ));
        let big = text_result(&"é".repeat(300));
        let original = serde_json::to_string(&big).unwrap();
        let SpillOutcome::Spilled {
            result,
            file,
            original_size,
        } = spill(big, &settings, Some("agent")).unwrap()
        else {
            panic!("expected a spill");
        };
        assert_eq!(original_size, original.len());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), original);
        let id = file
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        assert_eq!(id.len(), 32);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            file.parent().unwrap().parent().unwrap(),
            settings.dir.join("agent")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&file), 0o600);
            assert_eq!(mode(file.parent().unwrap()), 0o700);
        }
        let item: Value = serde_json::from_str(&result.content[0].as_text().unwrap().text).unwrap();
        assert_eq!(item["agentInstructions"], PAYLOAD_INSTRUCTIONS);
        assert_eq!(
            item["payloadPath"],
            format!("/workspace/payloads/agent/{id}/payload.json")
        );
        assert_eq!(item["payloadPreview"], payload_preview(&original));
        assert_eq!(item["originalSize"], original.len());
        assert_eq!(
            item["payloadSchema"]["content"],
            json!([{"type": "string", "text": "string"}])
        );
    }

    #[test]
    fn unwritable_directory_hands_the_result_back() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "x").unwrap();
        let settings = SpillSettings {
            dir: blocker,
            path_prefix: None,
            threshold: 10,
        };
        let big = text_result(&"z".repeat(100));
        let failure = spill(big.clone(), &settings, None).unwrap_err();
        assert_eq!(failure.result, big);
        assert!(
            matches!(failure.error, SpillError::CreateDir { .. }),
            "{}",
            failure.error
        );
    }
}
