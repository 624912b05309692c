//! Every test vector of spec difc.md §7, numbered as in the spec.

use guardway_difc::{
    AccessDecision, AgentLabels, AgentRegistry, ClientView, EnforcementMode, LabelKind, LabelView,
    Operation, PathLabels, ResponseDenial, ResponseLabels, coarse_check, effective_mode, evaluate,
    filter_items, filter_response, flow, integrity_level, label_response_items, labels_response,
    prepare_label_agent_policy, secrecy_level, taint_source, taints_agent, violation_text,
};
use serde_json::{Value, json};

use crate::{agent, item, item_labels, resource, set};

const STRICT: EnforcementMode = EnforcementMode::Strict;
const FILTER: EnforcementMode = EnforcementMode::Filter;
const PROPAGATE: EnforcementMode = EnforcementMode::Propagate;

fn eval(
    agent_labels: &guardway_difc::LabelPair,
    resource_labels: &guardway_difc::ResourceLabels,
    mode: EnforcementMode,
) -> guardway_difc::Evaluation {
    evaluate(
        agent_labels,
        LabelView::from(resource_labels),
        resource_labels.operation,
        mode,
    )
}

#[test]
fn v01_secrecy_flow() {
    let check = flow(LabelKind::Secrecy, &set(&["a", "b", "c"]), &set(&["a"]));
    assert!(!check.ok);
    assert_eq!(check.violating, set(&["b", "c"]));
    let check = flow(LabelKind::Secrecy, &set(&["tag1"]), &set(&["tag1", "tag2"]));
    assert!(check.ok);
    assert!(check.violating.is_empty());
}

#[test]
fn v02_integrity_flow() {
    let check = flow(LabelKind::Integrity, &set(&["t1"]), &set(&["t1", "t2"]));
    assert!(!check.ok);
    assert_eq!(check.violating, set(&["t2"]));
}

#[test]
fn v03_wildcards() {
    let wildcard = set(&["*"]);
    for tag in ["private:org/repo", "approved:org/repo"] {
        let p = set(&[tag]);
        assert!(flow(LabelKind::Secrecy, &p, &wildcard).ok, "{tag}");
        assert!(!flow(LabelKind::Secrecy, &wildcard, &p).ok, "{tag}");
        assert!(flow(LabelKind::Integrity, &wildcard, &p).ok, "{tag}");
        assert!(!flow(LabelKind::Integrity, &p, &wildcard).ok, "{tag}");
    }
}

#[test]
fn v04_read_integrity_denied() {
    let result = eval(
        &agent(&[], &["trusted", "verified"]),
        &resource("res", &[], &["trusted"], Operation::Read),
        STRICT,
    );
    assert_eq!(result.decision, AccessDecision::Deny);
    assert_eq!(result.integrity_to_drop, set(&["verified"]));
    assert!(result.secrecy_to_add.is_empty());
    assert_eq!(
        result.reason,
        "Resource 'res' has lower integrity than agent requires. The agent cannot read data with integrity below [verified]."
    );
}

#[test]
fn v05_read_secrecy_denied() {
    let result = eval(
        &agent(&["public"], &[]),
        &resource("res", &["public", "secret"], &[], Operation::Read),
        STRICT,
    );
    assert_eq!(result.decision, AccessDecision::Deny);
    assert_eq!(result.secrecy_to_add, set(&["secret"]));
    assert!(result.integrity_to_drop.is_empty());
    assert_eq!(
        result.reason,
        "Resource 'res' has secrecy requirements that agent doesn't meet. The agent is not authorized to access [secret]-scoped data."
    );
}

#[test]
fn v06_read_allowed() {
    let result = eval(
        &agent(&["public", "secret", "topsecret"], &[]),
        &resource("res", &["public", "secret"], &[], Operation::Read),
        STRICT,
    );
    assert_eq!(result.decision, AccessDecision::Allow);
    assert!(result.reason.is_empty());
}

#[test]
fn v07_write_secrecy_denied() {
    let result = eval(
        &agent(&["secret", "classified"], &[]),
        &resource("sink", &["secret"], &[], Operation::Write),
        STRICT,
    );
    assert_eq!(result.decision, AccessDecision::Deny);
    assert_eq!(result.secrecy_to_add, set(&["classified"]));
    assert_eq!(
        result.reason,
        "Agent carries [classified]-scoped data that cannot be written to 'sink' due to secrecy constraints. The target resource is not authorized to receive this sensitive data."
    );
}

#[test]
fn v08_write_denials() {
    let result = eval(
        &agent(&[], &["dev"]),
        &resource("prod", &[], &["dev", "production"], Operation::Write),
        STRICT,
    );
    assert_eq!(result.decision, AccessDecision::Deny);
    assert_eq!(result.integrity_to_drop, set(&["production"]));
    assert_eq!(
        result.reason,
        "Agent lacks required integrity to write to 'prod'. The agent's integrity level is insufficient; it needs [production] integrity."
    );
    let result = eval(
        &agent(&["internal"], &[]),
        &resource("r", &[], &[], Operation::Write),
        STRICT,
    );
    assert_eq!(result.decision, AccessDecision::Deny);
    assert_eq!(result.secrecy_to_add, set(&["internal"]));
    assert!(result.is_secrecy_violation());
}

#[test]
fn v09_read_write() {
    let none = agent(&[], &[]);
    type Tags<'a> = &'a [&'a str];
    let cases: [(Tags, Tags, Tags, Tags); 3] = [
        (&["private"], &[], &["private"], &[]),
        (&[], &["production"], &[], &["production"]),
        (&["topsecret"], &["verified"], &["topsecret"], &[]),
    ];
    for (secrecy, integrity, add, drop) in cases {
        for mode in [STRICT, FILTER] {
            let result = eval(
                &none,
                &resource("r", secrecy, integrity, Operation::ReadWrite),
                mode,
            );
            assert_eq!(
                result.decision,
                AccessDecision::Deny,
                "{secrecy:?} {integrity:?}"
            );
            assert_eq!(result.secrecy_to_add, set(add));
            assert_eq!(result.integrity_to_drop, set(drop));
        }
    }
}

#[test]
fn v10_propagate_reads() {
    let result = eval(
        &agent(&[], &[]),
        &resource("r", &["secret"], &[], Operation::Read),
        PROPAGATE,
    );
    assert_eq!(result.decision, AccessDecision::AllowWithPropagate);
    assert_eq!(result.secrecy_to_add, set(&["secret"]));
    assert!(result.integrity_to_drop.is_empty());
    assert_eq!(
        result.reason,
        "Read allowed with label propagation: adding secrecy tags [secret]"
    );

    let result = eval(
        &agent(&[], &["trusted", "verified"]),
        &resource("r", &[], &[], Operation::Read),
        PROPAGATE,
    );
    assert_eq!(result.decision, AccessDecision::AllowWithPropagate);
    assert_eq!(result.integrity_to_drop, set(&["trusted", "verified"]));
    assert_eq!(
        result.reason,
        "Read allowed with label propagation: dropping integrity tags [trusted verified]"
    );

    let result = eval(
        &agent(&["secret"], &[]),
        &resource("r", &["secret"], &[], Operation::Read),
        PROPAGATE,
    );
    assert_eq!(result.decision, AccessDecision::Allow);
}

#[test]
fn v11_propagate_writes_deny() {
    let result = eval(
        &agent(&["secret"], &[]),
        &resource("r", &[], &[], Operation::Write),
        PROPAGATE,
    );
    assert_eq!(result.decision, AccessDecision::Deny);
    let result = eval(
        &agent(&[], &[]),
        &resource("r", &[], &["production"], Operation::Write),
        PROPAGATE,
    );
    assert_eq!(result.decision, AccessDecision::Deny);
    // A read-write whose read needs propagation but whose write passes is plain allow.
    let result = eval(
        &agent(&[], &["t"]),
        &resource("r", &[], &[], Operation::ReadWrite),
        PROPAGATE,
    );
    assert_eq!(result.decision, AccessDecision::Allow);
}

#[test]
fn v12_coarse_check() {
    let none = agent(&[], &[]);
    let read = coarse_check(
        &none,
        &resource("r", &["secret"], &[], Operation::Read),
        STRICT,
    );
    assert!(!read.refused);
    assert_eq!(read.evaluation.decision, AccessDecision::Deny);
    let read_write = coarse_check(
        &none,
        &resource("r", &["secret"], &[], Operation::ReadWrite),
        STRICT,
    );
    assert!(read_write.refused);
    let write = coarse_check(
        &agent(&["secret"], &[]),
        &resource("r", &[], &[], Operation::Write),
        STRICT,
    );
    assert!(write.refused);
}

#[test]
fn v13_registry_taint() {
    let registry = AgentRegistry::new();
    registry.add_tags(
        "a1",
        &set(&["initial-secret"]),
        &set(&["trusted", "verified"]),
    );
    let source = taint_source(
        &resource("r", &["confidential"], &["verified"], Operation::Read),
        None,
    );
    let labels = registry.taint("a1", &source);
    assert_eq!(
        labels,
        agent(&["confidential", "initial-secret"], &["verified"])
    );

    registry.add_tags("a2", &set(&[]), &set(&["high-trust", "verified"]));
    let source = taint_source(&resource("r", &[], &[], Operation::Read), None);
    assert!(registry.taint("a2", &source).integrity.is_empty());
}

#[test]
fn v14_accumulated_reads_constrain_writes() {
    let registry = AgentRegistry::new();
    for secrecy in ["private:github/gh-aw", "private:github/internal-restricted"] {
        let read = resource("repo", &[secrecy], &[], Operation::Read);
        registry.taint("a", &taint_source(&read, None));
    }
    let labels = registry.get_or_create("a");
    let denied = eval(
        &labels,
        &resource("w", &["private:github/gh-aw"], &[], Operation::Write),
        STRICT,
    );
    assert_eq!(denied.decision, AccessDecision::Deny);
    assert_eq!(
        denied.secrecy_to_add,
        set(&["private:github/internal-restricted"])
    );
    let allowed = eval(
        &labels,
        &resource("w", &["*"], &[], Operation::Write),
        STRICT,
    );
    assert_eq!(allowed.decision, AccessDecision::Allow);
}

#[test]
fn v15_labels_merge_across_guards() {
    let registry = AgentRegistry::new();
    let server_a =
        AgentLabels::parse(br#"{"agent":{"secrecy":["tag-A"]},"difc_mode":"filter"}"#).unwrap();
    let server_b =
        AgentLabels::parse(br#"{"agent":{"secrecy":["tag-B"]},"difc_mode":"filter"}"#).unwrap();
    registry.apply_agent_labels("session", &server_a);
    let labels = registry.apply_agent_labels("session", &server_b);
    assert_eq!(labels.secrecy, set(&["tag-A", "tag-B"]));
}

#[test]
fn v16_difc_mode() {
    assert_eq!(effective_mode("", FILTER), Ok(FILTER));
    assert_eq!(effective_mode("filter", STRICT), Ok(FILTER));
    assert_eq!(effective_mode("Propagate", STRICT), Ok(PROPAGATE));
    let err = AgentLabels::parse(br#"{"difc_mode":"invalid-mode-xyz"}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid difc_mode from label_agent: unknown enforcement mode: invalid-mode-xyz (valid modes: strict, filter, propagate)"
    );
}

#[test]
fn v17_filter_write_collection() {
    let items = [
        item(json!(1), &[], &["trusted"]),
        item(json!(2), &[], &["trusted", "verified", "certified"]),
    ];
    let outcome = filter_items(
        &agent(&[], &["trusted", "verified"]),
        &items,
        Operation::Write,
        STRICT,
    );
    assert_eq!(outcome.accessible, vec![0]);
    assert_eq!(outcome.filtered.len(), 1);
    assert_eq!(outcome.filtered[0].index, 1);
}

#[test]
fn v18_filter_read_write_collection() {
    let items = [
        item(json!(1), &["internal"], &["trusted", "audited"]),
        item(json!(2), &["internal"], &["trusted"]),
    ];
    let outcome = filter_items(
        &agent(&["internal"], &["trusted"]),
        &items,
        Operation::ReadWrite,
        FILTER,
    );
    assert_eq!(outcome.accessible, vec![1]);
    assert_eq!(outcome.filtered[0].index, 0);
}

#[test]
fn v19_filtered_items_have_reasons() {
    let items = [item(json!({}), &[], &[])];
    let outcome = filter_items(
        &agent(&[], &["approved:org/repo"]),
        &items,
        Operation::Read,
        FILTER,
    );
    assert_eq!(outcome.filtered.len(), 1);
    assert!(!outcome.filtered[0].is_secrecy_violation());
    assert!(!outcome.filtered[0].evaluation.reason.is_empty());
}

fn v20_items() -> Vec<guardway_difc::LabeledItem> {
    vec![
        item(json!({"id": 1}), &[], &[]),
        item(json!({"id": 2}), &["private:restricted/repo"], &[]),
    ]
}

#[test]
fn v20_filter_and_convert_by_mode() {
    let items = v20_items();
    let none = agent(&[], &[]);
    let strict = filter_response(
        &none,
        &items,
        Operation::Read,
        STRICT,
        "list_issues",
        "agent-1",
    );
    assert_eq!(
        strict.view,
        ClientView::Denied(ResponseDenial::StrictBlocked {
            filtered: 1,
            total: 2,
            agent_id: "agent-1".into()
        })
    );
    let ClientView::Denied(denial) = &strict.view else {
        unreachable!()
    };
    assert_eq!(
        denial.to_string(),
        "DIFC policy violation: 1 of 2 items in response are not accessible to agent agent-1"
    );

    let filter = filter_response(
        &none,
        &items,
        Operation::Read,
        FILTER,
        "list_issues",
        "agent-1",
    );
    let ClientView::Result(result) = &filter.view else {
        panic!("expected result")
    };
    assert_eq!(result["content"][0]["text"], r#"[{"id":1}]"#);
    assert_eq!(result["isError"], false);
    assert_eq!(filter.outcome.filtered.len(), 1);

    let propagate = filter_response(
        &none,
        &items,
        Operation::Read,
        PROPAGATE,
        "list_issues",
        "agent-1",
    );
    let ClientView::Result(result) = &propagate.view else {
        panic!("expected result")
    };
    assert_eq!(result["content"][0]["text"], r#"[{"id":1},{"id":2}]"#);
    assert_eq!(result["content"].as_array().unwrap().len(), 1);
    assert!(propagate.outcome.filtered.is_empty());
}

fn path_labels(output: Value) -> PathLabels {
    match ResponseLabels::parse(output.to_string().as_bytes()).unwrap() {
        ResponseLabels::Paths(paths) => paths,
        other => panic!("expected path labels, got {other:?}"),
    }
}

#[test]
fn v21_root_array_paths() {
    let result = json!([{"n": 0}, {"n": 1}, {"n": 2}]);
    let labels = path_labels(json!({"labeled_paths": [
        {"path": "/0", "labels": {"description": "zero", "secrecy": ["s0"], "integrity": []}},
        {"path": "/1", "labels": {"description": "one", "secrecy": ["s1"], "integrity": []}},
        {"path": "/2", "labels": {"description": "two", "secrecy": ["s2"], "integrity": []}}
    ]}));
    let items = labels.resolve(&result).unwrap();
    assert_eq!(items.len(), 3);
    for (index, item) in items.iter().enumerate() {
        assert_eq!(item.data, json!({"n": index}));
        assert_eq!(item.labels.secrecy, set(&[format!("s{index}").as_str()]));
    }

    let labels = path_labels(json!({
        "labeled_paths": [{"path": "/1", "labels": {"description": "one", "secrecy": ["s1"], "integrity": []}}],
        "default_labels": {"description": "default", "secrecy": [], "integrity": ["none"]}
    }));
    let items = labels.resolve(&result).unwrap();
    assert_eq!(items[1].labels, item_labels("one", &["s1"], &[]));
    assert_eq!(items[0].labels, item_labels("default", &[], &["none"]));
    assert_eq!(items[2].labels, item_labels("default", &[], &["none"]));

    let unlabeled = path_labels(json!({"labeled_paths": []}))
        .resolve(&result)
        .unwrap();
    assert_eq!(unlabeled[0].labels, item_labels("unlabeled", &[], &[]));
}

#[test]
fn v22_single_object_is_one_item() {
    let result = json!({"id": 7, "title": "x"});
    let labels = path_labels(
        json!({"labeled_paths": [], "default_labels": {"description": "d", "secrecy": ["s"], "integrity": []}, "items_path": ""}),
    );
    let items = labels.resolve(&result).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].data, result);
    assert_eq!(items[0].labels, item_labels("d", &["s"], &[]));

    let wrapped = json!({"content": [{"type": "text", "text": "{\"id\":7}"}], "isError": false});
    let items = labels.resolve(&wrapped).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0].data, wrapped,
        "the original result, not the unwrapped text"
    );
}

#[test]
fn v23_mcp_wrapped_items() {
    let text = r#"{"total_count":2,"items":[{"id":1},{"id":2}]}"#;
    let result = json!({"content": [{"type": "text", "text": text}]});
    let labels = path_labels(
        json!({"labeled_paths": [{"path": "/items/1", "labels": {"secrecy": ["s"], "integrity": []}}], "items_path": "/items"}),
    );
    let items = labels.resolve(&result).unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].data, json!({"id": 1}));
    assert_eq!(items[1].data, json!({"id": 2}));
    assert_eq!(items[1].labels.secrecy, set(&["s"]));
    assert_eq!(items[0].labels.description, "unlabeled");
}

#[test]
fn v24_items_path_errors() {
    let prefix = "failed to apply path labels: failed to resolve path labels: ";
    let result = json!({"count": 3, "outer": [[1]], "list": [1, 2], "text": "x"});
    let cases = [
        (
            "/missing_key",
            r#"path "/missing_key" not found in response"#,
        ),
        (
            "/count",
            r#"items_path "/count" does not point to an array"#,
        ),
        ("/outer/5", "array index 5 out of bounds"),
        ("/outer/-1", "array index -1 out of bounds"),
        ("/list/x", r#"expected array index at "/list/x", got "x""#),
        (
            "/text/a",
            r#"cannot navigate path "/text/a": unexpected type at "a""#,
        ),
    ];
    for (items_path, message) in cases {
        let labels = path_labels(json!({"labeled_paths": [], "items_path": items_path}));
        let err = labels.resolve(&result).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{prefix}{message}"),
            "{items_path}"
        );
        let output = json!({"labeled_paths": [], "items_path": items_path}).to_string();
        let err = label_response_items(output.as_bytes(), &result).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("response labeling failed: response labeling failed: {prefix}{message}")
        );
    }
    let labels = path_labels(json!({"labeled_paths": [], "items_path": "/outer/0"}));
    assert_eq!(labels.resolve(&result).unwrap().len(), 1);
}

#[test]
fn v25_skips_non_matching_paths() {
    let result = json!({"items": [{"a": 1}, {"a": 2}], "other": [{"b": 1}]});
    let labels = path_labels(json!({
        "labeled_paths": [
            {"path": "/items/0", "labels": {"description": "explicit", "secrecy": ["explicit"], "integrity": []}},
            {"path": "/other/0", "labels": {"description": "other", "secrecy": ["other"], "integrity": []}}
        ],
        "default_labels": {"description": "default", "secrecy": ["default"], "integrity": []},
        "items_path": "/items"
    }));
    let items = labels.resolve(&result).unwrap();
    assert_eq!(items[0].labels.secrecy, set(&["explicit"]));
    assert_eq!(items[1].labels.secrecy, set(&["default"]));
}

fn write_sink(accept: &[&str]) -> guardway_difc::ResourceLabels {
    resource("write-sink (create_issue)", accept, &[], Operation::Write)
}

fn github_agent() -> guardway_difc::LabelPair {
    agent(
        &["private:github/gh-aw*"],
        &["none:github/gh-aw*", "approved:github/gh-aw*"],
    )
}

#[test]
fn v26_write_sink_accepts_matching_agent() {
    let result = eval(
        &github_agent(),
        &write_sink(&["private:github/gh-aw*"]),
        STRICT,
    );
    assert_eq!(result.decision, AccessDecision::Allow);
}

#[test]
fn v27_noop_guard_denies_labelled_agent() {
    let noop = resource("", &[], &[], Operation::ReadWrite);
    let check = coarse_check(&github_agent(), &noop, STRICT);
    assert!(check.refused);
    assert!(!check.evaluation.integrity_to_drop.is_empty());
    assert!(check.evaluation.secrecy_to_add.is_empty());
}

#[test]
fn v28_owner_wildcard_needs_bare_owner_accept() {
    let result = eval(
        &agent(&["private:myorg"], &[]),
        &write_sink(&["private:myorg/*"]),
        STRICT,
    );
    assert_eq!(result.decision, AccessDecision::Deny);
    assert_eq!(result.secrecy_to_add, set(&["private:myorg"]));
}

#[test]
fn v29_sink_visibility() {
    let public_sink = write_sink(&[]);
    let tainted = agent(&["private:github/secret-repo"], &[]);
    assert_eq!(
        eval(&tainted, &public_sink, STRICT).decision,
        AccessDecision::Deny
    );
    assert_eq!(
        eval(&agent(&[], &[]), &public_sink, STRICT).decision,
        AccessDecision::Allow
    );
    let private_sink = write_sink(&["*"]);
    assert_eq!(
        eval(&tainted, &private_sink, STRICT).decision,
        AccessDecision::Allow
    );
}

#[test]
fn v30_policy_payloads() {
    let err = prepare_label_agent_policy(
        json!({"policy": {"allow-only": {"repos": "all", "min-integrity": "none"}}}),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "gateway policy adapter is outdated: remove legacy envelope key policy before calling label_agent"
    );
    let legacy = json!({"allowonly": {"repos": ["octo/*"], "integrity": "approved"}});
    assert_eq!(prepare_label_agent_policy(legacy.clone()).unwrap(), legacy);
    let capital = json!({"allow-only": {"repos": "all", "min-integrity": "Approved"}});
    assert_eq!(
        prepare_label_agent_policy(capital.clone()).unwrap(),
        capital
    );
    let err =
        prepare_label_agent_policy(json!({"allow-only": {"repos": [], "min-integrity": "none"}}))
            .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid repos value: expected all, public, or non-empty array of scoped strings"
    );
    let err = prepare_label_agent_policy(
        json!({"allow-only": {"repos": "all", "min-integrity": "none"}, "trusted-bots": []}),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid trusted-bots value: must be a non-empty array when present"
    );
    let err = prepare_label_agent_policy(
        json!({"allow-only": {"repos": "all", "min-integrity": "none", "extra": 1}}),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid guard policy transport shape: unexpected allow-only key "extra""#
    );
}

#[test]
fn v31_refusal_labels() {
    let payload = prepare_label_agent_policy(json!({"allow-only": {
        "repos": "all", "min-integrity": "none", "refusal-labels": "unsafe, blocked\nneeds-review"
    }}))
    .unwrap();
    assert_eq!(
        payload["allow-only"]["refusal-labels"],
        json!(["unsafe", "blocked", "needs-review"])
    );
    let err = prepare_label_agent_policy(json!({"allow-only": {
        "repos": "all", "min-integrity": "none", "refusal-labels": "  ,  "
    }}))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid refusal-labels value: must include at least one non-empty label"
    );
}

#[test]
fn v32_label_agent_responses() {
    let cases = [
        (
            r#"{"success":false,"error":"x"}"#,
            "label_agent rejected policy: x",
        ),
        (r#"{"error":"y"}"#, "label_agent returned error: y"),
    ];
    for (output, message) in cases {
        assert_eq!(
            AgentLabels::parse(output.as_bytes())
                .unwrap_err()
                .to_string(),
            message
        );
    }
    let err = AgentLabels::parse(br#"{"difc_mode":42}"#)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("failed to decode label_agent response: "),
        "{err}"
    );
}

#[test]
fn v33_level_formatting() {
    assert_eq!(integrity_level(&set(&["merged:org/repo"])), "\"merged\"");
    assert_eq!(
        integrity_level(&set(&["approved", "unapproved"])),
        "\"approved\""
    );
    assert_eq!(integrity_level(&set(&["custom-tag"])), "[custom-tag]");
    assert_eq!(
        secrecy_level(&set(&["private:org", "private:org/repo"])),
        "private (org/repo)"
    );
    assert_eq!(secrecy_level(&set(&["private:"])), "[private:]");
}

#[test]
fn v34_read_not_blocked_without_response_labels() {
    let agent_labels = agent(&[], &[]);
    let read = resource("issue", &["private:some/repo"], &[], Operation::Read);
    let check = coarse_check(&agent_labels, &read, FILTER);
    assert_eq!(check.evaluation.decision, AccessDecision::Deny);
    assert!(!check.refused, "a read is never refused before the backend");
    assert!(labels_response(Operation::Read, FILTER));
    let backend = json!({"content": [{"type": "text", "text": "secret"}]});
    assert_eq!(
        label_response_items(b"", &backend).unwrap(),
        None,
        "returned unmodified"
    );
    assert_eq!(label_response_items(b"{}", &backend).unwrap(), None);
    assert!(!taints_agent(Operation::Read, FILTER));
}

#[test]
fn v35_filter_mode_single_and_list_tools() {
    let items = vec![guardway_difc::LabeledItem {
        data: json!({"number": 2}),
        labels: item_labels("issue acme/api#2", &["private:acme/api"], &[]),
    }];
    let none = agent(&[], &[]);
    let single = filter_response(
        &none,
        &items,
        Operation::Read,
        FILTER,
        "github___issue_read",
        "a",
    );
    let ClientView::Denied(denial) = &single.view else {
        panic!("expected denial")
    };
    assert_eq!(
        denial.to_string(),
        "[Filtered] issue acme/api#2 exists but is not accessible \u{2014} filtered by secrecy policy (Resource 'issue acme/api#2' has secrecy requirements that agent doesn't meet. The agent is not authorized to access private (acme/api)-scoped data.)"
    );

    let list = filter_response(&none, &items, Operation::Read, FILTER, "list_issues", "a");
    let ClientView::Result(result) = &list.view else {
        panic!("expected result")
    };
    assert_eq!(result["content"][0]["text"], "[]");
    assert!(
        result["content"][1]["text"]
            .as_str()
            .unwrap()
            .starts_with("[Filtered] 1 item(s)")
    );

    let empty = filter_response(&none, &[], Operation::Read, FILTER, "list_issues", "a");
    assert_eq!(
        empty.view,
        ClientView::Result(json!({"content": [{"type": "text", "text": "[]"}], "isError": false}))
    );
}

#[test]
fn v36_write_blocked_before_backend() {
    let none = agent(&[], &[]);
    let write = resource(
        "issue some/repo",
        &[],
        &["approved:some/repo"],
        Operation::Write,
    );
    let check = coarse_check(&none, &write, FILTER);
    assert!(check.refused);
    assert!(!labels_response(Operation::Write, FILTER));
    let text = violation_text(&check.evaluation, &none, LabelView::from(&write));
    assert_eq!(
        text,
        "DIFC Violation: Agent lacks required integrity to write to 'issue some/repo'. The agent's integrity level is insufficient; it needs \"approved\" integrity.\n\n\
         \nRequired Action: Drop integrity tags [approved:some/repo]\n\n\
         Implications of dropping integrity tags:\n\
         \x20 - Agent will no longer be able to write to high-integrity resources\n\
         \x20 - Specifically, agent cannot write to resources requiring tags: [approved:some/repo]\n\
         \x20 - This action acknowledges that agent has been influenced by lower-integrity data\n\
         \x20 - Agent's outputs will be considered less trustworthy\n\
         \nCurrent Agent Labels:\n  Secrecy: []\n  Integrity: []\n\
         \nResource Requirements:\n  Secrecy: []\n  Integrity: [approved:some/repo]\n"
    );
}

#[test]
fn v36_secrecy_denial_text() {
    let tainted = agent(&["private:a/b"], &["x"]);
    let write = resource("sink", &[], &[], Operation::Write);
    let check = coarse_check(&tainted, &write, STRICT);
    let text = violation_text(&check.evaluation, &tainted, LabelView::from(&write));
    assert_eq!(
        text,
        "DIFC Violation: Agent carries private (a/b)-scoped data that cannot be written to 'sink' due to secrecy constraints. The target resource is not authorized to receive this sensitive data.\n\n\
         Required Action: Add secrecy tags [private:a/b]\n\n\
         Implications of adding secrecy tags:\n\
         \x20 - Agent will be restricted from writing to resources that lack these tags\n\
         \x20 - This includes public resources (e.g., public repositories, public internet)\n\
         \x20 - Agent will be marked as handling sensitive information\n\
         \x20 - Future writes must target resources with tags: [private:a/b]\n\
         \nCurrent Agent Labels:\n  Secrecy: [private:a/b]\n  Integrity: [x]\n\
         \nResource Requirements:\n  Secrecy: []\n  Integrity: []\n"
    );
}

#[test]
fn v37_propagate_read_taints_agent() {
    let registry = AgentRegistry::new();
    let labels = registry.get_or_create("s");
    let read = resource("repo", &["private:org/repo"], &[], Operation::Read);
    let check = coarse_check(&labels, &read, PROPAGATE);
    assert!(!check.refused);
    assert_eq!(
        check.evaluation.decision,
        AccessDecision::AllowWithPropagate
    );
    assert!(taints_agent(Operation::Read, PROPAGATE));
    let tainted = registry.taint("s", &taint_source(&read, None));
    assert_eq!(tainted.secrecy, set(&["private:org/repo"]));
}

#[test]
fn spec_filter_example_exact_result() {
    let backend = json!({"content": [{"type": "text", "text": "[{\"id\":1},{\"id\":2}]"}]});
    let output = json!({"labeled_paths": [{"path": "/1", "labels": {"description": "issue acme/api#2", "secrecy": ["private:acme/api"], "integrity": []}}]});
    let items = label_response_items(output.to_string().as_bytes(), &backend)
        .unwrap()
        .unwrap();
    let response = filter_response(
        &agent(&[], &[]),
        &items,
        Operation::Read,
        FILTER,
        "list_issues",
        "a",
    );
    assert_eq!(
        response.view,
        ClientView::Result(json!({"content": [{"type": "text", "text": "[{\"id\":1}]"},
          {"type": "text", "text": "[Filtered] 1 item(s) in this response were removed by secrecy policy and are not shown: issue acme/api#2 (Resource 'issue acme/api#2' has secrecy requirements that agent doesn't meet. The agent is not authorized to access private (acme/api)-scoped data.)."}],
         "isError": false}))
    );
}

#[test]
fn notice_policy_names_and_detail_limit() {
    let none = agent(&[], &["need"]);
    // Integrity-only failures: read of items without the agent's integrity tag.
    let items: Vec<_> = (0..6)
        .map(|index| guardway_difc::LabeledItem {
            data: json!(index),
            labels: item_labels(&format!("item {index}"), &[], &[]),
        })
        .collect();
    let outcome = filter_items(&none, &items, Operation::Read, FILTER);
    assert_eq!(outcome.policy(), guardway_difc::FilterPolicy::Integrity);
    assert_eq!(
        outcome.notice(&items),
        "[Filtered] 6 item(s) in this response were removed by integrity policy and are not shown."
    );
    let mixed = vec![
        guardway_difc::LabeledItem {
            data: json!(1),
            labels: item_labels("", &["s"], &["need"]),
        },
        guardway_difc::LabeledItem {
            data: json!(2),
            labels: item_labels("two", &[], &[]),
        },
    ];
    let outcome = filter_items(&none, &mixed, Operation::Read, FILTER);
    assert_eq!(outcome.policy(), guardway_difc::FilterPolicy::Access);
    let notice = outcome.notice(&mixed);
    assert!(notice.starts_with("[Filtered] 2 item(s) in this response were removed by access policy and are not shown: Resource '' has secrecy"), "{notice}");
    assert!(
        notice.contains("; two (Resource 'two' has lower integrity"),
        "{notice}"
    );

    let single = filter_response(
        &none,
        &mixed[1..],
        Operation::Read,
        FILTER,
        "get_thing",
        "a",
    );
    let ClientView::Denied(denial) = single.view else {
        panic!("expected denial")
    };
    assert!(denial.to_string().starts_with(
        "[Filtered] two exists but is not accessible \u{2014} filtered by integrity policy ("
    ));
    let unnamed = ResponseDenial::SingleItem {
        description: String::new(),
        policy: guardway_difc::FilterPolicy::Secrecy,
        reason: String::new(),
    };
    assert_eq!(
        unnamed.to_string(),
        "[Filtered] resource exists but is not accessible \u{2014} filtered by secrecy policy"
    );
}

#[test]
fn legacy_items_and_taint_over_all_items() {
    let output = br#"{"items":[{"data":{"id":1},"labels":{"description":"a","secrecy":["s1"],"integrity":["i1","i2"]}},
                              {"data":{"id":2},"labels":{"description":"b","secrecy":["s2"],"integrity":["i2"]}}]}"#;
    let items = label_response_items(output, &json!({})).unwrap().unwrap();
    assert_eq!(items.len(), 2);
    let read = resource("r", &[], &[], Operation::Read);
    let source = taint_source(&read, Some(&items));
    assert_eq!(source.secrecy, set(&["s1", "s2"]));
    assert_eq!(
        source.integrity,
        set(&["i1", "i2"]),
        "union of item integrity"
    );
    let empty = taint_source(&read, Some(&[]));
    assert_eq!(
        empty,
        agent(&[], &[]),
        "an empty labelled collection wipes integrity"
    );
}
