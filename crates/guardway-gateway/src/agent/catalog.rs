//! How backend tools and prompts are presented to agents (gateway.md §4):
//! unified names `<server>___<tool>`, `[<server>] ` description prefixes,
//! input-schema normalisation. (The allowed-tools list is
//! `crate::config::tool_allowed`.)

use std::sync::Arc;

use rmcp::model::{JsonObject, Prompt, Tool};
use serde_json::Value;

/// Separator between server id and tool name in unified mode.
pub const UNIFIED_SEPARATOR: &str = "___";

/// `<server>___<name>`.
pub fn unified_name(server: &str, name: &str) -> String {
    format!("{server}{UNIFIED_SEPARATOR}{name}")
}

/// Splits a unified name at the first separator whose prefix is a known
/// server id, so server ids containing `___` still resolve.
pub fn split_unified_name(name: &str, is_server: impl Fn(&str) -> bool) -> Option<(&str, &str)> {
    let mut start = 0;
    while let Some(pos) = name[start..].find(UNIFIED_SEPARATOR) {
        let at = start + pos;
        let (server, rest) = (&name[..at], &name[at + UNIFIED_SEPARATOR.len()..]);
        if is_server(server) && !rest.is_empty() {
            return Some((server, rest));
        }
        start = at + 1;
    }
    None
}

/// Makes a backend input schema acceptable to every client: none ⇒
/// `{"type":"object","properties":{}}`; `properties` without `type` ⇒ add
/// `"type":"object"`; an object with neither `properties` nor
/// `additionalProperties` ⇒ add empty `properties`.
pub fn normalize_input_schema(schema: &JsonObject) -> JsonObject {
    let mut schema = schema.clone();
    if schema.is_empty() {
        schema.insert("type".into(), Value::String("object".into()));
        schema.insert("properties".into(), Value::Object(Default::default()));
        return schema;
    }
    if schema.contains_key("properties") && !schema.contains_key("type") {
        schema.insert("type".into(), Value::String("object".into()));
    }
    let is_object = schema.get("type").and_then(Value::as_str) == Some("object");
    if is_object
        && !schema.contains_key("properties")
        && !schema.contains_key("additionalProperties")
    {
        schema.insert("properties".into(), Value::Object(Default::default()));
    }
    schema
}

/// `[<server>] <description>` (or just `[<server>]` without one).
pub fn prefixed_description(server: &str, description: Option<&str>) -> String {
    match description {
        Some(d) if !d.is_empty() => format!("[{server}] {d}"),
        _ => format!("[{server}]"),
    }
}

/// The tool as an agent sees it; `unified` selects the prefixed name.
pub fn present_tool(server: &str, tool: &Tool, unified: bool) -> Tool {
    let mut shown = tool.clone();
    if unified {
        shown.name = unified_name(server, &tool.name).into();
    }
    shown.description = Some(prefixed_description(server, tool.description.as_deref()).into());
    shown.input_schema = Arc::new(normalize_input_schema(&tool.input_schema));
    shown
}

/// The prompt as an agent sees it; `unified` selects the prefixed name.
pub fn present_prompt(server: &str, prompt: &Prompt, unified: bool) -> Prompt {
    let mut shown = prompt.clone();
    if unified {
        shown.name = unified_name(server, &prompt.name);
    }
    shown.description = Some(prefixed_description(server, prompt.description.as_deref()));
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> JsonObject {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn schema_normalisation_rules() {
        assert_eq!(
            Value::Object(normalize_input_schema(&JsonObject::new())),
            json!({"type":"object","properties":{}})
        );
        assert_eq!(
            Value::Object(normalize_input_schema(&obj(json!({"properties":{"a":{}}})))),
            json!({"properties":{"a":{}},"type":"object"})
        );
        assert_eq!(
            Value::Object(normalize_input_schema(&obj(json!({"type":"object"})))),
            json!({"type":"object","properties":{}})
        );
        let open = json!({"type":"object","additionalProperties":true});
        assert_eq!(
            Value::Object(normalize_input_schema(&obj(open.clone()))),
            open
        );
    }

    #[test]
    fn unified_names_split_on_known_servers() {
        let servers = ["a", "b___c"];
        let known = |s: &str| servers.contains(&s);
        assert_eq!(split_unified_name("a___echo", known), Some(("a", "echo")));
        assert_eq!(split_unified_name("b___c___x", known), Some(("b___c", "x")));
        assert_eq!(split_unified_name("a___x___y", known), Some(("a", "x___y")));
        assert_eq!(split_unified_name("zz___echo", known), None);
        assert_eq!(split_unified_name("a___", known), None);
        assert_eq!(split_unified_name("echo", known), None);
    }

    #[test]
    fn descriptions_are_prefixed() {
        assert_eq!(prefixed_description("s", Some("Echo")), "[s] Echo");
        assert_eq!(prefixed_description("s", None), "[s]");
    }
}
