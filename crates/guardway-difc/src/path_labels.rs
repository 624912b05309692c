//! Resolving path-based response labels against the backend result: unwrapping the MCP text
//! content, walking `items_path` (JSON Pointer) and mapping labelled paths to items (spec difc.md §4.2).

use std::collections::HashMap;

use serde_json::Value;

use crate::payload::{ItemLabels, LabeledItem, PathLabels};

/// Why path labels could not be applied to a result. `Display` is the wire text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathLabelError {
    #[error(
        "failed to apply path labels: failed to resolve path labels: path {path:?} not found in response"
    )]
    NotFound { path: String },
    #[error(
        "failed to apply path labels: failed to resolve path labels: expected array index at {path:?}, got {segment:?}"
    )]
    ExpectedIndex { path: String, segment: String },
    #[error(
        "failed to apply path labels: failed to resolve path labels: array index {index} out of bounds"
    )]
    IndexOutOfBounds { index: i64 },
    #[error(
        "failed to apply path labels: failed to resolve path labels: cannot navigate path {path:?}: unexpected type at {segment:?}"
    )]
    CannotNavigate { path: String, segment: String },
    #[error(
        "failed to apply path labels: failed to resolve path labels: items_path {path:?} does not point to an array"
    )]
    NotAnArray { path: String },
}

/// The JSON that paths apply to: the concatenated text content of an MCP
/// `CallToolResult` when it is valid JSON, else the result itself.
pub fn unwrap_tool_result(tool_result: &Value) -> Option<Value> {
    let content = tool_result.get("content")?.as_array()?;
    let mut text = String::new();
    for block in content {
        let kind = block.get("type").and_then(Value::as_str);
        if matches!(kind, Some("image" | "audio" | "resource")) {
            continue;
        }
        if let Some(part) = block.get("text").and_then(Value::as_str) {
            text.push_str(part);
        }
    }
    if text.is_empty() {
        return None;
    }
    serde_json::from_str(&text).ok()
}

impl PathLabels {
    /// The labelled items of `tool_result` (the raw backend `CallToolResult`).
    ///
    /// # Errors
    /// When `items_path` does not lead to an array.
    pub fn resolve(&self, tool_result: &Value) -> Result<Vec<LabeledItem>, PathLabelError> {
        let single_item = || {
            vec![LabeledItem {
                data: tool_result.clone(),
                labels: self.fallback_labels(),
            }]
        };
        // Items are moved out of the parsed text content; only a result
        // that was not wrapped text is cloned.
        let items: Vec<Value> = match (unwrap_tool_result(tool_result), self.items_path.is_empty())
        {
            (Some(Value::Array(items)), true) => items,
            (None, true) => match tool_result {
                Value::Array(items) => items.clone(),
                _ => return Ok(single_item()),
            },
            (Some(_), true) => return Ok(single_item()),
            (Some(mut root), false) => {
                let steps = walk_items_path(&root, &self.items_path)?;
                take_array_at(&mut root, &steps)
            }
            (None, false) => {
                let steps = walk_items_path(tool_result, &self.items_path)?;
                array_at(tool_result, &steps).cloned().unwrap_or_default()
            }
        };

        let mut own_labels: HashMap<i64, &ItemLabels> = HashMap::new();
        for entry in &self.labeled_paths {
            if let Some(index) = item_index(&entry.path, &self.items_path) {
                own_labels.insert(index, &entry.labels);
            }
        }
        let fallback = self.fallback_labels();
        Ok(items
            .into_iter()
            .enumerate()
            .map(|(index, data)| {
                let labels = i64::try_from(index)
                    .ok()
                    .and_then(|index| own_labels.get(&index))
                    .map_or_else(|| fallback.clone(), |labels| (*labels).clone());
                LabeledItem { data, labels }
            })
            .collect())
    }

    fn fallback_labels(&self) -> ItemLabels {
        self.default_labels
            .clone()
            .unwrap_or_else(ItemLabels::unlabeled)
    }
}

/// Splits a JSON Pointer: one leading `/` dropped, split on `/`, `~1` then
/// `~0` decoded. `""` and `"/"` have no segments.
fn pointer_segments(pointer: &str) -> Vec<String> {
    if pointer.is_empty() || pointer == "/" {
        return Vec::new();
    }
    let pointer = pointer.strip_prefix('/').unwrap_or(pointer);
    pointer
        .split('/')
        .map(|segment| segment.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// One step of a resolved `items_path`.
enum Step {
    Key(String),
    Index(usize),
}

/// Walks `items_path` through `root`; returns the steps to an array.
fn walk_items_path(root: &Value, items_path: &str) -> Result<Vec<Step>, PathLabelError> {
    let mut steps = Vec::new();
    let mut current = root;
    for segment in pointer_segments(items_path) {
        if segment.is_empty() {
            continue;
        }
        current = match current {
            Value::Object(object) => {
                let next = object
                    .get(&segment)
                    .ok_or_else(|| PathLabelError::NotFound {
                        path: items_path.to_owned(),
                    })?;
                steps.push(Step::Key(segment));
                next
            }
            Value::Array(array) => {
                let index: i64 = segment.parse().map_err(|_| PathLabelError::ExpectedIndex {
                    path: items_path.to_owned(),
                    segment: segment.clone(),
                })?;
                let position = usize::try_from(index)
                    .ok()
                    .filter(|&position| position < array.len())
                    .ok_or(PathLabelError::IndexOutOfBounds { index })?;
                steps.push(Step::Index(position));
                &array[position]
            }
            _ => {
                return Err(PathLabelError::CannotNavigate {
                    path: items_path.to_owned(),
                    segment,
                });
            }
        };
    }
    match current {
        Value::Array(_) => Ok(steps),
        _ => Err(PathLabelError::NotAnArray {
            path: items_path.to_owned(),
        }),
    }
}

fn array_at<'a>(root: &'a Value, steps: &[Step]) -> Option<&'a Vec<Value>> {
    let mut current = root;
    for step in steps {
        current = match step {
            Step::Key(key) => current.get(key.as_str())?,
            Step::Index(index) => current.get(*index)?,
        };
    }
    current.as_array()
}

fn take_array_at(root: &mut Value, steps: &[Step]) -> Vec<Value> {
    let mut current = root;
    for step in steps {
        let next = match step {
            Step::Key(key) => current.get_mut(key.as_str()),
            Step::Index(index) => current.get_mut(*index),
        };
        let Some(next) = next else { return Vec::new() };
        current = next;
    }
    match current {
        Value::Array(items) => std::mem::take(items),
        _ => Vec::new(),
    }
}

/// The item index a labelled path refers to, or `None` when the entry does
/// not match `items_path` (such entries are skipped silently).
fn item_index(path: &str, items_path: &str) -> Option<i64> {
    let path = with_leading_slash(path);
    let remainder = if items_path.is_empty() {
        path.as_ref()
    } else {
        let items_path = with_leading_slash(items_path);
        let rest = path.strip_prefix(items_path.as_ref())?;
        if !rest.starts_with('/') {
            return None;
        }
        rest
    };
    pointer_segments(remainder).first()?.parse().ok()
}

fn with_leading_slash(pointer: &str) -> std::borrow::Cow<'_, str> {
    if pointer.starts_with('/') {
        pointer.into()
    } else {
        format!("/{pointer}").into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_index_rules() {
        assert_eq!(item_index("/items/0", "/items"), Some(0));
        assert_eq!(item_index("items/7/title", "items"), Some(7));
        assert_eq!(item_index("/items3", "/items"), None);
        assert_eq!(item_index("/other/0", "/items"), None);
        assert_eq!(item_index("/items/x", "/items"), None);
        assert_eq!(item_index("/items//0", "/items"), None);
        assert_eq!(item_index("/2", ""), Some(2));
        assert_eq!(item_index("2", ""), Some(2));
        assert_eq!(item_index("/", ""), None);
        assert_eq!(item_index("/a~1b/1", "/a~1b"), Some(1));
    }

    #[test]
    fn pointer_segments_decode_escapes() {
        assert_eq!(pointer_segments("/a~1b/c~0d/~01"), vec!["a/b", "c~d", "~1"]);
        assert!(pointer_segments("/").is_empty());
    }

    #[test]
    fn unwrap_skips_binary_blocks_and_concatenates() {
        let result = serde_json::json!({"content": [
            {"type": "text", "text": "[1,"},
            {"type": "image", "text": "junk"},
            {"text": "2]"}
        ]});
        assert_eq!(unwrap_tool_result(&result), Some(serde_json::json!([1, 2])));
        assert_eq!(
            unwrap_tool_result(
                &serde_json::json!({"content": [{"type":"text","text":"not json"}]})
            ),
            None
        );
        assert_eq!(unwrap_tool_result(&serde_json::json!([1])), None);
    }
}

/// A failed `label_response` step. `Display` is the text the client sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseLabelingError {
    #[error("response labeling failed: response labeling failed: {0}")]
    Parse(#[from] crate::payload::LabelParseError),
    #[error("response labeling failed: response labeling failed: {0}")]
    Paths(#[from] PathLabelError),
}

impl crate::payload::ResponseLabels {
    /// The labelled items, or `None` when the guard labelled nothing (the
    /// backend result is then returned unmodified).
    ///
    /// # Errors
    /// When path labels cannot be resolved against `tool_result`.
    pub fn into_items(
        self,
        tool_result: &Value,
    ) -> Result<Option<Vec<LabeledItem>>, PathLabelError> {
        match self {
            crate::payload::ResponseLabels::None => Ok(None),
            crate::payload::ResponseLabels::Items(items) => Ok(Some(items)),
            crate::payload::ResponseLabels::Paths(paths) => paths.resolve(tool_result).map(Some),
        }
    }
}

/// Parses `label_response` output and resolves it against `tool_result`.
///
/// # Errors
/// Any parse or resolution failure, wrapped as the client sees it.
pub fn label_response_items(
    output: &[u8],
    tool_result: &Value,
) -> Result<Option<Vec<LabeledItem>>, ResponseLabelingError> {
    let labels = crate::payload::ResponseLabels::parse(output)?;
    Ok(labels.into_items(tool_result)?)
}
