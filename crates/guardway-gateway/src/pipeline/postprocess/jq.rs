//! A configured jq filter applied to a tool result (gateway.md §6.2 step
//! 8): to the JSON in its first text item, else to the whole result. The
//! filter itself (compiling, running on JSON) is `crate::config::JqFilter`.

use jaq_json::Val;
use rmcp::model::{CallToolResult, ContentBlock};
use serde::Deserialize;

use crate::config::{JqFilter, JqRunError};

impl JqFilter {
    /// The result with the filter applied (gateway.md §6.2 step 8): to the
    /// JSON of the first content item when it is text holding JSON (the
    /// item's text is replaced by the compact output, other items kept),
    /// else to the JSON of the whole result (whose output must then be a
    /// tool result; `isError` and `_meta` are kept from the original).
    ///
    /// # Errors
    /// As [`JqFilter::run`], or when the output of a whole-result filter is
    /// not a tool result.
    pub fn apply(&self, mut result: CallToolResult) -> Result<CallToolResult, JqRunError> {
        if let Some(ContentBlock::Text(first)) = result.content.first_mut()
            && let Some(output) = self.run_on_json_text(&first.text)
        {
            first.text = output?.to_string();
            return Ok(result);
        }
        let whole = serde_json::to_value(&result).map_err(|e| JqRunError::NotJson {
            message: e.to_string(),
        })?;
        let input = Val::deserialize(whole).map_err(|e| JqRunError::NotJson {
            message: e.to_string(),
        })?;
        let output = self.run(input)?;
        let mut filtered: CallToolResult =
            serde_json::from_value(output).map_err(|e| JqRunError::NotAToolResult {
                message: e.to_string(),
            })?;
        filtered.is_error = result.is_error;
        filtered.meta = result.meta.take();
        if filtered.result_type.is_none() {
            filtered.result_type = result.result_type.take();
        }
        Ok(filtered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_text_item_is_filtered_and_other_items_kept() {
        let filter = JqFilter::compile("map(.id)").unwrap();
        let result = CallToolResult::success(vec![
            ContentBlock::text(r#"[{"id":1},{"id":2}]"#),
            ContentBlock::text("[Filtered] 1 item"),
        ]);
        let out = filter.apply(result).unwrap();
        assert_eq!(out.content[0].as_text().unwrap().text, "[1,2]");
        assert_eq!(out.content[1].as_text().unwrap().text, "[Filtered] 1 item");
    }

    #[test]
    fn non_json_text_filters_the_whole_result() {
        let filter = JqFilter::compile(".content |= map(.text |= ascii_upcase)").unwrap();
        let result = CallToolResult::success(vec![ContentBlock::text("not json")]);
        let out = filter.apply(result).unwrap();
        assert_eq!(out.content[0].as_text().unwrap().text, "NOT JSON");
        let bad = JqFilter::compile("42").unwrap();
        let result = CallToolResult::success(vec![ContentBlock::text("not json")]);
        assert!(matches!(
            bad.apply(result),
            Err(JqRunError::NotAToolResult { .. })
        ));
    }
}
