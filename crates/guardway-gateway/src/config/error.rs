//! Configuration errors: every problem names where it is (a dotted field path
//! such as `mcpServers.github.container`) and, when possible, how to fix it.

use std::fmt;

/// One problem at one place in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted path of the offending field (`configuration` for the whole file).
    pub path: String,
    pub message: String,
    pub suggestion: Option<String>,
}

impl ConfigIssue {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
            suggestion: None,
        }
    }

    pub fn with_suggestion(mut self, suggestion: impl Into<String>) -> Self {
        self.suggestion = Some(suggestion.into());
        self
    }
}

impl fmt::Display for ConfigIssue {
    /// `Configuration error at <path>: <msg>` and, on the next line, `Suggestion: …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Configuration error at {}: {}", self.path, self.message)?;
        if let Some(suggestion) = &self.suggestion {
            write!(f, "\nSuggestion: {suggestion}")?;
        }
        Ok(())
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// TOML or JSON syntax error.
    #[error(
        "Configuration error at line {line}, column {column}: {message}\nSuggestion: fix the {format} syntax at that position"
    )]
    Syntax {
        format: &'static str,
        line: usize,
        column: usize,
        message: String,
    },
    /// `${NAME}` names a variable that is not set.
    #[error(
        "Configuration error at configuration: undefined environment variable referenced: {name}\nSuggestion: Set the environment variable {name} before starting the gateway"
    )]
    UndefinedVariable { name: String },
    /// Schema or rule violations; every failing location is listed.
    #[error("{}", render_issues(issues))]
    Invalid { issues: Vec<ConfigIssue> },
}

impl ConfigError {
    /// The individual problems (empty for read and syntax errors).
    pub fn issues(&self) -> &[ConfigIssue] {
        match self {
            ConfigError::Invalid { issues } => issues,
            _ => &[],
        }
    }
}

fn render_issues(issues: &[ConfigIssue]) -> String {
    issues
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Converts a byte offset into a 1-based line and column (in characters).
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let mut line = 1;
    let mut column = 1;
    for (index, ch) in text.char_indices() {
        if index >= offset {
            break;
        }
        if ch == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_renders_path_message_and_suggestion() {
        let issue = ConfigIssue::new("gateway.port", "port must be between 1 and 65535, got 0")
            .with_suggestion("use a port between 1 and 65535");
        assert_eq!(
            issue.to_string(),
            "Configuration error at gateway.port: port must be between 1 and 65535, got 0\nSuggestion: use a port between 1 and 65535"
        );
    }

    #[test]
    fn invalid_lists_every_issue() {
        let err = ConfigError::Invalid {
            issues: vec![ConfigIssue::new("a", "x"), ConfigIssue::new("b", "y")],
        };
        assert_eq!(
            err.to_string(),
            "Configuration error at a: x\nConfiguration error at b: y"
        );
    }

    #[test]
    fn line_column_counts_from_one() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("ab", 99), (1, 3));
    }
}
