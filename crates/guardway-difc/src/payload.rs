//! The JSON payloads exchanged with a guard: `label_resource`/`label_response` inputs and the
//! parsed outputs of `label_agent`, `label_resource` and `label_response` (spec difc.md §2.1, §3.1, §4.1).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::labels::TagSet;
use crate::mode::{EnforcementMode, Operation};

/// Input of the `label_resource` export. Unknown fields are tolerated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelResourceInput {
    pub tool_name: String,
    pub tool_args: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Value>,
}

/// Input of the `label_response` export; `tool_result` is the raw backend
/// `CallToolResult` JSON. Unknown fields are tolerated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelResponseInput {
    pub tool_name: String,
    pub tool_result: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_args: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Value>,
}

/// Why a guard's output could not be used. `Display` is the wire text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelParseError {
    #[error("label_agent returned empty response")]
    AgentEmpty,
    #[error("failed to unmarshal label_agent response: {cause}")]
    AgentUnmarshal { cause: String },
    #[error("label_agent rejected policy: {error}")]
    AgentRejected { error: String },
    #[error("label_agent returned non-success status")]
    AgentNonSuccess,
    #[error("label_agent returned error: {error}")]
    AgentError { error: String },
    #[error("failed to decode label_agent response: {cause}")]
    AgentDecode { cause: String },
    #[error("label_agent response missing difc_mode")]
    AgentMissingMode,
    #[error("invalid difc_mode from label_agent: {source}")]
    AgentInvalidMode {
        #[from]
        source: crate::mode::UnknownEnforcementMode,
    },
    #[error("failed to unmarshal label_resource WASM response: {cause}")]
    ResourceUnmarshal { cause: String },
    #[error("invalid resource format in guard response")]
    ResourceFormat,
    #[error("failed to unmarshal label_response WASM response: {cause}")]
    ResponseUnmarshal { cause: String },
    #[error("failed to parse path labels: {cause}")]
    PathLabelsDecode { cause: String },
    #[error("label_response item {index} has no labels object")]
    ItemWithoutLabels { index: usize },
}

/// Parsed `label_agent` output: the tags to add to the agent (trimmed,
/// blanks dropped), the session's mode and the guard's normalised policy.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentLabels {
    pub secrecy: TagSet,
    pub integrity: TagSet,
    pub difc_mode: EnforcementMode,
    /// The `normalized_policy` object, when the guard returned one.
    pub normalized_policy: Option<Value>,
}

impl AgentLabels {
    /// Parses and checks `label_agent` output; the first failing check wins
    /// (empty, not an object, `success`/`ok` false, `error`, field types,
    /// missing mode, invalid mode). Unknown fields are ignored.
    ///
    /// # Errors
    /// A [`LabelParseError`] whose text is the spec's message for the check.
    pub fn parse(output: &[u8]) -> Result<Self, LabelParseError> {
        if output.is_empty() {
            return Err(LabelParseError::AgentEmpty);
        }
        let value: Value =
            serde_json::from_slice(output).map_err(|err| LabelParseError::AgentUnmarshal {
                cause: err.to_string(),
            })?;
        // `null` decodes to an empty object, as in the reference gateway.
        let empty = Map::new();
        let object = match &value {
            Value::Object(object) => object,
            Value::Null => &empty,
            other => {
                return Err(LabelParseError::AgentUnmarshal {
                    cause: not_an_object(other),
                });
            }
        };
        check_bool_failure(object, "success")?;
        check_bool_failure(object, "ok")?;
        if let Some(error) = non_blank_string(object.get("error")) {
            return Err(LabelParseError::AgentError {
                error: error.to_owned(),
            });
        }

        let decode = |cause: String| LabelParseError::AgentDecode { cause };
        let (secrecy, integrity) = match object.get("agent") {
            None | Some(Value::Null) => (Vec::new(), Vec::new()),
            Some(Value::Object(agent)) => (
                strict_string_list(agent.get("secrecy"), &|| "agent.secrecy".into())
                    .map_err(decode)?,
                strict_string_list(agent.get("integrity"), &|| "agent.integrity".into())
                    .map_err(decode)?,
            ),
            Some(other) => return Err(decode(type_mismatch("agent", "an object", other))),
        };
        let mode = match object.get("difc_mode") {
            None | Some(Value::Null) => "",
            Some(Value::String(mode)) => mode.as_str(),
            Some(other) => return Err(decode(type_mismatch("difc_mode", "a string", other))),
        };
        let normalized_policy = match object.get("normalized_policy") {
            None | Some(Value::Null) => None,
            Some(policy @ Value::Object(_)) => Some(policy.clone()),
            Some(other) => {
                return Err(decode(type_mismatch(
                    "normalized_policy",
                    "an object",
                    other,
                )));
            }
        };
        if mode.trim().is_empty() {
            return Err(LabelParseError::AgentMissingMode);
        }
        let difc_mode = mode.parse::<EnforcementMode>()?;
        Ok(AgentLabels {
            secrecy: TagSet::from_trimmed(secrecy),
            integrity: TagSet::from_trimmed(integrity),
            difc_mode,
            normalized_policy,
        })
    }
}

/// Parsed `label_resource` output.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceLabels {
    pub description: String,
    pub secrecy: TagSet,
    pub integrity: TagSet,
    pub operation: Operation,
}

impl ResourceLabels {
    /// Parses `label_resource` output leniently: a non-string description is
    /// `""`, a non-array label is empty, non-string tags are skipped and an
    /// unknown or missing operation is `write`.
    ///
    /// # Errors
    /// Output that is not JSON, or whose `resource` is not an object.
    pub fn parse(output: &[u8]) -> Result<Self, LabelParseError> {
        let value: Value =
            serde_json::from_slice(output).map_err(|err| LabelParseError::ResourceUnmarshal {
                cause: err.to_string(),
            })?;
        let object = match &value {
            Value::Object(object) => object,
            Value::Null => return Err(LabelParseError::ResourceFormat),
            other => {
                return Err(LabelParseError::ResourceUnmarshal {
                    cause: not_an_object(other),
                });
            }
        };
        let Some(Value::Object(resource)) = object.get("resource") else {
            return Err(LabelParseError::ResourceFormat);
        };
        let labels = ItemLabels::from_lenient(resource);
        let operation = match object.get("operation") {
            Some(Value::String(operation)) => Operation::parse(operation),
            _ => Operation::Write,
        };
        Ok(ResourceLabels {
            description: labels.description,
            secrecy: labels.secrecy,
            integrity: labels.integrity,
            operation,
        })
    }
}

/// Labels of one item of a response (or of a path-labelled element).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemLabels {
    pub description: String,
    pub secrecy: TagSet,
    pub integrity: TagSet,
}

impl ItemLabels {
    /// Empty labels described `unlabeled` (an item with neither own nor default labels).
    pub fn unlabeled() -> Self {
        ItemLabels {
            description: "unlabeled".to_owned(),
            ..ItemLabels::default()
        }
    }

    /// Lenient reading as for `label_resource` (§3.1).
    fn from_lenient(object: &Map<String, Value>) -> Self {
        let description = match object.get("description") {
            Some(Value::String(description)) => description.clone(),
            _ => String::new(),
        };
        ItemLabels {
            description,
            secrecy: lenient_tags(object.get("secrecy")),
            integrity: lenient_tags(object.get("integrity")),
        }
    }
}

/// A labelled item of a response: its data and labels.
#[derive(Debug, Clone, PartialEq)]
pub struct LabeledItem {
    pub data: Value,
    pub labels: ItemLabels,
}

/// One `labeled_paths` entry: a JSON Pointer and its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabeledPath {
    pub path: String,
    pub labels: ItemLabels,
}

/// Path-based `label_response` output (§4.2); resolved against the backend
/// result with `PathLabels::resolve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathLabels {
    pub labeled_paths: Vec<LabeledPath>,
    pub default_labels: Option<ItemLabels>,
    /// JSON Pointer to the items array; empty for the root.
    pub items_path: String,
}

/// `labeled_paths` output as the guard sends it; `null` anywhere is empty.
#[derive(Deserialize)]
struct RawPathLabels {
    #[serde(default)]
    labeled_paths: Option<Vec<Option<RawLabeledPath>>>,
    #[serde(default)]
    default_labels: Option<RawItemLabels>,
    #[serde(default)]
    items_path: Option<String>,
}

#[derive(Deserialize)]
struct RawLabeledPath {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    labels: Option<RawItemLabels>,
}

#[derive(Deserialize)]
struct RawItemLabels {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    secrecy: Option<Vec<Option<String>>>,
    #[serde(default)]
    integrity: Option<Vec<Option<String>>>,
}

impl From<RawItemLabels> for ItemLabels {
    fn from(raw: RawItemLabels) -> Self {
        let tags = |tags: Option<Vec<Option<String>>>| -> TagSet {
            tags.unwrap_or_default()
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect()
        };
        ItemLabels {
            description: raw.description.unwrap_or_default(),
            secrecy: tags(raw.secrecy),
            integrity: tags(raw.integrity),
        }
    }
}

impl From<RawPathLabels> for PathLabels {
    fn from(raw: RawPathLabels) -> Self {
        PathLabels {
            labeled_paths: raw
                .labeled_paths
                .unwrap_or_default()
                .into_iter()
                .map(|entry| {
                    let entry = entry.unwrap_or(RawLabeledPath {
                        path: None,
                        labels: None,
                    });
                    LabeledPath {
                        path: entry.path.unwrap_or_default(),
                        labels: entry.labels.map(ItemLabels::from).unwrap_or_default(),
                    }
                })
                .collect(),
            default_labels: raw.default_labels.map(ItemLabels::from),
            items_path: raw.items_path.unwrap_or_default(),
        }
    }
}

/// Parsed `label_response` output.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseLabels {
    /// No fine-grained labels: the backend result is returned as is.
    None,
    /// Path-based labels, to resolve against the backend result.
    Paths(PathLabels),
    /// Legacy format: the guard returned the items with their labels.
    Items(Vec<LabeledItem>),
}

impl ResponseLabels {
    /// Parses `label_response` output: empty → `None`; a `labeled_paths`
    /// key → `Paths`; a non-empty `items` array → `Items` (non-object items
    /// skipped); anything else → `None`.
    ///
    /// # Errors
    /// Output that is not a JSON object, wrongly typed path labels, or a
    /// legacy item without a `labels` object.
    pub fn parse(output: &[u8]) -> Result<Self, LabelParseError> {
        if output.is_empty() {
            return Ok(ResponseLabels::None);
        }
        // The top level is split into raw members first so that only the
        // members in use are decoded, path labels straight into typed form.
        let members: Option<HashMap<String, Box<RawValue>>> = serde_json::from_slice(output)
            .map_err(|err| LabelParseError::ResponseUnmarshal {
                cause: err.to_string(),
            })?;
        let Some(members) = members else {
            return Ok(ResponseLabels::None);
        };
        if members.contains_key("labeled_paths") {
            return serde_json::from_slice::<RawPathLabels>(output)
                .map(|raw| ResponseLabels::Paths(raw.into()))
                .map_err(|err| LabelParseError::PathLabelsDecode {
                    cause: err.to_string(),
                });
        }
        let items: Option<Value> = match members.get("items") {
            Some(raw) => serde_json::from_str(raw.get()).ok(),
            None => None,
        };
        match items {
            Some(Value::Array(items)) if !items.is_empty() => {
                let mut labeled = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    let Value::Object(item) = item else { continue };
                    let Some(Value::Object(labels)) = item.get("labels") else {
                        return Err(LabelParseError::ItemWithoutLabels { index });
                    };
                    labeled.push(LabeledItem {
                        data: item.get("data").cloned().unwrap_or(Value::Null),
                        labels: ItemLabels::from_lenient(labels),
                    });
                }
                Ok(ResponseLabels::Items(labeled))
            }
            _ => Ok(ResponseLabels::None),
        }
    }
}

fn check_bool_failure(object: &Map<String, Value>, key: &str) -> Result<(), LabelParseError> {
    if object.get(key) != Some(&Value::Bool(false)) {
        return Ok(());
    }
    match non_blank_string(object.get("error")) {
        Some(error) => Err(LabelParseError::AgentRejected {
            error: error.to_owned(),
        }),
        None => Err(LabelParseError::AgentNonSuccess),
    }
}

fn non_blank_string(value: Option<&Value>) -> Option<&str> {
    match value {
        Some(Value::String(text)) if !text.trim().is_empty() => Some(text),
        _ => None,
    }
}

/// A list of strings where `null` (the list or an entry) means empty.
fn strict_string_list(
    value: Option<&Value>,
    field: &dyn Fn() -> String,
) -> Result<Vec<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(entries)) => entries
            .iter()
            .enumerate()
            .map(|(index, entry)| match entry {
                Value::String(text) => Ok(text.clone()),
                Value::Null => Ok(String::new()),
                other => Err(type_mismatch(
                    &format!("{}[{index}]", field()),
                    "a string",
                    other,
                )),
            })
            .collect(),
        Some(other) => Err(type_mismatch(&field(), "an array of strings", other)),
    }
}

fn lenient_tags(value: Option<&Value>) -> TagSet {
    match value {
        Some(Value::Array(entries)) => entries
            .iter()
            .filter_map(|entry| entry.as_str().map(str::to_owned))
            .collect(),
        _ => TagSet::new(),
    }
}

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_mismatch(field: &str, expected: &str, got: &Value) -> String {
    format!(
        "field {field}: expected {expected}, got {}",
        json_type_name(got)
    )
}

fn not_an_object(got: &Value) -> String {
    format!("expected a JSON object, got {}", json_type_name(got))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent_err(output: &str) -> String {
        AgentLabels::parse(output.as_bytes())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn agent_output_is_parsed_trimmed() {
        let labels = AgentLabels::parse(
            br#"{"agent":{"secrecy":[" private:acme/web ",""],"integrity":["none:acme/web","  "]},
                "difc_mode":"FILTER","normalized_policy":{"scope_kind":"Repo"},"extra":1}"#,
        )
        .unwrap();
        assert_eq!(labels.secrecy, TagSet::from_strs(["private:acme/web"]));
        assert_eq!(labels.integrity, TagSet::from_strs(["none:acme/web"]));
        assert_eq!(labels.difc_mode, EnforcementMode::Filter);
        assert_eq!(
            labels.normalized_policy,
            Some(serde_json::json!({"scope_kind":"Repo"}))
        );
    }

    #[test]
    fn agent_output_checks_in_order() {
        let cases = [
            ("", "label_agent returned empty response"),
            (
                r#"{"success":false,"error":"x"}"#,
                "label_agent rejected policy: x",
            ),
            (
                r#"{"success":false,"error":"  "}"#,
                "label_agent returned non-success status",
            ),
            (r#"{"ok":false}"#, "label_agent returned non-success status"),
            (
                r#"{"ok":false,"error":"z","difc_mode":"strict"}"#,
                "label_agent rejected policy: z",
            ),
            (r#"{"error":"y"}"#, "label_agent returned error: y"),
            (
                r#"{"success":"false","difc_mode":"strict","error":"y"}"#,
                "label_agent returned error: y",
            ),
            (r#"{}"#, "label_agent response missing difc_mode"),
            (
                r#"{"difc_mode":"  "}"#,
                "label_agent response missing difc_mode",
            ),
            (r#"null"#, "label_agent response missing difc_mode"),
            (
                r#"{"difc_mode":"invalid-mode-xyz"}"#,
                "invalid difc_mode from label_agent: unknown enforcement mode: invalid-mode-xyz (valid modes: strict, filter, propagate)",
            ),
        ];
        for (output, expected) in cases {
            assert_eq!(agent_err(output), expected, "{output}");
        }
        for output in [r#"["strict"]"#, r#"{"difc_mode":"strict""#, "   "] {
            assert!(
                agent_err(output).starts_with("failed to unmarshal label_agent response: "),
                "{output}"
            );
        }
        for output in [
            r#"{"difc_mode":42}"#,
            r#"{"difc_mode":"strict","agent":{"secrecy":"a"}}"#,
            r#"{"difc_mode":"strict","agent":{"integrity":[1]}}"#,
            r#"{"difc_mode":"strict","agent":[]}"#,
            r#"{"difc_mode":"strict","normalized_policy":"x"}"#,
            r#"{"agent":{"secrecy":7}}"#,
        ] {
            assert!(
                agent_err(output).starts_with("failed to decode label_agent response: "),
                "{output}"
            );
        }
    }

    #[test]
    fn agent_output_accepts_nulls_and_non_boolean_success() {
        let labels = AgentLabels::parse(
            br#"{"success":true,"ok":"no","agent":{"secrecy":null,"integrity":[null,"t"]},"difc_mode":"propagate","normalized_policy":null}"#,
        )
        .unwrap();
        assert!(labels.secrecy.is_empty());
        assert_eq!(labels.integrity, TagSet::from_strs(["t"]));
        assert_eq!(labels.difc_mode, EnforcementMode::Propagate);
        assert_eq!(labels.normalized_policy, None);
    }

    #[test]
    fn resource_output_is_lenient() {
        let labels = ResourceLabels::parse(
            br#"{"resource":{"description":5,"secrecy":["a",1,null,"b"],"integrity":"x"},"operation":"READ"}"#,
        )
        .unwrap();
        assert_eq!(labels.description, "");
        assert_eq!(labels.secrecy, TagSet::from_strs(["a", "b"]));
        assert!(labels.integrity.is_empty());
        assert_eq!(labels.operation, Operation::Write);
        let labels = ResourceLabels::parse(
            br#"{"resource":{"description":"issue acme/web#12","secrecy":[],"integrity":[" i "]},"operation":"read-write"}"#,
        )
        .unwrap();
        assert_eq!(labels.description, "issue acme/web#12");
        assert_eq!(labels.integrity, TagSet::from_strs([" i "]));
        assert_eq!(labels.operation, Operation::ReadWrite);
    }

    #[test]
    fn resource_output_without_resource_object_fails() {
        for output in [
            r#"{}"#,
            r#"{"resource":[]}"#,
            r#"{"resource":null}"#,
            "null",
        ] {
            assert_eq!(
                ResourceLabels::parse(output.as_bytes())
                    .unwrap_err()
                    .to_string(),
                "invalid resource format in guard response"
            );
        }
        let err = ResourceLabels::parse(b"").unwrap_err().to_string();
        assert!(
            err.starts_with("failed to unmarshal label_resource WASM response: "),
            "{err}"
        );
    }

    #[test]
    fn response_output_forms() {
        assert_eq!(ResponseLabels::parse(b"").unwrap(), ResponseLabels::None);
        assert_eq!(ResponseLabels::parse(b"{}").unwrap(), ResponseLabels::None);
        assert_eq!(
            ResponseLabels::parse(br#"{"items":[]}"#).unwrap(),
            ResponseLabels::None
        );
        assert_eq!(
            ResponseLabels::parse(br#"{"labeled_paths":null}"#).unwrap(),
            ResponseLabels::Paths(PathLabels {
                labeled_paths: vec![],
                default_labels: None,
                items_path: String::new()
            })
        );
        let parsed = ResponseLabels::parse(
            br#"{"labeled_paths":[{"path":"/items/1","labels":{"secrecy":["private:acme/api"],"integrity":[]}}],
                 "default_labels":{"description":"repository","secrecy":[],"integrity":["none"]},"items_path":"/items"}"#,
        )
        .unwrap();
        let ResponseLabels::Paths(paths) = parsed else {
            panic!("expected paths")
        };
        assert_eq!(paths.items_path, "/items");
        assert_eq!(paths.labeled_paths[0].path, "/items/1");
        assert_eq!(
            paths.labeled_paths[0].labels.secrecy,
            TagSet::from_strs(["private:acme/api"])
        );
        assert_eq!(paths.default_labels.unwrap().description, "repository");

        let parsed = ResponseLabels::parse(
            br#"{"items":[3,{"data":{"id":1},"labels":{"description":"d","secrecy":["s"]}}]}"#,
        )
        .unwrap();
        assert_eq!(
            parsed,
            ResponseLabels::Items(vec![LabeledItem {
                data: serde_json::json!({"id":1}),
                labels: ItemLabels {
                    description: "d".into(),
                    secrecy: TagSet::from_strs(["s"]),
                    integrity: TagSet::new()
                }
            }])
        );
    }

    #[test]
    fn response_output_errors() {
        let err = ResponseLabels::parse(b"[1]").unwrap_err().to_string();
        assert!(
            err.starts_with("failed to unmarshal label_response WASM response: "),
            "{err}"
        );
        let err = ResponseLabels::parse(br#"{"labeled_paths":"x"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("failed to parse path labels: "), "{err}");
        let err = ResponseLabels::parse(br#"{"items":[{"data":1}]}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "label_response item 0 has no labels object");
    }

    #[test]
    fn inputs_serialise_without_absent_fields() {
        let input = LabelResourceInput {
            tool_name: "get_issue".into(),
            tool_args: serde_json::json!({"n":1}),
            capabilities: None,
        };
        assert_eq!(
            serde_json::to_string(&input).unwrap(),
            r#"{"tool_name":"get_issue","tool_args":{"n":1}}"#
        );
        let parsed: LabelResponseInput =
            serde_json::from_str(r#"{"tool_name":"t","tool_result":{},"capabilities":{},"x":1}"#)
                .unwrap();
        assert_eq!(parsed.capabilities, Some(serde_json::json!({})));
        assert_eq!(parsed.tool_args, None);
    }
}
