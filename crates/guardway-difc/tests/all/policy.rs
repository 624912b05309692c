//! Guard-policy validation: random JSON never panics the validator or the guard-output parsers,
//! and every invalid case of spec difc.md §5.2/§5.3 yields its own message.

use guardway_difc::{
    AgentLabels, PolicyError, ResourceLabels, ResponseLabels, is_valid_repo_scope,
    label_response_items, parse_policy_str, parse_policy_value, prepare_label_agent_policy,
    validate_label_agent_policy,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const SHAPE: &str = r#"invalid guard policy transport shape: expected {"allow-only":{"repos":...,"min-integrity":...}}"#;

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "all", " Public ", "none", "approved", "octo/*", "octo/api", "a,b\nc", " ", ""
        ])
        .prop_map(|text| Value::String(text.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "allow-only",
            "allowonly",
            "trusted-bots",
            "policy",
            "repos",
            "min-integrity",
            "integrity",
            "blocked-users",
            "approval-labels",
            "trusted-users",
            "endorsement-reactions",
            "disapproval-reactions",
            "refusal-labels",
            "disapproval-integrity",
            "endorser-min-integrity",
            "agent",
            "secrecy",
            "difc_mode",
            "labeled_paths",
            "items",
            "items_path",
            "path",
            "labels",
            "default_labels",
            "resource",
            "operation",
            "content",
            "text",
            "success",
            "error",
        ])
        .prop_map(str::to_owned),
        "[a-z-]{1,8}",
    ]
}

/// Policies shaped like the real thing, with random values in every slot.
fn policy_like() -> impl Strategy<Value = Value> {
    let allow_only = prop::collection::vec((key(), arbitrary_json()), 0..6).prop_map(|entries| {
        let mut object: Map<String, Value> = entries.into_iter().collect();
        object.entry("repos").or_insert_with(|| json!("all"));
        object
            .entry("min-integrity")
            .or_insert_with(|| json!("none"));
        Value::Object(object)
    });
    (allow_only, prop::option::of(arbitrary_json())).prop_map(|(allow_only, bots)| {
        let mut object = Map::new();
        object.insert("allow-only".into(), allow_only);
        if let Some(bots) = bots {
            object.insert("trusted-bots".into(), bots);
        }
        Value::Object(object)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn validator_never_panics_on_arbitrary_json(policy in arbitrary_json()) {
        let _ = prepare_label_agent_policy(policy.clone());
        let _ = validate_label_agent_policy(policy.clone());
        if let Ok(text) = serde_json::to_string(&policy) {
            let _ = parse_policy_str(&text);
        }
    }

    #[test]
    fn valid_payloads_revalidate_unchanged(policy in policy_like()) {
        if let Ok(payload) = validate_label_agent_policy(policy) {
            prop_assert_eq!(validate_label_agent_policy(payload.clone()), Ok(payload));
        }
    }

    #[test]
    fn guard_output_parsers_never_panic(value in arbitrary_json(), result in arbitrary_json()) {
        let bytes = value.to_string().into_bytes();
        let _ = AgentLabels::parse(&bytes);
        let _ = ResourceLabels::parse(&bytes);
        let _ = ResponseLabels::parse(&bytes);
        let _ = label_response_items(&bytes, &result);
    }

    #[test]
    fn path_resolution_never_panics(
        items_path in prop::sample::select(vec!["", "/", "/items", "items", "/items/0", "/a~1b", "//x", "/items/-1", "/0"]),
        paths in prop::collection::vec(prop::sample::select(vec!["/items/0", "/0", "0/x", "", "/", "/items/99999999999999999999", "/items/+1", "/items"]), 0..4),
        result in arbitrary_json(),
    ) {
        let output = json!({
            "labeled_paths": paths.iter().map(|path| json!({"path": path, "labels": {"secrecy": ["s"]}})).collect::<Vec<_>>(),
            "items_path": items_path,
        });
        let _ = label_response_items(output.to_string().as_bytes(), &result);
        let wrapped = json!({"content": [{"type": "text", "text": result.to_string()}]});
        let _ = label_response_items(output.to_string().as_bytes(), &wrapped);
    }

    #[test]
    fn guard_output_parsers_never_panic_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = AgentLabels::parse(&bytes);
        let _ = ResourceLabels::parse(&bytes);
        let _ = ResponseLabels::parse(&bytes);
    }
}

fn base(extra: Value) -> Value {
    let mut allow_only = json!({"repos": "all", "min-integrity": "none"});
    if let (Value::Object(target), Value::Object(extra)) = (&mut allow_only, extra) {
        target.extend(extra);
    }
    json!({"allow-only": allow_only})
}

fn message(policy: Value) -> String {
    prepare_label_agent_policy(policy).unwrap_err().to_string()
}

#[test]
fn string_policy_parse_step() {
    assert_eq!(
        parse_policy_value(Value::Null).unwrap_err(),
        PolicyError::Required
    );
    assert_eq!(message(Value::Null), "policy is required");
    assert_eq!(message(json!("   ")), "policy string is empty");
    assert!(message(json!("{nope")).starts_with("policy string is not valid JSON object: "));
    assert_eq!(
        message(json!("[1]")),
        "policy JSON must decode to an object"
    );
    assert_eq!(
        message(json!("null")),
        "policy JSON must decode to an object"
    );
    let parsed = prepare_label_agent_policy(json!(
        r#" {"allow-only":{"repos":"all","min-integrity":"none"}} "#
    ))
    .unwrap();
    assert_eq!(parsed, base(json!({})));
}

#[test]
fn transport_shape_rules_in_order() {
    let cases = [
        (Value::Null, SHAPE.to_owned()),
        (json!({"policy": {"allow-only": {}}}), "gateway policy adapter is outdated: remove legacy envelope key policy before calling label_agent".to_owned()),
        (json!({"policy": 1, "zzz": 2}), "gateway policy adapter is outdated: remove legacy envelope key policy before calling label_agent".to_owned()),
        (json!([1]), "failed to decode label_agent policy payload: expected a JSON object, got array".to_owned()),
        (json!(5), "failed to decode label_agent policy payload: expected a JSON object, got number".to_owned()),
        (json!({"write-sink": {}}), "label_agent policy must use top-level allow-only object (received policy.allow-only)".to_owned()),
        (json!({"allow-only": {}, "zeta": 1, "beta": 2}), r#"invalid guard policy transport shape: unexpected key "beta""#.to_owned()),
        (json!({"allow-only": "all"}), SHAPE.to_owned()),
        (json!({"allow-only": null}), SHAPE.to_owned()),
        (json!({"allow-only": {"repos": "all"}}), "invalid guard policy transport shape: missing required fields repos and/or min-integrity in allow-only object".to_owned()),
        (json!({"allow-only": {"min-integrity": "none"}}), "invalid guard policy transport shape: missing required fields repos and/or min-integrity in allow-only object".to_owned()),
        (base(json!({"zz": 1, "tool-call-limits": {}})), r#"invalid guard policy transport shape: unexpected allow-only key "tool-call-limits""#.to_owned()),
        (base(json!({"promotion-label": "x"})), r#"invalid guard policy transport shape: unexpected allow-only key "promotion-label""#.to_owned()),
    ];
    for (policy, expected) in cases {
        let got = validate_label_agent_policy(policy.clone())
            .unwrap_err()
            .to_string();
        assert_eq!(got, expected, "{policy}");
    }
}

#[test]
fn allow_only_wins_over_legacy_key() {
    // `allow-only` is validated; `allowonly` beside it is tolerated and not checked.
    let policy = json!({"allow-only": {"repos": "all", "min-integrity": "none"}, "allowonly": 1});
    assert!(validate_label_agent_policy(policy).is_ok());
    let policy =
        json!({"allow-only": {"repos": "all", "min-integrity": "nope", "integrity": "none"}});
    assert_eq!(
        message(policy),
        "min-integrity must be one of: none, unapproved, approved, merged"
    );
    let policy = json!({"allowonly": {"repos": "all", "integrity": 3}});
    assert_eq!(
        message(policy),
        "integrity must be one of: none, unapproved, approved, merged"
    );
}

#[test]
fn repos_rule() {
    for ok in [
        json!("all"),
        json!(" PUBLIC "),
        json!(["octo/*"]),
        json!([" octo/api ", "octo/web-*", "a_b/c-d"]),
    ] {
        assert!(
            prepare_label_agent_policy(base(json!({"repos": ok.clone()}))).is_ok(),
            "{ok}"
        );
    }
    for bad in [
        json!("some"),
        json!([]),
        json!(null),
        json!(3),
        json!(["octo/api", "octo/api"]),
        json!([" octo/api", "octo/api "]),
        json!([1]),
        json!(["Owner/repo"]),
        json!(["owner/repo.name"]),
        json!(["owner/"]),
        json!(["owner/repo/x"]),
        json!(["owner/**"]),
        json!(["owner/re*po"]),
        json!(["owner/*p"]),
        json!(["/repo"]),
        json!(["owner"]),
        json!(["all"]),
        json!([format!("{}/r", "o".repeat(40))]),
        json!([format!("o/{}", "r".repeat(101))]),
    ] {
        assert_eq!(
            message(base(json!({"repos": bad.clone()}))),
            "invalid repos value: expected all, public, or non-empty array of scoped strings",
            "{bad}"
        );
    }
    assert!(is_valid_repo_scope(&format!(
        "{}/{}",
        "o".repeat(39),
        "r".repeat(100)
    )));
    assert!(is_valid_repo_scope(&format!("o/{}*", "r".repeat(100))));
}

#[test]
fn integrity_rules() {
    for key in [
        "min-integrity",
        "disapproval-integrity",
        "endorser-min-integrity",
    ] {
        for ok in ["none", " Unapproved ", "APPROVED", "merged"] {
            assert!(
                prepare_label_agent_policy(base(json!({key: ok}))).is_ok(),
                "{key} {ok}"
            );
        }
        for bad in [
            json!("trusted"),
            json!(""),
            json!(1),
            json!(null),
            json!(["none"]),
        ] {
            assert_eq!(
                message(base(json!({key: bad}))),
                format!("{key} must be one of: none, unapproved, approved, merged")
            );
        }
    }
}

#[test]
fn string_array_rules() {
    for key in [
        "blocked-users",
        "approval-labels",
        "trusted-users",
        "endorsement-reactions",
        "disapproval-reactions",
    ] {
        assert!(
            prepare_label_agent_policy(base(json!({key: []}))).is_ok(),
            "{key}"
        );
        assert!(
            prepare_label_agent_policy(base(json!({key: ["x", "y"]}))).is_ok(),
            "{key}"
        );
        assert_eq!(
            message(base(json!({key: "x"}))),
            format!("invalid {key} value: expected array of strings")
        );
        assert_eq!(
            message(base(json!({key: {}}))),
            format!("invalid {key} value: expected array of strings")
        );
        for bad in [json!([" "]), json!(["x", 1]), json!([null])] {
            assert_eq!(
                message(base(json!({key: bad}))),
                format!("invalid {key} value: each entry must be a non-empty string")
            );
        }
    }
}

#[test]
fn refusal_labels_rule() {
    let payload =
        prepare_label_agent_policy(base(json!({"refusal-labels": [" a ", "b"]}))).unwrap();
    assert_eq!(payload["allow-only"]["refusal-labels"], json!(["a", "b"]));
    let payload =
        prepare_label_agent_policy(base(json!({"refusal-labels": ",x,,\n y ,"}))).unwrap();
    assert_eq!(payload["allow-only"]["refusal-labels"], json!(["x", "y"]));
    assert_eq!(
        message(base(json!({"refusal-labels": 1}))),
        "invalid refusal-labels value: expected array of strings or comma/newline-delimited string"
    );
    assert_eq!(
        message(base(json!({"refusal-labels": ["", "x"]}))),
        "invalid refusal-labels value: each entry must be a non-empty string"
    );
    for blank in ["", ",,", "\n", "  ,  "] {
        assert_eq!(
            message(base(json!({"refusal-labels": blank}))),
            "invalid refusal-labels value: must include at least one non-empty label"
        );
    }
}

#[test]
fn trusted_bots_rule() {
    let with_bots = |bots: Value| {
        let mut policy = base(json!({}));
        policy["trusted-bots"] = bots;
        policy
    };
    assert!(prepare_label_agent_policy(with_bots(json!(["dependabot[bot]"]))).is_ok());
    assert_eq!(
        message(with_bots(json!("bot"))),
        "invalid trusted-bots value: expected non-empty array of strings"
    );
    assert_eq!(
        message(with_bots(json!(null))),
        "invalid trusted-bots value: expected non-empty array of strings"
    );
    assert_eq!(
        message(with_bots(json!([]))),
        "invalid trusted-bots value: must be a non-empty array when present"
    );
    assert_eq!(
        message(with_bots(json!(["ok", " "]))),
        "invalid trusted-bots value: each entry must be a non-empty string"
    );
}

#[test]
fn first_failure_in_table_order() {
    // repos is checked before min-integrity, and blocked-users before refusal-labels.
    let policy = base(json!({"repos": [], "min-integrity": "bad"}));
    assert_eq!(
        message(policy),
        "invalid repos value: expected all, public, or non-empty array of scoped strings"
    );
    let policy = base(json!({"refusal-labels": 1, "blocked-users": 1}));
    assert_eq!(
        message(policy),
        "invalid blocked-users value: expected array of strings"
    );
    // top-level trusted-bots is checked after refusal-labels, before disapproval-integrity.
    let mut policy = base(json!({"endorser-min-integrity": "x", "disapproval-integrity": "y"}));
    policy["trusted-bots"] = json!([]);
    assert_eq!(
        message(policy),
        "invalid trusted-bots value: must be a non-empty array when present"
    );
    let mut policy = base(json!({"refusal-labels": 1}));
    policy["trusted-bots"] = json!([]);
    assert_eq!(
        message(policy),
        "invalid refusal-labels value: expected array of strings or comma/newline-delimited string"
    );
}
