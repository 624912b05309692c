//! `env.call_backend`: success, the `-2` hint with an immediate retry served without asking
//! the backend twice, the per-call limit, bad pointers and data, backend failures.

use std::sync::Arc;

use guardway_wasm::{Backend, GuardExport};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn result_too_large_gives_a_hint_and_the_retry_is_served_from_the_kept_result() {
    let result = json!({"visibility": "private", "owner": "octo-org", "name": "api"});
    let backend = MockBackend::new(result.clone());
    let guard = guard_backed_by("backend_calls", options(), &backend).await;
    let out = guard
        .call(
            GuardExport::LabelResource,
            br#"{"owner":"octo-org","repo":"api"}"#,
        )
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out).unwrap(),
        result
    );
    // The guard called twice (16-byte buffer, then the hinted size); the backend once.
    assert_eq!(backend.calls(), 1);
    assert_eq!(guard.stats().backend_calls, 1);
    let seen = backend.seen.lock().clone();
    assert_eq!(
        seen,
        vec![(
            "lookup".to_owned(),
            json!({"owner": "octo-org", "repo": "api"})
        )]
    );
}

#[tokio::test]
async fn small_result_fits_at_once() {
    let backend = MockBackend::new(json!(1));
    let guard = guard_backed_by("backend_calls", options(), &backend).await;
    let out = guard.call(GuardExport::LabelResource, b"").await.unwrap();
    assert_eq!(out, b"1");
    // Empty arguments reach the backend as an empty object.
    assert_eq!(backend.seen.lock()[0].1, json!({}));
}

#[tokio::test]
async fn more_than_fifty_calls_are_refused() {
    let backend = MockBackend::new(json!({"ok": true}));
    let guard = guard_backed_by("backend_calls", options(), &backend).await;
    let out = guard.call(GuardExport::LabelResponse, b"{}").await.unwrap();
    assert_eq!(le_i32s(&out), vec![50, -1]);
    assert_eq!(backend.calls(), 50);
    // The limit is per guard call: the next call gets 50 again.
    let out = guard.call(GuardExport::LabelResponse, b"{}").await.unwrap();
    assert_eq!(le_i32s(&out), vec![50, -1]);
    assert_eq!(backend.calls(), 100);
}

#[tokio::test]
async fn the_limit_is_configurable() {
    let backend = MockBackend::new(json!(null));
    let options = options().with_max_backend_calls(3);
    let guard = guard_backed_by("backend_calls", options, &backend).await;
    let out = guard.call(GuardExport::LabelResponse, b"{}").await.unwrap();
    assert_eq!(le_i32s(&out), vec![3, -1]);
}

#[tokio::test]
async fn bad_pointers_and_bad_data_return_minus_one_without_calling_the_backend() {
    let backend = MockBackend::new(json!(1));
    let guard = guard_backed_by("backend_bad_pointers", options(), &backend).await;
    let out = guard.call(GuardExport::LabelResource, b"{}").await.unwrap();
    assert_eq!(le_i32s(&out), vec![-1, -1, -1, -1, -1]);
    assert_eq!(backend.calls(), 0);
    assert_serves(&guard).await;
}

#[tokio::test]
async fn backend_errors_and_a_missing_backend_return_minus_one() {
    let backend = MockBackend::failing();
    let guard = guard_backed_by("backend_calls", options(), &backend).await;
    let out = guard.call(GuardExport::LabelResponse, b"{}").await.unwrap();
    assert_eq!(le_i32s(&out), vec![0, -1]);
    assert_eq!(backend.calls(), 50);

    let guard = guard_with("backend_calls", options(), None).await;
    let out = guard.call(GuardExport::LabelResponse, b"{}").await.unwrap();
    assert_eq!(le_i32s(&out), vec![0, -1]);
}

/// A backend that never answers.
struct HangingBackend;

impl Backend for HangingBackend {
    fn call_tool<'a>(
        &'a self,
        _tool: &'a str,
        _args: serde_json::Value,
    ) -> guardway_wasm::BoxFuture<'a, Result<serde_json::Value, guardway_wasm::BackendCallError>>
    {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn a_backend_that_never_answers_is_cut_at_the_call_deadline() {
    let options = options().with_call_timeout(std::time::Duration::from_millis(200));
    let guard = guard_with("backend_calls", options, Some(Arc::new(HangingBackend))).await;
    // call_backend answers -1 at the deadline; the fixture passes the code on.
    let err = resource_error(&guard, b"{}").await;
    match &err {
        guardway_wasm::GuardError::GuardFailed { code, .. } => assert_eq!(*code, -1),
        other => panic!("unexpected {other:?}"),
    }
    // Not discarded for a fault (only retired, if optimised code landed meanwhile).
    let stats = guard.stats();
    assert_eq!(stats.instances_discarded, stats.instances_retired);
}

#[tokio::test]
async fn cancelling_a_call_waiting_on_the_backend_discards_the_instance() {
    let options = options().with_call_timeout(std::time::Duration::from_secs(30));
    let guard = guard_with("backend_calls", options, Some(Arc::new(HangingBackend))).await;
    let call = guard.call(GuardExport::LabelResource, b"{}");
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(50), call)
            .await
            .is_err()
    );
    let stats = guard.stats();
    assert_eq!(stats.cancelled, 1);
    assert_eq!(stats.live_instances, 0);
    // New instances are still created and answer.
    let other = json!({"allow-only": {"repos": ["other/*"], "min-integrity": "none"}});
    guard.label_agent(&other).await.unwrap();
    assert_eq!(guard.stats().instances_created, 2);
}
