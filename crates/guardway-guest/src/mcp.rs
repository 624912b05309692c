//! Reading MCP `CallToolResult` JSON: the text content and the JSON inside
//! it, unwrapped the way the gateway does before applying path labels.

use std::borrow::Cow;

use serde_json::Value;

/// The concatenated (no separator) `text` of the result's `content` items
/// whose `type` is absent, `text` or unknown — not `image`, `audio` or
/// `resource`. `None` when `content` is not an array.
pub fn tool_result_text(result: &Value) -> Option<String> {
    let content = result.get("content")?.as_array()?;
    let mut text = String::new();
    for item in content {
        let kind = item.get("type").and_then(Value::as_str);
        if matches!(kind, Some("image" | "audio" | "resource")) {
            continue;
        }
        if let Some(part) = item.get("text").and_then(Value::as_str) {
            text.push_str(part);
        }
    }
    Some(text)
}

/// The JSON value held in the result's text content, when that text is
/// non-empty valid JSON.
pub fn tool_result_json(result: &Value) -> Option<Value> {
    let text = tool_result_text(result)?;
    if text.is_empty() {
        return None;
    }
    serde_json::from_str(&text).ok()
}

/// The value path labels apply to: the JSON inside the text content when
/// there is some, else the result itself (difc.md §4.2, step 1).
pub fn unwrap_tool_result(result: &Value) -> Cow<'_, Value> {
    match tool_result_json(result) {
        Some(parsed) => Cow::Owned(parsed),
        None => Cow::Borrowed(result),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_items_are_concatenated_and_parsed() {
        let result = json!({"content": [
            {"type": "text", "text": "[{\"id\":"},
            {"type": "image", "data": "xx", "text": "ignored"},
            {"text": "1}]"}
        ]});
        assert_eq!(tool_result_text(&result).unwrap(), "[{\"id\":1}]");
        assert_eq!(unwrap_tool_result(&result).as_ref(), &json!([{"id": 1}]));
    }

    #[test]
    fn non_json_or_missing_content_falls_back_to_the_result() {
        let result = json!({"content": [{"type": "text", "text": "not json"}]});
        assert!(tool_result_json(&result).is_none());
        assert_eq!(unwrap_tool_result(&result).as_ref(), &result);
        let bare = json!({"number": 3});
        assert!(tool_result_text(&bare).is_none());
        assert_eq!(unwrap_tool_result(&bare).as_ref(), &bare);
        let empty = json!({"content": []});
        assert!(tool_result_json(&empty).is_none());
    }

    #[test]
    fn resource_content_is_skipped() {
        let result = json!({"content": [
            {"type": "text", "text": "downloaded"},
            {"type": "resource", "resource": {"uri": "repo://o/r/x", "text": "{}"}}
        ]});
        assert_eq!(tool_result_text(&result).unwrap(), "downloaded");
        assert!(tool_result_json(&result).is_none());
    }
}
