//! Property tests: the join/meet laws, monotonicity of allowed flows, and filtering never
//! letting through an item the agent may not read.

use guardway_difc::{
    AccessDecision, ClientView, EnforcementMode, LabelKind, LabelPair, LabelView, LabeledItem,
    Operation, TagSet, evaluate, filter_response, flow,
};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::item_labels;

fn tag_set() -> impl Strategy<Value = TagSet> {
    prop::collection::btree_set(
        prop::sample::select(vec!["a", "b", "c", "d", "e", "*"]),
        0..5,
    )
    .prop_map(|tags| tags.into_iter().map(str::to_owned).collect())
}

fn label_pair() -> impl Strategy<Value = LabelPair> {
    (tag_set(), tag_set()).prop_map(|(secrecy, integrity)| LabelPair::new(secrecy, integrity))
}

fn operation() -> impl Strategy<Value = Operation> {
    prop::sample::select(vec![
        Operation::Read,
        Operation::Write,
        Operation::ReadWrite,
    ])
}

fn mode() -> impl Strategy<Value = EnforcementMode> {
    prop::sample::select(vec![
        EnforcementMode::Strict,
        EnforcementMode::Filter,
        EnforcementMode::Propagate,
    ])
}

fn subset_of(set: TagSet) -> impl Strategy<Value = TagSet> {
    let tags: Vec<String> = set.iter().map(str::to_owned).collect();
    prop::sample::subsequence(tags.clone(), 0..=tags.len())
        .prop_map(|tags| tags.into_iter().collect())
}

fn view<'a>(description: &'a str, labels: &'a LabelPair) -> LabelView<'a> {
    LabelView {
        description,
        secrecy: &labels.secrecy,
        integrity: &labels.integrity,
    }
}

proptest! {
    #[test]
    fn join_and_meet_are_commutative(a in tag_set(), b in tag_set()) {
        prop_assert_eq!(a.union(&b), b.union(&a));
        prop_assert_eq!(a.intersection(&b), b.intersection(&a));
    }

    #[test]
    fn join_and_meet_are_associative(a in tag_set(), b in tag_set(), c in tag_set()) {
        prop_assert_eq!(a.union(&b).union(&c), a.union(&b.union(&c)));
        prop_assert_eq!(a.intersection(&b).intersection(&c), a.intersection(&b.intersection(&c)));
    }

    #[test]
    fn join_and_meet_are_idempotent(a in tag_set()) {
        prop_assert_eq!(a.union(&a), a.clone());
        prop_assert_eq!(a.intersection(&a), a);
    }

    #[test]
    fn absorption(a in tag_set(), b in tag_set()) {
        prop_assert_eq!(a.union(&a.intersection(&b)), a.clone());
        prop_assert_eq!(a.intersection(&a.union(&b)), a);
    }

    #[test]
    fn flow_ok_iff_no_violating_tags(kind in prop::sample::select(vec![LabelKind::Secrecy, LabelKind::Integrity]),
                                     src in tag_set(), dst in tag_set()) {
        let check = flow(kind, &src, &dst);
        prop_assert_eq!(check.ok, check.violating.is_empty());
    }

    #[test]
    fn secrecy_flow_survives_less_secret_source(src in tag_set(), dst in tag_set(), seed in tag_set()) {
        let less_secret = src.intersection(&seed);
        if flow(LabelKind::Secrecy, &src, &dst).ok {
            prop_assert!(flow(LabelKind::Secrecy, &less_secret, &dst).ok);
        }
    }

    #[test]
    fn integrity_flow_survives_more_trusted_source(src in tag_set(), dst in tag_set(), extra in tag_set()) {
        let more_trusted = src.union(&extra);
        if flow(LabelKind::Integrity, &src, &dst).ok {
            prop_assert!(flow(LabelKind::Integrity, &more_trusted, &dst).ok);
        }
    }

    #[test]
    fn allowed_read_stays_allowed_for_less_secret_more_trusted_resource(
        agent in label_pair(), resource in label_pair(), extra in tag_set(), mode in mode(),
        keep in tag_set(),
    ) {
        let safer = LabelPair::new(resource.secrecy.intersection(&keep), resource.integrity.union(&extra));
        let before = evaluate(&agent, view("r", &resource), Operation::Read, mode);
        let after = evaluate(&agent, view("r", &safer), Operation::Read, mode);
        if before.decision == AccessDecision::Allow {
            prop_assert_eq!(after.decision, AccessDecision::Allow);
        }
        if before.is_allowed() {
            prop_assert!(after.is_allowed());
        }
    }

    #[test]
    fn allowed_write_stays_allowed_for_less_secret_more_trusted_agent(
        agent in label_pair(), resource in label_pair(), extra in tag_set(), mode in mode(),
        keep in tag_set(),
    ) {
        let safer = LabelPair::new(agent.secrecy.intersection(&keep), agent.integrity.union(&extra));
        let before = evaluate(&agent, view("r", &resource), Operation::Write, mode);
        if before.is_allowed() {
            prop_assert!(evaluate(&safer, view("r", &resource), Operation::Write, mode).is_allowed());
        }
    }

    #[test]
    fn denial_fills_exactly_one_list(agent in label_pair(), resource in label_pair(), operation in operation(),
                                     mode in mode()) {
        let result = evaluate(&agent, view("r", &resource), operation, mode);
        if result.decision == AccessDecision::Deny {
            prop_assert!(result.secrecy_to_add.is_empty() != result.integrity_to_drop.is_empty());
            prop_assert!(!result.reason.is_empty());
        }
    }

    #[test]
    fn overall_labels_are_unions(items in prop::collection::vec(label_pair(), 0..8)) {
        let overall = LabelPair::overall(items.iter());
        for pair in &items {
            prop_assert!(pair.secrecy.is_subset(&overall.secrecy));
            prop_assert!(pair.integrity.is_subset(&overall.integrity));
        }
        let union_size: usize = items.iter().flat_map(|pair| pair.secrecy.iter()).collect::<std::collections::BTreeSet<_>>().len();
        prop_assert_eq!(overall.secrecy.len(), union_size);
    }

    #[test]
    fn taint_only_raises_secrecy_and_lowers_integrity(agent in label_pair(), source in label_pair()) {
        let mut tainted = agent.clone();
        tainted.taint(&source);
        prop_assert!(agent.secrecy.is_subset(&tainted.secrecy));
        prop_assert!(source.secrecy.is_subset(&tainted.secrecy));
        prop_assert!(tainted.integrity.is_subset(&agent.integrity));
        prop_assert!(tainted.integrity.is_subset(&source.integrity));
    }

    #[test]
    fn subset_subsets_flow(src in tag_set().prop_flat_map(|set| (Just(set.clone()), subset_of(set)))) {
        let (set, sub) = src;
        prop_assert!(flow(LabelKind::Secrecy, &sub, &set).ok);
        prop_assert!(flow(LabelKind::Integrity, &set, &sub).ok);
    }

    #[test]
    fn filtering_never_returns_an_unreadable_item(
        agent in label_pair(),
        labels in prop::collection::vec(label_pair(), 0..12),
        mode in prop::sample::select(vec![EnforcementMode::Strict, EnforcementMode::Filter]),
        operation in prop::sample::select(vec![Operation::Read, Operation::ReadWrite]),
        tool in prop::sample::select(vec!["list_issues", "get_issue", "srv___search_code"]),
    ) {
        let items: Vec<LabeledItem> = labels
            .iter()
            .enumerate()
            .map(|(index, pair)| LabeledItem {
                data: json!({"id": index, "body": "<b>&"}),
                labels: item_labels(&format!("item {index}"), &[], &[]),
            }.with_labels(pair))
            .collect();
        let response = filter_response(&agent, &items, operation, mode, tool, "agent");
        prop_assert_eq!(response.outcome.accessible.len() + response.outcome.filtered.len(), items.len());
        for &index in &response.outcome.accessible {
            let readable = evaluate(&agent, view("", &labels[index]), Operation::Read, EnforcementMode::Strict);
            prop_assert!(readable.is_allowed(), "item {} returned but not readable", index);
        }
        if let ClientView::Result(result) = &response.view {
            let text = result["content"][0]["text"].as_str().unwrap_or_default();
            let returned: Vec<Value> = serde_json::from_str(text).unwrap_or_default();
            let expected: Vec<Value> = response.outcome.accessible.iter().map(|&index| items[index].data.clone()).collect();
            prop_assert_eq!(returned, expected);
            prop_assert!(!text.contains('<') && !text.contains('&'));
        }
    }
}

trait WithLabels {
    fn with_labels(self, pair: &LabelPair) -> Self;
}

impl WithLabels for LabeledItem {
    fn with_labels(mut self, pair: &LabelPair) -> Self {
        self.labels.secrecy = pair.secrecy.clone();
        self.labels.integrity = pair.integrity.clone();
        self
    }
}

fn exact_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-(1_i64 << 53)..=(1_i64 << 53)).prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        "[<>&\"\\\\\u{2028}\u{2029}\u{2027}\u{1}\n a€]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..5)
                .prop_map(|entries| Value::Object(entries.into_iter().rev().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn reference_json_round_trips_and_escapes_html(value in exact_json()) {
        let text = guardway_difc::to_reference_json(&value);
        let parsed: Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&parsed, &value);
        let raw_html = text.contains(['<', '>', '&', '\u{2028}', '\u{2029}']);
        prop_assert!(!raw_html, "unescaped character in {}", text);
        // Keys come out sorted: re-encoding the parsed value gives the same text.
        prop_assert_eq!(guardway_difc::to_reference_json(&parsed), text);
    }
}
