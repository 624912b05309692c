//! DIFC core: labels, the evaluator, response filtering and guard-policy validation. Pure logic, no I/O.

mod agent;
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
