//! The operation kind of a tool call and the DIFC enforcement mode (spec difc.md §3.1, §3.3).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a tool call does to its resource, as labelled by `label_resource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    Read,
    Write,
    ReadWrite,
}

impl Operation {
    /// Exactly `read`, `write` or `read-write`; anything else is the most
    /// restrictive, `Write`.
    pub fn parse(text: &str) -> Self {
        match text {
            "read" => Operation::Read,
            "read-write" => Operation::ReadWrite,
            _ => Operation::Write,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::ReadWrite => "read-write",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How denials are enforced: refuse (`Strict`), drop items (`Filter`) or
/// let reads through and taint the agent (`Propagate`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnforcementMode {
    #[default]
    Strict,
    Filter,
    Propagate,
}

impl EnforcementMode {
    pub fn as_str(self) -> &'static str {
        match self {
            EnforcementMode::Strict => "strict",
            EnforcementMode::Filter => "filter",
            EnforcementMode::Propagate => "propagate",
        }
    }
}

impl fmt::Display for EnforcementMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mode string that is not `strict`, `filter`, `propagate` or empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown enforcement mode: {mode} (valid modes: strict, filter, propagate)")]
pub struct UnknownEnforcementMode {
    /// The text as given.
    pub mode: String,
}

impl FromStr for EnforcementMode {
    type Err = UnknownEnforcementMode;

    /// Case-insensitive; the empty string is `Strict`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "" | "strict" => Ok(EnforcementMode::Strict),
            "filter" => Ok(EnforcementMode::Filter),
            "propagate" => Ok(EnforcementMode::Propagate),
            _ => Err(UnknownEnforcementMode {
                mode: text.to_owned(),
            }),
        }
    }
}

/// The effective mode of a (session, server): the guard's `difc_mode`
/// (case-insensitive), or `gateway_default` when it is empty (built-in guards).
///
/// # Errors
/// A non-empty text that is not a mode.
pub fn effective_mode(
    difc_mode: &str,
    gateway_default: EnforcementMode,
) -> Result<EnforcementMode, UnknownEnforcementMode> {
    if difc_mode.is_empty() {
        Ok(gateway_default)
    } else {
        difc_mode.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_parse_is_exact() {
        assert_eq!(Operation::parse("read"), Operation::Read);
        assert_eq!(Operation::parse("write"), Operation::Write);
        assert_eq!(Operation::parse("read-write"), Operation::ReadWrite);
        for other in ["Read", " read", "readwrite", "", "delete"] {
            assert_eq!(Operation::parse(other), Operation::Write, "{other:?}");
        }
    }

    #[test]
    fn mode_parse_is_case_insensitive_and_empty_is_strict() {
        assert_eq!("".parse(), Ok(EnforcementMode::Strict));
        assert_eq!("STRICT".parse(), Ok(EnforcementMode::Strict));
        assert_eq!("Filter".parse(), Ok(EnforcementMode::Filter));
        assert_eq!("propagate".parse(), Ok(EnforcementMode::Propagate));
        let err = "invalid-mode-xyz".parse::<EnforcementMode>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown enforcement mode: invalid-mode-xyz (valid modes: strict, filter, propagate)"
        );
    }
}
