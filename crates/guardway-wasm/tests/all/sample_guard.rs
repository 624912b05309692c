//! The real sample guard (Rust, built from `guards/sample-guard` for wasm32-wasip1) under the
//! host, on optimised and on baseline code: policy, look-ups through `call_backend`,
//! memoisation per instance, typed outputs.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use guardway_difc::{LabelResourceInput, LabelResponseInput, Operation, ResponseLabels};
use guardway_wasm::{Backend, Guard, GuardCompiler, GuardError, GuardModule, GuardOptions};
use serde_json::{Value, json};

use crate::common::*;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

static BUILD: Mutex<()> = Mutex::new(());

/// The sample guard's wasm, built with `scripts/build-guards.sh` when missing. `None` (with a
/// loud message) only when the wasm32-wasip1 target is not installed.
pub fn sample_guard_wasm() -> Option<Vec<u8>> {
    let path =
        repo_root().join("guards/sample-guard/target/wasm32-wasip1/release/sample_guard.wasm");
    let _lock = BUILD.lock().unwrap();
    if !path.exists() {
        let target_installed = std::process::Command::new("rustc")
            .args(["--print", "target-libdir", "--target", "wasm32-wasip1"])
            .output()
            .map(|o| {
                o.status.success()
                    && PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).is_dir()
            })
            .unwrap_or(false);
        if !target_installed {
            eprintln!(
                "\n*** SKIPPING sample-guard test: the wasm32-wasip1 target is not installed ***\n"
            );
            return None;
        }
        let status = std::process::Command::new("bash")
            .arg(repo_root().join("scripts/build-guards.sh"))
            .status()
            .unwrap();
        assert!(status.success(), "scripts/build-guards.sh failed");
    }
    Some(std::fs::read(&path).unwrap())
}

/// The sample guard on each tier: optimised (Cranelift) and baseline (Winch) code.
fn sample_modules() -> Vec<GuardModule> {
    let Some(bytes) = sample_guard_wasm() else {
        return Vec::new();
    };
    [GuardCompiler::Cranelift, GuardCompiler::Winch]
        .into_iter()
        .map(|compiler| {
            let options = GuardOptions::default().with_compiler(compiler);
            GuardModule::from_bytes("sample-guard", &bytes, &options).unwrap()
        })
        .collect()
}

fn text_result(value: &Value) -> Value {
    json!({"content": [{"type": "text", "text": value.to_string()}], "isError": false})
}

fn issue(repo: &str, number: u64, login: &str, association: &str) -> Value {
    json!({"number": number, "title": "t", "state": "open", "user": {"login": login},
           "author_association": association,
           "repository_url": format!("https://api.github.com/repos/{repo}"),
           "html_url": format!("https://github.com/{repo}/issues/{number}"), "labels": []})
}

fn search_backend() -> Arc<MockBackend> {
    MockBackend::new(text_result(&json!({"items": [
        {"full_name": "octo-org/secret", "private": true},
    ]})))
}

#[tokio::test]
async fn sample_guard_labels_a_private_issue_with_one_memoised_look_up() {
    for module in sample_modules() {
        labels_a_private_issue(module).await;
    }
}

async fn labels_a_private_issue(module: GuardModule) {
    assert!(module.has_allocator());
    let backend = search_backend();
    let options = options().with_pool_size(1);
    let guard = Guard::new(
        module,
        &policy(),
        options,
        Some(backend.clone() as Arc<dyn Backend>),
    )
    .await
    .unwrap();
    assert_eq!(
        guard.agent_labels().difc_mode,
        guardway_difc::EnforcementMode::Filter
    );
    assert!(guard.agent_labels().secrecy.contains("private:octo-org"));

    let input = LabelResourceInput {
        tool_name: "issue_read".into(),
        tool_args: json!({"method": "get", "owner": "octo-org", "repo": "secret", "issue_number": 3}),
        capabilities: None,
    };
    let resource = guard.label_resource(&input).await.unwrap();
    assert_eq!(resource.operation, Operation::Read);
    assert_eq!(resource.description, "issue octo-org/secret#3");
    assert!(resource.secrecy.contains("private:octo-org"));
    let after_first = backend.calls();
    assert!(after_first <= 1, "{after_first}");
    // The same instance memoised the visibility.
    guard.label_resource(&input).await.unwrap();
    assert_eq!(backend.calls(), after_first);

    let list = json!([
        issue("octo-org/secret", 1, "alice", "MEMBER"),
        issue("octo-org/secret", 2, "bob", "NONE")
    ]);
    let response = guard
        .label_response(&LabelResponseInput {
            tool_name: "list_issues".into(),
            tool_result: text_result(&list),
            tool_args: Some(json!({"owner": "octo-org", "repo": "secret"})),
            capabilities: None,
        })
        .await
        .unwrap();
    let ResponseLabels::Paths(paths) = response else {
        panic!("expected path labels, got {response:?}");
    };
    assert_eq!(paths.labeled_paths.len(), 2);
}

#[tokio::test]
async fn sample_guard_rejects_an_invalid_policy() {
    for module in sample_modules() {
        rejects_an_invalid_policy(module).await;
    }
}

async fn rejects_an_invalid_policy(module: GuardModule) {
    let invalid = json!({"allow-only": {"repos": [], "min-integrity": "approved"}});
    let err = Guard::new(module, &invalid, options(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, GuardError::PolicyRejected { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_guard_serves_parallel_calls() {
    for module in sample_modules() {
        serves_parallel_calls(module).await;
    }
}

async fn serves_parallel_calls(module: GuardModule) {
    let guard = Guard::new(
        module,
        &policy(),
        options().with_pool_size(2),
        Some(search_backend()),
    )
    .await
    .unwrap();
    let mut handles = Vec::new();
    for task in 0..4u64 {
        let guard = guard.clone();
        handles.push(tokio::spawn(async move {
            for number in 0..20u64 {
                let input = LabelResourceInput {
                    tool_name: "issue_read".into(),
                    tool_args: json!({"method": "get", "owner": "octo-org", "repo": "secret",
                                      "issue_number": task * 100 + number}),
                    capabilities: None,
                };
                let labels = guard.label_resource(&input).await.unwrap();
                assert_eq!(
                    labels.description,
                    format!("issue octo-org/secret#{}", task * 100 + number)
                );
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    assert_eq!(guard.stats().failures, 0);
}
