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

#[cfg(test)]
mod tests {
    use super::*;

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
