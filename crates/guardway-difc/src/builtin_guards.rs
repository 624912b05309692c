//! Labels produced by the two built-in guards, noop and write-sink, which run without wasm
//! (spec difc.md §2.2, §6).

use crate::labels::TagSet;
use crate::mode::{EnforcementMode, Operation};
use crate::payload::{AgentLabels, ResourceLabels};

/// `label_agent` of the noop guard: no tags, strict.
pub fn noop_agent_labels() -> AgentLabels {
    AgentLabels {
        secrecy: TagSet::new(),
        integrity: TagSet::new(),
        difc_mode: EnforcementMode::Strict,
        normalized_policy: None,
    }
}

/// `label_resource` of the noop guard: an empty resource, `read-write`.
/// Once the agent holds any tag, every call to a noop server is denied.
pub fn noop_resource_labels() -> ResourceLabels {
    ResourceLabels {
        description: String::new(),
        secrecy: TagSet::new(),
        integrity: TagSet::new(),
        operation: Operation::ReadWrite,
    }
}

/// `label_agent` of the write-sink guard: no tags, filter.
pub fn write_sink_agent_labels() -> AgentLabels {
    AgentLabels {
        difc_mode: EnforcementMode::Filter,
        ..noop_agent_labels()
    }
}

/// `label_resource` of the write-sink guard: every call is a `write` with
/// empty integrity; secrecy is the `accept` entries exactly as configured
/// (not trimmed), or empty when the effective visibility is public.
pub fn write_sink_resource_labels(
    accept: &[String],
    public: bool,
    tool_name: &str,
) -> ResourceLabels {
    let (description, secrecy) = if public {
        (format!("write-sink:public ({tool_name})"), TagSet::new())
    } else {
        (
            format!("write-sink ({tool_name})"),
            accept.iter().cloned().collect(),
        )
    };
    ResourceLabels {
        description,
        secrecy,
        integrity: TagSet::new(),
        operation: Operation::Write,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_sink_labels() {
        let accept = vec!["private:acme/web".to_owned(), " * ".to_owned()];
        let private = write_sink_resource_labels(&accept, false, "create_issue");
        assert_eq!(private.description, "write-sink (create_issue)");
        assert!(
            private.secrecy.contains(" * "),
            "entries are used untrimmed"
        );
        assert_eq!(private.operation, Operation::Write);
        let public = write_sink_resource_labels(&accept, true, "create_issue");
        assert_eq!(public.description, "write-sink:public (create_issue)");
        assert!(public.secrecy.is_empty());
        assert_eq!(write_sink_agent_labels().difc_mode, EnforcementMode::Filter);
        assert_eq!(noop_agent_labels().difc_mode, EnforcementMode::Strict);
        assert_eq!(noop_resource_labels().operation, Operation::ReadWrite);
    }
}
