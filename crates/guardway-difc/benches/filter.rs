//! Benchmark: resolving path labels of a 1,000-item GitHub-issue-like response, then evaluating
//! and filtering it into the client's view.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use guardway_difc::{
    EnforcementMode, LabelPair, Operation, TagSet, filter_items, filter_response,
    label_response_items, to_reference_json,
};
use serde_json::{Value, json};

const ITEMS: usize = 1_000;

fn issue(number: usize) -> Value {
    let repo = if number.is_multiple_of(4) {
        "api"
    } else {
        "web"
    };
    json!({
        "number": number,
        "title": format!("Crash when <parsing> config & flags #{number}"),
        "state": if number.is_multiple_of(3) { "closed" } else { "open" },
        "html_url": format!("https://github.com/acme/{repo}/issues/{number}"),
        "user": {"login": format!("user{}", number % 37), "id": 1000 + number, "type": "User"},
        "author_association": if number.is_multiple_of(5) { "NONE" } else { "MEMBER" },
        "labels": [{"name": "bug", "color": "d73a4a"}, {"name": "triage", "color": "ededed"}],
        "comments": number % 11,
        "created_at": "2026-01-02T03:04:05Z",
        "updated_at": "2026-02-03T04:05:06Z",
        "body": "Steps to reproduce:\n1. run the tool\n2. observe the panic\n\nExpected: no panic. ".repeat(3),
        "reactions": {"+1": number % 7, "-1": 0, "total_count": number % 7},
    })
}

fn backend_result() -> Value {
    let items: Vec<Value> = (0..ITEMS).map(issue).collect();
    let text =
        json!({"total_count": ITEMS, "incomplete_results": false, "items": items}).to_string();
    json!({"content": [{"type": "text", "text": text}], "isError": false})
}

fn label_response_output() -> Vec<u8> {
    let labeled_paths: Vec<Value> = (0..ITEMS)
        .map(|number| {
            let repo = if number.is_multiple_of(4) {
                "api"
            } else {
                "web"
            };
            let level = if number.is_multiple_of(5) {
                "none"
            } else {
                "approved"
            };
            let mut integrity = vec![format!("none:acme/{repo}")];
            if level == "approved" {
                integrity.push(format!("unapproved:acme/{repo}"));
                integrity.push(format!("approved:acme/{repo}"));
            }
            json!({"path": format!("/items/{number}"), "labels": {
                "description": format!("issue acme/{repo}#{number}"),
                "secrecy": [format!("private:acme"), format!("private:acme/{repo}")],
                "integrity": integrity,
            }})
        })
        .collect();
    json!({"labeled_paths": labeled_paths, "items_path": "/items",
           "default_labels": {"description": "repository", "secrecy": [], "integrity": []}})
    .to_string()
    .into_bytes()
}

fn agent() -> LabelPair {
    LabelPair::new(
        TagSet::from_strs(["private:acme", "private:acme/web"]),
        TagSet::from_strs(["none:acme/web", "unapproved:acme/web"]),
    )
}

fn bench_filtering(c: &mut Criterion) {
    let result = backend_result();
    let output = label_response_output();
    let agent = agent();
    let items = label_response_items(&output, &result)
        .ok()
        .flatten()
        .unwrap_or_default();
    assert_eq!(items.len(), ITEMS);
    let encoded = to_reference_json(&Value::Array(
        items.iter().map(|item| item.data.clone()).collect(),
    ));
    println!("response: {} bytes of item JSON", encoded.len());

    let mut group = c.benchmark_group("path_labelled_1000_items");
    group.bench_function("evaluate_and_filter", |b| {
        b.iter(|| {
            filter_response(
                black_box(&agent),
                black_box(&items),
                Operation::Read,
                EnforcementMode::Filter,
                "list_issues",
                "agent",
            )
        })
    });
    group.bench_function("evaluate_only", |b| {
        b.iter(|| {
            filter_items(
                black_box(&agent),
                black_box(&items),
                Operation::Read,
                EnforcementMode::Filter,
            )
        })
    });
    group.bench_function("encode_items_only", |b| {
        let array = Value::Array(items.iter().map(|item| item.data.clone()).collect());
        b.iter(|| to_reference_json(black_box(&array)))
    });
    group.bench_function("serde_json_to_string_baseline", |b| {
        let array = Value::Array(items.iter().map(|item| item.data.clone()).collect());
        b.iter(|| serde_json::to_string(black_box(&array)).map(|text| text.len()))
    });
    group.bench_function("parse_backend_text_baseline", |b| {
        let text = result["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        b.iter(|| serde_json::from_str::<Value>(black_box(&text)).is_ok())
    });
    group.bench_function("parse_label_response_only", |b| {
        b.iter(|| guardway_difc::ResponseLabels::parse(black_box(&output)).is_ok())
    });
    group.bench_function("resolve_evaluate_and_filter", |b| {
        b.iter(|| {
            let items = label_response_items(black_box(&output), black_box(&result))
                .ok()
                .flatten()
                .unwrap_or_default();
            filter_response(
                black_box(&agent),
                &items,
                Operation::Read,
                EnforcementMode::Filter,
                "list_issues",
                "agent",
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench_filtering);
criterion_main!(benches);
