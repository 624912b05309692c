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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::TagSet;

    #[test]
    fn pipeline_table_of_spec_3_4() {
        use EnforcementMode::{Filter, Propagate, Strict};
        use Operation::{Read, ReadWrite, Write};
        // (operation, mode, label_response called, taints)
        let table = [
            (Read, Strict, true, false),
            (Read, Filter, true, false),
            (Read, Propagate, true, true),
            (ReadWrite, Strict, false, false),
            (ReadWrite, Filter, true, false),
            (ReadWrite, Propagate, true, true),
            (Write, Strict, false, false),
            (Write, Filter, false, false),
            (Write, Propagate, false, false),
        ];
        for (operation, mode, labelled, taints) in table {
            assert_eq!(
                labels_response(operation, mode),
                labelled,
                "{operation} {mode}"
            );
            assert_eq!(taints_agent(operation, mode), taints, "{operation} {mode}");
        }
    }

    #[test]
    fn coarse_read_in_propagate_mode_is_never_refused() {
        let agent = LabelPair::new(TagSet::new(), TagSet::from_strs(["t"]));
        let resource = ResourceLabels {
            description: "r".into(),
            secrecy: TagSet::from_strs(["s"]),
            integrity: TagSet::new(),
            operation: Operation::Read,
        };
        let check = coarse_check(&agent, &resource, EnforcementMode::Propagate);
        assert!(!check.refused);
        assert!(check.evaluation.is_allowed());
        // The write part of a read-write still refuses in propagate mode.
        let resource = ResourceLabels {
            operation: Operation::ReadWrite,
            integrity: TagSet::from_strs(["t", "u"]),
            ..resource
        };
        assert!(coarse_check(&agent, &resource, EnforcementMode::Propagate).refused);
    }
}
