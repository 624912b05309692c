//! The DIFC evaluator: one agent, one resource, one operation, one mode → a decision with its
//! reason text (spec difc.md §3.2).

use crate::labels::{LabelKind, LabelPair, TagSet, flow};
use crate::mode::{EnforcementMode, Operation};
use crate::payload::{ItemLabels, ResourceLabels};

/// The labels being accessed, borrowed from a resource or an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelView<'a> {
    pub description: &'a str,
    pub secrecy: &'a TagSet,
    pub integrity: &'a TagSet,
}

impl<'a> From<&'a ResourceLabels> for LabelView<'a> {
    fn from(resource: &'a ResourceLabels) -> Self {
        LabelView {
            description: &resource.description,
            secrecy: &resource.secrecy,
            integrity: &resource.integrity,
        }
    }
}

impl<'a> From<&'a ItemLabels> for LabelView<'a> {
    fn from(item: &'a ItemLabels) -> Self {
        LabelView {
            description: &item.description,
            secrecy: &item.secrecy,
            integrity: &item.integrity,
        }
    }
}

/// The evaluator's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessDecision {
    Allow,
    Deny,
    /// A read allowed in propagate mode that taints the agent.
    AllowWithPropagate,
}

/// The outcome of one evaluation. A denial fills exactly one of the two
/// lists; a propagated read may fill both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub decision: AccessDecision,
    pub secrecy_to_add: TagSet,
    pub integrity_to_drop: TagSet,
    /// Empty for a plain allow.
    pub reason: String,
}

impl Evaluation {
    fn allow() -> Self {
        Evaluation {
            decision: AccessDecision::Allow,
            secrecy_to_add: TagSet::new(),
            integrity_to_drop: TagSet::new(),
            reason: String::new(),
        }
    }

    fn deny(secrecy_to_add: TagSet, integrity_to_drop: TagSet, reason: String) -> Self {
        Evaluation {
            decision: AccessDecision::Deny,
            secrecy_to_add,
            integrity_to_drop,
            reason,
        }
    }

    /// `Allow` or `AllowWithPropagate`.
    pub fn is_allowed(&self) -> bool {
        self.decision != AccessDecision::Deny
    }

    /// Whether the denial is about secrecy (it asks to add secrecy tags).
    pub fn is_secrecy_violation(&self) -> bool {
        !self.secrecy_to_add.is_empty()
    }
}

/// Evaluates `operation` by `agent` on `resource` under `mode`.
pub fn evaluate(
    agent: &LabelPair,
    resource: LabelView<'_>,
    operation: Operation,
    mode: EnforcementMode,
) -> Evaluation {
    match operation {
        Operation::Read => evaluate_read(agent, resource, mode),
        Operation::Write => evaluate_write(agent, resource),
        Operation::ReadWrite => {
            let read = evaluate_read(agent, resource, mode);
            if !read.is_allowed() {
                return read;
            }
            let write = evaluate_write(agent, resource);
            if !write.is_allowed() {
                return write;
            }
            Evaluation::allow()
        }
    }
}

fn evaluate_read(agent: &LabelPair, resource: LabelView<'_>, mode: EnforcementMode) -> Evaluation {
    let integrity = flow(LabelKind::Integrity, resource.integrity, &agent.integrity);
    let secrecy = flow(LabelKind::Secrecy, resource.secrecy, &agent.secrecy);
    if mode == EnforcementMode::Propagate {
        if integrity.ok && secrecy.ok {
            return Evaluation::allow();
        }
        let mut changes = Vec::with_capacity(2);
        if !secrecy.ok {
            changes.push(format!("adding secrecy tags {}", secrecy.violating));
        }
        if !integrity.ok {
            changes.push(format!("dropping integrity tags {}", integrity.violating));
        }
        return Evaluation {
            decision: AccessDecision::AllowWithPropagate,
            secrecy_to_add: secrecy.violating,
            integrity_to_drop: integrity.violating,
            reason: format!(
                "Read allowed with label propagation: {}",
                changes.join(" and ")
            ),
        };
    }
    if !integrity.ok {
        let reason = format!(
            "Resource '{}' has lower integrity than agent requires. The agent cannot read data with integrity below {}.",
            resource.description,
            integrity_level(&integrity.violating)
        );
        return Evaluation::deny(TagSet::new(), integrity.violating, reason);
    }
    if !secrecy.ok {
        let reason = format!(
            "Resource '{}' has secrecy requirements that agent doesn't meet. The agent is not authorized to access {}-scoped data.",
            resource.description,
            secrecy_level(&secrecy.violating)
        );
        return Evaluation::deny(secrecy.violating, TagSet::new(), reason);
    }
    Evaluation::allow()
}

fn evaluate_write(agent: &LabelPair, resource: LabelView<'_>) -> Evaluation {
    let integrity = flow(LabelKind::Integrity, &agent.integrity, resource.integrity);
    if !integrity.ok {
        let reason = format!(
            "Agent lacks required integrity to write to '{}'. The agent's integrity level is insufficient; it needs {} integrity.",
            resource.description,
            integrity_level(&integrity.violating)
        );
        return Evaluation::deny(TagSet::new(), integrity.violating, reason);
    }
    let secrecy = flow(LabelKind::Secrecy, &agent.secrecy, resource.secrecy);
    if !secrecy.ok {
        let reason = format!(
            "Agent carries {}-scoped data that cannot be written to '{}' due to secrecy constraints. The target resource is not authorized to receive this sensitive data.",
            secrecy_level(&secrecy.violating),
            resource.description
        );
        return Evaluation::deny(secrecy.violating, TagSet::new(), reason);
    }
    Evaluation::allow()
}

/// `{IL}`: a readable integrity level for violating integrity tags.
pub fn integrity_level(tags: &TagSet) -> String {
    if tags.is_empty() {
        return "none".to_owned();
    }
    let mut highest: Option<&str> = None;
    for tag in tags.iter() {
        let level = match tag.find(':') {
            Some(index) if index > 0 => &tag[..index],
            _ => tag,
        };
        match level {
            "merged" => return "\"merged\"".to_owned(),
            "approved" => highest = Some("\"approved\""),
            "unapproved" if highest.is_none() => highest = Some("\"unapproved\""),
            _ => {}
        }
    }
    highest.map_or_else(|| tags.to_string(), str::to_owned)
}

/// `{SL}`: a readable secrecy scope for violating secrecy tags.
pub fn secrecy_level(tags: &TagSet) -> String {
    if tags.is_empty() {
        return "public".to_owned();
    }
    let mut best_scope = "";
    let mut has_bare_private = false;
    for tag in tags.iter() {
        if let Some(scope) = tag.strip_prefix("private:") {
            if scope.len() > best_scope.len() {
                best_scope = scope;
            }
        } else if tag == "private" {
            has_bare_private = true;
        }
    }
    if !best_scope.is_empty() {
        format!("private ({best_scope})")
    } else if has_bare_private {
        "private".to_owned()
    } else {
        tags.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(tags: &[&str]) -> TagSet {
        TagSet::from_strs(tags.iter().copied())
    }

    #[test]
    fn integrity_level_picks_highest_named_level() {
        assert_eq!(integrity_level(&TagSet::new()), "none");
        assert_eq!(
            integrity_level(&set(&["unapproved:a/b", "approved:a/b"])),
            "\"approved\""
        );
        assert_eq!(integrity_level(&set(&["unapproved:x"])), "\"unapproved\"");
        assert_eq!(integrity_level(&set(&[":merged", "x"])), "[:merged x]");
    }

    #[test]
    fn secrecy_level_prefers_longest_scope_then_first_sorted() {
        assert_eq!(secrecy_level(&TagSet::new()), "public");
        assert_eq!(secrecy_level(&set(&["private", "x"])), "private");
        assert_eq!(
            secrecy_level(&set(&["private:ab", "private:cd"])),
            "private (ab)"
        );
    }

    #[test]
    fn propagate_reason_lists_both_changes() {
        let agent = LabelPair::new(TagSet::new(), set(&["t"]));
        let labels = ItemLabels {
            description: "r".into(),
            secrecy: set(&["s"]),
            integrity: TagSet::new(),
        };
        let result = evaluate(
            &agent,
            (&labels).into(),
            Operation::Read,
            EnforcementMode::Propagate,
        );
        assert_eq!(result.decision, AccessDecision::AllowWithPropagate);
        assert_eq!(
            result.reason,
            "Read allowed with label propagation: adding secrecy tags [s] and dropping integrity tags [t]"
        );
    }
}
