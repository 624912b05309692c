//! Tag sets and the one DIFC primitive, `flow`, for secrecy and integrity labels (spec difc.md §1).

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The wildcard tag. Special only on one side of each flow check (see [`flow`]).
pub const WILDCARD_TAG: &str = "*";

/// A set of tags of one kind (secrecy or integrity), kept sorted.
///
/// Tags are compared by exact, case-sensitive equality; nothing is trimmed or
/// parsed. Printed as `[a b]` (sorted, one space, `[]` when empty) and
/// serialised as a JSON array of strings. Cloning copies every tag.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TagSet(BTreeSet<String>);

impl TagSet {
    /// An empty set (public secrecy, untrusted integrity).
    pub fn new() -> Self {
        Self(BTreeSet::new())
    }

    /// The tags in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.0.iter().map(String::as_str)
    }

    pub fn contains(&self, tag: &str) -> bool {
        self.0.contains(tag)
    }

    /// Adds a tag; returns whether it was new.
    pub fn insert(&mut self, tag: impl Into<String>) -> bool {
        self.0.insert(tag.into())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the wildcard tag `*` is in the set.
    pub fn has_wildcard(&self) -> bool {
        self.contains(WILDCARD_TAG)
    }

    /// Whether every tag of `self` is in `other`.
    pub fn is_subset(&self, other: &TagSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// Join: the union of both sets.
    pub fn union(&self, other: &TagSet) -> TagSet {
        TagSet(self.0.union(&other.0).cloned().collect())
    }

    /// Meet: the intersection of both sets.
    pub fn intersection(&self, other: &TagSet) -> TagSet {
        TagSet(self.0.intersection(&other.0).cloned().collect())
    }

    /// The tags of `self` that are not in `other`.
    pub fn difference(&self, other: &TagSet) -> TagSet {
        TagSet(self.0.difference(&other.0).cloned().collect())
    }

    /// Adds every tag of `other`.
    pub fn extend_from(&mut self, other: &TagSet) {
        for tag in &other.0 {
            if !self.0.contains(tag) {
                self.0.insert(tag.clone());
            }
        }
    }

    /// Keeps only the tags that are also in `other`.
    pub fn retain_in(&mut self, other: &TagSet) {
        self.0.retain(|tag| other.0.contains(tag));
    }

    /// Builds a set from borrowed strings (convenience for tests and literals).
    pub fn from_strs<'a>(tags: impl IntoIterator<Item = &'a str>) -> Self {
        tags.into_iter().map(str::to_owned).collect()
    }

    /// Builds a set from guard-provided strings: each trimmed, blanks dropped.
    pub fn from_trimmed<S: AsRef<str>>(tags: impl IntoIterator<Item = S>) -> Self {
        tags.into_iter()
            .filter_map(|tag| {
                let trimmed = tag.as_ref().trim();
                (!trimmed.is_empty()).then(|| trimmed.to_owned())
            })
            .collect()
    }
}

impl FromIterator<String> for TagSet {
    fn from_iter<I: IntoIterator<Item = String>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a TagSet {
    type Item = &'a String;
    type IntoIter = std::collections::btree_set::Iter<'a, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for TagSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (index, tag) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(" ")?;
            }
            f.write_str(tag)?;
        }
        f.write_str("]")
    }
}

/// Which kind of label a tag set is; decides the direction of [`flow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabelKind {
    Secrecy,
    Integrity,
}

/// The outcome of one flow check: allowed, or the tags that violate it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowCheck {
    pub ok: bool,
    /// Empty when `ok`; otherwise the tags that prevent the flow.
    pub violating: TagSet,
}

/// May information labelled `src` flow to a holder labelled `dst`?
///
/// Secrecy: ok iff `src ⊆ dst` (violating `src ∖ dst`), or `*` ∈ `dst`.
/// Integrity: ok iff `src ⊇ dst` (violating `dst ∖ src`), or `*` ∈ `src`.
/// A `*` on the other side is an ordinary tag.
pub fn flow(kind: LabelKind, src: &TagSet, dst: &TagSet) -> FlowCheck {
    let violating = match kind {
        LabelKind::Secrecy if dst.has_wildcard() => TagSet::new(),
        LabelKind::Secrecy => src.difference(dst),
        LabelKind::Integrity if src.has_wildcard() => TagSet::new(),
        LabelKind::Integrity => dst.difference(src),
    };
    FlowCheck {
        ok: violating.is_empty(),
        violating,
    }
}

/// A pair of secrecy and integrity labels (of an agent, resource or item).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelPair {
    pub secrecy: TagSet,
    pub integrity: TagSet,
}

impl LabelPair {
    pub fn new(secrecy: TagSet, integrity: TagSet) -> Self {
        Self { secrecy, integrity }
    }

    /// The overall labels of a collection: union of secrecy and union of
    /// integrity over every labelled member (empty collection → empty labels).
    pub fn overall<'a>(labels: impl IntoIterator<Item = &'a LabelPair>) -> LabelPair {
        let mut overall = LabelPair::default();
        for pair in labels {
            overall.secrecy.extend_from(&pair.secrecy);
            overall.integrity.extend_from(&pair.integrity);
        }
        overall
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(tags: &[&str]) -> TagSet {
        TagSet::from_strs(tags.iter().copied())
    }

    #[test]
    fn prints_sorted_with_single_spaces() {
        assert_eq!(set(&["b", "a", "c"]).to_string(), "[a b c]");
        assert_eq!(TagSet::new().to_string(), "[]");
    }

    #[test]
    fn serialises_as_sorted_array() {
        let json = serde_json::to_string(&set(&["z", "a"])).unwrap();
        assert_eq!(json, r#"["a","z"]"#);
        let back: TagSet = serde_json::from_str(r#"["q","p","q"]"#).unwrap();
        assert_eq!(back, set(&["p", "q"]));
    }

    #[test]
    fn trimmed_construction_drops_blanks() {
        assert_eq!(
            TagSet::from_trimmed([" a ", "", "  ", "b"]),
            set(&["a", "b"])
        );
    }

    #[test]
    fn no_prefix_matching() {
        let check = flow(
            LabelKind::Secrecy,
            &set(&["private:acme/web"]),
            &set(&["private:acme"]),
        );
        assert!(!check.ok);
        let check = flow(
            LabelKind::Secrecy,
            &set(&["private:acme/api"]),
            &set(&["private:acme/api*"]),
        );
        assert!(!check.ok);
    }

    #[test]
    fn overall_is_union_of_both_kinds() {
        let a = LabelPair::new(set(&["s1"]), set(&["i1", "i2"]));
        let b = LabelPair::new(set(&["s2"]), set(&["i2", "i3"]));
        let overall = LabelPair::overall([&a, &b]);
        assert_eq!(overall.secrecy, set(&["s1", "s2"]));
        assert_eq!(overall.integrity, set(&["i1", "i2", "i3"]));
        assert_eq!(LabelPair::overall([]), LabelPair::default());
    }
}
