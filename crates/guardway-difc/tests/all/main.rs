//! Integration tests of guardway-difc: the spec's test vectors, property tests of the label
//! algebra and filtering, and policy validation (fuzzed and rule by rule).

mod policy;
mod properties;
mod vectors;

use guardway_difc::{ItemLabels, LabelPair, LabeledItem, Operation, ResourceLabels, TagSet};
use serde_json::Value;

pub fn set(tags: &[&str]) -> TagSet {
    TagSet::from_strs(tags.iter().copied())
}

pub fn agent(secrecy: &[&str], integrity: &[&str]) -> LabelPair {
    LabelPair::new(set(secrecy), set(integrity))
}

pub fn resource(
    description: &str,
    secrecy: &[&str],
    integrity: &[&str],
    operation: Operation,
) -> ResourceLabels {
    ResourceLabels {
        description: description.to_owned(),
        secrecy: set(secrecy),
        integrity: set(integrity),
        operation,
    }
}

pub fn item_labels(description: &str, secrecy: &[&str], integrity: &[&str]) -> ItemLabels {
    ItemLabels {
        description: description.to_owned(),
        secrecy: set(secrecy),
        integrity: set(integrity),
    }
}

pub fn item(data: Value, secrecy: &[&str], integrity: &[&str]) -> LabeledItem {
    LabeledItem {
        data,
        labels: item_labels("", secrecy, integrity),
    }
}
