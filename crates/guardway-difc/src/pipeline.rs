//! Decisions the gateway's `tools/call` pipeline takes around the evaluator: the coarse check
//! before the backend call, whether responses are labelled, and the taint source (spec difc.md §2.3, §3.4).

use crate::evaluator::{Evaluation, LabelView, evaluate};
use crate::labels::LabelPair;
use crate::mode::{EnforcementMode, Operation};
use crate::payload::{LabeledItem, ResourceLabels};

/// The coarse check of a call against its resource labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoarseCheck {
    pub evaluation: Evaluation,
    /// Refuse the call before the backend: a denied write or read-write.
    /// A denied read always continues to the backend.
    pub refused: bool,
}

/// Evaluates the call's operation on its resource labels.
pub fn coarse_check(
    agent: &LabelPair,
    resource: &ResourceLabels,
    mode: EnforcementMode,
) -> CoarseCheck {
    let evaluation = evaluate(agent, LabelView::from(resource), resource.operation, mode);
    let refused = !evaluation.is_allowed() && resource.operation != Operation::Read;
    CoarseCheck {
        evaluation,
        refused,
    }
}

/// Whether `label_response` is called after the backend: always for reads,
/// for read-writes unless strict, never for writes.
pub fn labels_response(operation: Operation, mode: EnforcementMode) -> bool {
    match operation {
        Operation::Read => true,
        Operation::ReadWrite => mode != EnforcementMode::Strict,
        Operation::Write => false,
    }
}

/// Whether a call that was not denied taints the agent: propagate mode,
/// operations other than `write`.
pub fn taints_agent(operation: Operation, mode: EnforcementMode) -> bool {
    mode == EnforcementMode::Propagate && operation != Operation::Write
}

/// The labels that taint the agent: the overall labels of every labelled
/// item (filtered ones included) when `label_response` produced items,
/// else the resource labels.
pub fn taint_source(resource: &ResourceLabels, labeled_items: Option<&[LabeledItem]>) -> LabelPair {
    match labeled_items {
        Some(items) => {
            let mut overall = LabelPair::default();
            for item in items {
                overall.secrecy.extend_from(&item.labels.secrecy);
                overall.integrity.extend_from(&item.labels.integrity);
            }
            overall
        }
        None => LabelPair::new(resource.secrecy.clone(), resource.integrity.clone()),
    }
}
