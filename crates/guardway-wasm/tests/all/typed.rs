//! The typed API over the payload types of `guardway-difc`.

use guardway_difc::{LabelResourceInput, LabelResponseInput, Operation, ResponseLabels};
use guardway_wasm::GuardError;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn label_resource_and_label_response_parse_the_guard_output() {
    // The backend guard answers label_resource with what the backend returns.
    let backend = MockBackend::new(json!({
        "resource": {"description": "issue octo-org/api#12", "secrecy": ["private:octo-org/api"],
                     "integrity": ["approved:octo-org/api"]},
        "operation": "read"}));
    let backend_guard = guard_with("backend_calls", options(), Some(backend)).await;
    let input = LabelResourceInput {
        tool_name: "issue_read".into(),
        tool_args: json!({"owner": "octo-org", "repo": "api"}),
        capabilities: None,
    };
    let labels = backend_guard.label_resource(&input).await.unwrap();
    assert_eq!(labels.operation, Operation::Read);
    assert_eq!(labels.description, "issue octo-org/api#12");

    // The echo guard returns its input: a label_response input carries no labels.
    let guard = guard("echo").await;

    let input = LabelResponseInput {
        tool_name: "issue_read".into(),
        tool_result: json!({"content": []}),
        tool_args: None,
        capabilities: None,
    };
    assert_eq!(
        guard.label_response(&input).await.unwrap(),
        ResponseLabels::None
    );
}

#[tokio::test]
async fn unusable_output_is_a_labels_error() {
    // The backend guard answers label_resource with the backend's result: make it a JSON array.
    let backend = MockBackend::new(json!([1, 2, 3]));
    let guard = guard_with("backend_calls", options(), Some(backend)).await;
    let input = LabelResourceInput {
        tool_name: "issue_read".into(),
        tool_args: json!({}),
        capabilities: None,
    };
    let err = guard.label_resource(&input).await.unwrap_err();
    assert!(matches!(err, GuardError::Labels { .. }), "{err:?}");
}
