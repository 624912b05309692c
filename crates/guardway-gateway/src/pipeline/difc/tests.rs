//! The pipeline driven without MCP: a forward step that answers like a REST
//! API (a bare JSON array of issues), the real sample guard, and a
//! `call_backend` target of the test's own.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use guardway_difc::EnforcementMode;
use guardway_wasm::{BackendCallError, BoxFuture};
use serde_json::{Value, json};

use super::*;

const POLICY: &str = r#"{"allow-only": {"repos": ["octo-org/*"], "min-integrity": "approved"}}"#;

/// The sample guard, built by scripts/build-guards.sh when missing.
fn sample_guard() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let wasm = root.join("guards/sample-guard/target/wasm32-wasip1/release/sample_guard.wasm");
    if !wasm.exists() {
        let status = std::process::Command::new("bash")
            .arg(root.join("scripts/build-guards.sh"))
            .current_dir(&root)
            .status()
            .unwrap();
        assert!(status.success(), "scripts/build-guards.sh failed");
    }
    wasm
}

/// `search_repositories` for the guard's visibility look-ups: every
/// repository is public. Counts the look-ups.
#[derive(Default)]
struct PublicRepos {
    lookups: AtomicUsize,
}

impl guardway_wasm::Backend for PublicRepos {
    fn call_tool<'a>(
        &'a self,
        tool: &'a str,
        args: Value,
    ) -> BoxFuture<'a, Result<Value, BackendCallError>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            assert_eq!(tool, "search_repositories");
            let repo = args["query"]
                .as_str()
                .unwrap_or("")
                .trim_start_matches("repo:");
            let found = json!({"total_count": 1, "items": [{"full_name": repo, "private": false}]});
            Ok(json!({"content": [{"type": "text", "text": found.to_string()}]}))
        })
    }
}

/// A REST issue of `octo-org/api` by `login` with `association`.
fn issue(number: u64, login: &str, association: &str) -> Value {
    json!({"number": number, "title": format!("issue {number}"), "state": "open",
        "user": {"login": login}, "author_association": association,
        "repository_url": "https://api.github.com/repos/octo-org/api",
        "html_url": format!("https://github.com/octo-org/api/issues/{number}"), "labels": []})
}

async fn pipeline(backend: Arc<PublicRepos>) -> DifcPipeline {
    let policy: Value = serde_json::from_str(POLICY).unwrap();
    DifcPipeline::builder()
        .mode(EnforcementMode::Filter)
        .server(
            ServerSpec::wasm_file("github", sample_guard())
                .policy(policy)
                .call_backend(backend),
        )
        .build()
        .await
        .unwrap()
}

fn list_issues(arguments: Value) -> DifcCall<'static> {
    DifcCall {
        server: "github",
        tool: "list_issues",
        arguments,
        agent_id: Some("agent-rest"),
        session: None,
    }
}

/// The issue numbers in the text of the gateway's filtered view.
fn numbers_in_view(view: &Value) -> Vec<u64> {
    let text = view["content"][0]["text"].as_str().unwrap();
    let issues: Vec<Value> = serde_json::from_str(text).unwrap();
    issues
        .iter()
        .map(|i| i["number"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_forward_step_is_allowed_filtered_and_denied_before_it_runs() {
    let backend = Arc::new(PublicRepos::default());
    let pipeline = pipeline(backend.clone()).await;
    let forwarded = AtomicUsize::new(0);
    let rest = |body: Value| {
        let forwarded = &forwarded;
        move || async move {
            forwarded.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(Forwarded::<Value, u16>::Result(body))
        }
    };
    let repo = json!({"owner": "octo-org", "repo": "api"});

    // Allowed: every issue is by an approved author.
    let body = json!([issue(1, "alice", "OWNER"), issue(2, "bob", "MEMBER")]);
    let outcome = pipeline
        .call(list_issues(repo.clone()), rest(body))
        .await
        .unwrap();
    let Outcome::Result { result, items } = outcome else {
        panic!("not a result: {outcome:?}");
    };
    assert_eq!(
        items,
        Some(ItemCounts {
            total: 2,
            filtered: 0
        })
    );
    assert_eq!(numbers_in_view(&result), [1, 2]);
    assert_eq!(forwarded.load(Ordering::SeqCst), 1);
    assert!(
        backend.lookups.load(Ordering::SeqCst) >= 1,
        "the guard's visibility look-up reaches the injected call_backend"
    );

    // Filtered: the issue by an author without standing is removed.
    let body = json!([issue(3, "alice", "OWNER"), issue(4, "mallory", "NONE")]);
    let outcome = pipeline
        .call(list_issues(repo.clone()), rest(body))
        .await
        .unwrap();
    let Outcome::Result { result, items } = outcome else {
        panic!("not a result: {outcome:?}");
    };
    assert_eq!(
        items,
        Some(ItemCounts {
            total: 2,
            filtered: 1
        })
    );
    assert_eq!(numbers_in_view(&result), [3]);
    assert!(
        result["content"][1]["text"]
            .as_str()
            .unwrap()
            .starts_with("[Filtered] 1 item(s) in this response were removed")
    );
    assert_eq!(forwarded.load(Ordering::SeqCst), 2);

    // Denied before forwarding: a write outside the policy's repositories.
    let write = DifcCall {
        server: "github",
        tool: "create_issue",
        arguments: json!({"owner": "acme", "repo": "web", "title": "nope"}),
        agent_id: Some("agent-rest"),
        session: None,
    };
    let error = pipeline
        .call(write, rest(json!({"number": 9})))
        .await
        .unwrap_err();
    let CallError::Refused(refusal) = error else {
        panic!("not a refusal: {error:?}");
    };
    assert_eq!(refusal.stage(), "coarse");
    assert!(
        refusal
            .message()
            .starts_with("DIFC Violation: Agent lacks required integrity to write to"),
        "{refusal}"
    );
    assert_eq!(
        forwarded.load(Ordering::SeqCst),
        2,
        "a denied call is not forwarded"
    );

    // The forward step's unlabelled outcome and its errors pass unchanged.
    let unlabelled = pipeline
        .call(list_issues(repo.clone()), || async {
            Ok::<_, String>(Forwarded::<Value, u16>::Unlabelled(304))
        })
        .await
        .unwrap();
    assert!(matches!(unlabelled, Outcome::Unlabelled(304)));
    let failed = pipeline
        .call(list_issues(repo), || async {
            Err::<Forwarded<Value, u16>, _>("connection refused".to_owned())
        })
        .await
        .unwrap_err();
    assert!(matches!(failed, CallError::Forward(ref e) if e == "connection refused"));

    let metrics = pipeline.metrics();
    assert_eq!(
        metrics.counter(
            "guardway_denials_total",
            &["github", "create_issue", "coarse"]
        ),
        1
    );
    assert_eq!(
        metrics.counter("guardway_filtered_items_total", &["github", "list_issues"]),
        1
    );
    assert_eq!(
        metrics.counter("guardway_tool_calls_total", &["github", "list_issues"]),
        4
    );
    let reflect = pipeline.reflect();
    assert!(reflect["agents"]["agent-rest"]["integrity"].is_array());
    assert_eq!(pipeline.guard_states()["github"]["state"], "healthy");
}

/// A REST body whose filtered form is the accessible items themselves, as
/// a proxy answers its client.
#[derive(Debug)]
struct RestBody(Value);

impl ForwardedResult for RestBody {
    fn into_json(self) -> Result<(Value, Option<Self>), String> {
        Ok((self.0, None))
    }

    fn from_json(value: Value) -> Result<Self, String> {
        Ok(RestBody(value))
    }

    fn filtered(items: &FilteredItems<'_>) -> Result<Self, ViewError> {
        if items.mode == EnforcementMode::Strict && !items.outcome.filtered.is_empty() {
            return Err(ViewError::Denied("strict".to_owned()));
        }
        let kept = items
            .outcome
            .accessible
            .iter()
            .filter_map(|&index| items.items.get(index))
            .map(|item| item.data.clone());
        Ok(RestBody(Value::Array(kept.collect())))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_shapes_the_filtered_result_itself() {
    let pipeline = pipeline(Arc::new(PublicRepos::default())).await;
    let body = json!([issue(5, "mallory", "NONE"), issue(6, "alice", "OWNER")]);
    let outcome = pipeline
        .call(
            list_issues(json!({"owner": "octo-org", "repo": "api"})),
            || async move { Ok::<_, String>(Forwarded::<RestBody, ()>::Result(RestBody(body))) },
        )
        .await
        .unwrap();
    let Outcome::Result { result, items } = outcome else {
        panic!("not a result");
    };
    assert_eq!(items.map(|counts| counts.filtered), Some(1));
    assert_eq!(result.0, json!([issue(6, "alice", "OWNER")]));
}

#[tokio::test]
async fn a_server_without_a_guard_is_refused_and_a_missing_guard_fails_the_build() {
    let pipeline = DifcPipeline::builder().build().await.unwrap();
    let error = pipeline
        .call(list_issues(json!({})), || async {
            Ok::<_, String>(Forwarded::<Value, ()>::Result(json!([])))
        })
        .await
        .unwrap_err();
    let CallError::Refused(refusal) = error else {
        panic!("not a refusal");
    };
    assert_eq!(
        refusal,
        Refusal::GuardError {
            message: "no guard is bound to server \"github\"".to_owned()
        }
    );
    let missing = DifcPipeline::builder()
        .server(ServerSpec::wasm_file("github", "/no/such/guard.wasm").policy(json!({})))
        .build()
        .await
        .unwrap_err();
    assert_eq!(missing.failures.len(), 1);
    assert!(
        missing
            .to_string()
            .starts_with("guards failed to load: server \"github\": guard \"github\": cannot read /no/such/guard.wasm")
    );
}
