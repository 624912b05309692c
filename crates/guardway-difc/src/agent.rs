//! Agent labels per agent id, shared by every backend server of a session, and how they change:
//! tags added by `label_agent`, taint in propagate mode (spec difc.md §2).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::labels::{LabelPair, TagSet};
use crate::payload::AgentLabels;

/// The agent id used when a request carries no session id.
pub const DEFAULT_AGENT_ID: &str = "default";

impl LabelPair {
    /// Adds tags (never removes any): how `label_agent` results accumulate.
    pub fn add_tags(&mut self, secrecy: &TagSet, integrity: &TagSet) {
        self.secrecy.extend_from(secrecy);
        self.integrity.extend_from(integrity);
    }

    /// Taint by data labelled `source`: secrecy gains the source's secrecy,
    /// integrity keeps only what the source also has.
    pub fn taint(&mut self, source: &LabelPair) {
        self.secrecy.extend_from(&source.secrecy);
        self.integrity.retain_in(&source.integrity);
    }
}

/// Agent id → labels, created empty on first use and kept for the process
/// lifetime.
///
/// Thread-safe: one mutex around a map, held only for a map lookup and a
/// set update. `Clone` is cheap (an `Arc` bump) and clones share the same
/// agents, so one registry can be handed to every backend server.
#[derive(Debug, Clone, Default)]
pub struct AgentRegistry {
    agents: Arc<Mutex<HashMap<String, LabelPair>>>,
}

impl AgentRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The agent's current labels, creating empty ones on first use.
    pub fn get_or_create(&self, agent_id: &str) -> LabelPair {
        self.update(agent_id, |_| ())
    }

    /// The agent's labels if it is known.
    pub fn labels(&self, agent_id: &str) -> Option<LabelPair> {
        self.agents.lock().get(agent_id).cloned()
    }

    /// Adds the tags of a `label_agent` result; returns the new labels.
    pub fn apply_agent_labels(&self, agent_id: &str, labels: &AgentLabels) -> LabelPair {
        self.add_tags(agent_id, &labels.secrecy, &labels.integrity)
    }

    /// Adds tags (never removes); returns the new labels.
    pub fn add_tags(&self, agent_id: &str, secrecy: &TagSet, integrity: &TagSet) -> LabelPair {
        self.update(agent_id, |labels| labels.add_tags(secrecy, integrity))
    }

    /// Applies taint from data labelled `source`; returns the new labels.
    pub fn taint(&self, agent_id: &str, source: &LabelPair) -> LabelPair {
        self.update(agent_id, |labels| labels.taint(source))
    }

    /// Every known agent with its labels, sorted by id.
    pub fn snapshot(&self) -> BTreeMap<String, LabelPair> {
        self.agents
            .lock()
            .iter()
            .map(|(id, labels)| (id.clone(), labels.clone()))
            .collect()
    }

    /// Number of known agents.
    pub fn len(&self) -> usize {
        self.agents.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.agents.lock().is_empty()
    }

    fn update(&self, agent_id: &str, change: impl FnOnce(&mut LabelPair)) -> LabelPair {
        let mut agents = self.agents.lock();
        let labels = match agents.get_mut(agent_id) {
            Some(labels) => labels,
            None => agents.entry(agent_id.to_owned()).or_default(),
        };
        change(labels);
        labels.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_agents() {
        let registry = AgentRegistry::new();
        let other = registry.clone();
        assert_eq!(
            registry.get_or_create(DEFAULT_AGENT_ID),
            LabelPair::default()
        );
        other.add_tags("default", &TagSet::from_strs(["s"]), &TagSet::new());
        assert_eq!(
            registry.labels("default").unwrap().secrecy,
            TagSet::from_strs(["s"])
        );
        assert_eq!(registry.len(), 1);
        assert!(registry.labels("unknown").is_none());
    }

    #[test]
    fn registry_is_usable_across_threads() {
        let registry = AgentRegistry::new();
        std::thread::scope(|scope| {
            for index in 0..4 {
                let registry = registry.clone();
                scope.spawn(move || {
                    registry.add_tags(
                        "a",
                        &TagSet::from_strs([format!("t{index}").as_str()]),
                        &TagSet::new(),
                    )
                });
            }
        });
        assert_eq!(registry.labels("a").unwrap().secrecy.len(), 4);
    }
}
