//! DIFC core: labels, the evaluator, response filtering and guard-policy validation. Pure logic, no I/O.

mod labels;
mod mode;
mod payload;

pub use labels::{FlowCheck, LabelKind, LabelPair, TagSet, WILDCARD_TAG, flow};
pub use mode::{EnforcementMode, Operation, UnknownEnforcementMode};
pub use payload::{
    AgentLabels, ItemLabels, LabelParseError, LabelResourceInput, LabelResponseInput, LabeledItem,
    LabeledPath, PathLabels, ResourceLabels, ResponseLabels,
};
