//! Configuration-layer validation of guard policies (`difc.md` §5.4): the
//! laxer checks applied when a configuration is loaded (keys
//! case-insensitive, `writesink` accepted). The strict `label_agent` payload
//! validation (§5.2) happens later, in the DIFC crate.

use serde_json::{Map, Value};

const INTEGRITY_LEVELS: [&str; 4] = ["none", "unapproved", "approved", "merged"];

/// Which of the two policy kinds a valid policy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    AllowOnly,
    WriteSink,
}

/// Validates a policy (`{"allow-only": …}` or `{"write-sink": …}`) as the
/// configuration layer does.
///
/// # Errors
/// The first problem found, as a message (callers add the location).
pub fn validate_config_policy(policy: &Value) -> Result<PolicyKind, String> {
    let map = policy
        .as_object()
        .ok_or("policy must be an object with allow-only or write-sink")?;
    let mut allow_only = None;
    let mut write_sink = None;
    for (key, value) in map {
        match key.to_ascii_lowercase().as_str() {
            "allow-only" | "allowonly" => allow_only = Some(value),
            "write-sink" | "writesink" => write_sink = Some(value),
            "trusted-bots" => check_trusted_bots(value)?,
            _ => return Err(format!("policy contains unsupported field \"{key}\"")),
        }
    }
    match (allow_only, write_sink) {
        (Some(_), Some(_)) => {
            Err("policy must include either allow-only or write-sink, not both".to_owned())
        }
        (Some(value), None) => check_allow_only(value).map(|()| PolicyKind::AllowOnly),
        (None, Some(value)) => check_write_sink(value)
            .map(|()| PolicyKind::WriteSink)
            .map_err(|problem| problem.message),
        (None, None) => Err("policy must include allow-only or write-sink".to_owned()),
    }
}

fn check_allow_only(value: &Value) -> Result<(), String> {
    let map = value.as_object().ok_or("allow-only must be an object")?;
    let mut repos = None;
    let mut min_integrity = None;
    for (key, value) in map {
        let lower = key.to_ascii_lowercase();
        match lower.as_str() {
            "repos" => repos = Some(value),
            "min-integrity" => min_integrity = Some((lower.clone(), value)),
            "integrity" => {
                if min_integrity.is_none() {
                    min_integrity = Some((lower.clone(), value));
                }
            }
            "disapproval-integrity" | "endorser-min-integrity" => check_integrity(&lower, value)?,
            "blocked-users"
            | "approval-labels"
            | "trusted-users"
            | "endorsement-reactions"
            | "disapproval-reactions" => check_string_array(&lower, value)?,
            "refusal-labels" => check_refusal_labels(value)?,
            "tool-call-limits" => check_tool_call_limits(value)?,
            "promotion-label" | "demotion-label" => {
                if !value.is_string() {
                    return Err(format!("invalid {lower} value: expected string"));
                }
            }
            _ => return Err(format!("allow-only contains unsupported field \"{key}\"")),
        }
    }
    let repos = repos.ok_or("repos is required")?;
    check_repos(repos)?;
    let (key, level) = min_integrity.ok_or("min-integrity is required")?;
    check_integrity(&key, level)
}

fn check_integrity(key: &str, value: &Value) -> Result<(), String> {
    let text = value.as_str().unwrap_or("").trim().to_ascii_lowercase();
    if INTEGRITY_LEVELS.contains(&text.as_str()) {
        Ok(())
    } else {
        Err(format!(
            "{key} must be one of: none, unapproved, approved, merged"
        ))
    }
}

fn check_repos(value: &Value) -> Result<(), String> {
    const EXPECTED: &str =
        "invalid repos value: expected all, public, or non-empty array of scoped strings";
    match value {
        Value::String(s) => {
            let s = s.trim().to_ascii_lowercase();
            if s == "all" || s == "public" {
                Ok(())
            } else {
                Err(EXPECTED.to_owned())
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let mut seen = Vec::new();
            for item in items {
                let scope = item.as_str().ok_or(EXPECTED)?.trim();
                if !is_repo_scope(scope) {
                    return Err(format!("invalid repos value: invalid scope \"{scope}\""));
                }
                if seen.contains(&scope) {
                    return Err(format!("invalid repos value: duplicate scope \"{scope}\""));
                }
                seen.push(scope);
            }
            Ok(())
        }
        _ => Err(EXPECTED.to_owned()),
    }
}

/// `owner/*`, `owner/repo` or `owner/prefix*` (`difc.md` §5.3).
pub(crate) fn is_repo_scope(scope: &str) -> bool {
    let Some((owner, repo)) = scope.split_once('/') else {
        return false;
    };
    let valid_chars = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    };
    if owner.is_empty() || owner.len() > 39 || !valid_chars(owner) {
        return false;
    }
    if repo == "*" {
        return true;
    }
    let stem = repo.strip_suffix('*').unwrap_or(repo);
    !stem.is_empty() && stem.len() <= 100 && valid_chars(stem)
}

fn check_string_array(key: &str, value: &Value) -> Result<(), String> {
    let items = value
        .as_array()
        .ok_or_else(|| format!("invalid {key} value: expected array of strings"))?;
    for item in items {
        match item.as_str() {
            Some(s) if !s.trim().is_empty() => {}
            Some(_) => {
                return Err(format!(
                    "invalid {key} value: each entry must be a non-empty string"
                ));
            }
            None => return Err(format!("invalid {key} value: expected array of strings")),
        }
    }
    Ok(())
}

fn check_trusted_bots(value: &Value) -> Result<(), String> {
    let items = value
        .as_array()
        .ok_or("invalid trusted-bots value: expected non-empty array of strings")?;
    if items.is_empty() {
        return Err(
            "invalid trusted-bots value: must be a non-empty array when present".to_owned(),
        );
    }
    check_string_array("trusted-bots", value)
}

fn check_refusal_labels(value: &Value) -> Result<(), String> {
    match value {
        Value::String(s) => {
            if s.split([',', '\n']).any(|part| !part.trim().is_empty()) {
                Ok(())
            } else {
                Err("invalid refusal-labels value: must include at least one non-empty label"
                    .to_owned())
            }
        }
        Value::Array(_) => check_string_array("refusal-labels", value).map_err(|_| {
            "invalid refusal-labels value: each entry must be a non-empty string".to_owned()
        }),
        _ => Err(
            "invalid refusal-labels value: expected array of strings or comma/newline-delimited string"
                .to_owned(),
        ),
    }
}

fn check_tool_call_limits(value: &Value) -> Result<(), String> {
    let map = value
        .as_object()
        .ok_or("invalid tool-call-limits value: expected object of tool name to integer")?;
    for (tool, limit) in map {
        if tool.trim().is_empty() {
            return Err("invalid tool-call-limits value: tool name must not be empty".to_owned());
        }
        if limit.as_u64().is_none() {
            return Err(format!(
                "invalid tool-call-limits value: limit for \"{tool}\" must be an integer >= 0"
            ));
        }
    }
    Ok(())
}

/// What is wrong with a `write-sink` policy: the field concerned (its key
/// as written), if one, and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteSinkProblem {
    pub field: Option<String>,
    pub message: String,
}

impl From<&str> for WriteSinkProblem {
    fn from(message: &str) -> Self {
        message.to_owned().into()
    }
}

impl From<String> for WriteSinkProblem {
    fn from(message: String) -> Self {
        WriteSinkProblem {
            field: None,
            message,
        }
    }
}

/// The problem of the `write-sink` part of `policy`, if it has one that is
/// invalid, with its location inside the policy (`write-sink.sink-visibility`,
/// keys as written). An invalid write-sink policy stops start-up.
pub fn write_sink_problem(policy: &Value) -> Option<(String, String)> {
    let (key, value) = policy.as_object()?.iter().find(|(key, _)| {
        matches!(
            key.to_ascii_lowercase().as_str(),
            "write-sink" | "writesink"
        )
    })?;
    let problem = check_write_sink(value).err()?;
    let location = match problem.field {
        Some(field) => format!("{key}.{field}"),
        None => key.clone(),
    };
    Some((location, problem.message))
}

fn check_write_sink(value: &Value) -> Result<(), WriteSinkProblem> {
    let map: &Map<String, Value> = value.as_object().ok_or("write-sink must be an object")?;
    let mut accept = None;
    for (key, value) in map {
        match key.to_ascii_lowercase().as_str() {
            "accept" => accept = Some((key, value)),
            "sink-visibility" => {
                // As the reference: an empty value means "not set".
                let valid = match value {
                    Value::Null => true,
                    Value::String(text) => {
                        text.is_empty()
                            || matches!(
                                text.trim().to_ascii_lowercase().as_str(),
                                "public" | "private" | "internal"
                            )
                    }
                    _ => false,
                };
                if !valid {
                    return Err(WriteSinkProblem {
                        field: Some(key.clone()),
                        message: format!(
                            "write-sink.sink-visibility must be one of: public, private, internal; got {value}"
                        ),
                    });
                }
            }
            _ => return Err(format!("write-sink contains unsupported field \"{key}\"").into()),
        }
    }
    let accept_problem = |message: String| WriteSinkProblem {
        field: Some(accept.map_or_else(|| "accept".to_owned(), |(key, _)| key.clone())),
        message,
    };
    let accept = accept.map(|(_, value)| value);
    const NOT_A_LIST: &str = "write-sink accept must be a non-empty array of strings";
    let entries = accept
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| accept_problem(NOT_A_LIST.to_owned()))?;
    let mut seen: Vec<&str> = Vec::new();
    for entry in entries {
        let entry = entry
            .as_str()
            .ok_or_else(|| accept_problem(NOT_A_LIST.to_owned()))?
            .trim();
        if entry == "*" {
            if entries.len() != 1 {
                return Err(accept_problem(
                    "write-sink accept: \"*\" must be the only entry".to_owned(),
                ));
            }
        } else if !is_sink_entry(entry) {
            return Err(accept_problem(format!(
                "write-sink accept entry \"{entry}\" is invalid (expected [private:|public:|internal:]owner or owner/repo scope)"
            )));
        }
        if seen.contains(&entry) {
            return Err(accept_problem(format!(
                "write-sink accept contains duplicate entry \"{entry}\""
            )));
        }
        seen.push(entry);
    }
    Ok(())
}

fn is_sink_entry(entry: &str) -> bool {
    let body = ["private:", "public:", "internal:"]
        .iter()
        .find_map(|prefix| entry.strip_prefix(prefix))
        .unwrap_or(entry);
    if body.contains('/') {
        is_repo_scope(body)
    } else {
        !body.is_empty()
            && body.len() <= 39
            && body
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(policy: Value) -> String {
        validate_config_policy(&policy).unwrap_err()
    }

    #[test]
    fn accepts_allow_only_with_any_key_case_and_legacy_names() {
        let p = json!({"Allow-Only": {"REPOS": ["acme/*", "acme/web", "acme/we*"], "Min-Integrity": "Approved"}});
        assert_eq!(validate_config_policy(&p), Ok(PolicyKind::AllowOnly));
        let p = json!({"allowonly": {"repos": "public", "integrity": "none"}});
        assert_eq!(validate_config_policy(&p), Ok(PolicyKind::AllowOnly));
    }

    #[test]
    fn accepts_write_sink_and_writesink() {
        let p =
            json!({"write-sink": {"accept": ["private:acme/web"], "sink-visibility": "Private"}});
        assert_eq!(validate_config_policy(&p), Ok(PolicyKind::WriteSink));
        let p = json!({"writesink": {"accept": ["*"]}});
        assert_eq!(validate_config_policy(&p), Ok(PolicyKind::WriteSink));
    }

    #[test]
    fn accepts_config_only_fields() {
        let p = json!({"allow-only": {"repos": "all", "min-integrity": "none",
            "tool-call-limits": {"create_issue": 2}, "promotion-label": "p", "demotion-label": "d",
            "refusal-labels": "a, b", "blocked-users": []}});
        assert_eq!(validate_config_policy(&p), Ok(PolicyKind::AllowOnly));
    }

    #[test]
    fn both_or_neither_kind() {
        assert_eq!(
            err(json!({"allow-only": {}, "write-sink": {}})),
            "policy must include either allow-only or write-sink, not both"
        );
        assert_eq!(
            err(json!({})),
            "policy must include allow-only or write-sink"
        );
        assert_eq!(
            err(json!({"nope": 1})),
            "policy contains unsupported field \"nope\""
        );
        assert_eq!(
            err(json!("x")),
            "policy must be an object with allow-only or write-sink"
        );
    }

    #[test]
    fn allow_only_messages() {
        assert_eq!(
            err(json!({"allow-only": {"repos": "all"}})),
            "min-integrity is required"
        );
        assert_eq!(
            err(json!({"allow-only": {"min-integrity": "none"}})),
            "repos is required"
        );
        assert_eq!(
            err(json!({"allow-only": {"repos": "all", "min-integrity": "none", "x": 1}})),
            "allow-only contains unsupported field \"x\""
        );
        assert_eq!(
            err(json!({"allow-only": {"repos": [], "min-integrity": "none"}})),
            "invalid repos value: expected all, public, or non-empty array of scoped strings"
        );
        assert_eq!(
            err(json!({"allow-only": {"repos": ["Owner/repo"], "min-integrity": "none"}})),
            "invalid repos value: invalid scope \"Owner/repo\""
        );
        assert_eq!(
            err(json!({"allow-only": {"repos": ["a/b", " a/b"], "min-integrity": "none"}})),
            "invalid repos value: duplicate scope \"a/b\""
        );
        assert_eq!(
            err(json!({"allow-only": {"repos": "all", "min-integrity": "high"}})),
            "min-integrity must be one of: none, unapproved, approved, merged"
        );
        assert_eq!(
            err(
                json!({"allow-only": {"repos": "all", "min-integrity": "none", "blocked-users": [" "]}})
            ),
            "invalid blocked-users value: each entry must be a non-empty string"
        );
        assert_eq!(
            err(
                json!({"allow-only": {"repos": "all", "min-integrity": "none", "refusal-labels": " , "}})
            ),
            "invalid refusal-labels value: must include at least one non-empty label"
        );
        assert_eq!(
            err(
                json!({"allow-only": {"repos": "all", "min-integrity": "none", "tool-call-limits": {"t": -1}}})
            ),
            "invalid tool-call-limits value: limit for \"t\" must be an integer >= 0"
        );
        assert_eq!(
            err(
                json!({"trusted-bots": [], "allow-only": {"repos": "all", "min-integrity": "none"}})
            ),
            "invalid trusted-bots value: must be a non-empty array when present"
        );
    }

    #[test]
    fn repo_scopes() {
        for ok in ["o/*", "o/r", "o/pre*", "my-org/my_repo"] {
            assert!(is_repo_scope(ok), "{ok}");
        }
        for bad in [
            "Owner/repo",
            "owner/repo.name",
            "owner/",
            "owner/repo/x",
            "owner/**",
            "owner/re*po",
            "owner/*p",
            "/r",
            "o",
        ] {
            assert!(!is_repo_scope(bad), "{bad}");
        }
    }

    #[test]
    fn write_sink_messages() {
        assert_eq!(
            err(json!({"write-sink": {"accept": []}})),
            "write-sink accept must be a non-empty array of strings"
        );
        assert_eq!(
            err(json!({"write-sink": {"accept": ["*", "private:a"]}})),
            "write-sink accept: \"*\" must be the only entry"
        );
        assert_eq!(
            err(json!({"write-sink": {"accept": ["private:a", "private:a"]}})),
            "write-sink accept contains duplicate entry \"private:a\""
        );
        assert_eq!(
            err(json!({"write-sink": {"accept": ["secret:a"]}})),
            "write-sink accept entry \"secret:a\" is invalid (expected [private:|public:|internal:]owner or owner/repo scope)"
        );
        assert_eq!(
            err(json!({"write-sink": {"accept": ["a"], "sink-visibility": "world"}})),
            "write-sink.sink-visibility must be one of: public, private, internal; got \"world\""
        );
        assert_eq!(
            err(json!({"write-sink": {"accept": ["a"], "x": 1}})),
            "write-sink contains unsupported field \"x\""
        );
    }

    #[test]
    fn write_sink_problems_name_their_field() {
        let problem = |policy: Value| write_sink_problem(&policy);
        for value in [
            json!("foo"),
            json!("restricted"),
            json!(123),
            json!("123"),
            json!(["public"]),
        ] {
            assert_eq!(
                problem(json!({"write-sink": {"accept": ["*"], "sink-visibility": value}})),
                Some((
                    "write-sink.sink-visibility".to_owned(),
                    format!(
                        "write-sink.sink-visibility must be one of: public, private, internal; got {value}"
                    )
                ))
            );
        }
        // Empty means "not set", as in the reference; case and spaces are ignored.
        for value in [json!(""), json!(null), json!(" Public ")] {
            assert_eq!(
                problem(json!({"write-sink": {"accept": ["*"], "sink-visibility": value}})),
                None
            );
        }
        assert_eq!(
            problem(json!({"writesink": {"Accept": []}})),
            Some((
                "writesink.Accept".to_owned(),
                "write-sink accept must be a non-empty array of strings".to_owned()
            ))
        );
        assert_eq!(
            problem(json!({"write-sink": "all"})),
            Some((
                "write-sink".to_owned(),
                "write-sink must be an object".to_owned()
            ))
        );
        assert_eq!(problem(json!({"allow-only": {"repos": "all"}})), None);
    }
}
