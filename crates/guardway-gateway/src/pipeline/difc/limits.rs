//! Per-session `tool-call-limits` (difc.md §3.4, gateway.md §6.2 step 3):
//! the limits read from a server's `allow-only` policy and the per
//! (session, server, tool) call counters checked before `label_resource`.
//!
//! The limits apply to every server. For a wasm guard, the reference
//! leaves `tool-call-limits` in the `label_agent` payload, where the
//! transport-shape validation rejects it, so such a policy can never be
//! used (difc.md §8, quirk 4); guardway reproduces that by default. With
//! `--enforce-tool-call-limits` (a deliberate, flagged deviation) the limits
//! are taken out of the payload (the guard never sees them) and enforced in
//! the gateway.

use std::collections::{BTreeMap, HashMap};

use parking_lot::Mutex;
use serde_json::{Map, Value};

/// The policy key holding the limits, inside `allow-only`.
const LIMITS_KEY: &str = "tool-call-limits";

/// Tool name → most calls per session; `0` and absent tools are unlimited.
/// Cheap to clone for small maps; immutable once built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolCallLimits(BTreeMap<String, u64>);

impl ToolCallLimits {
    /// The limit of `tool`, when it has one (a `0` limit is none).
    pub fn limit_of(&self, tool: &str) -> Option<u64> {
        self.0.get(tool).copied().filter(|max| *max > 0)
    }

    /// Whether no tool is limited.
    pub fn is_empty(&self) -> bool {
        self.0.values().all(|max| *max == 0)
    }

    fn parse(value: &Value) -> Result<Self, String> {
        let map = value.as_object().ok_or(
            "invalid tool-call-limits value: expected object of tool name to integer".to_owned(),
        )?;
        let mut limits = BTreeMap::new();
        for (tool, max) in map {
            if tool.is_empty() {
                return Err(
                    "invalid tool-call-limits value: tool name must not be empty".to_owned(),
                );
            }
            let max = max.as_u64().ok_or_else(|| {
                format!(
                    "invalid tool-call-limits value: limit for \"{tool}\" must be an integer >= 0"
                )
            })?;
            limits.insert(tool.clone(), max);
        }
        Ok(Self(limits))
    }
}

/// Splits the `tool-call-limits` (any key case) out of the `allow-only`
/// (or legacy `allowonly`) object of `policy`. A policy given as a JSON
/// string is parsed first; anything else that is not an object is returned
/// unchanged with no limits (the payload validation reports it).
///
/// # Errors
/// Limits that are not an object of tool name → integer ≥ 0, with the
/// configuration layer's texts.
pub fn split_tool_call_limits(policy: Value) -> Result<(Value, ToolCallLimits), String> {
    let mut policy = match policy {
        Value::String(text) => match guardway_difc::parse_policy_value(Value::String(text)) {
            Ok(parsed) => parsed,
            Err(error) => return Err(error.to_string()),
        },
        other => other,
    };
    let Some(object) = policy.as_object_mut() else {
        return Ok((policy, ToolCallLimits::default()));
    };
    let Some(allow_only) = object
        .iter_mut()
        .find(|(key, _)| {
            let key = key.to_ascii_lowercase();
            key == "allow-only" || key == "allowonly"
        })
        .and_then(|(_, value)| value.as_object_mut())
    else {
        return Ok((policy, ToolCallLimits::default()));
    };
    let Some(key) = limits_key(allow_only) else {
        return Ok((policy, ToolCallLimits::default()));
    };
    let limits = allow_only
        .shift_remove(&key)
        .map(|value| ToolCallLimits::parse(&value))
        .transpose()?
        .unwrap_or_default();
    Ok((policy, limits))
}

fn limits_key(allow_only: &Map<String, Value>) -> Option<String> {
    allow_only
        .keys()
        .find(|key| key.eq_ignore_ascii_case(LIMITS_KEY))
        .cloned()
}

/// Calls admitted per (session, server, tool). `Send + Sync`; one short
/// lock per limited call.
#[derive(Debug, Default)]
pub struct CallCounters {
    counts: Mutex<HashMap<(String, String, String), u64>>,
}

impl CallCounters {
    /// Admits one call of `tool` on `server` in `session` under `limits`:
    /// counts it, or refuses it with the client text once the session has
    /// made `max` calls of that tool. Unlimited tools are not counted.
    ///
    /// # Errors
    /// `tool call limit reached for "{tool}" (max: {n})`.
    pub fn admit(
        &self,
        limits: &ToolCallLimits,
        session: &str,
        server: &str,
        tool: &str,
    ) -> Result<(), String> {
        let Some(max) = limits.limit_of(tool) else {
            return Ok(());
        };
        let mut counts = self.counts.lock();
        let count = counts
            .entry((session.to_owned(), server.to_owned(), tool.to_owned()))
            .or_default();
        if *count >= max {
            return Err(format!(
                "tool call limit reached for \"{tool}\" (max: {max})"
            ));
        }
        *count += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limits_are_taken_out_of_allow_only() {
        let policy = json!({"allow-only": {"repos": "all", "min-integrity": "none",
            "Tool-Call-Limits": {"create_issue": 2, "list_issues": 0}}, "trusted-bots": ["b"]});
        let (payload, limits) = split_tool_call_limits(policy).unwrap();
        assert_eq!(
            payload,
            json!({"allow-only": {"repos": "all", "min-integrity": "none"}, "trusted-bots": ["b"]})
        );
        assert_eq!(limits.limit_of("create_issue"), Some(2));
        assert_eq!(limits.limit_of("list_issues"), None);
        assert_eq!(limits.limit_of("issue_read"), None);
        assert!(!limits.is_empty());
    }

    #[test]
    fn string_and_legacy_policies_and_policies_without_limits() {
        let text = r#" {"allowonly": {"repos": "all", "integrity": "none", "tool-call-limits": {"t": 1}}} "#;
        let (payload, limits) = split_tool_call_limits(Value::String(text.into())).unwrap();
        assert_eq!(
            payload,
            json!({"allowonly": {"repos": "all", "integrity": "none"}})
        );
        assert_eq!(limits.limit_of("t"), Some(1));
        let plain = json!({"allow-only": {"repos": "all", "min-integrity": "none"}});
        let (payload, limits) = split_tool_call_limits(plain.clone()).unwrap();
        assert_eq!((payload, limits.is_empty()), (plain, true));
        let sink = json!({"write-sink": {"accept": ["*"]}});
        assert_eq!(split_tool_call_limits(sink.clone()).unwrap().0, sink);
        assert_eq!(split_tool_call_limits(json!(3)).unwrap().0, json!(3));
    }

    #[test]
    fn invalid_limits_are_refused_with_the_config_texts() {
        let with = |limits: Value| {
            split_tool_call_limits(json!({"allow-only": {"repos": "all",
                "min-integrity": "none", "tool-call-limits": limits}}))
            .unwrap_err()
        };
        assert_eq!(
            with(json!([1])),
            "invalid tool-call-limits value: expected object of tool name to integer"
        );
        assert_eq!(
            with(json!({"t": -1})),
            "invalid tool-call-limits value: limit for \"t\" must be an integer >= 0"
        );
        assert_eq!(
            with(json!({"t": 1.5})),
            "invalid tool-call-limits value: limit for \"t\" must be an integer >= 0"
        );
        assert_eq!(
            with(json!({"": 1})),
            "invalid tool-call-limits value: tool name must not be empty"
        );
    }

    #[test]
    fn counters_refuse_past_the_limit_per_session_server_and_tool() {
        let (_, limits) = split_tool_call_limits(json!({"allow-only": {"repos": "all",
            "min-integrity": "none", "tool-call-limits": {"create_issue": 2, "free": 0}}}))
        .unwrap();
        let counters = CallCounters::default();
        assert_eq!(counters.admit(&limits, "s1", "gh", "create_issue"), Ok(()));
        assert_eq!(counters.admit(&limits, "s1", "gh", "create_issue"), Ok(()));
        let refused = Err("tool call limit reached for \"create_issue\" (max: 2)".to_owned());
        assert_eq!(counters.admit(&limits, "s1", "gh", "create_issue"), refused);
        assert_eq!(counters.admit(&limits, "s1", "gh", "create_issue"), refused);
        // Other sessions, servers and tools have their own counts.
        assert_eq!(counters.admit(&limits, "s2", "gh", "create_issue"), Ok(()));
        assert_eq!(
            counters.admit(&limits, "s1", "other", "create_issue"),
            Ok(())
        );
        for _ in 0..10 {
            assert_eq!(counters.admit(&limits, "s1", "gh", "free"), Ok(()));
            assert_eq!(counters.admit(&limits, "s1", "gh", "issue_read"), Ok(()));
        }
        assert_eq!(
            counters.counts.lock().len(),
            3,
            "unlimited tools are not counted"
        );
    }
}
