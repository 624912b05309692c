//! The instance pool: parallel calls, fault isolation, cancellation, quarantine, policy
//! rejection at creation.

use std::sync::Arc;
use std::time::Duration;

use guardway_wasm::{Guard, GuardError, GuardExport, GuardHealth, QuarantineOptions};

use crate::common::*;

#[tokio::test]
async fn policy_rejected_by_the_guard_fails_creation() {
    let err = Guard::new(module("rejects_policy"), &policy(), options(), None)
        .await
        .unwrap_err();
    match &err {
        GuardError::PolicyRejected { message, .. } => {
            assert!(message.contains("policy not supported"), "{message}")
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn agent_labels_are_computed_at_creation() {
    let guard = guard("echo").await;
    let labels = guard.agent_labels();
    assert_eq!(labels.difc_mode, guardway_difc::EnforcementMode::Filter);
    assert_eq!(guard.label_agent(&policy()).await.unwrap(), *labels);
}

fn input(task: usize, call: usize) -> Vec<u8> {
    format!(
        "{{\"task\":{task},\"call\":{call},\"pad\":\"{}\"}}",
        "p".repeat((task * 131 + call * 17) % 3000)
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_calls_give_the_sequential_outputs() {
    const TASKS: usize = 8;
    const CALLS: usize = 50;
    let sequential_guard = guard("echo").await;
    let mut expected = Vec::new();
    for task in 0..TASKS {
        for call in 0..CALLS {
            expected.push(
                sequential_guard
                    .call(GuardExport::LabelResource, &input(task, call))
                    .await
                    .unwrap(),
            );
        }
    }
    let guard = guard_with("echo", options().with_pool_size(3), None).await;
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let guard = guard.clone();
        handles.push(tokio::spawn(async move {
            let mut outputs = Vec::new();
            for call in 0..CALLS {
                outputs.push(
                    guard
                        .call(GuardExport::LabelResource, &input(task, call))
                        .await
                        .unwrap(),
                );
            }
            outputs
        }));
    }
    let mut actual = Vec::new();
    for handle in handles {
        actual.extend(handle.await.unwrap());
    }
    assert_eq!(actual, expected);
    let stats = guard.stats();
    assert_eq!(stats.failures, 0);
    assert!(stats.instances_created <= 3, "{stats:?}");
    assert_eq!(stats.live_instances, stats.idle_instances);
}

#[test]
fn parallel_calls_from_several_threads_each_with_its_own_runtime() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let guard = rt.block_on(guard("echo"));
    std::thread::scope(|scope| {
        for task in 0..4 {
            let guard = guard.clone();
            scope.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                for call in 0..40 {
                    let out = rt
                        .block_on(guard.call(GuardExport::LabelResource, &input(task, call)))
                        .unwrap();
                    assert_eq!(out, input(task, call));
                }
            });
        }
    });
    assert_eq!(guard.stats().failures, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trapping_input_does_not_disturb_other_tasks() {
    let guard = guard_with("echo", options().with_pool_size(4), None).await;
    let mut handles = Vec::new();
    for task in 0..4 {
        let guard = guard.clone();
        handles.push(tokio::spawn(async move {
            for call in 0..30 {
                let input = input(task, call);
                assert_eq!(
                    guard
                        .call(GuardExport::LabelResponse, &input)
                        .await
                        .unwrap(),
                    input
                );
            }
        }));
    }
    let trapper = {
        let guard = guard.clone();
        tokio::spawn(async move {
            for _ in 0..3 {
                let err = guard
                    .call(GuardExport::LabelResponse, b"!boom")
                    .await
                    .unwrap_err();
                assert!(matches!(err, GuardError::Trap { .. }), "{err:?}");
            }
        })
    };
    for handle in handles {
        handle.await.unwrap();
    }
    trapper.await.unwrap();
    let stats = guard.stats();
    assert_eq!(stats.traps, 3);
    assert_eq!(stats.failures, 3);
    assert_serves(&guard).await;
}

#[tokio::test]
async fn a_cancelled_call_never_returns_its_instance() {
    let guard = guard_with(
        "echo",
        options().with_call_timeout(Duration::from_secs(30)),
        None,
    )
    .await;
    let spinning = guard.call(GuardExport::LabelResponse, b"~spin");
    let outcome = tokio::time::timeout(Duration::from_millis(100), spinning).await;
    assert!(
        outcome.is_err(),
        "the spinning call should have been cancelled"
    );
    let stats = guard.stats();
    assert_eq!(stats.cancelled, 1);
    assert_eq!(stats.instances_discarded, 1);
    assert_eq!(stats.idle_instances, 0);
    assert_eq!(stats.live_instances, 0);
    assert_serves(&guard).await;
    assert_eq!(guard.stats().idle_instances, 1);
    // Cancellation is the caller's choice, not a guard fault.
    assert_eq!(guard.health(), GuardHealth::Healthy);

    // Cancelled through select! as well.
    tokio::select! {
        _ = guard.call(GuardExport::LabelResponse, b"~spin") => panic!("spin finished"),
        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
    }
    assert_eq!(guard.stats().cancelled, 2);
    assert_serves(&guard).await;
}

#[tokio::test]
async fn quarantine_opens_after_repeated_faults_and_closes_after_the_cool_down() {
    let clock = ManualClock::new();
    let options = options()
        .with_clock(clock.clone())
        .with_quarantine(QuarantineOptions {
            failures: 3,
            window: Duration::from_secs(60),
            cool_down: Duration::from_secs(30),
        });
    let guard = guard_with("echo", options, None).await;
    for _ in 0..2 {
        guard
            .call(GuardExport::LabelResponse, b"!")
            .await
            .unwrap_err();
        clock.advance(Duration::from_secs(1));
    }
    assert!(matches!(
        guard.health(),
        GuardHealth::Degraded {
            recent_failures: 2,
            ..
        }
    ));
    assert_serves(&guard).await;
    guard
        .call(GuardExport::LabelResponse, b"!")
        .await
        .unwrap_err();
    let GuardHealth::Quarantined { reason, .. } = guard.health() else {
        panic!("expected quarantine, got {:?}", guard.health());
    };
    assert!(reason.contains("3 failures"), "{reason}");
    let err = guard
        .call(GuardExport::LabelResponse, b"{}")
        .await
        .unwrap_err();
    match &err {
        GuardError::Quarantined { remaining, .. } => {
            assert_eq!(*remaining, Duration::from_secs(30))
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(guard.stats().denied, 1);
    clock.advance(Duration::from_secs(29));
    assert!(matches!(
        guard.call(GuardExport::LabelResponse, b"{}").await,
        Err(GuardError::Quarantined { .. })
    ));
    clock.advance(Duration::from_secs(1));
    assert_serves(&guard).await;
    assert_eq!(guard.health(), GuardHealth::Healthy);
}

#[tokio::test]
async fn faults_outside_the_window_do_not_quarantine() {
    let clock = ManualClock::new();
    let options = options()
        .with_clock(clock.clone())
        .with_quarantine(QuarantineOptions {
            failures: 2,
            window: Duration::from_secs(10),
            cool_down: Duration::from_secs(30),
        });
    let guard = guard_with("echo", options, None).await;
    guard
        .call(GuardExport::LabelResponse, b"!")
        .await
        .unwrap_err();
    clock.advance(Duration::from_secs(11));
    guard
        .call(GuardExport::LabelResponse, b"!")
        .await
        .unwrap_err();
    assert!(matches!(
        guard.health(),
        GuardHealth::Degraded {
            recent_failures: 1,
            ..
        }
    ));
    assert_serves(&guard).await;
}

#[tokio::test]
async fn label_agent_with_another_policy_never_touches_pooled_instances() {
    let guard = guard("echo").await;
    let other = serde_json::json!({"allow-only": {"repos": ["other/*"], "min-integrity": "none"}});
    let labels = guard.label_agent(&other).await.unwrap();
    assert_eq!(labels.difc_mode, guardway_difc::EnforcementMode::Filter);
    let stats = guard.stats();
    assert_eq!(stats.instances_created, 2);
    assert_eq!(stats.instances_discarded, 1);
    assert_eq!(stats.idle_instances, 1);
}

#[tokio::test]
async fn guard_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Guard>();
    let guard = guard("echo").await;
    let clone = guard.clone();
    assert_serves(&clone).await;
    assert_eq!(guard.stats().calls, clone.stats().calls);
    let _ = Arc::new(guard);
}
