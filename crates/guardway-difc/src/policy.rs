//! Validation of the guard policy sent to `label_agent`: the string-policy parse step and the
//! transport-shape and value rules, first failure wins (spec difc.md §5.2, §5.3).

use serde_json::{Map, Value};

const TRANSPORT_SHAPE: &str = r#"invalid guard policy transport shape: expected {"allow-only":{"repos":...,"min-integrity":...}}"#;

/// Why a policy cannot be sent to `label_agent`. `Display` is the wire text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy is required")]
    Required,
    #[error("policy string is empty")]
    EmptyString,
    #[error("policy string is not valid JSON object: {cause}")]
    InvalidJsonString { cause: String },
    #[error("policy JSON must decode to an object")]
    NotAnObjectString,
    #[error("{TRANSPORT_SHAPE}")]
    TransportShape,
    #[error(
        "gateway policy adapter is outdated: remove legacy envelope key policy before calling label_agent"
    )]
    LegacyEnvelope,
    #[error("failed to decode label_agent policy payload: {cause}")]
    Decode { cause: String },
    #[error("label_agent policy must use top-level allow-only object (received policy.allow-only)")]
    MissingAllowOnly,
    #[error("invalid guard policy transport shape: unexpected key {key:?}")]
    UnexpectedKey { key: String },
    #[error(
        "invalid guard policy transport shape: missing required fields repos and/or min-integrity in allow-only object"
    )]
    MissingRequiredFields,
    #[error("invalid guard policy transport shape: unexpected allow-only key {key:?}")]
    UnexpectedAllowOnlyKey { key: String },
    #[error("invalid repos value: expected all, public, or non-empty array of scoped strings")]
    InvalidRepos,
    #[error("{key} must be one of: none, unapproved, approved, merged")]
    InvalidIntegrity { key: String },
    #[error("invalid {key} value: expected array of strings")]
    ExpectedStringArray { key: String },
    #[error("invalid {key} value: each entry must be a non-empty string")]
    BlankEntry { key: String },
    #[error("invalid {key} value: expected array of strings or comma/newline-delimited string")]
    ExpectedLabelList { key: String },
    #[error("invalid {key} value: must include at least one non-empty label")]
    NoLabels { key: String },
    #[error("invalid {key} value: expected non-empty array of strings")]
    ExpectedNonEmptyStringArray { key: String },
    #[error("invalid {key} value: must be a non-empty array when present")]
    EmptyArray { key: String },
}

/// How each known allow-only key is checked, in validation order.
#[derive(Clone, Copy)]
enum Rule {
    Repos,
    Integrity,
    StringArray,
    LabelList,
    /// The top-level `trusted-bots`, checked at its place in the table.
    TrustedBots,
}

/// The policy keys in validation order (the spec's table order); all but
/// `trusted-bots` live in the allow-only object.
const ALLOW_ONLY_RULES: [(&str, Rule); 11] = [
    ("repos", Rule::Repos),
    ("min-integrity", Rule::Integrity),
    ("blocked-users", Rule::StringArray),
    ("approval-labels", Rule::StringArray),
    ("trusted-users", Rule::StringArray),
    ("endorsement-reactions", Rule::StringArray),
    ("disapproval-reactions", Rule::StringArray),
    ("refusal-labels", Rule::LabelList),
    ("trusted-bots", Rule::TrustedBots),
    ("disapproval-integrity", Rule::Integrity),
    ("endorser-min-integrity", Rule::Integrity),
];

const LEGACY_INTEGRITY_KEY: &str = "integrity";
const TOP_LEVEL_KEYS: [&str; 3] = ["allow-only", "allowonly", "trusted-bots"];
const INTEGRITY_LEVELS: [&str; 4] = ["none", "unapproved", "approved", "merged"];

/// The parse step for a policy given as a JSON value: `null` is refused,
/// a string is trimmed and parsed as a JSON object, anything else passes.
///
/// # Errors
/// `policy is required` and the string-parse errors.
pub fn parse_policy_value(policy: Value) -> Result<Value, PolicyError> {
    match policy {
        Value::Null => Err(PolicyError::Required),
        Value::String(text) => parse_policy_str(&text),
        other => Ok(other),
    }
}

/// Parses a policy string: trimmed, must be a JSON object.
///
/// # Errors
/// Empty, invalid JSON, or not an object.
pub fn parse_policy_str(text: &str) -> Result<Value, PolicyError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(PolicyError::EmptyString);
    }
    let parsed: Value =
        serde_json::from_str(trimmed).map_err(|err| PolicyError::InvalidJsonString {
            cause: err.to_string(),
        })?;
    if parsed.is_object() {
        Ok(parsed)
    } else {
        Err(PolicyError::NotAnObjectString)
    }
}

/// Validates a parsed policy for `label_agent` and returns the payload the
/// guard receives (`refusal-labels` given as a string becomes an array of
/// trimmed labels; array labels are trimmed; everything else unchanged).
///
/// # Errors
/// The first rule that fails, with the spec's message.
pub fn validate_label_agent_policy(policy: Value) -> Result<Value, PolicyError> {
    let mut payload = match policy {
        Value::Null => return Err(PolicyError::TransportShape),
        Value::Object(object) if object.contains_key("policy") => {
            return Err(PolicyError::LegacyEnvelope);
        }
        Value::Object(object) => object,
        other => {
            return Err(PolicyError::Decode {
                cause: format!("expected a JSON object, got {}", type_name(&other)),
            });
        }
    };
    let allow_only_key = if payload.contains_key("allow-only") {
        "allow-only"
    } else if payload.contains_key("allowonly") {
        "allowonly"
    } else {
        return Err(PolicyError::MissingAllowOnly);
    };
    if let Some(key) = first_unknown_key(&payload, |key| TOP_LEVEL_KEYS.contains(&key)) {
        return Err(PolicyError::UnexpectedKey { key });
    }
    let trusted_bots = payload.get("trusted-bots").cloned();
    let Some(Value::Object(allow_only)) = payload.get_mut(allow_only_key) else {
        return Err(PolicyError::TransportShape);
    };
    validate_allow_only(allow_only, trusted_bots.as_ref())?;
    Ok(Value::Object(payload))
}

/// [`parse_policy_value`] then [`validate_label_agent_policy`].
///
/// # Errors
/// As both steps.
pub fn prepare_label_agent_policy(policy: Value) -> Result<Value, PolicyError> {
    validate_label_agent_policy(parse_policy_value(policy)?)
}

fn validate_allow_only(
    allow_only: &mut Map<String, Value>,
    trusted_bots: Option<&Value>,
) -> Result<(), PolicyError> {
    let integrity_key = if allow_only.contains_key("min-integrity") {
        "min-integrity"
    } else {
        LEGACY_INTEGRITY_KEY
    };
    if !allow_only.contains_key("repos") || !allow_only.contains_key(integrity_key) {
        return Err(PolicyError::MissingRequiredFields);
    }
    let known = |key: &str| {
        key == LEGACY_INTEGRITY_KEY
            || ALLOW_ONLY_RULES
                .iter()
                .any(|(name, rule)| *name == key && !matches!(rule, Rule::TrustedBots))
    };
    if let Some(key) = first_unknown_key(allow_only, known) {
        return Err(PolicyError::UnexpectedAllowOnlyKey { key });
    }
    for (name, rule) in ALLOW_ONLY_RULES {
        let key = if name == "min-integrity" {
            integrity_key
        } else {
            name
        };
        if let Rule::TrustedBots = rule {
            if let Some(bots) = trusted_bots {
                validate_trusted_bots(bots)?;
            }
            continue;
        }
        let Some(value) = allow_only.get(key) else {
            continue;
        };
        match rule {
            Rule::Repos => validate_repos(value)?,
            Rule::Integrity => validate_integrity(key, value)?,
            Rule::StringArray => validate_string_array(key, value)?,
            Rule::LabelList => {
                let labels = normalize_label_list(key, value)?;
                allow_only.insert(key.to_owned(), labels);
            }
            Rule::TrustedBots => {}
        }
    }
    Ok(())
}

fn first_unknown_key(object: &Map<String, Value>, known: impl Fn(&str) -> bool) -> Option<String> {
    object.keys().filter(|key| !known(key)).min().cloned()
}

fn validate_repos(value: &Value) -> Result<(), PolicyError> {
    let valid = match value {
        Value::String(text) => {
            let normalized = text.trim().to_lowercase();
            normalized == "all" || normalized == "public"
        }
        Value::Array(entries) if !entries.is_empty() => {
            let mut seen = std::collections::HashSet::with_capacity(entries.len());
            entries.iter().all(|entry| {
                entry
                    .as_str()
                    .map(str::trim)
                    .is_some_and(|scope| is_valid_repo_scope(scope) && seen.insert(scope))
            })
        }
        _ => false,
    };
    if valid {
        Ok(())
    } else {
        Err(PolicyError::InvalidRepos)
    }
}

/// `owner/*`, `owner/repo` or `owner/prefix*`: owner 1–39 and repo or
/// prefix 1–100 characters of `[a-z0-9_-]`.
pub fn is_valid_repo_scope(scope: &str) -> bool {
    let Some((owner, repo)) = scope.split_once('/') else {
        return false;
    };
    if !is_scope_name(owner, 39) {
        return false;
    }
    if repo == "*" {
        return true;
    }
    let name = repo.strip_suffix('*').unwrap_or(repo);
    is_scope_name(name, 100)
}

fn is_scope_name(name: &str, max_len: usize) -> bool {
    (1..=max_len).contains(&name.len())
        && name.bytes().all(|byte| {
            byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_' || byte == b'-'
        })
}

fn validate_integrity(key: &str, value: &Value) -> Result<(), PolicyError> {
    let level = value.as_str().unwrap_or("").trim().to_lowercase();
    if INTEGRITY_LEVELS.contains(&level.as_str()) {
        Ok(())
    } else {
        Err(PolicyError::InvalidIntegrity {
            key: key.to_owned(),
        })
    }
}

fn validate_string_array(key: &str, value: &Value) -> Result<(), PolicyError> {
    let Value::Array(entries) = value else {
        return Err(PolicyError::ExpectedStringArray {
            key: key.to_owned(),
        });
    };
    check_entries(key, entries)
}

fn check_entries(key: &str, entries: &[Value]) -> Result<(), PolicyError> {
    let blank = |entry: &Value| entry.as_str().is_none_or(|text| text.trim().is_empty());
    if entries.iter().any(blank) {
        return Err(PolicyError::BlankEntry {
            key: key.to_owned(),
        });
    }
    Ok(())
}

fn normalize_label_list(key: &str, value: &Value) -> Result<Value, PolicyError> {
    let labels: Vec<Value> = match value {
        Value::Array(entries) => {
            check_entries(key, entries)?;
            entries
                .iter()
                .filter_map(Value::as_str)
                .map(|label| Value::String(label.trim().to_owned()))
                .collect()
        }
        Value::String(text) => {
            let labels: Vec<Value> = text
                .split([',', '\n'])
                .map(str::trim)
                .filter(|label| !label.is_empty())
                .map(|label| Value::String(label.to_owned()))
                .collect();
            if labels.is_empty() {
                return Err(PolicyError::NoLabels {
                    key: key.to_owned(),
                });
            }
            labels
        }
        _ => {
            return Err(PolicyError::ExpectedLabelList {
                key: key.to_owned(),
            });
        }
    };
    Ok(Value::Array(labels))
}

fn validate_trusted_bots(value: &Value) -> Result<(), PolicyError> {
    let key = "trusted-bots";
    let Value::Array(entries) = value else {
        return Err(PolicyError::ExpectedNonEmptyStringArray {
            key: key.to_owned(),
        });
    };
    if entries.is_empty() {
        return Err(PolicyError::EmptyArray {
            key: key.to_owned(),
        });
    }
    check_entries(key, entries)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
