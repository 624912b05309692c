//! DIFC core: labels, the evaluator, response filtering and guard-policy validation. Pure logic, no I/O.
//!
//! One `tools/call` through the gateway uses this crate in order:
//!
//! ```
//! use guardway_difc::*;
//! use serde_json::json;
//!
//! let registry = AgentRegistry::new();
//! // label_agent: validate the policy, parse the guard's answer, add its tags.
//! let _payload = prepare_label_agent_policy(json!({"allow-only": {"repos": "all", "min-integrity": "none"}}))?;
//! let agent_labels = AgentLabels::parse(br#"{"agent":{"secrecy":[],"integrity":[]},"difc_mode":"filter"}"#)?;
//! let agent = registry.apply_agent_labels(DEFAULT_AGENT_ID, &agent_labels);
//! let mode = agent_labels.difc_mode;
//!
//! // label_resource, then the coarse check before the backend.
//! let resource = ResourceLabels::parse(br#"{"resource":{"description":"issues","secrecy":[],"integrity":[]},"operation":"read"}"#)?;
//! let check = coarse_check(&agent, &resource, mode);
//! if check.refused {
//!     let _error_text = violation_text(&check.evaluation, &agent, LabelView::from(&resource));
//! }
//!
//! // backend call, label_response, filtering into the client's view.
//! let backend = json!({"content": [{"type": "text", "text": "[{\"id\":1},{\"id\":2}]"}]});
//! let output = br#"{"labeled_paths":[{"path":"/1","labels":{"description":"issue 2","secrecy":["private:acme/api"],"integrity":[]}}]}"#;
//! if labels_response(resource.operation, mode) {
//!     if let Some(items) = label_response_items(output, &backend)? {
//!         let response = filter_response(&agent, &items, resource.operation, mode, "list_issues", DEFAULT_AGENT_ID);
//!         assert_eq!(response.outcome.filtered.len(), 1);
//!         if taints_agent(resource.operation, mode) {
//!             registry.taint(DEFAULT_AGENT_ID, &taint_source(&resource, Some(&items)));
//!         }
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod agent;
mod builtin_guards;
mod denial;
mod evaluator;
mod filter;
mod json_text;
mod labels;
mod mode;
mod path_labels;
mod payload;
mod pipeline;
mod policy;

pub use agent::{AgentRegistry, DEFAULT_AGENT_ID};
pub use builtin_guards::{
    noop_agent_labels, noop_resource_labels, write_sink_agent_labels, write_sink_resource_labels,
};
pub use denial::violation_text;
pub use evaluator::{
    AccessDecision, Evaluation, LabelView, evaluate, integrity_level, secrecy_level,
};
pub use filter::{
    ClientView, FilterOutcome, FilterPolicy, FilteredItem, FilteredResponse, ResponseDenial,
    filter_items, filter_response, filtered_item_record,
};
pub use json_text::{to_reference_json, write_reference_json};
pub use labels::{FlowCheck, LabelKind, LabelPair, TagSet, WILDCARD_TAG, flow};
pub use mode::{EnforcementMode, Operation, UnknownEnforcementMode, effective_mode};
pub use path_labels::{
    PathLabelError, ResponseLabelingError, label_response_items, unwrap_tool_result,
};
pub use payload::{
    AgentLabels, ItemLabels, LabelParseError, LabelResourceInput, LabelResponseInput, LabeledItem,
    LabeledPath, PathLabels, ResourceLabels, ResponseLabels,
};
pub use pipeline::{CoarseCheck, coarse_check, labels_response, taint_source, taints_agent};
pub use policy::{
    PolicyError, is_valid_repo_scope, parse_policy_str, parse_policy_value,
    prepare_label_agent_policy, validate_label_agent_policy,
};
