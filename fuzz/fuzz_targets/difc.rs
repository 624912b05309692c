//! Guard policies and label JSON through `guardway-difc`, in the order one
//! `tools/call` uses it: policy validation, `label_agent` output, the coarse
//! check on `label_resource` output, `label_response` output resolved
//! against the backend's result, filtering into the client's view, taint.
//!
//! Input: a control byte, then five documents separated by `0xFF` (policy,
//! agent labels, resource labels, response labels, tool result). Besides
//! "never panics", it checks the promises the gateway relies on: no item the
//! agent may not read reaches the client, the client sees exactly the
//! accessible items, and tainting only raises secrecy and lowers integrity.

#![no_main]

use guardway_difc::{
    AccessDecision, AgentLabels, AgentRegistry, ClientView, EnforcementMode, LabelView, Operation,
    ResourceLabels, coarse_check, evaluate, filter_response, labels_response, parse_policy_str,
    prepare_label_agent_policy, taint_source, taints_agent, to_reference_json, unwrap_tool_result,
    validate_label_agent_policy, violation_text,
};
use guardway_fuzz::split;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const MODES: [EnforcementMode; 3] = [
    EnforcementMode::Strict,
    EnforcementMode::Filter,
    EnforcementMode::Propagate,
];
const TOOLS: [&str; 4] = [
    "list_issues",
    "issue_read",
    "github___search_code",
    "get_file_contents",
];

fn policy(text: &[u8]) {
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    if let Ok(value) = parse_policy_str(text) {
        let prepared = prepare_label_agent_policy(value.clone());
        let validated = validate_label_agent_policy(value);
        // Preparing is validating plus the gateway's own rewriting: both
        // accept or refuse the same policies.
        assert_eq!(
            prepared.is_ok(),
            validated.is_ok(),
            "prepare and validate disagree"
        );
        if let Ok(payload) = prepared {
            // What the guard receives must serialise.
            let _ = serde_json::to_vec(&payload).expect("the policy payload serialises");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    let [
        policy_text,
        agent_out,
        resource_out,
        response_out,
        result_text,
    ] = split::<5>(data);
    policy(policy_text);

    let registry = AgentRegistry::new();
    let agent_id = "agent";
    let (agent, mode) = match AgentLabels::parse(agent_out) {
        Ok(labels) => {
            let _ = labels.scope_kind();
            (
                registry.apply_agent_labels(agent_id, &labels),
                labels.difc_mode,
            )
        }
        Err(error) => {
            let _ = error.to_string();
            (
                registry.get_or_create(agent_id),
                MODES[usize::from(control % 3)],
            )
        }
    };
    let resource = match ResourceLabels::parse(resource_out) {
        Ok(resource) => resource,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    let check = coarse_check(&agent, &resource, mode);
    if check.evaluation.decision == AccessDecision::Deny {
        let text = violation_text(&check.evaluation, &agent, LabelView::from(&resource));
        assert!(text.starts_with("DIFC Violation: "));
    }
    if check.refused {
        assert_ne!(
            resource.operation,
            Operation::Read,
            "a read is never refused before the backend"
        );
        return;
    }
    if !labels_response(resource.operation, mode) {
        return;
    }
    let Ok(tool_result) = serde_json::from_slice::<Value>(result_text) else {
        return;
    };
    // The reference encoding round-trips.
    let encoded = to_reference_json(&tool_result);
    let decoded: Value = serde_json::from_str(&encoded).expect("reference JSON parses");
    assert_eq!(
        to_reference_json(&decoded),
        encoded,
        "reference JSON is stable"
    );
    let _ = unwrap_tool_result(&tool_result);

    let items = match guardway_difc::label_response_items(response_out, &tool_result) {
        Ok(Some(items)) => items,
        Ok(None) => return,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    let tool = TOOLS[usize::from(control >> 2) % TOOLS.len()];
    let response = filter_response(&agent, &items, resource.operation, mode, tool, agent_id);
    let outcome = &response.outcome;
    assert_eq!(outcome.total, items.len());
    assert_eq!(
        outcome.accessible.len() + outcome.filtered.len(),
        items.len()
    );
    if mode != EnforcementMode::Propagate {
        for &index in &outcome.accessible {
            let item = &items[index];
            let read = evaluate(
                &agent,
                LabelView::from(&item.labels),
                Operation::Read,
                EnforcementMode::Strict,
            );
            assert!(
                read.is_allowed(),
                "item {index} reaches the client but the agent may not read it"
            );
        }
    }
    match &response.view {
        ClientView::Result(result) => {
            if mode == EnforcementMode::Strict {
                assert!(
                    outcome.filtered.is_empty(),
                    "strict mode returned a filtered response"
                );
            }
            let text = result["content"][0]["text"].as_str().expect("a text block");
            let returned: Vec<Value> =
                serde_json::from_str(text).expect("the text is a JSON array");
            let expected: Vec<&Value> =
                outcome.accessible.iter().map(|&i| &items[i].data).collect();
            assert_eq!(returned.len(), expected.len());
            for (returned, expected) in returned.iter().zip(expected) {
                assert!(
                    same_json(returned, expected),
                    "the client sees exactly the accessible items: {returned} != {expected}"
                );
            }
            assert!(
                !text.contains(['<', '>', '&']),
                "HTML characters are escaped"
            );
        }
        ClientView::Denied(denial) => {
            assert!(
                !outcome.filtered.is_empty(),
                "a denial without filtered items"
            );
            let _ = denial.to_string();
        }
    }
    if taints_agent(resource.operation, mode) {
        let before = registry.labels(agent_id).expect("the agent exists");
        let source = taint_source(&resource, Some(&items));
        let after = registry.taint(agent_id, &source);
        assert!(
            before.secrecy.is_subset(&after.secrecy),
            "taint lowered secrecy"
        );
        assert!(
            after.integrity.is_subset(&before.integrity),
            "taint raised integrity"
        );
    }
});

/// Equal JSON values, numbers compared by value: the client's text writes
/// numbers as the reference gateway does (plain notation below 1e21), so a
/// float such as 2.222222222222222e17 comes back as the integer
/// 222222222222222200, the same number.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, x)| y.get(key).is_some_and(|y| same_json(x, y)))
        }
        _ => a == b,
    }
}
