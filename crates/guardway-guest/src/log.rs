//! Logging through the host's `env.host_log` import.
//!
//! Guards log on every call; the host drops lines below its level cheaply,
//! but formatting happens in the guard, so prefer short messages and
//! [`preview`] for inputs.

/// Level of a `host_log` line (the import's first argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

/// Sends one line to the host at `level`. Empty messages are not sent.
pub fn log(level: LogLevel, message: &str) {
    if !message.is_empty() {
        crate::host::log_raw(level, message);
    }
}

/// Logs at debug level.
pub fn debug(message: &str) {
    log(LogLevel::Debug, message);
}

/// Logs at info level.
pub fn info(message: &str) {
    log(LogLevel::Info, message);
}

/// Logs at warn level.
pub fn warn(message: &str) {
    log(LogLevel::Warn, message);
}

/// Logs at error level.
pub fn error(message: &str) {
    log(LogLevel::Error, message);
}

/// The first `max_bytes` bytes of `text`, cut at a character boundary.
pub fn preview(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The first `max_bytes` bytes of `value`'s compact JSON text, cut at a
/// character boundary: the same text as `preview(&value.to_string(),
/// max_bytes)`, but serialisation stops soon after `max_bytes`, so a
/// preview of a large input costs little.
pub fn json_preview(value: &serde_json::Value, max_bytes: usize) -> String {
    let mut writer = BoundedWriter {
        bytes: Vec::with_capacity(max_bytes.saturating_add(8).min(4096)),
        // Four bytes past the cut: whatever UTF-8 sequence is left unfinished
        // at the end of what was written starts after `max_bytes`.
        limit: max_bytes.saturating_add(4),
    };
    // The writer stops serialisation with an error once it holds enough.
    let _ = serde_json::to_writer(&mut writer, value);
    let text = String::from_utf8_lossy(&writer.bytes);
    preview(&text, max_bytes).to_owned()
}

/// Collects written bytes and fails once it holds `limit` of them.
struct BoundedWriter {
    bytes: Vec<u8>,
    limit: usize,
}

impl std::io::Write for BoundedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = self.limit.saturating_sub(self.bytes.len());
        if room == 0 {
            return Err(std::io::Error::other("preview complete"));
        }
        let taken = buf.len().min(room);
        self.bytes.extend_from_slice(&buf[..taken]);
        Ok(taken)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_preview_equals_the_preview_of_the_whole_text() {
        let value = serde_json::json!({
            "tool_name": "list_issues",
            "tool_result": {"content": [{"type": "text",
                "text": "[{\"title\": \"é😀\\\"quoted\\\"\"}]".repeat(40)}]},
            "tool_args": {"owner": "octo-org", "note": "ééé😀😀😀"},
        });
        let whole = value.to_string();
        for max in [
            0,
            1,
            2,
            3,
            10,
            37,
            100,
            255,
            256,
            257,
            1000,
            whole.len(),
            whole.len() + 9,
        ] {
            assert_eq!(json_preview(&value, max), preview(&whole, max), "max {max}");
        }
        let multibyte = serde_json::json!(["😀é".repeat(100)]);
        let whole = multibyte.to_string();
        for max in 0..40 {
            assert_eq!(
                json_preview(&multibyte, max),
                preview(&whole, max),
                "max {max}"
            );
        }
    }

    #[test]
    fn preview_cuts_at_char_boundary() {
        assert_eq!(preview("hello", 10), "hello");
        assert_eq!(preview("hello", 3), "hel");
        // 'é' is two bytes: cutting inside it backs off to the boundary.
        assert_eq!(preview("aé", 2), "a");
        assert_eq!(preview("", 0), "");
    }

    #[test]
    fn log_lines_reach_the_capture_with_their_level() {
        let lines = crate::testing::capture_logs(|| {
            debug("d");
            info("i");
            warn("w");
            error("e");
            info("");
        });
        assert_eq!(
            lines,
            vec![
                (LogLevel::Debug, "d".to_owned()),
                (LogLevel::Info, "i".to_owned()),
                (LogLevel::Warn, "w".to_owned()),
                (LogLevel::Error, "e".to_owned()),
            ]
        );
    }
}
