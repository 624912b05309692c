//! The text of a coarse denial (`DIFC Violation: …`), the error a client receives when a call is
//! refused before the backend (spec difc.md §6).

use std::fmt::Write as _;

use crate::evaluator::{Evaluation, LabelView};
use crate::labels::LabelPair;

/// The denial text for `evaluation` of `agent` against `resource`.
pub fn violation_text(
    evaluation: &Evaluation,
    agent: &LabelPair,
    resource: LabelView<'_>,
) -> String {
    let mut text = format!("DIFC Violation: {}\n\n", evaluation.reason);
    let add = &evaluation.secrecy_to_add;
    if !add.is_empty() {
        let _ = write!(
            text,
            "Required Action: Add secrecy tags {add}\n\n\
             Implications of adding secrecy tags:\n  \
             - Agent will be restricted from writing to resources that lack these tags\n  \
             - This includes public resources (e.g., public repositories, public internet)\n  \
             - Agent will be marked as handling sensitive information\n  \
             - Future writes must target resources with tags: {add}\n"
        );
    }
    let drop = &evaluation.integrity_to_drop;
    if !drop.is_empty() {
        let _ = write!(
            text,
            "\nRequired Action: Drop integrity tags {drop}\n\n\
             Implications of dropping integrity tags:\n  \
             - Agent will no longer be able to write to high-integrity resources\n  \
             - Specifically, agent cannot write to resources requiring tags: {drop}\n  \
             - This action acknowledges that agent has been influenced by lower-integrity data\n  \
             - Agent's outputs will be considered less trustworthy\n"
        );
    }
    let _ = write!(
        text,
        "\nCurrent Agent Labels:\n  Secrecy: {}\n  Integrity: {}\n\
         \nResource Requirements:\n  Secrecy: {}\n  Integrity: {}\n",
        agent.secrecy, agent.integrity, resource.secrecy, resource.integrity
    );
    text
}
