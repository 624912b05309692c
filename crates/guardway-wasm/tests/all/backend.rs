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
    let guard = guard_with(
        "backend_calls",
        options(),
        Some(backend.clone() as Arc<dyn Backend>),
    )
    .await;
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
    let guard = guard_with(
        "backend_calls",
        options(),
        Some(backend.clone() as Arc<dyn Backend>),
    )
    .await;
    let out = guard.call(GuardExport::LabelResource, b"").await.unwrap();
    assert_eq!(out, b"1");
    // Empty arguments reach the backend as an empty object.
    assert_eq!(backend.seen.lock()[0].1, json!({}));
}

#[tokio::test]
async fn more_than_fifty_calls_are_refused() {
    let backend = MockBackend::new(json!({"ok": true}));
    let guard = guard_with(
        "backend_calls",
        options(),
        Some(backend.clone() as Arc<dyn Backend>),
    )
    .await;
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
    let guard = guard_with(
        "backend_calls",
        options,
        Some(backend.clone() as Arc<dyn Backend>),
    )
    .await;
    let out = guard.call(GuardExport::LabelResponse, b"{}").await.unwrap();
    assert_eq!(le_i32s(&out), vec![3, -1]);
}

#[tokio::test]
async fn bad_pointers_and_bad_data_return_minus_one_without_calling_the_backend() {
    let backend = MockBackend::new(json!(1));
    let guard = guard_with(
        "backend_bad_pointers",
        options(),
        Some(backend.clone() as Arc<dyn Backend>),
    )
    .await;
    let out = guard.call(GuardExport::LabelResource, b"{}").await.unwrap();
    assert_eq!(le_i32s(&out), vec![-1, -1, -1, -1, -1]);
    assert_eq!(backend.calls(), 0);
    assert_serves(&guard).await;
}

#[tokio::test]
async fn backend_errors_and_a_missing_backend_return_minus_one() {
    let backend = MockBackend::failing();
    let guard = guard_with(
        "backend_calls",
        options(),
        Some(backend.clone() as Arc<dyn Backend>),
    )
    .await;
    let out = guard.call(GuardExport::LabelResponse, b"{}").await.unwrap();
    assert_eq!(le_i32s(&out), vec![0, -1]);
    assert_eq!(backend.calls(), 50);

    let guard = guard_with("backend_calls", options(), None).await;
    let out = guard.call(GuardExport::LabelResponse, b"{}").await.unwrap();
    assert_eq!(le_i32s(&out), vec![0, -1]);
}
